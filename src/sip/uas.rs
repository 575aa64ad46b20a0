//! A dialog in which we are the user agent (voicemail answering a call, MWI accepting a
//! subscription): what our own requests in it need (RFC 3261 §12.1.1, §12.2.1.1).

use super::message::{Method, Name, Request};
use super::stack::transport::Origin;
use super::stack::{OwnDialog, RequestCtx, SipStack};
use super::uri::{NameAddr, Uri};
use std::sync::atomic::{AtomicU32, Ordering};

pub struct UasDialog {
    pub call_id: String,
    /// The peer's connection or address.
    pub origin: Origin,
    /// The peer's Contact: the Request-URI of our requests.
    remote_target: Uri,
    /// Record-Route of the request that made the dialog, in order.
    route_set: Vec<String>,
    /// Our To (with our tag) and the peer's From, as in that request.
    local: String,
    remote: String,
    /// The peer's tag: requests without it are not in this dialog.
    pub remote_tag: String,
    /// Our CSeq in the dialog.
    cseq: AtomicU32,
}

impl UasDialog {
    /// The dialog a request opens, answered with a final response whose To is
    /// `local_to` (carrying our tag).
    pub fn new(req: &Request, ctx: &RequestCtx, origin: Origin, local_to: &str) -> Self {
        Self {
            call_id: ctx.call_id.clone(),
            origin,
            remote_target: req
                .headers
                .get(&Name::Contact)
                .and_then(|c| NameAddr::parse(c).ok())
                .map(|na| na.uri)
                .unwrap_or_else(|| ctx.from.uri.clone()),
            route_set: req
                .headers
                .all(&Name::RecordRoute)
                .flat_map(super::syntax::split_list)
                .map(str::to_owned)
                .collect(),
            local: local_to.to_owned(),
            remote: req.headers.get(&Name::From).unwrap_or_default().to_owned(),
            remote_tag: ctx.from.tag().unwrap_or_default().to_owned(),
            cseq: AtomicU32::new(0),
        }
    }

    /// Whether a request comes from the peer of this dialog.
    pub fn is_from_peer(&self, ctx: &RequestCtx) -> bool {
        ctx.from.tag() == Some(self.remote_tag.as_str())
    }
}

impl UasDialog {
    /// Our next request in the dialog, to the peer's contact.
    pub fn request(&self, stack: &SipStack, method: Method) -> (Request, String) {
        let cseq = self.cseq.fetch_add(1, Ordering::Relaxed) + 1;
        let (mut req, branch) = stack.own_request(
            method,
            self.remote_target.clone(),
            OwnDialog {
                from: &self.local,
                to: &self.remote,
                call_id: &self.call_id,
                cseq,
            },
            self.origin.transport,
        );
        for route in &self.route_set {
            req.headers.push(Name::Route, route.clone());
        }
        (req, branch)
    }
}
