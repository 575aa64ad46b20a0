//! The `/v1/pbx/...` REST shim: JSON in the documented shapes, over the same service
//! functions GraphQL uses.

mod calls;
mod extensions;
mod phones;
mod tokens;
mod voicemail;

use super::ApiError;
use crate::service::{Field, Services};
use axum::Router;
use axum::extract::FromRef;
use serde_json::{Map, Number, Value};
use std::sync::Arc;

/// The REST routes, on any state the services can be taken from.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Services>: FromRef<S>,
{
    Router::new()
        .merge(tokens::routes())
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

/// An integer field of a JSON body: absent, `null`, or a JSON number whose value is a
/// whole number. `30.0` and `3e1` are the integer 30, as JSON Schema's `integer` has it
/// (JSON itself has one number type); `30.5`, strings and booleans are a 422 naming the
/// field. Values beyond `i64` saturate, so the field's own range check refuses them.
fn integer_field(body: &Map<String, Value>, key: &'static str) -> Result<Field<i64>, ApiError> {
    match body.get(key) {
        None => Ok(Field::Absent),
        Some(Value::Null) => Ok(Field::Null),
        Some(value) => value
            .as_number()
            .and_then(whole_number)
            .map(Field::Value)
            .ok_or_else(|| ApiError::validation(key, format!("{key} must be an integer"))),
    }
}

fn whole_number(n: &Number) -> Option<i64> {
    if let Some(v) = n.as_i64() {
        return Some(v);
    }
    if n.as_u64().is_some() {
        return Some(i64::MAX);
    }
    // `as` saturates at the i64 bounds.
    n.as_f64()
        .filter(|f| f.is_finite() && f.fract() == 0.0)
        .map(|f| f as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(v: Value) -> Result<Field<i64>, ApiError> {
        let body = match json!({ "n": v }) {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        integer_field(&body, "n")
    }

    #[test]
    fn whole_numbers_in_any_json_spelling_are_integers() {
        for (v, want) in [
            (json!(30), 30),
            (json!(30.0), 30),
            (json!(-0.0), 0),
            (json!(-5.0), -5),
            (serde_json::from_str::<Value>("3e1").unwrap(), 30),
            (serde_json::from_str::<Value>("300E-1").unwrap(), 30),
            (json!(u64::MAX), i64::MAX),
            (json!(1e300), i64::MAX),
            (json!(-1e300), i64::MIN),
        ] {
            assert_eq!(field(v.clone()).unwrap(), Field::Value(want), "{v}");
        }
    }

    #[test]
    fn fractions_and_other_types_name_the_field() {
        for v in [
            json!(30.5),
            json!(0.1),
            json!("30"),
            json!(true),
            json!([30]),
        ] {
            let err = field(v.clone()).unwrap_err();
            assert_eq!((err.field, err.status.as_u16()), (Some("n"), 422), "{v}");
        }
        assert_eq!(field(Value::Null).unwrap(), Field::Null);
    }
}
