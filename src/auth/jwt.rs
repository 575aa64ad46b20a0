//! JWTs for consoles: HS256, carrying the PBX, the scopes and the API key they came from.

use super::{AuthError, Principal, ScopeSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The PBX id.
    sub: String,
    /// The API key id the token was exchanged for.
    kid: String,
    /// Comma-separated scopes.
    scope: String,
    iat: i64,
    exp: i64,
}

/// Signing and verifying keys plus the token lifetime.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub ttl_secs: i64,
}

impl JwtKeys {
    pub fn new(secret: &[u8], ttl_secs: i64) -> anyhow::Result<Self> {
        anyhow::ensure!(secret.len() >= 32, "JWT secret must be at least 32 bytes");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            validation,
            ttl_secs,
        })
    }

    /// Issues a token for `principal`; returns it with its expiry (Unix seconds).
    pub fn issue(&self, principal: &Principal, now_secs: i64) -> anyhow::Result<(String, i64)> {
        let exp = now_secs + self.ttl_secs;
        let claims = Claims {
            sub: principal.pbx_id.clone(),
            kid: principal.key_id.clone(),
            scope: principal.scopes.to_list(),
            iat: now_secs,
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, exp))
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| AuthError::BadToken)?;
        let scopes = ScopeSet::parse_list(&data.claims.scope).map_err(|_| AuthError::BadToken)?;
        Ok(Principal {
            pbx_id: data.claims.sub,
            key_id: data.claims.kid,
            scopes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal {
            pbx_id: "pbx_1".into(),
            key_id: "key_1".into(),
            scopes: ScopeSet::all(),
        }
    }

    #[test]
    fn issued_tokens_verify_back_to_the_same_principal() {
        let keys = JwtKeys::new(&[7; 32], 3600).unwrap();
        let now = chrono::Utc::now().timestamp();
        let (token, exp) = keys.issue(&principal(), now).unwrap();
        assert_eq!(exp, now + 3600);
        assert_eq!(keys.verify(&token).unwrap(), principal());
    }

    #[test]
    fn expired_tokens_and_foreign_signatures_are_refused() {
        let keys = JwtKeys::new(&[7; 32], 3600).unwrap();
        let other = JwtKeys::new(&[8; 32], 3600).unwrap();
        let now = chrono::Utc::now().timestamp();
        let (token, _) = other.issue(&principal(), now).unwrap();
        assert_eq!(keys.verify(&token), Err(AuthError::BadToken));
        let (old, _) = keys.issue(&principal(), now - 7200).unwrap();
        assert_eq!(keys.verify(&old), Err(AuthError::BadToken));
        assert_eq!(keys.verify("not.a.token"), Err(AuthError::BadToken));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(JwtKeys::new(b"short", 60).is_err());
    }
}
