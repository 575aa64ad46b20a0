//! A real GraphQL websocket client (graphql-transport-ws or legacy graphql-ws).

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct GqlWs {
    socket: Socket,
    pub protocol: &'static str,
}

/// What the server sent next.
#[derive(Debug)]
pub enum Incoming {
    Json(Value),
    Closed(Option<(u16, String)>),
}

impl GqlWs {
    /// Opens the socket without sending `connection_init`.
    pub async fn open(base_http: &str, protocol: &'static str) -> GqlWs {
        let url = format!("{}/graphql/ws", base_http.replacen("http://", "ws://", 1));
        Self::open_url(url, protocol, None).await
    }

    /// Opens `url` (ws:// or wss://, with `tls` trusting the server) without sending
    /// `connection_init`.
    pub async fn open_url(
        url: String,
        protocol: &'static str,
        tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> GqlWs {
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        // tungstenite zero-fills its read buffer before every read; the 128 KiB default
        // makes a thousand benchmark clients measure memset rather than the server.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(4096);
        let connector = tls.map(tokio_tungstenite::Connector::Rustls);
        let (socket, resp) =
            tokio_tungstenite::connect_async_tls_with_config(req, Some(config), false, connector)
                .await
                .expect("websocket upgrade");
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok()),
            Some(protocol)
        );
        GqlWs { socket, protocol }
    }

    /// Opens and initialises with `payload`; panics unless acknowledged.
    pub async fn connect(base_http: &str, protocol: &'static str, payload: Value) -> GqlWs {
        let mut ws = Self::open(base_http, protocol).await;
        ws.send(json!({"type": "connection_init", "payload": payload}))
            .await;
        match ws.next(Duration::from_secs(5)).await {
            Incoming::Json(v) if v["type"] == "connection_ack" => ws,
            other => panic!("expected connection_ack, got {other:?}"),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.socket
            .send(Message::Text(v.to_string().into()))
            .await
            .unwrap();
    }

    /// Sends a text frame as it is (for messages that are not valid JSON).
    pub async fn send_text(&mut self, text: &str) {
        self.socket
            .send(Message::Text(text.to_owned().into()))
            .await
            .unwrap();
    }

    /// The close code and reason the server closes with next, skipping other messages.
    pub async fn closed_with(&mut self, limit: Duration) -> (u16, String) {
        loop {
            match self.next(limit).await {
                Incoming::Closed(Some(close)) => return close,
                Incoming::Closed(None) => panic!("closed without a close frame"),
                Incoming::Json(_) => {}
            }
        }
    }

    /// Starts a subscription under `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let kind = if self.protocol == "graphql-ws" {
            "start"
        } else {
            "subscribe"
        };
        self.send(
            json!({"id": id, "type": kind, "payload": {"query": query, "variables": variables}}),
        )
        .await;
    }

    /// The next JSON message or close, skipping pings (answered) and keep-alives.
    pub async fn next(&mut self, limit: Duration) -> Incoming {
        loop {
            let msg = match tokio::time::timeout(limit, self.socket.next()).await {
                Err(_) => panic!("no websocket message within {limit:?}"),
                Ok(None) => return Incoming::Closed(None),
                Ok(Some(Err(_))) => return Incoming::Closed(None),
                Ok(Some(Ok(m))) => m,
            };
            match msg {
                Message::Text(t) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str() {
                        Some("ping") => self.send(json!({"type": "pong"})).await,
                        Some("ka") => {}
                        _ => return Incoming::Json(v),
                    }
                }
                Message::Close(frame) => {
                    return Incoming::Closed(
                        frame.map(|CloseFrame { code, reason }| {
                            (u16::from(code), reason.to_string())
                        }),
                    );
                }
                _ => {}
            }
        }
    }

    /// The payload `data` of the next `next`/`data` message for subscription `id`.
    pub async fn next_data(&mut self, id: &str, limit: Duration) -> Value {
        loop {
            match self.next(limit).await {
                Incoming::Json(v)
                    if v["id"] == id && (v["type"] == "next" || v["type"] == "data") =>
                {
                    assert!(v["payload"]["errors"].is_null(), "subscription error: {v}");
                    return v["payload"]["data"].clone();
                }
                Incoming::Json(v) if v["type"] == "error" => panic!("subscription error: {v}"),
                Incoming::Json(_) => {}
                Incoming::Closed(c) => panic!("socket closed while waiting for data: {c:?}"),
            }
        }
    }

    /// The TCP socket underneath, for a reader that parses frames itself (the
    /// benchmark). Call only when nothing more is pending.
    pub fn into_tcp(self) -> tokio::net::TcpStream {
        match self.socket.into_inner() {
            tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp,
            _ => panic!("the tests speak plain ws://"),
        }
    }

    /// Whether nothing arrives for `quiet`.
    pub async fn is_quiet(&mut self, quiet: Duration) -> bool {
        tokio::time::timeout(quiet, self.socket.next())
            .await
            .is_err()
    }
}
