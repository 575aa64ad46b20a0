//! The stateful proxy (RFC 3261 §16): authenticates callers, decides where a call goes,
//! forks an INVITE to every live device of the target, relays provisional and final
//! responses, cancels the losers, falls back to forwarding or voicemail, and keeps the
//! call record in step. In-dialog requests (BYE, re-INVITE, ACK for 2xx, …) follow the
//! dialog state kept in [`super::dialogs`].

use super::client::{ClientEvent, cancel_for};
use super::dialogs::{Dialog, Leg};
use super::headers::Via;
use super::message::{Name, Request, Response};
use super::registrar::AuthOutcome;
use super::transaction::TxKey;
use super::transport::Origin;
use super::uri::{NameAddr, Scheme, Uri};
use super::{RequestCtx, SipCore};
use crate::domain::Pbx;
use crate::domain::{
    CallDirection, Disposition, Extension, Fallback, HangupSide, RouteDecision, SipTransport,
    decide,
};
use crate::service::{Binding, CallHandle, Party, SipAccount};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

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

/// Where a branch goes.
#[derive(Debug, Clone)]
struct BranchTarget {
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

impl SipCore {
    /// A registered device: its contact as Request-URI; as destination its connection,
    /// or over UDP the address its registration came from when the contact names
    /// another (a phone behind NAT), else the contact's own address.
    pub(super) fn device_destination(&self, b: &Binding) -> Option<(Uri, Origin)> {
        let uri = Uri::parse(&b.device.contact).ok()?;
        let source_ip: std::net::IpAddr = b.device.source_ip.parse().ok()?;
        let contact_ip = uri
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .ok();
        let flow = b.flow.filter(|f| self.flows.is_open(*f));
        // Without NAT in between (the contact names the address the registration came
        // from), the contact's own port is where the phone listens; a connection that
        // closed is reopened there.
        let remote = match contact_ip {
            Some(ip) if ip == source_ip && flow.is_none() => {
                std::net::SocketAddr::new(ip, uri.port.unwrap_or(5060))
            }
            _ => std::net::SocketAddr::new(source_ip, b.device.source_port),
        };
        let dest = Origin {
            transport: b.device.transport,
            remote,
            flow,
        };
        if dest.transport.is_websocket() && dest.flow.is_none() {
            return None; // a browser phone is only reachable over its own connection
        }
        Some((uri, dest))
    }

    /// Where every live device of an extension is reached.
    pub(super) fn device_destinations(&self, extension_id: &str) -> Vec<(Uri, Origin)> {
        self.services
            .live_bindings(extension_id)
            .iter()
            .filter_map(|b| self.device_destination(b))
            .collect()
    }

    /// An INVITE without a To tag: a new call.
    pub(super) async fn invite(
        self: &Arc<Self>,
        req: Request,
        ctx: RequestCtx,
        origin: Origin,
        key: TxKey,
    ) {
        // 100 Trying at once, so the caller stops retransmitting (§16.2).
        let trying = self.response(&req, &ctx, origin, 100, "Trying");
        self.finish(key, origin, trying);

        if let Some(resp) = self.check_forwardable(&req, &ctx, origin) {
            return self.finish(key, origin, resp);
        }
        if let Some(ct) = req.headers.get(&Name::ContentType) {
            let mime = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if mime != "application/sdp" && !mime.starts_with("multipart/") {
                let mut resp = self.response(&req, &ctx, origin, 415, "Unsupported Media Type");
                resp.headers
                    .push(Name::Other("Accept".into()), "application/sdp");
                return self.finish(key, origin, resp);
            }
        }
        let caller = match self.identify_caller(&req, &ctx, origin).await {
            Ok(c) => c,
            Err(resp) => return self.finish(key, origin, *resp),
        };
        let (signals_tx, signals) = mpsc::channel(4);
        self.invites
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, signals_tx);
        let core = self.clone();
        let response = core
            .route_call(&req, &ctx, origin, key, caller, signals)
            .await;
        self.invites
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
        self.early.forget(&ctx.call_id);
        if let Some(resp) = response {
            self.finish(key, origin, resp);
        }
    }

    /// Max-Forwards and loops (§16.3): 483 at zero, 482 when our own Via for this very
    /// request is already in it.
    fn check_forwardable(
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
        let loop_mark = self.loop_mark(req, ctx);
        let ours = self.advertised();
        if ctx
            .vias
            .iter()
            .any(|v| v.sent_by() == ours && v.branch().is_some_and(|b| b.contains(&loop_mark)))
        {
            return Some(self.response(req, ctx, origin, 482, "Loop Detected"));
        }
        None
    }

    /// A hash of what identifies a request on its way (§16.6 step 8), put in our
    /// branches so the same request coming back is recognised.
    pub(super) fn loop_mark(&self, req: &Request, ctx: &RequestCtx) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        req.uri.aor().hash(&mut h);
        ctx.call_id.hash(&mut h);
        ctx.from.tag().unwrap_or_default().hash(&mut h);
        ctx.cseq.hash(&mut h);
        format!("{:08x}", h.finish() as u32)
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
            let pbx = self
                .pbx_for_host(req, ctx, origin, host, (404, "Not Found"))
                .await?;
            return Ok(Caller::Gateway {
                pbx,
                number: ctx.from.uri.user_unescaped().unwrap_or_default(),
                name: ctx.from.display.clone(),
            });
        }
        let pbx = self
            .pbx_for_host(req, ctx, origin, &ctx.from.uri.host, (403, "Forbidden"))
            .await?;
        match self
            .authenticate(req, &pbx, &Name::ProxyAuthorization)
            .await
        {
            AuthOutcome::Ok(account) => Ok(Caller::Extension { account, pbx }),
            AuthOutcome::Challenge { stale } => Err(Box::new(
                self.challenge(req, ctx, origin, &pbx, stale, true),
            )),
            AuthOutcome::Failure { user, reason } => {
                self.auth_failed(origin, &pbx, &user, reason);
                Err(Box::new(
                    self.challenge(req, ctx, origin, &pbx, false, true),
                ))
            }
            AuthOutcome::BadRequest(reason) => {
                Err(Box::new(self.response(req, ctx, origin, 400, reason)))
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
                return Some(self.response(req, ctx, origin, 500, "Server Internal Error"));
            }
        };
        let outside = target.is_none()
            && dialled.len() >= 7
            && dialled
                .trim_start_matches('+')
                .bytes()
                .all(|b| b.is_ascii_digit());
        if target.is_none() && !outside {
            return Some(self.response(req, ctx, origin, 404, "Not Found"));
        }
        if outside && matches!(caller, Caller::Gateway { .. }) {
            return Some(self.response(req, ctx, origin, 403, "Forbidden"));
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
                return Some(self.response(req, ctx, origin, 500, "Server Internal Error"));
            }
        };
        let mut run = CallRun {
            core: self.clone(),
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
                    return Some(self.warned(
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
                RouteDecision::NotImplemented => {
                    run.end(
                        Disposition::Failed,
                        HangupSide::System,
                        Some("not-implemented"),
                    )
                    .await;
                    return Some(self.warned(
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

    /// A response with a `Warning` saying why (RFC 3261 §20.43, code 399).
    pub(super) fn warned(
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

    /// Relays a response from downstream to where its request came from, without our
    /// Via (§16.7 step 9).
    pub(super) fn relay_response(&self, mut resp: Response, to: Origin) -> Arc<[u8]> {
        if let Some(i) = resp.headers.0.iter().position(|h| h.name == Name::Via) {
            let first = resp.headers.0[i].value.clone();
            let rest: Vec<&str> = super::uri::split_list(&first).into_iter().skip(1).collect();
            if rest.is_empty() {
                resp.headers.0.remove(i);
            } else {
                resp.headers.0[i].value = rest.join(", ");
            }
        }
        let bytes: Arc<[u8]> = resp.to_bytes().into();
        self.send(to, bytes.clone());
        bytes
    }

    /// Prepares `req` to go out to `uri` via `dest` (§16.6): Request-URI, Max-Forwards,
    /// Route (ours popped), our Via on top (the sender's stamped with where it came
    /// from), and returns the request with its branch.
    pub(super) fn forward_request(
        &self,
        req: &Request,
        from: Origin,
        uri: Uri,
        dest: Origin,
        loop_mark: &str,
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
        // Loose routing: a Route naming us is consumed here.
        let ours = self.advertised();
        if let Some(i) = out.headers.0.iter().position(|h| h.name == Name::Route) {
            let routes: Vec<String> = super::uri::split_list(&out.headers.0[i].value)
                .into_iter()
                .map(str::to_owned)
                .collect();
            let mine = routes.first().is_some_and(|r| {
                NameAddr::parse(r).is_ok_and(|na| {
                    let hp = match na.uri.port {
                        Some(p) => format!("{}:{p}", na.uri.host),
                        None => na.uri.host.clone(),
                    };
                    hp == ours || na.uri.host == ours.split(':').next().unwrap_or_default()
                })
            });
            if mine {
                if routes.len() == 1 {
                    out.headers.0.remove(i);
                } else {
                    out.headers.0[i].value = routes[1..].join(", ");
                }
            }
        }
        // Stamp the sender's Via with where the request really came from.
        if let Some(i) = out.headers.0.iter().position(|h| h.name == Name::Via) {
            let vias: Vec<&str> = super::uri::split_list(&out.headers.0[i].value);
            if let Some(mut top) = vias.first().and_then(|v| Via::parse(v)) {
                top.stamp_source(from.remote);
                let mut value = top.to_string();
                for v in vias.iter().skip(1) {
                    value.push_str(", ");
                    value.push_str(v);
                }
                out.headers.0[i].value = value;
            }
        }
        let branch = format!("z9hG4bK-{loop_mark}-{}", crate::ids::lower_alnum(12));
        let transport = super::via_transport(dest.transport);
        out.headers.0.insert(
            0,
            super::message::Header {
                name: Name::Via,
                value: format!("SIP/2.0/{transport} {ours};branch={branch};rport"),
            },
        );
        (out, branch)
    }

    /// Sends a request as a client transaction to `dest`.
    pub(super) fn start_client(
        self: &Arc<Self>,
        request: Request,
        branch: String,
        dest: Origin,
    ) -> mpsc::Receiver<ClientEvent> {
        let core = self.clone();
        let send: Arc<dyn Fn(Arc<[u8]>) + Send + Sync> =
            Arc::new(move |bytes| core.send_to(dest, bytes));
        self.clients
            .start(request, branch, dest.transport.is_reliable(), send)
    }

    /// Sends one request of ours and returns its final status (None: no answer).
    pub(super) async fn send_and_wait(
        self: &Arc<Self>,
        req: Request,
        branch: String,
        dest: Origin,
    ) -> Option<u16> {
        let mut events = self.start_client(req, branch, dest);
        while let Some(event) = events.recv().await {
            match event {
                ClientEvent::Response(r) if r.status >= 200 => return Some(r.status),
                ClientEvent::Response(_) => {}
                ClientEvent::Timeout => return None,
            }
        }
        None
    }

    /// Where the gateway is, if one is configured and its host resolves.
    pub(super) async fn gateway_addr(&self) -> Option<std::net::SocketAddr> {
        let gw = self.config.gateway.as_ref()?;
        let host = gw.host.trim_start_matches('[').trim_end_matches(']');
        let port = gw.port.unwrap_or(5060);
        tokio::net::lookup_host((host, port)).await.ok()?.next()
    }
}

/// How forking ended.
enum ForkOutcome {
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
struct CallRun<'a> {
    core: Arc<SipCore>,
    req: &'a Request,
    ctx: &'a RequestCtx,
    origin: Origin,
    key: TxKey,
    caller: &'a Caller,
    pbx: &'a Pbx,
    call: Arc<CallHandle>,
    forwarded: bool,
}

impl CallRun<'_> {
    async fn end(&self, disposition: Disposition, side: HangupSide, reason: Option<&str>) {
        if let Err(e) = self
            .core
            .services
            .end_call(&self.call, disposition, side, reason)
            .await
        {
            tracing::error!(error = %e, "call record not stored");
        }
    }

    fn device_targets(&self, ext: &Extension) -> Vec<BranchTarget> {
        self.core
            .services
            .live_bindings(&ext.id)
            .into_iter()
            .filter_map(|b| self.device_target(&b))
            .collect()
    }

    fn device_target(&self, b: &Binding) -> Option<BranchTarget> {
        let (uri, dest) = self.core.device_destination(b)?;
        Some(BranchTarget {
            uri,
            dest,
            device_id: Some(b.device.id.clone()),
        })
    }

    async fn gateway_targets(
        &self,
        number: &str,
        _diverted: Option<&str>,
    ) -> Option<Vec<BranchTarget>> {
        let gw = self.core.config.gateway.clone()?;
        let addr = self.core.gateway_addr().await?;
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
    fn decorate(&self, out: &mut Request, towards_gateway: bool, original: Option<(&str, u16)>) {
        for name in [
            "P-Asserted-Identity",
            "P-Preferred-Identity",
            "Remote-Party-ID",
        ] {
            out.headers
                .0
                .retain(|h| !h.name.as_str().eq_ignore_ascii_case(name));
        }
        out.headers.remove(&Name::ProxyAuthorization);
        if let Some((from, pai)) = self.identity(towards_gateway) {
            if let Some(h) = out.headers.0.iter_mut().find(|h| h.name == Name::From) {
                h.value = from;
            }
            out.headers
                .push(Name::Other("P-Asserted-Identity".into()), pai);
        }
        let rr = format!("<sip:{};lr>", self.core.advertised());
        let at = out
            .headers
            .0
            .iter()
            .position(|h| h.name == Name::RecordRoute)
            .unwrap_or(out.headers.0.len());
        out.headers.0.insert(
            at,
            super::message::Header {
                name: Name::RecordRoute,
                value: rr,
            },
        );
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
            drop(self.core.start_client(cancel, branch, b.dest));
        }
    }

    /// Rings every target at once until one answers, all fail, the ring timeout passes
    /// or the caller cancels.
    async fn fork(
        &mut self,
        targets: Vec<BranchTarget>,
        ring: Option<Duration>,
        signals: &mut mpsc::Receiver<InviteSignal>,
        original: Option<(&str, u16)>,
    ) -> ForkOutcome {
        if targets.is_empty() {
            return ForkOutcome::NoTargets;
        }
        let loop_mark = self.core.loop_mark(self.req, self.ctx);
        let towards_gateway = targets.iter().all(|t| t.device_id.is_none());
        let (events_tx, mut events) = mpsc::channel::<(usize, ClientEvent)>(64);
        let mut branches = Vec::with_capacity(targets.len());
        for (i, target) in targets.into_iter().enumerate() {
            let (mut out, branch) = self.core.forward_request(
                self.req,
                self.origin,
                target.uri,
                target.dest,
                &loop_mark,
            );
            self.decorate(&mut out, towards_gateway, original);
            let mut rx = self.core.start_client(out.clone(), branch, target.dest);
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
                                    self.core.early.note(&self.ctx.call_id, self.ctx.from.tag().unwrap_or_default(), self.origin, &tag, branches[i].dest);
                                }
                                let bytes = self.core.relay_response(resp, self.origin);
                                self.core.transactions.provisional(self.key, bytes);
                            }
                        }
                        ClientEvent::Response(resp) if resp.status < 300 => {
                            branches[i].done = true;
                            self.cancel_pending(&mut branches);
                            // The dialog exists before the caller can ACK the 2xx.
                            let dialog = self.dialog_for(&branches[i], &resp);
                            let status = resp.status;
                            let bytes = self.core.relay_response(resp, self.origin);
                            self.core.complete(self.key, self.origin, bytes, status, true);
                            if let Err(e) = self.core.services.answer_call(&self.call, branches[i].device_id.clone()).await {
                                tracing::error!(error = %e, "call record not stored");
                            }
                            if let Some(dialog) = dialog {
                                self.core.clone().supervise(dialog);
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
        self.core.dialogs.insert(dialog.clone());
        Some(dialog)
    }

    /// The final answer to the caller once forking is over.
    async fn conclude(&self, outcome: ForkOutcome) -> Option<Response> {
        match outcome {
            ForkOutcome::Answered => None,
            ForkOutcome::Failed(resp) => {
                let status = resp.status;
                let bytes = self.core.relay_response(resp, self.origin);
                self.core
                    .complete(self.key, self.origin, bytes, status, true);
                self.end(disposition_for(status), HangupSide::Callee, None)
                    .await;
                None
            }
            ForkOutcome::Cancelled => {
                self.end(Disposition::Cancelled, HangupSide::Caller, None)
                    .await;
                Some(
                    self.core
                        .response(self.req, self.ctx, self.origin, 487, "Request Terminated"),
                )
            }
            ForkOutcome::TimedOut => {
                self.end(
                    Disposition::NoAnswer,
                    HangupSide::System,
                    Some("ring-timeout"),
                )
                .await;
                Some(self.core.response(
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
                Some(self.core.response(
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
    async fn fallback(
        &mut self,
        ext: &Extension,
        fallback: Fallback,
        signals: &mut mpsc::Receiver<InviteSignal>,
    ) -> Option<Response> {
        match fallback {
            Fallback::Voicemail => {
                match self
                    .core
                    .answer_voicemail(
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
                    self.core
                        .response(self.req, self.ctx, self.origin, status, reason),
                )
            }
            Fallback::Forward(number) => {
                self.forwarded = true;
                let cause = if self.core.services.live_bindings(&ext.id).is_empty() {
                    480
                } else {
                    408
                };
                let original = ext.number.clone();
                let internal = self
                    .core
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
                    .core
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
