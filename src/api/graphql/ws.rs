//! GraphQL over websocket at `/graphql/ws`: the connection's state machine for
//! graphql-transport-ws and the legacy graphql-ws (messages in [`super::protocol`]).
//!
//! The credential rides in the `connection_init` payload — `{"authorization": "Bearer …"}`
//! or `{"token": "…"}` — because browsers cannot set websocket headers; an
//! `Authorization` header on the upgrade works too. Nothing is parsed as GraphQL before
//! the connection is acknowledged. A socket without an accepted `connection_init` within
//! 5 s is closed (4408), and every socket closes on server shutdown (1001).
//!
//! We own this loop rather than use async-graphql's: that one closes with 1002 and 1011
//! where the protocol names 4400, 4401 and 4403, and lets a second `subscribe` with a
//! running id silently replace the first (the protocol says 4409). Operations run
//! through [`super::SubscriptionExecutor`], which executes identical subscriptions once
//! for all their sockets; each operation's results go out in order.
//!
//! async-graphql-axum's `GraphQLProtocol` extractor does not pick the subprotocol here:
//! it refuses an upgrade that names none (400) where we speak graphql-transport-ws, and
//! it does not tell which protocol it chose.

use super::GraphqlState;
use super::protocol::{self, ClientMessage, Protocol, close};
use crate::api::ApiError;
use crate::api::extract::presented_token;
use async_graphql::{Data, Executor, Response};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use futures_util::SinkExt;
use futures_util::stream::{AbortHandle, Abortable, BoxStream, SelectAll, SplitSink};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_stream::StreamExt;

const INIT_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn graphql_ws(
    State(state): State<GraphqlState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> axum::response::Response {
    let header_token = presented_token(&headers).map(str::to_owned);
    // The first protocol offered that we speak (axum answers with the same one);
    // graphql-transport-ws when none is named.
    let protocol = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(|offered| {
            offered
                .split(',')
                .find_map(|p| Protocol::from_name(p.trim()))
        })
        .unwrap_or(Protocol::TransportWs);
    crate::api::tune_websocket(upgrade)
        .protocols(Protocol::NAMES)
        .on_upgrade(move |socket| {
            let connection = Connection {
                protocol,
                state,
                header_token,
                remote,
                session: None,
                initialising: false,
                running: HashMap::new(),
                operations: SelectAll::new(),
            };
            connection.run(socket)
        })
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

type Sink = SplitSink<WebSocket, Message>;

/// What the loop does after a message.
enum Step {
    Continue,
    Close(u16, String),
    /// The socket is gone; nothing more can be sent.
    Gone,
}

struct Connection {
    protocol: Protocol,
    state: GraphqlState,
    header_token: Option<String>,
    remote: SocketAddr,
    /// The caller, for every operation; set once `connection_init` is accepted.
    session: Option<Arc<Data>>,
    /// A `connection_init` arrived (accepted or being checked): another is refused.
    initialising: bool,
    /// Running operations by id, to stop one on `complete` and to refuse a reused id.
    running: HashMap<Arc<str>, AbortHandle>,
    /// Their results, woken one by one: an event wakes only the operations it concerns.
    operations: SelectAll<Abortable<Operation>>,
}

impl Connection {
    async fn run(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = futures_util::StreamExt::split(socket);
        let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
        tokio::pin!(init_deadline);
        // One waiter for the whole connection, not one registration per message.
        let shutdown = self.state.shutdown.clone();
        let shutting_down = shutdown.cancelled();
        tokio::pin!(shutting_down);
        loop {
            let step = tokio::select! {
                () = &mut shutting_down => Step::Close(close::GOING_AWAY, "Server shutting down".into()),
                () = &mut init_deadline, if self.session.is_none() => {
                    Step::Close(close::INIT_TIMEOUT, "Connection initialisation timeout".into())
                }
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let deadline = init_deadline.deadline();
                        self.on_message(text.as_bytes(), &mut sink, deadline).await
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        let deadline = init_deadline.deadline();
                        self.on_message(&bytes, &mut sink, deadline).await
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Step::Continue,
                    // A close from the client (answered by the library), a read error
                    // (a message over the cap among them) or the end of the stream.
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                },
                Some((id, result)) = self.operations.next(), if !self.operations.is_empty() => {
                    self.on_result(id, result, &mut sink).await
                }
            };
            match step {
                Step::Continue => {}
                Step::Gone => return,
                Step::Close(code, reason) => {
                    let reason = protocol::close_reason(&reason).to_owned();
                    let frame = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
            }
        }
        let _ = sink.close().await;
    }

    async fn on_message(&mut self, bytes: &[u8], sink: &mut Sink, deadline: Instant) -> Step {
        let message = match protocol::parse(self.protocol, bytes) {
            Ok(message) => message,
            Err(reason) => return Step::Close(close::INVALID_MESSAGE, reason),
        };
        match message {
            ClientMessage::Init(payload) => self.on_init(&payload, sink, deadline).await,
            ClientMessage::Ping => send(sink, Utf8Bytes::from_static(protocol::PONG)).await,
            ClientMessage::Pong => Step::Continue,
            ClientMessage::Subscribe { id, request } => {
                let Some(session) = self.session.clone() else {
                    return Step::Close(close::UNAUTHORIZED, "Unauthorized".into());
                };
                let id: Arc<str> = id.into();
                if let Some(running) = self.running.remove(&id) {
                    if self.protocol == Protocol::TransportWs {
                        return Step::Close(
                            close::SUBSCRIBER_EXISTS,
                            format!("Subscriber for {id} already exists"),
                        );
                    }
                    // subscriptions-transport-ws servers replace the running one.
                    running.abort();
                }
                let (handle, registration) = AbortHandle::new_pair();
                let responses = self.state.executor.execute_stream(*request, Some(session));
                self.operations.push(Abortable::new(
                    operation(id.clone(), responses),
                    registration,
                ));
                self.running.insert(id, handle);
                Step::Continue
            }
            ClientMessage::Complete { id } => {
                let Some(running) = self.running.remove(id.as_str()) else {
                    return Step::Continue;
                };
                running.abort();
                // graphql-transport-ws: the client already knows; the legacy protocol
                // confirms a `stop`.
                match self.protocol {
                    Protocol::TransportWs => Step::Continue,
                    Protocol::Legacy => send_json(sink, protocol::complete(&id)).await,
                }
            }
            ClientMessage::Terminate => Step::Close(close::NORMAL, String::new()),
        }
    }

    /// Checks the credential of a `connection_init` (within the init deadline).
    async fn on_init(
        &mut self,
        payload: &serde_json::Value,
        sink: &mut Sink,
        deadline: Instant,
    ) -> Step {
        if self.initialising {
            return Step::Close(
                close::TOO_MANY_INITS,
                "Too many initialisation requests".into(),
            );
        }
        self.initialising = true;
        let checked = match init_token(payload).or_else(|| self.header_token.clone()) {
            None => Err(ApiError::unauthorized()),
            Some(token) => {
                let authenticate = self.state.services.authenticate(&token);
                match tokio::time::timeout_at(deadline, authenticate).await {
                    Ok(result) => result.map_err(ApiError::from),
                    Err(_) => {
                        return Step::Close(
                            close::INIT_TIMEOUT,
                            "Connection initialisation timeout".into(),
                        );
                    }
                }
            }
        };
        let refused = match checked {
            Ok(principal) => {
                let mut data = Data::default();
                data.insert(principal);
                self.session = Some(Arc::new(data));
                return send(sink, Utf8Bytes::from_static(protocol::CONNECTION_ACK)).await;
            }
            Err(refused) => refused,
        };
        let code = match refused.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                tracing::info!(
                    http.client_ip = %self.remote.ip(),
                    "GraphQL websocket authentication failed"
                );
                close::FORBIDDEN
            }
            _ => close::INTERNAL,
        };
        let reason = format!("{}: {}", refused.code, refused.message);
        if self.protocol == Protocol::Legacy
            && let Step::Gone = send_json(sink, protocol::connection_error(&reason)).await
        {
            return Step::Gone;
        }
        Step::Close(code, reason)
    }

    /// A result of operation `id`, or its end (`None`).
    async fn on_result(&mut self, id: Arc<str>, result: Option<Response>, sink: &mut Sink) -> Step {
        match result {
            Some(response) => send_json(sink, protocol::next(self.protocol, &id, &response)).await,
            None => {
                // Only a live operation gets here: a stopped one ends without a word.
                self.running.remove(&id);
                send_json(sink, protocol::complete(&id)).await
            }
        }
    }
}

async fn send(sink: &mut Sink, text: Utf8Bytes) -> Step {
    match sink.send(Message::Text(text)).await {
        Ok(()) => Step::Continue,
        Err(_) => Step::Gone,
    }
}

async fn send_json(sink: &mut Sink, rendered: serde_json::Result<String>) -> Step {
    match rendered {
        Ok(text) => send(sink, text.into()).await,
        Err(e) => {
            // Our own types always serialise; should one not, the client misses one
            // message rather than the connection.
            tracing::error!(error = %e, "could not render a GraphQL websocket message");
            Step::Continue
        }
    }
}

/// One running operation: its results tagged with its id, then `None` once at its end.
type Operation = BoxStream<'static, (Arc<str>, Option<Response>)>;

fn operation(id: Arc<str>, responses: BoxStream<'static, Response>) -> Operation {
    let end = tokio_stream::once((id.clone(), None));
    Box::pin(responses.map(move |r| (id.clone(), Some(r))).chain(end))
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
