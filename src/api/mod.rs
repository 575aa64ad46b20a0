//! HTTP: the REST shim under `/v1`, GraphQL at `/graphql` (+ `/graphql/ws`), the
//! GraphiQL playground and the health check. Handlers only translate; the work is in
//! [`crate::service`].

pub mod error;
mod extract;
mod frame_watch;
pub mod graphql;
mod json_errors;
pub mod listener;
mod rest;
mod web;

pub use error::ApiError;
pub use extract::Auth;
pub use listener::{HttpListener, HttpsListener};

use crate::service::Services;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Request bodies above this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Request targets (path and query) above this are refused with 414. RFC 9110 §4.1 asks
/// for at least 8,000 octets; nothing of ours needs more. hyper refuses targets over
/// 65,534 bytes itself, before any layer runs: see [`listener`].
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// What the HTTP side shares; cheap to clone. Handlers take only their part of it
/// (axum's [`FromRef`]): REST handlers the services ([`Arc<Services>`]), GraphQL its
/// [`graphql::GraphqlState`]; neither sees the other's.
#[derive(Clone)]
pub struct AppState {
    pub services: Arc<Services>,
    /// Runs every GraphQL operation; shares one execution among identical
    /// subscriptions.
    pub graphql: graphql::SubscriptionExecutor,
    /// The SIP core, for SIP over WebSocket at `/sip`.
    pub sip: Option<Arc<crate::sip::Sip>>,
    pub shutdown: CancellationToken,
}

impl FromRef<AppState> for Arc<Services> {
    fn from_ref(state: &AppState) -> Self {
        state.services.clone()
    }
}

impl FromRef<AppState> for graphql::GraphqlState {
    fn from_ref(state: &AppState) -> Self {
        graphql::GraphqlState {
            executor: state.graphql.clone(),
            services: state.services.clone(),
            shutdown: state.shutdown.clone(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/sip", get(sip_websocket))
        .merge(rest::routes())
        .merge(graphql::routes())
        .merge(web::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(limit_uri))
        .layer(middleware::from_fn(json_errors))
        .with_state(state)
}

/// 414 in our shape for a request target over [`MAX_URI_BYTES`].
async fn limit_uri(req: Request, next: Next) -> Response {
    let uri = req.uri();
    let len = uri.path_and_query().map_or(0, |pq| pq.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len());
    if len > MAX_URI_BYTES {
        return ApiError::uri_too_long(MAX_URI_BYTES).into_response();
    }
    next.run(req).await
}

/// Error bodies are always `{"error","message"}` JSON. Our handlers and extractors
/// answer that way already; this catches what the framework answers on its own (a
/// websocket upgrade refused by axum, say) and gives it the same shape, keeping the
/// status and headers such as `Allow` and using the plain-text reason as the message.
async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Framework rejections are one short line; anything longer is not worth showing.
    let text = axum::body::to_bytes(body, 1024)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok())
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let message = text.unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_owned());
    let mut fixed = ApiError::from_status(status, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fixed.headers_mut().append(name, value.clone());
        }
    }
    fixed
}

/// Websocket read buffer. tungstenite zero-fills the whole buffer before every read
/// attempt, and every event woken on a subscriber's socket polls a read: at its 128 KiB
/// default that memset was most of the fan-out cost with 1,000 subscribers. Frames
/// larger than this still arrive whole (the buffer grows for them).
const WS_READ_BUFFER: usize = 4096;

/// Configures a websocket upgrade: small read buffer, messages capped like HTTP bodies.
pub(crate) fn tune_websocket(
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> axum::extract::ws::WebSocketUpgrade {
    upgrade
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(MAX_BODY_BYTES)
        .max_frame_size(MAX_BODY_BYTES)
}

/// Marks requests that came in over HTTPS (set on the HTTPS listener's router), so a
/// SIP websocket knows it is `wss`.
#[derive(Debug, Clone, Copy)]
pub struct Secure;

/// SIP over WebSocket (RFC 7118): the `sip` subprotocol is required.
async fn sip_websocket(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(remote): axum::extract::ConnectInfo<std::net::SocketAddr>,
    secure: Option<axum::Extension<Secure>>,
    headers: axum::http::HeaderMap,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    let offers_sip = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("sip")));
    let Some(sip) = state.sip.clone() else {
        return not_found().await.into_response();
    };
    if !offers_sip {
        return ApiError::bad_request("SIP over WebSocket needs the \"sip\" subprotocol")
            .into_response();
    }
    let Some(flow) = sip.admit_websocket(remote) else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "SIP connection limit reached for this address or in total",
        )
        .into_response();
    };
    let secure = secure.is_some();
    tune_websocket(upgrade)
        .protocols(["sip"])
        .on_upgrade(move |socket| sip.serve_websocket(socket, remote, flow, secure))
}

/// 200 when a round trip to the database succeeds within 2 s, else 503.
async fn healthz(State(state): State<AppState>) -> Response {
    let ping = tokio::time::timeout(Duration::from_secs(2), state.services.ping_database()).await;
    match ping {
        Ok(Ok(())) => {
            let mut body = serde_json::json!({
                "status": "ok",
                "database": state.services.database_backend(),
            });
            if let Some(sip) = &state.sip {
                body["sip"] = serde_json::json!({
                    "calls": sip.active_dialogs(),
                    "voicemailCalls": sip.voicemail_calls(),
                    "rtpPortsInUse": sip.rtp_ports_in_use(),
                    "mwiSubscriptions": sip.mwi_subscriptions(),
                    "conferenceParticipants": sip.conference_participants(),
                    "openFlows": sip.open_flows(),
                });
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            unavailable()
        }
        Err(_) => {
            tracing::warn!("health check: database did not answer within 2 s");
            unavailable()
        }
    }
}

fn unavailable() -> Response {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "The database is unreachable",
    )
    .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "No such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed on this route; see the Allow header",
    )
}
