//! SIP digest authentication (RFC 7616 / RFC 8760, `qop=auth`, MD5 and SHA-256).
//!
//! Nonces are stateless to issue and cheap to check: `id ‖ time ‖ HMAC(secret, id ‖
//! time ‖ realm)`, so a nonce minted for another realm (or forged) fails the MAC, and
//! one older than 60 s is stale. Replay protection keeps, per nonce issued in the last
//! minute, the highest nonce-count accepted: 4 bytes each, in a ring indexed by id.

use crate::auth::digest::{self, Algorithm, ResponseInput};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::VecDeque;
use std::sync::Mutex;
use subtle::ConstantTimeEq;

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
        self.window.lock().unwrap_or_else(|p| p.into_inner())
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
    let expected = digest::response(algorithm, ha1, input);
    expected.as_bytes().ct_eq(response.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
