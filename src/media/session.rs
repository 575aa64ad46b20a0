//! One RTP session of the engine on a leased port: inbound packets through the jitter
//! buffer to decoded 20 ms frames (with loss concealment), outbound frames encoded
//! with our own sequence, timestamp and SSRC, RFC 4733 digits both ways, the
//! negotiated direction, symmetric RTP, and the RTP timeout.
//!
//! The session does no I/O on its own schedule: its owner (a room's tick, a bridge's
//! loop) drains the socket without blocking (`poll_input`) and sends without
//! awaiting (`try_send_to`; a full socket buffer drops the packet, as UDP would).
//! That keeps a room to one timer and no task wake-up per packet.

use super::codec::{Codec, Decoder, Encoder, FRAME_TS, MAX_FRAME};
use super::dtmf::{DtmfReceiver, DtmfSender, TelephoneEvent};
use super::jitter::{JitterBuffer, JitterStats, Popped};
use super::ports::Lease;
use rtp_rs::RtpReader;
use std::collections::VecDeque;
use std::net::SocketAddr;
use tokio::time::{Duration, Instant};

/// Media direction from our side (RFC 3264 §5.1: what *we* do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The other side's view of the same stream (and the answer to an offer, RFC 3264
    /// §6.1, when we accept everything offered).
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }

    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    pub fn from_attribute(a: &str) -> Option<Direction> {
        match a {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

/// What was negotiated for a session (see `negotiate`): where to send, how, and which way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaParams {
    pub remote: SocketAddr,
    pub codec: Codec,
    /// The payload type of telephone-event (8 kHz), when both sides have it.
    pub telephone_event: Option<u8>,
    /// Ours.
    pub direction: Direction,
}

/// What a decoded frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Received audio.
    Voice,
    /// The last frame repeated and fading, for a lost packet.
    Concealed,
    /// Nothing to play (no stream, long loss, silence suppression).
    Silence,
}

/// Counters of one session.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionStats {
    pub packets_in: u64,
    pub packets_out: u64,
    /// Packets a full socket buffer (or an unreachable peer) refused.
    pub send_dropped: u64,
    /// Packets from an address other than the one we latched to.
    pub foreign: u64,
    /// Datagrams that were not RTP.
    pub malformed: u64,
    pub jitter: JitterStats,
}

/// One incoming RTP packet, as a bridge sees it.
#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// Repeat-and-fade concealment: the first lost frame repeats the last good one fading
/// to half, the second fades on to silence, later ones are silent.
struct Concealer {
    last: [i16; MAX_FRAME],
    run: u32,
}

impl Concealer {
    fn good(&mut self, frame: &[i16]) {
        let n = frame.len().min(MAX_FRAME);
        self.last[..n].copy_from_slice(&frame[..n]);
        self.run = 0;
    }

    fn conceal(&mut self, out: &mut [i16]) -> Heard {
        self.run += 1;
        let (from, to) = match self.run {
            1 => (1.0f32, 0.5f32),
            2 => (0.5, 0.0),
            _ => {
                out.fill(0);
                return Heard::Silence;
            }
        };
        let n = out.len().min(MAX_FRAME);
        for (i, (o, s)) in out[..n].iter_mut().zip(&self.last[..n]).enumerate() {
            let gain = from + (to - from) * i as f32 / n as f32;
            *o = (f32::from(*s) * gain) as i16;
        }
        Heard::Concealed
    }
}

/// Queued incoming digits per session; the oldest is dropped past this (nobody types
/// 32 digits within one tick of the reader).
const DIGIT_QUEUE: usize = 32;
/// Datagrams read per `poll_input`: a peer flooding us cannot hold the tick.
const MAX_DRAIN: usize = 64;
const RTP_HEADER: usize = 12;

pub struct RtpSession {
    lease: Lease,
    /// The socket registered with tokio, once an owner awaits readiness (the bridge);
    /// reads then go through it, as tokio clears readiness only on its own reads.
    /// Until then (a conference room, which drains on its tick) reads and sends go
    /// straight to the kernel and no datagram wakes the reactor. Sends always do.
    awaited: Option<tokio::net::UdpSocket>,
    params: MediaParams,
    /// Where RTP really comes from (symmetric RTP): the first source after the
    /// session was set up or moved; later packets from elsewhere are ignored.
    latched: Option<SocketAddr>,
    ssrc: u32,
    seq: u16,
    ts: u32,
    marker: bool,
    jitter: JitterBuffer,
    decoder: Decoder,
    encoder: Encoder,
    conceal: Concealer,
    dtmf_rx: DtmfReceiver,
    dtmf_tx: Option<(DtmfSender, u32)>,
    digits: VecDeque<char>,
    epoch: Instant,
    last_heard: Instant,
    rx: Box<[u8; 2048]>,
    tx: Box<[u8; RTP_HEADER + 1024]>,
    payload: [u8; FRAME_TS],
    stats: SessionStats,
}

impl RtpSession {
    pub fn new(lease: Lease, params: MediaParams) -> Self {
        let now = Instant::now();
        Self {
            lease,
            awaited: None,
            jitter: JitterBuffer::new(params.codec.silence_byte()),
            decoder: Decoder::new(params.codec),
            encoder: Encoder::new(params.codec),
            params,
            latched: None,
            ssrc: rand::random(),
            seq: rand::random(),
            ts: rand::random(),
            marker: true,
            conceal: Concealer {
                last: [0; MAX_FRAME],
                run: 0,
            },
            dtmf_rx: DtmfReceiver::default(),
            dtmf_tx: None,
            digits: VecDeque::with_capacity(DIGIT_QUEUE),
            epoch: now,
            last_heard: now,
            rx: Box::new([0; 2048]),
            tx: Box::new([0; RTP_HEADER + 1024]),
            payload: [0; FRAME_TS],
            stats: SessionStats::default(),
        }
    }

    /// Our RTP port (for the SDP answer).
    pub fn port(&self) -> u16 {
        self.lease.port
    }

    pub fn params(&self) -> &MediaParams {
        &self.params
    }

    pub fn codec(&self) -> Codec {
        self.params.codec
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Where we send now (the latched source, else the negotiated address).
    pub fn destination(&self) -> SocketAddr {
        self.latched.unwrap_or(self.params.remote)
    }

    pub fn stats(&self) -> SessionStats {
        SessionStats {
            jitter: self.jitter.stats(),
            ..self.stats
        }
    }

    pub fn jitter_target_ms(&self) -> u32 {
        self.jitter.target_ms()
    }

    /// Applies a renegotiation (re-INVITE): a new address re-opens latching, a new
    /// codec restarts the coders and the jitter buffer. Our SSRC and numbering go on.
    pub fn update(&mut self, params: MediaParams) {
        if params.remote != self.params.remote {
            self.latched = None;
        }
        if params.codec != self.params.codec {
            self.decoder = Decoder::new(params.codec);
            self.encoder = Encoder::new(params.codec);
            self.jitter.reset(params.codec.silence_byte());
            self.marker = true;
        }
        if !self.params.direction.receives() && params.direction.receives() {
            // The peer starts sending only now: its timeout starts now too.
            self.last_heard = Instant::now();
        }
        self.params = params;
    }

    fn units(&self, now: Instant) -> i64 {
        (now.saturating_duration_since(self.epoch).as_micros() as i64) * 8 / 1000
    }

    /// Waits until a datagram can be read (for owners that wait on one session). The
    /// first call registers the socket with the current runtime.
    pub async fn readable(&mut self) -> std::io::Result<()> {
        if self.awaited.is_none() {
            self.awaited = Some(self.lease.registered()?);
        }
        match &self.awaited {
            Some(socket) => socket.readable().await,
            None => Ok(()),
        }
    }

    /// Stops awaiting: the socket leaves the reactor (for owners that read on a tick).
    pub fn unregister(&mut self) {
        self.awaited = None;
    }

    fn try_recv(&mut self) -> std::io::Result<(usize, SocketAddr)> {
        match &self.awaited {
            Some(socket) => socket.try_recv_from(&mut self.rx[..]),
            None => self.lease.socket.recv_from(&mut self.rx[..]),
        }
    }

    /// Reads what the socket holds (up to 64 datagrams) into the jitter buffer and
    /// the digit queue. Returns how many RTP packets were taken.
    pub fn poll_input(&mut self, now: Instant) -> usize {
        let units = self.units(now);
        let mut taken = 0;
        for _ in 0..MAX_DRAIN {
            let Ok((n, from)) = self.try_recv() else {
                break;
            };
            let Some(packet) = self.accept(n, from, now) else {
                continue;
            };
            taken += 1;
            if !self.params.direction.receives() {
                continue;
            }
            let (pt, ssrc, ts) = (packet.payload_type, packet.ssrc, packet.timestamp);
            let (start, len) = (packet.start, packet.len);
            let payload = &self.rx[start..start + len];
            if Some(pt) == self.params.telephone_event {
                if let Ok(event) = TelephoneEvent::parse(payload)
                    && let Some(digit) = self.dtmf_rx.on_packet(ssrc, ts, &event)
                {
                    if self.digits.len() == DIGIT_QUEUE {
                        self.digits.pop_front();
                    }
                    self.digits.push_back(digit);
                }
            } else if pt == self.params.codec.payload_type() {
                self.jitter.push(units, ssrc, ts, payload);
            }
            // Anything else (comfort noise, a codec we did not agree) is ignored.
        }
        taken
    }

    /// Checks the source and parses; `None` for what we do not take.
    fn accept(&mut self, n: usize, from: SocketAddr, now: Instant) -> Option<Header> {
        match self.latched {
            Some(addr) if addr != from => {
                self.stats.foreign += 1;
                return None;
            }
            _ => {}
        }
        let Ok(rtp) = RtpReader::new(&self.rx[..n]) else {
            self.stats.malformed += 1;
            return None;
        };
        let payload = rtp.payload();
        let start = payload.as_ptr() as usize - self.rx.as_ptr() as usize;
        let header = Header {
            payload_type: rtp.payload_type(),
            marker: rtp.mark(),
            sequence: u16::from(rtp.sequence_number()),
            timestamp: rtp.timestamp(),
            ssrc: rtp.ssrc(),
            start,
            len: payload.len(),
        };
        if self.latched.is_none() {
            self.latched = Some(from);
        }
        self.last_heard = now;
        self.stats.packets_in += 1;
        Some(header)
    }

    /// Reads one datagram for a bridge and hands it to `forward` (without the jitter
    /// buffer: the far end has its own). Returns false when the socket is empty.
    pub fn poll_raw(&mut self, now: Instant, forward: impl FnOnce(Inbound<'_>)) -> bool {
        let Ok((n, from)) = self.try_recv() else {
            return false;
        };
        if let Some(h) = self.accept(n, from, now)
            && self.params.direction.receives()
        {
            if Some(h.payload_type) == self.params.telephone_event
                && let Ok(event) = TelephoneEvent::parse(&self.rx[h.start..h.start + h.len])
                && let Some(digit) = self.dtmf_rx.on_packet(h.ssrc, h.timestamp, &event)
            {
                if self.digits.len() == DIGIT_QUEUE {
                    self.digits.pop_front();
                }
                self.digits.push_back(digit);
            }
            forward(Inbound {
                payload_type: h.payload_type,
                marker: h.marker,
                sequence: h.sequence,
                timestamp: h.timestamp,
                ssrc: h.ssrc,
                payload: &self.rx[h.start..h.start + h.len],
            });
        }
        true
    }

    /// The next digit the peer pressed (RFC 4733), each press once.
    pub fn take_digit(&mut self) -> Option<char> {
        self.digits.pop_front()
    }

    /// The frame due at `now`, decoded at the codec's rate into `out`
    /// (`codec().frame_samples()` samples), concealing losses.
    pub fn read_frame(&mut self, now: Instant, out: &mut [i16]) -> Heard {
        let n = self.params.codec.frame_samples().min(out.len());
        let out = &mut out[..n];
        let units = self.units(now);
        match self.jitter.pop(units, &mut self.payload) {
            Popped::Audio => {
                let got = self.decoder.decode(&self.payload, out);
                out[got..].fill(0);
                self.conceal.good(out);
                Heard::Voice
            }
            Popped::Missing => self.conceal.conceal(out),
            Popped::Idle => {
                out.fill(0);
                Heard::Silence
            }
        }
    }

    /// Encodes and sends one 20 ms frame (at the codec's rate).
    pub fn send_frame(&mut self, pcm: &[i16]) {
        let mut payload = [0u8; FRAME_TS];
        let n = self.encoder.encode(pcm, &mut payload);
        self.send_payload(&payload[..n]);
    }

    /// Sends an already encoded frame (a room encodes once for many listeners). While
    /// a digit is being sent it replaces the audio; time moves on either way.
    pub fn send_payload(&mut self, payload: &[u8]) {
        let duration = payload.len() as u32;
        if let Some((sender, start)) = self.dtmf_tx.as_mut() {
            let start = *start;
            let tick = sender.tick();
            let finished = sender.is_finished();
            if let (Some(tick), Some(pt)) = (tick, self.params.telephone_event) {
                for copy in 0..tick.copies {
                    let marker = tick.marker && copy == 0;
                    self.send_packet(pt, marker, start, &tick.payload);
                }
            }
            if finished || tick.is_none() {
                self.dtmf_tx = None;
                // RFC 4733 §2.5.1.3: audio after an event starts a new talkspurt.
                self.marker = true;
            }
            self.ts = self.ts.wrapping_add(duration);
            return;
        }
        let (pt, marker, ts) = (self.params.codec.payload_type(), self.marker, self.ts);
        if self.send_packet(pt, marker, ts, payload) {
            self.marker = false;
        }
        self.ts = self.ts.wrapping_add(duration);
    }

    /// Starts sending `digit` for `ms` over the next frames. False when the peer did
    /// not negotiate telephone-event or the digit is not one.
    pub fn send_digit(&mut self, digit: char, ms: u32) -> bool {
        if self.params.telephone_event.is_none() {
            return false;
        }
        match DtmfSender::new(digit, ms) {
            Some(sender) => {
                self.dtmf_tx = Some((sender, self.ts));
                true
            }
            None => false,
        }
    }

    /// Sends one packet with our SSRC and the next sequence number (for a bridge,
    /// which maps the far side's timestamps itself). False when not sent.
    pub fn send_rtp(&mut self, payload_type: u8, marker: bool, ts: u32, payload: &[u8]) -> bool {
        self.send_packet(payload_type, marker, ts, payload)
    }

    /// Sends a packet with our SSRC but the given sequence number (a bridge keeps the
    /// far side's gaps and order visible). Our own numbering continues after it.
    pub fn forward_rtp(
        &mut self,
        payload_type: u8,
        marker: bool,
        seq: u16,
        ts: u32,
        payload: &[u8],
    ) -> bool {
        self.seq = seq;
        self.send_packet(payload_type, marker, ts, payload)
    }

    fn send_packet(&mut self, payload_type: u8, marker: bool, ts: u32, payload: &[u8]) -> bool {
        if !self.params.direction.sends() {
            return false;
        }
        let len = payload.len().min(self.tx.len() - RTP_HEADER);
        let dest = self.destination();
        let tx = &mut self.tx;
        tx[0] = 0x80; // version 2, no padding, extension or CSRC
        tx[1] = (payload_type & 0x7f) | if marker { 0x80 } else { 0 };
        tx[2..4].copy_from_slice(&self.seq.to_be_bytes());
        tx[4..8].copy_from_slice(&ts.to_be_bytes());
        tx[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        tx[RTP_HEADER..RTP_HEADER + len].copy_from_slice(&payload[..len]);
        self.seq = self.seq.wrapping_add(1);
        match self.lease.socket.send_to(&tx[..RTP_HEADER + len], dest) {
            Ok(_) => {
                self.stats.packets_out += 1;
                true
            }
            Err(_) => {
                self.stats.send_dropped += 1;
                false
            }
        }
    }

    /// The timestamp our next audio packet carries.
    pub fn next_timestamp(&self) -> u32 {
        self.ts
    }

    /// Moves our timestamp on without sending (a bridge keeps both legs' clocks).
    pub fn advance_timestamp(&mut self, units: u32) {
        self.ts = self.ts.wrapping_add(units);
    }

    /// How long since the peer's last packet.
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_heard)
    }

    /// True when the peer should be sending (we receive) but nothing came for
    /// `timeout` (`--rtp-timeout`): the call is dead and should be hung up. A peer
    /// that holds with `inactive`, or only listens, sends nothing and never times out.
    pub fn timed_out(&self, now: Instant, timeout: Duration) -> bool {
        self.params.direction.receives() && self.silent_for(now) >= timeout
    }
}

struct Header {
    payload_type: u8,
    marker: bool,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
    start: usize,
    len: usize,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::ports::PortPool;
    use std::net::IpAddr;
    use std::sync::Arc;
    use tokio::net::UdpSocket;

    pub(crate) fn pool() -> Arc<PortPool> {
        // A range of its own per test binary run; other tests use 40000+ and 41000+.
        static POOL: std::sync::OnceLock<Arc<PortPool>> = std::sync::OnceLock::new();
        POOL.get_or_init(|| PortPool::new(43000, 47998)).clone()
    }

    pub(crate) fn localhost() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    pub(crate) fn session_to(remote: SocketAddr, codec: Codec, direction: Direction) -> RtpSession {
        let lease = pool().lease(localhost()).expect("a free port");
        RtpSession::new(
            lease,
            MediaParams {
                remote,
                codec,
                telephone_event: Some(101),
                direction,
            },
        )
    }

    pub(crate) fn rtp(
        pt: u8,
        marker: bool,
        seq: u16,
        ts: u32,
        ssrc: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    struct Parsed {
        pt: u8,
        marker: bool,
        seq: u16,
        ts: u32,
        ssrc: u32,
        payload: Vec<u8>,
    }

    async fn recv(sock: &UdpSocket) -> Parsed {
        let mut buf = [0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
            .await
            .expect("a packet within 5 s")
            .expect("recv");
        let r = RtpReader::new(&buf[..n]).expect("RTP");
        Parsed {
            pt: r.payload_type(),
            marker: r.mark(),
            seq: u16::from(r.sequence_number()),
            ts: r.timestamp(),
            ssrc: r.ssrc(),
            payload: r.payload().to_vec(),
        }
    }

    #[tokio::test]
    async fn outbound_packets_number_time_and_mark_per_rfc_3550() {
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut s = session_to(peer.local_addr().unwrap(), Codec::Pcmu, Direction::SendRecv);
        for _ in 0..3 {
            s.send_frame(&[0; 160]);
        }
        let (a, b, c) = (recv(&peer).await, recv(&peer).await, recv(&peer).await);
        assert_eq!((a.pt, a.payload.len()), (0, 160));
        assert!(a.marker && !b.marker && !c.marker);
        assert_eq!(b.seq, a.seq.wrapping_add(1));
        assert_eq!(c.seq, a.seq.wrapping_add(2));
        assert_eq!(b.ts, a.ts.wrapping_add(160));
        assert_eq!(c.ts, a.ts.wrapping_add(320));
        assert!(a.ssrc == b.ssrc && b.ssrc == c.ssrc && a.ssrc == s.ssrc());
        assert!(a.payload.iter().all(|x| *x == 0xff), "μ-law silence");
    }

    #[tokio::test]
    async fn a_digit_goes_out_as_telephone_events_and_audio_resumes_after_it() {
        let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut s = session_to(peer.local_addr().unwrap(), Codec::Pcma, Direction::SendRecv);
        s.send_frame(&[0; 160]);
        let first = recv(&peer).await;
        assert!(s.send_digit('5', 60));
        for _ in 0..4 {
            s.send_frame(&[0; 160]);
        }
        let mut events = Vec::new();
        for _ in 0..(2 + 3) {
            events.push(recv(&peer).await);
        }
        let audio = recv(&peer).await;
        let event_ts = first.ts.wrapping_add(160);
        assert!(events.iter().all(|e| e.pt == 101 && e.ts == event_ts));
        assert!(events[0].marker && events[1..].iter().all(|e| !e.marker));
        let parsed: Vec<TelephoneEvent> = events
            .iter()
            .map(|e| TelephoneEvent::parse(&e.payload).unwrap())
            .collect();
        assert!(parsed.iter().all(|e| e.event == 5));
        assert_eq!(parsed.iter().filter(|e| e.end).count(), 3);
        assert_eq!(parsed[0].duration, 160);
        // 3 frames of event (60 ms), then audio at the time it is due, marked.
        assert_eq!(audio.pt, 8);
        assert!(audio.marker);
        assert_eq!(audio.ts, first.ts.wrapping_add(160 * 4));
        let seqs: Vec<u16> = std::iter::once(first.seq)
            .chain(events.iter().map(|e| e.seq))
            .chain([audio.seq])
            .collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)));
    }

    #[tokio::test]
    async fn symmetric_rtp_latches_to_the_real_source_and_ignores_others() {
        let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        // The SDP said port 9 (behind a NAT, say); the phone really sends from `phone`.
        let signalled: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut s = session_to(signalled, Codec::Pcmu, Direction::SendRecv);
        let ours: SocketAddr = (localhost(), s.port()).into();
        phone
            .send_to(&rtp(0, true, 1, 160, 77, &[0xff; 160]), ours)
            .await
            .unwrap();
        s.readable().await.unwrap();
        assert_eq!(s.poll_input(Instant::now()), 1);
        assert_eq!(s.destination(), phone.local_addr().unwrap());
        stranger
            .send_to(&rtp(0, false, 2, 320, 78, &[0; 160]), ours)
            .await
            .unwrap();
        s.readable().await.unwrap();
        assert_eq!(s.poll_input(Instant::now()), 0);
        assert_eq!(s.stats().foreign, 1);
        s.send_frame(&[0; 160]);
        assert_eq!(recv(&phone).await.pt, 0);
        // A re-INVITE moves the media to `stranger`: it may latch anew.
        let mut moved = s.params().clone();
        moved.remote = stranger.local_addr().unwrap();
        s.update(moved);
        assert_eq!(s.destination(), stranger.local_addr().unwrap());
        s.send_frame(&[0; 160]);
        assert_eq!(recv(&stranger).await.pt, 0);
    }

    #[tokio::test]
    async fn digits_arrive_once_and_directions_gate_media() {
        let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut s = session_to(
            phone.local_addr().unwrap(),
            Codec::Pcmu,
            Direction::SendRecv,
        );
        let ours: SocketAddr = (localhost(), s.port()).into();
        let end = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        for seq in 0..3u16 {
            phone
                .send_to(&rtp(101, seq == 0, seq, 4000, 5, &end.to_bytes()), ours)
                .await
                .unwrap();
        }
        let mut taken = 0;
        while taken < 3 {
            s.readable().await.unwrap();
            taken += s.poll_input(Instant::now());
        }
        assert_eq!(s.take_digit(), Some('#'));
        assert_eq!(s.take_digit(), None);

        // inactive: nothing goes out, nothing is taken in, and no timeout applies.
        let mut p = s.params().clone();
        p.direction = Direction::Inactive;
        s.update(p.clone());
        s.send_frame(&[0; 160]);
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(!s.timed_out(later, Duration::from_secs(30)));
        // recvonly (the peer holds with sendonly): we still do not send.
        p.direction = Direction::RecvOnly;
        s.update(p.clone());
        s.send_frame(&[0; 160]);
        assert!(s.timed_out(later, Duration::from_secs(30)));
        p.direction = Direction::SendRecv;
        s.update(p);
        s.send_frame(&[1; 160]);
        let got = recv(&phone).await;
        assert_eq!(got.payload[0], crate::media::g711::ulaw_encode(1));
        assert_eq!(s.stats().packets_out, 1, "only the sendrecv frame left");
    }

    #[tokio::test(start_paused = true)]
    async fn rtp_timeout_counts_from_the_last_packet() {
        let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut s = session_to(
            phone.local_addr().unwrap(),
            Codec::Pcmu,
            Direction::SendRecv,
        );
        let timeout = Duration::from_secs(30);
        let start = Instant::now();
        assert!(!s.timed_out(start + Duration::from_secs(29), timeout));
        assert!(s.timed_out(start + Duration::from_secs(30), timeout));
        let ours: SocketAddr = (localhost(), s.port()).into();
        tokio::time::advance(Duration::from_secs(20)).await;
        phone
            .send_to(&rtp(0, true, 1, 160, 77, &[0xff; 160]), ours)
            .await
            .unwrap();
        s.readable().await.unwrap();
        let heard_at = Instant::now();
        assert_eq!(s.poll_input(heard_at), 1);
        assert!(!s.timed_out(heard_at + Duration::from_secs(29), timeout));
        assert!(s.timed_out(heard_at + Duration::from_secs(30), timeout));
    }

    #[tokio::test]
    async fn lost_packets_are_concealed_then_silent() {
        let phone = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut s = session_to(
            phone.local_addr().unwrap(),
            Codec::Pcmu,
            Direction::SendRecv,
        );
        let ours: SocketAddr = (localhost(), s.port()).into();
        let loud = [crate::media::g711::ulaw_encode(8000); 160];
        let t0 = Instant::now();
        phone
            .send_to(&rtp(0, true, 1, 0, 9, &loud), ours)
            .await
            .unwrap();
        s.readable().await.unwrap();
        s.poll_input(t0);
        let mut pcm = [0i16; 160];
        let mut kinds = Vec::new();
        let mut levels = Vec::new();
        for i in 0..8u32 {
            let kind = s.read_frame(t0 + Duration::from_millis(20 * u64::from(i)), &mut pcm);
            kinds.push(kind);
            levels.push(pcm.iter().map(|x| i32::from(*x).abs()).max().unwrap_or(0));
        }
        let voice = kinds
            .iter()
            .position(|k| *k == Heard::Voice)
            .expect("the packet plays");
        assert_eq!(kinds[voice + 1], Heard::Concealed);
        assert_eq!(kinds[voice + 2], Heard::Concealed);
        assert_eq!(kinds[voice + 3], Heard::Silence);
        assert!(levels[voice + 1] <= levels[voice] && levels[voice + 1] > levels[voice] / 3);
        assert!(levels[voice + 2] <= levels[voice] / 2 + 1);
        assert_eq!(levels[voice + 3], 0);
    }
}
