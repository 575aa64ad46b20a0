//! Extensions: the object with its live state, statistics, freshly issued credentials,
//! and the event of one created, updated or deleted.

use super::{Call, Device};
use crate::api::error::gql;
use crate::api::graphql::caller;
use crate::clock::rfc3339;
use crate::domain::{ExtensionType, ExtensionView, PresenceStatus};
use crate::events::{ChangeKind, ExtensionChange};
use crate::service::{self, CreatedExtension};
use async_graphql::{Context, ID, Object, Result, SimpleObject};

/// An extension with its live state.
pub struct Extension(pub ExtensionView);

#[Object]
impl Extension {
    async fn id(&self) -> ID {
        ID(self.0.extension.id.clone())
    }
    async fn number(&self) -> &str {
        &self.0.extension.number
    }
    async fn name(&self) -> &str {
        &self.0.extension.name
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> ExtensionType {
        self.0.extension.kind
    }
    /// Derived presence: available, busy, away, dnd or offline.
    async fn status(&self) -> PresenceStatus {
        self.0.status
    }
    async fn caller_id_name(&self) -> Option<&str> {
        self.0.extension.caller_id_name.as_deref()
    }
    async fn caller_id_number(&self) -> Option<&str> {
        self.0.extension.caller_id_number.as_deref()
    }
    async fn voicemail_enabled(&self) -> bool {
        self.0.extension.voicemail_enabled
    }
    async fn forwarding_number(&self) -> Option<&str> {
        self.0.extension.forwarding_number.as_deref()
    }
    async fn forwarding_enabled(&self) -> bool {
        self.0.extension.forwarding_number.is_some()
    }
    async fn forwarding_ring_timeout(&self) -> i32 {
        i32::from(self.0.extension.forwarding_ring_timeout)
    }
    /// Live SIP registrations.
    async fn registered_devices(&self) -> u32 {
        self.0.registered_devices
    }
    /// Conference extensions: whether callers must enter a PIN (the PIN itself is never
    /// shown); `null` for other types.
    async fn conference_pin_set(&self) -> Option<bool> {
        let e = &self.0.extension;
        (e.kind == ExtensionType::Conference).then_some(e.conference_pin.is_some())
    }
    /// Conference extensions: callers the room takes at once; `null` for other types.
    async fn max_participants(&self) -> Option<u32> {
        let e = &self.0.extension;
        (e.kind == ExtensionType::Conference).then_some(u32::from(e.max_participants))
    }
    async fn created_at(&self) -> String {
        rfc3339(self.0.extension.created_at)
    }
    async fn updated_at(&self) -> String {
        rfc3339(self.0.extension.updated_at)
    }
    /// Calls this extension is on right now (ringing or answered).
    async fn active_calls(&self, ctx: &Context<'_>) -> Result<Vec<Call>> {
        let (services, principal) = caller(ctx)?;
        let page = services
            .list_calls(
                principal,
                true,
                Some(self.0.extension.id.clone()),
                100,
                None,
            )
            .await
            .map_err(gql)?;
        Ok(page.calls.into_iter().map(Call).collect())
    }
    /// Devices of this extension: live ones and those seen in the last 30 days
    /// (needs `pbx:phones:read`).
    async fn devices(&self, ctx: &Context<'_>) -> Result<Vec<Device>> {
        let (services, principal) = caller(ctx)?;
        let list = services
            .list_phones(principal, Some(&self.0.extension.id))
            .await
            .map_err(gql)?;
        Ok(list.into_iter().map(Device).collect())
    }
}

/// SIP credentials: the password is shown only in this answer.
#[derive(SimpleObject)]
pub struct SipCredentials {
    pub username: String,
    pub password: String,
    pub domain: String,
}

/// An extension together with freshly issued SIP credentials.
#[derive(SimpleObject)]
pub struct ExtensionCredentialsPayload {
    pub extension: Extension,
    /// `null` for conference, parking and paging extensions: only user extensions have
    /// SIP credentials (and phones).
    pub sip_credentials: Option<SipCredentials>,
}

impl From<CreatedExtension> for ExtensionCredentialsPayload {
    fn from(c: CreatedExtension) -> Self {
        Self {
            extension: Extension(c.extension),
            sip_credentials: c.sip_credentials.map(|c| SipCredentials {
                username: c.username,
                password: c.password,
                domain: c.domain,
            }),
        }
    }
}

#[derive(SimpleObject)]
pub struct TypeCounts {
    pub user: u32,
    pub conference: u32,
    pub parking: u32,
    pub paging: u32,
}

#[derive(SimpleObject)]
pub struct StatusCounts {
    pub available: u32,
    pub busy: u32,
    pub away: u32,
    pub dnd: u32,
    pub offline: u32,
}

#[derive(SimpleObject)]
pub struct ExtensionStats {
    pub total: u32,
    pub by_type: TypeCounts,
    pub by_status: StatusCounts,
    pub registered_devices: u32,
}

impl From<service::ExtensionStats> for ExtensionStats {
    fn from(s: service::ExtensionStats) -> Self {
        let t = |k: ExtensionType| {
            s.by_type
                .iter()
                .find(|(x, _)| *x == k)
                .map_or(0, |(_, n)| *n)
        };
        let st = |k: PresenceStatus| {
            s.by_status
                .iter()
                .find(|(x, _)| *x == k)
                .map_or(0, |(_, n)| *n)
        };
        Self {
            total: s.total,
            by_type: TypeCounts {
                user: t(ExtensionType::User),
                conference: t(ExtensionType::Conference),
                parking: t(ExtensionType::Parking),
                paging: t(ExtensionType::Paging),
            },
            by_status: StatusCounts {
                available: st(PresenceStatus::Available),
                busy: st(PresenceStatus::Busy),
                away: st(PresenceStatus::Away),
                dnd: st(PresenceStatus::Dnd),
                offline: st(PresenceStatus::Offline),
            },
            registered_devices: s.registered_devices,
        }
    }
}

/// An extension created, updated or deleted.
#[derive(SimpleObject)]
pub struct ExtensionEvent {
    pub kind: ChangeKind,
    pub extension: Extension,
    pub at: String,
    pub sequence: u64,
}

impl ExtensionEvent {
    pub fn from_change(change: &ExtensionChange, sequence: u64) -> Self {
        Self {
            kind: change.kind,
            extension: Extension(change.extension.clone()),
            at: rfc3339(change.at),
            sequence,
        }
    }
}
