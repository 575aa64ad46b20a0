//! The HTTP listener. Each connection's IO passes through two watchers: one gives
//! hyper's own error answers a JSON body ([`super::json_errors`]), the other closes a
//! websocket whose peer leaves a message unfinished ([`super::frame_watch`]).

use super::frame_watch::Watched;
use super::json_errors::JsonErrorIo;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

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
