//! One call being carried out: ringing every target at once, relaying their
//! responses, cancelling the losers, and what happens when nobody answers (forwarding,
//! voicemail, a final failure), with the call record kept in step.

use super::{Caller, InviteSignal, Proxy};
use crate::domain::Pbx;
use crate::domain::{Disposition, Extension, Fallback, HangupSide, SipTransport};
use crate::service::{Binding, CallHandle, Party};
use crate::sip::dialogs::{Dialog, Leg};
use crate::sip::headers::Via;
use crate::sip::location;
use crate::sip::message::{Name, Request, Response};
use crate::sip::stack::RequestCtx;
use crate::sip::stack::client::{ClientEvent, cancel_for};
use crate::sip::stack::transaction::TxKey;
use crate::sip::stack::transport::Origin;
use crate::sip::uri::{NameAddr, Scheme, Uri};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where a branch goes.
#[derive(Debug, Clone)]
pub(super) struct BranchTarget {
    uri: Uri,
    dest: Origin,
    /// The device ringing, for "answered by".
    device_id: Option<String>,
}

struct Branch {
    request: Request,
    dest: Origin,
    device_id: Option<String>,
    done: bool,
}

/// The best final response of those received (RFC 3261 §16.7 step 6).
fn better(current: Option<&Response>, candidate: &Response) -> bool {
    let rank = |s: u16| -> u32 {
        match s {
            600..=699 => 0,
            // 401/407 would need merging challenges; a device's challenge is not the
            // caller's business, so they rank as ordinary failures.
            486 => 1,
            480 => 3,
            408 => 5,
            400..=499 => 2,
            500..=599 => 4,
            _ => 6,
        }
    };
    match current {
        None => true,
        Some(c) => rank(candidate.status) < rank(c.status),
    }
}

fn disposition_for(status: u16) -> Disposition {
    match status {
        486 | 600 | 603 => Disposition::Busy,
        408 | 480 => Disposition::NoAnswer,
        487 => Disposition::Cancelled,
        _ => Disposition::Failed,
    }
}

/// How forking ended.
pub(super) enum ForkOutcome {
    /// A 2xx was relayed; the dialog is up.
    Answered,
    /// Every branch failed; the best final response.
    Failed(Response),
    /// The ring timeout passed without an answer (branches cancelled).
    TimedOut,
    /// The caller cancelled.
    Cancelled,
    /// Nowhere to ring.
    NoTargets,
}

/// One call being routed: what the INVITE task carries around.
pub(super) struct CallRun<'a> {
    pub(super) proxy: Arc<Proxy>,
    pub(super) req: &'a Request,
    pub(super) ctx: &'a RequestCtx,
    pub(super) origin: Origin,
    pub(super) key: TxKey,
    pub(super) caller: &'a Caller,
    pub(super) pbx: &'a Pbx,
    pub(super) call: Arc<CallHandle>,
    pub(super) forwarded: bool,
}

impl CallRun<'_> {
    pub(super) async fn end(
        &self,
        disposition: Disposition,
        side: HangupSide,
        reason: Option<&str>,
    ) {
        if let Err(e) = self
            .proxy
            .services
            .end_call(&self.call, disposition, side, reason)
            .await
        {
            tracing::error!(error = %e, "call record not stored");
        }
    }

    pub(super) fn device_targets(&self, ext: &Extension) -> Vec<BranchTarget> {
        self.proxy
            .services
            .live_bindings(&ext.id)
            .into_iter()
            .filter_map(|b| self.device_target(&b))
            .collect()
    }

    fn device_target(&self, b: &Binding) -> Option<BranchTarget> {
        let (uri, dest) = location::device_destination(&self.proxy.stack, b)?;
        Some(BranchTarget {
            uri,
            dest,
            device_id: Some(b.device.id.clone()),
        })
    }

    pub(super) async fn gateway_targets(
        &self,
        number: &str,
        _diverted: Option<&str>,
    ) -> Option<Vec<BranchTarget>> {
        let gw = self.proxy.gateway.clone()?;
        let addr = self.proxy.gateway_addr().await?;
        let transport = match gw.transport_param().as_deref() {
            Some("tcp") => SipTransport::Tcp,
            _ => SipTransport::Udp,
        };
        let uri = Uri {
            scheme: Scheme::Sip,
            user: Some(number.to_owned()),
            password: None,
            host: gw.host.clone(),
            port: gw.port,
            params: Vec::new(),
            headers: None,
        };
        Some(vec![BranchTarget {
            uri,
            dest: Origin {
                transport,
                remote: addr,
                flow: None,
            },
            device_id: None,
        }])
    }

    /// Caller ID as the callee sees it (§ caller ID in the product): an extension's name
    /// and number inside, its outside caller ID towards the gateway; never what the
    /// phone made up. Returns the rewritten From and a P-Asserted-Identity.
    fn identity(&self, towards_gateway: bool) -> Option<(String, String)> {
        let Caller::Extension { account, pbx } = self.caller else {
            return None;
        };
        let tag = self.ctx.from.tag().unwrap_or_default().to_owned();
        let (name, number) = if towards_gateway {
            // Outside caller ID: the extension's own, else the PBX's, else the number.
            let name = account
                .caller_id_name
                .clone()
                .or_else(|| pbx.default_caller_id_name.clone())
                .unwrap_or_else(|| account.name.clone());
            let number = account
                .caller_id_number
                .clone()
                .or_else(|| pbx.default_caller_id_number.clone())
                .unwrap_or_else(|| account.number.clone());
            (name, number)
        } else {
            (account.name.clone(), account.number.clone())
        };
        let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
        let domain = &pbx.sip_domain;
        Some((
            format!("\"{quoted}\" <sip:{number}@{domain}>;tag={tag}"),
            format!("\"{quoted}\" <sip:{number}@{domain}>"),
        ))
    }
}

impl CallRun<'_> {
    /// Headers of a forwarded INVITE: caller ID, our Record-Route, and where the call has
    /// been when it was forwarded; identity headers a phone sent are dropped.
    fn decorate(
        &self,
        out: &mut Request,
        towards: SipTransport,
        towards_gateway: bool,
        original: Option<(&str, u16)>,
    ) {
        for name in [
            "P-Asserted-Identity",
            "P-Preferred-Identity",
            "Remote-Party-ID",
        ] {
            out.headers
                .retain(|h| !h.name.as_str().eq_ignore_ascii_case(name));
        }
        out.headers.remove(&Name::ProxyAuthorization);
        if let Some((from, pai)) = self.identity(towards_gateway) {
            out.headers.set(Name::From, from);
            out.headers
                .push(Name::Other("P-Asserted-Identity".into()), pai);
        }
        // RFC 5658: when the two legs reach us over different transports, each side
        // gets its own entry (the callee's on top), so both route back over theirs.
        let callee_side = self.proxy.stack.record_route(towards);
        let caller_side = self.proxy.stack.record_route(self.origin.transport);
        let mut entries = vec![callee_side.clone()];
        if caller_side != callee_side {
            entries.push(caller_side);
        }
        out.headers.insert_above(&Name::RecordRoute, entries);
        if let Some((number, cause)) = original {
            let domain = &self.pbx.sip_domain;
            out.headers.push(
                Name::Other("History-Info".into()),
                format!(
                    "<sip:{number}@{domain}?Reason=SIP%3Bcause%3D{cause}>;index=1, <{}>;index=1.1;mp=1",
                    out.uri
                ),
            );
            if towards_gateway {
                let reason = if cause == 408 {
                    "no-answer"
                } else {
                    "unavailable"
                };
                out.headers.push(
                    Name::Other("Diversion".into()),
                    format!("<sip:{number}@{domain}>;reason={reason};counter=1"),
                );
            }
        }
    }

    fn cancel_pending(&self, branches: &mut [Branch]) {
        for b in branches.iter_mut().filter(|b| !b.done) {
            let cancel = cancel_for(&b.request);
            let branch = b
                .request
                .headers
                .get(&Name::Via)
                .and_then(Via::parse)
                .and_then(|v| v.branch().map(str::to_owned))
                .unwrap_or_default();
            // Its own transaction; its 200 tells us nothing we need.
            drop(self.proxy.stack.start_client(cancel, branch, b.dest));
        }
    }

    /// Rings every target at once until one answers, all fail, the ring timeout passes
    /// or the caller cancels.
    pub(super) async fn fork(
        &mut self,
        targets: Vec<BranchTarget>,
        ring: Option<Duration>,
        signals: &mut mpsc::Receiver<InviteSignal>,
        original: Option<(&str, u16)>,
    ) -> ForkOutcome {
        if targets.is_empty() {
            return ForkOutcome::NoTargets;
        }
        let towards_gateway = targets.iter().all(|t| t.device_id.is_none());
        let (events_tx, mut events) = mpsc::channel::<(usize, ClientEvent)>(64);
        let mut branches = Vec::with_capacity(targets.len());
        for (i, target) in targets.into_iter().enumerate() {
            let (mut out, branch) = self.proxy.stack.forward_request(
                self.req,
                self.ctx,
                self.origin,
                target.uri,
                target.dest,
            );
            self.decorate(&mut out, target.dest.transport, towards_gateway, original);
            let mut rx = self
                .proxy
                .stack
                .start_client(out.clone(), branch, target.dest);
            let tx = events_tx.clone();
            tokio::spawn(async move {
                while let Some(ev) = rx.recv().await {
                    if tx.send((i, ev)).await.is_err() {
                        break;
                    }
                }
            });
            branches.push(Branch {
                request: out,
                dest: target.dest,
                device_id: target.device_id,
                done: false,
            });
        }
        drop(events_tx);
        let deadline = ring.map(|d| tokio::time::Instant::now() + d);
        let (mut best, mut timed_out, mut cancelled) = (None::<Response>, false, false);
        loop {
            let waiting_for_timeout = deadline.is_some() && !timed_out && !cancelled;
            tokio::select! {
                ev = events.recv() => {
                    let Some((i, ev)) = ev else { break };
                    match ev {
                        ClientEvent::Response(resp) if resp.status < 200 => {
                            if resp.status > 100 && !timed_out && !cancelled {
                                if let Some(tag) = resp.headers.get(&Name::To).and_then(|t| NameAddr::parse(t).ok()).and_then(|na| na.tag().map(str::to_owned)) {
                                    self.proxy.dialogs.note_early(&self.ctx.call_id, self.ctx.from.tag().unwrap_or_default(), self.origin, &tag, branches[i].dest);
                                }
                                let bytes = self.proxy.stack.relay_response(resp, self.origin);
                                self.proxy.stack.provisional(self.key, bytes);
                            }
                        }
                        ClientEvent::Response(resp) if resp.status < 300 => {
                            branches[i].done = true;
                            self.cancel_pending(&mut branches);
                            // The dialog exists before the caller can ACK the 2xx.
                            let dialog = self.dialog_for(&branches[i], &resp);
                            let status = resp.status;
                            let bytes = self.proxy.stack.relay_response(resp, self.origin);
                            self.proxy.stack.complete(self.key, self.origin, bytes, status, true);
                            if let Err(e) = self.proxy.services.answer_call(&self.call, branches[i].device_id.clone()).await {
                                tracing::error!(error = %e, "call record not stored");
                            }
                            if let Some(dialog) = dialog {
                                self.proxy.dialogs.supervise(dialog);
                            }
                            return ForkOutcome::Answered;
                        }
                        ClientEvent::Response(resp) => {
                            branches[i].done = true;
                            let six = resp.status >= 600;
                            if better(best.as_ref(), &resp) {
                                best = Some(resp);
                            }
                            if six {
                                self.cancel_pending(&mut branches);
                                break;
                            }
                        }
                        ClientEvent::Timeout => branches[i].done = true,
                    }
                    if branches.iter().all(|b| b.done) {
                        break;
                    }
                }
                () = async {
                    if let Some(d) = deadline { tokio::time::sleep_until(d).await }
                }, if waiting_for_timeout => {
                    timed_out = true;
                    self.cancel_pending(&mut branches);
                }
                signal = signals.recv(), if !cancelled => {
                    if let Some(InviteSignal::Cancel) = signal {
                        cancelled = true;
                        self.cancel_pending(&mut branches);
                    }
                }
            }
        }
        if cancelled {
            ForkOutcome::Cancelled
        } else if timed_out {
            ForkOutcome::TimedOut
        } else {
            match best {
                Some(resp) => ForkOutcome::Failed(resp),
                None => ForkOutcome::NoTargets,
            }
        }
    }

    /// The first 2xx: the dialog to remember (registered at once), when both sides
    /// gave a contact.
    fn dialog_for(&self, branch: &Branch, resp: &Response) -> Option<Arc<Dialog>> {
        let contact_of =
            |raw: Option<&str>| raw.and_then(|c| NameAddr::parse(c).ok()).map(|na| na.uri);
        let callee_tag = resp
            .headers
            .get(&Name::To)
            .and_then(|t| NameAddr::parse(t).ok())
            .and_then(|na| na.tag().map(str::to_owned))
            .unwrap_or_default();
        let (Some(caller_contact), Some(callee_contact)) = (
            contact_of(self.req.headers.get(&Name::Contact)),
            contact_of(resp.headers.get(&Name::Contact)),
        ) else {
            tracing::warn!(sip.call_id = %self.ctx.call_id, "answered without contacts; dialog not tracked");
            return None;
        };
        let dialog = Arc::new(Dialog::new(
            self.call.clone(),
            self.ctx.call_id.clone(),
            Leg::new(
                self.origin,
                self.ctx.from.tag().unwrap_or_default(),
                caller_contact,
                self.ctx.cseq,
            ),
            Leg::new(branch.dest, &callee_tag, callee_contact, 0),
            branch
                .request
                .headers
                .get(&Name::From)
                .unwrap_or_default()
                .to_owned(),
            format!(
                "{};tag={callee_tag}",
                branch.request.headers.get(&Name::To).unwrap_or_default()
            ),
            self.forwarded,
        ));
        self.proxy.dialogs.insert(dialog.clone());
        Some(dialog)
    }

    /// The final answer to the caller once forking is over.
    pub(super) async fn conclude(&self, outcome: ForkOutcome) -> Option<Response> {
        match outcome {
            ForkOutcome::Answered => None,
            ForkOutcome::Failed(resp) => {
                let status = resp.status;
                let bytes = self.proxy.stack.relay_response(resp, self.origin);
                self.proxy
                    .stack
                    .complete(self.key, self.origin, bytes, status, true);
                self.end(disposition_for(status), HangupSide::Callee, None)
                    .await;
                None
            }
            ForkOutcome::Cancelled => {
                self.end(Disposition::Cancelled, HangupSide::Caller, None)
                    .await;
                Some(self.proxy.stack.response(
                    self.req,
                    self.ctx,
                    self.origin,
                    487,
                    "Request Terminated",
                ))
            }
            ForkOutcome::TimedOut => {
                self.end(
                    Disposition::NoAnswer,
                    HangupSide::System,
                    Some("ring-timeout"),
                )
                .await;
                Some(self.proxy.stack.response(
                    self.req,
                    self.ctx,
                    self.origin,
                    480,
                    "Temporarily Unavailable",
                ))
            }
            ForkOutcome::NoTargets => {
                self.end(Disposition::Failed, HangupSide::System, Some("unreachable"))
                    .await;
                Some(self.proxy.stack.response(
                    self.req,
                    self.ctx,
                    self.origin,
                    480,
                    "Temporarily Unavailable",
                ))
            }
        }
    }

    /// Where a call goes when no device takes it.
    pub(super) async fn fallback(
        &mut self,
        ext: &Extension,
        fallback: Fallback,
        signals: &mut mpsc::Receiver<InviteSignal>,
    ) -> Option<Response> {
        match fallback {
            Fallback::Voicemail => {
                match self
                    .proxy
                    .voicemail
                    .answer(
                        self.req,
                        self.ctx,
                        self.origin,
                        self.key,
                        ext,
                        self.call.clone(),
                    )
                    .await
                {
                    Ok(()) => None,
                    Err(resp) => {
                        self.end(Disposition::Failed, HangupSide::System, Some("voicemail"))
                            .await;
                        Some(resp)
                    }
                }
            }
            Fallback::Reject(status, reason) => {
                let disposition = if status == 486 {
                    Disposition::Busy
                } else {
                    Disposition::NoAnswer
                };
                self.end(disposition, HangupSide::System, None).await;
                Some(
                    self.proxy
                        .stack
                        .response(self.req, self.ctx, self.origin, status, reason),
                )
            }
            Fallback::Forward(number) => {
                self.forwarded = true;
                let cause = if self.proxy.services.live_bindings(&ext.id).is_empty() {
                    480
                } else {
                    408
                };
                let original = ext.number.clone();
                let internal = self
                    .proxy
                    .services
                    .call_target(&self.pbx.id, &number)
                    .await
                    .ok()
                    .flatten();
                let (targets, ring, party) = match &internal {
                    Some((next, t)) => (
                        self.device_targets(next),
                        Some(Duration::from_secs(u64::from(t.ring_timeout_secs))),
                        Some(Party::extension(next)),
                    ),
                    None => (
                        self.gateway_targets(&number, Some(&original))
                            .await
                            .unwrap_or_default(),
                        None,
                        None,
                    ),
                };
                if let Err(e) = self
                    .proxy
                    .services
                    .forward_call(&self.call, &number, party)
                    .await
                {
                    tracing::error!(error = %e, "call record not stored");
                }
                let outcome = self
                    .fork(targets, ring, signals, Some((&original, cause)))
                    .await;
                self.conclude(outcome).await
            }
        }
    }
}
