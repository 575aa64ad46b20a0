//! Conference rooms: a room with who is in it, a participant, and the event of a room
//! changing (`conferenceEvents`).

use super::ExtensionRef;
use crate::clock::rfc3339;
use crate::domain::{self, ConferenceEventKind};
use crate::events::ConferenceChange;
use async_graphql::{ID, SimpleObject};

/// One caller in a conference room.
#[derive(SimpleObject, Clone)]
pub struct ConferenceParticipant {
    /// `par_…`: names the participant for mute and kick.
    pub id: ID,
    /// The call record of the participant's call.
    pub call_id: ID,
    pub caller_id_number: String,
    pub caller_id_name: Option<String>,
    pub joined_at: String,
    pub muted: bool,
    pub talking: bool,
    /// `PCMU`, `PCMA` or `G722`.
    pub codec: String,
}

impl From<domain::Participant> for ConferenceParticipant {
    fn from(p: domain::Participant) -> Self {
        Self {
            id: ID(p.id),
            call_id: ID(p.call_id),
            caller_id_number: p.caller_number,
            caller_id_name: p.caller_name,
            joined_at: rfc3339(p.joined_at),
            muted: p.muted,
            talking: p.talking,
            codec: p.codec,
        }
    }
}

/// A conference extension's room and who is in it right now.
#[derive(SimpleObject)]
pub struct Conference {
    pub extension: ExtensionRef,
    /// Callers the room takes at once; one more gets 486 Busy Here.
    pub max_participants: u32,
    pub participant_count: u32,
    /// Participants talking right now.
    pub talking_count: u32,
    pub participants: Vec<ConferenceParticipant>,
}

impl From<domain::Room> for Conference {
    fn from(room: domain::Room) -> Self {
        Self {
            extension: room.extension.into(),
            max_participants: u32::from(room.max_participants),
            participant_count: room.participants.len() as u32,
            talking_count: room.participants.iter().filter(|p| p.talking).count() as u32,
            participants: room.participants.into_iter().map(Into::into).collect(),
        }
    }
}

/// Something happened in a room: a `SNAPSHOT` (or, after falling behind, `RESYNC`) of
/// each watched room with its participants, then each join, leave, mute and talk.
#[derive(SimpleObject)]
pub struct ConferenceEvent {
    pub kind: ConferenceEventKind,
    /// The conference extension (its room).
    pub conference: ExtensionRef,
    /// Who the event is about, as it is after the change; `null` on `SNAPSHOT`/`RESYNC`.
    pub participant: Option<ConferenceParticipant>,
    /// Everyone in the room, on `SNAPSHOT`/`RESYNC` only (`null` otherwise).
    pub participants: Option<Vec<ConferenceParticipant>>,
    /// How many are in the room after the event.
    pub participant_count: u32,
    pub at: String,
    pub sequence: u64,
}

impl ConferenceEvent {
    pub fn from_change(change: &ConferenceChange, sequence: u64) -> Self {
        Self {
            kind: change.kind,
            conference: change.room.clone().into(),
            participant: Some(change.participant.clone().into()),
            participants: None,
            participant_count: change.participants,
            at: rfc3339(change.at),
            sequence,
        }
    }

    /// A room as it is: `kind` is `SNAPSHOT` or `RESYNC`.
    pub fn of_room(kind: ConferenceEventKind, room: domain::Room, at: i64, sequence: u64) -> Self {
        Self {
            kind,
            conference: room.extension.into(),
            participant: None,
            participant_count: room.participants.len() as u32,
            participants: Some(room.participants.into_iter().map(Into::into).collect()),
            at: rfc3339(at),
            sequence,
        }
    }
}
