//! Just enough SDP (RFC 4566, offer/answer RFC 3264) for voicemail: read the caller's
//! audio offer, pick G.711 (and telephone-event), write our answer.

use crate::media::g711::Codec;
use std::net::{IpAddr, SocketAddr};

/// What the caller offered for audio, as far as we can use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Where the caller wants our RTP.
    pub remote: SocketAddr,
    /// The first G.711 codec in the caller's order of preference.
    pub codec: Codec,
    /// The payload type the caller gave telephone-event at 8 kHz, if any.
    pub telephone_event: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferError {
    /// Not SDP we can read (no audio line, no address).
    Malformed(&'static str),
    /// Readable, but neither PCMU nor PCMA is offered (488).
    NoCommonCodec,
}

/// The first audio stream: port, formats, its own address, rtpmaps.
struct AudioLine {
    port: u16,
    formats: Vec<u8>,
    addr: Option<IpAddr>,
    maps: Vec<(u8, String)>,
}

/// Reads an SDP offer. The first `m=audio` line with a port counts; its `c=` (or the
/// session's) gives the address.
pub fn parse_offer(body: &[u8]) -> Result<Offer, OfferError> {
    let text = std::str::from_utf8(body).map_err(|_| OfferError::Malformed("SDP is not UTF-8"))?;
    let mut session_addr: Option<IpAddr> = None;
    let mut media: Option<AudioLine> = None;
    let mut in_other_media = false;
    let mut saw_version = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        match kind {
            "v" => saw_version = true,
            "c" => {
                let addr = parse_connection(value)?;
                match &mut media {
                    Some(line) if !in_other_media => line.addr = Some(addr),
                    None if !in_other_media => session_addr = Some(addr),
                    _ => {}
                }
            }
            "m" => {
                if media.is_some() {
                    in_other_media = true; // only the first usable audio stream
                    continue;
                }
                let mut parts = value.split_ascii_whitespace();
                let (Some(mtype), Some(port), Some(_proto)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(OfferError::Malformed("bad m= line"));
                };
                let port: u16 = port
                    .split('/')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or(OfferError::Malformed("bad m= port"))?;
                if mtype != "audio" || port == 0 {
                    in_other_media = true;
                    continue;
                }
                in_other_media = false;
                let formats = parts.filter_map(|f| f.parse().ok()).collect();
                media = Some(AudioLine {
                    port,
                    formats,
                    addr: None,
                    maps: Vec::new(),
                });
            }
            "a" if !in_other_media => {
                if let (Some(AudioLine { maps, .. }), Some(rest)) =
                    (&mut media, value.strip_prefix("rtpmap:"))
                {
                    let mut it = rest.splitn(2, ' ');
                    if let (Some(pt), Some(encoding)) = (it.next(), it.next())
                        && let Ok(pt) = pt.parse()
                    {
                        maps.push((pt, encoding.trim().to_ascii_lowercase()));
                    }
                }
            }
            _ => {}
        }
    }
    if !saw_version {
        return Err(OfferError::Malformed("not SDP"));
    }
    let Some(AudioLine {
        port,
        formats,
        addr: media_addr,
        maps,
    }) = media
    else {
        return Err(OfferError::NoCommonCodec);
    };
    let ip = media_addr
        .or(session_addr)
        .ok_or(OfferError::Malformed("no connection address"))?;
    let encoding_of = |pt: u8| maps.iter().find(|(p, _)| *p == pt).map(|(_, e)| e.as_str());
    let codec = formats.iter().find_map(|&pt| match (pt, encoding_of(pt)) {
        (0, None) => Some(Codec::Pcmu),
        (8, None) => Some(Codec::Pcma),
        (_, Some(e)) if e.starts_with("pcmu/8000") && pt == 0 => Some(Codec::Pcmu),
        (_, Some(e)) if e.starts_with("pcma/8000") && pt == 8 => Some(Codec::Pcma),
        _ => None,
    });
    let telephone_event = formats
        .iter()
        .copied()
        .find(|&pt| encoding_of(pt).is_some_and(|e| e.starts_with("telephone-event/8000")));
    Ok(Offer {
        remote: SocketAddr::new(ip, port),
        codec: codec.ok_or(OfferError::NoCommonCodec)?,
        telephone_event,
    })
}

fn parse_connection(value: &str) -> Result<IpAddr, OfferError> {
    let mut parts = value.split_ascii_whitespace();
    let (Some("IN"), Some(_), Some(addr)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(OfferError::Malformed("bad c= line"));
    };
    // Multicast offers carry a TTL after a slash; voicemail talks to one phone.
    addr.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or(OfferError::Malformed("bad c= address"))
}

/// Our answer: one audio stream from `ip:port` with the chosen codec (and
/// telephone-event when offered). `session_id` stays the same for a session's life and
/// `version` goes up when the answer changes (RFC 3264 §8).
pub fn answer(ip: IpAddr, port: u16, offer: &Offer, session_id: u64, version: u64) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let codec = offer.codec;
    let mut formats = codec.payload_type().to_string();
    let mut attributes = format!(
        "a=rtpmap:{} {}/8000\r\n",
        codec.payload_type(),
        codec.name()
    );
    if let Some(te) = offer.telephone_event {
        formats.push_str(&format!(" {te}"));
        attributes.push_str(&format!(
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        ));
    }
    format!(
        "v=0\r\no=switchboard {session_id} {version} IN {family} {ip}\r\ns=voicemail\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {formats}\r\n{attributes}a=ptime:20\r\na=sendrecv\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARESIP: &str = "v=0\r\no=- 1 2 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n\
        m=audio 10002 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

    #[test]
    fn the_callers_first_g711_codec_and_its_address_are_taken() {
        let offer = parse_offer(BARESIP.as_bytes()).unwrap();
        assert_eq!(offer.codec, Codec::Pcma);
        assert_eq!(offer.remote, "192.0.2.7:10002".parse().unwrap());
        assert_eq!(offer.telephone_event, Some(101));
        let sdp = answer("198.51.100.1".parse().unwrap(), 10400, &offer, 5, 5);
        assert!(sdp.contains("m=audio 10400 RTP/AVP 8 101\r\n"), "{sdp}");
        assert!(sdp.contains("c=IN IP4 198.51.100.1\r\n"));
        assert!(sdp.contains("a=rtpmap:8 PCMA/8000\r\n"));
    }

    #[test]
    fn media_level_addresses_win_and_static_types_need_no_rtpmap() {
        let sdp = "v=0\no=- 1 1 IN IP6 ::1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\n\
                   m=video 4000 RTP/AVP 96\nc=IN IP4 192.0.2.99\n\
                   m=audio 5004 RTP/AVP 18 0\nc=IN IP6 2001:db8::5\n";
        let offer = parse_offer(sdp.as_bytes()).unwrap();
        assert_eq!(offer.codec, Codec::Pcmu);
        assert_eq!(offer.remote, "[2001:db8::5]:5004".parse().unwrap());
        assert_eq!(offer.telephone_event, None);
    }

    #[test]
    fn offers_without_g711_or_audio_are_not_acceptable() {
        let g729 =
            "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5004 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
        assert_eq!(parse_offer(g729.as_bytes()), Err(OfferError::NoCommonCodec));
        let disabled = "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 0 RTP/AVP 0\r\n";
        assert_eq!(
            parse_offer(disabled.as_bytes()),
            Err(OfferError::NoCommonCodec)
        );
        // A dynamic type that claims to be PCMU is not the static one.
        let odd =
            "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 5004 RTP/AVP 97\r\na=rtpmap:97 PCMU/8000\r\n";
        assert_eq!(parse_offer(odd.as_bytes()), Err(OfferError::NoCommonCodec));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bad in [
            &b"\xff\xfe"[..],
            b"hello",
            b"v=0\r\nm=audio\r\n",
            b"v=0\r\nm=audio 99999 RTP/AVP 0\r\n",
            b"v=0\r\nc=IN IP4 nonsense\r\nm=audio 5 RTP/AVP 0\r\n",
            b"v=0\r\nm=audio 5004 RTP/AVP 0\r\n",
        ] {
            assert!(
                matches!(parse_offer(bad), Err(OfferError::Malformed(_))),
                "{bad:?}"
            );
        }
    }
}
