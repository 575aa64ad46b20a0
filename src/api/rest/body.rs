//! Typed JSON request bodies: each REST body is a serde struct with
//! `deny_unknown_fields` whose fields are [`Field`]s (absent, `null` or a value), read
//! by [`JsonBody`]. What a client gets wrong comes back as a 422 naming the field.
//!
//! The field deserializers below take a JSON value of one type and say what they
//! expected in our words ("name must be a string"). Integer fields take any JSON
//! number with a whole value, as JSON Schema's `integer` does: `30`, `30.0` and `3e1`
//! are 30 (JSON has one number type), `30.5` is refused; values beyond `i64` saturate,
//! so the field's own range check refuses them.

use crate::api::ApiError;
use crate::api::extract::{Body, media_type};
use crate::service::Field;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::{Number, Value};

/// A body the client may send: which keys it takes is its serde derive's business;
/// what an unknown key answers is its own.
pub trait RequestBody: DeserializeOwned {
    /// The answer to a key the body does not take: by default a 422 on `body`.
    fn unknown_field(key: &str) -> ApiError {
        ApiError::validation("body", format!("{key} is not a known field"))
    }
}

/// A request body that is one JSON object (64 KiB at most) of shape `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: RequestBody> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if let Some(ct) = media_type(req.headers())
            && ct != "application/json"
            && !ct.ends_with("+json")
        {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Content-Type must be application/json",
            ));
        }
        let Body::<{ crate::api::MAX_BODY_BYTES }>(bytes) = Body::from_request(req, state).await?;
        parse(&bytes).map(JsonBody)
    }
}

/// Reads `bytes` as a `T`: malformed JSON or anything but an object is a 400, a field
/// of the wrong type or an unknown key a 422.
pub(super) fn parse<T: RequestBody>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = match serde_json::from_slice::<Value>(bytes) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => return Err(ApiError::bad_request("Request body must be a JSON object")),
        Err(e) => return Err(ApiError::bad_request(format!("Malformed JSON: {e}"))),
    };
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().iter().next().map(|segment| segment.to_string());
        let message = e.into_inner().to_string();
        // serde's own words for a key a `deny_unknown_fields` struct does not have.
        if let Some(rest) = message.strip_prefix("unknown field `")
            && let Some((unknown, _)) = rest.split_once('`')
        {
            return T::unknown_field(unknown);
        }
        match key {
            Some(key) => {
                let message = format!("{key} {message}");
                ApiError::validation(key, message)
            }
            None => ApiError::validation("body", message),
        }
    })
}

/// A field that takes a value of one JSON type, or `null`.
fn field<'de, D, T>(
    deserializer: D,
    take: impl FnOnce(Value) -> Option<T>,
    expected: &'static str,
) -> Result<Field<T>, D::Error>
where
    D: Deserializer<'de>,
{
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(Field::Null),
        value => take(value)
            .map(Field::Value)
            .ok_or_else(|| D::Error::custom(expected)),
    }
}

/// A string field (`#[serde(default, deserialize_with = "string")]`).
pub fn string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Field<String>, D::Error> {
    field(
        deserializer,
        |v| match v {
            Value::String(s) => Some(s),
            _ => None,
        },
        "must be a string",
    )
}

/// An integer field: any JSON number with a whole value.
pub fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Field<i64>, D::Error> {
    field(
        deserializer,
        |v| v.as_number().and_then(whole_number),
        "must be an integer",
    )
}

/// A boolean field.
pub fn boolean<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Field<bool>, D::Error> {
    field(deserializer, |v| v.as_bool(), "must be true or false")
}

/// A field the API shows but a client may not send: naming it is a 422 on it.
pub fn read_only<'de, D: Deserializer<'de>>(deserializer: D) -> Result<(), D::Error> {
    let _ = serde::de::IgnoredAny::deserialize(deserializer)?;
    Err(D::Error::custom("is read-only"))
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

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default, deserialize_with = "integer")]
        n: Field<i64>,
        #[serde(default, deserialize_with = "string")]
        s: Field<String>,
        #[serde(default, deserialize_with = "read_only")]
        #[expect(dead_code, reason = "only ever refused")]
        id: (),
    }

    impl RequestBody for Sample {}

    fn n(v: Value) -> Result<Field<i64>, ApiError> {
        parse::<Sample>(json!({ "n": v }).to_string().as_bytes()).map(|s| s.n)
    }

    fn field_of(err: &ApiError) -> Option<&str> {
        err.field.as_deref()
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
            assert_eq!(n(v.clone()).unwrap(), Field::Value(want), "{v}");
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
            let err = n(v.clone()).unwrap_err();
            assert_eq!(
                (field_of(&err), err.status.as_u16()),
                (Some("n"), 422),
                "{v}"
            );
            assert_eq!(err.message, "n must be an integer");
        }
        assert_eq!(n(Value::Null).unwrap(), Field::Null);
    }

    #[test]
    fn absent_null_and_values_are_told_apart() {
        let s: Sample = parse(br#"{"s": "x"}"#).unwrap();
        assert_eq!((s.n, s.s), (Field::Absent, Field::Value("x".into())));
        let s: Sample = parse(br#"{"s": null}"#).unwrap();
        assert_eq!(s.s, Field::Null);
    }

    #[test]
    fn unknown_and_read_only_keys_and_bad_json_are_refused() {
        let err = parse::<Sample>(br#"{"colour": "red"}"#).unwrap_err();
        assert_eq!((field_of(&err), err.status.as_u16()), (Some("body"), 422));
        assert_eq!(err.message, "colour is not a known field");
        let err = parse::<Sample>(br#"{"id": "x"}"#).unwrap_err();
        assert_eq!(
            (field_of(&err), err.message.as_str()),
            (Some("id"), "id is read-only")
        );
        let err = parse::<Sample>(br#"{"s": 1}"#).unwrap_err();
        assert_eq!(err.message, "s must be a string");
        for bad in [&b"{"[..], b"[1, 2]", b"3"] {
            assert_eq!(parse::<Sample>(bad).unwrap_err().status.as_u16(), 400);
        }
    }
}
