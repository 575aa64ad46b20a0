//! `/v1/pbx/extensions`.

use super::{integer_field, string_field};
use crate::api::extract::{JsonObject, Path, Query};
use crate::api::{ApiError, Auth};
use crate::clock::rfc3339;
use crate::domain::{ExtensionType, ExtensionView, PresenceSetting, PresenceStatus};
use crate::service::{
    CreatedExtension, ExtensionDraft, ExtensionStats, Field, Services, SipCredentials,
};
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::HashMap;

use std::sync::Arc;

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Services>: FromRef<S>,
{
    Router::new()
        .route(
            "/v1/pbx/extensions",
            get(list_extensions).post(create_extension),
        )
        .route("/v1/pbx/extensions/stats", get(extension_stats))
        .route(
            "/v1/pbx/extensions/{id}",
            get(get_extension)
                .patch(update_extension)
                .delete(delete_extension),
        )
        .route(
            "/v1/pbx/extensions/{id}/sip-credentials",
            post(reset_sip_credentials),
        )
}

/// The REST form of an extension.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionJson<'a> {
    id: &'a str,
    number: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    kind: ExtensionType,
    status: PresenceStatus,
    caller_id_name: Option<&'a str>,
    caller_id_number: Option<&'a str>,
    voicemail_enabled: bool,
    forwarding_number: Option<&'a str>,
    forwarding_enabled: bool,
    forwarding_ring_timeout: u8,
    registered_devices: u32,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sip_credentials: Option<CredentialsJson<'a>>,
}

#[derive(Serialize)]
struct CredentialsJson<'a> {
    username: &'a str,
    password: &'a str,
    domain: &'a str,
}

impl<'a> ExtensionJson<'a> {
    pub fn new(view: &'a ExtensionView) -> Self {
        let e = &view.extension;
        Self {
            id: &e.id,
            number: &e.number,
            name: &e.name,
            kind: e.kind,
            status: view.status,
            caller_id_name: e.caller_id_name.as_deref(),
            caller_id_number: e.caller_id_number.as_deref(),
            voicemail_enabled: e.voicemail_enabled,
            forwarding_number: e.forwarding_number.as_deref(),
            forwarding_enabled: e.forwarding_number.is_some(),
            forwarding_ring_timeout: e.forwarding_ring_timeout,
            registered_devices: view.registered_devices,
            created_at: rfc3339(e.created_at),
            updated_at: rfc3339(e.updated_at),
            sip_credentials: None,
        }
    }

    /// With the credentials just issued; none (and no `sipCredentials` key) for an
    /// extension type that has none.
    fn with_credentials(mut self, c: Option<&'a SipCredentials>) -> Self {
        self.sip_credentials = c.map(|c| CredentialsJson {
            username: &c.username,
            password: &c.password,
            domain: &c.domain,
        });
        self
    }
}

/// Fields a client may send; everything else is refused by name.
const WRITABLE: &[&str] = &[
    "number",
    "name",
    "type",
    "callerIdName",
    "callerIdNumber",
    "voicemailEnabled",
    "forwardingNumber",
    "forwardingRingTimeout",
    "presence",
];
const READ_ONLY: &[&str] = &[
    "id",
    "status",
    "forwardingEnabled",
    "registeredDevices",
    "createdAt",
    "updatedAt",
    "sipCredentials",
];

fn field_name(key: &str) -> &'static str {
    WRITABLE
        .iter()
        .chain(READ_ONLY)
        .find(|k| **k == key)
        .copied()
        .unwrap_or("body")
}

fn parsed_field<T>(
    body: &Map<String, Value>,
    key: &'static str,
    parse: impl FnOnce(&str) -> Option<T>,
    expected: &str,
) -> Result<Field<T>, ApiError> {
    Ok(match string_field(body, key)? {
        Field::Absent => Field::Absent,
        Field::Null => Field::Null,
        Field::Value(s) => Field::Value(parse(&s).ok_or_else(|| {
            ApiError::validation(key, format!("{key} must be one of {expected}"))
        })?),
    })
}

/// Reads a JSON object into a draft, refusing unknown and read-only fields by name.
fn draft_from_json(body: &Map<String, Value>) -> Result<ExtensionDraft, ApiError> {
    for key in body.keys() {
        if READ_ONLY.contains(&key.as_str()) {
            let f = field_name(key);
            return Err(ApiError::validation(f, format!("{key} is read-only")));
        }
        if !WRITABLE.contains(&key.as_str()) {
            return Err(ApiError::validation(
                "body",
                format!("{key} is not a known field"),
            ));
        }
    }
    let voicemail_enabled = match body.get("voicemailEnabled") {
        None => Field::Absent,
        Some(Value::Null) => Field::Null,
        Some(Value::Bool(b)) => Field::Value(*b),
        Some(_) => {
            return Err(ApiError::validation(
                "voicemailEnabled",
                "voicemailEnabled must be true or false",
            ));
        }
    };
    let forwarding_ring_timeout = integer_field(body, "forwardingRingTimeout")?;
    Ok(ExtensionDraft {
        number: string_field(body, "number")?,
        name: string_field(body, "name")?,
        kind: parsed_field(
            body,
            "type",
            |s| ExtensionType::parse(s).ok(),
            "user, conference, parking, paging",
        )?,
        caller_id_name: string_field(body, "callerIdName")?,
        caller_id_number: string_field(body, "callerIdNumber")?,
        voicemail_enabled,
        forwarding_number: string_field(body, "forwardingNumber")?,
        forwarding_ring_timeout,
        presence: parsed_field(
            body,
            "presence",
            PresenceSetting::parse,
            "available, away, dnd",
        )?,
    })
}

fn created_json(created: &CreatedExtension) -> Value {
    json!({ "extension": ExtensionJson::new(&created.extension).with_credentials(created.sip_credentials.as_ref()) })
}

async fn list_extensions(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let kind = query
        .get("type")
        .map(|t| {
            ExtensionType::parse(t)
                .map_err(|e| ApiError::validation("type", format!("type {}", e.message)))
        })
        .transpose()?;
    let status = query
        .get("status")
        .map(|s| {
            PresenceStatus::parse(s).ok_or_else(|| {
                ApiError::validation(
                    "status",
                    "status must be one of available, busy, away, dnd, offline",
                )
            })
        })
        .transpose()?;
    let views = services.list_extensions(&principal, kind, status).await?;
    let list: Vec<_> = views.iter().map(ExtensionJson::new).collect();
    Ok(Json(json!({ "extensions": list })))
}

pub fn stats_json(stats: &ExtensionStats) -> Value {
    let by_type: Map<String, Value> = stats
        .by_type
        .iter()
        .map(|(t, n)| (t.as_str().to_owned(), json!(n)))
        .collect();
    let by_status: Map<String, Value> = stats
        .by_status
        .iter()
        .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
        .collect();
    json!({
        "total": stats.total,
        "byType": by_type,
        "byStatus": by_status,
        "registeredDevices": stats.registered_devices,
    })
}

async fn extension_stats(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
) -> Result<Json<Value>, ApiError> {
    let stats = services.extension_stats(&principal).await?;
    Ok(Json(json!({ "stats": stats_json(&stats) })))
}

async fn get_extension(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = services.get_extension(&principal, &id).await?;
    Ok(Json(json!({ "extension": ExtensionJson::new(&view) })))
}

async fn create_extension(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let draft = draft_from_json(&body)?;
    let created = services.create_extension(&principal, draft).await?;
    Ok((StatusCode::CREATED, Json(created_json(&created))).into_response())
}

async fn update_extension(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> Result<Json<Value>, ApiError> {
    let draft = draft_from_json(&body)?;
    let view = services.update_extension(&principal, &id, draft).await?;
    Ok(Json(json!({ "extension": ExtensionJson::new(&view) })))
}

async fn delete_extension(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    services.delete_extension(&principal, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reset_sip_credentials(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let created = services.reset_sip_credentials(&principal, &id).await?;
    Ok(Json(created_json(&created)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn absent_null_and_values_are_told_apart() {
        let d = draft_from_json(&obj(json!({"name": "A", "forwardingNumber": null}))).unwrap();
        assert_eq!(d.name, Field::Value("A".into()));
        assert_eq!(d.forwarding_number, Field::Null);
        assert_eq!(d.caller_id_name, Field::Absent);
    }

    #[test]
    fn a_ring_timeout_written_as_30_0_is_the_integer_30() {
        let d = draft_from_json(&obj(json!({"forwardingRingTimeout": 30.0}))).unwrap();
        assert_eq!(d.forwarding_ring_timeout, Field::Value(30));
    }

    #[test]
    fn unknown_read_only_and_mistyped_fields_name_themselves() {
        let e = draft_from_json(&obj(json!({"nmae": "A"}))).unwrap_err();
        assert_eq!((e.field, e.code), (Some("body"), "validation_error"));
        assert!(e.message.contains("nmae"));
        let e = draft_from_json(&obj(json!({"status": "busy"}))).unwrap_err();
        assert_eq!(e.field, Some("status"));
        let e = draft_from_json(&obj(json!({"number": 101}))).unwrap_err();
        assert_eq!(e.field, Some("number"));
        let e = draft_from_json(&obj(json!({"forwardingRingTimeout": 2.5}))).unwrap_err();
        assert_eq!(e.field, Some("forwardingRingTimeout"));
        let e = draft_from_json(&obj(json!({"forwardingRingTimeout": "30"}))).unwrap_err();
        assert_eq!(e.field, Some("forwardingRingTimeout"));
        let e = draft_from_json(&obj(json!({"presence": "busy"}))).unwrap_err();
        assert_eq!(e.field, Some("presence"));
    }
}
