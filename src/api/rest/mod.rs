//! The `/v1/pbx/...` REST shim: JSON in the documented shapes, over the same service
//! functions GraphQL uses.

mod calls;
mod extensions;
mod phones;
mod voicemail;

use super::{ApiError, AppState};
use crate::service::Field;
use axum::Router;
use serde_json::{Map, Value};

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(super::auth_routes())
        .merge(extensions::routes())
        .merge(phones::routes())
        .merge(calls::routes())
        .merge(voicemail::routes())
}

/// A string field of a JSON body: absent, `null`, or a string (anything else is a 422
/// naming the field).
fn string_field(body: &Map<String, Value>, key: &'static str) -> Result<Field<String>, ApiError> {
    match body.get(key) {
        None => Ok(Field::Absent),
        Some(Value::Null) => Ok(Field::Null),
        Some(Value::String(s)) => Ok(Field::Value(s.clone())),
        Some(_) => Err(ApiError::validation(key, format!("{key} must be a string"))),
    }
}
