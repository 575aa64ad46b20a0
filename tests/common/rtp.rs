//! A phone made of two real UDP sockets: SIP (a [`RawSip`]) and RTP, which sends a tone
//! of its own in 20 ms packets and records what it hears, ordered by sequence number.
//! Goertzel energies tell which tones are in what it heard.

use super::TestApp;
use super::sip_raw::{Account, DialogView, RawSip, header, status};
use std::net::SocketAddr;
use std::time::Duration;
use switchboard::media::codec::{Codec, Decoder, Encoder};

/// How a phone's outgoing audio is spoiled on the way (loss and reordering, jitter).
#[derive(Debug, Clone, Copy, Default)]
pub struct Impairment {
    /// Every `drop_every`-th packet is lost (0: none).
    pub drop_every: u32,
    /// Every `swap_every`-th packet changes place with the next (0: none).
    pub swap_every: u32,
    /// Packets are sent up to this late (spread over the range).
    pub jitter: Duration,
}

/// One audio packet as it arrived.
struct Heard {
    seq: u16,
    at: tokio::time::Instant,
    payload: Vec<u8>,
}

pub struct RtpPhone {
    pub sip: RawSip,
    pub media: tokio::net::UdpSocket,
    pub codec: Codec,
    /// The INVITE as sent (authorised) and its 200.
    pub invite: String,
    pub ok: String,
    pub server_rtp: SocketAddr,
    cseq: std::sync::atomic::AtomicU32,
}

/// The SDP offer of a phone whose RTP socket is `port`, with `codec` and
/// telephone-event.
pub fn offer(port: u16, codec: Codec) -> String {
    let pt = codec.payload_type();
    let rate = if codec == Codec::G722 {
        8000
    } else {
        codec.sample_rate()
    };
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {}/{rate}\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
        codec.name()
    )
}

/// The port the `m=audio` line of a message's SDP names.
pub fn sdp_port(msg: &str) -> u16 {
    msg.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no m=audio in {msg}"))
}

impl RtpPhone {
    /// Calls `dialled`; the final answer, or the phone once answered (and ACKed).
    pub async fn call(
        app: &TestApp,
        account: &Account,
        dialled: &str,
        call_id: &str,
        codec: Codec,
    ) -> Result<RtpPhone, String> {
        let sip = RawSip::bind("127.0.0.1", app.sip_addr()).await;
        let media = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let sdp = offer(media.local_addr().unwrap().port(), codec);
        let invite = sip
            .send_invite_with_auth(account, dialled, call_id, "", &sdp)
            .await;
        let ok = loop {
            let msg = sip
                .recv(Duration::from_secs(5))
                .await
                .expect("an answer within 5 s");
            let cseq_invite = header(&msg, "CSeq").is_some_and(|c| c.ends_with("INVITE"));
            if msg.starts_with("SIP/2.0 ") && cseq_invite && status(&msg) >= 200 {
                break msg;
            }
        };
        if status(&ok) != 200 {
            return Err(ok);
        }
        let server_rtp = SocketAddr::from(([127, 0, 0, 1], sdp_port(&ok)));
        let phone = RtpPhone {
            sip,
            media,
            codec,
            invite,
            ok,
            server_rtp,
            cseq: std::sync::atomic::AtomicU32::new(100),
        };
        let dialog = phone.dialog();
        let ack = dialog.request("ACK", phone.invite_cseq(), phone.sip.local(), "");
        phone.sip.send(&ack).await;
        Ok(phone)
    }

    fn dialog(&self) -> DialogView {
        DialogView::of_caller(&self.invite, &self.ok)
    }

    fn invite_cseq(&self) -> u32 {
        header(&self.invite, "CSeq")
            .and_then(|c| c.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }

    /// Sends `hz` (or silence) for `duration` while recording what comes back; returns
    /// the received audio at the codec's rate, in sequence order, gaps left out.
    pub async fn talk_and_listen(
        &self,
        hz: Option<f64>,
        duration: Duration,
        spoil: Impairment,
    ) -> Vec<i16> {
        let mut heard = self.exchange(hz, duration, spoil).await;
        heard.sort_by_key(|h| h.seq);
        heard.dedup_by_key(|h| h.seq);
        let mut decoder = Decoder::new(self.codec);
        let mut pcm = Vec::new();
        let mut frame = vec![0i16; 2 * self.codec.frame_samples()];
        for h in heard {
            let n = decoder.decode(&h.payload, &mut frame);
            pcm.extend_from_slice(&frame[..n]);
        }
        pcm
    }

    /// As [`Self::talk_and_listen`], but each packet heard decoded on its own, with the
    /// instant it arrived, in arrival order.
    pub async fn talk_and_listen_timed(
        &self,
        hz: Option<f64>,
        duration: Duration,
    ) -> Vec<(tokio::time::Instant, Vec<i16>)> {
        let heard = self.exchange(hz, duration, Impairment::default()).await;
        let mut decoder = Decoder::new(self.codec);
        let mut frame = vec![0i16; 2 * self.codec.frame_samples()];
        heard
            .into_iter()
            .map(|h| {
                let n = decoder.decode(&h.payload, &mut frame);
                (h.at, frame[..n].to_vec())
            })
            .collect()
    }

    async fn exchange(&self, hz: Option<f64>, duration: Duration, spoil: Impairment) -> Vec<Heard> {
        let frames = (duration.as_millis() / 20) as usize;
        let sender = async {
            let mut encoder = Encoder::new(self.codec);
            let rate = f64::from(self.codec.sample_rate());
            let samples = self.codec.frame_samples();
            let ts_step = if self.codec == Codec::G722 {
                160
            } else {
                samples as u32
            };
            let mut packets: Vec<Vec<u8>> = Vec::with_capacity(frames);
            for n in 0..frames {
                let pcm: Vec<i16> = (0..samples)
                    .map(|i| match hz {
                        Some(hz) => {
                            let t = (n * samples + i) as f64 / rate;
                            (6000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
                        }
                        None => 0,
                    })
                    .collect();
                let mut payload = vec![0u8; samples];
                let len = encoder.encode(&pcm, &mut payload);
                payload.truncate(len);
                packets.push(rtp_packet(
                    self.codec.payload_type(),
                    0x5151_0000 ^ u32::from(self.media.local_addr().unwrap().port()),
                    n as u16,
                    (n as u32) * ts_step,
                    &payload,
                ));
            }
            let mut order: Vec<usize> = (0..frames).collect();
            if spoil.swap_every > 0 {
                let mut i = 0;
                while i + 1 < order.len() {
                    if (i as u32 + 1).is_multiple_of(spoil.swap_every) {
                        order.swap(i, i + 1);
                    }
                    i += 1;
                }
            }
            let start = tokio::time::Instant::now();
            for (slot, &n) in order.iter().enumerate() {
                if spoil.drop_every > 0 && (n as u32 + 1).is_multiple_of(spoil.drop_every) {
                    continue;
                }
                let late = if spoil.jitter.is_zero() {
                    Duration::ZERO
                } else {
                    // A deterministic spread over [0, jitter).
                    spoil.jitter.mul_f64(((n * 7919) % 100) as f64 / 100.0)
                };
                tokio::time::sleep_until(start + Duration::from_millis(20 * slot as u64) + late)
                    .await;
                let _ = self.media.send_to(&packets[n], self.server_rtp).await;
            }
        };
        let receiver = async {
            let mut heard = Vec::new();
            let mut buf = [0u8; 2048];
            let deadline = tokio::time::Instant::now() + duration + Duration::from_millis(300);
            while let Ok(Ok((n, _))) =
                tokio::time::timeout_at(deadline, self.media.recv_from(&mut buf)).await
            {
                if n > 12 && buf[1] & 0x7f == self.codec.payload_type() {
                    heard.push(Heard {
                        seq: u16::from_be_bytes([buf[2], buf[3]]),
                        at: tokio::time::Instant::now(),
                        payload: buf[12..n].to_vec(),
                    });
                }
            }
            heard
        };
        let ((), heard) = tokio::join!(sender, receiver);
        heard
    }

    /// Sends RFC 4733 telephone events for each digit (about 100 ms each, the end sent
    /// three times), 20 ms apart.
    pub async fn send_digits(&self, digits: &str, seq0: u16) {
        let mut seq = seq0;
        let mut ts: u32 = 80_000;
        for digit in digits.chars() {
            let event = match digit {
                '0'..='9' => digit as u8 - b'0',
                '*' => 10,
                '#' => 11,
                _ => continue,
            };
            for step in 0..8u16 {
                let end = step >= 5;
                let duration = (step.min(5) + 1) * 160;
                let payload = [
                    event,
                    if end { 0x80 | 10 } else { 10 },
                    (duration >> 8) as u8,
                    duration as u8,
                ];
                let packet = rtp_packet(101, 0x5151_0000, seq, ts, &payload);
                let _ = self.media.send_to(&packet, self.server_rtp).await;
                seq = seq.wrapping_add(1);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            ts += 1600;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The next request from the server in this call (a BYE when we are hung up on).
    pub async fn expect_request(&self, method: &str) -> String {
        self.sip.expect_request(method).await
    }

    /// Answers a request from the server with 200.
    pub async fn reply_ok(&self, request: &str) {
        let ok = super::sip_raw::reply(request, 200, "OK", "", "", "");
        self.sip.send(&ok).await;
    }

    /// Hangs up: BYE and its 200.
    pub async fn hang_up(&self) {
        let cseq = self.cseq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bye = self.dialog().request("BYE", cseq, self.sip.local(), "");
        self.sip.send(&bye).await;
        self.sip.expect_response(200, "BYE").await;
    }
}

/// An RTP packet (version 2, no CSRC, no extension).
pub fn rtp_packet(pt: u8, ssrc: u32, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.extend_from_slice(&[0x80, pt]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

/// Power at `hz` in `pcm` (Goertzel), over its last `window` samples, divided by the
/// window's mean power: near 0.5 for a pure tone at `hz`, near 0 without it.
pub fn tone_share(pcm: &[i16], rate: u32, hz: f64, window: usize) -> f64 {
    let tail = &pcm[pcm.len().saturating_sub(window)..];
    if tail.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * hz / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut energy = 0.0f64;
    for &x in tail {
        let x = f64::from(x);
        energy += x * x;
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    if energy == 0.0 {
        return 0.0;
    }
    power / (energy * tail.len() as f64)
}
