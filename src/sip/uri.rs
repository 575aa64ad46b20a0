//! SIP and tel URIs (RFC 3261 §19.1, RFC 3966) and name-addr values (`"Display" <uri>;params`).
//!
//! Parsing is strict about structure (scheme, host, port) and lenient about content
//! (unknown parameters and escapes are kept as written), so a URI round-trips.

use super::syntax::{
    Params, find_unquoted, param_value, parse_header_params, parse_params, unescape, unquote,
    valid_escapes, write_params,
};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid URI: {0}")]
pub struct UriError(pub &'static str);

impl From<super::syntax::SyntaxError> for UriError {
    fn from(e: super::syntax::SyntaxError) -> Self {
        UriError(e.0)
    }
}

/// The [`UriError`] text for a well-formed URI of a scheme we do not speak (→ 416).
pub const UNSUPPORTED_SCHEME: &str = "unsupported scheme";

/// RFC 3986 scheme: a letter, then letters, digits, `+`, `-`, `.`.
fn is_scheme(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// A parsed `sip:`, `sips:` or `tel:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    /// The user part as written (escapes kept); for `tel:` the number.
    pub user: Option<String>,
    pub password: Option<String>,
    /// Host name or address; IPv6 references keep their brackets. Empty for `tel:`.
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
    /// `?h=v&…` URI headers, as written (without the `?`).
    pub headers: Option<String>,
}

fn is_unreserved_user_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/%".contains(c)
}

pub(super) fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !host.starts_with('.')
        && !host.starts_with('-')
}

/// Splits `host[:port]`, understanding `[v6]:port`.
fn split_host_port(hostport: &str) -> Result<(String, Option<u16>), UriError> {
    let (host, port) = if hostport.starts_with('[') {
        let end = hostport
            .find(']')
            .ok_or(UriError("unclosed IPv6 reference"))?;
        let (h, rest) = hostport.split_at(end + 1);
        match rest.strip_prefix(':') {
            Some(p) => (h, Some(p)),
            None if rest.is_empty() => (h, None),
            None => return Err(UriError("junk after IPv6 reference")),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if !valid_host(host) {
        return Err(UriError("bad host"));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or(UriError("bad port"))?,
        ),
        None => None,
    };
    Ok((host.to_ascii_lowercase(), port))
}

impl Uri {
    pub fn parse(raw: &str) -> Result<Uri, UriError> {
        let raw = raw.trim();
        if raw
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(UriError("whitespace or control characters"));
        }
        let (scheme, rest) = raw.split_once(':').ok_or(UriError("no scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "sip" => Scheme::Sip,
            "sips" => Scheme::Sips,
            "tel" => Scheme::Tel,
            s if is_scheme(s) => return Err(UriError(UNSUPPORTED_SCHEME)),
            _ => return Err(UriError("no scheme")),
        };
        if scheme == Scheme::Tel {
            let (number, params) = match rest.find(';') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            if number.is_empty()
                || !number
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b"+-.()*#".contains(&b))
            {
                return Err(UriError("bad telephone number"));
            }
            return Ok(Uri {
                scheme,
                user: Some(number.to_owned()),
                password: None,
                host: String::new(),
                port: None,
                params: parse_params(params)?,
                headers: None,
            });
        }
        // The user part may contain ';' and '?' (RFC 3261 allows both there), so the
        // host starts after the last '@'; parameters and headers follow the host.
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let (hostpart, headers) = match hostpart.split_once('?') {
            Some((h, q)) => (h, Some(q.to_owned())),
            None => (hostpart, None),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p.to_owned())),
                    None => (ui, None),
                };
                if u.is_empty() || !u.chars().all(is_unreserved_user_char) {
                    return Err(UriError("bad user part"));
                }
                if !valid_escapes(u) {
                    return Err(UriError("bad escape in user part"));
                }
                (Some(u.to_owned()), p)
            }
        };
        let (hostport, params) = match hostpart.find(';') {
            Some(i) => hostpart.split_at(i),
            None => (hostpart, ""),
        };
        let (host, port) = split_host_port(hostport)?;
        Ok(Uri {
            scheme,
            user,
            password,
            host,
            port,
            params: parse_params(params)?,
            headers,
        })
    }

    /// The user part with `%XX` escapes decoded (lossy on invalid UTF-8).
    pub fn user_unescaped(&self) -> Option<String> {
        self.user.as_deref().map(unescape)
    }

    pub fn param_value(&self, name: &str) -> Option<&str> {
        param_value(&self.params, name)
    }

    pub fn transport_param(&self) -> Option<String> {
        self.param_value("transport").map(str::to_ascii_lowercase)
    }

    /// `sip:user@host:port` without parameters or headers — the address-of-record form.
    pub fn aor(&self) -> String {
        let mut s = String::new();
        self.write_base(&mut s).ok();
        s
    }

    fn write_base(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
        };
        write!(f, "{scheme}:")?;
        if self.scheme == Scheme::Tel {
            return write!(f, "{}", self.user.as_deref().unwrap_or_default());
        }
        if let Some(user) = &self.user {
            write!(f, "{user}")?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            write!(f, "@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }

    /// RFC 3261 §19.1.4 comparison, simplified: scheme, user (unescaped, case-sensitive),
    /// host (case-insensitive), port, and the `transport`, `user`, `method`, `maddr`
    /// parameters when either side has them.
    pub fn equivalent(&self, other: &Uri) -> bool {
        if self.scheme != other.scheme
            || self.user_unescaped() != other.user_unescaped()
            || !self.host.eq_ignore_ascii_case(&other.host)
            || self.port != other.port
        {
            return false;
        }
        ["transport", "user", "method", "maddr", "ttl"]
            .iter()
            .all(|p| {
                let a = self.param_value(p).map(str::to_ascii_lowercase);
                let b = other.param_value(p).map(str::to_ascii_lowercase);
                a == b
            })
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_base(f)?;
        write_params(f, &self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// `"Display Name" <uri>;params`, `Name <uri>`, or `uri;params` (where the parameters
/// belong to the header, RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Params,
}

impl NameAddr {
    pub fn parse(raw: &str) -> Result<NameAddr, UriError> {
        let raw = raw.trim();
        if let Some(lt) = find_unquoted(raw, b'<') {
            let display_raw = raw[..lt].trim();
            let after = &raw[lt + 1..];
            let gt = after.find('>').ok_or(UriError("unclosed <"))?;
            let uri = Uri::parse(&after[..gt])?;
            let params = parse_header_params(after[gt + 1..].trim())?;
            let display = if display_raw.is_empty() {
                None
            } else if let Some(q) = display_raw.strip_prefix('"') {
                let inner = q.strip_suffix('"').ok_or(UriError("unbalanced quotes"))?;
                Some(unquote(inner))
            } else {
                if display_raw.contains('"') {
                    return Err(UriError("unbalanced quotes"));
                }
                Some(display_raw.to_owned())
            };
            Ok(NameAddr {
                display,
                uri,
                params,
            })
        } else {
            if raw.contains('>') || raw.contains('"') {
                return Err(UriError("stray > or quote"));
            }
            // Without angle brackets a URI cannot carry parameters or headers of its own.
            let (uri_part, params) = match raw.find(';') {
                Some(i) => raw.split_at(i),
                None => (raw, ""),
            };
            if uri_part.contains('?') {
                return Err(UriError("URI headers need angle brackets"));
            }
            Ok(NameAddr {
                display: None,
                uri: Uri::parse(uri_part)?,
                params: parse_header_params(params)?,
            })
        }
    }

    pub fn tag(&self) -> Option<&str> {
        param_value(&self.params, "tag")
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "\"{}\" ", d.replace('\\', "\\\\").replace('"', "\\\""))?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uris_parse_and_round_trip() {
        for raw in [
            "sip:alice@atlanta.com",
            "sip:alice:secret@atlanta.com;transport=tcp",
            "sips:alice@atlanta.com?subject=project%20x&priority=urgent",
            "sip:+1-212-555-1212:1234@gateway.com;user=phone",
            "sip:alice@192.0.2.4:5070",
            "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
            "sip:alice;day=tuesday@atlanta.com",
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
            "sip:[2001:db8::10]:5060",
            "sip:101_abc123@127.0.0.1;transport=udp",
        ] {
            let uri = Uri::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(uri.to_string(), raw);
        }
    }

    #[test]
    fn header_parameter_values_are_tokens_hosts_or_quoted_strings() {
        for ok in [
            "<sip:a@b>;tag=x-1.2!%*_+`'~",
            "<sip:a@b>;received=2001:db8::1;maddr=[2001:db8::2]",
            "<sip:a@b>;+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\";ob",
            "sip:a@b;tag=1",
        ] {
            assert!(NameAddr::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "<sip:a@b>;tag=2fb0-ID: 3d94@Zmx",
            "<sip:a@b>;tag=a/b",
            "<sip:a@b>;tag=a:b",
            "<sip:a@b>;tag=",
            "sip:a@b;tag=x@y",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad}");
        }
        // URI parameters keep their own, wider alphabet (RFC 3261 `paramchar`).
        assert!(Uri::parse("sip:a@b;x=a/b&c:d;user]=phone").is_ok());
        assert!(NameAddr::parse("<sip:a@b>;user]=phone").is_err());
    }

    #[test]
    fn parts_are_where_they_belong() {
        let u = Uri::parse("sip:alice;day=tuesday@Atlanta.COM:5061;Transport=TCP").unwrap();
        assert_eq!(u.user.as_deref(), Some("alice;day=tuesday"));
        assert_eq!(u.host, "atlanta.com");
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport_param().as_deref(), Some("tcp"));
        let v6 = Uri::parse("sip:[2001:db8::10]").unwrap();
        assert_eq!(v6.host, "[2001:db8::10]");
        let tel = Uri::parse("tel:+12125551212;phone-context=example.com").unwrap();
        assert_eq!(tel.scheme, Scheme::Tel);
        assert_eq!(tel.user.as_deref(), Some("+12125551212"));
    }

    #[test]
    fn bad_uris_are_refused() {
        for raw in [
            "alice@atlanta.com",
            "http://x",
            "sip:",
            "sip:@host",
            "sip:alice@",
            "sip:alice@host:0",
            "sip:alice@host:99999",
            "sip:alice@host:12x",
            "sip:[2001:db8::10",
            "sip:[zz::1]",
            "sip:al ice@host",
            "sip:a%zzb@host",
            "sip:alice@ho_st",
            "sip:alice@host;;x",
            "tel:",
        ] {
            assert!(Uri::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn escaped_users_compare_equal_to_plain_ones() {
        let a = Uri::parse("sip:%61lice@atlanta.com;transport=TCP").unwrap();
        let b = Uri::parse("sip:alice@AtLanTa.CoM;Transport=tcp").unwrap();
        assert!(a.equivalent(&b));
        let c = Uri::parse("sip:alice@atlanta.com").unwrap();
        assert!(!a.equivalent(&c), "transport differs");
    }

    #[test]
    fn name_addrs_in_every_form() {
        let n = NameAddr::parse("\"Alice \\\"A\\\" Liddell\" <sip:alice@atlanta.com>;tag=88sja8x")
            .unwrap();
        assert_eq!(n.display.as_deref(), Some("Alice \"A\" Liddell"));
        assert_eq!(n.tag(), Some("88sja8x"));
        let n = NameAddr::parse("Bob <sips:bob@biloxi.com> ;tag=a48s").unwrap();
        assert_eq!(n.display.as_deref(), Some("Bob"));
        assert_eq!(n.tag(), Some("a48s"));
        let n = NameAddr::parse("sip:+12125551212@phone2net.com;tag=887s").unwrap();
        assert_eq!(n.tag(), Some("887s"));
        assert!(
            n.uri.params.is_empty(),
            "params of a bare URI belong to the header"
        );
        let n = NameAddr::parse("\"a <b>, c\" <sip:x@y>").unwrap();
        assert_eq!(n.display.as_deref(), Some("a <b>, c"));
        for bad in [
            "\"unclosed <sip:x@y>",
            "<sip:x@y",
            "sip:x@y?h=1",
            "<sip:x@y>;",
        ] {
            assert!(NameAddr::parse(bad).is_err(), "{bad}");
        }
    }
}
