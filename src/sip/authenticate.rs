//! Digest authentication of SIP requests (RFC 3261 §22 with RFC 7616 / RFC 8760): the
//! checks, in order, of an `Authorization` or `Proxy-Authorization` header against the
//! PBX's realm and the account's stored HA1, the 401/407 challenges, and the one log
//! line per failure that fail2ban reads. The digest arithmetic and the nonces are in
//! [`crate::auth::digest`]; this module only reads and writes SIP messages.

use super::location;
use super::message::{Name, Request, Response};
use super::stack::transport::Origin;
use super::stack::{RequestCtx, SipStack};
use super::uri::Uri;
use crate::auth::digest::{self, Algorithm, Credentials, NonceBook, NonceProblem, ResponseInput};
use crate::domain::Pbx;
use crate::service::{Services, SipAccount};
use std::sync::Arc;

/// Checks credentials and issues challenges for the applications that need callers to
/// prove who they are (registrar, proxy, MWI).
pub struct DigestAuth {
    stack: Arc<SipStack>,
    services: Arc<Services>,
    nonces: NonceBook,
    /// Algorithms offered in challenges, most preferred first.
    algorithms: Vec<Algorithm>,
}

impl DigestAuth {
    pub fn new(
        stack: Arc<SipStack>,
        services: Arc<Services>,
        algorithms: Vec<Algorithm>,
        nonce_ttl: u64,
    ) -> Self {
        Self {
            stack,
            services,
            nonces: NonceBook::new(rand::random(), nonce_ttl),
            algorithms,
        }
    }
}

/// The result of checking a request's credentials.
pub enum AuthOutcome {
    Ok(Arc<SipAccount>),
    /// No (usable) credentials: challenge. `stale` when the digest was right but the
    /// nonce had expired.
    Challenge {
        stale: bool,
    },
    /// Wrong credentials: challenge again, and count and log the failure.
    Failure {
        user: String,
        reason: &'static str,
    },
    BadRequest(&'static str),
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether the digest `uri` names the same resource as the Request-URI (parameters
/// aside: phones add `;transport=…` to one and not the other).
fn same_target(digest_uri: &str, request_uri: &Uri) -> bool {
    match Uri::parse(digest_uri) {
        Ok(u) => {
            u.scheme == request_uri.scheme
                && u.user_unescaped() == request_uri.user_unescaped()
                && u.host.eq_ignore_ascii_case(&request_uri.host)
                && u.port.unwrap_or(5060) == request_uri.port.unwrap_or(5060)
        }
        Err(_) => false,
    }
}

impl DigestAuth {
    /// Checks `Authorization` (or `Proxy-Authorization`) credentials against `pbx`.
    pub async fn authenticate(&self, req: &Request, pbx: &Pbx, header: &Name) -> AuthOutcome {
        let realm = pbx.sip_domain.as_str();
        let presented: Vec<Credentials> = req
            .headers
            .lines(header)
            .filter_map(Credentials::parse)
            .collect();
        // No credentials, or only schemes other than Digest: challenge (RFC 4475 §3.3.7).
        if presented.is_empty() {
            return AuthOutcome::Challenge { stale: false };
        }
        let Some(creds) = presented.iter().find(|c| c.realm == realm) else {
            return AuthOutcome::Failure {
                user: presented[0].username.clone(),
                reason: "realm_mismatch",
            };
        };
        let fail = |reason| AuthOutcome::Failure {
            user: creds.username.clone(),
            reason,
        };
        // Any algorithm we know is accepted, offered or not: the nonce does not depend
        // on it, and a phone that can do SHA-256 should not be turned away for it.
        let Some(algorithm) = digest::algorithm_of(creds.algorithm.as_deref()) else {
            return fail("unsupported_algorithm");
        };
        let (Some(qop), Some(nc_raw), Some(cnonce)) = (&creds.qop, &creds.nc, &creds.cnonce) else {
            return fail("missing_qop");
        };
        if !qop.eq_ignore_ascii_case("auth") {
            return fail("missing_qop");
        }
        let Ok(nc) = u32::from_str_radix(nc_raw, 16) else {
            return AuthOutcome::BadRequest("Bad nonce count");
        };
        let ticket = match self.nonces.check(&creds.nonce, realm) {
            Ok(t) => t,
            Err(NonceProblem::Foreign) => return fail("foreign_nonce"),
        };
        let account = match self.services.sip_account(&creds.username).await {
            Ok(Some(a)) if a.pbx_id == pbx.id => Some(a),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(error = %e, "account lookup failed");
                return AuthOutcome::Challenge { stale: false };
            }
        };
        let input = ResponseInput {
            nonce: &creds.nonce,
            nc: nc_raw,
            cnonce,
            qop,
            method: req.method.as_str(),
            uri: &creds.uri,
        };
        let Some(account) = account else {
            // Same work as a known user, so timing does not tell them apart.
            let _ = digest::response_matches(
                algorithm,
                "0".repeat(64).as_str(),
                &input,
                &creds.response,
            );
            return fail("unknown_user");
        };
        let ha1 = match algorithm {
            Algorithm::Md5 => &account.ha1_md5,
            Algorithm::Sha256 => &account.ha1_sha256,
        };
        if !digest::response_matches(algorithm, ha1, &input, &creds.response) {
            return fail("wrong_password");
        }
        if !same_target(&creds.uri, &req.uri) {
            return AuthOutcome::BadRequest("Digest URI does not match the Request-URI");
        }
        let now = now_secs();
        if self.nonces.is_stale(ticket, now) {
            return AuthOutcome::Challenge { stale: true };
        }
        if !self.nonces.accept_count(ticket, nc, now) {
            return fail("replayed_nonce");
        }
        AuthOutcome::Ok(account)
    }

    /// A 401/407 with a fresh nonce, one challenge per configured algorithm.
    pub fn challenge(
        &self,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        pbx: &Pbx,
        stale: bool,
        proxy: bool,
    ) -> Response {
        let (status, reason, header) = if proxy {
            (
                407,
                "Proxy Authentication Required",
                Name::ProxyAuthenticate,
            )
        } else {
            (401, "Unauthorized", Name::WwwAuthenticate)
        };
        let mut resp = self.stack.response(req, ctx, origin, status, reason);
        let nonce = self.nonces.issue(&pbx.sip_domain, now_secs());
        for value in digest::challenges(&pbx.sip_domain, &nonce, stale, &self.algorithms) {
            resp.headers.push(header.clone(), value);
        }
        resp
    }

    /// One structured line per failure (for fail2ban), and the IP's failure count.
    pub fn auth_failed(&self, origin: Origin, pbx: &Pbx, user: &str, reason: &str) {
        tracing::warn!(
            source.ip = %origin.remote.ip(),
            source.port = origin.remote.port(),
            pbx.id = %pbx.id,
            sip.user = %user.chars().take(64).collect::<String>(),
            reason,
            "SIP authentication failed"
        );
        if self.stack.record_auth_failure(origin.remote.ip()) {
            tracing::warn!(source.ip = %origin.remote.ip(), "too many SIP authentication failures; ignoring this address for 5 minutes");
        }
    }

    /// The PBX a request is for (by its To domain) and the extension whose digest
    /// credentials it carries in `Authorization`; else the response to send (404, 401
    /// challenge, 400, 500).
    pub async fn user_agent_account(
        &self,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
    ) -> Result<(Arc<Pbx>, Arc<SipAccount>), Box<Response>> {
        let host = if ctx.to.uri.host.is_empty() {
            &req.uri.host
        } else {
            &ctx.to.uri.host
        };
        let pbx = location::pbx_for_host(
            &self.stack,
            &self.services,
            req,
            ctx,
            origin,
            host,
            (404, "Not Found"),
        )
        .await?;
        match self.authenticate(req, &pbx, &Name::Authorization).await {
            AuthOutcome::Ok(account) => Ok((pbx, account)),
            AuthOutcome::Challenge { stale } => Err(Box::new(
                self.challenge(req, ctx, origin, &pbx, stale, false),
            )),
            AuthOutcome::Failure { user, reason } => {
                self.auth_failed(origin, &pbx, &user, reason);
                Err(Box::new(
                    self.challenge(req, ctx, origin, &pbx, false, false),
                ))
            }
            AuthOutcome::BadRequest(reason) => {
                Err(Box::new(self.stack.response(req, ctx, origin, 400, reason)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_uri_matches_the_request_uri_up_to_parameters() {
        let r = Uri::parse("sip:127.0.0.1").unwrap();
        assert!(same_target("sip:127.0.0.1;transport=udp", &r));
        assert!(same_target("sip:127.0.0.1:5060", &r));
        assert!(!same_target("sip:10.0.0.1", &r));
        assert!(!same_target("garbage", &r));
    }
}
