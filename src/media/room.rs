//! A conference room as a task: one 20 ms timer drives its [`Mixer`]; a cheap
//! clonable [`RoomHandle`] sends it commands and a bounded channel carries its
//! [`RoomEvent`]s out. The SIP application creates rooms and feeds them sessions.

use super::mixer::{Mixer, ParticipantId, RoomConfig, RoomEvent};
use super::player::Sound;
use super::session::{MediaParams, RtpSession};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Commands queued per room; a sender waits when the room is this far behind.
const COMMANDS: usize = 64;
/// Events buffered for the application. When it does not keep up, further events
/// are dropped and counted (a log line says how many): the room never blocks on it.
pub const EVENTS: usize = 256;

/// The room task is gone (cancelled, or its event receiver was dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the room is closed")]
pub struct RoomClosed;

/// Who a sound is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    All,
    One(ParticipantId),
}

enum Command {
    Add(ParticipantId, Box<RtpSession>, bool),
    Remove(ParticipantId, oneshot::Sender<Option<RtpSession>>),
    Mute(ParticipantId, bool),
    Hold(ParticipantId, bool),
    Update(ParticipantId, MediaParams),
    Play(Target, Sound, bool),
    Stop(Target),
}

/// Talks to a room task. Clone it freely.
#[derive(Clone)]
pub struct RoomHandle {
    commands: mpsc::Sender<Command>,
    next_id: Arc<AtomicU64>,
}

impl RoomHandle {
    async fn send(&self, c: Command) -> Result<(), RoomClosed> {
        self.commands.send(c).await.map_err(|_| RoomClosed)
    }

    /// Adds a participant with its (negotiated) session; joins on the next tick.
    pub async fn add(&self, session: RtpSession, muted: bool) -> Result<ParticipantId, RoomClosed> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(Command::Add(id, Box::new(session), muted))
            .await?;
        Ok(id)
    }

    /// Removes a participant and returns its session (to move the call elsewhere,
    /// or drop it to free the port).
    pub async fn remove(&self, id: ParticipantId) -> Result<Option<RtpSession>, RoomClosed> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::Remove(id, tx)).await?;
        rx.await.map_err(|_| RoomClosed)
    }

    pub async fn mute(&self, id: ParticipantId, muted: bool) -> Result<(), RoomClosed> {
        self.send(Command::Mute(id, muted)).await
    }

    /// Holds from our side (see [`Mixer::set_held`]).
    pub async fn hold(&self, id: ParticipantId, held: bool) -> Result<(), RoomClosed> {
        self.send(Command::Hold(id, held)).await
    }

    /// Applies a re-INVITE's renegotiated media (address, codec, direction).
    pub async fn update_media(
        &self,
        id: ParticipantId,
        params: MediaParams,
    ) -> Result<(), RoomClosed> {
        self.send(Command::Update(id, params)).await
    }

    pub async fn play(&self, to: Target, sound: Sound, looping: bool) -> Result<(), RoomClosed> {
        self.send(Command::Play(to, sound, looping)).await
    }

    pub async fn stop(&self, to: Target) -> Result<(), RoomClosed> {
        self.send(Command::Stop(to)).await
    }
}

/// Starts a room on the current runtime. It runs until `cancel` fires or every
/// handle is dropped; its participants' sessions (and ports) are dropped with it.
pub fn spawn_room(
    config: RoomConfig,
    cancel: CancellationToken,
) -> (RoomHandle, mpsc::Receiver<RoomEvent>) {
    let (commands, mut inbox) = mpsc::channel(COMMANDS);
    let (events, outbox) = mpsc::channel(EVENTS);
    let handle = RoomHandle {
        commands,
        next_id: Arc::new(AtomicU64::new(1)),
    };
    tokio::spawn(async move {
        let mut mixer = Mixer::new(config);
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        // A late tick is made up at once: phones' jitter buffers want every frame.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut dropped: u64 = 0;
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                command = inbox.recv() => {
                    let Some(command) = command else { break };
                    apply(&mut mixer, command);
                }
                tick = ticker.tick() => {
                    mixer.tick(tick);
                    for event in mixer.drain_events() {
                        if events.try_send(event).is_err() {
                            dropped += 1;
                            if dropped.is_power_of_two() {
                                tracing::warn!(room.events_dropped = dropped, "room events dropped: the application is not reading them");
                            }
                        }
                    }
                }
            }
        }
    });
    (handle, outbox)
}

fn apply(mixer: &mut Mixer, command: Command) {
    match command {
        Command::Add(id, session, muted) => mixer.add(id, *session, muted),
        Command::Remove(id, reply) => {
            let _ = reply.send(mixer.remove(id));
        }
        Command::Mute(id, muted) => {
            mixer.set_muted(id, muted);
        }
        Command::Hold(id, held) => {
            mixer.set_held(id, held);
        }
        Command::Update(id, params) => {
            mixer.update_media(id, params);
        }
        Command::Play(Target::All, sound, looping) => mixer.play_all(sound, looping),
        Command::Play(Target::One(id), sound, looping) => {
            mixer.play_to(id, sound, looping);
        }
        Command::Stop(Target::All) => mixer.stop_all(),
        Command::Stop(Target::One(id)) => {
            mixer.stop_to(id);
        }
    }
}
