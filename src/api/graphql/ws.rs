//! GraphQL over websocket at `/graphql/ws` (graphql-transport-ws and the legacy
//! graphql-ws). The credential rides in the `connection_init` payload —
//! `{"authorization": "Bearer …"}` or `{"token": "…"}` — because browsers cannot set
//! websocket headers; an `Authorization` header on the upgrade works too.
//!
//! The protocol state machine is async-graphql's, and it runs operations through
//! [`super::SubscriptionExecutor`], which executes identical subscriptions once for all
//! their sockets. This loop adds what the protocol lacks: a socket without a valid
//! `connection_init` within 5 s is closed (4408, as graphql-transport-ws specifies), and
//! every socket closes on server shutdown.

use crate::api::AppState;
use crate::api::extract::presented_token;
use async_graphql::Data;
use async_graphql::http::{
    ALL_WEBSOCKET_PROTOCOLS, WebSocket as GqlWebSocket, WebSocketProtocols, WsMessage,
};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;

const INIT_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn graphql_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let header_token = presented_token(&headers).map(str::to_owned);
    // The first protocol offered that we speak; graphql-transport-ws when none is named.
    let protocol = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(|offered| {
            offered
                .split(',')
                .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
        })
        .unwrap_or(WebSocketProtocols::GraphQLWS);
    crate::api::tune_websocket(upgrade)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| run(socket, protocol, state, header_token))
}

/// The credential from a `connection_init` payload, if any.
fn init_token(payload: &serde_json::Value) -> Option<String> {
    let get = |k: &str| payload.get(k).and_then(|v| v.as_str());
    if let Some(auth) = get("authorization").or_else(|| get("Authorization")) {
        let auth = auth.trim();
        return Some(match auth.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                token.trim().to_owned()
            }
            _ => auth.to_owned(),
        });
    }
    get("token").map(str::to_owned)
}

async fn run(
    socket: WebSocket,
    protocol: WebSocketProtocols,
    state: AppState,
    header_token: Option<String>,
) {
    let (mut sink, stream) = socket.split();
    // Text and binary frames feed the protocol; a close frame or a read error ends it.
    let input = stream
        .take_while(|msg| {
            std::future::ready(matches!(msg, Ok(m) if !matches!(m, Message::Close(_))))
        })
        .filter_map(|msg| {
            std::future::ready(match msg {
                Ok(Message::Text(t)) => Some(t.as_str().as_bytes().to_vec()),
                Ok(Message::Binary(b)) => Some(b.to_vec()),
                _ => None,
            })
        });
    let services = state.services.clone();
    let mut gql = GqlWebSocket::new(state.subscriptions.clone(), input, protocol)
        .on_connection_init(move |payload: serde_json::Value| async move {
            let token = init_token(&payload).or(header_token).ok_or_else(|| {
                async_graphql::Error::new("unauthorized: Invalid or missing API key")
            })?;
            let principal = services.authenticate(&token).await.map_err(|_| {
                async_graphql::Error::new("unauthorized: Invalid or missing API key")
            })?;
            let mut data = Data::default();
            data.insert(principal);
            Ok(data)
        });
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    let mut acknowledged = false;
    loop {
        tokio::select! {
            msg = gql.next() => {
                let Some(msg) = msg else { break };
                let frame = match msg {
                    WsMessage::Text(text) => {
                        if !acknowledged && text.contains("\"connection_ack\"") {
                            acknowledged = true;
                        }
                        Message::Text(text.into())
                    }
                    WsMessage::Close(code, reason) => Message::Close(Some(CloseFrame { code, reason: reason.into() })),
                };
                let closing = matches!(frame, Message::Close(_));
                if sink.send(frame).await.is_err() || closing {
                    break;
                }
            }
            () = &mut init_deadline, if !acknowledged => {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame { code: 4408, reason: "Connection initialisation timeout".into() })))
                    .await;
                break;
            }
            () = state.shutdown.cancelled() => {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame { code: 1001, reason: "Server shutting down".into() })))
                    .await;
                break;
            }
        }
    }
    let _ = sink.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn init_payload_carries_the_token_in_either_form() {
        assert_eq!(
            init_token(&json!({"authorization": "Bearer abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(
            init_token(&json!({"Authorization": "bearer abc"})).as_deref(),
            Some("abc")
        );
        assert_eq!(init_token(&json!({"token": "xyz"})).as_deref(), Some("xyz"));
        assert_eq!(init_token(&json!({})), None);
    }
}
