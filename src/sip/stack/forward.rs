//! The proxy's toolkit (RFC 3261 §16): a request prepared to go on to its next hop, a
//! response relayed back, and the mark by which a request that loops back is known.

use super::SipStack;
use super::request::{RequestCtx, via_transport};
use super::transport::Origin;
use crate::sip::headers::Via;
use crate::sip::message::{Name, Request, Response};
use crate::sip::uri::{NameAddr, Uri};
use std::sync::Arc;

impl SipStack {
    /// Max-Forwards and loops (§16.3): 483 at zero, 482 when our own Via for this very
    /// request is already in it.
    pub fn check_forwardable(
        &self,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
    ) -> Option<Response> {
        if req
            .headers
            .get(&Name::MaxForwards)
            .is_some_and(|mf| mf.trim() == "0")
        {
            return Some(self.response(req, ctx, origin, 483, "Too Many Hops"));
        }
        let loop_mark = loop_mark(req, ctx);
        if ctx.vias.iter().any(|v| {
            v.sent_by() == self.advertise && v.branch().is_some_and(|b| b.contains(&loop_mark))
        }) {
            return Some(self.response(req, ctx, origin, 482, "Loop Detected"));
        }
        None
    }

    /// Relays a response from downstream to where its request came from, without our
    /// Via (§16.7 step 9).
    pub fn relay_response(&self, mut resp: Response, to: Origin) -> Arc<[u8]> {
        resp.headers.pop_first_item(&Name::Via);
        let bytes: Arc<[u8]> = resp.to_bytes().into();
        self.send(to, bytes.clone());
        bytes
    }

    /// Prepares `req` to go out to `uri` via `dest` (§16.6): Request-URI, Max-Forwards,
    /// Route (ours popped), our Via on top (the sender's stamped with where it came
    /// from), and returns the request with its branch.
    pub fn forward_request(
        &self,
        req: &Request,
        ctx: &RequestCtx,
        from: Origin,
        uri: Uri,
        dest: Origin,
    ) -> (Request, String) {
        let mut out = req.clone();
        out.uri = uri;
        let hops = req
            .headers
            .get(&Name::MaxForwards)
            .and_then(|m| m.trim().parse::<u8>().ok())
            .unwrap_or(70);
        out.headers.remove(&Name::MaxForwards);
        out.headers
            .push(Name::MaxForwards, hops.saturating_sub(1).to_string());
        // Loose routing: the Routes naming us at the top are consumed here (two of
        // them when we record-routed twice, RFC 5658).
        let is_ours = |r: &str| NameAddr::parse(r).is_ok_and(|na| self.routes_to_us(&na.uri));
        while out.headers.first_item(&Name::Route).is_some_and(is_ours) {
            out.headers.pop_first_item(&Name::Route);
        }
        // Stamp the sender's Via with where the request really came from.
        if let Some(mut top) = out.headers.first_item(&Name::Via).and_then(Via::parse) {
            top.stamp_source(from.remote);
            out.headers.replace_first_item(&Name::Via, &top.to_string());
        }
        let branch = format!(
            "z9hG4bK-{}-{}",
            loop_mark(req, ctx),
            crate::ids::lower_alnum(12)
        );
        out.headers.prepend(
            Name::Via,
            format!(
                "SIP/2.0/{} {};branch={branch};rport",
                via_transport(dest.transport),
                self.advertise
            ),
        );
        (out, branch)
    }
}

/// A hash of what identifies a request on its way (§16.6 step 8), put in our branches
/// so the same request coming back is recognised.
fn loop_mark(req: &Request, ctx: &RequestCtx) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    req.uri.aor().hash(&mut h);
    ctx.call_id.hash(&mut h);
    ctx.from.tag().unwrap_or_default().hash(&mut h);
    ctx.cseq.hash(&mut h);
    format!("{:08x}", h.finish() as u32)
}
