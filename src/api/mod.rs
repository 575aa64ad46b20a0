//! HTTP: the REST shim under `/v1`, GraphQL at `/graphql` (+ `/graphql/ws`), the
//! GraphiQL playground and the health check. Handlers only translate; the work is in
//! [`crate::service`].

pub mod error;
mod extract;
pub mod graphql;
pub mod listener;
mod rest;
mod web;

pub use error::ApiError;
pub use extract::Auth;

use crate::service::Services;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Request bodies above this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub services: Arc<Services>,
    pub schema: graphql::AppSchema,
    /// Runs websocket operations; shares one execution among identical subscriptions.
    pub subscriptions: graphql::SubscriptionExecutor,
    /// The SIP core, for SIP over WebSocket at `/sip`.
    pub sip: Option<Arc<crate::sip::SipCore>>,
    pub shutdown: CancellationToken,
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
        .with_state(state)
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

/// SIP over WebSocket (RFC 7118): the `sip` subprotocol is required.
async fn sip_websocket(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(listener::Peer(remote)): axum::extract::ConnectInfo<listener::Peer>,
    headers: axum::http::HeaderMap,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Response {
    let offers_sip = headers
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("sip")));
    let Some(core) = state.sip.clone() else {
        return not_found().await.into_response();
    };
    if !offers_sip {
        return ApiError::bad_request("SIP over WebSocket needs the \"sip\" subprotocol")
            .into_response();
    }
    let Some(flow) = core.admit_websocket(remote) else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "SIP connection limit reached for this address or in total",
        )
        .into_response();
    };
    let shutdown = state.shutdown.clone();
    tune_websocket(upgrade)
        .protocols(["sip"])
        .on_upgrade(move |socket| {
            crate::sip::ws::serve(core, socket, remote, flow, false, shutdown)
        })
}

/// 200 when a round trip to the database succeeds within 2 s, else 503.
async fn healthz(State(state): State<AppState>) -> Response {
    let ping = tokio::time::timeout(Duration::from_secs(2), state.services.store.ping()).await;
    match ping {
        Ok(Ok(())) => {
            let mut body = serde_json::json!({
                "status": "ok",
                "database": state.services.store.backend_name(),
            });
            if let Some(sip) = &state.sip {
                body["sip"] = serde_json::json!({
                    "calls": sip.active_dialogs(),
                    "voicemailCalls": sip.voicemail_calls(),
                    "rtpPortsInUse": sip.rtp_ports_in_use(),
                    "mwiSubscriptions": sip.mwi_subscriptions(),
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

/// `POST /v1/auth/token`: an API key (or a still-valid JWT) in, a fresh JWT out.
async fn issue_token(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> Result<Response, ApiError> {
    let (token, exp) = state.services.issue_token(&principal).await?;
    Ok(axum::Json(serde_json::json!({
        "token": token,
        "expiresAt": crate::clock::rfc3339(exp * 1000),
    }))
    .into_response())
}

pub(crate) fn auth_routes() -> Router<AppState> {
    Router::new().route("/v1/auth/token", post(issue_token))
}
