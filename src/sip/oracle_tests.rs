//! rsip as a differential oracle for our parser. The RFC 4475 torture messages and the
//! mutation-fuzzed ones (the mutator is a copy of `fuzz_tests`' in `sip/mod.rs`, same
//! seed) are parsed by both; where both accept a message, the method, the Request-URI
//! and the values of Via, From, To, Call-ID, CSeq, Contact and Content-Length must
//! agree, as written and as read (URI parts, tags, branch, sequence numbers, lengths).
//!
//! A disagreement is either a bug of ours, fixed when this oracle found it, or a known
//! rsip bug or limitation in [`KNOWN`], with its reason; one that matches none fails the
//! test (`--nocapture` shows how many each entry explained). Ours, fixed:
//! - control characters in a header or start line (a lone LF in a Via branch would have
//!   been forwarded as a header of its own);
//! - header parameters whose names or values are no tokens (`tag=a b@c`, `tag#=1`;
//!   `tag` and `branch` must be tokens), and Via sent-by hosts that are no host
//!   (`t@1.example.com`);
//! - a start line continued on a folded line;
//! - URI parameter names with `]`, `/` and the like refused (RFC 3261 `paramchar`).
//!
//! rsip 0.4.0 is unmaintained and stays a pinned dev-dependency: our parser is the
//! runtime one, since rsip refuses IPv6 hosts, `tel:` URIs, unknown methods, folded
//! headers and compact forms. This file is test code only.

use super::fuzz_tests::fuzzed_messages;
use super::headers::{Via, parse_cseq};
use super::message::{Headers, Message, Name};
use super::syntax::{param_value, split_list};
use super::uri::{NameAddr, Scheme, Uri};
use rsip::headers::{ToTypedHeader, UntypedHeader};
use std::collections::{BTreeMap, BTreeSet};

/// The headers compared, with their compact forms (RFC 3261 §7.3.3).
const HEADERS: [(&str, Option<&str>); 7] = [
    ("Via", Some("v")),
    ("From", Some("f")),
    ("To", Some("t")),
    ("Call-ID", Some("i")),
    ("CSeq", None),
    ("Contact", Some("m")),
    ("Content-Length", Some("l")),
];

/// A URI as both parsers can say it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct UriFacts {
    scheme: String,
    user: Option<String>,
    host: String,
    port: Option<u16>,
}

/// One compared value, as read by one parser.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fact {
    Text(String),
    List(Vec<String>),
    Uri(UriFacts),
    /// A name-addr: its URI and its `tag`.
    Addr(UriFacts, Option<String>),
    /// The first Via: transport, sent-by host and port, branch.
    Via(String, String, Option<u16>, Option<String>),
    CSeq(u32, String),
    Length(u32),
    /// The parser accepted the message but cannot read this value.
    Unparsable,
}

type Facts = BTreeMap<String, Fact>;

fn ours_uri(u: &Uri) -> UriFacts {
    UriFacts {
        scheme: match u.scheme {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
        }
        .into(),
        user: u.user.clone(),
        host: u.host.to_ascii_lowercase(),
        port: u.port,
    }
}

fn their_uri(u: &rsip::Uri) -> UriFacts {
    UriFacts {
        scheme: u
            .scheme
            .as_ref()
            .map_or(String::new(), |s| s.to_string().to_ascii_lowercase()),
        user: u.user().map(str::to_owned),
        host: u.host().to_string().to_ascii_lowercase(),
        port: u.port().map(|p| *p.value()),
    }
}

fn ours(message: &Message) -> Facts {
    let mut facts = Facts::new();
    let headers: &Headers = match message {
        Message::Request(r) => {
            facts.insert("method".into(), Fact::Text(r.method.as_str().into()));
            facts.insert("request-uri".into(), Fact::Uri(ours_uri(&r.uri)));
            &r.headers
        }
        Message::Response(r) => {
            facts.insert("status".into(), Fact::Text(r.status.to_string()));
            &r.headers
        }
    };
    for (header, _) in HEADERS {
        let name = Name::parse(header);
        let lines: Vec<String> = headers.lines(&name).map(|v| v.trim().to_owned()).collect();
        facts.insert(header.into(), Fact::List(lines));
    }
    let first = |name: Name| headers.all(&name).next().map(str::to_owned);
    if let Some(v) = first(Name::Via) {
        let via = Via::parse(&v).map(|v| {
            let branch = param_value(&v.params, "branch").map(str::to_owned);
            Fact::Via(v.transport, v.host.to_ascii_lowercase(), v.port, branch)
        });
        facts.insert("Via.first".into(), via.unwrap_or(Fact::Unparsable));
    }
    for (key, name) in [("From.addr", Name::From), ("To.addr", Name::To)] {
        if let Some(v) = first(name) {
            let addr =
                NameAddr::parse(&v).map(|a| Fact::Addr(ours_uri(&a.uri), a.tag().map(Into::into)));
            facts.insert(key.into(), addr.unwrap_or(Fact::Unparsable));
        }
    }
    if let Some(v) = first(Name::Contact).filter(|v| v.trim() != "*") {
        let addr = NameAddr::parse(&v).map(|a| Fact::Uri(ours_uri(&a.uri)));
        facts.insert("Contact.first".into(), addr.unwrap_or(Fact::Unparsable));
    }
    if let Some(v) = first(Name::CSeq) {
        let cseq = parse_cseq(&v).map(|(n, m)| Fact::CSeq(n, m.as_str().into()));
        facts.insert("CSeq.read".into(), cseq.unwrap_or(Fact::Unparsable));
    }
    if let Some(v) = first(Name::ContentLength) {
        let length = v.trim().parse().map(Fact::Length);
        facts.insert(
            "Content-Length.read".into(),
            length.unwrap_or(Fact::Unparsable),
        );
    }
    facts
}

fn theirs(message: &rsip::SipMessage) -> Facts {
    let mut facts = Facts::new();
    let headers = match message {
        rsip::SipMessage::Request(r) => {
            facts.insert("method".into(), Fact::Text(r.method.to_string()));
            facts.insert("request-uri".into(), Fact::Uri(their_uri(&r.uri)));
            &r.headers
        }
        rsip::SipMessage::Response(r) => {
            let status = u16::from(r.status_code.clone());
            facts.insert("status".into(), Fact::Text(status.to_string()));
            &r.headers
        }
    };
    let value = |header: &rsip::Header| -> Option<(&'static str, String)> {
        let (name, v) = match header {
            rsip::Header::Via(v) => ("Via", v.value()),
            rsip::Header::From(v) => ("From", v.value()),
            rsip::Header::To(v) => ("To", v.value()),
            rsip::Header::CallId(v) => ("Call-ID", v.value()),
            rsip::Header::CSeq(v) => ("CSeq", v.value()),
            rsip::Header::Contact(v) => ("Contact", v.value()),
            rsip::Header::ContentLength(v) => ("Content-Length", v.value()),
            _ => return None,
        };
        Some((name, v.trim().to_owned()))
    };
    for (header, _) in HEADERS {
        let lines = headers
            .iter()
            .filter_map(value)
            .filter(|(name, _)| *name == header)
            .map(|(_, v)| v)
            .collect();
        facts.insert(header.into(), Fact::List(lines));
    }
    let first = |wanted: &str| {
        headers
            .iter()
            .filter_map(value)
            .find(|(name, _)| *name == wanted)
            .map(|(_, v)| v)
    };
    if let Some(v) = first("Via") {
        // rsip types a Via line whole; the first value of the list is what we read.
        let first = split_list(&v)
            .first()
            .map_or(String::new(), |s| (*s).to_owned());
        let via = rsip::headers::Via::new(first).typed().map(|v| {
            let host = v.uri.host().to_string().to_ascii_lowercase();
            let port = v.uri.port().map(|p| *p.value());
            let branch = v.branch().map(|b| b.to_string());
            Fact::Via(
                v.transport.to_string().to_ascii_uppercase(),
                host,
                port,
                branch,
            )
        });
        facts.insert("Via.first".into(), via.unwrap_or(Fact::Unparsable));
    }
    if let Some(v) = first("From") {
        let addr = rsip::headers::From::new(v)
            .typed()
            .map(|f| Fact::Addr(their_uri(&f.uri), f.tag().map(|t| t.to_string())));
        facts.insert("From.addr".into(), addr.unwrap_or(Fact::Unparsable));
    }
    if let Some(v) = first("To") {
        let addr = rsip::headers::To::new(v)
            .typed()
            .map(|t| Fact::Addr(their_uri(&t.uri), t.tag().map(|t| t.to_string())));
        facts.insert("To.addr".into(), addr.unwrap_or(Fact::Unparsable));
    }
    if let Some(v) = first("Contact").filter(|v| v.trim() != "*") {
        let first = split_list(&v)
            .first()
            .map_or(String::new(), |s| (*s).to_owned());
        let addr = rsip::headers::Contact::new(first)
            .typed()
            .map(|c| Fact::Uri(their_uri(&c.uri)));
        facts.insert("Contact.first".into(), addr.unwrap_or(Fact::Unparsable));
    }
    if let Some(v) = first("CSeq") {
        let cseq = rsip::headers::CSeq::new(v)
            .typed()
            .map(|c| Fact::CSeq(c.seq, c.method.to_string()));
        facts.insert("CSeq.read".into(), cseq.unwrap_or(Fact::Unparsable));
    }
    if let Some(v) = first("Content-Length") {
        let length = rsip::headers::ContentLength::new(v)
            .length()
            .map(Fact::Length);
        facts.insert(
            "Content-Length.read".into(),
            length.unwrap_or(Fact::Unparsable),
        );
    }
    facts
}

/// One field on which the parsers disagree, in one message.
#[derive(Debug)]
struct Disagreement<'a> {
    field: String,
    ours: Option<Fact>,
    theirs: Option<Fact>,
    message: &'a str,
}

impl Disagreement<'_> {
    /// The header the field is about (`Via` for `Via.first`), if any.
    fn header(&self) -> Option<&str> {
        let name = self.field.split('.').next()?;
        HEADERS.iter().map(|(h, _)| *h).find(|h| *h == name)
    }

    /// The message's header lines named `header` in any spelling (`v:` for Via too).
    fn lines_of(&self, header: &str) -> Vec<&str> {
        let compact = HEADERS
            .iter()
            .find(|(h, _)| *h == header)
            .and_then(|(_, c)| *c);
        self.message
            .split("\r\n")
            .filter(|line| {
                line.split_once(':').is_some_and(|(name, _)| {
                    let name = name.trim_end();
                    name.eq_ignore_ascii_case(header)
                        || compact.is_some_and(|c| name.eq_ignore_ascii_case(c))
                })
            })
            .collect()
    }

    fn uris(&self) -> Option<(&UriFacts, &UriFacts)> {
        match (self.ours.as_ref()?, self.theirs.as_ref()?) {
            (Fact::Uri(a), Fact::Uri(b)) | (Fact::Addr(a, _), Fact::Addr(b, _)) => Some((a, b)),
            _ => None,
        }
    }
}

/// A known rsip bug or limitation that explains a disagreement.
struct Known {
    reason: &'static str,
    explains: fn(&Disagreement) -> bool,
}

const KNOWN: &[Known] = &[
    Known {
        reason: "rsip has no compact header names (RFC 3261 §7.3.3): `v:`, `f:`, `t:`, `i:`, \
                 `m:`, `l:` are unknown headers to it, so it misses those values",
        explains: |d| {
            d.header().is_some_and(|h| {
                let compact = HEADERS.iter().find(|(n, _)| *n == h).and_then(|(_, c)| *c);
                d.lines_of(h).iter().any(|line| {
                    let name = line.split(':').next().unwrap_or("").trim_end();
                    compact.is_some_and(|c| name.eq_ignore_ascii_case(c))
                })
            })
        },
    },
    Known {
        reason: "rsip does not unfold continuation lines (RFC 3261 §7.3.1): a folded header \
                 and the lines around it come out wrong",
        explains: |d| {
            d.header().is_some()
                && d.message
                    .split("\r\n\r\n")
                    .next()
                    .is_some_and(|head| head.contains("\r\n ") || head.contains("\r\n\t"))
        },
    },
    Known {
        reason: "rsip reads a user part only when it is letters, digits, `_` or `-`: with a \
                 `.`, `%`, `/` or the like it takes `user@host` for the host",
        explains: |d| {
            d.uris().is_some_and(|(ours, theirs)| {
                theirs.user.is_none()
                    && ours.user.as_ref().is_some_and(|user| {
                        theirs.host == format!("{user}@{}", ours.host).to_ascii_lowercase()
                    })
            })
        },
    },
    Known {
        reason: "rsip reads methods case-insensitively; RFC 3261 §7.1 makes them \
                 case-sensitive (`InVITE` is an extension method, not INVITE)",
        explains: |d| match (&d.ours, &d.theirs) {
            (Some(Fact::Text(a)), Some(Fact::Text(b))) if d.field == "method" => {
                a != b && a.eq_ignore_ascii_case(b)
            }
            (Some(Fact::CSeq(n, a)), Some(Fact::CSeq(m, b))) => {
                n == m && a != b && a.eq_ignore_ascii_case(b)
            }
            _ => false,
        },
    },
    Known {
        reason: "rsip refuses methods it does not know (RFC 3261 §7.1 allows extension \
                 methods: a CSeq of `REGISTE` or `INE` is well-formed)",
        explains: |d| {
            d.field == "CSeq.read"
                && matches!(&d.ours, Some(Fact::CSeq(_, m)) if m.parse::<rsip::Method>().is_err())
                && d.theirs == Some(Fact::Unparsable)
        },
    },
    Known {
        reason: "rsip stops reading a value at the first character it does not expect and \
                 silently drops the rest (a branch or tag cut short); it knows no URI \
                 headers and reads `host?h=v` as the host",
        explains: |d| match (&d.ours, &d.theirs) {
            (Some(Fact::Via(t1, h1, p1, Some(b1))), Some(Fact::Via(t2, h2, p2, b2))) => {
                (t1, h1, p1) == (t2, h2, p2)
                    && b2
                        .as_ref()
                        .is_none_or(|b2| b1 != b2 && b1.starts_with(b2.as_str()))
            }
            (Some(Fact::Addr(u1, Some(t1))), Some(Fact::Addr(u2, t2))) => {
                u1 == u2
                    && t2
                        .as_ref()
                        .is_none_or(|t2| t1 != t2 && t1.starts_with(t2.as_str()))
            }
            (Some(Fact::Uri(u1) | Fact::Addr(u1, _)), Some(Fact::Uri(u2) | Fact::Addr(u2, _))) => {
                u2.host.starts_with(&format!("{}?", u1.host))
            }
            _ => false,
        },
    },
    Known {
        reason: "rsip's typed headers accept what RFC 3261 §25.1 refuses, where we answer \
                 400: empty parameters (`;;,;,,`, RFC 4475 §3.1.2.1), unbalanced quotes \
                 (§3.1.2.6), parameters or values that are no tokens (`tag=a b`, \
                 `tag#=1`), bad escapes, host names with `/`, `@` or `?` in them, a URI \
                 with no scheme, or one other than sip, sips and tel where we act on it \
                 (§3.3.4); it reads them as far as it can and drops the rest",
        explains: |d| {
            d.ours == Some(Fact::Unparsable)
                && matches!(d.theirs, Some(ref f) if *f != Fact::Unparsable)
                && d.header().is_some_and(|h| {
                    d.lines_of(h).iter().any(|line| {
                        let value = line.split_once(':').map_or("", |(_, v)| v);
                        match h {
                            "Via" => split_list(value).iter().any(|v| !rfc::via(v)),
                            "Contact" => split_list(value).iter().any(|v| !rfc::name_addr(v)),
                            _ => !rfc::name_addr(value),
                        }
                    })
                })
        },
    },
    Known {
        reason: "rsip refuses Via transports it does not know; RFC 3261 §20.42 takes any \
                 token (RFC 4475 §3.1.1.10 sends `UNKNOWN`)",
        explains: |d| match (&d.ours, &d.theirs) {
            (Some(Fact::Via(transport, ..)), Some(Fact::Unparsable)) => {
                !["UDP", "TCP", "TLS", "SCTP", "TLS-SCTP", "WS", "WSS"]
                    .contains(&transport.as_str())
            }
            _ => false,
        },
    },
    Known {
        reason: "rsip takes no whitespace around the `/`s of a Via's protocol and only one \
                 space after it, where RFC 3261 §20.42 and §25.1 allow linear whitespace \
                 (RFC 4475 §3.1.1.1)",
        explains: |d| {
            d.field == "Via.first"
                && d.theirs == Some(Fact::Unparsable)
                && d.lines_of("Via").iter().any(|line| {
                    let value = line.split_once(':').map_or("", |(_, v)| v.trim());
                    value.contains('\t')
                        || value.contains("/ ")
                        || value.contains(" /")
                        || value.contains("  ")
                })
        },
    },
    Known {
        reason: "rsip refuses spaces around a URI in angle brackets (`< sip:a@b >`), which \
                 RFC 4475 §3.1.2.14 lets an element accept liberally, as we do",
        explains: |d| {
            d.theirs == Some(Fact::Unparsable)
                && d.header().is_some_and(|h| {
                    d.lines_of(h)
                        .iter()
                        .any(|line| line.contains("< ") || line.contains(" >"))
                })
        },
    },
];

/// The test's own reading of RFC 3261 §25.1, independent of our parser: whether a
/// name-addr or a Via value is well-formed. Only consulted where we refuse a value rsip
/// reads, so an overlooked rule shows up as an unexplained disagreement.
mod rfc {
    fn token(s: &str) -> bool {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
    }

    fn quoted(s: &str) -> bool {
        s.len() >= 2 && s.starts_with('"') && s.ends_with('"') && !s[1..s.len() - 1].contains('"')
    }

    fn host(h: &str) -> bool {
        if let Some(v6) = h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return v6.parse::<std::net::Ipv6Addr>().is_ok();
        }
        !h.is_empty()
            && !h.starts_with(['.', '-'])
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    }

    fn hostport(hp: &str) -> bool {
        let (h, port) = match hp.rfind(':') {
            Some(i) if !hp[i..].contains(']') => (&hp[..i], Some(&hp[i + 1..])),
            _ => (hp, None),
        };
        host(h) && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    }

    fn escapes(s: &str) -> bool {
        let b = s.as_bytes();
        (0..b.len()).all(|i| {
            b[i] != b'%'
                || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                    && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        })
    }

    /// `;name[=value]…`: names tokens, values tokens, hosts or quoted strings.
    fn params(rest: &str) -> bool {
        let rest = rest.trim();
        if rest.is_empty() {
            return true;
        }
        let Some(rest) = rest.strip_prefix(';') else {
            return false;
        };
        rest.split(';').all(|p| {
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (p.trim(), None),
            };
            token(name)
                && value.is_none_or(|v| {
                    let strict =
                        name.eq_ignore_ascii_case("tag") || name.eq_ignore_ascii_case("branch");
                    token(v)
                        || (!strict
                            && (quoted(v) || host(v) || v.parse::<std::net::IpAddr>().is_ok()))
                })
        })
    }

    /// A sip, sips or tel URI (its own parameters and headers read loosely).
    fn uri(u: &str, bracketed: bool) -> bool {
        let lower = u.to_ascii_lowercase();
        if let Some(number) = lower.strip_prefix("tel:") {
            let number = number.split(';').next().unwrap_or("");
            return !number.is_empty()
                && number
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b"+-.()*#".contains(&b));
        }
        let Some(rest) = lower
            .strip_prefix("sip:")
            .or_else(|| lower.strip_prefix("sips:"))
        else {
            return false;
        };
        if rest
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b"\"<>".contains(&b))
        {
            return false;
        }
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        // Without angle brackets a URI cannot hold `?`, `,` or `;` (RFC 3261 §20).
        if !bracketed && (rest.contains('?') || rest.contains(',')) {
            return false;
        }
        let hostpart = hostpart.split(['?', ';']).next().unwrap_or("");
        userinfo.is_none_or(|ui| {
            let user = ui.split(':').next().unwrap_or("");
            !user.is_empty()
                && escapes(user)
                && user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/%".contains(&b))
        }) && hostport(hostpart)
    }

    pub fn name_addr(v: &str) -> bool {
        let v = v.trim();
        match (v.find('<'), v.find('>')) {
            (Some(lt), Some(gt)) if lt < gt => {
                let display = v[..lt].trim();
                let display_ok =
                    display.is_empty() || quoted(display) || display.split_whitespace().all(token);
                display_ok && uri(v[lt + 1..gt].trim(), true) && params(&v[gt + 1..])
            }
            (None, None) => {
                let (u, rest) = v.split_at(v.find(';').unwrap_or(v.len()));
                uri(u, false) && params(rest)
            }
            _ => false,
        }
    }

    pub fn via(v: &str) -> bool {
        // Whitespace may surround the `/`s (`SIP / 2.0 / UDP`).
        let compact: String = v
            .trim()
            .split('/')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("/");
        let mut words = compact.splitn(2, char::is_whitespace);
        let proto = words.next().unwrap_or("");
        let sent = words.next().unwrap_or("").trim();
        let mut p = proto.split('/');
        let ok_proto = p.next().is_some_and(|n| n.eq_ignore_ascii_case("SIP"))
            && p.next() == Some("2.0")
            && p.next().is_some_and(token)
            && p.next().is_none();
        let (sent_by, rest) = sent.split_at(sent.find(';').unwrap_or(sent.len()));
        ok_proto && hostport(sent_by.trim()) && params(rest)
    }
}

/// The disagreements on `bytes` that no [`KNOWN`] entry explains, when both parsers
/// accept it (`None` when either refuses it); `tally` counts what each entry explained.
fn unexplained(bytes: &[u8], tally: &mut [usize]) -> Option<(usize, Vec<String>)> {
    let ours_facts = ours(&Message::parse(bytes).ok()?);
    let theirs_facts = theirs(&rsip::SipMessage::try_from(bytes).ok()?);
    let text = String::from_utf8_lossy(bytes);
    let fields: BTreeSet<&String> = ours_facts.keys().chain(theirs_facts.keys()).collect();
    let mut count = 0;
    let mut left = Vec::new();
    for field in fields {
        let (a, b) = (ours_facts.get(field), theirs_facts.get(field));
        if a == b {
            continue;
        }
        count += 1;
        let d = Disagreement {
            field: field.clone(),
            ours: a.cloned(),
            theirs: b.cloned(),
            message: &text,
        };
        match KNOWN.iter().position(|k| (k.explains)(&d)) {
            Some(i) => tally[i] += 1,
            None => left.push(format!("{field}: ours {a:?}, rsip {b:?}\n{text:?}")),
        }
    }
    Some((count, left))
}

/// What each known difference explained (shown with `--nocapture`).
fn report(tally: &[usize]) {
    for (known, n) in KNOWN.iter().zip(tally) {
        println!("{n:>6}  {}", known.reason);
    }
}

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/rfc4475");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("fixtures")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "sip"))
        .map(|e| {
            let name = e
                .path()
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(e.path()).unwrap_or_default())
        })
        .collect();
    out.sort();
    out
}

/// The fixtures RFC 4475 calls valid (`INDEX.tsv`).
fn valid_fixtures() -> Vec<(String, Vec<u8>)> {
    let index = include_str!("../../tests/fixtures/rfc4475/INDEX.tsv");
    let valid: BTreeSet<&str> = index
        .lines()
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let name = cols.next()?;
            (cols.next()? == "valid").then_some(name)
        })
        .collect();
    fixtures()
        .into_iter()
        .filter(|(name, _)| valid.contains(name.as_str()))
        .collect()
}

#[test]
fn where_both_accept_a_valid_rfc_4475_message_they_read_it_alike() {
    let mut compared = 0;
    let mut left = Vec::new();
    let mut tally = vec![0; KNOWN.len()];
    for (name, bytes) in valid_fixtures() {
        if let Some((_, unexplained)) = unexplained(&bytes, &mut tally) {
            compared += 1;
            left.extend(unexplained.into_iter().map(|u| format!("{name}: {u}")));
        }
    }
    report(&tally);
    assert!(compared >= 20, "only {compared} valid messages both accept");
    assert!(left.is_empty(), "{}", left.join("\n\n"));
}

#[test]
fn where_both_accept_a_fuzzed_message_they_read_it_alike() {
    let (mut compared, mut disagreements) = (0, 0);
    let mut left = Vec::new();
    let mut tally = vec![0; KNOWN.len()];
    let mut iterations = 0;
    for input in fuzzed_messages() {
        iterations += 1;
        if let Some((count, unexplained)) = unexplained(&input, &mut tally) {
            compared += 1;
            disagreements += count;
            left.extend(unexplained);
        }
    }
    report(&tally);
    assert!(
        compared > iterations / 20,
        "only {compared} fuzzed messages both accept"
    );
    assert!(
        left.is_empty(),
        "{} of {disagreements} disagreements unexplained:\n{}",
        left.len(),
        left.iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
