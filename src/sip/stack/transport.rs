//! Transports: UDP and TCP on the SIP port, SIP over WebSocket (RFC 7118) handed in by
//! the HTTP server. Stream transports are "flows": each connection gets an id and a
//! bounded outbound queue, and requests to a device registered over a connection reuse
//! it (RFC 5626). A peer that does not read its queue is disconnected, never waited on.
//! Connections a peer opens are capped per source address and in total, and one that
//! starts a message must finish it within the message timeout; a connection idle
//! between messages stays open as long as the peer likes (RFC 5626 keep-alives).

use crate::domain::SipTransport;
use crate::sip::message::{Name, ParseError};
use crate::sync::{MutexExt, RwLockExt};
use bytes::{Buf, BytesMut};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Messages over this size are dropped (and a stream that announces one is closed).
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Outbound messages queued per connection before it counts as stuck (a busy trunk
/// over TCP can have thousands in flight; a few MiB per connection at worst).
const FLOW_QUEUE: usize = 4096;

pub type FlowId = u64;

/// Where a message came from, and so where its responses go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub transport: SipTransport,
    pub remote: SocketAddr,
    pub flow: Option<FlowId>,
}

/// What a flow's writer sends: bytes, or a websocket close.
pub type Outbound = Arc<[u8]>;

/// Limits on the connections peers open (TCP, TLS and websocket alike).
#[derive(Debug, Clone, Copy)]
pub struct StreamLimits {
    /// Connections open at once, all peers together.
    pub max_connections: usize,
    /// Connections open at once from one source address.
    pub max_per_address: usize,
    /// Time a peer has to finish a message it has started.
    pub message_timeout: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            max_per_address: 256,
            message_timeout: Duration::from_secs(10),
        }
    }
}

struct FlowEntry {
    remote: SocketAddr,
    queue: mpsc::Sender<Outbound>,
    /// Opened by the peer (counted against the limits) rather than by us.
    inbound: bool,
}

#[derive(Default)]
pub struct Flows {
    next: AtomicU64,
    senders: RwLock<HashMap<FlowId, FlowEntry>>,
    pub limits: StreamLimits,
    /// Inbound connections open per source address.
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// A flow held by the task serving its connection: dropping it closes the flow (and
/// frees the connection's place under the limits).
pub struct Flow {
    pub flows: Arc<Flows>,
    pub id: FlowId,
    /// What to write to the connection; taken by its writer.
    pub outbound: Option<mpsc::Receiver<Outbound>>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.flows.close(self.id);
    }
}

impl Flows {
    pub fn new(limits: StreamLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    fn insert(self: &Arc<Self>, remote: SocketAddr, inbound: bool) -> Flow {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(FLOW_QUEUE);
        self.senders.write_unpoisoned().insert(
            id,
            FlowEntry {
                remote,
                queue: tx,
                inbound,
            },
        );
        Flow {
            flows: self.clone(),
            id,
            outbound: Some(rx),
        }
    }

    /// A flow for a connection we opened (not counted against the limits).
    pub fn open(self: &Arc<Self>, remote: SocketAddr) -> Flow {
        self.insert(remote, false)
    }

    /// A flow for a connection `remote` opened, or `None` when it would exceed the
    /// total or per-address limit.
    pub fn admit(self: &Arc<Self>, remote: SocketAddr) -> Option<Flow> {
        {
            let mut per_address = self.per_address.lock_unpoisoned();
            let total: usize = per_address.values().sum();
            let mine = per_address.entry(remote.ip()).or_insert(0);
            if *mine >= self.limits.max_per_address || total >= self.limits.max_connections {
                if *mine == 0 {
                    per_address.remove(&remote.ip());
                }
                return None;
            }
            *mine += 1;
        }
        Some(self.insert(remote, true))
    }

    pub fn close(&self, id: FlowId) {
        let removed = self.senders.write_unpoisoned().remove(&id);
        if let Some(entry) = removed.filter(|e| e.inbound) {
            let mut per_address = self.per_address.lock_unpoisoned();
            if let Some(n) = per_address.get_mut(&entry.remote.ip()) {
                *n -= 1;
                if *n == 0 {
                    per_address.remove(&entry.remote.ip());
                }
            }
        }
    }

    /// Queues bytes on a flow; false when the flow is gone or stuck (then it is closed).
    pub fn send(&self, id: FlowId, bytes: Outbound) -> bool {
        let sender = self
            .senders
            .read_unpoisoned()
            .get(&id)
            .map(|e| e.queue.clone());
        match sender {
            Some(tx) => match tx.try_send(bytes) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    tracing::warn!(sip.flow = id, "peer not reading; closing its connection");
                    self.close(id);
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
            None => false,
        }
    }

    pub fn is_open(&self, id: FlowId) -> bool {
        self.senders.read_unpoisoned().contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.senders.read_unpoisoned().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Receives whole messages and their origin (the dispatcher).
pub trait Sink: Send + Sync + 'static {
    fn deliver(&self, bytes: Vec<u8>, origin: Origin);
}

/// A UDP socket with large buffers: bursts show first as receive-buffer drops.
pub fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(4 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

pub async fn run_udp<S: Sink + ?Sized>(
    socket: Arc<UdpSocket>,
    sink: Arc<S>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let received = tokio::select! {
            r = socket.recv_from(&mut buf) => r,
            () = shutdown.cancelled() => return,
        };
        match received {
            Ok((len, remote)) if len > 0 && len <= MAX_MESSAGE => {
                // A lone CRLF (or two) is a keep-alive: nothing to answer over UDP.
                if buf[..len].iter().all(|b| *b == b'\r' || *b == b'\n') {
                    continue;
                }
                sink.deliver(
                    buf[..len].to_vec(),
                    Origin {
                        transport: SipTransport::Udp,
                        remote,
                        flow: None,
                    },
                );
            }
            Ok(_) => {}
            // ICMP port unreachable from an earlier send shows up here on Linux; it is
            // about a peer, not about our socket.
            Err(e) => tracing::debug!(error = %e, "udp receive"),
        }
    }
}

pub async fn run_tcp<S: Sink + ?Sized>(
    listener: TcpListener,
    flows: Arc<Flows>,
    sink: Arc<S>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, remote)) => {
                let Some(flow) = flows.admit(remote) else {
                    tracing::debug!(sip.remote = %remote, "connection limit reached; closing");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_stream(
                    stream,
                    SipTransport::Tcp,
                    remote,
                    flow,
                    sink.clone(),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "tcp accept");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// SIP over TLS: like [`run_tcp`], with the handshake first (it must finish within the
/// message timeout). Connections are only ever opened by phones: a request for a TLS
/// device goes over the connection it registered on.
pub async fn run_tls<S: Sink + ?Sized>(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    flows: Arc<Flows>,
    sink: Arc<S>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, remote)) => {
                let Some(flow) = flows.admit(remote) else {
                    tracing::debug!(sip.remote = %remote, "connection limit reached; closing");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, sink, shutdown) = (acceptor.clone(), sink.clone(), shutdown.clone());
                let limit = flows.limits.message_timeout;
                tokio::spawn(async move {
                    match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            serve_stream(tls, SipTransport::Tls, remote, flow, sink, shutdown)
                                .await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, sip.remote = %remote, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(sip.remote = %remote, "TLS handshake too slow"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "tls accept");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves a connection we opened ourselves; returns its flow id at once.
pub fn serve_outbound_tcp<S: Sink + ?Sized>(
    stream: TcpStream,
    remote: SocketAddr,
    flows: &Arc<Flows>,
    sink: Arc<S>,
    shutdown: CancellationToken,
) -> FlowId {
    let flow = flows.open(remote);
    let id = flow.id;
    tokio::spawn(serve_stream(
        stream,
        SipTransport::Tcp,
        remote,
        flow,
        sink,
        shutdown,
    ));
    id
}

/// Reads SIP messages from a byte stream (TCP or TLS) and writes the flow's outbound
/// queue to it, until either side closes, the peer leaves a message unfinished for
/// longer than the message timeout, or the server stops.
pub async fn serve_stream<S: Sink + ?Sized, IO>(
    stream: IO,
    transport: SipTransport,
    remote: SocketAddr,
    mut flow: Flow,
    sink: Arc<S>,
    shutdown: CancellationToken,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let Some(mut outbound) = flow.outbound.take() else {
        return;
    };
    let (mut reader, mut writer) = tokio::io::split(stream);
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = outbound.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let origin = Origin {
        transport,
        remote,
        flow: Some(flow.id),
    };
    let message_timeout = flow.flows.limits.message_timeout;
    let mut buf = BytesMut::with_capacity(8 * 1024);
    // When the unfinished message at the head of `buf` must be complete.
    let mut finish_by: Option<tokio::time::Instant> = None;
    'read: loop {
        let n = tokio::select! {
            r = reader.read_buf(&mut buf) => r,
            () = async {
                match finish_by {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            } => {
                tracing::debug!(sip.remote = %remote, "message left unfinished; closing");
                break;
            }
            () = shutdown.cancelled() => break,
        };
        match n {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            // RFC 5626 §4.4.1: a CRLFCRLF ping gets a CRLF pong.
            if buf.starts_with(b"\r\n\r\n") {
                buf.advance(4);
                if !flow.flows.send(flow.id, Arc::from(&b"\r\n"[..])) {
                    break 'read;
                }
                continue;
            }
            if buf.starts_with(b"\r\n") && (buf.len() == 2 || buf[2] != b'\r') {
                buf.advance(2);
                continue;
            }
            match stream_frame_len(&buf) {
                Ok(Some(len)) if len > MAX_MESSAGE => break 'read,
                Ok(Some(len)) if len <= buf.len() => {
                    let message = buf.split_to(len).to_vec();
                    finish_by = None;
                    sink.deliver(message, origin);
                }
                Ok(Some(_)) => break,
                Ok(None) if buf.len() > MAX_MESSAGE => break 'read,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, sip.remote = %remote, "unframeable stream; closing");
                    break 'read;
                }
            }
        }
        // Bytes of a message that has not ended yet start its clock (a lone CR or LF
        // of a keep-alive in progress counts too: it is finished within the timeout
        // by any peer that means it).
        if buf.is_empty() {
            finish_by = None;
        } else if finish_by.is_none() {
            finish_by = Some(tokio::time::Instant::now() + message_timeout);
        }
    }
    drop(flow);
    writer_task.abort();
}

/// The length of the first message in a stream buffer, by `Content-Length` (§18.3:
/// mandatory on streams), once its head is complete; the buffer may not hold the whole
/// body yet. `Ok(None)` means the head is not complete. Leading CRLFs are counted into
/// the message (they are keep-alives, dropped by the parser).
pub fn stream_frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let Some(start) = buf.iter().position(|b| *b != b'\r' && *b != b'\n') else {
        return Ok(None);
    };
    let Some(end) = buf[start..].windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head_end = start + end + 4;
    let head = std::str::from_utf8(&buf[start..head_end]).map_err(|_| ParseError::Encoding)?;
    let mut len = None;
    for line in head.split("\r\n") {
        if let Some((name, value)) = line.split_once(':')
            && Name::parse(name.trim()) == Name::ContentLength
        {
            len = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(|_| ParseError::ContentLength)?,
            );
        }
    }
    let len = len.ok_or(ParseError::ContentLength)?;
    Ok(Some(head_end + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_framing_waits_for_the_whole_message() {
        let msg = "MESSAGE sip:b SIP/2.0\r\nContent-Length: 5\r\n\r\nhello";
        let full = format!("\r\n\r\n{msg}{msg}");
        let first = stream_frame_len(full.as_bytes()).unwrap().unwrap();
        assert_eq!(first, 4 + msg.len());
        assert_eq!(
            stream_frame_len(&full.as_bytes()[..first - 1]).unwrap(),
            Some(first),
            "the head is complete, the body not yet"
        );
        assert_eq!(stream_frame_len(&full.as_bytes()[..20]).unwrap(), None);
        assert!(
            stream_frame_len(b"MESSAGE sip:b SIP/2.0\r\n\r\n").is_err(),
            "no Content-Length on a stream"
        );
        assert_eq!(stream_frame_len(b"\r\n\r\n").unwrap(), None);
    }
}
