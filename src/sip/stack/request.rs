//! What the stack reads off every request before an application sees it, and the
//! pieces of requests we originate.

use crate::domain::SipTransport;
use crate::sip::headers::{Via, parse_cseq};
use crate::sip::message::{Method, Name, Request};
use crate::sip::uri::NameAddr;

/// The mandatory headers of a request, parsed once (RFC 3261 §8.1.1).
pub struct RequestCtx {
    pub vias: Vec<Via>,
    pub from: NameAddr,
    pub to: NameAddr,
    pub call_id: String,
    pub cseq: u32,
    pub cseq_method: Method,
}

impl RequestCtx {
    /// The mandatory headers, or the reason phrase of the 400 they earn.
    pub fn parse(req: &Request) -> Result<RequestCtx, &'static str> {
        let vias: Vec<Via> = req
            .headers
            .all(&Name::Via)
            .map(Via::parse)
            .collect::<Option<_>>()
            .ok_or("Bad Via")?;
        if vias.is_empty() {
            return Err("Missing Via");
        }
        let one = |name: &Name, missing: &'static str| -> Result<String, &'static str> {
            match req.headers.count(name) {
                0 => Err(missing),
                1 => Ok(req.headers.get(name).unwrap_or_default().to_owned()),
                _ => Err("Duplicate header"),
            }
        };
        let from = NameAddr::parse(&one(&Name::From, "Missing From")?).map_err(|_| "Bad From")?;
        let to = NameAddr::parse(&one(&Name::To, "Missing To")?).map_err(|_| "Bad To")?;
        let call_id = one(&Name::CallId, "Missing Call-ID")?;
        if call_id.is_empty() || call_id.contains(char::is_whitespace) {
            return Err("Bad Call-ID");
        }
        let (cseq, cseq_method) =
            parse_cseq(&one(&Name::CSeq, "Missing CSeq")?).ok_or("Bad CSeq")?;
        if cseq_method != req.method {
            return Err("CSeq method does not match");
        }
        if req.headers.count(&Name::MaxForwards) > 1 {
            return Err("Duplicate header");
        }
        if let Some(mf) = req.headers.get(&Name::MaxForwards)
            && mf.parse::<u8>().is_err()
        {
            return Err("Bad Max-Forwards");
        }
        Ok(RequestCtx {
            vias,
            from,
            to,
            call_id,
            cseq,
            cseq_method,
        })
    }
}

/// The dialog identifiers of a request we originate.
pub struct OwnDialog<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub call_id: &'a str,
    pub cseq: u32,
}

/// Raw `Name: value` lines of a message that did not parse, to answer it with a 400.
pub fn raw_headers(bytes: &[u8]) -> Vec<(Name, String)> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    head.split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (Name::parse(n.trim()), v.trim().to_owned()))
        .filter(|(n, _)| {
            matches!(
                n,
                Name::Via | Name::From | Name::To | Name::CallId | Name::CSeq
            )
        })
        .collect()
}

/// A fresh To tag.
pub fn random_tag() -> String {
    crate::ids::lower_alnum(10)
}

/// A transport as Via spells it.
pub fn via_transport(transport: SipTransport) -> &'static str {
    match transport {
        SipTransport::Udp => "UDP",
        SipTransport::Tcp => "TCP",
        SipTransport::Tls => "TLS",
        SipTransport::Ws => "WS",
        SipTransport::Wss => "WSS",
    }
}
