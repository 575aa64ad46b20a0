//! Abuse guard: silently drops known scanners, and ignores an IP address for five
//! minutes after more than 20 authentication failures within 60 seconds.

use crate::sync::MutexExt;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use tokio::time::{Duration, Instant};

const FAILURE_LIMIT: u32 = 20;
const WINDOW: Duration = Duration::from_secs(60);
const BAN: Duration = Duration::from_secs(300);

/// User-Agent fragments of SIP scanners and war-dialers (lower case).
const SCANNERS: &[&str] = &[
    "friendly-scanner",
    "sipvicious",
    "sipcli",
    "sip-scan",
    "sipscan",
    "vaxsipuseragent",
    "iwar",
    "sivus",
    "sundayddr",
    "pplsip",
    "siparmyknife",
    "smap",
    "gulp",
    "voipsniper",
];

pub fn is_scanner(user_agent: &str) -> bool {
    let ua = user_agent.to_ascii_lowercase();
    SCANNERS.iter().any(|s| ua.contains(s))
}

#[derive(Debug, Clone, Copy)]
struct Record {
    window_start: Instant,
    failures: u32,
    banned_until: Option<Instant>,
}

#[derive(Default)]
pub struct Guard {
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl Guard {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Record>> {
        self.records.lock_unpoisoned()
    }

    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        self.lock()
            .get(&ip)
            .and_then(|r| r.banned_until)
            .is_some_and(|until| until > now)
    }

    /// Counts one failure; returns true when it starts a ban.
    pub fn record_failure(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut records = self.lock();
        let r = records.entry(ip).or_insert(Record {
            window_start: now,
            failures: 0,
            banned_until: None,
        });
        if now.duration_since(r.window_start) > WINDOW {
            r.window_start = now;
            r.failures = 0;
        }
        r.failures += 1;
        if r.failures > FAILURE_LIMIT && r.banned_until.is_none_or(|u| u <= now) {
            r.banned_until = Some(now + BAN);
            r.failures = 0;
            r.window_start = now;
            return true;
        }
        false
    }

    /// Forgets addresses with nothing to remember.
    pub fn prune(&self) {
        let now = Instant::now();
        self.lock().retain(|_, r| {
            r.banned_until.is_some_and(|u| u > now) || now.duration_since(r.window_start) <= WINDOW
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanners_are_recognised_case_insensitively() {
        assert!(is_scanner("friendly-scanner"));
        assert!(is_scanner("SIPVicious 0.3"));
        assert!(is_scanner("sipcli/v1.8"));
        assert!(!is_scanner("Yealink SIP-T54W 96.86.0.70"));
        assert!(!is_scanner(""));
    }

    #[tokio::test(start_paused = true)]
    async fn more_than_twenty_failures_in_a_minute_ban_only_that_ip_for_five_minutes() {
        let g = Guard::default();
        let bad: IpAddr = "192.0.2.1".parse().unwrap();
        let good: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..20 {
            assert!(!g.record_failure(bad));
        }
        assert!(!g.is_banned(bad));
        assert!(g.record_failure(bad));
        assert!(g.is_banned(bad));
        assert!(!g.is_banned(good));
        tokio::time::advance(Duration::from_secs(299)).await;
        assert!(g.is_banned(bad));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(!g.is_banned(bad));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_spread_over_more_than_a_minute_do_not_ban() {
        let g = Guard::default();
        let ip: IpAddr = "192.0.2.3".parse().unwrap();
        for _ in 0..15 {
            g.record_failure(ip);
        }
        tokio::time::advance(Duration::from_secs(61)).await;
        for _ in 0..15 {
            assert!(!g.record_failure(ip));
        }
        assert!(!g.is_banned(ip));
        g.prune();
    }
}
