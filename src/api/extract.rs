//! Extractors: the authenticated caller, path and query parameters and a raw body,
//! each failing with our own error shape instead of axum's plain-text rejections (typed
//! JSON bodies are `rest::body`'s).

use super::ApiError;
use crate::auth::Principal;
use crate::service::Services;
use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The credential a request carries: `Authorization: Bearer <key or JWT>` or
/// `X-API-Key: <key>`.
pub fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let (scheme, token) = value.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The authenticated caller; rejects with 401 otherwise.
pub struct Auth(pub Principal);

impl<S> FromRequestParts<S> for Auth
where
    S: Send + Sync,
    Arc<Services>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = presented_token(&parts.headers).ok_or_else(ApiError::unauthorized)?;
        let services = Arc::<Services>::from_ref(state);
        match services.authenticate(token).await {
            Ok(principal) => Ok(Auth(principal)),
            Err(e) => {
                let api = ApiError::from(e);
                if api.status == StatusCode::UNAUTHORIZED {
                    let ip = parts
                        .extensions
                        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                        .map(|c| c.0.ip().to_string())
                        .unwrap_or_default();
                    tracing::info!(http.client_ip = %ip, "API authentication failed");
                }
                Err(api)
            }
        }
    }
}

/// The media type of a request's `Content-Type`, lowercased, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// Path parameters, as axum's `Path`; a segment that is not valid UTF-8 once
/// percent-decoded (or not of the expected type) is a 400 in our shape.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_error(rejection)),
        }
    }
}

fn path_error(rejection: PathRejection) -> ApiError {
    if let PathRejection::FailedToDeserializePathParams(e) = &rejection
        && let ErrorKind::InvalidUtf8InPathParam { key } = e.kind()
    {
        return ApiError::bad_request(format!(
            "The path parameter {key} is not valid UTF-8 once percent-decoded"
        ));
    }
    // Anything else is a bad value (400) or a route declared wrongly (500, logged).
    if rejection.status().is_server_error() {
        tracing::error!(error = %rejection.body_text(), "path parameters do not fit the route");
        return ApiError::internal();
    }
    ApiError::bad_request(rejection.body_text())
}

/// Query parameters, as axum's `Query`, with a 400 in our shape when they do not parse.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// The whole request body as bytes, at most `LIMIT` bytes (over it, a 413 in our shape
/// naming the limit). A route with a limit other than the default also sets
/// `DefaultBodyLimit::max(LIMIT)`, which is what axum enforces.
pub struct Body<const LIMIT: usize = { super::MAX_BODY_BYTES }>(pub Bytes);

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for Body<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large(LIMIT)
                } else {
                    ApiError::bad_request("Could not read the request body")
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn bearer_and_x_api_key_are_both_accepted() {
        assert_eq!(
            presented_token(&headers(&[("authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            presented_token(&headers(&[("authorization", "bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(presented_token(&headers(&[("x-api-key", "k")])), Some("k"));
        assert_eq!(
            presented_token(&headers(&[("authorization", "Basic abc")])),
            None
        );
        assert_eq!(presented_token(&headers(&[])), None);
    }
}
