//! Conference rooms as people see them: who is in a room, since when, muted or talking.
//! The SIP conference application keeps the live state; the API reads it.

use super::ExtensionRef;

/// One caller in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// `par_…`: names the participant for mute and kick.
    pub id: String,
    /// The call record of the participant's call (`call_…`).
    pub call_id: String,
    pub caller_number: String,
    pub caller_name: Option<String>,
    /// Milliseconds since the epoch.
    pub joined_at: i64,
    pub muted: bool,
    pub talking: bool,
    /// The codec the participant's audio is in (`PCMU`, `PCMA`, `G722`).
    pub codec: String,
}

/// A conference extension's room and who is in it (empty rooms are listed too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub extension: ExtensionRef,
    /// Callers it takes at once.
    pub max_participants: u16,
    pub participants: Vec<Participant>,
}

/// What happened in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum ConferenceEventKind {
    /// The first report of a subscription: one per room, with its participants.
    Snapshot,
    /// A fresh report of a room after the subscriber fell behind.
    Resync,
    Joined,
    Left,
    Muted,
    Unmuted,
    TalkingStarted,
    TalkingStopped,
}
