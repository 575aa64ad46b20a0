//! An RTP session for voicemail (RFC 3550, parsing with `rtp-rs`): plays 20 ms G.711
//! packets paced in real time, and records what the caller sends.
//!
//! The recording is rebuilt on the RTP timestamp timeline, not in arrival order:
//! reordered or duplicated packets land where they belong, lost ones and silence
//! suppression leave silence of the right length, and a new SSRC (a phone that
//! restarted its stream) starts a new segment after the previous one.

use super::g711::Codec;
use super::ports::Lease;
use crate::sync::MutexExt;
use rtp_rs::{RtpPacketBuilder, RtpReader};
use std::net::SocketAddr;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const FRAME: usize = 160; // 20 ms at 8 kHz
/// Decoded samples quieter than this (RMS) count as silence.
const SILENCE_RMS: f64 = 250.0;

/// Why a recording ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The caller hung up (or we were told to stop).
    Stopped,
    MaxLength,
    Silence,
    /// No RTP at all for the no-media timeout.
    NoMedia,
}

pub struct Recording {
    pub samples: Vec<i16>,
    pub ended: Ended,
}

pub struct Session {
    lease: Lease,
    /// The lease's socket, awaited on.
    socket: tokio::net::UdpSocket,
    codec: Codec,
    /// Where we send; latches to where the caller's packets come from (NAT).
    remote: std::sync::Mutex<SocketAddr>,
    ssrc: u32,
    /// When the last packet from the caller arrived (playback counts too).
    last_heard: std::sync::Mutex<Instant>,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_length: Duration,
    pub silence: Duration,
    pub no_media: Duration,
}

struct Packet {
    ssrc: u32,
    seq: u16,
    ts: u32,
    arrival: Instant,
    samples: Vec<i16>,
}

impl Session {
    /// Fails only when the socket cannot be registered with the runtime.
    pub fn new(lease: Lease, codec: Codec, remote: SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            socket: lease.registered()?,
            lease,
            codec,
            remote: std::sync::Mutex::new(remote),
            ssrc: rand::random(),
            last_heard: std::sync::Mutex::new(Instant::now()),
        })
    }

    pub fn port(&self) -> u16 {
        self.lease.port
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    fn remote(&self) -> SocketAddr {
        *self.remote.lock_unpoisoned()
    }

    /// Sends `samples` as 20 ms packets in real time; stops early on `stop`. Packets
    /// from the caller meanwhile only keep the no-media timer at bay.
    pub async fn play(&self, samples: &[i16], stop: &CancellationToken) {
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let start_seq: u16 = rand::random();
        let start_ts: u32 = rand::random();
        let mut buf = vec![0u8; 1500];
        for (i, frame) in samples.chunks(FRAME).enumerate() {
            tokio::select! {
                _ = ticker.tick() => {}
                () = stop.cancelled() => return,
            }
            let payload: Vec<u8> = frame.iter().map(|s| self.codec.encode(*s)).collect();
            let packet = RtpPacketBuilder::new()
                .payload_type(self.codec.payload_type())
                .ssrc(self.ssrc)
                .sequence(rtp_rs::Seq::from(start_seq.wrapping_add(i as u16)))
                .timestamp(start_ts.wrapping_add((i * FRAME) as u32))
                .marked(i == 0)
                .payload(&payload)
                .build();
            if let Ok(bytes) = packet {
                let _ = self.socket.send_to(&bytes, self.remote()).await;
            }
            // Drain (and latch to) the caller's packets without blocking.
            while let Ok((n, from)) = self.socket.try_recv_from(&mut buf) {
                if RtpReader::new(&buf[..n]).is_ok() {
                    self.heard(from);
                }
            }
        }
    }

    fn heard(&self, from: SocketAddr) {
        *self.last_heard.lock_unpoisoned() = Instant::now();
        *self.remote.lock_unpoisoned() = from;
    }

    /// Records until `stop`, the maximum length, `limits.silence` without voice, or
    /// `limits.no_media` without any packet.
    pub async fn record(&self, limits: Limits, stop: &CancellationToken) -> Recording {
        let started = Instant::now();
        let mut packets: Vec<Packet> = Vec::new();
        let mut last_voice = started;
        let mut buf = vec![0u8; 2048];
        let ended = loop {
            let now = Instant::now();
            let last_heard = *self.last_heard.lock_unpoisoned();
            let deadline = (started + limits.max_length)
                .min(last_voice + limits.silence)
                .min(last_heard + limits.no_media);
            tokio::select! {
                () = stop.cancelled() => break Ended::Stopped,
                () = tokio::time::sleep_until(deadline) => {
                    let now = Instant::now();
                    if now >= started + limits.max_length {
                        break Ended::MaxLength;
                    }
                    if now >= last_heard + limits.no_media {
                        break Ended::NoMedia;
                    }
                    break Ended::Silence;
                }
                received = self.socket.recv_from(&mut buf) => {
                    let Ok((n, from)) = received else { continue };
                    let Ok(rtp) = RtpReader::new(&buf[..n]) else { continue };
                    self.heard(from);
                    if rtp.payload_type() != self.codec.payload_type() {
                        continue; // telephone-event, comfort noise, …
                    }
                    let samples: Vec<i16> = rtp.payload().iter().map(|b| self.codec.decode(*b)).collect();
                    if rms(&samples) > SILENCE_RMS {
                        last_voice = now;
                    }
                    packets.push(Packet {
                        ssrc: rtp.ssrc(),
                        seq: u16::from(rtp.sequence_number()),
                        ts: rtp.timestamp(),
                        arrival: now,
                        samples,
                    });
                }
            }
        };
        let max_samples = (limits.max_length.as_millis() as usize) * 8;
        let mut samples = timeline(&packets, max_samples);
        if ended == Ended::Silence {
            trim_trailing_silence(&mut samples);
        }
        Recording { samples, ended }
    }
}

fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Drops the quiet tail a silence timeout leaves behind (keeping a breath of it).
fn trim_trailing_silence(samples: &mut Vec<i16>) {
    let mut end = samples.len();
    while end >= FRAME && rms(&samples[end - FRAME..end]) <= SILENCE_RMS {
        end -= FRAME;
    }
    samples.truncate((end + FRAME * 10).min(samples.len()));
}

/// Lays packets out on the RTP timestamp timeline (see the module note).
fn timeline(packets: &[Packet], max_samples: usize) -> Vec<i16> {
    let mut out: Vec<i16> = Vec::new();
    let mut i = 0;
    let mut previous_end: Option<Instant> = None;
    while i < packets.len() {
        // A segment: consecutive packets (in arrival order) of one SSRC.
        let ssrc = packets[i].ssrc;
        let mut j = i;
        while j < packets.len() && packets[j].ssrc == ssrc {
            j += 1;
        }
        let segment = &packets[i..j];
        if let Some(end) = previous_end {
            // Silence between segments: the time between them, as the ear heard it.
            let gap = segment[0].arrival.saturating_duration_since(end);
            let gap = (gap.as_millis() as usize * 8).min(max_samples.saturating_sub(out.len()));
            out.extend(std::iter::repeat_n(0i16, gap));
        }
        let base = segment[0].ts;
        let mut seen = std::collections::HashSet::new();
        let origin = out.len();
        // Offsets relative to the first packet; reordering is at most a few packets,
        // so a signed 32-bit difference handles timestamp wrap-around.
        let offset_of = |p: &Packet| i64::from(p.ts.wrapping_sub(base) as i32);
        let min_offset = segment.iter().map(offset_of).min().unwrap_or(0);
        for p in segment {
            if !seen.insert(p.seq) {
                continue; // duplicate
            }
            let at = (offset_of(p) - min_offset) as usize;
            let start = origin + at;
            if start >= max_samples {
                continue;
            }
            let end = (start + p.samples.len()).min(max_samples);
            if out.len() < end {
                out.resize(end, 0);
            }
            out[start..end].copy_from_slice(&p.samples[..end - start]);
        }
        previous_end = segment.iter().map(|p| p.arrival).max();
        i = j;
    }
    out.truncate(max_samples);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ssrc: u32, seq: u16, ts: u32, value: i16, ms: u64, t0: Instant) -> Packet {
        Packet {
            ssrc,
            seq,
            ts,
            arrival: t0 + Duration::from_millis(ms),
            samples: vec![value; FRAME],
        }
    }

    #[test]
    fn reordered_duplicated_and_lost_packets_land_on_their_timestamps() {
        let t0 = Instant::now();
        let packets = vec![
            packet(1, 10, 1000, 1, 0, t0),
            packet(1, 12, 1320, 3, 40, t0), // 11 arrives late
            packet(1, 11, 1160, 2, 45, t0),
            packet(1, 11, 1160, 2, 46, t0), // duplicate
            // 13 lost
            packet(1, 14, 1640, 5, 80, t0),
        ];
        let out = timeline(&packets, 8000 * 10);
        assert_eq!(out.len(), 5 * FRAME);
        assert_eq!(out[0], 1);
        assert_eq!(out[FRAME], 2);
        assert_eq!(out[2 * FRAME], 3);
        assert_eq!(out[3 * FRAME], 0, "the lost packet is silence");
        assert_eq!(out[4 * FRAME], 5);
    }

    #[test]
    fn silence_suppression_gaps_keep_their_length_and_timestamps_may_wrap() {
        let t0 = Instant::now();
        let base = u32::MAX - 100;
        let packets = vec![
            packet(7, 65535, base, 9, 0, t0),
            // 2 s without packets (VAD), across the 32-bit wrap.
            packet(7, 0, base.wrapping_add(16000), 9, 2000, t0),
        ];
        let out = timeline(&packets, 8000 * 10);
        assert_eq!(out.len(), 16000 + FRAME);
    }

    #[test]
    fn a_new_ssrc_starts_a_new_segment_after_the_old_one() {
        let t0 = Instant::now();
        let packets = vec![
            packet(1, 1, 500, 1, 0, t0),
            packet(1, 2, 660, 1, 20, t0),
            packet(2, 9000, 77_000, 2, 520, t0), // restarted stream, 500 ms later
        ];
        let out = timeline(&packets, 8000 * 10);
        assert_eq!(out.len(), 2 * FRAME + 500 * 8 + FRAME);
        assert_eq!(out[out.len() - 1], 2);
    }

    #[test]
    fn the_maximum_length_caps_the_recording() {
        let t0 = Instant::now();
        let packets: Vec<Packet> = (0..100u16)
            .map(|i| packet(1, i, u32::from(i) * 160, 4, u64::from(i) * 20, t0))
            .collect();
        assert_eq!(timeline(&packets, 8000).len(), 8000);
    }

    #[test]
    fn a_quiet_tail_is_trimmed() {
        let mut s: Vec<i16> = vec![5000; 8000];
        s.extend(vec![0; 80_000]);
        trim_trailing_silence(&mut s);
        assert_eq!(s.len(), 8000 + FRAME * 10);
    }
}
