//! Voicemail: mailboxes, messages, and the event of a message deposited, heard,
//! deleted or purged.

use super::ExtensionRef;
use crate::clock::rfc3339;
use crate::domain::{self, GreetingType};
use crate::events;
use async_graphql::{ID, Object, SimpleObject};

/// A voicemail mailbox (one per extension with voicemail on; id `vm_<number>`).
pub struct Mailbox(pub domain::Mailbox);

#[Object]
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
pub struct VoicemailMessage(pub domain::VoicemailMessage);

#[Object]
impl VoicemailMessage {
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
    pub kind: events::VoicemailChangeKind,
    pub mailbox_id: ID,
    pub extension: ExtensionRef,
    pub message: Option<VoicemailMessage>,
    pub new_messages: u32,
    pub old_messages: u32,
    pub at: String,
    pub sequence: u64,
}

impl VoicemailEvent {
    pub fn from_change(change: &events::VoicemailChange, sequence: u64) -> Self {
        Self {
            kind: change.kind,
            mailbox_id: ID(change.mailbox_id.clone()),
            extension: change.extension.clone().into(),
            message: change.message.clone().map(VoicemailMessage),
            new_messages: change.new_messages,
            old_messages: change.old_messages,
            at: rfc3339(change.at),
            sequence,
        }
    }
}
