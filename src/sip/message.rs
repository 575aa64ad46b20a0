//! SIP messages (RFC 3261 §7): parsing from bytes and writing back.
//!
//! Our own parser rather than the `rsip` crate: rsip rejects valid messages a PBX must
//! take (IPv6 hosts, `tel:` URIs, unknown methods, folded header lines, compact header
//! names). Everything SIP-specific stays in `src/sip/`, so a swap stays cheap.

use super::syntax::is_token_byte;
use super::uri::{Uri, UriError};
use std::fmt::{self, Write as _};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Subscribe,
    Notify,
    Refer,
    Info,
    Update,
    Prack,
    Message,
    Publish,
    Other(String),
}

impl Method {
    /// Methods are case-sensitive (RFC 3261 §7.1).
    pub fn parse(raw: &str) -> Option<Method> {
        if raw.is_empty() || !raw.bytes().all(is_token_byte) {
            return None;
        }
        Some(match raw {
            "INVITE" => Self::Invite,
            "ACK" => Self::Ack,
            "BYE" => Self::Bye,
            "CANCEL" => Self::Cancel,
            "REGISTER" => Self::Register,
            "OPTIONS" => Self::Options,
            "SUBSCRIBE" => Self::Subscribe,
            "NOTIFY" => Self::Notify,
            "REFER" => Self::Refer,
            "INFO" => Self::Info,
            "UPDATE" => Self::Update,
            "PRACK" => Self::Prack,
            "MESSAGE" => Self::Message,
            "PUBLISH" => Self::Publish,
            other => Self::Other(other.to_owned()),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Register => "REGISTER",
            Self::Options => "OPTIONS",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Refer => "REFER",
            Self::Info => "INFO",
            Self::Update => "UPDATE",
            Self::Prack => "PRACK",
            Self::Message => "MESSAGE",
            Self::Publish => "PUBLISH",
            Self::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header names we act on; anything else is kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    Via,
    From,
    To,
    CallId,
    CSeq,
    Contact,
    Expires,
    MinExpires,
    MaxForwards,
    ContentLength,
    ContentType,
    Authorization,
    ProxyAuthorization,
    WwwAuthenticate,
    ProxyAuthenticate,
    UserAgent,
    Server,
    Route,
    RecordRoute,
    Supported,
    Require,
    ProxyRequire,
    Unsupported,
    Allow,
    Event,
    AllowEvents,
    SubscriptionState,
    Date,
    Warning,
    Other(String),
}

impl Name {
    /// Every named variant, for parsing.
    const KNOWN: [Name; 29] = [
        Name::Via,
        Name::From,
        Name::To,
        Name::CallId,
        Name::CSeq,
        Name::Contact,
        Name::Expires,
        Name::MinExpires,
        Name::MaxForwards,
        Name::ContentLength,
        Name::ContentType,
        Name::Authorization,
        Name::ProxyAuthorization,
        Name::WwwAuthenticate,
        Name::ProxyAuthenticate,
        Name::UserAgent,
        Name::Server,
        Name::Route,
        Name::RecordRoute,
        Name::Supported,
        Name::Require,
        Name::ProxyRequire,
        Name::Unsupported,
        Name::Allow,
        Name::Event,
        Name::AllowEvents,
        Name::SubscriptionState,
        Name::Date,
        Name::Warning,
    ];

    /// Case-insensitive, with the compact forms of RFC 3261 §7.3.3 (and RFC 3265's `o`).
    pub fn parse(raw: &str) -> Name {
        if raw.len() == 1 {
            match raw.as_bytes()[0].to_ascii_lowercase() {
                b'v' => return Name::Via,
                b'f' => return Name::From,
                b't' => return Name::To,
                b'i' => return Name::CallId,
                b'm' => return Name::Contact,
                b'l' => return Name::ContentLength,
                b'c' => return Name::ContentType,
                b'k' => return Name::Supported,
                b'o' => return Name::Event,
                b'u' => return Name::AllowEvents,
                _ => {}
            }
        }
        for known in &Self::KNOWN {
            let name = known.as_str();
            if name.len() == raw.len() && name.eq_ignore_ascii_case(raw) {
                return known.clone();
            }
        }
        Name::Other(raw.to_owned())
    }

    pub fn as_str(&self) -> &str {
        match self {
            Name::Via => "Via",
            Name::From => "From",
            Name::To => "To",
            Name::CallId => "Call-ID",
            Name::CSeq => "CSeq",
            Name::Contact => "Contact",
            Name::Expires => "Expires",
            Name::MinExpires => "Min-Expires",
            Name::MaxForwards => "Max-Forwards",
            Name::ContentLength => "Content-Length",
            Name::ContentType => "Content-Type",
            Name::Authorization => "Authorization",
            Name::ProxyAuthorization => "Proxy-Authorization",
            Name::WwwAuthenticate => "WWW-Authenticate",
            Name::ProxyAuthenticate => "Proxy-Authenticate",
            Name::UserAgent => "User-Agent",
            Name::Server => "Server",
            Name::Route => "Route",
            Name::RecordRoute => "Record-Route",
            Name::Supported => "Supported",
            Name::Require => "Require",
            Name::ProxyRequire => "Proxy-Require",
            Name::Unsupported => "Unsupported",
            Name::Allow => "Allow",
            Name::Event => "Event",
            Name::AllowEvents => "Allow-Events",
            Name::SubscriptionState => "Subscription-State",
            Name::Date => "Date",
            Name::Warning => "Warning",
            Name::Other(s) => s,
        }
    }

    /// Headers whose values are comma-separated lists (RFC 3261 §7.3.1); others, such as
    /// `WWW-Authenticate` or `Date`, contain commas of their own.
    fn is_list(&self) -> bool {
        matches!(
            self,
            Name::Via
                | Name::Contact
                | Name::Route
                | Name::RecordRoute
                | Name::Supported
                | Name::Require
                | Name::ProxyRequire
                | Name::Unsupported
                | Name::Allow
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: Name,
    pub value: String,
}

/// Headers in order; a name may repeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// Every header line, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// The lines of one header, as written (list headers not split).
    pub fn lines<'a>(&'a self, name: &'a Name) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// Sets the first line of `name` to `value`, or appends one when there is none.
    pub fn set(&mut self, name: Name, value: impl Into<String>) {
        match self.0.iter_mut().find(|h| h.name == name) {
            Some(h) => h.value = value.into(),
            None => self.push(name, value),
        }
    }

    /// Puts a line before every other (our Via on a request we forward).
    pub fn prepend(&mut self, name: Name, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// Puts lines of `name` just above its existing ones (at the end when there are
    /// none), in the order given: a Record-Route on top of those already there.
    pub fn insert_above(&mut self, name: &Name, values: impl IntoIterator<Item = String>) {
        let at = self
            .0
            .iter()
            .position(|h| &h.name == name)
            .unwrap_or(self.0.len());
        for (i, value) in values.into_iter().enumerate() {
            self.0.insert(
                at + i,
                Header {
                    name: name.clone(),
                    value,
                },
            );
        }
    }

    /// The first value of a list header: the top Via, the top Route.
    pub fn first_item(&self, name: &Name) -> Option<&str> {
        self.get(name)
            .and_then(|v| super::syntax::split_list(v).into_iter().next())
    }

    /// Replaces the first value of a list header (the rest of its line stays).
    pub fn replace_first_item(&mut self, name: &Name, value: &str) {
        if let Some(h) = self.0.iter_mut().find(|h| &h.name == name) {
            let rest = super::syntax::split_list(&h.value)
                .into_iter()
                .skip(1)
                .map(str::to_owned);
            h.value = std::iter::once(value.to_owned())
                .chain(rest)
                .collect::<Vec<_>>()
                .join(", ");
        }
    }

    /// Removes the first value of a list header, and its line when nothing is left.
    pub fn pop_first_item(&mut self, name: &Name) -> Option<String> {
        let i = self.0.iter().position(|h| &h.name == name)?;
        let items: Vec<String> = super::syntax::split_list(&self.0[i].value)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let mut items = items.into_iter();
        let first = items.next();
        let rest: Vec<String> = items.collect();
        if rest.is_empty() {
            self.0.remove(i);
        } else {
            self.0[i].value = rest.join(", ");
        }
        first
    }

    /// Keeps the lines `keep` accepts.
    pub fn retain(&mut self, keep: impl FnMut(&Header) -> bool) {
        self.0.retain(keep);
    }

    pub fn get(&self, name: &Name) -> Option<&str> {
        self.0
            .iter()
            .find(|h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// Every value of a header, list headers split at top-level commas.
    pub fn all<'a>(&'a self, name: &'a Name) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .flat_map(move |h| {
                if name.is_list() {
                    super::syntax::split_list(&h.value)
                } else {
                    vec![h.value.as_str()]
                }
            })
    }

    pub fn push(&mut self, name: Name, value: impl Into<String>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }

    pub fn remove(&mut self, name: &Name) {
        self.0.retain(|h| &h.name != name);
    }

    pub fn count(&self, name: &Name) -> usize {
        self.0.iter().filter(|h| &h.name == name).count()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// Why a message could not be parsed. Parsing happens before we know who sent it, so
/// the text is for logs and for the reason phrase of a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no header/body separator")]
    Incomplete,
    #[error("bad start line")]
    StartLine,
    #[error("unsupported SIP version")]
    Version,
    #[error("bad request URI: {0}")]
    RequestUri(UriError),
    /// A well-formed Request-URI of a scheme we do not handle (answered with 416).
    #[error("unsupported URI scheme")]
    UnsupportedScheme,
    #[error("malformed header line")]
    HeaderLine,
    #[error("bad Content-Length")]
    ContentLength,
    #[error("message not UTF-8")]
    Encoding,
}

/// Splits a message into head and body at the first empty line. Leading CRLFs (keep-
/// alives, §7.5) are skipped.
fn split_head(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let start = bytes.iter().position(|b| *b != b'\r' && *b != b'\n')?;
    let bytes = &bytes[start..];
    let pos = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&bytes[..pos], &bytes[pos + 4..]))
}

/// Header lines with continuation lines folded in (§7.3.1).
fn header_lines(head: &str) -> Result<Vec<String>, ParseError> {
    let mut lines: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with(' ') || line.starts_with('\t') {
            // Only header fields fold; the start line has no continuation.
            if lines.len() < 2 {
                return Err(ParseError::HeaderLine);
            }
            let last = lines.last_mut().ok_or(ParseError::HeaderLine)?;
            last.push(' ');
            last.push_str(line.trim_start());
        } else {
            lines.push(line.to_owned());
        }
    }
    Ok(lines)
}

fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// Whether a header line holds a control character where RFC 3261 §25.1 has none: any
/// outside a quoted string, and inside one any but an escaped one (`quoted-pair`, which
/// still excludes CR and LF). A lone CR or LF left in a line by the split at CRLF is
/// caught here too: forwarded, it would start a header of its own downstream.
fn has_bare_control(line: &str) -> bool {
    let mut quoted = false;
    let mut bytes = line.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'"' => quoted = !quoted,
            b'\\' if quoted => match bytes.next() {
                Some(b'\r' | b'\n') | None => return true,
                Some(_) => {}
            },
            b if is_control(b) => return true,
            _ => {}
        }
    }
    false
}

fn parse_version(v: &str) -> Result<(), ParseError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        Ok(())
    } else if v.len() > 4 && v[..4].eq_ignore_ascii_case("SIP/") {
        Err(ParseError::Version)
    } else {
        Err(ParseError::StartLine)
    }
}

impl Message {
    /// Parses one datagram (or one framed stream message). `Content-Length`, when
    /// present, must not exceed the body; a longer body is cut to it (§18.3).
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        let (head, body) = split_head(bytes).ok_or(ParseError::Incomplete)?;
        let head = std::str::from_utf8(head).map_err(|_| ParseError::Encoding)?;
        let mut lines = header_lines(head)?.into_iter();
        let start = lines.next().ok_or(ParseError::StartLine)?;
        if start.bytes().any(is_control) {
            return Err(ParseError::StartLine);
        }
        let mut headers = Headers::default();
        for line in lines {
            if has_bare_control(&line) {
                return Err(ParseError::HeaderLine);
            }
            let (name, value) = line.split_once(':').ok_or(ParseError::HeaderLine)?;
            let name = name.trim_end_matches([' ', '\t']);
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(ParseError::HeaderLine);
            }
            headers.push(Name::parse(name), value.trim());
        }
        if headers.count(&Name::ContentLength) > 1 {
            return Err(ParseError::ContentLength);
        }
        let body = match headers.get(&Name::ContentLength) {
            None => body.to_vec(),
            Some(cl) => {
                let len: usize = cl.trim().parse().map_err(|_| ParseError::ContentLength)?;
                if len > body.len() {
                    return Err(ParseError::ContentLength);
                }
                body[..len].to_vec()
            }
        };

        if start.starts_with("SIP/") || start.starts_with("sip/") {
            let mut parts = start.splitn(3, ' ');
            let version = parts.next().unwrap_or_default();
            parse_version(version)?;
            let code = parts.next().ok_or(ParseError::StartLine)?;
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::StartLine);
            }
            let status: u16 = code.parse().map_err(|_| ParseError::StartLine)?;
            if status < 100 {
                return Err(ParseError::StartLine);
            }
            Ok(Message::Response(Response {
                status,
                reason: parts.next().unwrap_or_default().to_owned(),
                headers,
                body,
            }))
        } else {
            // Method SP Request-URI SP SIP-Version, single spaces (§7.1).
            let parts: Vec<&str> = start.split(' ').collect();
            let [method, uri, version] = parts.as_slice() else {
                return Err(ParseError::StartLine);
            };
            let method = Method::parse(method).ok_or(ParseError::StartLine)?;
            parse_version(version)?;
            let uri = Uri::parse(uri).map_err(|e| match e.0 {
                super::uri::UNSUPPORTED_SCHEME => ParseError::UnsupportedScheme,
                _ => ParseError::RequestUri(e),
            })?;
            // Headers have no place in a Request-URI (RFC 3261 §19.1.5).
            if uri.headers.is_some() {
                return Err(ParseError::RequestUri(UriError("headers in Request-URI")));
            }
            Ok(Message::Request(Request {
                method,
                uri,
                headers,
                body,
            }))
        }
    }
}

fn write_headers(out: &mut String, headers: &Headers, body: &[u8]) {
    for h in &headers.0 {
        if h.name != Name::ContentLength {
            let _ = write!(out, "{}: {}\r\n", h.name.as_str(), h.value);
        }
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
}

impl Request {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512 + self.body.len());
        let _ = write!(out, "{} {} SIP/2.0\r\n", self.method, self.uri);
        write_headers(&mut out, &self.headers, &self.body);
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

impl Response {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512 + self.body.len());
        let _ = write!(out, "SIP/2.0 {} {}\r\n", self.status, self.reason);
        write_headers(&mut out, &self.headers, &self.body);
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK-1;rport\r\n\
        From: <sip:101@127.0.0.1>;tag=1\r\n\
        To: <sip:101@127.0.0.1>\r\n\
        Call-ID: abc@10.0.0.1\r\n\
        CSeq: 1 REGISTER\r\n\
        Contact: <sip:101@10.0.0.1:5061>, <sip:101@10.0.0.2>;expires=60\r\n\
        Content-Length: 0\r\n\r\n";

    fn request(raw: &str) -> Request {
        match Message::parse(raw.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("not a request"),
        }
    }

    #[test]
    fn control_characters_outside_quoted_pairs_are_refused() {
        // A lone LF would make the rest of the line a header of its own downstream.
        let injected = REGISTER.replace(";rport", ";rport\nMax-Forwards: 0");
        assert_eq!(
            Message::parse(injected.as_bytes()),
            Err(ParseError::HeaderLine)
        );
        for bad in ["\r", "\u{2}", "\u{7f}", "\0"] {
            let raw = REGISTER.replace("branch=z9hG4bK-1", &format!("branch=z9hG4bK{bad}-1"));
            assert_eq!(
                Message::parse(raw.as_bytes()),
                Err(ParseError::HeaderLine),
                "{bad:?}"
            );
        }
        let start = REGISTER.replace("REGISTER sip:", "REGISTER \u{c}sip:");
        assert_eq!(Message::parse(start.as_bytes()), Err(ParseError::StartLine));
        // Escaped inside a quoted string they are text (RFC 4475 §3.1.1.2); a tab is
        // whitespace anywhere.
        let quoted = REGISTER.replace("From: <sip:", "From: \"BEL:\\\u{7} NUL:\\\0\"\t<sip:");
        assert!(Message::parse(quoted.as_bytes()).is_ok());
        let escaped_lf = REGISTER.replace("From: <sip:", "From: \"a\\\nb\" <sip:");
        assert_eq!(
            Message::parse(escaped_lf.as_bytes()),
            Err(ParseError::HeaderLine)
        );
    }

    #[test]
    fn requests_parse_with_headers_in_order() {
        let r = request(REGISTER);
        assert_eq!(r.method, Method::Register);
        assert_eq!(r.uri.host, "127.0.0.1");
        assert_eq!(r.headers.get(&Name::CallId), Some("abc@10.0.0.1"));
        let contacts: Vec<&str> = r.headers.all(&Name::Contact).collect();
        assert_eq!(
            contacts,
            ["<sip:101@10.0.0.1:5061>", "<sip:101@10.0.0.2>;expires=60"]
        );
    }

    #[test]
    fn compact_names_folded_lines_and_leading_crlf_are_understood() {
        let raw = "\r\n\r\nOPTIONS sip:b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK2\r\ni: x\r\n\
                   Subject: a\r\n   b\r\n\tc\r\nl: 0\r\n\r\n";
        let r = request(raw);
        assert_eq!(
            r.headers.get(&Name::Via),
            Some("SIP/2.0/UDP h;branch=z9hG4bK2")
        );
        assert_eq!(r.headers.get(&Name::CallId), Some("x"));
        assert_eq!(r.headers.get(&Name::Other("Subject".into())), Some("a b c"));
    }

    #[test]
    fn unknown_methods_and_responses_parse() {
        let r = request("FOO.bar sip:b SIP/2.0\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(r.method, Method::Other("FOO.bar".into()));
        match Message::parse(b"SIP/2.0 999 Whatever\r\nl: 0\r\n\r\n").unwrap() {
            Message::Response(resp) => {
                assert_eq!((resp.status, resp.reason.as_str()), (999, "Whatever"))
            }
            Message::Request(_) => panic!(),
        }
    }

    #[test]
    fn broken_messages_are_errors_not_panics() {
        let cases: &[&[u8]] = &[
            b"",
            b"\r\n\r\n",
            b"garbage",
            b"REGISTER sip:b SIP/2.0\r\nVia: x\r\n",
            b"REGISTER  sip:b SIP/2.0\r\n\r\n",
            b"REGISTER sip:b SIP/7.0\r\n\r\n",
            b"REGISTER <sip:b> SIP/2.0\r\n\r\n",
            b"REGISTER sip:b SIP/2.0\r\nNoColon\r\n\r\n",
            b"REGISTER sip:b SIP/2.0\r\n continuation-first\r\n\r\n",
            b"REGISTER sip:b SIP/2.0\r\nContent-Length: -1\r\n\r\n",
            b"REGISTER sip:b SIP/2.0\r\nContent-Length: 10\r\n\r\nshort",
            b"SIP/2.0 20 OK\r\n\r\n",
            b"SIP/2.0 2000 OK\r\n\r\n",
            b"\xff\xfe REGISTER\r\n\r\n",
        ];
        for raw in cases {
            assert!(
                Message::parse(raw).is_err(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert_eq!(
            Message::parse(b"REGISTER sip:b SIP/7.0\r\n\r\n"),
            Err(ParseError::Version)
        );
    }

    #[test]
    fn content_length_cuts_a_longer_datagram_body() {
        let r = request("MESSAGE sip:b SIP/2.0\r\nContent-Length: 5\r\n\r\nhello world");
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn list_headers_are_edited_by_item() {
        let mut req = request(
            "INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2\r\n\
             Route: <sip:p1;lr>\r\nRoute: <sip:p2;lr>\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n\
             Call-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        );
        let h = &mut req.headers;
        assert_eq!(
            h.first_item(&Name::Via),
            Some("SIP/2.0/UDP a;branch=z9hG4bK1")
        );
        h.replace_first_item(&Name::Via, "SIP/2.0/UDP a;branch=z9hG4bK1;received=1.2.3.4");
        assert_eq!(h.count(&Name::Via), 1);
        assert_eq!(
            h.pop_first_item(&Name::Via).as_deref(),
            Some("SIP/2.0/UDP a;branch=z9hG4bK1;received=1.2.3.4")
        );
        assert_eq!(h.get(&Name::Via), Some("SIP/2.0/UDP b;branch=z9hG4bK2"));
        assert_eq!(
            h.pop_first_item(&Name::Route).as_deref(),
            Some("<sip:p1;lr>")
        );
        assert_eq!(h.lines(&Name::Route).collect::<Vec<_>>(), ["<sip:p2;lr>"]);
        h.prepend(Name::Via, "SIP/2.0/UDP us;branch=z9hG4bK3");
        assert_eq!(
            h.iter().next().map(|l| l.value.as_str()),
            Some("SIP/2.0/UDP us;branch=z9hG4bK3")
        );
        h.insert_above(
            &Name::Route,
            ["<sip:x;lr>".to_owned(), "<sip:y;lr>".to_owned()],
        );
        assert_eq!(
            h.lines(&Name::Route).collect::<Vec<_>>(),
            ["<sip:x;lr>", "<sip:y;lr>", "<sip:p2;lr>"]
        );
        h.set(Name::From, "<sip:z@h>;tag=9");
        assert_eq!(h.get(&Name::From), Some("<sip:z@h>;tag=9"));
        h.retain(|l| l.name != Name::Route);
        assert_eq!(h.count(&Name::Route), 0);
    }

    #[test]
    fn serialisation_round_trips() {
        let r = request(REGISTER);
        let again = request(std::str::from_utf8(&r.to_bytes()).unwrap());
        assert_eq!(r, again);
    }
}
