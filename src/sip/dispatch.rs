//! The dispatcher: every message the stack passes up goes to exactly one application.
//! It is also where per-message work is spawned, under one cap.

use super::conference::Conference;
use super::dialogs::Dialogs;
use super::message::{Method, Name, Request};
use super::mwi::Mwi;
use super::proxy::Proxy;
use super::registrar::Registrar;
use super::stack::transaction::TxKey;
use super::stack::transport::{Flow, Origin, Sink};
use super::stack::{Incoming, Received, RequestCtx, SipStack};
use super::voicemail::Voicemail;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::Semaphore;

/// What we answer to OPTIONS and put in `Allow`.
pub const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, SUBSCRIBE, UPDATE, INFO, REFER, NOTIFY";

/// Messages being handled at once. Each holds a task (about 4 KiB, more for a ringing
/// INVITE, which keeps its task until the call is answered or fails), so this bounds
/// the memory a flood can take (~64 MiB) while leaving room for thousands of calls
/// ringing at once. Past it, a message is dropped as an overloaded network would drop
/// it: UDP peers retransmit, stream peers time out.
const MAX_MESSAGES_IN_FLIGHT: usize = 16_384;

/// The applications that hold dialogs: requests with a To tag go to one of them.
pub(super) struct Apps {
    pub dialogs: Arc<Dialogs>,
    pub mwi: Arc<Mwi>,
    pub voicemail: Arc<Voicemail>,
    pub conference: Arc<Conference>,
}

/// The SIP server as the rest of the program sees it: the stack with its applications
/// on top. A cheap handle to share.
pub struct Sip {
    stack: Arc<SipStack>,
    registrar: Registrar,
    proxy: Arc<Proxy>,
    dialogs: Arc<Dialogs>,
    mwi: Arc<Mwi>,
    voicemail: Arc<Voicemail>,
    conference: Arc<Conference>,
    permits: Arc<Semaphore>,
    /// Messages dropped because the cap was reached, not yet reported.
    dropped: AtomicU64,
    /// This handle, for the tasks it spawns.
    me: Weak<Sip>,
}

impl Sip {
    pub(super) fn new(
        stack: Arc<SipStack>,
        registrar: Registrar,
        proxy: Arc<Proxy>,
        apps: Apps,
    ) -> Arc<Sip> {
        Arc::new_cyclic(|me| Sip {
            stack,
            registrar,
            proxy,
            dialogs: apps.dialogs,
            mwi: apps.mwi,
            voicemail: apps.voicemail,
            conference: apps.conference,
            permits: Arc::new(Semaphore::new(MAX_MESSAGES_IN_FLIGHT)),
            dropped: AtomicU64::new(0),
            me: me.clone(),
        })
    }

    /// One message from the network, on the SIP runtime.
    async fn handle(self: &Arc<Self>, bytes: &[u8], origin: Origin) {
        match self.stack.receive(bytes, origin) {
            // Boxed: routing futures are several KiB, and every message's task would
            // otherwise be that large, REGISTERs included.
            Received::Request(incoming) => Box::pin(self.route(*incoming)).await,
            Received::StrayResponse(resp) => self.dialogs.stray_response(resp),
            Received::Done => {}
        }
    }

    async fn route(self: &Arc<Self>, incoming: Incoming) {
        let Incoming {
            req,
            ctx,
            origin,
            key,
        } = incoming;
        let Some(key) = key else {
            // An ACK for a 2xx: within a dialog, without a transaction.
            return self.in_dialog(req, ctx, origin, None).await;
        };
        let tagged = ctx.to.tag().is_some();
        let known_dialog =
            tagged && (self.dialogs.knows(&ctx.call_id) || self.answered_here(&ctx.call_id));
        match req.method {
            Method::Invite if !tagged => {
                // Proxy-Require is ours; Require is for whoever answers (RFC 3261 §16.3).
                if let Some(resp) = self
                    .stack
                    .unsupported(&req, &ctx, origin, &Name::ProxyRequire)
                {
                    return self.stack.finish(key, origin, resp);
                }
                self.proxy.invite(req, ctx, origin, key).await;
            }
            Method::Cancel => {
                let resp = self.proxy.cancel(&req, &ctx, origin);
                self.stack.finish(key, origin, resp);
            }
            // REGISTER and OPTIONS with a To tag of no dialog we know are still ours.
            _ if known_dialog
                || (tagged && !matches!(req.method, Method::Register | Method::Options)) =>
            {
                self.in_dialog(req, ctx, origin, Some(key)).await;
            }
            // Everything else is answered here, as a UAS.
            _ if let Some(resp) = self.stack.unsupported(&req, &ctx, origin, &Name::Require) => {
                self.stack.finish(key, origin, resp);
            }
            Method::Subscribe => self.mwi.subscribe(&req, &ctx, origin, key).await,
            Method::Register => {
                let resp = self.registrar.register(&req, &ctx, origin).await;
                self.stack.finish(key, origin, resp);
            }
            Method::Options => {
                let mut resp = self.stack.response(&req, &ctx, origin, 200, "OK");
                resp.headers.push(Name::Allow, ALLOW);
                resp.headers
                    .push(Name::Other("Accept".into()), "application/sdp");
                self.stack.finish(key, origin, resp);
            }
            Method::Other(_) => {
                let mut resp = self
                    .stack
                    .response(&req, &ctx, origin, 501, "Not Implemented");
                resp.headers.push(Name::Allow, ALLOW);
                self.stack.finish(key, origin, resp);
            }
            _ => {
                let mut resp = self
                    .stack
                    .response(&req, &ctx, origin, 405, "Method Not Allowed");
                resp.headers.push(Name::Allow, ALLOW);
                self.stack.finish(key, origin, resp);
            }
        }
    }

    /// Whether `call_id` is a dialog we are the user agent in (voicemail, a conference
    /// room, an MWI subscription).
    fn answered_here(&self, call_id: &str) -> bool {
        self.voicemail.knows(call_id) || self.conference.knows(call_id) || self.mwi.knows(call_id)
    }

    /// A request with a To tag: for a dialog of ours (voicemail, a conference, MWI),
    /// answered here (Require is then ours to check); else relayed by the dialogs
    /// application.
    async fn in_dialog(
        self: &Arc<Self>,
        req: Request,
        ctx: RequestCtx,
        origin: Origin,
        key: Option<TxKey>,
    ) {
        if !self.answered_here(&ctx.call_id) {
            return self.dialogs.relay(req, ctx, origin, key).await;
        }
        if let Some(key) = key
            && let Some(resp) = self.stack.unsupported(&req, &ctx, origin, &Name::Require)
        {
            return self.stack.finish(key, origin, resp);
        }
        if self.voicemail.knows(&ctx.call_id) {
            self.voicemail.request(&req, &ctx, origin, key);
        } else if self.conference.knows(&ctx.call_id) {
            self.conference.request(&req, &ctx, origin, key).await;
        } else {
            self.mwi.request(&req, &ctx, origin, key).await;
        }
    }

    /// Serves a SIP websocket (RFC 7118) whose `flow` was admitted before the upgrade.
    pub async fn serve_websocket(
        self: Arc<Self>,
        socket: axum::extract::ws::WebSocket,
        remote: SocketAddr,
        flow: Flow,
        secure: bool,
    ) {
        let shutdown = self.stack.shutdown().clone();
        super::stack::ws::serve(self, socket, remote, flow, secure, shutdown).await;
    }

    /// A flow for a websocket `remote` is opening, or `None` when the connection limits
    /// are reached (then the upgrade is refused).
    pub fn admit_websocket(&self, remote: SocketAddr) -> Option<Flow> {
        self.stack.admit_websocket(remote)
    }

    /// Connections open right now (TCP, TLS and websocket).
    pub fn open_flows(&self) -> usize {
        self.stack.open_flows()
    }

    /// Answered calls in progress.
    pub fn active_dialogs(&self) -> usize {
        self.dialogs.len()
    }

    /// Calls voicemail is taking right now.
    pub fn voicemail_calls(&self) -> usize {
        self.voicemail.len()
    }

    /// Callers in conference rooms right now.
    pub fn conference_participants(&self) -> usize {
        self.conference.len()
    }

    /// Live message-summary subscriptions.
    pub fn mwi_subscriptions(&self) -> usize {
        self.mwi.len()
    }

    /// RTP ports leased right now.
    pub fn rtp_ports_in_use(&self) -> usize {
        self.voicemail.ports_in_use()
    }

    /// Server transactions remembered right now.
    pub fn transaction_count(&self) -> usize {
        self.stack.transaction_count()
    }
}

impl Sink for Sip {
    /// Handles the message on the SIP runtime, whichever thread it arrived on (SIP over
    /// websocket arrives on the HTTP server's), within the cap on messages in flight.
    fn deliver(&self, bytes: Vec<u8>, origin: Origin) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => {
                self.stack.runtime().spawn(async move {
                    me.handle(&bytes, origin).await;
                    drop(permit);
                });
            }
            Err(_) => {
                // One warning per 1,000 dropped, so a flood does not flood the log too.
                if self
                    .dropped
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(1000)
                {
                    tracing::warn!(
                        in_flight = MAX_MESSAGES_IN_FLIGHT,
                        sip.remote = %origin.remote,
                        "SIP overloaded: messages dropped"
                    );
                }
            }
        }
    }
}
