//! Answered calls as SIP dialogs: in-dialog requests (BYE, re-INVITE, UPDATE, INFO,
//! REFER, ACK for 2xx) are relayed between the two legs, and every dialog is watched:
//! an OPTIONS probe finds legs that vanished, and a maximum duration ends calls nobody
//! hung up, so no extension stays busy forever.

use super::headers::Via;
use super::message::{Method, Name, Request};
use super::stack::client::ClientEvent;
use super::stack::transaction::TxKey;
use super::stack::transport::Origin;
use super::stack::{OwnDialog, RequestCtx, SipStack};
use super::uri::Uri;
use crate::domain::{Disposition, HangupSide};
use crate::service::{CallHandle, Services};
use crate::sync::MutexExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One side of a dialog.
pub struct Leg {
    pub origin: Origin,
    pub tag: String,
    pub contact: Uri,
    /// The highest CSeq this side has sent in the dialog.
    pub cseq: AtomicU32,
}

impl Leg {
    pub fn new(origin: Origin, tag: &str, contact: Uri, cseq: u32) -> Self {
        Self {
            origin,
            tag: tag.to_owned(),
            contact,
            cseq: AtomicU32::new(cseq),
        }
    }
}

pub struct Dialog {
    pub call: Arc<CallHandle>,
    pub call_id: String,
    pub caller: Leg,
    pub callee: Leg,
    /// From and To as the callee saw them in the INVITE (To with its tag).
    pub from_header: String,
    pub to_header: String,
    pub forwarded: bool,
    pub ended: AtomicBool,
    ended_signal: tokio::sync::Notify,
}

impl Dialog {
    pub fn new(
        call: Arc<CallHandle>,
        call_id: String,
        caller: Leg,
        callee: Leg,
        from_header: String,
        to_header: String,
        forwarded: bool,
    ) -> Self {
        Self {
            call,
            call_id,
            caller,
            callee,
            from_header,
            to_header,
            forwarded,
            ended: AtomicBool::new(false),
            ended_signal: tokio::sync::Notify::new(),
        }
    }

    fn disposition(&self) -> Disposition {
        if self.forwarded {
            Disposition::Forwarded
        } else {
            Disposition::Answered
        }
    }
}

/// The dialogs application: answered calls by SIP Call-ID, and ringing calls' early
/// dialogs.
pub struct Dialogs {
    stack: Arc<SipStack>,
    services: Arc<Services>,
    by_call_id: Mutex<HashMap<String, Arc<Dialog>>>,
    early: EarlyDialogs,
    /// Calls longer than this are ended by us (nobody is on a call for four hours).
    max_call_duration: Duration,
    /// How often both legs of a call are probed with OPTIONS.
    probe_interval: Duration,
}

impl Dialogs {
    pub fn new(
        stack: Arc<SipStack>,
        services: Arc<Services>,
        max_call_duration: Duration,
        probe_interval: Duration,
    ) -> Self {
        Self {
            stack,
            services,
            by_call_id: Default::default(),
            early: Default::default(),
            max_call_duration,
            probe_interval,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Dialog>>> {
        self.by_call_id.lock_unpoisoned()
    }

    /// Remembers an answered call's dialog (before its 2xx is relayed, so the ACK
    /// finds it); [`Dialogs::supervise`] then watches it until it ends.
    pub fn insert(&self, dialog: Arc<Dialog>) {
        self.lock().insert(dialog.call_id.clone(), dialog);
    }

    /// Whether `call_id` is an answered call we relay.
    pub fn knows(&self, call_id: &str) -> bool {
        self.lock().contains_key(call_id)
    }

    fn get(&self, call_id: &str) -> Option<Arc<Dialog>> {
        self.lock().get(call_id).cloned()
    }

    fn remove(&self, call_id: &str) {
        self.lock().remove(call_id);
    }

    /// Answered calls in progress.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Records a callee's early dialog (a provisional response with a To tag).
    pub fn note_early(
        &self,
        call_id: &str,
        caller_tag: &str,
        caller: Origin,
        callee_tag: &str,
        callee: Origin,
    ) {
        self.early
            .note(call_id, caller_tag, caller, callee_tag, callee);
    }

    /// Forgets a call's early dialogs once its INVITE has its final answer.
    pub fn forget_early(&self, call_id: &str) {
        self.early.forget(call_id);
    }
}

/// One ringing call's early dialogs (RFC 3261 §12.1): the caller, and each callee
/// that answered provisionally with a tag.
struct EarlyCall {
    caller_tag: String,
    caller: Origin,
    callees: Vec<(String, Origin)>,
}

/// Calls still ringing, by Call-ID, so that requests within an early dialog (PRACK for
/// a reliable provisional, UPDATE) are relayed before the answer.
#[derive(Default)]
struct EarlyDialogs {
    by_call_id: Mutex<HashMap<String, EarlyCall>>,
}

impl EarlyDialogs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, EarlyCall>> {
        self.by_call_id.lock_unpoisoned()
    }

    /// Records a callee's early dialog (a provisional response with a To tag).
    fn note(
        &self,
        call_id: &str,
        caller_tag: &str,
        caller: Origin,
        callee_tag: &str,
        callee: Origin,
    ) {
        let mut calls = self.lock();
        let call = calls
            .entry(call_id.to_owned())
            .or_insert_with(|| EarlyCall {
                caller_tag: caller_tag.to_owned(),
                caller,
                callees: Vec::new(),
            });
        if !call.callees.iter().any(|(tag, _)| tag == callee_tag) {
            call.callees.push((callee_tag.to_owned(), callee));
        }
    }

    /// Forgets a call's early dialogs once its INVITE has its final answer.
    fn forget(&self, call_id: &str) {
        self.lock().remove(call_id);
    }

    /// Where a request within an early dialog goes: from the caller to the callee its
    /// To tag names, or from a callee to the caller.
    fn route(&self, call_id: &str, from_tag: &str, to_tag: &str) -> Option<Origin> {
        let calls = self.lock();
        let call = calls.get(call_id)?;
        let callee = |tag: &str| call.callees.iter().find(|(t, _)| t == tag).map(|c| c.1);
        if from_tag == call.caller_tag {
            callee(to_tag)
        } else if to_tag == call.caller_tag {
            callee(from_tag).map(|_| call.caller)
        } else {
            None
        }
    }
}

impl Dialogs {
    /// A request with a To tag for a call we relay: on to the other leg of its dialog
    /// (answered, or still early), or 481 when there is none.
    pub async fn relay(
        self: &Arc<Self>,
        req: Request,
        ctx: RequestCtx,
        origin: Origin,
        key: Option<TxKey>,
    ) {
        // Proxy-Require is ours to check; Require is the other leg's (RFC 3261 §16.3).
        if let Some(key) = key
            && let Some(resp) = self
                .stack
                .unsupported(&req, &ctx, origin, &Name::ProxyRequire)
        {
            return self.stack.finish(key, origin, resp);
        }
        let from_tag = ctx.from.tag().unwrap_or_default();
        let to_tag = ctx.to.tag().unwrap_or_default();
        let dialog = self.get(&ctx.call_id);
        let route = match &dialog {
            Some(dialog) if from_tag == dialog.caller.tag => {
                dialog.caller.cseq.fetch_max(ctx.cseq, Ordering::Relaxed);
                Some((dialog.callee.origin, HangupSide::Caller))
            }
            Some(dialog) if from_tag == dialog.callee.tag => {
                dialog.callee.cseq.fetch_max(ctx.cseq, Ordering::Relaxed);
                Some((dialog.caller.origin, HangupSide::Callee))
            }
            Some(_) => None,
            None => self
                .early
                .route(&ctx.call_id, from_tag, to_tag)
                .map(|dest| (dest, HangupSide::Caller)),
        };
        let Some((dest, side)) = route else {
            if let Some(key) = key {
                let resp =
                    self.stack
                        .response(&req, &ctx, origin, 481, "Call/Transaction Does Not Exist");
                self.stack.finish(key, origin, resp);
            }
            return;
        };
        let (out, branch) = self
            .stack
            .forward_request(&req, &ctx, origin, req.uri.clone(), dest);
        let Some(key) = key else {
            // ACK for a 2xx: end to end, no response, no transaction.
            self.stack.send_to(dest, out.to_bytes().into());
            return;
        };
        let is_bye = req.method == Method::Bye;
        let mut events = self.stack.start_client(out, branch, dest);
        let final_response = loop {
            match events.recv().await {
                Some(ClientEvent::Response(resp)) if resp.status < 200 => {
                    let bytes = self.stack.relay_response(resp, origin);
                    self.stack.provisional(key, bytes);
                }
                Some(ClientEvent::Response(resp)) => break Some(resp),
                Some(ClientEvent::Timeout) | None => break None,
            }
        };
        match final_response {
            Some(resp) => {
                let status = resp.status;
                let bytes = self.stack.relay_response(resp, origin);
                self.stack
                    .complete(key, origin, bytes, status, req.method == Method::Invite);
            }
            None => {
                let resp = self
                    .stack
                    .response(&req, &ctx, origin, 408, "Request Timeout");
                self.stack.finish(key, origin, resp);
            }
        }
        if is_bye && let Some(dialog) = dialog {
            self.close_dialog(&dialog, side, None).await;
        }
    }

    /// Ends the call record of a dialog and forgets it (once).
    async fn close_dialog(&self, dialog: &Dialog, side: HangupSide, reason: Option<&str>) {
        if dialog.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        self.remove(&dialog.call_id);
        dialog.ended_signal.notify_waiters();
        if let Err(e) = self
            .services
            .end_call(&dialog.call, dialog.disposition(), side, reason)
            .await
        {
            tracing::error!(error = %e, "call record not stored");
        }
    }

    /// A request of our own within a dialog, towards the callee (`to_callee`) or the
    /// caller, with the next CSeq of the side it appears to come from.
    fn in_dialog_request(
        &self,
        dialog: &Dialog,
        to_callee: bool,
        method: Method,
    ) -> (Request, String, Origin) {
        let (target, from, to, seq) = if to_callee {
            (
                &dialog.callee,
                dialog.from_header.clone(),
                dialog.to_header.clone(),
                &dialog.caller.cseq,
            )
        } else {
            (
                &dialog.caller,
                dialog.to_header.clone(),
                dialog.from_header.clone(),
                &dialog.callee.cseq,
            )
        };
        let cseq = seq.fetch_add(1, Ordering::Relaxed) + 1;
        let (req, branch) = self.stack.own_request(
            method,
            target.contact.clone(),
            OwnDialog {
                from: &from,
                to: &to,
                call_id: &dialog.call_id,
                cseq,
            },
            target.origin.transport,
        );
        (req, branch, target.origin)
    }

    /// Sends our own in-dialog request and returns its final status (None: no answer).
    async fn probe(
        self: &Arc<Self>,
        dialog: &Dialog,
        to_callee: bool,
        method: Method,
    ) -> Option<u16> {
        let (req, branch, dest) = self.in_dialog_request(dialog, to_callee, method);
        self.stack.send_and_wait(req, branch, dest).await
    }

    /// Watches a dialog until it ends: OPTIONS probes on both legs, and a maximum
    /// duration. A leg that answers 481 or 408 (or not at all) is gone: the call is
    /// ended and the other leg gets a BYE.
    pub fn supervise(self: &Arc<Self>, dialog: Arc<Dialog>) {
        let dialogs = self.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + dialogs.max_call_duration;
            let mut probes = tokio::time::interval_at(
                tokio::time::Instant::now() + dialogs.probe_interval,
                dialogs.probe_interval,
            );
            loop {
                if dialog.ended.load(Ordering::Acquire) {
                    return;
                }
                tokio::select! {
                    () = dialog.ended_signal.notified() => return,
                    () = tokio::time::sleep_until(deadline) => {
                        tracing::info!(sip.call_id = %dialog.call_id, "call reached its maximum duration");
                        dialogs.hang_up(&dialog, true, true, "max-duration").await;
                        return;
                    }
                    _ = probes.tick() => {
                        for to_callee in [true, false] {
                            let status = dialogs.probe(&dialog, to_callee, Method::Options).await;
                            if dialog.ended.load(Ordering::Acquire) {
                                return;
                            }
                            if matches!(status, None | Some(408 | 481)) {
                                tracing::info!(sip.call_id = %dialog.call_id, to_callee, ?status, "call leg gone");
                                dialogs.hang_up(&dialog, !to_callee, to_callee, "probe-failed").await;
                                return;
                            }
                        }
                    }
                }
            }
        });
    }

    /// Ends a call from our side: BYE to the legs named, then the record.
    async fn hang_up(
        self: &Arc<Self>,
        dialog: &Dialog,
        bye_callee: bool,
        bye_caller: bool,
        reason: &str,
    ) {
        if dialog.ended.load(Ordering::Acquire) {
            return;
        }
        let (a, b) = tokio::join!(
            async {
                if bye_callee {
                    self.probe(dialog, true, Method::Bye).await;
                }
            },
            async {
                if bye_caller {
                    self.probe(dialog, false, Method::Bye).await;
                }
            }
        );
        let _ = (a, b);
        self.close_dialog(dialog, HangupSide::System, Some(reason))
            .await;
    }

    /// A response no client transaction claimed: a retransmitted 2xx of an answered
    /// INVITE goes on to the caller; anything else is dropped.
    pub fn stray_response(&self, resp: super::message::Response) {
        let Some(call_id) = resp.headers.get(&Name::CallId) else {
            return;
        };
        let is_invite_2xx = (200..300).contains(&resp.status)
            && resp
                .headers
                .get(&Name::CSeq)
                .and_then(super::headers::parse_cseq)
                .is_some_and(|(_, m)| m == Method::Invite);
        let ours = resp
            .headers
            .get(&Name::Via)
            .and_then(|v| {
                super::syntax::split_list(v)
                    .first()
                    .and_then(|v| Via::parse(v))
            })
            .is_some_and(|v| v.sent_by() == self.stack.advertised());
        if !is_invite_2xx || !ours {
            return;
        }
        if let Some(dialog) = self.get(call_id) {
            self.stack.relay_response(resp, dialog.caller.origin);
        }
    }
}
