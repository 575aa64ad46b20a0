//! Typed views of the header values we act on: Via, CSeq, Expires.

use super::message::Method;
use super::syntax::{Params, param_value, parse_header_params, set_param, write_params};
use std::fmt;

pub const BRANCH_COOKIE: &str = "z9hG4bK";

/// One Via entry (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `UDP`, `TCP`, `TLS`, `WS`, `WSS` (upper-cased).
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    /// Parses one Via value; linear whitespace may surround the `/`s of the protocol
    /// and the `;` `=` of parameters (RFC 4475 §3.1.1.1).
    pub fn parse(raw: &str) -> Option<Via> {
        let mut rest = raw.trim();
        let mut protocol = Vec::with_capacity(3);
        for i in 0..3 {
            let end = rest
                .find(|c: char| c == '/' || c.is_whitespace())
                .unwrap_or(rest.len());
            protocol.push(&rest[..end]);
            rest = rest[end..].trim_start();
            if i < 2 {
                rest = rest.strip_prefix('/')?.trim_start();
            }
        }
        let (name, version, transport) = (protocol[0], protocol[1], protocol[2]);
        if !name.eq_ignore_ascii_case("SIP")
            || version != "2.0"
            || transport.is_empty()
            || !transport.bytes().all(super::syntax::is_token_byte)
        {
            return None;
        }
        let (sent_by, params) = match rest.find(';') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let sent_by = sent_by.trim();
        let (host, port) = if sent_by.starts_with('[') {
            let end = sent_by.find(']')?;
            let port = sent_by[end + 1..].trim().strip_prefix(':').map(str::trim);
            (&sent_by[..=end], port)
        } else {
            match sent_by.split_once(':') {
                Some((h, p)) => (h.trim(), Some(p.trim())),
                None => (sent_by, None),
            }
        };
        if !super::uri::valid_host(host) {
            return None;
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0)?),
            None => None,
        };
        let params = parse_header_params(
            &params
                .split(';')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(";"),
        )
        .ok()?;
        Some(Via {
            transport: transport.to_ascii_uppercase(),
            host: host.to_ascii_lowercase(),
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        param_value(&self.params, "branch")
    }

    pub fn has_rport(&self) -> bool {
        self.params
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("rport"))
    }

    /// `host[:port]` as written in the Via.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// Adds `received` (when the source differs from sent-by) and fills `rport` when the
    /// client asked for it (RFC 3261 §18.2.1, RFC 3581).
    pub fn stamp_source(&mut self, source: std::net::SocketAddr) {
        let ip = source.ip().to_string();
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        if host != ip || self.has_rport() {
            set_param(&mut self.params, "received", Some(ip));
        }
        if self.has_rport() {
            set_param(&mut self.params, "rport", Some(source.port().to_string()));
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.sent_by())?;
        write_params(f, &self.params)
    }
}

/// `CSeq: 42 REGISTER`.
pub fn parse_cseq(raw: &str) -> Option<(u32, Method)> {
    let mut parts = raw.split_whitespace();
    let seq = parts.next()?;
    let method = Method::parse(parts.next()?)?;
    if parts.next().is_some() || seq.len() > 10 {
        return None;
    }
    let seq: u64 = seq.parse().ok()?;
    // RFC 3261 §8.1.1.5: less than 2^31.
    (seq < (1 << 31)).then_some((seq as u32, method))
}

/// A delta-seconds value (`Expires`, `expires=`); huge values saturate (RFC 3261 §25.1).
pub fn parse_delta_seconds(raw: &str) -> Option<u32> {
    let raw = raw.trim();
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        raw.parse::<u64>()
            .map_or(u32::MAX, |v| v.min(u64::from(u32::MAX)) as u32),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_parses_with_params_and_ipv6() {
        let v = Via::parse("SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK-1;rport").unwrap();
        assert_eq!(
            (v.transport.as_str(), v.host.as_str(), v.port),
            ("UDP", "10.0.0.1", Some(5061))
        );
        assert_eq!(v.branch(), Some("z9hG4bK-1"));
        assert!(v.has_rport());
        let v = Via::parse("SIP / 2.0 / TCP [2001:db8::9]:5060 ; branch = z9hG4bKx").unwrap();
        assert_eq!(v.host, "[2001:db8::9]");
        assert_eq!(v.branch(), Some("z9hG4bKx"));
        let v = Via::parse("SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(
            (v.transport.as_str(), v.host.as_str()),
            ("UDP", "192.0.2.2")
        );
        for bad in [
            "SIP/2.0/UDP",
            "SIP/3.0/UDP h",
            "HTTP/2.0/UDP h",
            "SIP/2.0/UDP h:0",
            "SIP/2.0/UDP h:x",
            "SIP/2.0 h",
        ] {
            assert!(Via::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn stamping_adds_received_and_fills_rport() {
        let mut v = Via::parse("SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK1;rport").unwrap();
        v.stamp_source("192.0.2.7:40000".parse().unwrap());
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP 10.0.0.1:5061;branch=z9hG4bK1;rport=40000;received=192.0.2.7"
        );
        let mut same = Via::parse("SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1").unwrap();
        same.stamp_source("192.0.2.7:5060".parse().unwrap());
        assert_eq!(
            same.to_string(),
            "SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1"
        );
    }

    #[test]
    fn cseq_and_delta_seconds() {
        assert_eq!(parse_cseq("42 REGISTER"), Some((42, Method::Register)));
        assert_eq!(parse_cseq("  7\tINVITE "), Some((7, Method::Invite)));
        for bad in [
            "REGISTER",
            "x REGISTER",
            "1 2 3",
            "2147483648 INVITE",
            "-1 BYE",
        ] {
            assert_eq!(parse_cseq(bad), None, "{bad}");
        }
        assert_eq!(parse_delta_seconds("3600"), Some(3600));
        assert_eq!(parse_delta_seconds("99999999999999999999"), Some(u32::MAX));
        assert_eq!(parse_delta_seconds("-1"), None);
        assert_eq!(parse_delta_seconds(""), None);
    }
}
