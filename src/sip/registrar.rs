//! The registrar (RFC 3261 §10.3): REGISTER, digest-authenticated, becomes bindings in
//! the service layer, which owns them; the registrar only reads and answers SIP.

use super::authenticate::DigestAuth;
use super::headers::parse_delta_seconds;
use super::message::{Name, Request, Response};
use super::mwi::Mwi;
use super::stack::transport::Origin;
use super::stack::{RequestCtx, SipStack};
use super::syntax::param;
use super::uri::{NameAddr, Scheme, Uri};
use crate::service::{ContactChange, RegisterAction, RegisterInput, RegisterOutcome, Services};
use std::sync::Arc;

pub const DEFAULT_EXPIRES: u32 = 3600;
/// The shortest registration accepted by default (423 below it).
pub const MIN_EXPIRES: u32 = 60;
pub const MAX_EXPIRES: u32 = 7200;

pub struct Registrar {
    stack: Arc<SipStack>,
    services: Arc<Services>,
    auth: Arc<DigestAuth>,
    /// Told of each registration, so a phone's message lamp is set at once.
    mwi: Arc<Mwi>,
    /// The shortest registration accepted (seconds); shorter ones get 423.
    min_expires: u32,
}

impl Registrar {
    pub fn new(
        stack: Arc<SipStack>,
        services: Arc<Services>,
        auth: Arc<DigestAuth>,
        mwi: Arc<Mwi>,
        min_expires: u32,
    ) -> Self {
        Self {
            stack,
            services,
            auth,
            mwi,
            min_expires,
        }
    }

    pub async fn register(&self, req: &Request, ctx: &RequestCtx, origin: Origin) -> Response {
        let (pbx, account) = match self.auth.user_agent_account(req, ctx, origin).await {
            Ok(found) => found,
            Err(resp) => return *resp,
        };
        // The address-of-record must be this extension: its number or SIP username.
        let aor_user = ctx.to.uri.user_unescaped().unwrap_or_default();
        if ctx.to.uri.scheme == Scheme::Tel
            || (aor_user != account.number && aor_user != account.sip_username)
        {
            self.auth
                .auth_failed(origin, &pbx, &account.sip_username, "wrong_extension");
            return self.stack.response(req, ctx, origin, 403, "Forbidden");
        }
        let action = match contact_action(req, self.min_expires) {
            Ok(a) => a,
            Err(ContactError::TooBrief) => {
                let mut resp = self
                    .stack
                    .response(req, ctx, origin, 423, "Interval Too Brief");
                resp.headers
                    .push(Name::MinExpires, self.min_expires.to_string());
                return resp;
            }
            Err(ContactError::Bad(reason)) => {
                return self.stack.response(req, ctx, origin, 400, reason);
            }
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
                    let mwi = self.mwi.clone();
                    let (pbx_id, domain) = (pbx.id.clone(), pbx.sip_domain.clone());
                    tokio::spawn(async move {
                        mwi.on_register(&pbx_id, &domain, &who.0, &who.1, registered)
                            .await
                    });
                }
                let mut resp = self.stack.response(req, ctx, origin, 200, "OK");
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
                let mut resp = self
                    .stack
                    .response(req, ctx, origin, 500, "Server Internal Error");
                resp.headers.push(Name::Other("Retry-After".into()), "1");
                resp.headers.push(
                    Name::Warning,
                    "399 switchboard \"Out of order CSeq ignored\"",
                );
                resp
            }
            Err(e) => {
                tracing::error!(error = %e, "registration could not be stored");
                let mut resp = self
                    .stack
                    .response(req, ctx, origin, 500, "Server Internal Error");
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
}
