//! A two-party bridge: RTP from each leg goes to the other as it arrives, with the
//! far leg's SSRC and a continuous sequence/timestamp space (a phone that restarts
//! its stream does not restart ours); the payload is passed through when both legs
//! use the same codec and decoded/encoded when they differ. Telephone-events pass
//! through under the other leg's payload type. No jitter buffer: the phones have
//! their own, and forwarding at once adds no delay.

use super::codec::{Codec, Decoder, Downsampler, Encoder, FRAME_TS, MAX_FRAME, Upsampler};
use super::session::{Inbound, MediaParams, RtpSession};
use tokio::time::{Duration, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Which leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leg {
    A,
    B,
}

/// Why a bridge ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeEnd {
    /// Cancelled by the application (hang-up, transfer).
    Stopped,
    /// This leg sent nothing for `--rtp-timeout`: hang both up.
    RtpTimeout(Leg),
}

/// Decode → resample → encode for legs with different codecs.
struct Transcoder {
    decoder: Decoder,
    encoder: Encoder,
    up: Upsampler,
    down: Downsampler,
}

/// One direction's numbering map.
#[derive(Default)]
struct Forward {
    ssrc: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    started: bool,
    transcoder: Option<Transcoder>,
}

impl Forward {
    fn for_codecs(from: Codec, to: Codec) -> Self {
        Forward {
            transcoder: (from != to).then(|| Transcoder {
                decoder: Decoder::new(from),
                encoder: Encoder::new(to),
                up: Upsampler::default(),
                down: Downsampler::default(),
            }),
            ..Forward::default()
        }
    }

    fn forward(&mut self, from: &MediaParams, to: &mut RtpSession, p: Inbound<'_>) {
        if self.ssrc != Some(p.ssrc) {
            // A new stream (or the first): continue our numbering where it stands.
            let (next_seq, next_ts) = if self.started {
                (
                    self.last_seq.wrapping_add(1),
                    self.last_ts.wrapping_add(FRAME_TS as u32),
                )
            } else {
                (rand::random(), to.next_timestamp())
            };
            self.seq_offset = next_seq.wrapping_sub(p.sequence);
            self.ts_offset = next_ts.wrapping_sub(p.timestamp);
            self.ssrc = Some(p.ssrc);
        }
        let seq = p.sequence.wrapping_add(self.seq_offset);
        let ts = p.timestamp.wrapping_add(self.ts_offset);
        if !self.started || (seq.wrapping_sub(self.last_seq) as i16) > 0 {
            self.last_seq = seq;
            self.last_ts = ts;
            self.started = true;
        }
        let marker = p.marker;
        if Some(p.payload_type) == from.telephone_event {
            if let Some(te) = to.params().telephone_event {
                to.forward_rtp(te, marker, seq, ts, p.payload);
            }
            return;
        }
        if p.payload_type != from.codec.payload_type() {
            return; // comfort noise and the like: not ours to translate
        }
        let to_codec = to.codec().payload_type();
        let Some(t) = self.transcoder.as_mut() else {
            to.forward_rtp(to_codec, marker, seq, ts, p.payload);
            return;
        };
        // Up to 60 ms per packet; longer ones are cut (we offered ptime 20).
        let mut pcm = [0i16; 3 * MAX_FRAME];
        let mut other = [0i16; 3 * MAX_FRAME];
        let mut out = [0u8; 3 * FRAME_TS];
        let bytes = &p.payload[..p.payload.len().min(3 * FRAME_TS)];
        let n = t.decoder.decode(bytes, &mut pcm);
        let (from_rate, to_rate) = (from.codec.sample_rate(), to.codec().sample_rate());
        let samples: &[i16] = if from_rate == to_rate {
            &pcm[..n]
        } else {
            let mut produced = 0;
            for chunk in pcm[..n].chunks(if from_rate > to_rate {
                MAX_FRAME
            } else {
                MAX_FRAME / 2
            }) {
                let dst = &mut other[produced..];
                produced += if from_rate > to_rate {
                    t.down.process(chunk, dst)
                } else {
                    t.up.process(chunk, dst)
                };
            }
            &other[..produced]
        };
        let len = t.encoder.encode(samples, &mut out);
        to.forward_rtp(to_codec, marker, seq, ts, &out[..len]);
    }
}

/// Runs a bridge until `cancel` or an RTP timeout; gives both sessions back.
pub async fn run_bridge(
    mut a: RtpSession,
    mut b: RtpSession,
    rtp_timeout: Duration,
    cancel: CancellationToken,
) -> (RtpSession, RtpSession, BridgeEnd) {
    let mut a_to_b = Forward::for_codecs(a.codec(), b.codec());
    let mut b_to_a = Forward::for_codecs(b.codec(), a.codec());
    let mut check = tokio::time::interval(Duration::from_secs(1));
    check.set_missed_tick_behavior(MissedTickBehavior::Delay);
    enum Wake {
        Stop,
        A,
        B,
        Check,
    }
    let end = loop {
        let wake = tokio::select! {
            () = cancel.cancelled() => Wake::Stop,
            _ = a.readable() => Wake::A,
            _ = b.readable() => Wake::B,
            _ = check.tick() => Wake::Check,
        };
        let now = Instant::now();
        match wake {
            Wake::Stop => break BridgeEnd::Stopped,
            Wake::A => {
                let from = a.params().clone();
                while a.poll_raw(now, |p| a_to_b.forward(&from, &mut b, p)) {}
            }
            Wake::B => {
                let from = b.params().clone();
                while b.poll_raw(now, |p| b_to_a.forward(&from, &mut a, p)) {}
            }
            Wake::Check => {
                if a.timed_out(now, rtp_timeout) {
                    break BridgeEnd::RtpTimeout(Leg::A);
                }
                if b.timed_out(now, rtp_timeout) {
                    break BridgeEnd::RtpTimeout(Leg::B);
                }
            }
        }
    };
    (a, b, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::tests::{sine, tone_power};
    use crate::media::session::Direction;
    use crate::media::session::tests::{localhost, rtp, session_to};
    use std::net::SocketAddr;
    use tokio::net::UdpSocket;

    async fn recv(sock: &UdpSocket) -> (u8, bool, u16, u32, u32, Vec<u8>) {
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
            .await
            .expect("a packet within 5 s")
            .expect("recv");
        let r = rtp_rs::RtpReader::new(&buf[..n]).expect("RTP");
        (
            r.payload_type(),
            r.mark(),
            u16::from(r.sequence_number()),
            r.timestamp(),
            r.ssrc(),
            r.payload().to_vec(),
        )
    }

    #[tokio::test]
    async fn same_codec_is_forwarded_with_our_numbering_and_events_pass() {
        let phone_a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let phone_b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = session_to(
            phone_a.local_addr().unwrap(),
            Codec::Pcmu,
            Direction::SendRecv,
        );
        let b = session_to(
            phone_b.local_addr().unwrap(),
            Codec::Pcmu,
            Direction::SendRecv,
        );
        let a_port: SocketAddr = (localhost(), a.port()).into();
        let b_ssrc = b.ssrc();
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_bridge(a, b, Duration::from_secs(30), cancel.clone()));
        // Three packets, the third out of order; then a stream restart; then a digit.
        for (seq, ts) in [(100u16, 8000u32), (102, 8320), (101, 8160)] {
            phone_a
                .send_to(
                    &rtp(0, seq == 100, seq, ts, 0xaaaa, &[seq as u8; 160]),
                    a_port,
                )
                .await
                .unwrap();
        }
        let got: Vec<_> = [
            recv(&phone_b).await,
            recv(&phone_b).await,
            recv(&phone_b).await,
        ]
        .into();
        assert!(
            got.iter().all(|p| p.0 == 0 && p.4 == b_ssrc),
            "PCMU with B's SSRC"
        );
        assert_eq!(got[0].5, vec![100u8; 160], "payload untouched");
        assert_eq!(
            got[1].2,
            got[0].2.wrapping_add(2),
            "gaps and order are kept"
        );
        assert_eq!(got[2].2, got[0].2.wrapping_add(1));
        assert_eq!(got[1].3, got[0].3.wrapping_add(320));
        phone_a
            .send_to(&rtp(0, true, 7, 123, 0xbbbb, &[1; 160]), a_port)
            .await
            .unwrap();
        let restarted = recv(&phone_b).await;
        assert_eq!(restarted.2, got[1].2.wrapping_add(1), "numbering continues");
        assert_eq!(restarted.3, got[1].3.wrapping_add(160));
        assert_eq!(restarted.4, b_ssrc);
        let ev = crate::media::dtmf::TelephoneEvent {
            event: 1,
            end: false,
            volume: 10,
            duration: 160,
        };
        phone_a
            .send_to(&rtp(101, true, 8, 283, 0xbbbb, &ev.to_bytes()), a_port)
            .await
            .unwrap();
        let event = recv(&phone_b).await;
        assert_eq!((event.0, event.5.clone()), (101, ev.to_bytes().to_vec()));
        cancel.cancel();
        let (_, _, end) = task.await.unwrap();
        assert_eq!(end, BridgeEnd::Stopped);
    }

    #[tokio::test]
    async fn different_codecs_are_transcoded_both_ways() {
        let phone_a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let phone_b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = session_to(
            phone_a.local_addr().unwrap(),
            Codec::G722,
            Direction::SendRecv,
        );
        let b = session_to(
            phone_b.local_addr().unwrap(),
            Codec::Pcma,
            Direction::SendRecv,
        );
        let (a_port, b_port): (SocketAddr, SocketAddr) = (
            (localhost(), a.port()).into(),
            (localhost(), b.port()).into(),
        );
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_bridge(a, b, Duration::from_secs(30), cancel.clone()));
        // A speaks 1 kHz in G.722; B must hear 1 kHz in PCMA. B speaks 500 Hz back.
        let mut enc_a = Encoder::new(Codec::G722);
        let mut enc_b = Encoder::new(Codec::Pcma);
        let (mut heard_b, mut heard_a) = (Vec::new(), Vec::new());
        let mut dec_b = Decoder::new(Codec::Pcma);
        let mut dec_a = Decoder::new(Codec::G722);
        for i in 0..25u32 {
            let wide = sine(16000, 1000.0, 8000.0, 320, (i * 320) as usize);
            let narrow = sine(8000, 500.0, 8000.0, 160, (i * 160) as usize);
            let (mut pa, mut pb) = ([0u8; 160], [0u8; 160]);
            enc_a.encode(&wide, &mut pa);
            enc_b.encode(&narrow, &mut pb);
            phone_a
                .send_to(&rtp(9, i == 0, i as u16, i * 160, 1, &pa), a_port)
                .await
                .unwrap();
            phone_b
                .send_to(&rtp(8, i == 0, i as u16, i * 160, 2, &pb), b_port)
                .await
                .unwrap();
            let to_b = recv(&phone_b).await;
            let to_a = recv(&phone_a).await;
            assert_eq!((to_b.0, to_a.0), (8, 9));
            let mut pcm = [0i16; 320];
            let n = dec_b.decode(&to_b.5, &mut pcm);
            heard_b.extend_from_slice(&pcm[..n]);
            let n = dec_a.decode(&to_a.5, &mut pcm);
            heard_a.extend_from_slice(&pcm[..n]);
        }
        let p_b = tone_power(&heard_b[800..], 8000, 1000.0);
        let p_a = tone_power(&heard_a[1600..], 16000, 500.0);
        // A sine of amplitude 8000 has power 3.2e7; allow codec loss but not absence.
        assert!(p_b > 1e7, "B hears A's 1 kHz: {p_b:.3e}");
        assert!(p_a > 1e7, "A hears B's 500 Hz: {p_a:.3e}");
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_leg_ends_the_bridge_after_the_rtp_timeout() {
        let phone_a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let phone_b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let a = session_to(
            phone_a.local_addr().unwrap(),
            Codec::Pcmu,
            Direction::SendRecv,
        );
        let b = session_to(
            phone_b.local_addr().unwrap(),
            Codec::Pcmu,
            Direction::SendRecv,
        );
        let (_, _, end) = run_bridge(a, b, Duration::from_secs(30), CancellationToken::new()).await;
        assert_eq!(end, BridgeEnd::RtpTimeout(Leg::A));
    }
}
