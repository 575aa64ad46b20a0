//! Conference rooms, live. The SIP conference application reports who joins and leaves,
//! who is muted and who talks; every change is published on the bus. The API reads the
//! rooms and asks for mutes and kicks, which the SIP application carries out through
//! the [`ConferenceControl`] it registered at start.

use super::Services;
use crate::domain::{ConferenceEventKind, ExtensionRef, Participant};
use crate::events::{ConferenceChange, Event};
use crate::sync::RwLockExt;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// What the API may ask of the rooms; implemented by the SIP conference application.
pub trait ConferenceControl: Send + Sync + 'static {
    /// Mutes or unmutes a participant; false when it is not in that room.
    fn mute(&self, room_extension_id: &str, participant_id: &str, muted: bool) -> bool;
    /// Hangs up on a participant (a BYE); false when it is not in that room.
    fn kick(&self, room_extension_id: &str, participant_id: &str) -> bool;
}

struct LiveRoom {
    pbx_id: String,
    extension: ExtensionRef,
    participants: Vec<Participant>,
}

/// Who is in each occupied room, by conference extension id.
#[derive(Default)]
pub struct ConferenceRegistry {
    rooms: RwLock<HashMap<String, LiveRoom>>,
    control: OnceLock<Arc<dyn ConferenceControl>>,
}

impl Services {
    /// Registers what carries out mutes and kicks (the SIP conference application).
    pub fn set_conference_control(&self, control: Arc<dyn ConferenceControl>) {
        let _ = self.conferences.control.set(control);
    }

    /// What carries out mutes and kicks, when SIP runs.
    #[expect(dead_code, reason = "used by the conference API, which lands next")]
    pub(crate) fn conference_control(&self) -> Option<&Arc<dyn ConferenceControl>> {
        self.conferences.control.get()
    }

    /// Participants in a conference extension's room right now.
    pub fn room_occupancy(&self, extension_id: &str) -> usize {
        self.conferences
            .rooms
            .read_unpoisoned()
            .get(extension_id)
            .map_or(0, |r| r.participants.len())
    }

    /// Who is in a room right now (empty when nobody is).
    pub fn room_participants(&self, extension_id: &str) -> Vec<Participant> {
        self.conferences
            .rooms
            .read_unpoisoned()
            .get(extension_id)
            .map(|r| r.participants.clone())
            .unwrap_or_default()
    }

    /// Occupied rooms of a PBX, with their participants.
    #[expect(dead_code, reason = "used by the conference API, which lands next")]
    pub(crate) fn occupied_rooms(&self, pbx_id: &str) -> Vec<(ExtensionRef, Vec<Participant>)> {
        self.conferences
            .rooms
            .read_unpoisoned()
            .values()
            .filter(|r| r.pbx_id == pbx_id)
            .map(|r| (r.extension.clone(), r.participants.clone()))
            .collect()
    }

    /// `participant` was admitted to `room` (after its PIN, when there is one).
    pub fn conference_joined(&self, pbx_id: &str, room: &ExtensionRef, participant: Participant) {
        let count = {
            let mut rooms = self.conferences.rooms.write_unpoisoned();
            let live = rooms.entry(room.id.clone()).or_insert_with(|| LiveRoom {
                pbx_id: pbx_id.to_owned(),
                extension: room.clone(),
                participants: Vec::new(),
            });
            live.participants.push(participant.clone());
            live.participants.len()
        };
        self.announce_conference(
            pbx_id,
            room,
            ConferenceEventKind::Joined,
            participant,
            count,
        );
    }

    /// A participant left (hung up, was kicked, timed out).
    pub fn conference_left(&self, pbx_id: &str, room: &ExtensionRef, participant_id: &str) {
        let left = {
            let mut rooms = self.conferences.rooms.write_unpoisoned();
            let Some(live) = rooms.get_mut(&room.id) else {
                return;
            };
            let Some(i) = live
                .participants
                .iter()
                .position(|p| p.id == participant_id)
            else {
                return;
            };
            let participant = live.participants.remove(i);
            let count = live.participants.len();
            if count == 0 {
                rooms.remove(&room.id);
            }
            (participant, count)
        };
        self.announce_conference(pbx_id, room, ConferenceEventKind::Left, left.0, left.1);
    }

    /// A participant's mute or talking state changed.
    pub fn conference_changed(
        &self,
        pbx_id: &str,
        room: &ExtensionRef,
        participant_id: &str,
        kind: ConferenceEventKind,
    ) {
        let changed = {
            let mut rooms = self.conferences.rooms.write_unpoisoned();
            let Some(live) = rooms.get_mut(&room.id) else {
                return;
            };
            let count = live.participants.len();
            let Some(p) = live
                .participants
                .iter_mut()
                .find(|p| p.id == participant_id)
            else {
                return;
            };
            match kind {
                ConferenceEventKind::Muted => p.muted = true,
                ConferenceEventKind::Unmuted => p.muted = false,
                ConferenceEventKind::TalkingStarted => p.talking = true,
                ConferenceEventKind::TalkingStopped => p.talking = false,
                _ => return,
            }
            (p.clone(), count)
        };
        self.announce_conference(pbx_id, room, kind, changed.0, changed.1);
    }

    fn announce_conference(
        &self,
        pbx_id: &str,
        room: &ExtensionRef,
        kind: ConferenceEventKind,
        participant: Participant,
        participants: usize,
    ) {
        self.bus
            .publish(Event::Conference(Box::new(ConferenceChange {
                pbx_id: pbx_id.to_owned(),
                room: room.clone(),
                kind,
                participant,
                participants: participants as u32,
                at: crate::clock::now_ms(),
            })));
    }
}
