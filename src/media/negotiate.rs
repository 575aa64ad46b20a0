//! SDP offer/answer for the engine's audio stream (RFC 4566, RFC 3264), media side
//! only: read an offer or answer, choose codec, telephone-event and direction, and
//! write ours. SIP carries the bodies; this module never sees a SIP message.

use super::codec::Codec;
use super::session::{Direction, MediaParams};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Why an SDP body cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("malformed SDP: {0}")]
    Malformed(&'static str),
    /// No audio stream with a port (answer with 488).
    #[error("no audio stream")]
    NoAudio,
    /// Audio, but none of PCMU, PCMA, G.722 (answer with 488).
    #[error("no common codec")]
    NoCommonCodec,
}

/// One payload format of an `m=audio` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub payload_type: u8,
    /// Lower-case encoding name (`pcmu`, `g722`, `telephone-event`), from `a=rtpmap`
    /// or, for static types without one, from RFC 3551.
    pub encoding: String,
    pub clock_rate: u32,
    pub fmtp: Option<String>,
}

/// The first audio stream of an SDP body, as far as we use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAudio {
    /// Where the peer wants RTP (its `c=` and `m=` port).
    pub rtp: SocketAddr,
    /// `a=rtcp` (RFC 3605) if given; else RTCP would go to the next port.
    pub rtcp_port: Option<u16>,
    /// In the peer's order of preference.
    pub formats: Vec<Format>,
    pub ptime: Option<u32>,
    /// The peer's direction (media or session level; `sendrecv` when absent).
    pub direction: Direction,
    /// `c=` was 0.0.0.0: the RFC 2543 way of putting us on hold.
    pub held_by_address: bool,
}

impl RemoteAudio {
    /// The engine codecs the peer offers, in its order (static types by number,
    /// the same encodings on dynamic numbers by name).
    pub fn codecs(&self) -> Vec<(Codec, u8)> {
        self.formats
            .iter()
            .filter_map(|f| {
                let codec = match (f.encoding.as_str(), f.clock_rate) {
                    ("pcmu", 8000) => Codec::Pcmu,
                    ("pcma", 8000) => Codec::Pcma,
                    // RFC 3551: G.722's RTP clock is 8000 even though it samples at 16 kHz.
                    ("g722", 8000) => Codec::G722,
                    _ => return None,
                };
                Some((codec, f.payload_type))
            })
            .collect()
    }

    /// The payload type of telephone-event at 8 kHz, if offered.
    pub fn telephone_event(&self) -> Option<u8> {
        self.formats
            .iter()
            .find(|f| f.encoding == "telephone-event" && f.clock_rate == 8000)
            .map(|f| f.payload_type)
    }
}

fn static_format(pt: u8) -> Option<(&'static str, u32)> {
    match pt {
        0 => Some(("pcmu", 8000)),
        8 => Some(("pcma", 8000)),
        9 => Some(("g722", 8000)),
        3 => Some(("gsm", 8000)),
        18 => Some(("g729", 8000)),
        _ => None,
    }
}

/// Reads the first `m=audio` stream with a non-zero port.
pub fn parse(body: &[u8]) -> Result<RemoteAudio, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed("not UTF-8"))?;
    let mut saw_version = false;
    let mut session_addr: Option<IpAddr> = None;
    let mut session_direction: Option<Direction> = None;
    // The audio stream being read, and whether we are inside some other m= section.
    let mut audio: Option<(u16, Vec<u8>, Option<IpAddr>)> = None;
    let mut skipping = false;
    let mut rtpmaps: Vec<(u8, String, u32)> = Vec::new();
    let mut fmtps: Vec<(u8, String)> = Vec::new();
    let mut ptime = None;
    let mut direction = None;
    let mut rtcp_port = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        match kind {
            "v" => saw_version = true,
            "m" => {
                if audio.is_some() {
                    skipping = true; // only the first usable audio stream
                    continue;
                }
                let mut parts = value.split_ascii_whitespace();
                let (Some(media), Some(port), Some(_proto)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(SdpError::Malformed("bad m= line"));
                };
                let port: u16 = port
                    .split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or(SdpError::Malformed("bad m= port"))?;
                if media != "audio" || port == 0 {
                    skipping = true;
                    continue;
                }
                skipping = false;
                audio = Some((port, parts.filter_map(|f| f.parse().ok()).collect(), None));
            }
            _ if skipping => {}
            "c" => {
                let addr = parse_connection(value)?;
                match &mut audio {
                    Some((_, _, a)) => *a = Some(addr),
                    None => session_addr = Some(addr),
                }
            }
            "a" => {
                let (name, arg) = value.split_once(':').unwrap_or((value, ""));
                if let Some(d) = Direction::from_attribute(name) {
                    if audio.is_some() {
                        direction = Some(d);
                    } else {
                        session_direction = Some(d);
                    }
                    continue;
                }
                if audio.is_none() {
                    continue;
                }
                match name {
                    "rtpmap" => {
                        let mut it = arg.splitn(2, ' ');
                        if let (Some(pt), Some(enc)) = (it.next(), it.next())
                            && let Ok(pt) = pt.trim().parse()
                        {
                            let mut e = enc.trim().split('/');
                            let name = e.next().unwrap_or("").to_ascii_lowercase();
                            let rate = e.next().and_then(|r| r.parse().ok()).unwrap_or(0);
                            rtpmaps.push((pt, name, rate));
                        }
                    }
                    "fmtp" => {
                        if let Some((pt, params)) = arg.split_once(' ')
                            && let Ok(pt) = pt.trim().parse()
                        {
                            fmtps.push((pt, params.trim().to_string()));
                        }
                    }
                    "ptime" => ptime = arg.trim().parse().ok(),
                    "rtcp" => {
                        rtcp_port = arg
                            .split_ascii_whitespace()
                            .next()
                            .and_then(|p| p.parse().ok());
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if !saw_version {
        return Err(SdpError::Malformed("not SDP"));
    }
    let (port, pts, media_addr) = audio.ok_or(SdpError::NoAudio)?;
    let ip = media_addr
        .or(session_addr)
        .ok_or(SdpError::Malformed("no connection address"))?;
    let formats = pts
        .into_iter()
        .filter_map(|pt| {
            let (encoding, clock_rate) = match rtpmaps.iter().find(|(p, _, _)| *p == pt) {
                Some((_, name, rate)) => (name.clone(), *rate),
                None => {
                    let (name, rate) = static_format(pt)?;
                    (name.to_string(), rate)
                }
            };
            Some(Format {
                payload_type: pt,
                encoding,
                clock_rate,
                fmtp: fmtps.iter().find(|(p, _)| *p == pt).map(|(_, f)| f.clone()),
            })
        })
        .collect();
    Ok(RemoteAudio {
        rtp: SocketAddr::new(ip, port),
        rtcp_port,
        formats,
        ptime,
        direction: direction
            .or(session_direction)
            .unwrap_or(Direction::SendRecv),
        held_by_address: ip.is_unspecified(),
    })
}

fn parse_connection(value: &str) -> Result<IpAddr, SdpError> {
    let mut parts = value.split_ascii_whitespace();
    let (Some("IN"), Some(_), Some(addr)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(SdpError::Malformed("bad c= line"));
    };
    addr.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or(SdpError::Malformed("bad c= address"))
}

/// How we choose among what is offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Take G.722 whenever it is offered (a wideband conference room); otherwise
    /// the offerer's first of PCMU/PCMA wins, and G.722 only when it is all there is.
    pub prefer_wideband: bool,
    /// Our own wish, combined with the offer per RFC 3264 §6.1 (`SendRecv` unless we
    /// mean to hold).
    pub direction: Direction,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            prefer_wideband: true,
            direction: Direction::SendRecv,
        }
    }
}

/// Intersects two directions: what both sides allow.
fn combine(ours: Direction, allowed: Direction) -> Direction {
    match (
        ours.sends() && allowed.sends(),
        ours.receives() && allowed.receives(),
    ) {
        (true, true) => Direction::SendRecv,
        (true, false) => Direction::SendOnly,
        (false, true) => Direction::RecvOnly,
        (false, false) => Direction::Inactive,
    }
}

/// The media side of our answer to `offer`: the session parameters to run.
///
/// RFC 3264 §6.1: a `sendonly` offer is answered `recvonly`, `recvonly` with
/// `sendonly`, `inactive` with `inactive`; and c=0.0.0.0 (RFC 2543 hold) stops us
/// sending. The peer's payload type number is used for the codec we pick.
pub fn answer(offer: &RemoteAudio, policy: Policy) -> Result<MediaParams, SdpError> {
    let codecs = offer.codecs();
    let wideband = codecs.iter().find(|(c, _)| *c == Codec::G722).copied();
    let narrow = codecs.iter().find(|(c, _)| *c != Codec::G722).copied();
    let (codec, _pt) = match (policy.prefer_wideband, wideband, narrow) {
        (true, Some(w), _) => w,
        (_, _, Some(n)) => n,
        (_, Some(w), None) => w,
        (_, None, None) => return Err(SdpError::NoCommonCodec),
    };
    let mut allowed = offer.direction.reversed();
    if offer.held_by_address {
        allowed = combine(allowed, Direction::RecvOnly);
    }
    Ok(MediaParams {
        remote: offer.rtp,
        codec,
        telephone_event: offer.telephone_event(),
        direction: combine(policy.direction, allowed),
    })
}

/// Our side of an SDP body: address, port, and the `o=` numbers (`session_id` stays
/// for the session's life; `version` goes up whenever the body changes, RFC 3264 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    pub ip: IpAddr,
    pub port: u16,
    pub session_id: u64,
    pub version: u64,
}

/// Our SDP body with the given formats (one codec in an answer, our list in an offer).
fn write(
    local: &Local,
    codecs: &[(Codec, u8)],
    telephone_event: Option<u8>,
    direction: Direction,
) -> String {
    let family = if local.ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut formats = String::new();
    let mut attributes = String::new();
    for (codec, pt) in codecs {
        let _ = write!(formats, " {pt}");
        let _ = write!(attributes, "a=rtpmap:{pt} {}/8000\r\n", codec.name());
    }
    if let Some(te) = telephone_event {
        let _ = write!(formats, " {te}");
        let _ = write!(
            attributes,
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        );
    }
    format!(
        "v=0\r\no=switchboard {sid} {ver} IN {family} {ip}\r\ns=switchboard\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP{formats}\r\n{attributes}\
         a=ptime:20\r\na={dir}\r\n",
        sid = local.session_id,
        ver = local.version,
        ip = local.ip,
        port = local.port,
        dir = direction.attribute(),
    )
}

/// The SDP answer for parameters chosen by [`answer`].
pub fn answer_sdp(local: &Local, params: &MediaParams) -> String {
    write(
        local,
        &[(params.codec, params.codec.payload_type())],
        params.telephone_event,
        params.direction,
    )
}

/// The telephone-event payload type we offer.
pub const OFFERED_TELEPHONE_EVENT: u8 = 101;

/// An offer from us (calls we originate, re-INVITEs that hold or resume): `codecs`
/// in our order of preference, telephone-event, ptime 20, `direction`.
pub fn offer_sdp(local: &Local, codecs: &[Codec], direction: Direction) -> String {
    let list: Vec<(Codec, u8)> = codecs.iter().map(|c| (*c, c.payload_type())).collect();
    write(local, &list, Some(OFFERED_TELEPHONE_EVENT), direction)
}

/// Reads the answer to our offer: the first codec of the answer that we offered,
/// telephone-event if kept, and the direction the answerer chose (seen from us).
pub fn accept_answer(body: &[u8], offered: &[Codec]) -> Result<MediaParams, SdpError> {
    let remote = parse(body)?;
    let (codec, _) = remote
        .codecs()
        .into_iter()
        .find(|(c, _)| offered.contains(c))
        .ok_or(SdpError::NoCommonCodec)?;
    let mut direction = remote.direction.reversed();
    if remote.held_by_address {
        direction = combine(direction, Direction::RecvOnly);
    }
    Ok(MediaParams {
        remote: remote.rtp,
        codec,
        telephone_event: remote.telephone_event(),
        direction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What baresip 3.x sends (G.722 first, the order of its codec modules).
    const BARESIP: &str = "v=0\r\n\
        o=- 1180919513 3289452862 IN IP4 192.0.2.10\r\n\
        s=-\r\n\
        c=IN IP4 192.0.2.10\r\n\
        t=0 0\r\n\
        a=tool:baresip 3.10.1\r\n\
        m=audio 24010 RTP/AVP 9 0 8 101\r\n\
        b=AS:64\r\n\
        a=rtpmap:9 G722/8000/1\r\n\
        a=rtpmap:0 PCMU/8000/1\r\n\
        a=rtpmap:8 PCMA/8000/1\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\n\
        a=rtcp:24011\r\n\
        a=sendrecv\r\n\
        a=label:1\r\n\
        a=ssrc:2730916520 cname:sip:101@192.0.2.10\r\n\
        a=rtcp-rsize\r\n\
        a=ptime:20\r\n";

    /// SIPp's call.xml body with its placeholders filled in.
    const SIPP: &str = "v=0\r\n\
        o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n\
        s=-\r\n\
        c=IN IP4 127.0.0.1\r\n\
        t=0 0\r\n\
        m=audio 6000 RTP/AVP 0\r\n\
        a=rtpmap:0 PCMU/8000\r\n";

    /// baresip putting the call on hold (a re-INVITE).
    fn baresip_hold() -> String {
        BARESIP.replace("a=sendrecv", "a=sendonly")
    }

    #[test]
    fn a_baresip_offer_is_read_completely() {
        let offer = parse(BARESIP.as_bytes()).unwrap();
        assert_eq!(offer.rtp, "192.0.2.10:24010".parse().unwrap());
        assert_eq!(offer.rtcp_port, Some(24011));
        assert_eq!(offer.ptime, Some(20));
        assert_eq!(offer.direction, Direction::SendRecv);
        assert_eq!(
            offer.codecs(),
            vec![(Codec::G722, 9), (Codec::Pcmu, 0), (Codec::Pcma, 8)]
        );
        assert_eq!(offer.telephone_event(), Some(101));
        assert_eq!(offer.formats[3].fmtp.as_deref(), Some("0-15"));
    }

    #[test]
    fn wideband_rooms_take_g722_and_narrowband_ones_the_offerers_g711() {
        let offer = parse(BARESIP.as_bytes()).unwrap();
        let wide = answer(&offer, Policy::default()).unwrap();
        assert_eq!(wide.codec, Codec::G722);
        assert_eq!(wide.telephone_event, Some(101));
        assert_eq!(wide.direction, Direction::SendRecv);
        let narrow = answer(
            &offer,
            Policy {
                prefer_wideband: false,
                ..Policy::default()
            },
        )
        .unwrap();
        assert_eq!(narrow.codec, Codec::Pcmu);
        let sipp = answer(&parse(SIPP.as_bytes()).unwrap(), Policy::default()).unwrap();
        assert_eq!(sipp.codec, Codec::Pcmu);
        assert_eq!(sipp.telephone_event, None);
        assert_eq!(sipp.remote, "127.0.0.1:6000".parse().unwrap());
    }

    #[test]
    fn the_answer_sdp_has_one_codec_ptime_20_and_the_direction() {
        let offer = parse(BARESIP.as_bytes()).unwrap();
        let params = answer(&offer, Policy::default()).unwrap();
        let local = Local {
            ip: "198.51.100.1".parse().unwrap(),
            port: 10400,
            session_id: 7,
            version: 7,
        };
        let sdp = answer_sdp(&local, &params);
        assert!(sdp.contains("m=audio 10400 RTP/AVP 9 101\r\n"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:9 G722/8000\r\n"));
        assert!(sdp.contains("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"));
        assert!(sdp.contains("c=IN IP4 198.51.100.1\r\n"));
        assert!(sdp.contains("a=ptime:20\r\na=sendrecv\r\n"));
        // Our own answer parses back to the same choice.
        let back = accept_answer(sdp.as_bytes(), &[Codec::G722]).unwrap();
        assert_eq!(back.codec, Codec::G722);
        assert_eq!(back.remote, "198.51.100.1:10400".parse().unwrap());
    }

    #[test]
    fn directions_are_answered_per_rfc_3264() {
        let cases = [
            ("a=sendonly", Direction::RecvOnly),
            ("a=recvonly", Direction::SendOnly),
            ("a=inactive", Direction::Inactive),
            ("a=sendrecv", Direction::SendRecv),
        ];
        for (attr, ours) in cases {
            let sdp = BARESIP.replace("a=sendrecv", attr);
            let params = answer(&parse(sdp.as_bytes()).unwrap(), Policy::default()).unwrap();
            assert_eq!(params.direction, ours, "{attr}");
        }
        // Session-level direction counts when the stream has none.
        let session_level = SIPP.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
        let p = answer(&parse(session_level.as_bytes()).unwrap(), Policy::default()).unwrap();
        assert_eq!(p.direction, Direction::RecvOnly);
        // RFC 2543 hold: c=0.0.0.0.
        let old_hold = SIPP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let p = answer(&parse(old_hold.as_bytes()).unwrap(), Policy::default()).unwrap();
        assert_eq!(p.direction, Direction::RecvOnly);
        // Our own hold wish meets their sendonly: nobody sends.
        let p = answer(
            &parse(baresip_hold().as_bytes()).unwrap(),
            Policy {
                direction: Direction::SendOnly,
                ..Policy::default()
            },
        )
        .unwrap();
        assert_eq!(p.direction, Direction::Inactive);
    }

    #[test]
    fn our_offer_lists_our_codecs_and_reads_the_answer() {
        let local = Local {
            ip: "2001:db8::1".parse().unwrap(),
            port: 10000,
            session_id: 1,
            version: 2,
        };
        let offer = offer_sdp(
            &local,
            &[Codec::G722, Codec::Pcmu, Codec::Pcma],
            Direction::SendOnly,
        );
        assert!(
            offer.contains("m=audio 10000 RTP/AVP 9 0 8 101\r\n"),
            "{offer}"
        );
        assert!(offer.contains("c=IN IP6 2001:db8::1\r\n"));
        assert!(offer.contains("a=sendonly\r\n"));
        let parsed = parse(offer.as_bytes()).unwrap();
        assert_eq!(parsed.codecs().len(), 3);
        // A phone answers with PCMA and recvonly.
        let reply = "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n\
                     m=audio 5000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
                     a=rtpmap:101 telephone-event/8000\r\na=recvonly\r\n";
        let params =
            accept_answer(reply.as_bytes(), &[Codec::G722, Codec::Pcmu, Codec::Pcma]).unwrap();
        assert_eq!(params.codec, Codec::Pcma);
        assert_eq!(params.direction, Direction::SendOnly);
        assert_eq!(params.telephone_event, Some(101));
        assert_eq!(
            accept_answer(reply.as_bytes(), &[Codec::G722]),
            Err(SdpError::NoCommonCodec)
        );
    }

    #[test]
    fn unusable_offers_are_errors_not_panics() {
        let g729 =
            "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5004 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
        assert_eq!(
            answer(&parse(g729.as_bytes()).unwrap(), Policy::default()),
            Err(SdpError::NoCommonCodec)
        );
        let video_only = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=video 5004 RTP/AVP 96\r\n";
        assert_eq!(parse(video_only.as_bytes()), Err(SdpError::NoAudio));
        let disabled = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 0 RTP/AVP 0\r\n";
        assert_eq!(parse(disabled.as_bytes()), Err(SdpError::NoAudio));
        // G.722 at a 16000 clock is someone's mistake, not G.722 (RFC 3551).
        let wrong_clock =
            "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5004 RTP/AVP 9\r\na=rtpmap:9 G722/16000\r\n";
        assert!(parse(wrong_clock.as_bytes()).unwrap().codecs().is_empty());
        for bad in [
            &b"\xff\xfe"[..],
            b"hello",
            b"v=0\r\nm=audio\r\n",
            b"v=0\r\nm=audio 99999 RTP/AVP 0\r\n",
            b"v=0\r\nc=IN IP4 nonsense\r\nm=audio 5 RTP/AVP 0\r\n",
            b"v=0\r\nm=audio 5004 RTP/AVP 0\r\n",
        ] {
            assert!(matches!(parse(bad), Err(SdpError::Malformed(_))), "{bad:?}");
        }
    }
}
