//! Transports: UDP and TCP on the SIP port, SIP over WebSocket (RFC 7118) handed in by
//! the HTTP server. Stream transports are "flows": each connection gets an id and a
//! bounded outbound queue, and requests to a device registered over a connection reuse
//! it (RFC 5626). A peer that does not read its queue is disconnected, never waited on.

use super::message::stream_frame_len;
use crate::domain::SipTransport;
use bytes::{Buf, BytesMut};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
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

#[derive(Default)]
pub struct Flows {
    next: AtomicU64,
    senders: RwLock<HashMap<FlowId, (SocketAddr, mpsc::Sender<Outbound>)>>,
}

impl Flows {
    /// A new flow with its outbound queue.
    pub fn open(&self, remote: SocketAddr) -> (FlowId, mpsc::Receiver<Outbound>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(FLOW_QUEUE);
        self.senders
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (remote, tx));
        (id, rx)
    }

    pub fn close(&self, id: FlowId) {
        self.senders
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Queues bytes on a flow; false when the flow is gone or stuck (then it is closed).
    pub fn send(&self, id: FlowId, bytes: Outbound) -> bool {
        let sender = self
            .senders
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .map(|(_, tx)| tx.clone());
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
        self.senders
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.senders.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Receives whole messages and their origin.
pub trait Sink: Send + Sync + 'static {
    fn deliver(self: &Arc<Self>, bytes: Vec<u8>, origin: Origin);
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

pub async fn run_udp<S: Sink>(socket: Arc<UdpSocket>, sink: Arc<S>, shutdown: CancellationToken) {
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

pub async fn run_tcp<S: Sink>(
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
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_tcp(
                    stream,
                    remote,
                    flows.clone(),
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

/// Serves a connection we opened ourselves; returns its flow at once.
pub fn serve_outbound_tcp<S: Sink>(
    stream: TcpStream,
    remote: SocketAddr,
    flows: Arc<Flows>,
    sink: Arc<S>,
    shutdown: CancellationToken,
) -> FlowId {
    let (flow, outbound) = flows.open(remote);
    tokio::spawn(serve_stream(
        stream, remote, flow, outbound, flows, sink, shutdown,
    ));
    flow
}

async fn serve_tcp<S: Sink>(
    stream: TcpStream,
    remote: SocketAddr,
    flows: Arc<Flows>,
    sink: Arc<S>,
    shutdown: CancellationToken,
) {
    let (flow, outbound) = flows.open(remote);
    serve_stream(stream, remote, flow, outbound, flows, sink, shutdown).await;
}

async fn serve_stream<S: Sink>(
    stream: TcpStream,
    remote: SocketAddr,
    flow: FlowId,
    mut outbound: mpsc::Receiver<Outbound>,
    flows: Arc<Flows>,
    sink: Arc<S>,
    shutdown: CancellationToken,
) {
    let (mut reader, mut writer) = stream.into_split();
    let writer_task = tokio::spawn(async move {
        while let Some(bytes) = outbound.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let origin = Origin {
        transport: SipTransport::Tcp,
        remote,
        flow: Some(flow),
    };
    let mut buf = BytesMut::with_capacity(8 * 1024);
    'read: loop {
        let n = tokio::select! {
            r = reader.read_buf(&mut buf) => r,
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
                if !flows.send(flow, Arc::from(&b"\r\n"[..])) {
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
                    sink.deliver(message, origin);
                }
                Ok(Some(_)) => break,
                Ok(None) if buf.len() > MAX_MESSAGE => break 'read,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, sip.remote = %remote, "unframeable TCP stream; closing");
                    break 'read;
                }
            }
        }
    }
    flows.close(flow);
    writer_task.abort();
}
