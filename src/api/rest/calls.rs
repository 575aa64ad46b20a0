//! `/v1/pbx/calls`: call records, newest first.

use crate::api::extract::Query;
use crate::api::{ApiError, Auth};
use crate::clock::rfc3339;
use crate::domain::{Call, CallDirection, CallState, Disposition, HangupSide};
use crate::service::Services;
use axum::extract::{FromRef, State};
use axum::http::HeaderValue;
use axum::http::header::LINK;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;

use std::sync::Arc;

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Services>: FromRef<S>,
{
    Router::new().route("/v1/pbx/calls", get(list_calls))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PartyJson<'a> {
    extension_id: Option<&'a str>,
    number: &'a str,
    name: Option<&'a str>,
}

/// The REST form of a call.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallJson<'a> {
    id: &'a str,
    sip_call_id: &'a str,
    direction: CallDirection,
    caller: PartyJson<'a>,
    callee: PartyJson<'a>,
    state: CallState,
    started_at: String,
    answered_at: Option<String>,
    ended_at: Option<String>,
    answered_by: Option<&'a str>,
    disposition: Option<Disposition>,
    hangup_side: Option<HangupSide>,
    end_reason: Option<&'a str>,
    forwarded_to: Option<&'a str>,
}

impl<'a> CallJson<'a> {
    pub fn new(c: &'a Call) -> Self {
        Self {
            id: &c.id,
            sip_call_id: &c.sip_call_id,
            direction: c.direction,
            caller: PartyJson {
                extension_id: c.caller_extension_id.as_deref(),
                number: &c.caller_number,
                name: c.caller_name.as_deref(),
            },
            callee: PartyJson {
                extension_id: c.callee_extension_id.as_deref(),
                number: &c.callee_number,
                name: c.callee_name.as_deref(),
            },
            state: c.state,
            started_at: rfc3339(c.started_at),
            answered_at: c.answered_at.map(rfc3339),
            ended_at: c.ended_at.map(rfc3339),
            answered_by: c.answered_by.as_deref(),
            disposition: c.disposition,
            hangup_side: c.hangup_side,
            end_reason: c.end_reason.as_deref(),
            forwarded_to: c.forwarded_to.as_deref(),
        }
    }
}

/// `?active=true`, `?extension=<id or number>`, `?first=50`, `?after=<cursor>`; the next
/// page's address comes in a `Link: <…>; rel="next"` header.
async fn list_calls(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let active = match query.get("active").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::validation(
                "active",
                "active must be true or false",
            ));
        }
    };
    let first = match query.get("first") {
        None => 50,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| ApiError::validation("first", "first must be between 1 and 500"))?,
    };
    let extension_id = match query.get("extension") {
        None => None,
        Some(key) => Some(services.resolve_extension(&principal, key).await?),
    };
    let page = services
        .list_calls(
            &principal,
            active,
            extension_id,
            first,
            query.get("after").map(String::as_str),
        )
        .await?;
    let list: Vec<_> = page.calls.iter().map(CallJson::new).collect();
    let mut response = Json(json!({ "calls": list })).into_response();
    if let Some(next) = page.next {
        let mut link = format!("</v1/pbx/calls?first={first}&after={next}");
        if active {
            link.push_str("&active=true");
        }
        if let Some(ext) = query.get("extension") {
            link.push_str(&format!("&extension={ext}"));
        }
        link.push_str(">; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(LINK, value);
        }
    }
    Ok(response)
}
