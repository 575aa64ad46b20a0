//! The one place errors become client answers: a REST status with
//! `{"error","message"[,"field"]}` and a GraphQL error with the same `extensions.code`.

use crate::api::graphql::LimitError;
use crate::auth::AuthError;
use crate::domain::ValidationError;
use crate::service::ServiceError;
use async_graphql::ErrorExtensions;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::borrow::Cow;

/// A client-facing error. Internal details never reach the client; they are logged once,
/// where the error is classified.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The input field to blame, by its API name (a body's JSON key).
    pub field: Option<Cow<'static, str>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Invalid or missing API key",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{} not found", capitalize(what)),
        )
    }

    pub fn validation(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                message,
            )
        }
    }

    /// The error for a status that something other than a use case chose (a framework
    /// rejection, hyper's own answers): the code follows the status, `message` says why.
    pub fn from_status(status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(status, code_for(status), message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("Request body exceeds {limit} bytes"),
        )
    }

    pub fn uri_too_long(limit: usize) -> Self {
        Self::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("The request URI exceeds {limit} bytes"),
        )
    }

    /// The JSON body every error has: `{"error","message"}`, plus `"field"` when one
    /// field of the input is to blame.
    pub fn body(&self) -> serde_json::Value {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(field) = &self.field {
            body["field"] = json!(field);
        }
        body
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Something went wrong on our side; it has been logged",
        )
    }

    /// The GraphQL form of the same error.
    pub fn into_graphql(self) -> async_graphql::Error {
        let ApiError {
            code,
            message,
            field,
            ..
        } = self;
        async_graphql::Error::new(message).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(field) = &field {
                ext.set("field", field.as_ref());
            }
        })
    }
}

/// The `error` code of a status: the one the API uses for it, `internal_error` for
/// any other 5xx, `error` for anything else.
fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "request_timeout",
        409 => "conflict",
        411 => "length_required",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        416 => "range_not_satisfiable",
        422 => "validation_error",
        426 => "upgrade_required",
        429 => "rate_limited",
        431 => "request_header_fields_too_large",
        503 => "unavailable",
        500..=599 => "internal_error",
        _ => "error",
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Forbidden(scope) => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("Insufficient scope. Required: {scope}"),
            ),
            _ => ApiError::unauthorized(),
        }
    }
}

impl From<LimitError> for ApiError {
    fn from(err: LimitError) -> Self {
        let message = err.to_string();
        match err {
            LimitError::TooLarge { .. } | LimitError::TooDeep { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "query_too_large", message)
            }
            LimitError::FragmentCycle(_) => ApiError::bad_request(message),
            LimitError::Timeout(_) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "timeout", message)
            }
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(v: ValidationError) -> Self {
        ApiError::validation(v.field, format!("{} {}", v.field, v.message))
    }
}

impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Validation(v) => v.into(),
            ServiceError::NotFound(what) => ApiError::not_found(what),
            ServiceError::Conflict { field, message } => ApiError {
                field: Some(field.into()),
                ..ApiError::new(StatusCode::CONFLICT, "conflict", message)
            },
            ServiceError::Auth(a) => a.into(),
            ServiceError::Unavailable(detail) => {
                tracing::error!(error = %detail, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The database is unavailable; try again shortly",
                )
            }
            ServiceError::Store(other) => {
                tracing::error!(error = %other, "database error");
                ApiError::internal()
            }
            ServiceError::File(e) => {
                tracing::error!(error = %e, "voicemail file operation failed");
                ApiError::internal()
            }
            ServiceError::SipUnavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "sip_unavailable",
                "Conference control needs the SIP server, which is not running",
            ),
            ServiceError::BadAudio(e) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("The greeting must be a WAV file: {e}"),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// Converts a use-case error straight into a GraphQL error.
pub fn gql(err: ServiceError) -> async_graphql::Error {
    ApiError::from(err).into_graphql()
}
