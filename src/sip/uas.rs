//! Where we are the user agent: a dialog we are in (voicemail or a conference answering
//! a call, MWI accepting a subscription) and what our own requests in it need (RFC 3261
//! §12.1.1, §12.2.1.1); and a call we answered, with the retransmission of our 2xx
//! until its ACK (§13.3.1.4).

use super::message::{Method, Name, Request, Response};
use super::stack::transaction::{T1, T2, TxKey};
use super::stack::transport::Origin;
use super::stack::{OwnDialog, RequestCtx, SipStack, via_transport};
use super::uri::{NameAddr, Uri};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long we wait for the ACK of our 200 before giving up on the call (64·T1).
const ACK_TIMEOUT: Duration = Duration::from_secs(32);

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

/// A call we answered: its dialog, whether our 200 was acknowledged, and whether the
/// caller hung up.
pub struct UasCall {
    pub dialog: UasDialog,
    acked: AtomicBool,
    ack_signal: tokio::sync::Notify,
    /// The caller hung up (or we did).
    pub hung_up: CancellationToken,
}

impl UasCall {
    /// Answers `req` (an INVITE) with a 200 carrying `sdp` and our Contact for
    /// `contact_user` and completes its transaction; returns the call with the 200's
    /// bytes. The caller sends them once the call can be found by its Call-ID (its ACK
    /// may come back at once), and resends them until the ACK with
    /// [`UasCall::await_ack`].
    pub fn answer(
        stack: &Arc<SipStack>,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        key: TxKey,
        contact_user: &str,
        sdp: &str,
    ) -> (UasCall, Arc<[u8]>) {
        let mut ok = stack.response(req, ctx, origin, 200, "OK");
        let local = ok.headers.get(&Name::To).unwrap_or_default().to_owned();
        ok.headers.push(
            Name::Contact,
            format!(
                "<sip:{contact_user}@{};transport={}>",
                stack.advertised(),
                via_transport(origin.transport).to_ascii_lowercase()
            ),
        );
        ok.headers.push(Name::Allow, super::dispatch::ALLOW);
        ok.headers.push(Name::ContentType, "application/sdp");
        ok.body = sdp.as_bytes().to_vec();
        // Retransmitted INVITEs get this 200 again; our own retransmissions are
        // `await_ack`'s.
        let bytes: Arc<[u8]> = ok.to_bytes().into();
        stack.complete(key, origin, bytes.clone(), 200, true);
        let call = UasCall {
            dialog: UasDialog::new(req, ctx, origin, &local),
            acked: AtomicBool::new(false),
            ack_signal: tokio::sync::Notify::new(),
            hung_up: CancellationToken::new(),
        };
        (call, bytes)
    }

    /// The caller's ACK arrived.
    pub fn acknowledge(&self) {
        self.acked.store(true, Ordering::Release);
        self.ack_signal.notify_waiters();
    }

    /// Sends the 200 again (over UDP, T1 doubling up to T2) until its ACK arrives;
    /// false when it never does (or the caller hung up first).
    pub async fn await_ack(&self, stack: &SipStack, ok: Arc<[u8]>) -> bool {
        let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
        let reliable = self.dialog.origin.transport.is_reliable();
        let mut interval = T1;
        loop {
            if self.acked.load(Ordering::Acquire) {
                return true;
            }
            let wait = if reliable { ACK_TIMEOUT } else { interval };
            tokio::select! {
                () = self.ack_signal.notified() => {}
                () = self.hung_up.cancelled() => return self.acked.load(Ordering::Acquire),
                () = tokio::time::sleep(wait) => {
                    if tokio::time::Instant::now() >= deadline {
                        return self.acked.load(Ordering::Acquire);
                    }
                    if !reliable {
                        stack.send(self.dialog.origin, ok.clone());
                        interval = (interval * 2).min(T2);
                    }
                }
            }
        }
    }

    /// Hangs up on the caller (BYE in the dialog), waiting for its answer; nothing when
    /// the caller hung up first.
    pub async fn bye(&self, stack: &Arc<SipStack>) {
        if self.hung_up.is_cancelled() {
            return;
        }
        self.hung_up.cancel();
        let (req, branch) = self.dialog.request(stack, Method::Bye);
        let _ = stack.send_and_wait(req, branch, self.dialog.origin).await;
    }

    /// A 481 when `ctx` is not from this call's peer (then nothing else is done).
    pub fn refuse_stranger(
        &self,
        stack: &SipStack,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        key: Option<TxKey>,
    ) -> bool {
        if self.dialog.is_from_peer(ctx) {
            return false;
        }
        if let Some(key) = key {
            let resp: Response =
                stack.response(req, ctx, origin, 481, "Call/Transaction Does Not Exist");
            stack.finish(key, origin, resp);
        }
        true
    }
}
