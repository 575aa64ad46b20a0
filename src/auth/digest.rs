//! Digest authentication (RFC 7616 / RFC 8760, `qop=auth`, MD5 and SHA-256), all of it
//! in one place and free of any protocol's message types: the stored secrets
//! (`HA1 = H(username:realm:password)`, the plain password is shown once), the response
//! a client computes from them, the nonces we issue and check, the challenges we send,
//! and the credentials a client answers with. SIP uses it through
//! [`crate::sip::authenticate`].
//!
//! Nonces are stateless to issue and cheap to check: `id ‖ time ‖ HMAC(secret, id ‖
//! time ‖ realm)`, so a nonce minted for another realm (or forged) fails the MAC, and
//! one older than its lifetime is stale. Replay protection keeps, per nonce issued in
//! the last lifetime, the highest nonce-count accepted: 4 bytes each, in a ring indexed
//! by id.

use crate::sip::syntax::unquote;
use crate::sync::MutexExt;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

/// The digest algorithms we offer and accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    pub fn hash_hex(self, input: &[u8]) -> String {
        match self {
            Self::Md5 => hex::encode(Md5::digest(input)),
            Self::Sha256 => hex::encode(Sha256::digest(input)),
        }
    }
}

pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hash_hex(format!("{username}:{realm}:{password}").as_bytes())
}

pub fn ha1_md5(username: &str, realm: &str, password: &str) -> String {
    ha1(Algorithm::Md5, username, realm, password)
}

pub fn ha1_sha256(username: &str, realm: &str, password: &str) -> String {
    ha1(Algorithm::Sha256, username, realm, password)
}

/// The fields of a `qop=auth` digest response besides HA1.
pub struct ResponseInput<'a> {
    pub nonce: &'a str,
    pub nc: &'a str,
    pub cnonce: &'a str,
    pub qop: &'a str,
    pub method: &'a str,
    pub uri: &'a str,
}

/// `H(HA1:nonce:nc:cnonce:qop:H(method:uri))` (RFC 7616 §3.4.1).
pub fn response(algorithm: Algorithm, ha1: &str, input: &ResponseInput<'_>) -> String {
    let ha2 = algorithm.hash_hex(format!("{}:{}", input.method, input.uri).as_bytes());
    algorithm.hash_hex(
        format!(
            "{ha1}:{}:{}:{}:{}:{ha2}",
            input.nonce, input.nc, input.cnonce, input.qop
        )
        .as_bytes(),
    )
}

/// Seconds a nonce stays fresh by default.
pub const NONCE_LIFETIME_SECS: u64 = 60;

/// Why a nonce was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceProblem {
    /// Not ours, or minted for another realm.
    Foreign,
}

/// A nonce that passed its MAC check; `accept_count` records the nonce-count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NonceTicket {
    id: u64,
    issued_at: u64,
}

impl NonceTicket {
    fn is_stale_after(&self, now_secs: u64, lifetime: u64) -> bool {
        now_secs.saturating_sub(self.issued_at) > lifetime
    }
}

struct Window {
    next_id: u64,
    /// Id of `counts[0]`.
    base_id: u64,
    /// Highest nonce-count accepted per nonce id (0 = unused).
    counts: VecDeque<u32>,
    /// (second, first id issued in that second), to drop ids older than the lifetime.
    marks: VecDeque<(u64, u64)>,
}

pub struct NonceBook {
    secret: [u8; 32],
    lifetime: u64,
    window: Mutex<Window>,
}

impl NonceBook {
    pub fn new(secret: [u8; 32], lifetime_secs: u64) -> Self {
        Self {
            secret,
            lifetime: lifetime_secs.max(1),
            window: Mutex::new(Window {
                next_id: 1,
                base_id: 1,
                counts: VecDeque::new(),
                marks: VecDeque::new(),
            }),
        }
    }

    fn mac(&self, id: u64, ts: u64, realm: &str) -> [u8; 12] {
        // A 32-byte key is always valid for HMAC-SHA256.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(&id.to_be_bytes());
        mac.update(&ts.to_be_bytes());
        mac.update(realm.as_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 12];
        out.copy_from_slice(&full[..12]);
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock_unpoisoned()
    }

    /// A fresh nonce for `realm`.
    pub fn issue(&self, realm: &str, now_secs: u64) -> String {
        let id = {
            let mut w = self.lock();
            trim(&mut w, now_secs, self.lifetime);
            let id = w.next_id;
            w.next_id += 1;
            w.counts.push_back(0);
            if w.marks.back().is_none_or(|(s, _)| *s < now_secs) {
                w.marks.push_back((now_secs, id));
            }
            id
        };
        format!(
            "{id:016x}{now_secs:010x}{}",
            hex::encode(self.mac(id, now_secs, realm))
        )
    }

    /// Checks origin and realm (not freshness: a stale nonce with a correct response
    /// earns `stale=true`, a wrong one a plain failure).
    pub fn check(&self, nonce: &str, realm: &str) -> Result<NonceTicket, NonceProblem> {
        if nonce.len() != 16 + 10 + 24 || !nonce.is_ascii() {
            return Err(NonceProblem::Foreign);
        }
        let id = u64::from_str_radix(&nonce[..16], 16).map_err(|_| NonceProblem::Foreign)?;
        let ts = u64::from_str_radix(&nonce[16..26], 16).map_err(|_| NonceProblem::Foreign)?;
        let given = hex::decode(&nonce[26..]).map_err(|_| NonceProblem::Foreign)?;
        if !bool::from(given.as_slice().ct_eq(&self.mac(id, ts, realm))) {
            return Err(NonceProblem::Foreign);
        }
        Ok(NonceTicket { id, issued_at: ts })
    }

    pub fn is_stale(&self, ticket: NonceTicket, now_secs: u64) -> bool {
        ticket.is_stale_after(now_secs, self.lifetime)
    }

    /// Records `nc` for a fresh nonce; false when it does not exceed the last one seen
    /// (a replay) or the nonce has left the window.
    pub fn accept_count(&self, ticket: NonceTicket, nc: u32, now_secs: u64) -> bool {
        if nc == 0 || self.is_stale(ticket, now_secs) {
            return false;
        }
        let mut w = self.lock();
        trim(&mut w, now_secs, self.lifetime);
        let Some(index) = ticket.id.checked_sub(w.base_id) else {
            return false;
        };
        match w.counts.get_mut(index as usize) {
            Some(last) if *last < nc => {
                *last = nc;
                true
            }
            _ => false,
        }
    }

    /// Nonces tracked right now (for memory figures).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().counts.len()
    }
}

/// Drops ids issued more than the lifetime (plus a second of slack) ago.
fn trim(w: &mut Window, now_secs: u64, lifetime: u64) {
    while let Some(&(second, _)) = w.marks.front() {
        if second + lifetime + 1 >= now_secs {
            break;
        }
        w.marks.pop_front();
        let new_base = w.marks.front().map_or(w.next_id, |(_, id)| *id);
        let drop = (new_base - w.base_id) as usize;
        w.counts.drain(..drop.min(w.counts.len()));
        w.base_id = new_base;
    }
}

/// The `WWW-Authenticate`/`Proxy-Authenticate` values for a challenge, one per offered
/// algorithm, in the configured order of preference (clients use the topmost they
/// support, RFC 8760 §2.4).
pub fn challenges(realm: &str, nonce: &str, stale: bool, algorithms: &[Algorithm]) -> Vec<String> {
    let stale = if stale { ", stale=true" } else { "" };
    let quoted = realm.replace('\\', "\\\\").replace('"', "\\\"");
    algorithms
        .iter()
        .map(|a| {
            let name = match a {
                Algorithm::Md5 => "MD5",
                Algorithm::Sha256 => "SHA-256",
            };
            format!("Digest realm=\"{quoted}\", nonce=\"{nonce}\", algorithm={name}, qop=\"auth\"{stale}")
        })
        .collect()
}

/// The algorithm named in credentials; absent means MD5 (RFC 7616 §3.4).
pub fn algorithm_of(name: Option<&str>) -> Option<Algorithm> {
    match name {
        None => Some(Algorithm::Md5),
        Some(a) if a.eq_ignore_ascii_case("MD5") => Some(Algorithm::Md5),
        Some(a) if a.eq_ignore_ascii_case("SHA-256") => Some(Algorithm::Sha256),
        _ => None,
    }
}

/// Whether `response` is right for `ha1`, compared in constant time.
pub fn response_matches(
    algorithm: Algorithm,
    ha1: &str,
    input: &ResponseInput<'_>,
    response: &str,
) -> bool {
    let expected = crate::auth::digest::response(algorithm, ha1, input);
    expected.as_bytes().ct_eq(response.as_bytes()).into()
}

/// Parsed `Digest` credentials (an `Authorization` or `Proxy-Authorization` value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub opaque: Option<String>,
}

/// Splits `k=v, k="v, w"` into pairs, honouring quotes and escapes.
fn auth_params(raw: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && (bytes[i] == b',' || bytes[i].is_ascii_whitespace()) {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' {
            i += 1;
        }
        let key = raw.get(key_start..i)?.trim().to_ascii_lowercase();
        if key.is_empty() || i >= bytes.len() {
            return None;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = if bytes.get(i) == Some(&b'"') {
            i += 1;
            let start = i;
            let mut escaped = false;
            while i < bytes.len() {
                match bytes[i] {
                    _ if escaped => escaped = false,
                    b'\\' => escaped = true,
                    b'"' => break,
                    _ => {}
                }
                i += 1;
            }
            if i >= bytes.len() {
                return None;
            }
            let v = unquote(raw.get(start..i)?);
            i += 1;
            v
        } else {
            let start = i;
            while i < bytes.len() && bytes[i] != b',' {
                i += 1;
            }
            raw.get(start..i)?.trim().to_owned()
        };
        out.push((key, value));
    }
    Some(out)
}

impl Credentials {
    pub fn parse(raw: &str) -> Option<Credentials> {
        let raw = raw.trim();
        let (scheme, rest) = raw.split_once(|c: char| c.is_ascii_whitespace())?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut c = Credentials::default();
        for (k, v) in auth_params(rest)? {
            match k.as_str() {
                "username" => c.username = v,
                "realm" => c.realm = v,
                "nonce" => c.nonce = v,
                "uri" => c.uri = v,
                "response" => c.response = v.to_ascii_lowercase(),
                "algorithm" => c.algorithm = Some(v),
                "cnonce" => c.cnonce = Some(v),
                "qop" => c.qop = Some(v),
                "nc" => c.nc = Some(v),
                "opaque" => c.opaque = Some(v),
                _ => {}
            }
        }
        if c.username.is_empty() || c.nonce.is_empty() || c.response.is_empty() {
            return None;
        }
        Some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1: Mufasa / http-auth@example.org / "Circle of Life".
    fn rfc7616_input() -> ResponseInput<'static> {
        ResponseInput {
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            nc: "00000001",
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            qop: "auth",
            method: "GET",
            uri: "/dir/index.html",
        }
    }

    #[test]
    fn md5_response_matches_rfc7616_example() {
        let ha1 = ha1_md5("Mufasa", "http-auth@example.org", "Circle of Life");
        assert_eq!(
            response(Algorithm::Md5, &ha1, &rfc7616_input()),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn sha256_response_matches_rfc7616_example() {
        let ha1 = ha1_sha256("Mufasa", "http-auth@example.org", "Circle of Life");
        assert_eq!(
            response(Algorithm::Sha256, &ha1, &rfc7616_input()),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    fn book() -> NonceBook {
        NonceBook::new([9; 32], NONCE_LIFETIME_SECS)
    }

    #[test]
    fn nonces_verify_only_for_their_realm() {
        let b = book();
        let n = b.issue("pbx.example.com", 1000);
        assert!(b.check(&n, "pbx.example.com").is_ok());
        assert_eq!(b.check(&n, "other.example.com"), Err(NonceProblem::Foreign));
        let mut forged = n.clone();
        forged.replace_range(0..1, if n.starts_with('0') { "1" } else { "0" });
        assert_eq!(
            b.check(&forged, "pbx.example.com"),
            Err(NonceProblem::Foreign)
        );
        assert_eq!(
            b.check("short", "pbx.example.com"),
            Err(NonceProblem::Foreign)
        );
        assert_eq!(
            NonceBook::new([1; 32], 60).check(&n, "pbx.example.com"),
            Err(NonceProblem::Foreign)
        );
    }

    #[test]
    fn nonce_counts_must_increase() {
        let b = book();
        let t = b.check(&b.issue("r", 1000), "r").unwrap();
        assert!(b.accept_count(t, 1, 1001));
        assert!(!b.accept_count(t, 1, 1001), "replay");
        assert!(b.accept_count(t, 2, 1002));
        assert!(!b.accept_count(t, 0, 1002));
    }

    #[test]
    fn nonces_go_stale_after_sixty_seconds() {
        let b = book();
        let t = b.check(&b.issue("r", 1000), "r").unwrap();
        assert!(!b.is_stale(t, 1060));
        assert!(b.is_stale(t, 1061));
        assert!(!b.accept_count(t, 1, 1061));
    }

    #[test]
    fn old_nonces_leave_the_window_and_memory_stays_bounded() {
        let b = book();
        for second in 0..200u64 {
            for _ in 0..10 {
                b.issue("r", 10_000 + second);
            }
        }
        assert!(b.tracked() <= 10 * 63, "tracked {}", b.tracked());
        let recent = b.check(&b.issue("r", 10_199), "r").unwrap();
        assert!(b.accept_count(recent, 1, 10_199));
    }

    #[test]
    fn challenges_follow_the_configured_order() {
        let c = challenges(
            "127.0.0.1",
            "abc",
            true,
            &[Algorithm::Sha256, Algorithm::Md5],
        );
        assert_eq!(
            c[0],
            "Digest realm=\"127.0.0.1\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\", stale=true"
        );
        assert!(c[1].contains("algorithm=MD5"));
        assert_eq!(challenges("r", "n", false, &[Algorithm::Md5]).len(), 1);
        assert_eq!(algorithm_of(Some("sha-256")), Some(Algorithm::Sha256));
        assert_eq!(algorithm_of(None), Some(Algorithm::Md5));
        assert_eq!(algorithm_of(Some("SHA-512-256")), None);
    }

    #[test]
    fn digest_credentials_parse_with_quotes_and_commas() {
        let c = Credentials::parse(
            "Digest username=\"101_abc\", realm=\"pbx, inc\",nonce=\"n1\", uri=\"sip:127.0.0.1\", \
             response=\"ABCDEF\", algorithm=SHA-256, cnonce=\"c\\\"q\", qop=auth, nc=00000001",
        )
        .unwrap();
        assert_eq!(c.username, "101_abc");
        assert_eq!(c.realm, "pbx, inc");
        assert_eq!(c.response, "abcdef");
        assert_eq!(c.algorithm.as_deref(), Some("SHA-256"));
        assert_eq!(c.cnonce.as_deref(), Some("c\"q"));
        assert_eq!(c.nc.as_deref(), Some("00000001"));
        for bad in [
            "Basic abc",
            "Digest",
            "Digest username=\"x",
            "Digest realm=r, nonce=n, response=r",
        ] {
            assert!(Credentials::parse(bad).is_none(), "{bad}");
        }
    }
}
