//! Who is calling: API keys (hashed, scoped, per PBX), JWTs for consoles, and the SIP
//! digest HA1 values stored for phones.

pub mod api_key;
pub mod digest;
pub mod jwt;
mod principal;
mod scope;

pub use principal::Principal;
pub use scope::{Scope, ScopeSet};

/// Why a credential was refused. Clients only ever see "unauthorized"/"forbidden";
/// the variant is for the log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing credentials")]
    Missing,
    #[error("malformed credentials")]
    Malformed,
    #[error("unknown or revoked API key")]
    UnknownKey,
    #[error("invalid or expired token")]
    BadToken,
    #[error("insufficient scope: {0}")]
    Forbidden(Scope),
}
