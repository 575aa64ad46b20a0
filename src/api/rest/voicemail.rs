//! `/v1/pbx/voicemail/mailboxes`: mailboxes, their messages (audio with Range
//! requests), greetings.

use super::body::{self, JsonBody, RequestBody};
use crate::api::extract::{Body, Path, media_type};
use crate::api::{ApiError, Auth};
use crate::clock::rfc3339;
use crate::domain::{GreetingType, Mailbox, VoicemailMessage};
use crate::service::Field;
use crate::service::MailboxDraft;
use crate::service::Services;
use axum::extract::{DefaultBodyLimit, FromRef, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Greeting uploads may be this large (two minutes of CD-quality stereo fit).
pub const MAX_GREETING_BYTES: usize = 24 * 1024 * 1024;

use std::sync::Arc;

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Services>: FromRef<S>,
{
    Router::new()
        .route("/v1/pbx/voicemail/mailboxes", get(list_mailboxes))
        .route(
            "/v1/pbx/voicemail/mailboxes/{id}",
            get(get_mailbox).patch(update_mailbox),
        )
        .route(
            "/v1/pbx/voicemail/mailboxes/{id}/greeting",
            put(put_greeting).layer(DefaultBodyLimit::max(MAX_GREETING_BYTES)),
        )
        .route(
            "/v1/pbx/voicemail/mailboxes/{id}/messages",
            get(list_messages),
        )
        .route(
            "/v1/pbx/voicemail/mailboxes/{id}/messages/{msg}",
            get(get_message)
                .patch(update_message)
                .delete(delete_message),
        )
        .route(
            "/v1/pbx/voicemail/mailboxes/{id}/messages/{msg}/audio",
            get(message_audio),
        )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxJson<'a> {
    id: &'a str,
    extension_id: &'a str,
    extension_number: &'a str,
    extension_name: &'a str,
    message_count: u32,
    new_messages: u32,
    greeting_type: &'static str,
    notify_email: Option<&'a str>,
    pin_set: bool,
    max_message_seconds: u32,
    retention_days: u32,
}

impl<'a> MailboxJson<'a> {
    pub fn new(m: &'a Mailbox) -> Self {
        Self {
            id: &m.id,
            extension_id: &m.extension_id,
            extension_number: &m.extension_number,
            extension_name: &m.extension_name,
            message_count: m.message_count,
            new_messages: m.new_messages,
            greeting_type: m.greeting.as_str(),
            notify_email: m.notify_email.as_deref(),
            pin_set: m.pin_set,
            max_message_seconds: m.max_message_seconds,
            retention_days: m.retention_days,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageJson<'a> {
    id: &'a str,
    mailbox_id: &'a str,
    caller_number: &'a str,
    caller_name: Option<&'a str>,
    duration_ms: i64,
    created_at: String,
    heard: bool,
    audio_url: String,
}

impl<'a> MessageJson<'a> {
    pub fn new(m: &'a VoicemailMessage) -> Self {
        Self {
            id: &m.id,
            mailbox_id: &m.mailbox_id,
            caller_number: &m.caller_number,
            caller_name: m.caller_name.as_deref(),
            duration_ms: m.duration_ms,
            created_at: rfc3339(m.created_at),
            heard: m.heard,
            audio_url: format!(
                "/v1/pbx/voicemail/mailboxes/{}/messages/{}/audio",
                m.mailbox_id, m.id
            ),
        }
    }
}

async fn list_mailboxes(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
) -> Result<Json<Value>, ApiError> {
    let mailboxes = services.list_mailboxes(&principal).await?;
    let list: Vec<_> = mailboxes.iter().map(MailboxJson::new).collect();
    Ok(Json(json!({ "mailboxes": list })))
}

async fn get_mailbox(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mailbox = services.get_mailbox(&principal, &id).await?;
    Ok(Json(json!({ "mailbox": MailboxJson::new(&mailbox) })))
}

/// What a client may change in a mailbox; `null` restores a setting's default. A PIN
/// is a string: as a number it would lose its leading zeros.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MailboxBody {
    #[serde(default, deserialize_with = "body::string")]
    notify_email: Field<String>,
    #[serde(default, deserialize_with = "body::string")]
    pin: Field<String>,
    #[serde(default, deserialize_with = "body::integer")]
    max_message_seconds: Field<i64>,
    #[serde(default, deserialize_with = "body::integer")]
    retention_days: Field<i64>,
    #[serde(default, deserialize_with = "body::string")]
    greeting_type: Field<String>,
}

impl RequestBody for MailboxBody {
    fn unknown_field(key: &str) -> ApiError {
        const READ_ONLY: &[&str] = &[
            "id",
            "extensionId",
            "extensionNumber",
            "extensionName",
            "messageCount",
            "newMessages",
            "pinSet",
        ];
        if READ_ONLY.contains(&key) {
            ApiError::validation("body", format!("{key} is read-only"))
        } else {
            ApiError::validation("body", format!("{key} is not a known field"))
        }
    }
}

impl MailboxBody {
    fn into_draft(self) -> Result<MailboxDraft, ApiError> {
        Ok(MailboxDraft {
            notify_email: self.notify_email,
            pin: self.pin,
            max_message_seconds: self.max_message_seconds,
            retention_days: self.retention_days,
            greeting_type: self
                .greeting_type
                .try_map(|raw| GreetingType::parse(&raw))?,
        })
    }
}

/// What a client may change in a message: whether it was heard.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageBody {
    #[serde(default, deserialize_with = "body::boolean")]
    heard: Field<bool>,
}

impl RequestBody for MessageBody {
    fn unknown_field(key: &str) -> ApiError {
        ApiError::validation("body", format!("{key} cannot be changed (only heard)"))
    }
}

async fn update_mailbox(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<MailboxBody>,
) -> Result<Json<Value>, ApiError> {
    let draft = body.into_draft()?;
    let mailbox = services.update_mailbox(&principal, &id, draft).await?;
    Ok(Json(json!({ "mailbox": MailboxJson::new(&mailbox) })))
}

/// `PUT …/greeting` with a WAV body (any PCM or float WAV; stored as 8 kHz mono).
async fn put_greeting(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<MAX_GREETING_BYTES>,
) -> Result<Json<Value>, ApiError> {
    let content_type = media_type(&headers);
    let wav_types = ["audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"];
    if let Some(ct) = &content_type
        && !wav_types.contains(&ct.as_str())
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Greetings are uploaded as WAV (audio/wav), not {ct}"),
        ));
    }
    let mailbox = services.set_greeting(&principal, &id, &body).await?;
    Ok(Json(json!({ "mailbox": MailboxJson::new(&mailbox) })))
}

async fn list_messages(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let messages = services.list_messages(&principal, &id).await?;
    let list: Vec<_> = messages.iter().map(MessageJson::new).collect();
    Ok(Json(json!({ "messages": list })))
}

async fn get_message(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path((id, msg)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (message, _) = services.message_audio(&principal, &id, &msg).await?;
    Ok(Json(json!({ "message": MessageJson::new(&message) })))
}

async fn update_message(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path((id, msg)): Path<(String, String)>,
    JsonBody(body): JsonBody<MessageBody>,
) -> Result<Json<Value>, ApiError> {
    let Field::Value(heard) = body.heard else {
        return Err(ApiError::validation("heard", "heard must be true or false"));
    };
    let message = services.mark_message(&principal, &id, &msg, heard).await?;
    Ok(Json(json!({ "message": MessageJson::new(&message) })))
}

async fn delete_message(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path((id, msg)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    services.delete_message(&principal, &id, &msg).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a `Range` header asks for, against a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    Whole,
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range (RFC 9110 §14.1.2); several ranges or other units get the
/// whole body, which the RFC allows.
fn parse_range(header: Option<&str>, len: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        (true, false) => match last.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(n) => Some((len.saturating_sub(n), len.saturating_sub(1))),
            Err(_) => None,
        },
        (false, true) => first
            .parse::<u64>()
            .ok()
            .map(|a| (a, len.saturating_sub(1))),
        (false, false) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(a), Ok(b)) if a <= b => Some((a, b.min(len.saturating_sub(1)))),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => RangeRequest::Whole,
        Some((a, _)) if a >= len => RangeRequest::Unsatisfiable,
        Some((a, b)) => RangeRequest::Part(a, b),
    }
}

async fn message_audio(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path((id, msg)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (message, path) = services.message_audio(&principal, &id, &msg).await?;
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        tracing::error!(error = %e, path = %path.display(), "voicemail audio missing");
        ApiError::not_found("audio")
    })?;
    let len = bytes.len() as u64;
    let disposition = HeaderValue::from_str(&format!("inline; filename=\"{}.wav\"", message.id))
        .unwrap_or(HeaderValue::from_static("inline"));
    let common = [
        (header::CONTENT_TYPE, HeaderValue::from_static("audio/wav")),
        (header::ACCEPT_RANGES, HeaderValue::from_static("bytes")),
        (header::CONTENT_DISPOSITION, disposition),
    ];
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    Ok(match parse_range(range, len) {
        RangeRequest::Whole => (common, bytes).into_response(),
        RangeRequest::Part(a, b) => {
            let content_range = HeaderValue::from_str(&format!("bytes {a}-{b}/{len}"))
                .map_err(|_| ApiError::internal())?;
            (
                StatusCode::PARTIAL_CONTENT,
                common,
                [(header::CONTENT_RANGE, content_range)],
                bytes[a as usize..=b as usize].to_vec(),
            )
                .into_response()
        }
        RangeRequest::Unsatisfiable => {
            let content_range = HeaderValue::from_str(&format!("bytes */{len}"))
                .map_err(|_| ApiError::internal())?;
            (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, content_range)],
                Json(json!({
                    "error": "range_not_satisfiable",
                    "message": format!("The audio is {len} bytes long"),
                })),
            )
                .into_response()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeRequest::*;
        assert_eq!(parse_range(None, 100), Whole);
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Part(0, 9));
        assert_eq!(parse_range(Some("bytes=90-"), 100), Part(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Part(90, 99));
        assert_eq!(parse_range(Some("bytes=-500"), 100), Part(0, 99));
        assert_eq!(parse_range(Some("bytes=50-5000"), 100), Part(50, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        // Not understood or several: the whole body.
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(parse_range(Some("items=0-1"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=9-1"), 100), Whole);
        assert_eq!(parse_range(Some("bytes=x-"), 100), Whole);
    }
}
