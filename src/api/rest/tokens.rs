//! `/v1/auth/token`: an API key (or a still-valid JWT) in, a fresh JWT out.

use crate::api::{ApiError, Auth};
use crate::clock::rfc3339;
use crate::service::Services;
use axum::extract::{FromRef, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Services>: FromRef<S>,
{
    Router::new().route("/v1/auth/token", post(issue_token))
}

async fn issue_token(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
) -> Result<Json<Value>, ApiError> {
    let (token, exp) = services.issue_token(&principal).await?;
    Ok(Json(json!({
        "token": token,
        "expiresAt": rfc3339(exp * 1000),
    })))
}
