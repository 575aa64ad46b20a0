//! The stateful proxy (RFC 3261 §16): takes a new INVITE, authenticates the caller,
//! decides where the call goes, and carries it out ([`fork`]: ringing every live
//! device of the target, relaying responses, cancelling the losers, falling back to
//! forwarding or voicemail), keeping the call record in step. Requests within the
//! dialog that results are the [`super::dialogs`] application's.

mod fork;

use super::authenticate::{AuthOutcome, DigestAuth};
use super::conference::Conference;
use super::dialogs::Dialogs;
use super::location;
use super::message::{Name, Request, Response};
use super::stack::transaction::TxKey;
use super::stack::transport::Origin;
use super::stack::{RequestCtx, SipStack};
use super::uri::Uri;
use super::voicemail::Voicemail;
use crate::domain::Pbx;
use crate::domain::{CallDirection, Disposition, HangupSide, RouteDecision, SipTransport, decide};
use crate::service::{Party, Services, SipAccount};
use crate::sync::MutexExt;
use fork::{CallRun, ForkOutcome};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The reason recorded on a call a conference room could not take.
const CONFERENCE_REFUSED: &str = "conference";

/// Messages to a running INVITE (from the caller's CANCEL).
#[derive(Debug)]
pub enum InviteSignal {
    Cancel,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    Extension {
        account: Arc<SipAccount>,
        pbx: Arc<Pbx>,
    },
    /// The trusted outbound gateway, calling into `pbx`.
    Gateway {
        pbx: Arc<Pbx>,
        number: String,
        name: Option<String>,
    },
}

impl Caller {
    fn pbx(&self) -> &Arc<Pbx> {
        match self {
            Caller::Extension { pbx, .. } | Caller::Gateway { pbx, .. } => pbx,
        }
    }
}

/// The proxy application: its running INVITEs (for their CANCELs), and what it hands
/// calls on to.
pub struct Proxy {
    stack: Arc<SipStack>,
    services: Arc<Services>,
    auth: Arc<DigestAuth>,
    /// Answered calls go to the dialogs application.
    dialogs: Arc<Dialogs>,
    /// Calls nobody takes may go to voicemail.
    voicemail: Arc<Voicemail>,
    /// Calls to conference extensions join their rooms.
    conference: Arc<Conference>,
    /// Running INVITEs, for their CANCELs.
    invites: Mutex<HashMap<TxKey, mpsc::Sender<InviteSignal>>>,
    /// Where calls to outside numbers go; INVITEs from its address are trusted.
    gateway: Option<Uri>,
}

impl Proxy {
    pub fn new(
        stack: Arc<SipStack>,
        services: Arc<Services>,
        auth: Arc<DigestAuth>,
        dialogs: Arc<Dialogs>,
        voicemail: Arc<Voicemail>,
        conference: Arc<Conference>,
        gateway: Option<Uri>,
    ) -> Self {
        Self {
            stack,
            services,
            auth,
            dialogs,
            voicemail,
            conference,
            invites: Default::default(),
            gateway,
        }
    }

    fn invites(&self) -> std::sync::MutexGuard<'_, HashMap<TxKey, mpsc::Sender<InviteSignal>>> {
        self.invites.lock_unpoisoned()
    }

    /// CANCEL of a pending INVITE: 200 for the CANCEL, and the INVITE's branches are
    /// cancelled (its 487 follows from the INVITE task).
    pub fn cancel(&self, req: &Request, ctx: &RequestCtx, origin: Origin) -> Response {
        let task = self
            .invites()
            .get(&self.stack.invite_key(req, ctx))
            .cloned();
        match task {
            Some(signals) => {
                let _ = signals.try_send(InviteSignal::Cancel);
                self.stack.response(req, ctx, origin, 200, "OK")
            }
            None => self
                .stack
                .response(req, ctx, origin, 481, "Call/Transaction Does Not Exist"),
        }
    }

    /// An INVITE without a To tag: a new call.
    pub async fn invite(
        self: &Arc<Self>,
        req: Request,
        ctx: RequestCtx,
        origin: Origin,
        key: TxKey,
    ) {
        // 100 Trying at once, so the caller stops retransmitting (§16.2).
        let trying = self.stack.response(&req, &ctx, origin, 100, "Trying");
        self.stack.finish(key, origin, trying);

        if let Some(resp) = self.stack.check_forwardable(&req, &ctx, origin) {
            return self.stack.finish(key, origin, resp);
        }
        if let Some(ct) = req.headers.get(&Name::ContentType) {
            let mime = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if mime != "application/sdp" && !mime.starts_with("multipart/") {
                let mut resp =
                    self.stack
                        .response(&req, &ctx, origin, 415, "Unsupported Media Type");
                resp.headers
                    .push(Name::Other("Accept".into()), "application/sdp");
                return self.stack.finish(key, origin, resp);
            }
        }
        let caller = match self.identify_caller(&req, &ctx, origin).await {
            Ok(c) => c,
            Err(resp) => return self.stack.finish(key, origin, *resp),
        };
        let (signals_tx, signals) = mpsc::channel(4);
        self.invites().insert(key, signals_tx);
        let response = self
            .route_call(&req, &ctx, origin, key, caller, signals)
            .await;
        self.invites().remove(&key);
        self.dialogs.forget_early(&ctx.call_id);
        if let Some(resp) = response {
            self.stack.finish(key, origin, resp);
        }
    }

    /// The gateway (trusted by address) or an authenticated device (407 otherwise).
    async fn identify_caller(
        &self,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
    ) -> Result<Caller, Box<Response>> {
        // The gateway is trusted by address: its IP, and over UDP its port too (so a
        // phone on the same host as the gateway is still asked for credentials).
        if let Some(gw) = self.gateway_addr().await
            && gw.ip() == origin.remote.ip()
            && (origin.transport != SipTransport::Udp || gw.port() == origin.remote.port())
        {
            let host = &req.uri.host;
            let pbx = location::pbx_for_host(
                &self.stack,
                &self.services,
                req,
                ctx,
                origin,
                host,
                (404, "Not Found"),
            )
            .await?;
            return Ok(Caller::Gateway {
                pbx,
                number: ctx.from.uri.user_unescaped().unwrap_or_default(),
                name: ctx.from.display.clone(),
            });
        }
        let pbx = location::pbx_for_host(
            &self.stack,
            &self.services,
            req,
            ctx,
            origin,
            &ctx.from.uri.host,
            (403, "Forbidden"),
        )
        .await?;
        match self
            .auth
            .authenticate(req, &pbx, &Name::ProxyAuthorization)
            .await
        {
            AuthOutcome::Ok(account) => Ok(Caller::Extension { account, pbx }),
            AuthOutcome::Challenge { stale } => Err(Box::new(
                self.auth.challenge(req, ctx, origin, &pbx, stale, true),
            )),
            AuthOutcome::Failure { user, reason } => {
                self.auth.auth_failed(origin, &pbx, &user, reason);
                Err(Box::new(
                    self.auth.challenge(req, ctx, origin, &pbx, false, true),
                ))
            }
            AuthOutcome::BadRequest(reason) => {
                Err(Box::new(self.stack.response(req, ctx, origin, 400, reason)))
            }
        }
    }

    /// Decides, records and carries out a call. Returns the final response for the
    /// caller, or `None` when one was already relayed.
    async fn route_call(
        self: &Arc<Self>,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        key: TxKey,
        caller: Caller,
        mut signals: mpsc::Receiver<InviteSignal>,
    ) -> Option<Response> {
        let pbx = caller.pbx().clone();
        let dialled = req.uri.user_unescaped().unwrap_or_default();
        let caller_party = match &caller {
            Caller::Extension { account, .. } => Party {
                extension_id: Some(account.extension_id.clone()),
                number: account.number.clone(),
                name: Some(account.name.clone()),
            },
            Caller::Gateway { number, name, .. } => Party {
                extension_id: None,
                number: number.clone(),
                name: name.clone(),
            },
        };
        let target = match self.services.call_target(&pbx.id, &dialled).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "call target lookup failed");
                return Some(
                    self.stack
                        .response(req, ctx, origin, 500, "Server Internal Error"),
                );
            }
        };
        let outside = target.is_none()
            && dialled.len() >= 7
            && dialled
                .trim_start_matches('+')
                .bytes()
                .all(|b| b.is_ascii_digit());
        if target.is_none() && !outside {
            return Some(self.stack.response(req, ctx, origin, 404, "Not Found"));
        }
        if outside && matches!(caller, Caller::Gateway { .. }) {
            return Some(self.stack.response(req, ctx, origin, 403, "Forbidden"));
        }
        let (direction, callee_party) = match &target {
            Some((ext, _)) => (
                if matches!(caller, Caller::Gateway { .. }) {
                    CallDirection::Inbound
                } else {
                    CallDirection::Internal
                },
                Party::extension(ext),
            ),
            None => (
                CallDirection::Outbound,
                Party {
                    extension_id: None,
                    number: dialled.clone(),
                    name: None,
                },
            ),
        };
        let call = match self
            .services
            .start_call(&pbx.id, &ctx.call_id, direction, caller_party, callee_party)
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "call record not stored");
                return Some(
                    self.stack
                        .response(req, ctx, origin, 500, "Server Internal Error"),
                );
            }
        };
        let mut run = CallRun {
            proxy: self.clone(),
            req,
            ctx,
            origin,
            key,
            caller: &caller,
            pbx: &pbx,
            call: call.clone(),
            forwarded: false,
        };
        let outcome = match target {
            None => {
                let Some(targets) = run.gateway_targets(&dialled, None).await else {
                    run.end(Disposition::Failed, HangupSide::System, Some("no-gateway"))
                        .await;
                    return Some(self.stack.warned(
                        req,
                        ctx,
                        origin,
                        403,
                        "Forbidden",
                        "No outbound gateway configured",
                    ));
                };
                run.fork(targets, None, &mut signals, None).await
            }
            Some((ext, t)) => match decide(&t) {
                RouteDecision::Conference => {
                    return match self
                        .conference
                        .join(req, ctx, origin, key, &ext, call.clone())
                        .await
                    {
                        Ok(()) => None,
                        Err(resp) => {
                            let disposition = if resp.status == 486 {
                                Disposition::Busy
                            } else {
                                Disposition::Failed
                            };
                            run.end(disposition, HangupSide::System, Some(CONFERENCE_REFUSED))
                                .await;
                            Some(resp)
                        }
                    };
                }
                RouteDecision::NotImplemented => {
                    run.end(
                        Disposition::Failed,
                        HangupSide::System,
                        Some("not-implemented"),
                    )
                    .await;
                    return Some(self.stack.warned(
                        req,
                        ctx,
                        origin,
                        501,
                        "Not Implemented",
                        &format!("{} extensions are not served yet", ext.kind.as_str()),
                    ));
                }
                RouteDecision::Direct(fallback) => {
                    return run.fallback(&ext, fallback, &mut signals).await;
                }
                RouteDecision::Ring { timeout_secs, then } => {
                    let targets = run.device_targets(&ext);
                    let outcome = run
                        .fork(
                            targets,
                            Some(Duration::from_secs(u64::from(timeout_secs))),
                            &mut signals,
                            None,
                        )
                        .await;
                    if let ForkOutcome::TimedOut = outcome {
                        return run.fallback(&ext, then, &mut signals).await;
                    }
                    outcome
                }
            },
        };
        run.conclude(outcome).await
    }

    /// Where the gateway is, if one is configured and its host resolves.
    async fn gateway_addr(&self) -> Option<std::net::SocketAddr> {
        let gw = self.gateway.as_ref()?;
        let host = gw.host.trim_start_matches('[').trim_end_matches(']');
        let port = gw.port.unwrap_or(5060);
        tokio::net::lookup_host((host, port)).await.ok()?.next()
    }
}
