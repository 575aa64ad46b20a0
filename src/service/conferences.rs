//! Conference rooms, live. The SIP conference application reports who joins and leaves,
//! who is muted and who talks; every change is published on the bus, and a room that
//! becomes occupied or empty moves its extension's status (busy / available). The API
//! reads the rooms of the caller's PBX and asks for mutes and kicks, which the SIP
//! application carries out through the [`ConferenceControl`] it registered at start.

use super::{ServiceError, ServiceResult, Services};
use crate::auth::{Principal, Scope};
use crate::domain::{
    ConferenceEventKind, Extension, ExtensionRef, ExtensionType, Participant, Room, room_status,
};
use crate::events::{
    CauseKind, ChangeKind, ConferenceChange, Event, ExtensionChange, PresenceCause, PresenceChange,
};
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
    pub(crate) fn occupied_rooms(&self, pbx_id: &str) -> Vec<(ExtensionRef, Vec<Participant>)> {
        self.conferences
            .rooms
            .read_unpoisoned()
            .values()
            .filter(|r| r.pbx_id == pbx_id)
            .map(|r| (r.extension.clone(), r.participants.clone()))
            .collect()
    }

    /// `participant` was admitted to `room` (after its PIN, when there is one). The
    /// first one in makes the room's extension busy.
    pub async fn conference_joined(
        &self,
        pbx_id: &str,
        room: &ExtensionRef,
        participant: Participant,
    ) {
        // The room's extension lock orders joins and leaves with each other and with
        // changes to the extension, so status events come in the order they happened.
        let _guard = self.locks.lock(&room.id).await;
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
        let who = participant_label(&participant);
        self.announce_conference(
            pbx_id,
            room,
            ConferenceEventKind::Joined,
            participant,
            count,
        );
        if count == 1 {
            self.room_status_moved(
                pbx_id,
                room,
                0,
                1,
                format!("{who} joined the room"),
                "joined",
            )
            .await;
        }
    }

    /// A participant left (hung up, was kicked, timed out). The last one out makes the
    /// room's extension available again.
    pub async fn conference_left(&self, pbx_id: &str, room: &ExtensionRef, participant_id: &str) {
        let _guard = self.locks.lock(&room.id).await;
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
        let (participant, count) = left;
        let who = participant_label(&participant);
        self.announce_conference(pbx_id, room, ConferenceEventKind::Left, participant, count);
        if count == 0 {
            self.room_status_moved(
                pbx_id,
                room,
                1,
                0,
                format!("{who} left: the room is empty"),
                "left",
            )
            .await;
        }
    }

    /// A room went from empty to occupied or back: its extension's status moved, which
    /// `presenceChanged` and `extensionChanged` report as they do for devices and calls.
    async fn room_status_moved(
        &self,
        pbx_id: &str,
        room: &ExtensionRef,
        before: usize,
        after: usize,
        description: String,
        reason: &str,
    ) {
        let (old, new) = (room_status(before), room_status(after));
        let at = crate::clock::now_ms();
        // The stored extension, for its current name and the `extensionChanged` view; a
        // room deleted meanwhile has nobody left to tell.
        let extension = match self.store.extension_by_id(pbx_id, &room.id).await {
            // Made another type meanwhile: its status no longer follows the room.
            Ok(Some(ext)) if ext.kind == ExtensionType::Conference => ext,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, conference = %room.number, "room status not announced");
                return;
            }
        };
        self.bus.publish(Event::Presence(PresenceChange {
            pbx_id: pbx_id.to_owned(),
            extension: ExtensionRef::from(&extension),
            status: new,
            previous_status: Some(old),
            cause: PresenceCause {
                reason: Some(reason.to_owned()),
                ..PresenceCause::simple(CauseKind::Conference, description)
            },
            at,
        }));
        let view = self.view(extension);
        self.bus.publish(Event::Extension(ExtensionChange {
            pbx_id: pbx_id.to_owned(),
            kind: ChangeKind::Updated,
            extension: view,
            at,
        }));
    }

    /// The conference extension `key` (its id or number) of the caller's PBX; any
    /// other extension, or one of another PBX, is not a conference it can see.
    async fn conference_extension(
        &self,
        principal: &Principal,
        key: &str,
    ) -> ServiceResult<Extension> {
        let by_id = self.store.extension_by_id(&principal.pbx_id, key).await?;
        let ext = match by_id {
            Some(ext) => Some(ext),
            None => {
                self.store
                    .extension_by_number(&principal.pbx_id, key)
                    .await?
            }
        };
        ext.filter(|e| e.kind == ExtensionType::Conference)
            .ok_or(ServiceError::NotFound("conference"))
    }

    fn room_of(&self, ext: &Extension) -> Room {
        Room {
            extension: ExtensionRef::from(ext),
            max_participants: ext.max_participants,
            participants: self.room_participants(&ext.id),
        }
    }

    /// The conference rooms of the caller's PBX by number, with who is in each; only
    /// the occupied ones when `occupied_only`.
    pub async fn list_conferences(
        &self,
        principal: &Principal,
        occupied_only: bool,
    ) -> ServiceResult<Vec<Room>> {
        principal.require(Scope::ConferencesRead)?;
        let mut live: HashMap<String, Vec<Participant>> = self
            .occupied_rooms(&principal.pbx_id)
            .into_iter()
            .map(|(ext, participants)| (ext.id, participants))
            .collect();
        Ok(self
            .store
            .list_extensions(&principal.pbx_id)
            .await?
            .into_iter()
            .filter(|e| e.kind == ExtensionType::Conference)
            .map(|e| Room {
                participants: live.remove(&e.id).unwrap_or_default(),
                max_participants: e.max_participants,
                extension: ExtensionRef::from(&e),
            })
            .filter(|room| !occupied_only || !room.participants.is_empty())
            .collect())
    }

    /// One conference room of the caller's PBX, by its extension's id or number.
    pub async fn get_conference(&self, principal: &Principal, key: &str) -> ServiceResult<Room> {
        principal.require(Scope::ConferencesRead)?;
        let ext = self.conference_extension(principal, key).await?;
        Ok(self.room_of(&ext))
    }

    /// The room and the participant an API request names, and what carries out its
    /// mute or kick: 404 for a room or participant the caller cannot see, 503 when
    /// SIP does not run here.
    async fn participant_in(
        &self,
        principal: &Principal,
        key: &str,
        participant_id: &str,
    ) -> ServiceResult<(Extension, Participant, &Arc<dyn ConferenceControl>)> {
        principal.require(Scope::ConferencesWrite)?;
        let ext = self.conference_extension(principal, key).await?;
        let control = self
            .conference_control()
            .ok_or(ServiceError::SipUnavailable)?;
        let participant = self
            .room_participants(&ext.id)
            .into_iter()
            .find(|p| p.id == participant_id)
            .ok_or(ServiceError::NotFound("participant"))?;
        Ok((ext, participant, control))
    }

    /// Mutes or unmutes a participant; the participant as it will be once the room has
    /// done it (`MUTED` / `UNMUTED` follow on the bus).
    pub async fn mute_participant(
        &self,
        principal: &Principal,
        key: &str,
        participant_id: &str,
        muted: bool,
    ) -> ServiceResult<Participant> {
        let (ext, participant, control) =
            self.participant_in(principal, key, participant_id).await?;
        if !control.mute(&ext.id, participant_id, muted) {
            // It left between the look-up and the request.
            return Err(ServiceError::NotFound("participant"));
        }
        tracing::info!(conference = %ext.number, participant = %participant_id, muted, pbx.id = %principal.pbx_id, "participant mute set");
        Ok(Participant {
            muted,
            ..participant
        })
    }

    /// Hangs up on a participant (a BYE from the room); `LEFT` follows on the bus.
    pub async fn kick_participant(
        &self,
        principal: &Principal,
        key: &str,
        participant_id: &str,
    ) -> ServiceResult<()> {
        let (ext, _, control) = self.participant_in(principal, key, participant_id).await?;
        if !control.kick(&ext.id, participant_id) {
            return Err(ServiceError::NotFound("participant"));
        }
        tracing::info!(conference = %ext.number, participant = %participant_id, pbx.id = %principal.pbx_id, "participant kicked");
        Ok(())
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

/// How a presence cause names a participant: its caller ID name, else its number.
fn participant_label(p: &Participant) -> String {
    p.caller_name
        .clone()
        .unwrap_or_else(|| p.caller_number.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ScopeSet, jwt::JwtKeys};
    use crate::domain::PresenceStatus;
    use crate::events::{Bus, Delivery};
    use crate::service::{ExtensionDraft, Field};
    use crate::store::Store;
    use tokio_stream::StreamExt;

    struct Fixture {
        services: Arc<Services>,
        principal: Principal,
        room: ExtensionRef,
        dir: std::path::PathBuf,
    }

    async fn fixture() -> Fixture {
        let dir = std::env::temp_dir().join(format!("sb-conf-{}", crate::ids::lower_alnum(12)));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(None, &dir).await.unwrap();
        let services = Services::new(store, Bus::new(64), JwtKeys::new(&[1; 32], 60).unwrap());
        let (pbx, _) = services
            .bootstrap()
            .ensure_default("127.0.0.1")
            .await
            .unwrap()
            .unwrap();
        let principal = Principal {
            pbx_id: pbx.id,
            key_id: "key_test".into(),
            scopes: ScopeSet::all(),
        };
        let draft = ExtensionDraft {
            number: Field::Value("800".into()),
            name: Field::Value("Board".into()),
            kind: Field::Value(ExtensionType::Conference),
            ..Default::default()
        };
        let created = services.create_extension(&principal, draft).await.unwrap();
        let room = ExtensionRef::from(&created.extension.extension);
        Fixture {
            services,
            principal,
            room,
            dir,
        }
    }

    fn participant(id: &str) -> Participant {
        Participant {
            id: id.into(),
            call_id: "call_x".into(),
            caller_number: "101".into(),
            caller_name: Some("Alice".into()),
            joined_at: 0,
            muted: false,
            talking: false,
            codec: "PCMU".into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mutes_and_kicks_without_sip_are_unavailable_not_a_panic() {
        let f = fixture().await;
        f.services
            .conference_joined(&f.principal.pbx_id, &f.room, participant("par_1"))
            .await;
        let err = f
            .services
            .mute_participant(&f.principal, "800", "par_1", true)
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::SipUnavailable), "{err:?}");
        let err = f
            .services
            .kick_participant(&f.principal, "800", "par_1")
            .await
            .unwrap_err();
        assert!(matches!(err, ServiceError::SipUnavailable), "{err:?}");
        // A room it cannot see is still a 404 first.
        let err = f
            .services
            .kick_participant(&f.principal, "801", "par_1")
            .await
            .unwrap_err();
        assert!(
            matches!(err, ServiceError::NotFound("conference")),
            "{err:?}"
        );
        let _ = std::fs::remove_dir_all(f.dir);
    }

    async fn status(f: &Fixture) -> PresenceStatus {
        f.services
            .get_extension_by_number(&f.principal, "800")
            .await
            .unwrap()
            .status
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_first_in_and_the_last_out_move_the_rooms_status() {
        let f = fixture().await;
        let pbx = f.principal.pbx_id.clone();
        let sub = f.services.subscribe_events(Some(&pbx), |e| {
            matches!(e, Event::Presence(_) | Event::Extension(_))
        });
        let mut rx = sub.receiver;
        assert_eq!(status(&f).await, PresenceStatus::Available);
        f.services
            .conference_joined(&pbx, &f.room, participant("par_1"))
            .await;
        f.services
            .conference_joined(&pbx, &f.room, participant("par_2"))
            .await;
        assert_eq!(status(&f).await, PresenceStatus::Busy);
        f.services.conference_left(&pbx, &f.room, "par_1").await;
        assert_eq!(status(&f).await, PresenceStatus::Busy);
        f.services.conference_left(&pbx, &f.room, "par_2").await;
        assert_eq!(status(&f).await, PresenceStatus::Available);

        let mut seen = Vec::new();
        while let Ok(Some(Delivery::Event(envelope))) =
            tokio::time::timeout(std::time::Duration::from_millis(100), rx.next()).await
        {
            seen.push(match &envelope.event {
                Event::Presence(p) => format!(
                    "presence {:?}->{:?} {:?}",
                    p.previous_status, p.status, p.cause.reason
                ),
                Event::Extension(e) => format!("extension {:?}", e.extension.status),
                other => format!("{other:?}"),
            });
        }
        assert_eq!(
            seen,
            [
                "presence Some(Available)->Busy Some(\"joined\")",
                "extension Busy",
                "presence Some(Busy)->Available Some(\"left\")",
                "extension Available",
            ],
            "one status change per transition, none for the second caller"
        );
        let _ = std::fs::remove_dir_all(f.dir);
    }
}
