//! The authenticated caller of an API request.

use super::{AuthError, Scope, ScopeSet};

/// A caller proven by an API key or a JWT: always exactly one PBX.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub pbx_id: String,
    pub key_id: String,
    pub scopes: ScopeSet,
}

impl Principal {
    /// Fails with [`AuthError::Forbidden`] naming the scope that is missing.
    pub fn require(&self, scope: Scope) -> Result<(), AuthError> {
        if self.scopes.contains(scope) {
            Ok(())
        } else {
            Err(AuthError::Forbidden(scope))
        }
    }
}
