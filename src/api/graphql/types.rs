//! GraphQL object types: the same field names as the REST JSON.

use super::caller;
use crate::api::error::gql;
use crate::clock::{now_ms, rfc3339};
use crate::domain::DeviceListing;
use crate::domain::{
    Device, DeviceType, EndReason, ExtensionRef, ExtensionType, ExtensionView, GreetingType,
    PresenceStatus, SipTransport,
};
use crate::events::{
    CauseKind, ChangeKind, DeviceChange, DeviceChangeKind, ExtensionChange, PresenceCause,
    PresenceChange,
};
use crate::service::{CreatedExtension, ExtensionStats, PhoneStats};
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
    async fn created_at(&self) -> String {
        rfc3339(self.0.extension.created_at)
    }
    async fn updated_at(&self) -> String {
        rfc3339(self.0.extension.updated_at)
    }
    /// Calls this extension is on right now (ringing or answered).
    async fn active_calls(&self, ctx: &Context<'_>) -> Result<Vec<CallObject>> {
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
        Ok(page.calls.into_iter().map(CallObject).collect())
    }
    /// Devices of this extension: live ones and those seen in the last 30 days
    /// (needs `pbx:phones:read`).
    async fn devices(&self, ctx: &Context<'_>) -> Result<Vec<Phone>> {
        let (services, principal) = caller(ctx)?;
        let list = services
            .list_phones(principal, Some(&self.0.extension.id))
            .await
            .map_err(gql)?;
        Ok(list.into_iter().map(Phone).collect())
    }
}

/// A device that registered: a desk phone, softphone, browser or mobile app.
pub struct Phone(pub DeviceListing);

#[Object(name = "Device")]
impl Phone {
    async fn id(&self) -> ID {
        ID(self.0.device.id.clone())
    }
    async fn extension_number(&self) -> &str {
        &self.0.extension_number
    }
    async fn extension_name(&self) -> &str {
        &self.0.extension_name
    }
    async fn device_type(&self) -> DeviceType {
        self.0.device.info.device_type
    }
    async fn manufacturer(&self) -> Option<&str> {
        self.0.device.info.manufacturer.as_deref()
    }
    async fn model(&self) -> Option<&str> {
        self.0.device.info.model.as_deref()
    }
    async fn mac_address(&self) -> Option<&str> {
        self.0.device.info.mac_address.as_deref()
    }
    /// The address its registration came from.
    async fn ip_address(&self) -> &str {
        &self.0.device.source_ip
    }
    async fn port(&self) -> u16 {
        self.0.device.source_port
    }
    async fn registered(&self) -> bool {
        self.0.device.is_registered(now_ms())
    }
    async fn first_registered(&self) -> String {
        rfc3339(self.0.device.first_registered)
    }
    async fn last_registered(&self) -> String {
        rfc3339(self.0.device.last_registered)
    }
    async fn user_agent(&self) -> Option<&str> {
        self.0.device.user_agent.as_deref()
    }
    async fn transport(&self) -> SipTransport {
        self.0.device.transport
    }
    async fn contact(&self) -> &str {
        &self.0.device.contact
    }
    async fn instance_id(&self) -> Option<&str> {
        self.0.device.instance_id.as_deref()
    }
    async fn expires_at(&self) -> String {
        let d = &self.0.device;
        rfc3339(
            d.ended_at
                .map_or(d.expires_at, |ended| ended.min(d.expires_at)),
        )
    }
    /// Why the binding ended, once it has.
    async fn end_reason(&self) -> Option<EndReason> {
        self.0.device.end_reason
    }
}

#[derive(SimpleObject)]
pub struct DeviceTypeCounts {
    pub hardware: u32,
    pub softphone: u32,
    pub webrtc: u32,
    pub mobile: u32,
}

#[derive(SimpleObject)]
#[graphql(name = "PhoneStats")]
pub struct PhoneStatsObject {
    pub total_phones: u32,
    pub registered: u32,
    pub unregistered: u32,
    pub by_type: DeviceTypeCounts,
}

impl From<PhoneStats> for PhoneStatsObject {
    fn from(s: PhoneStats) -> Self {
        let n = |k: DeviceType| {
            s.by_type
                .iter()
                .find(|(t, _)| *t == k)
                .map_or(0, |(_, n)| *n)
        };
        Self {
            total_phones: s.total,
            registered: s.registered,
            unregistered: s.unregistered,
            by_type: DeviceTypeCounts {
                hardware: n(DeviceType::Hardware),
                softphone: n(DeviceType::Softphone),
                webrtc: n(DeviceType::Webrtc),
                mobile: n(DeviceType::Mobile),
            },
        }
    }
}

/// A device registered, unregistered, expired or was replaced.
#[derive(SimpleObject)]
pub struct DeviceEvent {
    pub kind: DeviceChangeKind,
    pub device: Phone,
    pub at: String,
    pub sequence: u64,
}

impl DeviceEvent {
    pub fn new(
        kind: DeviceChangeKind,
        device: Device,
        extension: &ExtensionRef,
        at: i64,
        sequence: u64,
    ) -> Self {
        Self {
            kind,
            device: Phone(DeviceListing {
                device,
                extension_number: extension.number.clone(),
                extension_name: extension.name.clone(),
            }),
            at: rfc3339(at),
            sequence,
        }
    }

    pub fn from_change(change: &DeviceChange, sequence: u64) -> Self {
        Self::new(
            change.kind,
            change.device.clone(),
            &change.extension,
            change.at,
            sequence,
        )
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
#[graphql(name = "ExtensionStats")]
pub struct ExtensionStatsObject {
    pub total: u32,
    pub by_type: TypeCounts,
    pub by_status: StatusCounts,
    pub registered_devices: u32,
}

impl From<ExtensionStats> for ExtensionStatsObject {
    fn from(s: ExtensionStats) -> Self {
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

/// Which extension an event is about.
#[derive(SimpleObject, Clone)]
#[graphql(name = "ExtensionRef")]
pub struct ExtensionRefObject {
    pub id: ID,
    pub number: String,
    pub name: String,
}

impl From<ExtensionRef> for ExtensionRefObject {
    fn from(r: ExtensionRef) -> Self {
        Self {
            id: ID(r.id),
            number: r.number,
            name: r.name,
        }
    }
}

/// Why presence changed.
#[derive(SimpleObject, Clone)]
#[graphql(name = "PresenceCause")]
pub struct PresenceCauseObject {
    pub kind: CauseKind,
    pub description: String,
    /// Within the kind: e.g. `registered`, `expired`, `unregistered`, `replaced`.
    pub reason: Option<String>,
    pub device_id: Option<ID>,
    pub call_id: Option<ID>,
}

impl From<PresenceCause> for PresenceCauseObject {
    fn from(c: PresenceCause) -> Self {
        Self {
            kind: c.kind,
            description: c.description,
            reason: c.reason,
            device_id: c.device_id.map(ID),
            call_id: c.call_id.map(ID),
        }
    }
}

/// One presence report: the snapshot at subscription start, then every change.
#[derive(SimpleObject, Clone)]
pub struct PresenceEvent {
    pub extension: ExtensionRefObject,
    pub status: PresenceStatus,
    /// `null` in snapshot and resync reports.
    pub previous_status: Option<PresenceStatus>,
    pub cause: PresenceCauseObject,
    pub at: String,
    /// The PBX's event sequence: strictly increasing across changes and counted per PBX
    /// (another PBX's activity never moves it); snapshot reports carry the sequence they
    /// were taken at.
    pub sequence: u64,
}

impl PresenceEvent {
    pub fn from_change(change: &PresenceChange, sequence: u64) -> Self {
        Self {
            extension: change.extension.clone().into(),
            status: change.status,
            previous_status: change.previous_status,
            cause: change.cause.clone().into(),
            at: rfc3339(change.at),
            sequence,
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

/// One side of a call.
#[derive(SimpleObject)]
pub struct CallParty {
    pub extension_id: Option<ID>,
    pub number: String,
    pub name: Option<String>,
}

/// A call: its record while it rings, once answered, and after it ended.
pub struct CallObject(pub crate::domain::Call);

#[Object(name = "Call")]
impl CallObject {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn sip_call_id(&self) -> &str {
        &self.0.sip_call_id
    }
    async fn direction(&self) -> crate::domain::CallDirection {
        self.0.direction
    }
    async fn caller(&self) -> CallParty {
        CallParty {
            extension_id: self.0.caller_extension_id.clone().map(ID),
            number: self.0.caller_number.clone(),
            name: self.0.caller_name.clone(),
        }
    }
    async fn callee(&self) -> CallParty {
        CallParty {
            extension_id: self.0.callee_extension_id.clone().map(ID),
            number: self.0.callee_number.clone(),
            name: self.0.callee_name.clone(),
        }
    }
    async fn state(&self) -> crate::domain::CallState {
        self.0.state
    }
    async fn started_at(&self) -> String {
        rfc3339(self.0.started_at)
    }
    async fn answered_at(&self) -> Option<String> {
        self.0.answered_at.map(rfc3339)
    }
    async fn ended_at(&self) -> Option<String> {
        self.0.ended_at.map(rfc3339)
    }
    /// The device that answered.
    async fn answered_by(&self) -> Option<ID> {
        self.0.answered_by.clone().map(ID)
    }
    async fn disposition(&self) -> Option<crate::domain::Disposition> {
        self.0.disposition
    }
    async fn hangup_side(&self) -> Option<crate::domain::HangupSide> {
        self.0.hangup_side
    }
    async fn end_reason(&self) -> Option<&str> {
        self.0.end_reason.as_deref()
    }
    async fn forwarded_to(&self) -> Option<&str> {
        self.0.forwarded_to.as_deref()
    }
}

#[derive(SimpleObject)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

/// A page of calls, newest first.
#[derive(SimpleObject)]
pub struct CallConnection {
    pub nodes: Vec<CallObject>,
    pub page_info: PageInfo,
}

/// A call rang, was answered or ended.
#[derive(SimpleObject)]
pub struct CallEvent {
    pub kind: crate::domain::CallState,
    pub call: CallObject,
    pub at: String,
    pub sequence: u64,
}

/// A voicemail mailbox (one per extension with voicemail on; id `vm_<number>`).
pub struct Mailbox(pub crate::domain::Mailbox);

#[Object(name = "Mailbox")]
impl Mailbox {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn extension_id(&self) -> ID {
        ID(self.0.extension_id.clone())
    }
    async fn extension_number(&self) -> &str {
        &self.0.extension_number
    }
    async fn extension_name(&self) -> &str {
        &self.0.extension_name
    }
    async fn message_count(&self) -> u32 {
        self.0.message_count
    }
    async fn new_messages(&self) -> u32 {
        self.0.new_messages
    }
    /// `default` (the shipped prompt) or `custom` (uploaded with `PUT …/greeting`).
    async fn greeting_type(&self) -> GreetingType {
        self.0.greeting
    }
    async fn notify_email(&self) -> Option<&str> {
        self.0.notify_email.as_deref()
    }
    /// Whether a PIN is set; the PIN itself is never shown.
    async fn pin_set(&self) -> bool {
        self.0.pin_set
    }
    async fn max_message_seconds(&self) -> u32 {
        self.0.max_message_seconds
    }
    async fn retention_days(&self) -> u32 {
        self.0.retention_days
    }
}

/// A voicemail message; its audio is at `audioUrl` (WAV, Range requests).
pub struct VoicemailMessageObject(pub crate::domain::VoicemailMessage);

#[Object(name = "VoicemailMessage")]
impl VoicemailMessageObject {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn mailbox_id(&self) -> ID {
        ID(self.0.mailbox_id.clone())
    }
    async fn caller_number(&self) -> &str {
        &self.0.caller_number
    }
    async fn caller_name(&self) -> Option<&str> {
        self.0.caller_name.as_deref()
    }
    async fn duration_ms(&self) -> i64 {
        self.0.duration_ms
    }
    async fn created_at(&self) -> String {
        rfc3339(self.0.created_at)
    }
    async fn heard(&self) -> bool {
        self.0.heard
    }
    async fn audio_url(&self) -> String {
        format!(
            "/v1/pbx/voicemail/mailboxes/{}/messages/{}/audio",
            self.0.mailbox_id, self.0.id
        )
    }
}

/// A message was deposited, heard, marked unheard, deleted or purged.
#[derive(SimpleObject)]
pub struct VoicemailEvent {
    pub kind: crate::events::VoicemailChangeKind,
    pub mailbox_id: ID,
    pub extension: ExtensionRefObject,
    pub message: Option<VoicemailMessageObject>,
    pub new_messages: u32,
    pub old_messages: u32,
    pub at: String,
    pub sequence: u64,
}

impl VoicemailEvent {
    pub fn from_change(change: &crate::events::VoicemailChange, sequence: u64) -> Self {
        Self {
            kind: change.kind,
            mailbox_id: ID(change.mailbox_id.clone()),
            extension: change.extension.clone().into(),
            message: change.message.clone().map(VoicemailMessageObject),
            new_messages: change.new_messages,
            old_messages: change.old_messages,
            at: rfc3339(change.at),
            sequence,
        }
    }
}
