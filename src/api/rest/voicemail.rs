//! `/v1/pbx/voicemail/mailboxes`: mailboxes, their messages (audio served by
//! tower-http, with Range and conditional requests), greetings.

use super::body::{self, JsonBody, RequestBody};
use crate::api::extract::{Body, Path, media_type};
use crate::api::{ApiError, Auth};
use crate::clock::rfc3339;
use crate::domain::{GreetingType, Mailbox, VoicemailMessage};
use crate::service::{Field, MailboxDraft, Services};
use axum::extract::{DefaultBodyLimit, FromRef, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Greeting uploads may be this large (two minutes of CD-quality stereo fit).
pub const MAX_GREETING_BYTES: usize = 24 * 1024 * 1024;

use std::sync::Arc;
use tower_http::services::ServeFile;

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

/// The WAV of a message, by tower-http's file serving: `Range` (one range; several are
/// 416), `Last-Modified` with `If-Modified-Since` and `If-Unmodified-Since`, `HEAD`.
async fn message_audio(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Path((id, msg)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let (message, path) = services.message_audio(&principal, &id, &msg).await?;
    let served = ServeFile::new(&path).try_call(request).await;
    let mut response = match served {
        Ok(response) => response.map(axum::body::Body::new),
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "voicemail audio unreadable");
            return Err(ApiError::internal());
        }
    };
    match response.status() {
        StatusCode::NOT_FOUND => {
            tracing::error!(path = %path.display(), "voicemail audio missing");
            Err(ApiError::not_found("audio"))
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            // `bytes */<length>`: say the length in our own error body too.
            let content_range = response.headers().get(header::CONTENT_RANGE).cloned();
            let length = content_range
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes */"))
                .unwrap_or("?")
                .to_owned();
            let mut refused = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("The audio is {length} bytes long (one range at a time)"),
            )
            .into_response();
            if let Some(value) = content_range {
                refused.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            Ok(refused)
        }
        _ => {
            let disposition =
                HeaderValue::from_str(&format!("inline; filename=\"{}.wav\"", message.id))
                    .unwrap_or(HeaderValue::from_static("inline"));
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, disposition);
            Ok(response)
        }
    }
}
