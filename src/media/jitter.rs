//! The adaptive jitter buffer of one inbound RTP stream: packets go in by RTP
//! timestamp (not arrival order), 20 ms frames of payload come out on the engine's
//! tick, with losses reported for concealment.
//!
//! It generalises the voicemail recorder's timeline (`rtp.rs`) to live playout. Every
//! codec of the engine carries one payload byte per 8 kHz timestamp unit (see
//! `codec::RTP_CLOCK`), so the buffer is a ring of payload bytes on the timestamp
//! axis: reordered, duplicated and odd-ptime packets land where they belong, and a
//! frame is simply the next 160 bytes.
//!
//! Timing. All times are in 8 kHz units of the caller's clock (`now`). A packet's
//! transit is `now - timestamp`; its spread over the last one to two seconds is the
//! measured jitter. The playout point trails the fastest transit by a target of
//! spread + 5 ms (20 ms at least, 200 ms at most), so the target grows as soon as a
//! slower packet is seen and shrinks once the slow ones leave the window. The playout
//! point follows the target a frame at a time (drop or insert one frame at most every
//! 200 ms); a gap beyond 80 ms (clock drift, a path change) is clamped at once.
//! Packets whose time has passed are dropped as late. A new SSRC, or a transit that
//! jumps by more than a second (the sender restarted its timestamps), resynchronises.

use super::codec::FRAME_TS;

/// Ring size in timestamp units (512 ms, more than the 200 ms target cap plus a frame).
const RING: usize = 4096;
const FRAME: i64 = FRAME_TS as i64;
/// The target's floor (one frame) and cap (200 ms).
pub const MIN_TARGET: i64 = FRAME;
pub const MAX_TARGET: i64 = 1600;
/// Slack on top of the measured spread (5 ms).
const MARGIN: i64 = 40;
/// A playout error beyond this (80 ms) is corrected at once rather than frame by frame.
const DRIFT_CLAMP: i64 = 640;
/// A change of transit beyond this (1 s) means the sender's timestamps jumped.
const JUMP: i64 = 8000;
/// Packets per jitter window; two windows are kept (1–2 s of history at 20 ms).
const WINDOW: u32 = 50;
/// Frames between two frame-sized playout adjustments (200 ms).
const ADJUST_EVERY: u32 = 10;

/// What became of a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Accepted,
    /// Accepted as the first packet of a new timeline (first packet, new SSRC, jump).
    Resynced,
    /// Its playout time had passed: dropped.
    Late,
    /// Every byte of it was already there.
    Duplicate,
    /// Too far ahead of playout to fit the buffer: dropped.
    TooEarly,
}

/// What one tick's frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Popped {
    /// Payload (missing bytes inside it filled with the codec's silence byte).
    Audio,
    /// Nothing for this frame: lost, late or not sent (conceal it).
    Missing,
    /// No stream yet.
    Idle,
}

/// Counters for tests, logs and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    pub received: u64,
    pub late: u64,
    pub duplicate: u64,
    pub too_early: u64,
    /// Frames popped with no payload while a stream was running.
    pub missing: u64,
    pub resyncs: u64,
    /// Playout corrections: one frame dropped, one inserted, or a clamp beyond 80 ms.
    pub dropped_frames: u64,
    pub inserted_frames: u64,
    pub drift_clamps: u64,
}

#[derive(Debug)]
struct Timeline {
    ssrc: u32,
    /// The highest timestamp seen, and where it sits on our unwrapped axis.
    ref_ts: u32,
    ref_ext: i64,
    last_transit: i64,
    /// The next timestamp unit to play.
    read: i64,
    /// Packets since the resync (the target only grows until a window is complete).
    packets: u64,
}

/// One stream's buffer. Allocates once, at creation.
#[derive(Debug)]
pub struct JitterBuffer {
    data: Box<[u8]>,
    have: Box<[bool]>,
    timeline: Option<Timeline>,
    target: i64,
    /// (min, max) transit of the current and the previous window.
    windows: [(i64, i64); 2],
    in_window: u32,
    since_adjust: u32,
    /// RFC 3550 §A.8 interarrival jitter ×16, for reporting.
    jitter16: i64,
    silence: u8,
    stats: JitterStats,
}

impl JitterBuffer {
    /// `silence` fills bytes missing inside an otherwise present frame.
    pub fn new(silence: u8) -> Self {
        Self {
            data: vec![silence; RING].into_boxed_slice(),
            have: vec![false; RING].into_boxed_slice(),
            timeline: None,
            target: 480,
            windows: [(i64::MAX, i64::MIN); 2],
            in_window: 0,
            since_adjust: 0,
            jitter16: 0,
            silence,
            stats: JitterStats::default(),
        }
    }

    /// Forgets the stream (a re-INVITE changed codec or source); keeps the target.
    pub fn reset(&mut self, silence: u8) {
        self.silence = silence;
        self.timeline = None;
        self.have.fill(false);
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The current playout target in milliseconds.
    pub fn target_ms(&self) -> u32 {
        (self.target / 8) as u32
    }

    /// RFC 3550 interarrival jitter in milliseconds.
    pub fn jitter_ms(&self) -> u32 {
        (self.jitter16 / 16 / 8) as u32
    }

    fn min_transit(&self) -> i64 {
        self.windows[0].0.min(self.windows[1].0)
    }

    fn resync(&mut self, now: i64, ssrc: u32, ts: u32) {
        if self.timeline.is_some() {
            self.stats.resyncs += 1;
        }
        self.have.fill(false);
        let ext = i64::from(ts);
        self.windows = [(now - ext, now - ext), (i64::MAX, i64::MIN)];
        self.in_window = 0;
        self.since_adjust = 0;
        self.timeline = Some(Timeline {
            ssrc,
            ref_ts: ts,
            ref_ext: ext,
            last_transit: now - ext,
            read: ext - self.target,
            packets: 0,
        });
    }

    /// Takes one packet that arrived at `now` (8 kHz units).
    pub fn push(&mut self, now: i64, ssrc: u32, ts: u32, payload: &[u8]) -> Pushed {
        self.stats.received += 1;
        let resync = match &self.timeline {
            None => true,
            Some(t) if t.ssrc != ssrc => true,
            Some(t) => {
                let ext = t.ref_ext + i64::from(ts.wrapping_sub(t.ref_ts) as i32);
                (now - ext - t.last_transit).abs() > JUMP
            }
        };
        if resync {
            self.resync(now, ssrc, ts);
        }
        let Some(t) = self.timeline.as_mut() else {
            return Pushed::Late;
        };
        let ext = t.ref_ext + i64::from(ts.wrapping_sub(t.ref_ts) as i32);
        if ext > t.ref_ext {
            // Only newer packets move the unwrapping reference forward.
            t.ref_ext = ext;
            t.ref_ts = ts;
        }
        let transit = now - ext;
        let d = (transit - t.last_transit).abs();
        t.last_transit = transit;
        t.packets += 1;
        let read = t.read;
        let packets = t.packets;
        self.jitter16 += d - (self.jitter16 + 8) / 16;
        self.observe(transit, packets);

        let len = payload.len().min(RING / 4) as i64;
        if ext + len <= read {
            self.stats.late += 1;
            return Pushed::Late;
        }
        if ext + len - read > RING as i64 {
            self.stats.too_early += 1;
            return Pushed::TooEarly;
        }
        let mut fresh = 0;
        for (i, byte) in payload[..len as usize].iter().enumerate() {
            let at = ext + i as i64;
            if at < read {
                continue; // the head of a packet that is partly late
            }
            let idx = at.rem_euclid(RING as i64) as usize;
            if !self.have[idx] {
                fresh += 1;
                self.have[idx] = true;
            }
            self.data[idx] = *byte;
        }
        if fresh == 0 {
            self.stats.duplicate += 1;
            return Pushed::Duplicate;
        }
        if resync {
            Pushed::Resynced
        } else {
            Pushed::Accepted
        }
    }

    /// Records a transit and re-derives the target from the two windows.
    fn observe(&mut self, transit: i64, packets_since_resync: u64) {
        let w = &mut self.windows[0];
        w.0 = w.0.min(transit);
        w.1 = w.1.max(transit);
        self.in_window += 1;
        let min = self.min_transit();
        let max = self.windows[0].1.max(self.windows[1].1);
        let wanted = (max - min + MARGIN).clamp(MIN_TARGET, MAX_TARGET);
        // Right after a resync one window is not a measurement yet: only grow.
        self.target = if packets_since_resync < u64::from(WINDOW) {
            self.target.max(wanted)
        } else {
            wanted
        };
        if self.in_window >= WINDOW {
            self.windows[1] = self.windows[0];
            self.windows[0] = (i64::MAX, i64::MIN);
            self.in_window = 0;
        }
    }

    fn clear(&mut self, from: i64, to: i64) {
        let span = (to - from).clamp(0, RING as i64);
        for at in from..from + span {
            self.have[at.rem_euclid(RING as i64) as usize] = false;
        }
    }

    /// The frame due at `now`: fills `out` (160 bytes) and says what it is.
    pub fn pop(&mut self, now: i64, out: &mut [u8]) -> Popped {
        let len = FRAME_TS.min(out.len());
        let out = &mut out[..len];
        let Some(read) = self.timeline.as_ref().map(|t| t.read) else {
            out.fill(self.silence);
            return Popped::Idle;
        };
        let desired = self.min_transit() + self.target;
        let error = (now - read) - desired;
        self.since_adjust += 1;
        let mut read = read;
        if error.abs() > DRIFT_CLAMP {
            let to = now - desired;
            if to > read {
                self.clear(read, to);
            }
            read = to;
            self.stats.drift_clamps += 1;
            self.since_adjust = 0;
        } else if self.since_adjust >= ADJUST_EVERY {
            if error >= FRAME + FRAME / 2 {
                self.clear(read, read + FRAME);
                read += FRAME;
                self.stats.dropped_frames += 1;
                self.since_adjust = 0;
            } else if error <= -FRAME / 2 {
                // Play one frame of nothing without moving: the buffer deepens.
                self.stats.inserted_frames += 1;
                self.stats.missing += 1;
                self.since_adjust = 0;
                out.fill(self.silence);
                if let Some(t) = self.timeline.as_mut() {
                    t.read = read;
                }
                return Popped::Missing;
            }
        }
        let mut present = 0;
        for (i, o) in out.iter_mut().enumerate() {
            let idx = (read + i as i64).rem_euclid(RING as i64) as usize;
            if self.have[idx] {
                *o = self.data[idx];
                self.have[idx] = false;
                present += 1;
            } else {
                *o = self.silence;
            }
        }
        if let Some(t) = self.timeline.as_mut() {
            t.read = read + FRAME;
        }
        if present == 0 {
            self.stats.missing += 1;
            Popped::Missing
        } else {
            Popped::Audio
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator (xorshift) for arrival schedules.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Packet `seq` carries 160 bytes of `seq as u8` so the output can be traced.
    struct Sent {
        arrival: i64,
        seq: u32,
        ssrc: u32,
        ts: u32,
    }

    /// Plays a schedule: ticks every 160 units, pushing what has arrived by then.
    /// Returns, per tick, the sequence number heard (or None).
    fn play(jb: &mut JitterBuffer, mut sent: Vec<Sent>, ticks: i64) -> Vec<Option<u8>> {
        sent.sort_by_key(|s| s.arrival);
        let mut next = 0;
        let mut heard = Vec::new();
        for tick in 0..ticks {
            let now = tick * FRAME;
            while next < sent.len() && sent[next].arrival <= now {
                let s = &sent[next];
                jb.push(now, s.ssrc, s.ts, &[s.seq as u8; FRAME_TS]);
                next += 1;
            }
            let mut out = [0u8; FRAME_TS];
            heard.push(match jb.pop(now, &mut out) {
                Popped::Audio => Some(out[0]),
                _ => None,
            });
        }
        heard
    }

    fn schedule(
        rng: &mut Rng,
        packets: u32,
        loss_percent: u64,
        jitter: i64,
        ts0: u32,
    ) -> (Vec<Sent>, u32) {
        let mut sent = Vec::new();
        let mut lost = 0;
        for seq in 0..packets {
            if rng.below(100) < loss_percent {
                lost += 1;
                continue;
            }
            let delay = 80
                + if jitter > 0 {
                    rng.below(jitter as u64 + 1) as i64
                } else {
                    0
                };
            sent.push(Sent {
                arrival: i64::from(seq) * FRAME + delay,
                seq,
                ssrc: 0x1234,
                ts: ts0.wrapping_add(seq * 160),
            });
        }
        (sent, lost)
    }

    #[test]
    fn loss_reordering_and_60ms_jitter_still_play_in_order_and_complete() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // 20 s of packets, 5 % lost, up to 60 ms of jitter (so many arrive reordered),
        // timestamps starting near the 32-bit wrap.
        let (sent, lost) = schedule(&mut rng, 1000, 5, 480, u32::MAX - 50_000);
        let reordered = sent
            .windows(2)
            .filter(|w| w[1].arrival < w[0].arrival)
            .count();
        assert!(reordered > 50, "the schedule reorders ({reordered})");
        let mut jb = JitterBuffer::new(0xff);
        let heard = play(&mut jb, sent, 1040);
        let stats = jb.stats();
        // Continuity: what is heard comes in sending order, each packet at most once.
        let seqs: Vec<u32> = {
            let mut wraps = 0u32;
            let mut last = 0u8;
            heard
                .iter()
                .flatten()
                .map(|s| {
                    if *s < last {
                        wraps += 1;
                    }
                    last = *s;
                    wraps * 256 + u32::from(*s)
                })
                .collect()
        };
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, no repeats");
        // After the first two seconds of learning, late drops stay rare and nearly
        // every packet that was sent and not lost is heard.
        let heard_count = seqs.len() as u32;
        assert!(
            heard_count + lost + 40 >= 1000,
            "heard {heard_count}, lost {lost}, stats {stats:?}"
        );
        assert!(stats.late <= 20, "{stats:?}");
        assert!(
            jb.target_ms() >= 55 && jb.target_ms() <= 70,
            "target {} ms",
            jb.target_ms()
        );
    }

    #[test]
    fn the_target_grows_with_jitter_and_shrinks_when_it_calms_down() {
        let mut rng = Rng(42);
        let mut jb = JitterBuffer::new(0xff);
        let (mut sent, _) = schedule(&mut rng, 250, 0, 0, 1000);
        let (noisy, _) = schedule(&mut rng, 250, 0, 480, 1000);
        let (calm, _) = schedule(&mut rng, 250, 0, 0, 1000);
        let quiet_target = {
            let mut jb2 = JitterBuffer::new(0xff);
            play(&mut jb2, schedule(&mut rng, 250, 0, 0, 1000).0, 260);
            jb2.target_ms()
        };
        assert!(quiet_target <= 25, "calm network: {quiet_target} ms");
        sent.extend(noisy.into_iter().map(|s| Sent {
            arrival: s.arrival + 250 * FRAME,
            seq: s.seq + 250,
            ts: s.ts + 250 * 160,
            ..s
        }));
        let heard = play(&mut jb, sent, 510);
        let noisy_target = jb.target_ms();
        assert!(noisy_target >= 55, "60 ms jitter: {noisy_target} ms");
        assert!(heard[260..].iter().flatten().count() > 200);
        // Now calm again: within a few seconds the target comes back down.
        let mut jb_calm = jb;
        let mut all = Vec::new();
        all.extend(calm.into_iter().map(|s| Sent {
            arrival: s.arrival + 500 * FRAME,
            seq: s.seq + 500,
            ts: s.ts + 500 * 160,
            ..s
        }));
        // Continue the same buffer's clock where it stopped.
        let mut next = 0;
        all.sort_by_key(|s| s.arrival);
        for tick in 510..760 {
            let now = tick * FRAME;
            while next < all.len() && all[next].arrival <= now {
                let s = &all[next];
                jb_calm.push(now, s.ssrc, s.ts, &[0; FRAME_TS]);
                next += 1;
            }
            jb_calm.pop(now, &mut [0; FRAME_TS]);
        }
        assert!(
            jb_calm.target_ms() <= 25,
            "calm again: {} ms",
            jb_calm.target_ms()
        );
        assert!(jb_calm.stats().dropped_frames + jb_calm.stats().drift_clamps > 0);
    }

    #[test]
    fn late_packets_are_dropped_and_duplicates_ignored() {
        let mut jb = JitterBuffer::new(0xff);
        let mut out = [0u8; FRAME_TS];
        assert_eq!(jb.pop(0, &mut out), Popped::Idle);
        assert_eq!(jb.push(0, 9, 0, &[1; FRAME_TS]), Pushed::Resynced);
        assert_eq!(jb.push(0, 9, 0, &[1; FRAME_TS]), Pushed::Duplicate);
        // Play well past timestamp 160…
        for tick in 0..10 {
            jb.pop(tick * FRAME, &mut out);
        }
        // …then packet 1 shows up: its time is gone.
        assert_eq!(jb.push(10 * FRAME, 9, 160, &[2; FRAME_TS]), Pushed::Late);
        assert_eq!(jb.stats().late, 1);
        assert_eq!(jb.stats().duplicate, 1);
        // A packet far beyond the ring is refused, not wrapped onto older audio.
        let far = 10 * 160 + 4000;
        assert_eq!(
            jb.push(10 * FRAME, 9, far, &[3; FRAME_TS]),
            Pushed::TooEarly
        );
    }

    /// One tick: an optional packet (ssrc, ts, byte) pushed, then one frame popped.
    fn step(
        jb: &mut JitterBuffer,
        now: &mut i64,
        packet: Option<(u32, u32, u8)>,
    ) -> (Option<Pushed>, Popped, u8) {
        let pushed = packet.map(|(ssrc, ts, byte)| jb.push(*now, ssrc, ts, &[byte; FRAME_TS]));
        let mut out = [0u8; FRAME_TS];
        let popped = jb.pop(*now, &mut out);
        *now += FRAME;
        (pushed, popped, out[0])
    }

    #[test]
    fn a_new_ssrc_or_a_timestamp_jump_resyncs_but_silence_suppression_does_not() {
        let mut jb = JitterBuffer::new(0xff);
        let mut now = 0;
        for i in 0..100u32 {
            step(&mut jb, &mut now, Some((1, 5000 + i * 160, 1)));
        }
        // Silence suppression: 2 s without packets, then the timestamp has moved on by
        // just as much: same timeline.
        for i in 0..100 {
            let popped = step(&mut jb, &mut now, None).1;
            // What was buffered plays out first.
            if i >= 10 {
                assert_eq!(popped, Popped::Missing);
            }
        }
        let (pushed, _, _) = step(&mut jb, &mut now, Some((1, 5000 + 200 * 160, 1)));
        assert_eq!(pushed, Some(Pushed::Accepted));
        assert_eq!(jb.stats().resyncs, 0);
        // The phone restarts its stream: new SSRC, unrelated numbers.
        let (pushed, _, _) = step(&mut jb, &mut now, Some((2, 77, 2)));
        assert_eq!(pushed, Some(Pushed::Resynced));
        let mut heard_new = false;
        for i in 1..20u32 {
            let (_, popped, byte) = step(&mut jb, &mut now, Some((2, 77 + i * 160, 2)));
            heard_new |= popped == Popped::Audio && byte == 2;
        }
        assert!(heard_new, "the new stream plays");
        // Same SSRC, timestamps jump by an hour: resync, and it plays.
        let (pushed, _, _) = step(&mut jb, &mut now, Some((2, 28_800_000, 3)));
        assert_eq!(pushed, Some(Pushed::Resynced));
        let mut heard_jump = false;
        for i in 1..20u32 {
            let (_, popped, byte) = step(&mut jb, &mut now, Some((2, 28_800_000 + i * 160, 3)));
            heard_jump |= popped == Popped::Audio && byte == 3;
        }
        assert!(heard_jump);
        assert_eq!(jb.stats().resyncs, 2);
    }

    #[test]
    fn a_sudden_path_delay_beyond_80ms_is_clamped_not_crawled() {
        let mut jb = JitterBuffer::new(0xff);
        // 3 s steady, then every packet 150 ms later than before (a route change).
        let sent: Vec<Sent> = (0..400u32)
            .map(|k| Sent {
                arrival: i64::from(k) * FRAME + if k >= 150 { 1200 } else { 0 },
                seq: k,
                ssrc: 7,
                ts: k * 160,
            })
            .collect();
        let heard = play(&mut jb, sent, 420);
        let stats = jb.stats();
        assert!(stats.drift_clamps >= 1, "{stats:?}");
        assert!(stats.late <= 3, "{stats:?}");
        // It plays on at the new delay.
        assert!(heard[300..400].iter().flatten().count() >= 95, "{stats:?}");
    }

    #[test]
    fn a_packet_of_30ms_spans_frames() {
        let mut jb = JitterBuffer::new(0xff);
        let mut out = [0u8; FRAME_TS];
        let mut audio = 0;
        // ptime 30: 240 bytes every 30 ms; we still pop 20 ms frames.
        for tick in 0..60i64 {
            let now = tick * FRAME;
            for k in 0..40i64 {
                if k * 240 <= now && now < k * 240 + FRAME {
                    jb.push(now, 1, (k * 240) as u32, &[5; 240]);
                }
            }
            if jb.pop(now, &mut out) == Popped::Audio {
                assert!(out.iter().all(|b| *b == 5));
                audio += 1;
            }
        }
        assert!(audio >= 50, "{audio}");
    }
}
