//! SIP over WebSocket (RFC 7118) at `/sip` on the HTTP listener, subprotocol `sip`:
//! one SIP message per websocket message, both ways.

use super::transport::{Flow, MAX_MESSAGE, Origin, Sink};
use crate::domain::SipTransport;
use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Serves one upgraded websocket until either side closes or the server stops. `flow`
/// was admitted under the connection limits before the upgrade.
pub async fn serve(
    sink: Arc<dyn Sink>,
    socket: WebSocket,
    remote: SocketAddr,
    mut flow: Flow,
    secure: bool,
    shutdown: CancellationToken,
) {
    let Some(mut outbound) = flow.outbound.take() else {
        return;
    };
    let (mut writer_half, mut stream) = socket.split();
    let origin = Origin {
        transport: if secure {
            SipTransport::Wss
        } else {
            SipTransport::Ws
        },
        remote,
        flow: Some(flow.id),
    };
    let writer = tokio::spawn(async move {
        while let Some(bytes) = outbound.recv().await {
            let frame = match std::str::from_utf8(&bytes) {
                Ok(text) => Message::Text(text.to_owned().into()),
                Err(_) => Message::Binary(bytes.to_vec().into()),
            };
            if writer_half.send(frame).await.is_err() {
                break;
            }
        }
        let _ = writer_half.close().await;
    });
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            () = shutdown.cancelled() => break,
        };
        let bytes = match msg {
            Some(Ok(Message::Text(t))) => t.as_str().as_bytes().to_vec(),
            Some(Ok(Message::Binary(b))) => b.to_vec(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            _ => break,
        };
        if bytes.len() > MAX_MESSAGE || bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
            continue;
        }
        sink.deliver(bytes, origin);
    }
    drop(flow);
    writer.abort();
}
