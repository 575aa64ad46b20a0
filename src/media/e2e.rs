//! End-to-end tests of rooms over real UDP sockets on loopback: plain sockets play
//! the phones, each sending its own tone; Goertzel energies of what each receives
//! decide who hears whom. Nothing is timed: the phones run for a while and then the
//! audio they received is measured.
//!
//! Levels: every phone sends a sine of amplitude 6000 (Goertzel power ≈ 1.8e7). A
//! tone counts as heard above 2e6 (−10 dB) and as absent below 2e5 (−20 dB lower).

use super::codec::tests::{sine, tone_power};
use super::codec::{Codec, Decoder, Encoder};
use super::mixer::{ParticipantId, RoomConfig, RoomEvent};
use super::room::{RoomHandle, spawn_room};
use super::session::tests::{localhost, pool};
use super::session::{Direction, MediaParams, RtpSession};
use std::collections::VecDeque;
use std::net::SocketAddr;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const HEARD: f64 = 2e6;
const ABSENT: f64 = 2e5;
const AMPLITUDE: f64 = 6000.0;

/// 5 % loss, up to 60 ms of extra delay (so reordering), from a fixed seed.
struct Impairment {
    rng: u64,
}

impl Impairment {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

struct Phone {
    sock: UdpSocket,
    room_port: SocketAddr,
    codec: Codec,
    freq: f64,
    sending: bool,
    frames: u32,
    ssrc: u32,
    encoder: Encoder,
    decoder: Decoder,
    heard: Vec<i16>,
    packets_in: usize,
    impair: Option<Impairment>,
    delayed: VecDeque<(Instant, Vec<u8>)>,
}

impl Phone {
    /// A phone and the room's session for it.
    async fn new(codec: Codec, freq: f64) -> (Phone, RtpSession) {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let lease = pool().lease(localhost()).expect("a port");
        let session = RtpSession::new(
            lease,
            MediaParams {
                remote: sock.local_addr().expect("addr"),
                codec,
                telephone_event: Some(101),
                direction: Direction::SendRecv,
            },
        );
        let phone = Phone {
            room_port: (localhost(), session.port()).into(),
            sock,
            codec,
            freq,
            sending: true,
            frames: 0,
            ssrc: rand::random(),
            encoder: Encoder::new(codec),
            decoder: Decoder::new(codec),
            heard: Vec::new(),
            packets_in: 0,
            impair: None,
            delayed: VecDeque::new(),
        };
        (phone, session)
    }

    fn rate(&self) -> u32 {
        self.codec.sample_rate()
    }

    /// One 20 ms frame out (maybe lost or delayed).
    fn frame(&mut self, now: Instant) {
        let n = self.codec.frame_samples();
        let pcm = if self.sending {
            sine(
                self.rate(),
                self.freq,
                AMPLITUDE,
                n,
                self.frames as usize * n,
            )
        } else {
            vec![0; n]
        };
        let mut payload = [0u8; 160];
        let len = self.encoder.encode(&pcm, &mut payload);
        let seq = self.frames as u16;
        let packet = super::session::tests::rtp(
            self.codec.payload_type(),
            self.frames == 0,
            seq,
            self.frames * 160,
            self.ssrc,
            &payload[..len],
        );
        self.frames += 1;
        let due = match self.impair.as_mut() {
            None => now,
            Some(imp) => {
                if imp.next() % 100 < 5 {
                    return;
                }
                now + Duration::from_millis(imp.next() % 61)
            }
        };
        let at = self
            .delayed
            .iter()
            .position(|(t, _)| *t > due)
            .unwrap_or(self.delayed.len());
        self.delayed.insert(at, (due, packet));
    }

    fn flush(&mut self, now: Instant) {
        while self.delayed.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, p)) = self.delayed.pop_front() {
                let _ = self.sock.try_send_to(&p, self.room_port);
            }
        }
        let mut buf = [0u8; 2048];
        while let Ok(n) = self.sock.try_recv(&mut buf) {
            let Ok(r) = rtp_rs::RtpReader::new(&buf[..n]) else {
                continue;
            };
            self.packets_in += 1;
            if r.payload_type() != self.codec.payload_type() {
                continue;
            }
            let mut pcm = [0i16; 320];
            let got = self.decoder.decode(r.payload(), &mut pcm);
            self.heard.extend_from_slice(&pcm[..got]);
        }
    }

    /// Power of `freq` in what was heard since `mark` (skipping 200 ms of settling).
    fn power_since(&self, mark: usize, freq: f64) -> f64 {
        let skip = mark + self.rate() as usize / 5;
        if self.heard.len() <= skip + 1600 {
            return 0.0;
        }
        tone_power(&self.heard[skip..], self.rate(), freq)
    }

    fn mark(&self) -> usize {
        self.heard.len()
    }
}

/// Runs the phones for `ms` of real time, 20 ms frames, 5 ms I/O steps.
async fn run(phones: &mut [&mut Phone], ms: u64) {
    let mut ticker = tokio::time::interval(Duration::from_millis(5));
    let start = Instant::now();
    let mut step = 0u64;
    while start.elapsed() < Duration::from_millis(ms) {
        let now = ticker.tick().await;
        if step.is_multiple_of(4) {
            for p in phones.iter_mut() {
                p.frame(now);
            }
        }
        for p in phones.iter_mut() {
            p.flush(now);
        }
        step += 1;
    }
}

fn quiet_room() -> RoomConfig {
    RoomConfig {
        alone_prompt: None,
        alone_music: None,
        ..RoomConfig::default()
    }
}

async fn room_with(
    config: RoomConfig,
) -> (RoomHandle, mpsc::Receiver<RoomEvent>, CancellationToken) {
    let cancel = CancellationToken::new();
    let (room, events) = spawn_room(config, cancel.clone());
    (room, events, cancel)
}

fn drain(events: &mut mpsc::Receiver<RoomEvent>) -> Vec<RoomEvent> {
    let mut all = Vec::new();
    while let Ok(e) = events.try_recv() {
        all.push(e);
    }
    all
}

#[tokio::test]
async fn three_callers_hear_the_others_not_themselves_and_mute_removes_one() {
    let (room, mut events, cancel) = room_with(quiet_room()).await;
    let (mut a, sa) = Phone::new(Codec::Pcmu, 400.0).await;
    let (mut b, sb) = Phone::new(Codec::Pcmu, 700.0).await;
    let (mut c, sc) = Phone::new(Codec::Pcma, 1100.0).await;
    let _ida = room.add(sa, false).await.unwrap();
    let _idb = room.add(sb, false).await.unwrap();
    let idc: ParticipantId = room.add(sc, false).await.unwrap();
    run(&mut [&mut a, &mut b, &mut c], 1500).await;
    let marks = (a.mark(), b.mark(), c.mark());
    run(&mut [&mut a, &mut b, &mut c], 1000).await;
    for (phone, mark, own, others) in [
        (&a, marks.0, 400.0, [700.0, 1100.0]),
        (&b, marks.1, 700.0, [400.0, 1100.0]),
        (&c, marks.2, 1100.0, [400.0, 700.0]),
    ] {
        for f in others {
            let p = phone.power_since(mark, f);
            assert!(p > HEARD, "the {own} Hz phone hears {f} Hz: {p:.3e}");
        }
        let p = phone.power_since(mark, own);
        assert!(
            p < ABSENT,
            "the {own} Hz phone does not hear itself: {p:.3e}"
        );
    }
    let seen = drain(&mut events);
    assert_eq!(
        seen.iter()
            .filter(|e| matches!(e, RoomEvent::Joined(_)))
            .count(),
        3
    );
    assert_eq!(
        seen.iter()
            .filter(|e| matches!(e, RoomEvent::TalkingStarted(_)))
            .count(),
        3
    );

    room.mute(idc, true).await.unwrap();
    run(&mut [&mut a, &mut b, &mut c], 300).await;
    let marks = (a.mark(), b.mark());
    run(&mut [&mut a, &mut b, &mut c], 1000).await;
    assert!(
        a.power_since(marks.0, 1100.0) < ABSENT,
        "muted C is not mixed for A"
    );
    assert!(
        b.power_since(marks.1, 1100.0) < ABSENT,
        "muted C is not mixed for B"
    );
    assert!(a.power_since(marks.0, 700.0) > HEARD, "A still hears B");
    let seen = drain(&mut events);
    assert!(seen.contains(&RoomEvent::TalkingStopped(idc)), "{seen:?}");

    // Removing gives the session back; the room says who left.
    let session = room.remove(idc).await.unwrap();
    assert!(session.is_some());
    cancel.cancel();
}

#[tokio::test]
async fn a_g722_and_a_pcmu_participant_hear_each_other() {
    let (room, _events, cancel) = room_with(quiet_room()).await;
    let (mut wide, sw) = Phone::new(Codec::G722, 1000.0).await;
    let (mut narrow, sn) = Phone::new(Codec::Pcmu, 500.0).await;
    room.add(sw, false).await.unwrap();
    room.add(sn, false).await.unwrap();
    run(&mut [&mut wide, &mut narrow], 1000).await;
    let marks = (wide.mark(), narrow.mark());
    run(&mut [&mut wide, &mut narrow], 1000).await;
    let w = wide.power_since(marks.0, 500.0);
    let n = narrow.power_since(marks.1, 1000.0);
    assert!(w > HEARD, "G.722 hears PCMU's 500 Hz: {w:.3e}");
    assert!(n > HEARD, "PCMU hears G.722's 1 kHz: {n:.3e}");
    assert!(wide.power_since(marks.0, 1000.0) < ABSENT);
    assert!(narrow.power_since(marks.1, 500.0) < ABSENT);
    cancel.cancel();
}

#[tokio::test]
async fn a_caller_with_loss_reordering_and_jitter_is_still_heard() {
    let (room, _events, cancel) = room_with(quiet_room()).await;
    let (mut rough, sr) = Phone::new(Codec::Pcmu, 1300.0).await;
    rough.impair = Some(Impairment {
        rng: 0x2545_f491_4f6c_dd1d,
    });
    let (mut listener, sl) = Phone::new(Codec::Pcmu, 400.0).await;
    room.add(sr, false).await.unwrap();
    room.add(sl, false).await.unwrap();
    run(&mut [&mut rough, &mut listener], 2000).await;
    let mark = listener.mark();
    run(&mut [&mut rough, &mut listener], 1500).await;
    let p = listener.power_since(mark, 1300.0);
    assert!(p > HEARD, "the impaired caller is heard: {p:.3e}");
    cancel.cancel();
}

#[tokio::test]
async fn a_participant_on_hold_hears_nothing_and_is_not_mixed() {
    let (room, _events, cancel) = room_with(quiet_room()).await;
    let (mut a, sa) = Phone::new(Codec::Pcmu, 400.0).await;
    let (mut h, sh) = Phone::new(Codec::Pcmu, 700.0).await;
    let h_params = sh.params().clone();
    room.add(sa, false).await.unwrap();
    let idh = room.add(sh, false).await.unwrap();
    run(&mut [&mut a, &mut h], 1000).await;
    let mark = a.mark();
    run(&mut [&mut a, &mut h], 600).await;
    assert!(
        a.power_since(mark, 700.0) > HEARD,
        "before the hold A hears H"
    );

    // Three kinds of hold: the phone's sendonly (we answer recvonly), its inactive,
    // and ours (the application holds it, e.g. to park it).
    for how in ["recvonly", "inactive", "ours"] {
        match how {
            "ours" => room.hold(idh, true).await.unwrap(),
            _ => {
                let mut p = h_params.clone();
                p.direction = if how == "recvonly" {
                    Direction::RecvOnly
                } else {
                    Direction::Inactive
                };
                room.update_media(idh, p).await.unwrap();
            }
        }
        run(&mut [&mut a, &mut h], 300).await;
        let (mark_a, packets_h) = (a.mark(), h.packets_in);
        run(&mut [&mut a, &mut h], 800).await;
        assert_eq!(h.packets_in, packets_h, "{how}: H is sent nothing");
        let p = a.power_since(mark_a, 700.0);
        assert!(p < ABSENT, "{how}: H is not mixed ({p:.3e})");
        // Resume.
        room.hold(idh, false).await.unwrap();
        room.update_media(idh, h_params.clone()).await.unwrap();
    }
    run(&mut [&mut a, &mut h], 500).await;
    let (mark_a, mark_h) = (a.mark(), h.mark());
    run(&mut [&mut a, &mut h], 800).await;
    assert!(
        a.power_since(mark_a, 700.0) > HEARD,
        "resumed: A hears H again"
    );
    assert!(
        h.power_since(mark_h, 400.0) > HEARD,
        "resumed: H hears A again"
    );
    cancel.cancel();
}
