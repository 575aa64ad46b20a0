//! Conference rooms over SIP: a call to a conference extension's number is answered
//! here (we are the UAS), its media joins the extension's room (one per conference
//! extension, started with its first caller, stopped with its last), and the room's
//! events become the service layer's (who joined, left, talks) and BYEs (a participant
//! timed out or failed its PIN). The API's mutes and kicks arrive through
//! [`ConferenceControl`]. The mixing itself is [`crate::media`]'s.

use super::message::{Method, Name, Request, Response};
use super::stack::transaction::TxKey;
use super::stack::transport::Origin;
use super::stack::{RequestCtx, SipStack};
use super::uas::UasCall;
use crate::domain::{
    ConferenceEventKind, Disposition, Extension, ExtensionRef, HangupSide, Participant,
};
use crate::media::mixer::{LeaveReason, ParticipantId, RoomConfig, RoomEvent};
use crate::media::negotiate::{self, Local, Policy, SdpError};
use crate::media::ports::PortPool;
use crate::media::room::{self, RoomHandle};
use crate::media::session::RtpSession;
use crate::service::{CallHandle, ConferenceControl, Services};
use crate::sync::MutexExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Who answers as `Contact` and `answered_by` for calls the rooms take.
const CONFERENCE: &str = "conference";

/// One caller in a room.
struct Member {
    uas: UasCall,
    call: Arc<CallHandle>,
    room: Arc<LiveRoom>,
    /// The participant as the API names it (`par_…`).
    participant: Participant,
    /// Its place in the room's mix.
    media: ParticipantId,
    /// Admitted to the mix (after its PIN): the service layer knows it.
    admitted: AtomicBool,
    /// Why it is leaving, set by whoever takes it out first.
    leaving: Mutex<Option<(HangupSide, Option<&'static str>)>>,
    /// Our side of the session description: same port, version up on every answer.
    local: Mutex<Local>,
}

/// One conference extension's room while anyone is in it.
struct LiveRoom {
    pbx_id: String,
    extension: ExtensionRef,
    handle: RoomHandle,
    stop: CancellationToken,
    members: Mutex<HashMap<ParticipantId, Arc<Member>>>,
}

/// The conference application: live rooms by conference extension id, and their
/// callers by SIP Call-ID.
pub struct Conference {
    stack: Arc<SipStack>,
    services: Arc<Services>,
    rooms: Mutex<HashMap<String, Arc<LiveRoom>>>,
    calls: Mutex<HashMap<String, Arc<Member>>>,
    media_ports: Arc<PortPool>,
    rtp_timeout: Duration,
    /// This application, for the tasks it starts.
    me: Weak<Conference>,
}

impl Conference {
    pub fn new(
        stack: Arc<SipStack>,
        services: Arc<Services>,
        media_ports: Arc<PortPool>,
        rtp_timeout: Duration,
    ) -> Arc<Self> {
        let conference = Arc::new_cyclic(|me| Self {
            stack,
            services: services.clone(),
            rooms: Default::default(),
            calls: Default::default(),
            media_ports,
            rtp_timeout,
            me: me.clone(),
        });
        services.set_conference_control(Arc::new(Control(Arc::downgrade(&conference))));
        conference
    }

    /// Whether `call_id` is a call in one of the rooms.
    pub fn knows(&self, call_id: &str) -> bool {
        self.calls.lock_unpoisoned().contains_key(call_id)
    }

    /// Callers in rooms right now.
    pub fn len(&self) -> usize {
        self.calls.lock_unpoisoned().len()
    }

    /// A call to a conference extension: answered with our SDP, its media into the
    /// room. Returns the failure response instead when the call cannot join (no usable
    /// offer, a full room, no free RTP port).
    pub async fn join(
        &self,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        key: TxKey,
        ext: &Extension,
        call: Arc<CallHandle>,
    ) -> Result<(), Response> {
        // We are the UAS: no option tag a caller may require is ours.
        if let Some(resp) = self.stack.unsupported(req, ctx, origin, &Name::Require) {
            return Err(resp);
        }
        let params = match negotiate::parse(&req.body)
            .and_then(|offer| negotiate::answer(&offer, Policy::default()))
        {
            Ok(params) => params,
            Err(e) => return Err(self.refuse_offer(req, ctx, origin, &e)),
        };
        let room = self.room_for(ext);
        if room.members.lock_unpoisoned().len() >= usize::from(ext.max_participants) {
            self.forget_room_if_empty(&room);
            return Err(self.stack.warned(
                req,
                ctx,
                origin,
                486,
                "Busy Here",
                "the conference room is full",
            ));
        }
        let lease = match self.media_ports.lease(self.stack.bound_addr().ip()) {
            Ok(lease) => lease,
            Err(e) => {
                tracing::warn!(error = %e, "no RTP port for a conference caller");
                self.forget_room_if_empty(&room);
                let mut resp = self
                    .stack
                    .response(req, ctx, origin, 503, "Service Unavailable");
                resp.headers.push(Name::Other("Retry-After".into()), "5");
                return Err(resp);
            }
        };
        let session_id: u64 = rand::random::<u32>().into();
        let local = Local {
            ip: self.stack.media_ip(),
            port: lease.port,
            session_id,
            version: 1,
        };
        let sdp = negotiate::answer_sdp(&local, &params);
        if let Err(e) = self
            .services
            .answer_call(&call, Some(CONFERENCE.to_owned()))
            .await
        {
            tracing::error!(error = %e, "call record not stored");
            self.forget_room_if_empty(&room);
            return Err(self
                .stack
                .response(req, ctx, origin, 500, "Server Internal Error"));
        }
        let snapshot = call.snapshot().await;
        let codec = params.codec.name().to_owned();
        let Ok(media) = room.handle.add(RtpSession::new(lease, params), false).await else {
            self.forget_room_if_empty(&room);
            return Err(self
                .stack
                .response(req, ctx, origin, 500, "Server Internal Error"));
        };
        let (uas, ok) = UasCall::answer(&self.stack, req, ctx, origin, key, CONFERENCE, &sdp);
        let member = Arc::new(Member {
            uas,
            call,
            room: room.clone(),
            participant: Participant {
                id: crate::ids::resource_id("par"),
                call_id: snapshot.id.clone(),
                caller_number: snapshot.caller_number.clone(),
                caller_name: snapshot.caller_name.clone(),
                joined_at: crate::clock::now_ms(),
                muted: false,
                talking: false,
                codec,
            },
            media,
            admitted: AtomicBool::new(false),
            leaving: Mutex::new(None),
            local: Mutex::new(local),
        });
        room.members.lock_unpoisoned().insert(media, member.clone());
        self.calls
            .lock_unpoisoned()
            .insert(ctx.call_id.clone(), member.clone());
        // Findable by its Call-ID now: its ACK may come back at once.
        self.stack.send_to(origin, ok.clone());
        tracing::info!(sip.call_id = %ctx.call_id, conference = %ext.number, participant = %member.participant.id, "conference caller answered");
        let stack = self.stack.clone();
        tokio::spawn(async move {
            if !member.uas.await_ack(&stack, ok).await {
                tracing::info!(participant = %member.participant.id, "no ACK for the conference's 200");
                member
                    .leave(HangupSide::System, Some("no-ack"), &stack)
                    .await;
            }
        });
        Ok(())
    }

    /// 488 for an offer we cannot answer, 400 for one we cannot read.
    fn refuse_offer(
        &self,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        e: &SdpError,
    ) -> Response {
        match e {
            SdpError::Malformed(_) if req.body.is_empty() => self.stack.warned(
                req,
                ctx,
                origin,
                488,
                "Not Acceptable Here",
                "a conference needs an SDP offer in the INVITE",
            ),
            SdpError::Malformed(why) => {
                self.stack.warned(req, ctx, origin, 400, "Bad Request", why)
            }
            other => self.stack.warned(
                req,
                ctx,
                origin,
                488,
                "Not Acceptable Here",
                &format!("{other}; a conference takes G.722, PCMU or PCMA"),
            ),
        }
    }

    /// The extension's room, started when it is not running.
    fn room_for(&self, ext: &Extension) -> Arc<LiveRoom> {
        let mut rooms = self.rooms.lock_unpoisoned();
        if let Some(room) = rooms.get(&ext.id) {
            return room.clone();
        }
        let stop = self.stack.shutdown().child_token();
        let (handle, events) = room::spawn_room(
            RoomConfig {
                pin: ext.conference_pin.clone(),
                rtp_timeout: self.rtp_timeout,
                ..RoomConfig::default()
            },
            stop.clone(),
        );
        let room = Arc::new(LiveRoom {
            pbx_id: ext.pbx_id.clone(),
            extension: ExtensionRef::from(ext),
            handle,
            stop,
            members: Default::default(),
        });
        rooms.insert(ext.id.clone(), room.clone());
        let me = self.me.clone();
        let watched = room.clone();
        tokio::spawn(async move { watch_room(me, watched, events).await });
        room
    }

    /// Stops a room nobody is in any more (a caller who never made it in, or the last
    /// one out).
    fn forget_room_if_empty(&self, room: &Arc<LiveRoom>) {
        let mut rooms = self.rooms.lock_unpoisoned();
        if room.members.lock_unpoisoned().is_empty()
            && rooms
                .get(&room.extension.id)
                .is_some_and(|r| Arc::ptr_eq(r, room))
        {
            rooms.remove(&room.extension.id);
            room.stop.cancel();
        }
    }

    /// A request within a conference call: ACK, BYE, a re-INVITE that moves or holds
    /// the media, and the harmless rest.
    pub async fn request(
        &self,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
        key: Option<TxKey>,
    ) {
        let Some(member) = self.calls.lock_unpoisoned().get(&ctx.call_id).cloned() else {
            return;
        };
        if member
            .uas
            .refuse_stranger(&self.stack, req, ctx, origin, key)
        {
            return;
        }
        let Some(key) = key else {
            if req.method == Method::Ack {
                member.uas.acknowledge();
            }
            return;
        };
        let resp = match req.method {
            Method::Bye => {
                let resp = self.stack.response(req, ctx, origin, 200, "OK");
                self.stack.finish(key, origin, resp);
                member.uas.hung_up.cancel();
                return member.leave(HangupSide::Caller, None, &self.stack).await;
            }
            Method::Invite => self.reinvite(&member, req, ctx, origin).await,
            Method::Options | Method::Info | Method::Update | Method::Notify => {
                self.stack.response(req, ctx, origin, 200, "OK")
            }
            _ => {
                let mut resp = self
                    .stack
                    .response(req, ctx, origin, 405, "Method Not Allowed");
                resp.headers.push(Name::Allow, super::dispatch::ALLOW);
                resp
            }
        };
        self.stack.finish(key, origin, resp);
    }

    /// A re-INVITE: the new offer is answered on the same port (hold, resume, a new
    /// address or codec), and the room takes the new media.
    async fn reinvite(
        &self,
        member: &Member,
        req: &Request,
        ctx: &RequestCtx,
        origin: Origin,
    ) -> Response {
        let params = match negotiate::parse(&req.body)
            .and_then(|offer| negotiate::answer(&offer, Policy::default()))
        {
            Ok(params) => params,
            Err(e) => return self.refuse_offer(req, ctx, origin, &e),
        };
        let sdp = {
            let mut local = member.local.lock_unpoisoned();
            local.version += 1;
            negotiate::answer_sdp(&local, &params)
        };
        if member
            .room
            .handle
            .update_media(member.media, params)
            .await
            .is_err()
        {
            return self
                .stack
                .response(req, ctx, origin, 500, "Server Internal Error");
        }
        let mut resp = self.stack.response(req, ctx, origin, 200, "OK");
        resp.headers.push(
            Name::Contact,
            format!("<sip:{CONFERENCE}@{}>", self.stack.advertised()),
        );
        resp.headers.push(Name::ContentType, "application/sdp");
        resp.body = sdp.into_bytes();
        resp
    }

    fn member_by_participant(&self, room: &str, participant: &str) -> Option<Arc<Member>> {
        self.calls
            .lock_unpoisoned()
            .values()
            .find(|m| m.room.extension.id == room && m.participant.id == participant)
            .cloned()
    }

    /// A participant left the mix for good: its call ends, the service layer hears of
    /// it, and an empty room stops.
    async fn finish(&self, member: &Arc<Member>, reason: LeaveReason) {
        let (side, why) = member
            .leaving
            .lock_unpoisoned()
            .take()
            .unwrap_or(match reason {
                LeaveReason::Removed => (HangupSide::System, None),
                LeaveReason::RtpTimeout => (HangupSide::System, Some("no-media")),
                LeaveReason::PinFailed => (HangupSide::System, Some("pin-failed")),
            });
        if reason != LeaveReason::Removed {
            // The room let it go: hang up on the caller.
            member.uas.bye(&self.stack).await;
        }
        self.calls
            .lock_unpoisoned()
            .retain(|_, m| !Arc::ptr_eq(m, member));
        member.room.members.lock_unpoisoned().remove(&member.media);
        if member.admitted.swap(false, Ordering::AcqRel) {
            self.services
                .conference_left(
                    &member.room.pbx_id,
                    &member.room.extension,
                    &member.participant.id,
                )
                .await;
        }
        if let Err(e) = self
            .services
            .end_call(&member.call, Disposition::Answered, side, why)
            .await
        {
            tracing::error!(error = %e, "call record not stored");
        }
        self.forget_room_if_empty(&member.room);
    }
}

impl Member {
    /// Takes the participant out of the mix (its Left event finishes the call), once.
    async fn leave(&self, side: HangupSide, why: Option<&'static str>, stack: &Arc<SipStack>) {
        {
            let mut leaving = self.leaving.lock_unpoisoned();
            if leaving.is_some() {
                return;
            }
            *leaving = Some((side, why));
        }
        // Out of the mix first: the others hear the leave tone now, not once the phone
        // answers our BYE (which may take up to Timer F). The room answers with
        // Left(Removed), which finishes the call; a closed room has no one left to tell.
        let _ = self.room.handle.remove(self.media).await;
        if side == HangupSide::System {
            self.uas.bye(stack).await;
        }
    }
}

/// Turns one room's events into the service layer's and into hang-ups, until the room
/// stops.
async fn watch_room(
    conference: Weak<Conference>,
    room: Arc<LiveRoom>,
    mut events: mpsc::Receiver<RoomEvent>,
) {
    while let Some(event) = events.recv().await {
        let Some(conference) = conference.upgrade() else {
            return;
        };
        let member = |id: &ParticipantId| room.members.lock_unpoisoned().get(id).cloned();
        match event {
            RoomEvent::Joined(id) => {
                if let Some(m) = member(&id)
                    && !m.admitted.swap(true, Ordering::AcqRel)
                {
                    conference
                        .services
                        .conference_joined(&room.pbx_id, &room.extension, m.participant.clone())
                        .await;
                }
            }
            RoomEvent::Left(id, reason) => {
                // Its own task: hanging up on the caller waits for the BYE's answer,
                // and the room's other events must not.
                if let Some(m) = member(&id) {
                    tokio::spawn(async move { conference.finish(&m, reason).await });
                }
            }
            RoomEvent::TalkingStarted(id) | RoomEvent::TalkingStopped(id) => {
                if let Some(m) = member(&id)
                    && m.admitted.load(Ordering::Acquire)
                {
                    let kind = if matches!(event, RoomEvent::TalkingStarted(_)) {
                        ConferenceEventKind::TalkingStarted
                    } else {
                        ConferenceEventKind::TalkingStopped
                    };
                    conference.services.conference_changed(
                        &room.pbx_id,
                        &room.extension,
                        &m.participant.id,
                        kind,
                    );
                }
            }
            RoomEvent::PinRejected(id) => {
                tracing::info!(conference = %room.extension.number, participant = id, "wrong conference PIN");
            }
            RoomEvent::Digit(..) => {}
        }
    }
}

/// Mutes and kicks from the API, carried out on the SIP runtime.
struct Control(Weak<Conference>);

impl ConferenceControl for Control {
    fn mute(&self, room_extension_id: &str, participant_id: &str, muted: bool) -> bool {
        let Some(conference) = self.0.upgrade() else {
            return false;
        };
        let Some(member) = conference.member_by_participant(room_extension_id, participant_id)
        else {
            return false;
        };
        let runtime = conference.stack.runtime().clone();
        runtime.spawn(async move {
            if member.room.handle.mute(member.media, muted).await.is_ok() {
                conference.services.conference_changed(
                    &member.room.pbx_id,
                    &member.room.extension,
                    &member.participant.id,
                    if muted {
                        ConferenceEventKind::Muted
                    } else {
                        ConferenceEventKind::Unmuted
                    },
                );
            }
        });
        true
    }

    fn kick(&self, room_extension_id: &str, participant_id: &str) -> bool {
        let Some(conference) = self.0.upgrade() else {
            return false;
        };
        let Some(member) = conference.member_by_participant(room_extension_id, participant_id)
        else {
            return false;
        };
        let stack = conference.stack.clone();
        stack.runtime().clone().spawn(async move {
            member
                .leave(HangupSide::System, Some("kicked"), &stack)
                .await;
        });
        true
    }
}
