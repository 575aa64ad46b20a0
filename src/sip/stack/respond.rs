//! Answering requests: building responses (RFC 3261 §8.2.6), finishing server
//! transactions (with Timer G for INVITE failures over UDP, §17.2.1), and the answers
//! the stack gives on its own (400/505/416 to what does not parse, 420).

use super::request::{RequestCtx, random_tag, raw_headers};
use super::transaction::{self, TxKey};
use super::transport::Origin;
use super::{SERVER, SipStack};
use crate::sip::headers::{Via, parse_cseq};
use crate::sip::message::{Headers, Method, Name, ParseError, Request, Response};
use std::sync::Arc;

impl SipStack {
    /// A response to `req`: Vias (the top one stamped with `received`/`rport`), From,
    /// To (tagged on final responses), Call-ID and CSeq copied (RFC 3261 §8.2.6).
    pub fn response(
        &self,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        status: u16,
        reason: &str,
    ) -> Response {
        let mut headers = Headers::default();
        for (i, via) in ctx.vias.iter().enumerate() {
            if i == 0 {
                let mut top = via.clone();
                top.stamp_source(origin.remote);
                headers.push(Name::Via, top.to_string());
            } else {
                headers.push(Name::Via, via.to_string());
            }
        }
        headers.push(Name::From, req.headers.get(&Name::From).unwrap_or_default());
        let to = req.headers.get(&Name::To).unwrap_or_default();
        if status > 100 && ctx.to.tag().is_none() {
            headers.push(Name::To, format!("{to};tag={}", random_tag()));
        } else {
            headers.push(Name::To, to);
        }
        headers.push(Name::CallId, ctx.call_id.clone());
        headers.push(Name::CSeq, format!("{} {}", ctx.cseq, ctx.cseq_method));
        headers.push(Name::Server, SERVER);
        Response {
            status,
            reason: reason.to_owned(),
            headers,
            body: Vec::new(),
        }
    }

    /// A response with a `Warning` saying why (RFC 3261 §20.43, code 399).
    pub fn warned(
        &self,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        status: u16,
        reason: &str,
        text: &str,
    ) -> Response {
        let mut resp = self.response(req, ctx, origin, status, reason);
        resp.headers.push(
            Name::Warning,
            format!("399 switchboard \"{}\"", text.replace('"', "'")),
        );
        resp
    }

    /// A 420 naming the option tags of `header` (`Require` when we are the UAS,
    /// `Proxy-Require` when we forward), none of which we support; `None` when the
    /// request names none. CANCEL and ACK are exempt (RFC 3261 §8.2.2.3, §16.3).
    pub fn unsupported(
        &self,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        header: &Name,
    ) -> Option<Response> {
        if matches!(req.method, Method::Cancel | Method::Ack) {
            return None;
        }
        let tags: Vec<&str> = req.headers.all(header).collect();
        if tags.is_empty() {
            return None;
        }
        let mut resp = self.response(req, ctx, origin, 420, "Bad Extension");
        resp.headers.push(Name::Unsupported, tags.join(", "));
        Some(resp)
    }

    /// Sends `response` for the server transaction `key` and records it: a provisional
    /// is resent on retransmissions of the request, a final ends the transaction.
    pub fn finish(&self, key: TxKey, origin: Origin, response: Response) {
        let bytes: Arc<[u8]> = response.to_bytes().into();
        if response.status >= 200 {
            let is_invite = response
                .headers
                .get(&Name::CSeq)
                .and_then(parse_cseq)
                .is_some_and(|(_, m)| m == Method::Invite);
            self.complete(key, origin, bytes.clone(), response.status, is_invite);
        } else {
            self.transactions.provisional(key, bytes.clone());
        }
        self.send(origin, bytes);
    }

    /// Records the final response of a server transaction (already sent, or being sent
    /// by the caller). A non-2xx answer to an INVITE over UDP is sent again on Timer G
    /// until its ACK arrives or Timer H runs out (RFC 3261 §17.2.1).
    pub fn complete(
        &self,
        key: TxKey,
        origin: Origin,
        bytes: Arc<[u8]>,
        status: u16,
        is_invite: bool,
    ) {
        let awaits_ack = is_invite && status >= 300;
        if !self
            .transactions
            .complete(key, bytes, awaits_ack, origin.transport.is_reliable())
        {
            return;
        }
        let (udp, transactions) = (self.udp.clone(), self.transactions.clone());
        tokio::spawn(async move {
            let mut interval = transaction::T1;
            loop {
                tokio::time::sleep(interval).await;
                let Some(bytes) = transactions.unacknowledged(key) else {
                    return;
                };
                if let Err(e) = udp.try_send_to(&bytes, origin.remote) {
                    tracing::debug!(error = %e, sip.remote = %origin.remote, "udp send");
                }
                interval = (interval * 2).min(transaction::T2);
            }
        });
    }

    /// Answers what did not parse: 505 for another SIP version, 416 for a URI scheme
    /// we do not speak, else 400, echoing what headers there are. Responses and ACKs
    /// are never answered, and without a Via there is nowhere to answer.
    pub(super) fn reject_unparsable(&self, bytes: &[u8], error: ParseError, origin: Origin) {
        let headers = raw_headers(bytes);
        // The top Via as written: it may be as broken as the rest (SIP/7.0 in a 505 case).
        let Some(top) = headers
            .iter()
            .find(|(n, _)| *n == Name::Via)
            .and_then(|(_, v)| {
                crate::sip::syntax::split_list(v)
                    .first()
                    .map(|v| v.to_string())
            })
        else {
            tracing::debug!(error = %error, sip.remote = %origin.remote, "unparsable message dropped");
            return;
        };
        let text = String::from_utf8_lossy(bytes);
        if text.trim_start().starts_with("SIP/") || text.trim_start().starts_with("ACK ") {
            return;
        }
        let (status, reason) = match error {
            ParseError::Version => (505, "Version Not Supported".to_owned()),
            ParseError::UnsupportedScheme => (416, "Unsupported URI Scheme".to_owned()),
            other => (400, format!("Bad Request ({other})")),
        };
        let mut resp = Response {
            status,
            reason,
            headers: Default::default(),
            body: Vec::new(),
        };
        let top = match Via::parse(&top) {
            Some(mut via) => {
                via.stamp_source(origin.remote);
                via.to_string()
            }
            None => top,
        };
        resp.headers.push(Name::Via, top);
        for (name, value) in headers.into_iter().filter(|(n, _)| *n != Name::Via) {
            if name == Name::To && !value.contains("tag=") {
                resp.headers
                    .push(name, format!("{value};tag={}", random_tag()));
            } else {
                resp.headers.push(name, value);
            }
        }
        resp.headers.push(Name::Server, SERVER);
        self.send(origin, resp.to_bytes().into());
    }

    /// A response for a request whose headers did not all parse: echoes what is there.
    pub(super) fn bare_response(
        &self,
        req: &Request,
        top: &Via,
        origin: Origin,
        status: u16,
        reason: &str,
    ) -> Response {
        let mut resp = Response {
            status,
            reason: reason.to_owned(),
            headers: Default::default(),
            body: Vec::new(),
        };
        let mut top = top.clone();
        top.stamp_source(origin.remote);
        resp.headers.push(Name::Via, top.to_string());
        for name in [Name::From, Name::To, Name::CallId, Name::CSeq] {
            if let Some(v) = req.headers.get(&name) {
                resp.headers.push(name, v);
            }
        }
        resp.headers.push(Name::Server, SERVER);
        resp
    }
}
