//! `/v1/pbx/conferences`: conference rooms of the caller's PBX, who is in them, and
//! mutes and kicks (carried out by the SIP conference application).

use super::body::{self, JsonBody, RequestBody};
use crate::api::extract::{Path, Query};
use crate::api::{ApiError, Auth};
use crate::clock::rfc3339;
use crate::domain::{Participant, Room};
use crate::service::{Field, Services};
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Services>: FromRef<S>,
{
    Router::new()
        .route("/v1/pbx/conferences", get(list_conferences))
        .route("/v1/pbx/conferences/{room}", get(get_conference))
        .route(
            "/v1/pbx/conferences/{room}/participants/{participant}",
            patch(update_participant).delete(kick_participant),
        )
}

/// The REST form of a participant.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantJson<'a> {
    id: &'a str,
    call_id: &'a str,
    caller_id_number: &'a str,
    caller_id_name: Option<&'a str>,
    joined_at: String,
    muted: bool,
    talking: bool,
    codec: &'a str,
}

impl<'a> ParticipantJson<'a> {
    pub fn new(p: &'a Participant) -> Self {
        Self {
            id: &p.id,
            call_id: &p.call_id,
            caller_id_number: &p.caller_number,
            caller_id_name: p.caller_name.as_deref(),
            joined_at: rfc3339(p.joined_at),
            muted: p.muted,
            talking: p.talking,
            codec: &p.codec,
        }
    }
}

/// The REST form of a room: its extension, its size and who is in it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConferenceJson<'a> {
    extension_id: &'a str,
    number: &'a str,
    name: &'a str,
    max_participants: u16,
    participant_count: usize,
    talking_count: usize,
    participants: Vec<ParticipantJson<'a>>,
}

impl<'a> ConferenceJson<'a> {
    pub fn new(room: &'a Room) -> Self {
        Self {
            extension_id: &room.extension.id,
            number: &room.extension.number,
            name: &room.extension.name,
            max_participants: room.max_participants,
            participant_count: room.participants.len(),
            talking_count: room.participants.iter().filter(|p| p.talking).count(),
            participants: room.participants.iter().map(ParticipantJson::new).collect(),
        }
    }
}

/// What a client may change in a participant: whether it is muted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ParticipantBody {
    #[serde(default, deserialize_with = "body::boolean")]
    muted: Field<bool>,
}

impl RequestBody for ParticipantBody {
    fn unknown_field(key: &str) -> ApiError {
        ApiError::validation("body", format!("{key} cannot be changed (only muted)"))
    }
}

/// Every conference room by number; `?occupied=true` for those with someone in them.
async fn list_conferences(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let occupied = match query.get("occupied").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::validation(
                "occupied",
                "occupied must be true or false",
            ));
        }
    };
    let rooms = services.list_conferences(&principal, occupied).await?;
    let list: Vec<_> = rooms.iter().map(ConferenceJson::new).collect();
    Ok(Json(json!({ "conferences": list })))
}

/// One room, by its extension's number or id.
async fn get_conference(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path(room): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let room = services.get_conference(&principal, &room).await?;
    Ok(Json(json!({ "conference": ConferenceJson::new(&room) })))
}

/// `{"muted": true|false}`: the participant as it will be once the room has done it.
async fn update_participant(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path((room, participant)): Path<(String, String)>,
    JsonBody(body): JsonBody<ParticipantBody>,
) -> Result<Json<Value>, ApiError> {
    let Field::Value(muted) = body.muted else {
        return Err(ApiError::validation("muted", "muted must be true or false"));
    };
    let participant = services
        .mute_participant(&principal, &room, &participant, muted)
        .await?;
    Ok(Json(
        json!({ "participant": ParticipantJson::new(&participant) }),
    ))
}

/// Hangs up on a participant (the room sends it a BYE).
async fn kick_participant(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path((room, participant)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    services
        .kick_participant(&principal, &room, &participant)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::ServiceError;

    #[test]
    fn mutes_without_sip_are_a_503_with_their_own_code() {
        let e = ApiError::from(ServiceError::SipUnavailable);
        assert_eq!(
            (e.status, e.code),
            (StatusCode::SERVICE_UNAVAILABLE, "sip_unavailable")
        );
        let e = ApiError::from(ServiceError::NotFound("participant"));
        assert_eq!(
            (e.status, e.message.as_str()),
            (StatusCode::NOT_FOUND, "Participant not found")
        );
    }

    #[test]
    fn a_participant_body_takes_only_muted() {
        let ok = body::parse::<ParticipantBody>(br#"{"muted": false}"#).unwrap();
        assert_eq!(ok.muted, Field::Value(false));
        let refused = |raw: &[u8]| match body::parse::<ParticipantBody>(raw) {
            Ok(_) => panic!("accepted {}", String::from_utf8_lossy(raw)),
            Err(e) => e,
        };
        let e = refused(br#"{"talking": true}"#);
        assert_eq!(e.message, "talking cannot be changed (only muted)");
        let e = refused(br#"{"muted": "yes"}"#);
        assert_eq!(e.field.as_deref(), Some("muted"));
    }
}
