//! SIP: transports, message parsing, server transactions, digest authentication and
//! the registrar. Only this module knows SIP syntax; the rest of the program sees
//! service calls.

mod auth;
mod client;
mod dialogs;
mod guard;
mod headers;
pub mod message;
mod mwi;
#[cfg(test)]
mod oracle_tests;
mod proxy;
mod registrar;
mod sdp;
mod transaction;
pub mod transport;
mod uas;
pub mod uri;
mod voicemail;
pub mod ws;

pub use auth::NONCE_LIFETIME_SECS;
pub use registrar::MIN_EXPIRES;

use crate::domain::SipTransport;
use crate::service::Services;
use headers::Via;
use message::{Message, Method, Name, ParseError, Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use transaction::{Seen, ServerTransactions, TxKey};
use transport::{Flows, Origin, Sink};
use uri::NameAddr;

pub const SERVER: &str = concat!("Switchboard/", env!("CARGO_PKG_VERSION"));
const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, SUBSCRIBE, UPDATE, INFO, REFER, NOTIFY";

/// The mandatory headers of a request, parsed once (RFC 3261 §8.1.1).
pub struct RequestCtx {
    pub vias: Vec<Via>,
    pub from: NameAddr,
    pub to: NameAddr,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: Method,
}

impl RequestCtx {
    fn parse(req: &Request) -> Result<RequestCtx, &'static str> {
        let vias: Vec<Via> = req
            .headers
            .all(&Name::Via)
            .map(Via::parse)
            .collect::<Option<_>>()
            .ok_or("Bad Via")?;
        if vias.is_empty() {
            return Err("Missing Via");
        }
        let one = |name: &Name, missing: &'static str| -> Result<String, &'static str> {
            match req.headers.count(name) {
                0 => Err(missing),
                1 => Ok(req.headers.get(name).unwrap_or_default().to_owned()),
                _ => Err("Duplicate header"),
            }
        };
        let from = NameAddr::parse(&one(&Name::From, "Missing From")?).map_err(|_| "Bad From")?;
        let to = NameAddr::parse(&one(&Name::To, "Missing To")?).map_err(|_| "Bad To")?;
        let call_id = one(&Name::CallId, "Missing Call-ID")?;
        if call_id.is_empty() || call_id.contains(char::is_whitespace) {
            return Err("Bad Call-ID");
        }
        let (cseq, cseq_method) =
            headers::parse_cseq(&one(&Name::CSeq, "Missing CSeq")?).ok_or("Bad CSeq")?;
        if cseq_method != req.method {
            return Err("CSeq method does not match");
        }
        if req.headers.count(&Name::MaxForwards) > 1 {
            return Err("Duplicate header");
        }
        if let Some(mf) = req.headers.get(&Name::MaxForwards)
            && mf.parse::<u8>().is_err()
        {
            return Err("Bad Max-Forwards");
        }
        Ok(RequestCtx {
            vias,
            from,
            to,
            call_id,
            cseq,
            cseq_method,
        })
    }
}

/// The dialog identifiers of a request we originate.
pub(crate) struct OwnDialog<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
}

/// SIP settings.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// UDP and TCP listen address (the same port).
    pub addr: SocketAddr,
    /// Digest algorithms offered, most preferred first.
    pub digest: Vec<crate::auth::digest::Algorithm>,
    /// Shortest registration accepted (seconds); shorter ones get 423.
    pub min_expires: u32,
    /// Seconds a digest nonce stays fresh.
    pub nonce_ttl: u64,
    /// Where calls to outside numbers go; INVITEs from its address are trusted.
    pub gateway: Option<uri::Uri>,
    /// Calls longer than this are ended by us (nobody is on a call for four hours).
    pub max_call_duration: std::time::Duration,
    /// How often both legs of a call are probed with OPTIONS.
    pub probe_interval: std::time::Duration,
    /// The address put in our Via and Record-Route; default: the bound one (or this
    /// host's primary address when bound to all interfaces).
    pub advertise: Option<String>,
    /// Ports for voicemail RTP.
    pub rtp_ports: Arc<crate::media::ports::PortPool>,
    /// A voicemail call without any RTP for this long is ended.
    pub rtp_timeout: std::time::Duration,
    /// Caps on the connections phones open, and the time to finish a message.
    pub stream_limits: transport::StreamLimits,
}

/// Parses `MD5,SHA-256` (order of preference).
pub fn parse_digest_list(raw: &str) -> Result<Vec<crate::auth::digest::Algorithm>, String> {
    let list: Vec<_> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            auth::algorithm_of(Some(s)).ok_or_else(|| format!("unknown digest algorithm {s:?}"))
        })
        .collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err("at least one digest algorithm is needed".into());
    }
    Ok(list)
}

/// The SIP side of the server: one per process, shared by every transport task.
pub struct SipCore {
    services: Arc<Services>,
    config: SipConfig,
    /// `host:port` in our Via and Record-Route.
    advertise: String,
    /// This machine's name (a SIP domain that means "this server").
    hostname: String,
    udp: Arc<tokio::net::UdpSocket>,
    flows: Arc<Flows>,
    /// Connections we opened, by peer address.
    outbound: std::sync::Mutex<std::collections::HashMap<SocketAddr, transport::FlowId>>,
    transactions: Arc<ServerTransactions>,
    clients: Arc<client::ClientTransactions>,
    /// Running INVITEs, for their CANCELs.
    invites: std::sync::Mutex<
        std::collections::HashMap<TxKey, tokio::sync::mpsc::Sender<proxy::InviteSignal>>,
    >,
    dialogs: dialogs::Dialogs,
    /// Ringing calls' early dialogs, for PRACK and UPDATE before the answer.
    early: dialogs::EarlyDialogs,
    voicemail: voicemail::VoicemailCalls,
    mwi: mwi::Mwi,
    media_ports: Arc<crate::media::ports::PortPool>,
    /// The address our SDP names for RTP.
    media_ip: std::net::IpAddr,
    nonces: auth::NonceBook,
    guard: guard::Guard,
    shutdown: tokio_util::sync::CancellationToken,
    /// The SIP runtime (the one [`start`] ran on).
    runtime: tokio::runtime::Handle,
}

/// Addresses the SIP listeners are bound to.
pub struct SipListeners {
    pub core: Arc<SipCore>,
    pub addr: SocketAddr,
}

/// Binds UDP and TCP on `addr` (the same port; with port 0, one that is free for both)
/// and serves until `shutdown`.
pub async fn start(
    services: Arc<Services>,
    config: SipConfig,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<SipListeners> {
    let addr = config.addr;
    let mut attempts = 0;
    let (udp, tcp) = loop {
        let udp = transport::bind_udp(addr)?;
        let bound = udp.local_addr()?;
        match tokio::net::TcpListener::bind(bound).await {
            Ok(tcp) => break (udp, tcp),
            Err(e) if addr.port() == 0 && attempts < 20 => {
                attempts += 1;
                tracing::debug!(error = %e, "TCP port taken; trying another");
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "cannot listen for SIP over TCP on {bound}: {e}"
                ));
            }
        }
    };
    let bound = udp.local_addr()?;
    let advertise = config.advertise.clone().unwrap_or_else(|| {
        let host = if bound.ip().is_unspecified() {
            crate::config::primary_ip()
        } else {
            bound.ip().to_string()
        };
        format!("{host}:{}", bound.port())
    });
    let media_ip = advertise
        .rsplit_once(':')
        .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|host| host.parse().ok())
        .filter(|ip: &std::net::IpAddr| !ip.is_unspecified())
        .unwrap_or_else(|| {
            crate::config::primary_ip()
                .parse()
                .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into())
        });
    let core = Arc::new(SipCore {
        services,
        voicemail: Default::default(),
        mwi: Default::default(),
        media_ports: config.rtp_ports.clone(),
        media_ip,
        config: config.clone(),
        advertise,
        hostname: crate::config::hostname(),
        outbound: Default::default(),
        clients: Default::default(),
        invites: Default::default(),
        dialogs: Default::default(),
        early: Default::default(),
        shutdown: shutdown.clone(),
        udp: Arc::new(udp),
        flows: Arc::new(Flows::new(config.stream_limits)),
        transactions: Default::default(),
        nonces: auth::NonceBook::new(rand::random(), config.nonce_ttl),
        guard: guard::Guard::default(),
        runtime: tokio::runtime::Handle::current(),
    });
    for _ in 0..2 {
        tokio::spawn(transport::run_udp(
            core.udp.clone(),
            core.clone(),
            shutdown.clone(),
        ));
    }
    tokio::spawn(transport::run_tcp(
        tcp,
        core.flows.clone(),
        core.clone(),
        shutdown.clone(),
    ));
    let listener = core.clone();
    let mut events = core
        .services
        .subscribe_events(None, |e| matches!(e, crate::events::Event::Voicemail(_)));
    let stop = shutdown.clone();
    tokio::spawn(async move {
        loop {
            let envelope = tokio::select! {
                received = events.receiver.recv() => received,
                () = stop.cancelled() => return,
            };
            match envelope {
                Ok(envelope) => {
                    if let crate::events::Event::Voicemail(change) = &envelope.event {
                        listener.on_voicemail_change(change).await;
                    }
                }
                Err(crate::events::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "MWI fell behind the event bus");
                }
                Err(crate::events::RecvError::Closed) => return,
            }
        }
    });
    let housekeeping = core.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    housekeeping.transactions.sweep();
                    housekeeping.guard.prune();
                }
                () = shutdown.cancelled() => return,
            }
        }
    });
    tracing::info!(sip.addr = %bound, "SIP listening on UDP and TCP");
    Ok(SipListeners { core, addr: bound })
}

impl Sink for SipCore {
    /// Handles the message on the SIP runtime, whichever thread it arrived on (SIP over
    /// websocket arrives on the HTTP server's).
    fn deliver(self: &Arc<Self>, bytes: Vec<u8>, origin: Origin) {
        let core = self.clone();
        self.runtime
            .spawn(async move { core.handle(&bytes, origin).await });
    }
}

/// Raw `Name: value` lines of a message that did not parse, to answer it with a 400.
fn raw_headers(bytes: &[u8]) -> Vec<(Name, String)> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (Name::parse(n.trim()), v.trim().to_owned()))
        .filter(|(n, _)| {
            matches!(
                n,
                Name::Via | Name::From | Name::To | Name::CallId | Name::CSeq
            )
        })
        .collect()
}

fn random_tag() -> String {
    crate::ids::lower_alnum(10)
}

/// A transport as Via spells it.
pub(crate) fn via_transport(transport: SipTransport) -> &'static str {
    match transport {
        SipTransport::Udp => "UDP",
        SipTransport::Tcp => "TCP",
        SipTransport::Tls => "TLS",
        SipTransport::Ws => "WS",
        SipTransport::Wss => "WSS",
    }
}

impl SipCore {
    /// Handles one message from the network. Never panics on input: anything that does
    /// not parse gets a 400 when it names a Via to answer to, else is dropped.
    pub async fn handle(self: &Arc<Self>, bytes: &[u8], origin: Origin) {
        if self.guard.is_banned(origin.remote.ip()) {
            return;
        }
        let req = match Message::parse(bytes) {
            Ok(Message::Request(req)) => req,
            Ok(Message::Response(resp)) => return self.on_response(resp),
            Err(e) => return self.reject_unparsable(bytes, e, origin).await,
        };
        if let Some(ua) = req.headers.get(&Name::UserAgent)
            && guard::is_scanner(ua)
        {
            tracing::debug!(sip.remote = %origin.remote, "scanner dropped");
            return;
        }
        let ctx = match RequestCtx::parse(&req) {
            Ok(ctx) => ctx,
            Err(reason) => {
                // Without a usable Via there is nowhere to send an answer.
                if let Some(top) = req.headers.get(&Name::Via).and_then(Via::parse)
                    && req.method != Method::Ack
                {
                    let resp = self.bare_response(&req, &top, origin, 400, reason);
                    self.send(origin, resp.to_bytes().into());
                }
                return;
            }
        };
        let key = self.transactions.key(&req, &ctx.vias[0]);
        if req.method == Method::Ack {
            // An ACK to one of our non-2xx finals ends that INVITE transaction; an ACK
            // for a 2xx belongs to a dialog and goes on to the callee.
            if !self.transactions.acknowledge(key) && ctx.to.tag().is_some() {
                Box::pin(self.in_dialog(req, ctx, origin, None)).await;
            }
            return;
        }
        match self.transactions.receive(key) {
            Seen::New => {}
            Seen::Again(Some(bytes)) => return self.send(origin, bytes),
            Seen::Again(None) => return,
        }
        // Require is for the UAS, Proxy-Require for us as a proxy (RFC 3261 §8.2.2.3,
        // §16.3 step 5): each path checks the one that applies to it.
        let in_dialog = ctx.to.tag().is_some()
            && (self.dialogs.get(&ctx.call_id).is_some()
                || self.voicemail.get(&ctx.call_id).is_some()
                || self.mwi.get(&ctx.call_id).is_some());
        match req.method {
            // The INVITE, SUBSCRIBE and in-dialog paths are boxed: their futures are
            // several KiB, and every message's task would otherwise be that large (6.8 KiB
            // measured), REGISTERs included.
            Method::Invite if ctx.to.tag().is_none() => {
                if let Some(resp) = self.unsupported(&req, &ctx, origin, &Name::ProxyRequire) {
                    return self.finish(key, origin, resp);
                }
                Box::pin(self.invite(req, ctx, origin, key)).await;
            }
            Method::Cancel => {
                let resp = self.cancel(&req, &ctx, origin);
                self.finish(key, origin, resp);
            }
            _ if in_dialog || (ctx.to.tag().is_some() && !is_options_or_register(&req)) => {
                Box::pin(self.in_dialog(req, ctx, origin, Some(key))).await;
            }
            // Everything else is answered here, as a UAS.
            _ if let Some(resp) = self.unsupported(&req, &ctx, origin, &Name::Require) => {
                self.finish(key, origin, resp);
            }
            Method::Subscribe => {
                Box::pin(self.subscribe(&req, &ctx, origin, key)).await;
            }
            _ => {
                let response = self.dispatch(&req, &ctx, origin).await;
                self.finish(key, origin, response);
            }
        }
    }

    /// A 420 naming the option tags of `header` (`Require` when we are the UAS,
    /// `Proxy-Require` when we forward), none of which we support; `None` when the
    /// request names none. CANCEL and ACK are exempt.
    pub(crate) fn unsupported(
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

    /// CANCEL of a pending INVITE: 200 for the CANCEL, and the INVITE's branches are
    /// cancelled (its 487 follows from the INVITE task).
    fn cancel(&self, req: &Request, ctx: &RequestCtx, origin: Origin) -> Response {
        let mut as_invite = req.clone();
        as_invite.method = Method::Invite;
        let invite_key = self.transactions.key(&as_invite, &ctx.vias[0]);
        let task = self
            .invites
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&invite_key)
            .cloned();
        match task {
            Some(signals) => {
                let _ = signals.try_send(proxy::InviteSignal::Cancel);
                self.response(req, ctx, origin, 200, "OK")
            }
            None => self.response(req, ctx, origin, 481, "Call/Transaction Does Not Exist"),
        }
    }

    /// A response: to its client transaction, or (a 2xx retransmission) on to the caller.
    fn on_response(&self, resp: Response) {
        let branch = resp
            .headers
            .get(&Name::Via)
            .and_then(|v| uri::split_list(v).first().and_then(|v| Via::parse(v)))
            .and_then(|v| v.branch().map(str::to_owned));
        let method = resp
            .headers
            .get(&Name::CSeq)
            .and_then(headers::parse_cseq)
            .map(|(_, m)| m);
        let (Some(branch), Some(method)) = (branch, method) else {
            return;
        };
        if !self.clients.deliver(&branch, &method, resp.clone()) {
            self.stray_response(resp);
        }
    }

    /// A request we originate (BYE, NOTIFY, OPTIONS): our Via with a fresh branch,
    /// the dialog's From, To, Call-ID and CSeq. Returns it with its branch.
    pub(crate) fn own_request(
        &self,
        method: Method,
        uri: uri::Uri,
        dialog: OwnDialog<'_>,
        transport: SipTransport,
    ) -> (Request, String) {
        let branch = format!("z9hG4bK-sb-{}", crate::ids::lower_alnum(16));
        let mut req = Request {
            method: method.clone(),
            uri,
            headers: Default::default(),
            body: Vec::new(),
        };
        req.headers.push(
            Name::Via,
            format!(
                "SIP/2.0/{} {};branch={branch};rport",
                via_transport(transport),
                self.advertised()
            ),
        );
        req.headers.push(Name::From, dialog.from);
        req.headers.push(Name::To, dialog.to);
        req.headers.push(Name::CallId, dialog.call_id);
        req.headers
            .push(Name::CSeq, format!("{} {method}", dialog.cseq));
        req.headers.push(Name::MaxForwards, "70");
        req.headers.push(Name::UserAgent, SERVER);
        (req, branch)
    }

    /// Our address as it appears in Via and Record-Route (`host:port`).
    pub fn advertised(&self) -> String {
        self.advertise.clone()
    }

    /// Whether `host` names this server: the advertised host, `localhost`, the host
    /// name, the address SIP is bound to, or (bound to every interface) any address of
    /// this machine. Requests for a domain no PBX hosts reach the default PBX only then.
    pub(crate) fn is_own_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let advertised = self
            .advertise
            .rsplit_once(':')
            .map_or(self.advertise.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.eq_ignore_ascii_case(advertised)
            || host.eq_ignore_ascii_case("localhost")
            || host.eq_ignore_ascii_case(&self.hostname)
        {
            return true;
        }
        let Ok(ip) = host.parse::<std::net::IpAddr>() else {
            return false;
        };
        let bound = self.config.addr.ip();
        if !bound.is_unspecified() {
            return ip == bound;
        }
        // An address is this machine's when a socket can be bound to it.
        !ip.is_unspecified() && !ip.is_multicast() && std::net::UdpSocket::bind((ip, 0)).is_ok()
    }

    async fn dispatch(
        self: &Arc<Self>,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
    ) -> Response {
        match &req.method {
            Method::Register => self.register(req, ctx, origin).await,
            Method::Options => {
                let mut resp = self.response(req, ctx, origin, 200, "OK");
                resp.headers.push(Name::Allow, ALLOW);
                resp.headers
                    .push(Name::Other("Accept".into()), "application/sdp");
                resp
            }
            Method::Other(_) => {
                let mut resp = self.response(req, ctx, origin, 501, "Not Implemented");
                resp.headers.push(Name::Allow, ALLOW);
                resp
            }
            _ => {
                let mut resp = self.response(req, ctx, origin, 405, "Method Not Allowed");
                resp.headers.push(Name::Allow, ALLOW);
                resp
            }
        }
    }

    fn finish(&self, key: TxKey, origin: Origin, response: Response) {
        let bytes: Arc<[u8]> = response.to_bytes().into();
        if response.status >= 200 {
            let is_invite = response
                .headers
                .get(&Name::CSeq)
                .and_then(headers::parse_cseq)
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
    pub(crate) fn complete(
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

    /// Sends to a peer: over its connection for streams (a new one for TCP when there
    /// is none); for UDP to the address and port requests came from, whatever the Via
    /// says (phones behind NAT).
    pub(crate) fn send_to(self: &Arc<Self>, dest: Origin, bytes: Arc<[u8]>) {
        if dest.transport == SipTransport::Tcp && dest.flow.is_none_or(|f| !self.flows.is_open(f)) {
            let core = self.clone();
            tokio::spawn(async move { core.send_over_new_tcp(dest.remote, bytes).await });
            return;
        }
        self.send(dest, bytes);
    }

    async fn send_over_new_tcp(self: Arc<Self>, remote: SocketAddr, bytes: Arc<[u8]>) {
        let known = self
            .outbound
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&remote)
            .copied();
        if let Some(flow) = known.filter(|f| self.flows.is_open(*f)) {
            self.flows.send(flow, bytes);
            return;
        }
        match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::TcpStream::connect(remote),
        )
        .await
        {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let flow = transport::serve_outbound_tcp(
                    stream,
                    remote,
                    &self.flows,
                    self.clone(),
                    self.shutdown.clone(),
                );
                self.outbound
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(remote, flow);
                self.flows.send(flow, bytes);
            }
            _ => tracing::debug!(sip.remote = %remote, "TCP connect failed"),
        }
    }

    fn send(&self, origin: Origin, bytes: Arc<[u8]>) {
        match (origin.transport, origin.flow) {
            (SipTransport::Udp, _) => {
                if let Err(e) = self.udp.try_send_to(&bytes, origin.remote) {
                    tracing::debug!(error = %e, sip.remote = %origin.remote, "udp send");
                }
            }
            (_, Some(flow)) => {
                self.flows.send(flow, bytes);
            }
            (_, None) => tracing::debug!(sip.remote = %origin.remote, "no connection to answer on"),
        }
    }

    async fn reject_unparsable(&self, bytes: &[u8], error: ParseError, origin: Origin) {
        let headers = raw_headers(bytes);
        // The top Via as written: it may be as broken as the rest (SIP/7.0 in a 505 case).
        let Some(top) = headers
            .iter()
            .find(|(n, _)| *n == Name::Via)
            .and_then(|(_, v)| uri::split_list(v).first().map(|v| v.to_string()))
        else {
            tracing::debug!(error = %error, sip.remote = %origin.remote, "unparsable message dropped");
            return;
        };
        let text = String::from_utf8_lossy(bytes);
        if text.trim_start().starts_with("SIP/") || text.trim_start().starts_with("ACK ") {
            return; // never answer a response or an ACK
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
    fn bare_response(
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
        let mut headers = message::Headers::default();
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

    /// Connections open right now (TCP and websocket).
    pub fn open_flows(&self) -> usize {
        self.flows.len()
    }

    /// A flow for a websocket `remote` is opening, or `None` when the connection limits
    /// are reached (then the upgrade is refused).
    pub fn admit_websocket(&self, remote: SocketAddr) -> Option<transport::Flow> {
        self.flows.admit(remote)
    }

    /// Answered calls in progress.
    pub fn active_dialogs(&self) -> usize {
        self.dialogs.len()
    }

    /// Calls voicemail is taking right now.
    pub fn voicemail_calls(&self) -> usize {
        self.voicemail.len()
    }

    /// Live message-summary subscriptions.
    pub fn mwi_subscriptions(&self) -> usize {
        self.mwi.len()
    }

    /// RTP ports leased right now.
    pub fn rtp_ports_in_use(&self) -> usize {
        self.media_ports.in_use()
    }

    /// Server transactions remembered right now.
    pub fn transaction_count(&self) -> usize {
        self.transactions.len()
    }
}

/// REGISTER and OPTIONS are answered here even with a To tag, unless they belong to a
/// dialog we know.
fn is_options_or_register(req: &Request) -> bool {
    matches!(req.method, Method::Register | Method::Options)
}

#[cfg(test)]
mod fuzz_tests {
    //! Mutation fuzzing of everything that reads network input, seeded from the RFC 4475
    //! torture messages: random flips, insertions, deletions and truncations must parse
    //! or fail, never panic. Deterministic (fixed seed), so a failure reproduces.

    use super::*;
    use crate::sip::headers::{DigestCredentials, parse_cseq, parse_delta_seconds};

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    const INTERESTING: &[&[u8]] = &[
        b"\r\n",
        b"\r\n\r\n",
        b" ",
        b"\t",
        b":",
        b";",
        b",",
        b"<",
        b">",
        b"\"",
        b"\\",
        b"%",
        b"@",
        b"[",
        b"]",
        b"=",
        b"/",
        b"?",
        b"\0",
        b"\xff",
        b"SIP/2.0",
        b"z9hG4bK",
        b"Content-Length: 99999\r\n",
        b"l: -1\r\n",
        b"v: SIP/2.0/UDP [::1]:0\r\n",
        b"CSeq: 4294967296 REGISTER\r\n",
    ];

    fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..=rng.below(4) {
            let at = rng.below(out.len() + 1);
            match rng.below(5) {
                0 if !out.is_empty() => {
                    let i = at.min(out.len() - 1);
                    out[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let piece = INTERESTING[rng.below(INTERESTING.len())];
                    out.splice(at..at, piece.iter().copied());
                }
                2 if at < out.len() => {
                    let end = (at + rng.below(16)).min(out.len());
                    out.drain(at..end);
                }
                3 => out.truncate(at),
                _ => {
                    let b = (rng.next() & 0xff) as u8;
                    out.insert(at, b);
                }
            }
        }
        out
    }

    /// Runs every reader of network input over one message.
    fn exercise(bytes: &[u8]) {
        let _ = message::stream_frame_len(bytes);
        let _ = raw_headers(bytes);
        let Ok(Message::Request(req)) = Message::parse(bytes) else {
            return;
        };
        let _ = RequestCtx::parse(&req);
        for h in &req.headers.0 {
            let _ = Via::parse(&h.value);
            let _ = NameAddr::parse(&h.value);
            let _ = DigestCredentials::parse(&h.value);
            let _ = parse_cseq(&h.value);
            let _ = parse_delta_seconds(&h.value);
            for item in uri::split_list(&h.value) {
                let _ = uri::Uri::parse(item);
            }
        }
        let _ = req.uri.user_unescaped();
        let _ = req.to_bytes();
    }

    #[test]
    fn fuzzed_messages_never_panic() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rfc4475");
        let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .expect("fixtures")
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "sip"))
            .map(|e| std::fs::read(e.path()).unwrap_or_default())
            .collect();
        seeds.sort();
        assert!(seeds.len() >= 49);
        let iterations: usize = std::env::var("SIP_FUZZ_ITERATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30_000);
        let mut rng = XorShift(0x5eed_cafe_f00d_d00d);
        for i in 0..iterations {
            let seed = &seeds[i % seeds.len()];
            let input = mutate(&mut rng, seed);
            exercise(&input);
        }
    }
}
