//! REGISTER (RFC 3261 §10.3): digest authentication, then bindings.

use super::auth::{self, NonceProblem};
use super::headers::{DigestCredentials, parse_delta_seconds};
use super::message::{Name, Request, Response};
use super::transport::Origin;
use super::uri::{NameAddr, Scheme, Uri, param};
use super::{RequestCtx, SipCore};
use crate::auth::digest::{Algorithm, ResponseInput};
use crate::domain::Pbx;
use crate::service::{ContactChange, RegisterAction, RegisterInput, RegisterOutcome, SipAccount};
use std::sync::Arc;

pub const DEFAULT_EXPIRES: u32 = 3600;
/// The shortest registration accepted by default (423 below it).
pub const MIN_EXPIRES: u32 = 60;
pub const MAX_EXPIRES: u32 = 7200;

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

impl SipCore {
    /// Checks `Authorization` (or `Proxy-Authorization`) credentials against `pbx`.
    pub async fn authenticate(&self, req: &Request, pbx: &Pbx, header: &Name) -> AuthOutcome {
        let realm = pbx.sip_domain.as_str();
        let presented: Vec<DigestCredentials> = req
            .headers
            .0
            .iter()
            .filter(|h| &h.name == header)
            .filter_map(|h| DigestCredentials::parse(&h.value))
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
        let Some(algorithm) = auth::algorithm_of(creds.algorithm.as_deref()) else {
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
            let _ =
                auth::response_matches(algorithm, "0".repeat(64).as_str(), &input, &creds.response);
            return fail("unknown_user");
        };
        let ha1 = match algorithm {
            Algorithm::Md5 => &account.ha1_md5,
            Algorithm::Sha256 => &account.ha1_sha256,
        };
        if !auth::response_matches(algorithm, ha1, &input, &creds.response) {
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
        let mut resp = self.response(req, ctx, origin, status, reason);
        let nonce = self.nonces.issue(&pbx.sip_domain, now_secs());
        for value in auth::challenges(&pbx.sip_domain, &nonce, stale, &self.config.digest) {
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
        if self.guard.record_failure(origin.remote.ip()) {
            tracing::warn!(source.ip = %origin.remote.ip(), "too many SIP authentication failures; ignoring this address for 5 minutes");
        }
    }

    /// The PBX whose SIP domain is `host` (the default PBX for this server's own
    /// addresses); else the answer to send: `unknown` for a domain we do not serve,
    /// 500 when the store cannot say.
    pub(super) async fn pbx_for_host(
        &self,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        host: &str,
        unknown: (u16, &str),
    ) -> Result<Arc<Pbx>, Box<Response>> {
        let found = match self.services.pbx_for_domain(host).await {
            Ok(None) if self.is_own_host(host) => self.services.default_pbx().await,
            other => other,
        };
        match found {
            Ok(Some(pbx)) => Ok(pbx),
            Ok(None) => {
                tracing::debug!(sip.domain = %host, "request for a domain no PBX hosts");
                Err(Box::new(
                    self.response(req, ctx, origin, unknown.0, unknown.1),
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "PBX lookup failed");
                Err(Box::new(self.response(
                    req,
                    ctx,
                    origin,
                    500,
                    "Server Internal Error",
                )))
            }
        }
    }

    /// The PBX a request is for (by its To domain) and the extension whose digest
    /// credentials it carries in `Authorization`; else the response to send (404, 401
    /// challenge, 400, 500).
    pub(super) async fn user_agent_account(
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
        let pbx = self
            .pbx_for_host(req, ctx, origin, host, (404, "Not Found"))
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
                Err(Box::new(self.response(req, ctx, origin, 400, reason)))
            }
        }
    }

    pub(super) async fn register(
        self: &Arc<Self>,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
    ) -> Response {
        let (pbx, account) = match self.user_agent_account(req, ctx, origin).await {
            Ok(found) => found,
            Err(resp) => return *resp,
        };
        // The address-of-record must be this extension: its number or SIP username.
        let aor_user = ctx.to.uri.user_unescaped().unwrap_or_default();
        if ctx.to.uri.scheme == Scheme::Tel
            || (aor_user != account.number && aor_user != account.sip_username)
        {
            self.auth_failed(origin, &pbx, &account.sip_username, "wrong_extension");
            return self.response(req, ctx, origin, 403, "Forbidden");
        }
        let action = match contact_action(req, self.config.min_expires) {
            Ok(a) => a,
            Err(ContactError::TooBrief) => {
                let mut resp = self.response(req, ctx, origin, 423, "Interval Too Brief");
                resp.headers
                    .push(Name::MinExpires, self.config.min_expires.to_string());
                return resp;
            }
            Err(ContactError::Bad(reason)) => return self.response(req, ctx, origin, 400, reason),
        };
        let input = RegisterInput {
            account,
            call_id: ctx.call_id.clone(),
            cseq: ctx.cseq,
            transport: origin.transport,
            source: origin.remote,
            flow: origin.flow,
            user_agent: req
                .headers
                .get(&Name::UserAgent)
                .map(|u| u.chars().take(256).collect()),
            action,
        };
        let registered: Vec<Uri> = match &input.action {
            RegisterAction::Apply(changes) => changes
                .iter()
                .filter(|c| c.expires > 0)
                .filter_map(|c| Uri::parse(&c.contact).ok())
                .collect(),
            _ => Vec::new(),
        };
        let who = (
            input.account.extension_id.clone(),
            input.account.number.clone(),
        );
        match self.services.register(input).await {
            Ok(RegisterOutcome::Current(bindings)) => {
                if !registered.is_empty() {
                    let core = self.clone();
                    let (pbx_id, domain) = (pbx.id.clone(), pbx.sip_domain.clone());
                    tokio::spawn(async move {
                        core.mwi_on_register(&pbx_id, &domain, &who.0, &who.1, registered)
                            .await
                    });
                }
                let mut resp = self.response(req, ctx, origin, 200, "OK");
                for (contact, secs) in bindings {
                    resp.headers
                        .push(Name::Contact, format!("<{contact}>;expires={secs}"));
                }
                resp.headers.push(
                    Name::Date,
                    chrono::Utc::now()
                        .format("%a, %d %b %Y %H:%M:%S GMT")
                        .to_string(),
                );
                resp
            }
            Ok(RegisterOutcome::OutOfOrder) => {
                // §10.3 step 7: a request older than what we hold changes nothing.
                let mut resp = self.response(req, ctx, origin, 500, "Server Internal Error");
                resp.headers.push(Name::Other("Retry-After".into()), "1");
                resp.headers.push(
                    Name::Warning,
                    "399 switchboard \"Out of order CSeq ignored\"",
                );
                resp
            }
            Err(e) => {
                tracing::error!(error = %e, "registration could not be stored");
                let mut resp = self.response(req, ctx, origin, 500, "Server Internal Error");
                resp.headers.push(Name::Other("Retry-After".into()), "5");
                resp
            }
        }
    }
}

enum ContactError {
    TooBrief,
    Bad(&'static str),
}

/// Reads the Contact and Expires headers into a binding action (§10.3 steps 5–6).
fn contact_action(req: &Request, min_expires: u32) -> Result<RegisterAction, ContactError> {
    let header_expires = match req.headers.get(&Name::Expires) {
        Some(raw) => Some(parse_delta_seconds(raw).ok_or(ContactError::Bad("Bad Expires"))?),
        None => None,
    };
    let contacts: Vec<&str> = req.headers.all(&Name::Contact).collect();
    if contacts.is_empty() {
        return Ok(RegisterAction::Fetch);
    }
    if contacts.contains(&"*") {
        if contacts.len() != 1 || header_expires != Some(0) {
            return Err(ContactError::Bad(
                "Contact * needs Expires: 0 and no other contact",
            ));
        }
        return Ok(RegisterAction::RemoveAll);
    }
    let mut changes = Vec::with_capacity(contacts.len());
    for raw in contacts {
        let na = NameAddr::parse(raw).map_err(|_| ContactError::Bad("Bad Contact"))?;
        if !matches!(na.uri.scheme, Scheme::Sip | Scheme::Sips) {
            return Err(ContactError::Bad("Contact must be a SIP URI"));
        }
        let expires = match param(&na.params, "expires") {
            Some(Some(v)) => {
                parse_delta_seconds(v).ok_or(ContactError::Bad("Bad expires parameter"))?
            }
            Some(None) => return Err(ContactError::Bad("Bad expires parameter")),
            None => header_expires.unwrap_or(DEFAULT_EXPIRES),
        };
        if expires != 0 && expires < min_expires {
            return Err(ContactError::TooBrief);
        }
        let instance_id = param(&na.params, "+sip.instance")
            .and_then(|v| v.as_deref())
            .map(|v| v.trim_matches('"').to_owned())
            .filter(|v| !v.is_empty());
        changes.push(ContactChange {
            contact: na.uri.to_string(),
            instance_id,
            expires: expires.min(MAX_EXPIRES),
        });
    }
    Ok(RegisterAction::Apply(changes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::Message;

    fn req(extra: &str) -> Request {
        let raw = format!(
            "REGISTER sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
             To: <sip:a@h>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match Message::parse(raw.as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    fn contact_action_default(r: &Request) -> Result<RegisterAction, ContactError> {
        contact_action(r, MIN_EXPIRES)
    }

    fn apply(extra: &str) -> Vec<ContactChange> {
        match contact_action(&req(extra), MIN_EXPIRES) {
            Ok(RegisterAction::Apply(c)) => c,
            _ => panic!("expected contacts"),
        }
    }

    #[test]
    fn expiry_comes_from_the_contact_then_the_header_then_the_default() {
        let c = apply("Contact: <sip:a@1.2.3.4>;expires=120, <sip:a@5.6.7.8>\r\nExpires: 300\r\n");
        assert_eq!((c[0].expires, c[1].expires), (120, 300));
        assert_eq!(
            apply("Contact: <sip:a@1.2.3.4>\r\n")[0].expires,
            DEFAULT_EXPIRES
        );
        assert_eq!(
            apply("Contact: <sip:a@1.2.3.4>;expires=99999\r\n")[0].expires,
            MAX_EXPIRES
        );
        assert_eq!(
            apply("Contact: <sip:a@1.2.3.4>;expires=0\r\n")[0].expires,
            0
        );
    }

    #[test]
    fn too_short_an_expiry_is_423_and_wildcards_need_expires_zero() {
        assert!(matches!(
            contact_action_default(&req("Contact: <sip:a@h>;expires=30\r\n")),
            Err(ContactError::TooBrief)
        ));
        assert!(matches!(
            contact_action_default(&req("Contact: *\r\nExpires: 0\r\n")),
            Ok(RegisterAction::RemoveAll)
        ));
        assert!(matches!(
            contact_action_default(&req("Contact: *\r\n")),
            Err(ContactError::Bad(_))
        ));
        assert!(matches!(
            contact_action_default(&req("Contact: *, <sip:a@h>\r\nExpires: 0\r\n")),
            Err(ContactError::Bad(_))
        ));
        assert!(matches!(
            contact_action_default(&req("")),
            Ok(RegisterAction::Fetch)
        ));
        assert!(matches!(
            contact_action_default(&req("Contact: <tel:123>\r\n")),
            Err(ContactError::Bad(_))
        ));
        assert!(matches!(
            contact_action_default(&req("Contact: <sip:a@h>\r\nExpires: soon\r\n")),
            Err(ContactError::Bad(_))
        ));
    }

    #[test]
    fn instance_ids_are_unquoted() {
        let c = apply(
            "Contact: <sip:a@1.2.3.4;transport=tcp>;+sip.instance=\"<urn:uuid:0001>\";reg-id=1\r\n",
        );
        assert_eq!(c[0].instance_id.as_deref(), Some("<urn:uuid:0001>"));
        assert_eq!(c[0].contact, "sip:a@1.2.3.4;transport=tcp");
    }

    #[test]
    fn digest_uri_matches_the_request_uri_up_to_parameters() {
        let r = Uri::parse("sip:127.0.0.1").unwrap();
        assert!(same_target("sip:127.0.0.1;transport=udp", &r));
        assert!(same_target("sip:127.0.0.1:5060", &r));
        assert!(!same_target("sip:10.0.0.1", &r));
        assert!(!same_target("garbage", &r));
    }
}
