//! What the benchmarks share: SIPp stages at rising rates with response times from its
//! `rtd 2` markers, the fine-clock shim, CSV rows, accounts, RSS.

use super::common::TestApp;
use super::common::sip::{Account, account_of};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Seconds each stage runs.
pub const STAGE_SECS: usize = 5;

pub struct Stage {
    pub rate: usize,
    pub achieved: f64,
    pub failed: u64,
    pub retransmissions: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub clean: bool,
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/bench")
}

/// SIPp reads a coarse clock (4 ms steps); this shim gives it the fine one.
pub fn fineclock(work: &Path) -> Option<PathBuf> {
    let out = work.join("fineclock.so");
    let ok = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&out)
        .arg(bench_dir().join("sipp-fineclock.c"))
        .arg("-ldl")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Some(out)
    } else {
        eprintln!(
            "warning: could not build the SIPp fine-clock shim; response times come in 4 ms steps"
        );
        None
    }
}

/// CSV rows for SIPp: username;password;[authentication …];AOR user;expires;contact user.
pub fn csv(path: &Path, rows: impl Iterator<Item = String>) {
    let body: Vec<String> = std::iter::once("SEQUENTIAL".to_owned())
        .chain(rows)
        .collect();
    std::fs::write(path, body.join("\n") + "\n").unwrap();
}

pub fn row(a: &Account, aor: &str, expires: u32, contact: &str) -> String {
    format!(
        "{u};{p};[authentication username={u} password=\"{p}\"];{aor};{expires};{contact}",
        u = a.username,
        p = a.password
    )
}

/// What a SIPp run is pointed at. The local port stays the same across runs, so the
/// contacts stay the same and later runs refresh the bindings earlier ones made.
pub struct Target<'a> {
    pub addr: String,
    pub users: &'a Path,
    pub local_port: u16,
    /// The scenario, in `scripts/bench/`.
    pub scenario: &'a str,
    /// The digest `uri` (`-auth_uri`).
    pub auth_uri: &'a str,
}

/// One SIPp run; returns (stats, rtd-2 response times in ms).
pub fn sipp(
    work: &Path,
    target: &Target<'_>,
    rate: usize,
    calls: usize,
    transport: &str,
    shim: Option<&Path>,
) -> (HashMap<String, String>, Vec<f64>) {
    let dir = work.join(format!("sipp-{}-{rate}", target.local_port));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = Command::new("timeout");
    cmd.current_dir(&dir)
        .arg("300")
        .arg("sipp")
        .arg(&target.addr)
        .arg("-sf")
        .arg(bench_dir().join(target.scenario))
        .arg("-inf")
        .arg(target.users)
        .args([
            "-m",
            &calls.to_string(),
            "-r",
            &rate.to_string(),
            "-l",
            "30000",
        ])
        .args([
            "-t",
            transport,
            "-p",
            &target.local_port.to_string(),
            "-i",
            "127.0.0.1",
        ])
        .args([
            "-auth_uri",
            target.auth_uri,
            "-buff_size",
            "4194304",
            "-nostdin",
        ])
        .args(["-timeout", "120s", "-timeout_error"])
        .args([
            "-trace_stat",
            "-stf",
            "stat.csv",
            "-fd",
            "1",
            "-trace_rtt",
            "-rtt_freq",
            "1000",
        ]);
    if let Some(shim) = shim {
        cmd.env("LD_PRELOAD", shim);
    }
    let out = cmd
        .output()
        .expect("sipp runs (apt-get install sip-tester)");
    let stat = std::fs::read_to_string(dir.join("stat.csv")).unwrap_or_default();
    let mut lines = stat.lines();
    let (Some(head), Some(last)) = (lines.next(), stat.lines().last()) else {
        panic!(
            "no SIPp statistics: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let stats: HashMap<String, String> = head
        .split(';')
        .zip(last.split(';'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let mut times = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        if entry.file_name().to_string_lossy().ends_with("_rtt.csv") {
            for line in std::fs::read_to_string(entry.path())
                .unwrap_or_default()
                .lines()
                .skip(1)
            {
                let cols: Vec<&str> = line.split(';').collect();
                if cols.len() >= 3
                    && cols[2].trim() == "2"
                    && let Ok(ms) = cols[1].trim().parse::<f64>()
                {
                    times.push(ms);
                }
            }
        }
    }
    if std::env::var_os("BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("kept {}", dir.display());
    }
    (stats, times)
}

pub fn num(stats: &HashMap<String, String>, key: &str) -> f64 {
    stats
        .get(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Rising rates until two stages in a row are not clean.
pub fn rising(
    work: &Path,
    name: &str,
    target: &Target<'_>,
    rates: &[usize],
    shim: Option<&Path>,
) -> Vec<Stage> {
    let mut stages = Vec::new();
    let mut misses = 0;
    for &rate in rates {
        let calls = rate * STAGE_SECS;
        let started = Instant::now();
        let (stats, mut times) = sipp(work, target, rate, calls, "u1", shim);
        let wall = started.elapsed().as_secs_f64();
        times.sort_by(|a, b| a.total_cmp(b));
        let ok = num(&stats, "SuccessfulCall(C)") as u64;
        let failed = num(&stats, "FailedCall(C)") as u64;
        let retransmissions = num(&stats, "Retransmissions(C)") as u64;
        let achieved = ok as f64 / (wall - 0.05).max(0.1);
        let clean = failed == 0
            && retransmissions == 0
            && ok as usize == calls
            && achieved >= rate as f64 * 0.95;
        let stage = Stage {
            rate,
            achieved,
            failed,
            retransmissions,
            p50_ms: percentile(&times, 0.50),
            p99_ms: percentile(&times, 0.99),
            clean,
        };
        println!(
            "  {name:<11} offered {:>6}/s  achieved {:>8.0}/s  failed {:>5}  retrans {:>6}  p50 {:>6.2} ms  p99 {:>7.2} ms  {}",
            stage.rate,
            stage.achieved,
            stage.failed,
            stage.retransmissions,
            stage.p50_ms,
            stage.p99_ms,
            if clean { "clean" } else { "NOT clean" }
        );
        stages.push(stage);
        misses = if clean { 0 } else { misses + 1 };
        if misses == 2 {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    stages
}

pub fn best(stages: &[Stage]) -> Option<&Stage> {
    stages.iter().filter(|s| s.clean).max_by_key(|s| s.rate)
}

pub async fn create_accounts(app: &TestApp, first: usize, count: usize) -> Vec<Account> {
    let mut out = Vec::with_capacity(count);
    for chunk in (first..first + count).collect::<Vec<_>>().chunks(32) {
        let made = futures_util::future::join_all(chunk.iter().map(|n| {
            let n = n.to_string();
            async move { account_of(&app.create_extension(&n, &format!("Bench {n}")).await) }
        }))
        .await;
        out.extend(made);
    }
    out
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// RSS split as the kernel reports it: anonymous (heap), file-backed, shared memory (KiB).
pub fn rss_split_kib(pid: u32) -> (u64, u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("RssAnon:"), field("RssFile:"), field("RssShmem:"))
}

/// CPU time (user + system) a process has used so far, in milliseconds.
pub fn cpu_ms(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) * 10.0
}

pub fn kamailio_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/kamailio")
}
