//! Presence reports and the extension an event names.

use crate::clock::rfc3339;
use crate::domain::{self, PresenceStatus};
use crate::events::{self, CauseKind, PresenceChange};
use async_graphql::{ID, SimpleObject};

/// Which extension an event is about.
#[derive(SimpleObject, Clone)]
pub struct ExtensionRef {
    pub id: ID,
    pub number: String,
    pub name: String,
}

impl From<domain::ExtensionRef> for ExtensionRef {
    fn from(r: domain::ExtensionRef) -> Self {
        Self {
            id: ID(r.id),
            number: r.number,
            name: r.name,
        }
    }
}

/// Why presence changed.
#[derive(SimpleObject, Clone)]
pub struct PresenceCause {
    pub kind: CauseKind,
    pub description: String,
    /// Within the kind: e.g. `registered`, `expired`, `unregistered`, `replaced`.
    pub reason: Option<String>,
    pub device_id: Option<ID>,
    pub call_id: Option<ID>,
}

impl From<events::PresenceCause> for PresenceCause {
    fn from(c: events::PresenceCause) -> Self {
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
    pub extension: ExtensionRef,
    pub status: PresenceStatus,
    /// `null` in snapshot and resync reports.
    pub previous_status: Option<PresenceStatus>,
    pub cause: PresenceCause,
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
