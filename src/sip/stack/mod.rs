//! The SIP stack: transports, framing, server and client transactions, and the helpers
//! every application sends with (respond, forward, originate). It holds no application
//! state: what a request means is decided above it, by the dispatcher and the
//! applications (RFC 3261's transport and transaction layers, pjsip's "endpoint").

pub mod client;
mod forward;
pub mod guard;
pub mod request;
mod respond;
mod send;
pub mod transaction;
pub mod transport;
pub mod ws;

pub use request::{OwnDialog, RequestCtx, random_tag, via_transport};

use crate::domain::SipTransport;
use crate::sip::SipTls;
use crate::sip::headers::{Via, parse_cseq};
use crate::sip::message::{Message, Method, Name, Response};
use client::ClientTransactions;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use tokio_util::sync::CancellationToken;
use transaction::{Seen, ServerTransactions, TxKey};
use transport::{FlowId, Flows, Origin, Sink, StreamLimits};

/// `Server` and `User-Agent` of everything we send.
pub const SERVER: &str = concat!("Switchboard/", env!("CARGO_PKG_VERSION"));

/// What the stack needs to know to listen.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// UDP and TCP listen address (the same port).
    pub addr: SocketAddr,
    /// The address put in our Via and Record-Route; default: the bound one (or this
    /// host's primary address when bound to all interfaces).
    pub advertise: Option<String>,
    /// Caps on the connections phones open, and the time to finish a message.
    pub stream_limits: StreamLimits,
    /// SIP over TLS, when a certificate was given.
    pub tls: Option<SipTls>,
}

/// A request for the applications, after the stack's checks.
pub struct Incoming {
    pub req: crate::sip::message::Request,
    pub ctx: RequestCtx,
    pub origin: Origin,
    /// Its server transaction; `None` for an ACK of a 2xx, which has none.
    pub key: Option<TxKey>,
}

/// What became of one message from the network.
pub enum Received {
    /// A request for the applications.
    Request(Box<Incoming>),
    /// A response no client transaction took (a retransmitted 2xx, say).
    StrayResponse(Response),
    /// Nothing more to do: answered here, a retransmission, or dropped.
    Done,
}

/// Listening sockets, bound but not yet served.
pub struct Listeners {
    tcp: tokio::net::TcpListener,
    tls: Option<(tokio::net::TcpListener, tokio_rustls::TlsAcceptor)>,
}

pub struct SipStack {
    /// The address we are bound to.
    addr: SocketAddr,
    /// `host:port` in our Via and Record-Route.
    advertise: String,
    /// `host:port` of SIP over TLS, when it listens.
    tls_advertise: Option<String>,
    /// This machine's name (a SIP domain that means "this server").
    hostname: String,
    /// The address our SDP names for RTP.
    media_ip: IpAddr,
    udp: Arc<tokio::net::UdpSocket>,
    flows: Arc<Flows>,
    /// Connections we opened, by peer address.
    outbound: Mutex<HashMap<SocketAddr, FlowId>>,
    transactions: Arc<ServerTransactions>,
    clients: Arc<ClientTransactions>,
    guard: guard::Guard,
    /// Where messages read from connections we open go (the dispatcher).
    sink: OnceLock<Weak<dyn Sink>>,
    shutdown: CancellationToken,
    /// The SIP runtime (the one the stack was bound on).
    runtime: tokio::runtime::Handle,
}

impl SipStack {
    /// Binds UDP and TCP on `addr` (the same port; with port 0, one that is free for
    /// both) and, with a certificate, TLS. Nothing is read until [`SipStack::serve`].
    pub async fn bind(
        config: StackConfig,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(Arc<SipStack>, Listeners)> {
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
            .filter(|ip: &IpAddr| !ip.is_unspecified())
            .unwrap_or_else(|| {
                crate::config::primary_ip()
                    .parse()
                    .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into())
            });
        let tls = match &config.tls {
            Some(SipTls { addr, acceptor }) => {
                let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                    anyhow::anyhow!("cannot listen for SIP over TLS on {addr}: {e}")
                })?;
                Some((listener, acceptor.clone()))
            }
            None => None,
        };
        let tls_advertise = match &tls {
            Some((listener, _)) => {
                let host = advertise
                    .rsplit_once(':')
                    .map_or(advertise.as_str(), |(h, _)| h);
                Some(format!("{host}:{}", listener.local_addr()?.port()))
            }
            None => None,
        };
        let stack = Arc::new(SipStack {
            addr: bound,
            advertise,
            tls_advertise,
            hostname: crate::config::hostname(),
            media_ip,
            udp: Arc::new(udp),
            flows: Arc::new(Flows::new(config.stream_limits)),
            outbound: Default::default(),
            transactions: Default::default(),
            clients: Default::default(),
            guard: guard::Guard::default(),
            sink: OnceLock::new(),
            shutdown,
            runtime: tokio::runtime::Handle::current(),
        });
        Ok((stack, Listeners { tcp, tls }))
    }

    /// Starts reading: every message goes to `sink`. Returns the TLS address, if any.
    pub fn serve(
        self: &Arc<Self>,
        listeners: Listeners,
        sink: Arc<dyn Sink>,
    ) -> std::io::Result<Option<SocketAddr>> {
        let _ = self.sink.set(Arc::downgrade(&sink));
        for _ in 0..2 {
            tokio::spawn(transport::run_udp(
                self.udp.clone(),
                sink.clone(),
                self.shutdown.clone(),
            ));
        }
        tokio::spawn(transport::run_tcp(
            listeners.tcp,
            self.flows.clone(),
            sink.clone(),
            self.shutdown.clone(),
        ));
        let tls_addr = match listeners.tls {
            Some((listener, acceptor)) => {
                let addr = listener.local_addr()?;
                tokio::spawn(transport::run_tls(
                    listener,
                    acceptor,
                    self.flows.clone(),
                    sink,
                    self.shutdown.clone(),
                ));
                Some(addr)
            }
            None => None,
        };
        let stack = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        stack.transactions.sweep();
                        stack.guard.prune();
                    }
                    () = stack.shutdown.cancelled() => return,
                }
            }
        });
        Ok(tls_addr)
    }

    /// Takes one message from the network through the transport and transaction layers.
    /// Never panics on input: anything that does not parse gets a 400 when it names a
    /// Via to answer to, else is dropped.
    pub fn receive(&self, bytes: &[u8], origin: Origin) -> Received {
        if self.guard.is_banned(origin.remote.ip()) {
            return Received::Done;
        }
        let req = match Message::parse(bytes) {
            Ok(Message::Request(req)) => req,
            Ok(Message::Response(resp)) => return self.take_response(resp),
            Err(e) => {
                self.reject_unparsable(bytes, e, origin);
                return Received::Done;
            }
        };
        if let Some(ua) = req.headers.get(&Name::UserAgent)
            && guard::is_scanner(ua)
        {
            tracing::debug!(sip.remote = %origin.remote, "scanner dropped");
            return Received::Done;
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
                return Received::Done;
            }
        };
        let key = self.transactions.key(&req, &ctx.vias[0]);
        if req.method == Method::Ack {
            // An ACK to one of our non-2xx finals ends that INVITE transaction; an ACK
            // for a 2xx belongs to a dialog and goes on to the applications.
            if !self.transactions.acknowledge(key) && ctx.to.tag().is_some() {
                return Received::Request(Box::new(Incoming {
                    req,
                    ctx,
                    origin,
                    key: None,
                }));
            }
            return Received::Done;
        }
        match self.transactions.receive(key) {
            Seen::New => Received::Request(Box::new(Incoming {
                req,
                ctx,
                origin,
                key: Some(key),
            })),
            Seen::Again(Some(bytes)) => {
                self.send(origin, bytes);
                Received::Done
            }
            Seen::Again(None) => Received::Done,
        }
    }

    /// A response: to its client transaction, or back to the caller as a stray.
    fn take_response(&self, resp: Response) -> Received {
        let branch = resp
            .headers
            .first_item(&Name::Via)
            .and_then(Via::parse)
            .and_then(|v| v.branch().map(str::to_owned));
        let method = resp
            .headers
            .get(&Name::CSeq)
            .and_then(parse_cseq)
            .map(|(_, m)| m);
        let (Some(branch), Some(method)) = (branch, method) else {
            return Received::Done;
        };
        if self.clients.deliver(&branch, &method, resp.clone()) {
            Received::Done
        } else {
            Received::StrayResponse(resp)
        }
    }

    /// The key of the server transaction `ctx`'s request would have as an INVITE (a
    /// CANCEL names the INVITE it cancels this way).
    pub fn invite_key(&self, req: &crate::sip::message::Request, ctx: &RequestCtx) -> TxKey {
        let mut as_invite = req.clone();
        as_invite.method = Method::Invite;
        self.transactions.key(&as_invite, &ctx.vias[0])
    }

    /// Records a provisional response to resend on retransmissions of the request.
    pub fn provisional(&self, key: TxKey, bytes: Arc<[u8]>) {
        self.transactions.provisional(key, bytes);
    }

    /// Counts a failed authentication from `ip`; true when it just got banned.
    pub fn record_auth_failure(&self, ip: IpAddr) -> bool {
        self.guard.record_failure(ip)
    }

    /// Our address as it appears in Via and Record-Route (`host:port`).
    pub fn advertised(&self) -> &str {
        &self.advertise
    }

    /// The address our SDP names for RTP.
    pub fn media_ip(&self) -> IpAddr {
        self.media_ip
    }

    /// The address SIP is bound to.
    pub fn bound_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Our Record-Route entry for a leg over `transport`: the address and transport a
    /// phone on that leg reaches us on.
    pub fn record_route(&self, transport: SipTransport) -> String {
        match (transport, &self.tls_advertise) {
            (SipTransport::Tls, Some(tls)) => format!("<sip:{tls};transport=tls;lr>"),
            (SipTransport::Tcp, _) => format!("<sip:{};transport=tcp;lr>", self.advertise),
            _ => format!("<sip:{};lr>", self.advertise),
        }
    }

    /// Whether a Route URI names this server (any of our transports' addresses).
    pub fn routes_to_us(&self, uri: &crate::sip::uri::Uri) -> bool {
        let mine = |advertised: &str| {
            let (host, port) = advertised
                .rsplit_once(':')
                .map_or((advertised, None), |(h, p)| (h, p.parse::<u16>().ok()));
            uri.host.eq_ignore_ascii_case(host) && (uri.port.is_none() || uri.port == port)
        };
        mine(&self.advertise) || self.tls_advertise.as_deref().is_some_and(mine)
    }

    /// Whether `host` names this server: the advertised host, `localhost`, the host
    /// name, the address SIP is bound to, or (bound to every interface) any address of
    /// this machine. Requests for a domain no PBX hosts reach the default PBX only then.
    pub fn is_own_host(&self, host: &str) -> bool {
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
        let Ok(ip) = host.parse::<IpAddr>() else {
            return false;
        };
        let bound = self.addr.ip();
        if !bound.is_unspecified() {
            return ip == bound;
        }
        // An address is this machine's when a socket can be bound to it.
        !ip.is_unspecified() && !ip.is_multicast() && std::net::UdpSocket::bind((ip, 0)).is_ok()
    }

    /// Whether a connection is still open.
    pub fn is_flow_open(&self, flow: FlowId) -> bool {
        self.flows.is_open(flow)
    }

    /// A flow for a websocket `remote` is opening, or `None` when the connection limits
    /// are reached (then the upgrade is refused).
    pub fn admit_websocket(&self, remote: SocketAddr) -> Option<transport::Flow> {
        self.flows.admit(remote)
    }

    /// Connections open right now (TCP, TLS and websocket).
    pub fn open_flows(&self) -> usize {
        self.flows.len()
    }

    /// Server transactions remembered right now.
    pub fn transaction_count(&self) -> usize {
        self.transactions.len()
    }

    /// The SIP runtime, for work that arrives on other threads.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Cancelled when the server stops.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }
}
