//! The HTTP and HTTPS listeners. Each connection's IO passes through two watchers: one
//! gives hyper's own error answers a JSON body ([`super::json_errors`]), the other closes
//! a websocket whose peer leaves a message unfinished ([`super::frame_watch`]).

use super::frame_watch::Watched;
use super::json_errors::JsonErrorIo;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Handshakes in progress at once; more connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 1024;

/// A TCP listener whose connections are watched as above.
pub struct HttpListener {
    inner: TcpListener,
    message_timeout: Duration,
}

impl HttpListener {
    pub fn new(inner: TcpListener, message_timeout: Duration) -> Self {
        Self {
            inner,
            message_timeout,
        }
    }
}

impl axum::serve::Listener for HttpListener {
    type Io = Watched<JsonErrorIo<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own accept loop for TCP: it retries (and backs off on) accept errors.
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let _ = stream.set_nodelay(true);
        (
            Watched::new(JsonErrorIo::new(stream), self.message_timeout),
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An HTTPS listener: handshakes run side by side (a slow one holds nobody up) and must
/// finish within the message timeout; the connections are watched as above.
pub struct HttpsListener {
    inner: TcpListener,
    acceptor: TlsAcceptor,
    message_timeout: Duration,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl HttpsListener {
    pub fn new(inner: TcpListener, acceptor: TlsAcceptor, message_timeout: Duration) -> Self {
        Self {
            inner,
            acceptor,
            message_timeout,
            handshakes: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = Watched<JsonErrorIo<TlsStream<TcpStream>>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let room = self.handshakes.len() < MAX_HANDSHAKES;
            tokio::select! {
                (stream, addr) = axum::serve::Listener::accept(&mut self.inner), if room => {
                    let _ = stream.set_nodelay(true);
                    let (acceptor, limit) = (self.acceptor.clone(), self.message_timeout);
                    self.handshakes.spawn(async move {
                        match tokio::time::timeout(limit, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => Some((tls, addr)),
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, http.client_ip = %addr.ip(), "TLS handshake failed");
                                None
                            }
                            Err(_) => None,
                        }
                    });
                }
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some((tls, addr))) = done {
                        return (Watched::new(JsonErrorIo::new(tls), self.message_timeout), addr);
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}
