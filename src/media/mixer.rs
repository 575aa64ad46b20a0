//! The conference mix of one room, one 20 ms tick at a time (no I/O of its own
//! beyond its sessions' non-blocking sockets; `room.rs` drives it from one timer).
//!
//! Per tick: every session's input is drained and decoded to linear at the room rate
//! (16 kHz when any participant is wideband, else 8 kHz); talkers are found with
//! hysteresis; the talkers (and announcements to all) are summed in 32 bits. Each
//! talker hears the total minus itself, clipped and encoded for it alone; everyone
//! else hears the plain total, clipped and encoded once per codec and shared (so
//! encodes per tick = talkers + codecs in use). Only talkers are mixed: the others'
//! line noise stays out (as Asterisk's softmix and FreeSWITCH do).
//!
//! Who is mixed and who hears: a muted participant is not mixed; a participant on
//! hold (the phone's `sendonly`/`inactive`, i.e. our `recvonly`/`inactive`, or held
//! by the application with [`Mixer::set_held`]) is neither mixed nor sent the mix;
//! a listen-only phone (`recvonly`, our `sendonly`) hears but is not mixed.
//!
//! A shared G.722 stream has one encoder: a participant that moves between its own
//! stream (while talking) and the shared one gets a short ADPCM mismatch its decoder
//! absorbs within milliseconds; that is the price of one encode per codec.

use super::codec::{Codec, Downsampler, Encoder, FRAME_TS, MAX_FRAME, Upsampler};
use super::player::{Player, Sound, Tone, prompts};
use super::session::{Direction, Heard, MediaParams, RtpSession};
use tokio::time::{Duration, Instant};

/// Names a participant within its room.
pub type ParticipantId = u64;

/// Why someone left the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// The application removed them (hang-up, transfer).
    Removed,
    /// No RTP for `--rtp-timeout`: hang the call up.
    RtpTimeout,
    /// Three wrong PINs: hang the call up.
    PinFailed,
}

/// What happens in a room, for the application (and the bus).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomEvent {
    /// Admitted to the mix (after the PIN, when there is one).
    Joined(ParticipantId),
    Left(ParticipantId, LeaveReason),
    TalkingStarted(ParticipantId),
    TalkingStopped(ParticipantId),
    /// A digit from an admitted participant (PIN digits are the room's own).
    Digit(ParticipantId, char),
    PinRejected(ParticipantId),
}

/// A room's settings.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// Digits to enter (then `#`) before joining.
    pub pin: Option<String>,
    /// `--rtp-timeout`.
    pub rtp_timeout: Duration,
    /// Beeps to everyone when someone joins or leaves.
    pub join_leave_tones: bool,
    /// Told to a participant who is alone ("you are the first participant"); music
    /// on hold follows until someone joins.
    pub alone_prompt: Option<Sound>,
    pub alone_music: Option<Sound>,
    /// Talker detection: mean power (RMS²) above `talk_start` for 2 frames starts
    /// talking; below `talk_stop` for 25 frames (500 ms) stops it.
    pub talk_start: i64,
    pub talk_stop: i64,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            pin: None,
            rtp_timeout: Duration::from_secs(30),
            join_leave_tones: true,
            alone_prompt: Some(Sound::Clip(prompts::first_participant())),
            alone_music: Some(Sound::Clip(prompts::music_on_hold())),
            talk_start: 400 * 400,
            talk_stop: 250 * 250,
        }
    }
}

const START_FRAMES: u32 = 2;
const STOP_FRAMES: u32 = 25;
const MAX_PIN_DIGITS: usize = 16;
const PIN_ATTEMPTS: u8 = 3;

#[derive(Debug, Default)]
struct Talker {
    talking: bool,
    run: u32,
}

impl Talker {
    /// Feeds one frame's power; returns Some(new state) on a change.
    fn feed(&mut self, power: i64, start: i64, stop: i64) -> Option<bool> {
        if self.talking {
            self.run = if power < stop { self.run + 1 } else { 0 };
            if self.run >= STOP_FRAMES {
                self.talking = false;
                self.run = 0;
                return Some(false);
            }
        } else {
            self.run = if power > start { self.run + 1 } else { 0 };
            if self.run >= START_FRAMES {
                self.talking = true;
                self.run = 0;
                return Some(true);
            }
        }
        None
    }

    fn reset(&mut self) -> bool {
        let was = self.talking;
        self.talking = false;
        self.run = 0;
        was
    }
}

struct Member {
    id: ParticipantId,
    session: RtpSession,
    muted: bool,
    held: bool,
    /// Digits so far while the PIN is awaited; `None` once admitted.
    pin_entry: Option<String>,
    pin_failures: u8,
    /// Playing the alone prompt and music.
    alone: bool,
    talker: Talker,
    player: Player,
    /// This tick's audio at the room rate, and whether it went into the total.
    pcm: [i16; MAX_FRAME],
    mixed: bool,
    up: Upsampler,
    down: Downsampler,
}

impl Member {
    fn admitted(&self) -> bool {
        self.pin_entry.is_none()
    }

    fn direction(&self) -> Direction {
        self.session.params().direction
    }

    /// Mixed when talking: admitted, not held, not muted, and both ways open.
    fn may_contribute(&self) -> bool {
        self.admitted() && !self.held && !self.muted && self.direction() == Direction::SendRecv
    }

    /// Sent the mix: admitted, not held, and we may send.
    fn hears_mix(&self) -> bool {
        self.admitted() && !self.held && self.direction().sends()
    }
}

/// One encode per codec per tick for everyone who is not talking.
struct Shared {
    encoder: Encoder,
    down: Downsampler,
    payload: [u8; FRAME_TS],
    ready: bool,
}

/// Per-tick figures (for tests and the benchmark).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickStats {
    pub talkers: usize,
    pub encodes: usize,
    pub sent: usize,
}

/// The mixing state of one room.
pub struct Mixer {
    config: RoomConfig,
    members: Vec<Member>,
    rate: u32,
    all: Player,
    total: [i32; MAX_FRAME],
    shared: [Shared; 3],
    events: Vec<RoomEvent>,
    last: TickStats,
    scratch: [i16; MAX_FRAME],
}

fn codec_index(c: Codec) -> usize {
    match c {
        Codec::Pcmu => 0,
        Codec::Pcma => 1,
        Codec::G722 => 2,
    }
}

impl Mixer {
    pub fn new(config: RoomConfig) -> Self {
        let shared = |c| Shared {
            encoder: Encoder::new(c),
            down: Downsampler::default(),
            payload: [0; FRAME_TS],
            ready: false,
        };
        Self {
            config,
            members: Vec::new(),
            rate: 8000,
            all: Player::default(),
            total: [0; MAX_FRAME],
            shared: [
                shared(Codec::Pcmu),
                shared(Codec::Pcma),
                shared(Codec::G722),
            ],
            events: Vec::with_capacity(64),
            last: TickStats::default(),
            scratch: [0; MAX_FRAME],
        }
    }

    /// The internal rate: 16 kHz when anyone is wideband.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn last_tick(&self) -> TickStats {
        self.last
    }

    pub fn is_talking(&self, id: ParticipantId) -> bool {
        self.member(id).is_some_and(|m| m.talker.talking)
    }

    fn member(&self, id: ParticipantId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    fn member_mut(&mut self, id: ParticipantId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    /// Events since the last call, oldest first.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, RoomEvent> {
        self.events.drain(..)
    }

    /// Adds a participant; with a room PIN it hears the PIN prompt first.
    pub fn add(&mut self, id: ParticipantId, mut session: RtpSession, muted: bool) {
        // The tick drains the socket: a datagram need not wake the reactor.
        session.unregister();
        let mut member = Member {
            id,
            session,
            muted,
            held: false,
            pin_entry: None,
            pin_failures: 0,
            alone: false,
            talker: Talker::default(),
            player: Player::default(),
            pcm: [0; MAX_FRAME],
            mixed: false,
            up: Upsampler::default(),
            down: Downsampler::default(),
        };
        if self.config.pin.is_some() {
            member.pin_entry = Some(String::with_capacity(MAX_PIN_DIGITS));
            member.player.play(Sound::Clip(prompts::enter_pin()), false);
            self.members.push(member);
        } else {
            self.members.push(member);
            self.admit(id);
        }
    }

    fn admit(&mut self, id: ParticipantId) {
        if let Some(m) = self.member_mut(id) {
            m.pin_entry = None;
            m.player.clear();
        }
        self.events.push(RoomEvent::Joined(id));
        let others = self
            .members
            .iter()
            .filter(|m| m.admitted() && m.id != id)
            .count();
        if others > 0 && self.config.join_leave_tones {
            self.all.play(Sound::Tone(Tone::join()), false);
        }
    }

    /// Takes a participant out (and gives its session back).
    pub fn remove(&mut self, id: ParticipantId) -> Option<RtpSession> {
        self.remove_for(id, LeaveReason::Removed)
    }

    fn remove_for(&mut self, id: ParticipantId, reason: LeaveReason) -> Option<RtpSession> {
        let at = self.members.iter().position(|m| m.id == id)?;
        let mut m = self.members.swap_remove(at);
        if m.talker.reset() {
            self.events.push(RoomEvent::TalkingStopped(id));
        }
        if m.admitted() && self.config.join_leave_tones && self.members.iter().any(Member::admitted)
        {
            self.all.play(Sound::Tone(Tone::leave()), false);
        }
        self.events.push(RoomEvent::Left(id, reason));
        m.player.clear();
        Some(m.session)
    }

    pub fn set_muted(&mut self, id: ParticipantId, muted: bool) -> bool {
        self.member_mut(id).map(|m| m.muted = muted).is_some()
    }

    /// Holds (or resumes) a participant from our side: not mixed, hears nothing
    /// from the room (only what is played to it alone, e.g. music on hold).
    pub fn set_held(&mut self, id: ParticipantId, held: bool) -> bool {
        self.member_mut(id).map(|m| m.held = held).is_some()
    }

    /// A re-INVITE renegotiated this participant's media.
    pub fn update_media(&mut self, id: ParticipantId, params: MediaParams) -> bool {
        self.member_mut(id)
            .map(|m| m.session.update(params))
            .is_some()
    }

    /// Plays to everyone admitted, mixed over the conversation.
    pub fn play_all(&mut self, sound: Sound, looping: bool) {
        self.all.play(sound, looping);
    }

    /// Plays to one participant only (others do not hear it).
    pub fn play_to(&mut self, id: ParticipantId, sound: Sound, looping: bool) -> bool {
        self.member_mut(id)
            .map(|m| m.player.play(sound, looping))
            .is_some()
    }

    pub fn stop_all(&mut self) {
        self.all.clear();
    }

    pub fn stop_to(&mut self, id: ParticipantId) -> bool {
        self.member_mut(id).map(|m| m.player.clear()).is_some()
    }

    /// Collects PIN digits; returns whether the digit was the room's (not an event).
    fn pin_digit(&mut self, at: usize, digit: char) -> bool {
        let Some(pin) = self.config.pin.clone() else {
            return false;
        };
        let m = &mut self.members[at];
        let Some(entry) = m.pin_entry.as_mut() else {
            return false;
        };
        if digit != '#' {
            if entry.len() < MAX_PIN_DIGITS {
                entry.push(digit);
            }
            return true;
        }
        if *entry == pin {
            let id = m.id;
            self.admit(id);
            return true;
        }
        entry.clear();
        m.pin_failures += 1;
        let id = m.id;
        self.events.push(RoomEvent::PinRejected(id));
        m.player.clear();
        m.player.play(Sound::Clip(prompts::wrong_pin()), false);
        if m.pin_failures < PIN_ATTEMPTS {
            m.player.play(Sound::Clip(prompts::enter_pin()), false);
        }
        true
    }

    /// One 20 ms tick at `now`.
    pub fn tick(&mut self, now: Instant) {
        let rate = if self.members.iter().any(|m| m.session.codec().is_wideband()) {
            16000
        } else {
            8000
        };
        if rate != self.rate {
            self.rate = rate;
            for m in &mut self.members {
                m.up = Upsampler::default();
                m.down = Downsampler::default();
            }
        }
        let n = (rate / 50) as usize;
        let mut stats = TickStats::default();

        // Input: digits, timeouts, and each participant's frame at the room rate.
        let mut i = 0;
        while i < self.members.len() {
            self.members[i].session.poll_input(now);
            while let Some(digit) = self.members[i].session.take_digit() {
                if !self.pin_digit(i, digit) {
                    let id = self.members[i].id;
                    self.events.push(RoomEvent::Digit(id, digit));
                }
            }
            let m = &self.members[i];
            let out_of_pin = m.pin_failures >= PIN_ATTEMPTS && m.player.is_idle();
            if m.session.timed_out(now, self.config.rtp_timeout) || out_of_pin {
                let id = m.id;
                let reason = if out_of_pin {
                    LeaveReason::PinFailed
                } else {
                    LeaveReason::RtpTimeout
                };
                self.remove_for(id, reason);
                continue;
            }
            i += 1;
        }
        self.total[..n].fill(0);
        for m in &mut self.members {
            let codec_n = m.session.codec().frame_samples();
            let heard = m.session.read_frame(now, &mut self.scratch[..codec_n]);
            if codec_n < n {
                m.up.process(&self.scratch[..codec_n], &mut m.pcm[..n]);
            } else {
                m.pcm[..n].copy_from_slice(&self.scratch[..n]);
            }
            m.mixed = false;
            if !m.may_contribute() || heard == Heard::Silence {
                if m.talker.reset() {
                    self.events.push(RoomEvent::TalkingStopped(m.id));
                }
                if heard == Heard::Silence || !m.may_contribute() {
                    continue;
                }
            }
            let power: i64 = m.pcm[..n]
                .iter()
                .map(|s| i64::from(*s) * i64::from(*s))
                .sum::<i64>()
                / n as i64;
            match m
                .talker
                .feed(power, self.config.talk_start, self.config.talk_stop)
            {
                Some(true) => self.events.push(RoomEvent::TalkingStarted(m.id)),
                Some(false) => self.events.push(RoomEvent::TalkingStopped(m.id)),
                None => {}
            }
            if m.talker.talking {
                m.mixed = true;
                stats.talkers += 1;
                for (t, s) in self.total[..n].iter_mut().zip(&m.pcm[..n]) {
                    *t += i32::from(*s);
                }
            }
        }
        if self.all.fill(&mut self.scratch[..n], rate) {
            for (t, s) in self.total[..n].iter_mut().zip(&self.scratch[..n]) {
                *t += i32::from(*s);
            }
        }

        // Alone: the prompt, then music, until someone else is admitted.
        let admitted = self.members.iter().filter(|m| m.admitted()).count();
        for m in &mut self.members {
            if !m.admitted() {
                continue;
            }
            if admitted == 1 && !m.alone {
                m.alone = true;
                if let Some(prompt) = &self.config.alone_prompt {
                    m.player.play(prompt.clone(), false);
                }
                if let Some(music) = &self.config.alone_music {
                    m.player.play(music.clone(), true);
                }
            } else if admitted > 1 && m.alone {
                m.alone = false;
                m.player.clear();
            }
        }

        // Output.
        for s in &mut self.shared {
            s.ready = false;
        }
        let mut private = [0i16; MAX_FRAME];
        let mut mix = [0i16; MAX_FRAME];
        for m in &mut self.members {
            let codec = m.session.codec();
            let codec_n = codec.frame_samples();
            if !m.direction().sends() {
                m.session.advance_timestamp(FRAME_TS as u32);
                continue;
            }
            let has_private = m.player.fill(&mut private[..n], rate);
            let hears = m.hears_mix();
            if !hears && !has_private {
                m.session.advance_timestamp(FRAME_TS as u32);
                continue;
            }
            if hears && !m.mixed && !has_private {
                let s = &mut self.shared[codec_index(codec)];
                if !s.ready {
                    for (o, t) in mix[..n].iter_mut().zip(&self.total[..n]) {
                        *o = (*t).clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                    }
                    if codec_n < n {
                        let mut narrow = [0i16; MAX_FRAME];
                        s.down.process(&mix[..n], &mut narrow[..codec_n]);
                        s.encoder.encode(&narrow[..codec_n], &mut s.payload);
                    } else {
                        s.encoder.encode(&mix[..n], &mut s.payload);
                    }
                    s.ready = true;
                    stats.encodes += 1;
                }
                m.session.send_payload(&s.payload);
                stats.sent += 1;
                continue;
            }
            for k in 0..n {
                let mut v = i32::from(private[k]);
                if hears {
                    v += self.total[k];
                    if m.mixed {
                        v -= i32::from(m.pcm[k]);
                    }
                }
                mix[k] = v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
            }
            if codec_n < n {
                let mut narrow = [0i16; MAX_FRAME];
                m.down.process(&mix[..n], &mut narrow[..codec_n]);
                m.session.send_frame(&narrow[..codec_n]);
            } else {
                m.session.send_frame(&mix[..n]);
            }
            stats.encodes += 1;
            stats.sent += 1;
        }
        self.last = stats;
    }

    /// The session of a participant (for statistics).
    pub fn session(&self, id: ParticipantId) -> Option<&RtpSession> {
        self.member(id).map(|m| &m.session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::tests::sine;
    use crate::media::dtmf::TelephoneEvent;
    use crate::media::session::tests::{localhost, rtp, session_to};
    use std::net::SocketAddr;
    use std::net::UdpSocket;

    /// A phone as a plain blocking-free std socket, driven tick by tick.
    struct Phone {
        sock: UdpSocket,
        to: SocketAddr,
        codec: Codec,
        seq: u16,
        encoder: Encoder,
    }

    impl Phone {
        fn new(codec: Codec) -> (Phone, RtpSession) {
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
            sock.set_nonblocking(true).expect("nonblocking");
            let session = session_to(sock.local_addr().expect("addr"), codec, Direction::SendRecv);
            let to = (localhost(), session.port()).into();
            (
                Phone {
                    sock,
                    to,
                    codec,
                    seq: 0,
                    encoder: Encoder::new(codec),
                },
                session,
            )
        }

        /// Sends this tick's frame: a 500 Hz tone when `talking`, else silence.
        fn frame(&mut self, talking: bool) {
            let n = self.codec.frame_samples();
            let amplitude = if talking { 6000.0 } else { 0.0 };
            let pcm = sine(
                self.codec.sample_rate(),
                500.0,
                amplitude,
                n,
                usize::from(self.seq) * n,
            );
            let mut payload = [0u8; 160];
            let len = self.encoder.encode(&pcm, &mut payload);
            let p = rtp(
                self.codec.payload_type(),
                false,
                self.seq,
                u32::from(self.seq) * 160,
                7,
                &payload[..len],
            );
            self.sock.send_to(&p, self.to).expect("send");
            self.seq += 1;
        }

        fn digit(&mut self, digit: char) {
            let event = crate::media::dtmf::event_of(digit).expect("a digit");
            let ts = u32::from(self.seq) * 160;
            for k in 0..4u16 {
                let ev = TelephoneEvent {
                    event,
                    end: k > 0,
                    volume: 10,
                    duration: 480,
                };
                let p = rtp(101, k == 0, self.seq, ts, 7, &ev.to_bytes());
                self.sock.send_to(&p, self.to).expect("send");
                self.seq += 1;
            }
        }

        /// Datagrams received since the last call.
        fn received(&self) -> usize {
            let mut buf = [0u8; 2048];
            let mut n = 0;
            while self.sock.recv(&mut buf).is_ok() {
                n += 1;
            }
            n
        }
    }

    fn quiet() -> RoomConfig {
        RoomConfig {
            alone_prompt: None,
            alone_music: None,
            join_leave_tones: false,
            ..RoomConfig::default()
        }
    }

    #[tokio::test]
    async fn encodes_per_tick_are_talkers_plus_codecs_in_use() {
        let mut mixer = Mixer::new(quiet());
        let mut phones = Vec::new();
        for (i, codec) in [
            Codec::Pcmu,
            Codec::Pcmu,
            Codec::Pcmu,
            Codec::Pcmu,
            Codec::Pcma,
            Codec::G722,
        ]
        .into_iter()
        .enumerate()
        {
            let (phone, session) = Phone::new(codec);
            mixer.add(i as u64, session, false);
            phones.push(phone);
        }
        let t0 = Instant::now();
        for tick in 0..30u32 {
            for (i, p) in phones.iter_mut().enumerate() {
                p.frame(i < 2);
            }
            mixer.tick(t0 + Duration::from_millis(20 * u64::from(tick)));
        }
        assert_eq!(
            mixer.rate(),
            16000,
            "a G.722 participant makes the room wideband"
        );
        let stats = mixer.last_tick();
        // Two talkers (each its own mix) + PCMU, PCMA, G.722 shared by the rest.
        assert_eq!(
            stats,
            TickStats {
                talkers: 2,
                encodes: 5,
                sent: 6
            }
        );
        assert!(mixer.is_talking(0) && mixer.is_talking(1) && !mixer.is_talking(2));
        for p in &phones {
            assert!(p.received() >= 25, "everyone is sent a frame per tick");
        }
    }

    #[tokio::test]
    async fn talking_starts_after_two_loud_frames_and_stops_after_500ms_of_quiet() {
        let mut mixer = Mixer::new(quiet());
        let (mut phone, session) = Phone::new(Codec::Pcmu);
        let (_other, other_session) = Phone::new(Codec::Pcmu);
        mixer.add(1, session, false);
        mixer.add(2, other_session, false);
        let t0 = Instant::now();
        let mut started = None;
        let mut stopped = None;
        for tick in 0..100u32 {
            phone.frame(tick < 20);
            mixer.tick(t0 + Duration::from_millis(20 * u64::from(tick)));
            for e in mixer.drain_events() {
                match e {
                    RoomEvent::TalkingStarted(1) => started = Some(tick),
                    RoomEvent::TalkingStopped(1) => stopped = Some(tick),
                    _ => {}
                }
            }
        }
        let started = started.expect("talking started");
        let stopped = stopped.expect("talking stopped");
        // The jitter buffer delays playout by a few frames; the hysteresis is what we
        // check: the last loud frame plays at `started + 18` or later, and the stop
        // comes 25 quiet frames after that, not sooner.
        assert!(
            stopped >= started + 18 + 25,
            "started {started}, stopped {stopped}"
        );
        assert!(
            stopped <= started + 18 + 25 + 6,
            "started {started}, stopped {stopped}"
        );
    }

    #[tokio::test]
    async fn the_pin_is_collected_from_telephone_events() {
        let mut mixer = Mixer::new(RoomConfig {
            pin: Some("4711".into()),
            ..quiet()
        });
        let (mut phone, session) = Phone::new(Codec::Pcmu);
        mixer.add(9, session, false);
        let t0 = Instant::now();
        let mut tick = 0u64;
        let mut run = |mixer: &mut Mixer, ticks: u64| {
            let mut events = Vec::new();
            for _ in 0..ticks {
                mixer.tick(t0 + Duration::from_millis(20 * tick));
                events.extend(mixer.drain_events());
                tick += 1;
            }
            events
        };
        let events = run(&mut mixer, 5);
        assert!(events.is_empty(), "not admitted before the PIN: {events:?}");
        assert!(phone.received() >= 4, "the PIN prompt is played");
        for d in "4712#".chars() {
            phone.digit(d);
        }
        let events = run(&mut mixer, 2);
        assert_eq!(events, vec![RoomEvent::PinRejected(9)]);
        for d in "4711#".chars() {
            phone.digit(d);
        }
        let events = run(&mut mixer, 2);
        assert_eq!(events, vec![RoomEvent::Joined(9)]);
        // Digits after admission are the application's.
        phone.digit('5');
        let events = run(&mut mixer, 2);
        assert_eq!(events, vec![RoomEvent::Digit(9, '5')]);
    }

    #[tokio::test]
    async fn three_wrong_pins_remove_the_caller() {
        let mut mixer = Mixer::new(RoomConfig {
            pin: Some("1".into()),
            ..quiet()
        });
        let (mut phone, session) = Phone::new(Codec::Pcmu);
        mixer.add(3, session, false);
        let t0 = Instant::now();
        let mut events = Vec::new();
        for tick in 0..600u64 {
            if tick < 3 {
                phone.digit('2');
                phone.digit('#');
            }
            mixer.tick(t0 + Duration::from_millis(20 * tick));
            events.extend(mixer.drain_events());
        }
        assert_eq!(
            events
                .iter()
                .filter(|e| **e == RoomEvent::PinRejected(3))
                .count(),
            3
        );
        assert_eq!(
            events.last(),
            Some(&RoomEvent::Left(3, LeaveReason::PinFailed))
        );
        assert!(mixer.is_empty());
    }

    #[tokio::test]
    async fn a_lone_participant_hears_the_prompt_then_music_and_rtp_timeout_removes() {
        let mut mixer = Mixer::new(RoomConfig {
            rtp_timeout: Duration::from_secs(2),
            ..RoomConfig::default()
        });
        let (phone, session) = Phone::new(Codec::Pcmu);
        mixer.add(5, session, false);
        let t0 = Instant::now();
        let mut events = Vec::new();
        for tick in 0..120u64 {
            mixer.tick(t0 + Duration::from_millis(20 * tick));
            events.extend(mixer.drain_events());
        }
        assert!(phone.received() >= 90, "the prompt and music are sent");
        assert_eq!(events.first(), Some(&RoomEvent::Joined(5)));
        assert_eq!(
            events.last(),
            Some(&RoomEvent::Left(5, LeaveReason::RtpTimeout))
        );
    }
}
