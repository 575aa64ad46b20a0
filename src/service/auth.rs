//! Turning a presented credential into a [`Principal`], and API keys into JWTs.

use super::{ServiceResult, Services};
use crate::auth::{AuthError, Principal, ScopeSet, api_key};

impl Services {
    /// Accepts an API key (`do_live_…`/`do_test_…`) or a JWT issued by this server.
    pub async fn authenticate(&self, token: &str) -> ServiceResult<Principal> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing.into());
        }
        if !api_key::looks_like_key(token) {
            return Ok(self.jwt.verify(token)?);
        }
        let lookup = api_key::lookup_of(token).ok_or(AuthError::Malformed)?;
        let row = self
            .store
            .api_key_by_lookup(lookup)
            .await?
            .ok_or(AuthError::UnknownKey)?;
        if !api_key::verify(token, &row.secret_hash) {
            return Err(AuthError::UnknownKey.into());
        }
        let scopes = ScopeSet::parse_list(&row.scopes).map_err(|_| AuthError::UnknownKey)?;
        Ok(Principal {
            pbx_id: row.pbx_id,
            key_id: row.id,
            scopes,
        })
    }

    /// A JWT for `principal`. A JWT may renew itself, but only while the API key it
    /// was first exchanged for is still live (revoking a key ends its tokens' renewals).
    pub async fn issue_token(&self, principal: &Principal) -> ServiceResult<(String, i64)> {
        if !self.store.api_key_is_live(&principal.key_id).await? {
            return Err(AuthError::UnknownKey.into());
        }
        let now = chrono::Utc::now().timestamp();
        self.jwt.issue(principal, now).map_err(|e| {
            tracing::error!(error = %e, "could not sign a JWT");
            AuthError::BadToken.into()
        })
    }
}
