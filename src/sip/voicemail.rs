//! Voicemail as a SIP user agent: answers the call with G.711 SDP, plays the greeting
//! and a beep, records the caller until BYE, the mailbox's maximum length, 10 s of
//! silence or `--rtp-timeout` (30 s) without any RTP, and deposits the message (one second or more).
//! When we end the recording the caller gets a BYE from us.

use super::message::{Method, Name, Request, Response};
use super::sdp::{self, OfferError};
use super::stack::transaction::TxKey;
use super::stack::transport::Origin;
use super::stack::{RequestCtx, SipStack};
use super::uas::UasCall;
use crate::domain::{Disposition, Extension, HangupSide};
use crate::media::ports::PortPool;
use crate::media::rtp::{Ended, Limits, Session};
use crate::service::{CallHandle, Services};
use crate::sync::MutexExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Recording stops after this much silence.
pub const SILENCE_LIMIT: Duration = Duration::from_secs(10);
/// Shorter messages are not kept (hang-ups after the beep).
pub const MIN_MESSAGE_SAMPLES: usize = 8000;

/// A call voicemail answered.
pub struct VoicemailCall {
    call: Arc<CallHandle>,
    uas: UasCall,
    /// The answer we gave, for re-INVITEs.
    answer: String,
    media: Arc<Session>,
}

/// The voicemail application: calls it answered, by SIP Call-ID.
pub struct Voicemail {
    stack: Arc<SipStack>,
    services: Arc<Services>,
    calls: Mutex<HashMap<String, Arc<VoicemailCall>>>,
    /// Ports for its RTP.
    media_ports: Arc<PortPool>,
    /// A call without any RTP for this long is ended.
    rtp_timeout: Duration,
}

impl Voicemail {
    pub fn new(
        stack: Arc<SipStack>,
        services: Arc<Services>,
        media_ports: Arc<PortPool>,
        rtp_timeout: Duration,
    ) -> Self {
        Self {
            stack,
            services,
            calls: Default::default(),
            media_ports,
            rtp_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<VoicemailCall>>> {
        self.calls.lock_unpoisoned()
    }

    /// Whether `call_id` is a call voicemail took.
    pub fn knows(&self, call_id: &str) -> bool {
        self.lock().contains_key(call_id)
    }

    /// Calls voicemail is taking right now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// RTP ports leased right now.
    pub fn ports_in_use(&self) -> usize {
        self.media_ports.in_use()
    }
}

impl Voicemail {
    /// Voicemail takes the call: a 200 with our SDP (the INVITE transaction completes
    /// with it) and a task that runs the session. Returns the failure response instead
    /// when the call cannot be answered (no usable offer, no free RTP port).
    pub async fn answer(
        self: &Arc<Self>,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        key: TxKey,
        ext: &Extension,
        call: Arc<CallHandle>,
    ) -> Result<(), Response> {
        // Voicemail is the UAS here: it supports no option tags a caller may require.
        if let Some(resp) = self.stack.unsupported(req, ctx, origin, &Name::Require) {
            return Err(resp);
        }
        let offer = match sdp::parse_offer(&req.body) {
            Ok(offer) => offer,
            Err(OfferError::NoCommonCodec) => {
                let mut resp = self
                    .stack
                    .response(req, ctx, origin, 488, "Not Acceptable Here");
                resp.headers.push(
                    Name::Warning,
                    "305 switchboard \"voicemail takes PCMU or PCMA\"",
                );
                return Err(resp);
            }
            Err(OfferError::Malformed(_)) if req.body.is_empty() => {
                return Err(self.stack.warned(
                    req,
                    ctx,
                    origin,
                    488,
                    "Not Acceptable Here",
                    "voicemail needs an SDP offer in the INVITE",
                ));
            }
            Err(OfferError::Malformed(why)) => {
                return Err(self
                    .stack
                    .warned(req, ctx, origin, 488, "Not Acceptable Here", why));
            }
        };
        let ip = self.stack.bound_addr().ip();
        let media = match self.media_ports.lease(ip).and_then(|lease| {
            let codec = offer.codec;
            Session::new(lease, codec, offer.remote)
        }) {
            Ok(media) => media,
            Err(e) => {
                tracing::warn!(error = %e, "no RTP port for voicemail");
                let mut resp = self
                    .stack
                    .response(req, ctx, origin, 503, "Service Unavailable");
                resp.headers.push(Name::Other("Retry-After".into()), "5");
                return Err(resp);
            }
        };
        let port = media.port();
        let session_id: u64 = rand::random::<u32>().into();
        let answer = sdp::answer(self.stack.media_ip(), port, &offer, session_id, session_id);

        if let Err(e) = self.services.answer_by_voicemail(&call).await {
            tracing::error!(error = %e, "call record not stored");
            return Err(self
                .stack
                .response(req, ctx, origin, 500, "Server Internal Error"));
        }
        let (uas, bytes) =
            UasCall::answer(&self.stack, req, ctx, origin, key, "voicemail", &answer);
        let vm = Arc::new(VoicemailCall {
            call,
            uas,
            answer,
            media: Arc::new(media),
        });
        self.lock()
            .insert(vm.uas.dialog.call_id.clone(), vm.clone());
        self.stack.send_to(origin, bytes.clone());
        tracing::info!(sip.call_id = %vm.uas.dialog.call_id, extension = %ext.number, rtp.port = port, "voicemail answered");

        let voicemail = self.clone();
        let ext = ext.clone();
        tokio::spawn(async move { voicemail.run(vm, ext, bytes).await });
        Ok(())
    }

    async fn run(self: Arc<Self>, vm: Arc<VoicemailCall>, ext: Extension, ok: Arc<[u8]>) {
        if !vm.uas.await_ack(&self.stack, ok).await {
            tracing::info!(sip.call_id = %vm.uas.dialog.call_id, "no ACK for voicemail's 200");
            vm.uas.bye(&self.stack).await;
            return self
                .close_voicemail(&vm, HangupSide::System, Some("no-ack"))
                .await;
        }
        let greeting = self.services.greeting_for(&ext).await;
        vm.media.play(&greeting, &vm.uas.hung_up).await;
        let limits = Limits {
            max_length: Duration::from_secs(u64::from(
                self.services.max_message_seconds(&ext).await,
            )),
            silence: SILENCE_LIMIT,
            no_media: self.rtp_timeout,
        };
        let recording = if vm.uas.hung_up.is_cancelled() {
            None
        } else {
            Some(vm.media.record(limits, &vm.uas.hung_up).await)
        };
        let (side, reason) = match recording.as_ref().map(|r| r.ended) {
            None | Some(Ended::Stopped) => (HangupSide::Caller, None),
            Some(Ended::MaxLength) => (HangupSide::System, Some("max-length")),
            Some(Ended::Silence) => (HangupSide::System, Some("silence")),
            Some(Ended::NoMedia) => (HangupSide::System, Some("no-media")),
        };
        if side == HangupSide::System {
            vm.uas.bye(&self.stack).await;
        }
        let snapshot = vm.call.snapshot().await;
        self.close_voicemail(&vm, side, reason).await;
        match recording {
            Some(r) if r.samples.len() >= MIN_MESSAGE_SAMPLES => {
                if let Err(e) = self
                    .services
                    .deposit(
                        &ext,
                        &snapshot.caller_number,
                        snapshot.caller_name.as_deref(),
                        r.samples,
                    )
                    .await
                {
                    tracing::error!(error = %e, "voicemail not stored");
                }
            }
            Some(r) => {
                tracing::info!(sip.call_id = %vm.uas.dialog.call_id, samples = r.samples.len(), "voicemail under a second dropped");
            }
            None => {}
        }
    }

    async fn close_voicemail(&self, vm: &VoicemailCall, side: HangupSide, reason: Option<&str>) {
        self.lock().remove(&vm.uas.dialog.call_id);
        if let Err(e) = self
            .services
            .end_call(&vm.call, Disposition::Voicemail, side, reason)
            .await
        {
            tracing::error!(error = %e, "call record not stored");
        }
    }

    /// A request within a voicemail call: ACK, BYE, re-INVITE and the harmless rest.
    pub fn request(&self, req: &Request, ctx: &RequestCtx, origin: Origin, key: Option<TxKey>) {
        let Some(vm) = self.lock().get(&ctx.call_id).cloned() else {
            return;
        };
        if vm.uas.refuse_stranger(&self.stack, req, ctx, origin, key) {
            return;
        }
        let Some(key) = key else {
            if req.method == Method::Ack {
                vm.uas.acknowledge();
            }
            return;
        };
        let resp = match req.method {
            Method::Bye => {
                vm.uas.hung_up.cancel();
                self.stack.response(req, ctx, origin, 200, "OK")
            }
            Method::Invite => {
                // A re-INVITE (hold, session refresh): same answer; a moved stream is
                // followed anyway as RTP latches to where the caller's packets come from.
                let mut resp = self.stack.response(req, ctx, origin, 200, "OK");
                resp.headers.push(
                    Name::Contact,
                    format!("<sip:voicemail@{}>", self.stack.advertised()),
                );
                resp.headers.push(Name::ContentType, "application/sdp");
                resp.body = vm.answer.clone().into_bytes();
                resp
            }
            Method::Options | Method::Info | Method::Update | Method::Notify => {
                self.stack.response(req, ctx, origin, 200, "OK")
            }
            _ => {
                let mut resp = self
                    .stack
                    .response(req, ctx, origin, 405, "Method Not Allowed");
                resp.headers.push(Name::Allow, super::dispatch::ALLOW);
                resp
            }
        };
        self.stack.finish(key, origin, resp);
    }
}
