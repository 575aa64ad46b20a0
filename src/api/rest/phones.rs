//! `/v1/pbx/phones`: devices that registered, live or within the last 30 days.

use crate::api::{ApiError, Auth};
use crate::clock::{now_ms, rfc3339};
use crate::domain::DeviceListing;
use crate::domain::{DeviceType, SipTransport};
use crate::service::Services;
use axum::extract::{FromRef, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Map, Value, json};

use std::sync::Arc;

pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Arc<Services>: FromRef<S>,
{
    Router::new()
        .route("/v1/pbx/phones", get(list_phones))
        .route("/v1/pbx/phones/stats", get(phone_stats))
}

/// The REST form of a device.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhoneJson<'a> {
    id: &'a str,
    extension_number: &'a str,
    extension_name: &'a str,
    device_type: DeviceType,
    manufacturer: Option<&'a str>,
    model: Option<&'a str>,
    mac_address: Option<&'a str>,
    ip_address: &'a str,
    registered: bool,
    last_registered: String,
    user_agent: Option<&'a str>,
    transport: SipTransport,
    expires_at: String,
}

impl<'a> PhoneJson<'a> {
    fn new(p: &'a DeviceListing, now: i64) -> Self {
        let d = &p.device;
        Self {
            id: &d.id,
            extension_number: &p.extension_number,
            extension_name: &p.extension_name,
            device_type: d.info.device_type,
            manufacturer: d.info.manufacturer.as_deref(),
            model: d.info.model.as_deref(),
            mac_address: d.info.mac_address.as_deref(),
            ip_address: &d.source_ip,
            registered: d.is_registered(now),
            last_registered: rfc3339(d.last_registered),
            user_agent: d.user_agent.as_deref(),
            transport: d.transport,
            expires_at: rfc3339(
                d.ended_at
                    .map_or(d.expires_at, |ended| ended.min(d.expires_at)),
            ),
        }
    }
}

async fn list_phones(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
) -> Result<Json<Value>, ApiError> {
    let phones = services.list_phones(&principal, None).await?;
    let now = now_ms();
    let list: Vec<_> = phones.iter().map(|p| PhoneJson::new(p, now)).collect();
    Ok(Json(json!({ "phones": list })))
}

async fn phone_stats(
    State(services): State<Arc<Services>>,
    Auth(principal): Auth,
) -> Result<Json<Value>, ApiError> {
    let stats = services.phone_stats(&principal).await?;
    let by_type: Map<String, Value> = stats
        .by_type
        .iter()
        .map(|(t, n)| (t.as_str().to_owned(), json!(n)))
        .collect();
    Ok(Json(json!({ "stats": {
        "totalPhones": stats.total,
        "registered": stats.registered,
        "unregistered": stats.unregistered,
        "byType": by_type,
    }})))
}
