//! `/v1/pbx/extensions`.

use super::body::{self, JsonBody, RequestBody};
use crate::api::extract::{Path, Query};
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
use serde::{Deserialize, Serialize};
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
    /// Conference extensions: whether callers must enter a PIN (the PIN itself is never
    /// shown); `null` for other types.
    conference_pin_set: Option<bool>,
    /// Conference extensions: callers the room takes at once; `null` for other types.
    max_participants: Option<u16>,
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
        let conference = e.kind == ExtensionType::Conference;
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
            conference_pin_set: conference.then_some(e.conference_pin.is_some()),
            max_participants: conference.then_some(e.max_participants),
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

/// What a client may send to create or change an extension. Every field may be left
/// out; naming one the API only shows is a 422 on it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ExtensionBody {
    #[serde(default, deserialize_with = "body::string")]
    number: Field<String>,
    #[serde(default, deserialize_with = "body::string")]
    name: Field<String>,
    #[serde(default, rename = "type", deserialize_with = "body::string")]
    kind: Field<String>,
    #[serde(default, deserialize_with = "body::string")]
    caller_id_name: Field<String>,
    #[serde(default, deserialize_with = "body::string")]
    caller_id_number: Field<String>,
    #[serde(default, deserialize_with = "body::boolean")]
    voicemail_enabled: Field<bool>,
    #[serde(default, deserialize_with = "body::string")]
    forwarding_number: Field<String>,
    #[serde(default, deserialize_with = "body::integer")]
    forwarding_ring_timeout: Field<i64>,
    #[serde(default, deserialize_with = "body::string")]
    presence: Field<String>,
    /// A string: as a number it would lose its leading zeros.
    #[serde(default, deserialize_with = "body::string")]
    conference_pin: Field<String>,
    #[serde(default, deserialize_with = "body::integer")]
    max_participants: Field<i64>,
    #[serde(
        default,
        rename = "conferencePinSet",
        deserialize_with = "body::read_only"
    )]
    _conference_pin_set: (),
    #[serde(default, rename = "id", deserialize_with = "body::read_only")]
    _id: (),
    #[serde(default, rename = "status", deserialize_with = "body::read_only")]
    _status: (),
    #[serde(
        default,
        rename = "forwardingEnabled",
        deserialize_with = "body::read_only"
    )]
    _forwarding_enabled: (),
    #[serde(
        default,
        rename = "registeredDevices",
        deserialize_with = "body::read_only"
    )]
    _registered_devices: (),
    #[serde(default, rename = "createdAt", deserialize_with = "body::read_only")]
    _created_at: (),
    #[serde(default, rename = "updatedAt", deserialize_with = "body::read_only")]
    _updated_at: (),
    #[serde(
        default,
        rename = "sipCredentials",
        deserialize_with = "body::read_only"
    )]
    _sip_credentials: (),
}

impl RequestBody for ExtensionBody {}

impl ExtensionBody {
    fn into_draft(self) -> Result<ExtensionDraft, ApiError> {
        let one_of = |key: &'static str, expected: &str| {
            ApiError::validation(key, format!("{key} must be one of {expected}"))
        };
        Ok(ExtensionDraft {
            number: self.number,
            name: self.name,
            kind: self.kind.try_map(|s| {
                ExtensionType::parse(&s)
                    .map_err(|_| one_of("type", "user, conference, parking, paging"))
            })?,
            caller_id_name: self.caller_id_name,
            caller_id_number: self.caller_id_number,
            voicemail_enabled: self.voicemail_enabled,
            forwarding_number: self.forwarding_number,
            forwarding_ring_timeout: self.forwarding_ring_timeout,
            presence: self.presence.try_map(|s| {
                PresenceSetting::parse(&s).ok_or_else(|| one_of("presence", "available, away, dnd"))
            })?,
            conference_pin: self.conference_pin,
            max_participants: self.max_participants,
        })
    }
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
    JsonBody(body): JsonBody<ExtensionBody>,
) -> Result<Response, ApiError> {
    let draft = body.into_draft()?;
    let created = services.create_extension(&principal, draft).await?;
    Ok((StatusCode::CREATED, Json(created_json(&created))).into_response())
}

async fn update_extension(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ExtensionBody>,
) -> Result<Json<Value>, ApiError> {
    let draft = body.into_draft()?;
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

    fn draft_from_json(v: Value) -> Result<ExtensionDraft, ApiError> {
        body::parse::<ExtensionBody>(v.to_string().as_bytes())?.into_draft()
    }

    #[test]
    fn absent_null_and_values_are_told_apart() {
        let d = draft_from_json(json!({"name": "A", "forwardingNumber": null})).unwrap();
        assert_eq!(d.name, Field::Value("A".into()));
        assert_eq!(d.forwarding_number, Field::Null);
        assert_eq!(d.caller_id_name, Field::Absent);
    }

    #[test]
    fn a_ring_timeout_written_as_30_0_is_the_integer_30() {
        let d = draft_from_json(json!({"forwardingRingTimeout": 30.0})).unwrap();
        assert_eq!(d.forwarding_ring_timeout, Field::Value(30));
    }

    #[test]
    fn unknown_read_only_and_mistyped_fields_name_themselves() {
        let e = draft_from_json(json!({"nmae": "A"})).unwrap_err();
        assert_eq!(
            (e.field.as_deref(), e.code),
            (Some("body"), "validation_error")
        );
        assert!(e.message.contains("nmae"));
        let e = draft_from_json(json!({"status": "busy"})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("status"));
        let e = draft_from_json(json!({"number": 101})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("number"));
        let e = draft_from_json(json!({"forwardingRingTimeout": 2.5})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("forwardingRingTimeout"));
        let e = draft_from_json(json!({"forwardingRingTimeout": "30"})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("forwardingRingTimeout"));
        let e = draft_from_json(json!({"presence": "busy"})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("presence"));
        let e = draft_from_json(json!({"conferencePin": 1234})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("conferencePin"));
        let e = draft_from_json(json!({"conferencePinSet": true})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("conferencePinSet"));
        let e = draft_from_json(json!({"maxParticipants": "10"})).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("maxParticipants"));
    }
}
