//! API load against SIP signalling (prints figures; never asserts on time).
//!
//! SIP OPTIONS and REGISTER+digest round trips, p50/p99, first with the server idle,
//! then while 8 clients hammer `POST /graphql` with the most expensive document the
//! limits allow (333 aliases × every extension with its devices and active calls:
//! complexity 1,000, depth 3). The figure that matters is p99 under load against p99
//! idle (target ≤ 2×): API work must cost API latency, not phone signalling.
//!
//! Run: `scripts/bench/isolation` (or `cargo bench --bench isolation -- [--quick]`).

#[path = "../tests/common/mod.rs"]
mod common;
#[expect(dead_code, reason = "shared by the benchmarks; each uses a part")]
mod support;

use common::sip::{Account, authorization, header, status};
use common::{Backend, TestApp};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{cpu_ms, create_accounts, percentile};

/// Extensions in the PBX: what every alias of the heavy document reads.
const EXTENSIONS: usize = 10;
/// GraphQL clients hammering at once.
const CLIENTS: usize = 8;

/// The heaviest document the limits allow (complexity exactly 1,000).
fn heaviest_document() -> String {
    let aliases: String = (0..333)
        .map(|i| format!(" a{i}: extensions {{ ...Heavy }}"))
        .collect();
    format!(
        "query Heaviest {{{aliases} }}\nfragment Heavy on Extension {{ activeCalls {{ __typename }} devices {{ __typename }} }}"
    )
}

fn options(local: SocketAddr, n: u64) -> String {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-iso-{n}\r\n\
         From: <sip:probe@127.0.0.1>;tag=iso\r\nTo: <sip:127.0.0.1>\r\nCall-ID: iso-{n}@bench\r\n\
         CSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn register(local: SocketAddr, account: &Account, n: u64, auth: &str) -> String {
    let user = &account.number;
    format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-isr-{n}\r\n\
         From: <sip:{user}@127.0.0.1>;tag=isr\r\nTo: <sip:{user}@127.0.0.1>\r\n\
         Call-ID: isr-{user}@bench\r\nCSeq: {n} REGISTER\r\nContact: <sip:{user}@{local}>;expires=600\r\n\
         Max-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
    )
}

/// Sends `msg` and waits for its final response on a blocking socket (the probe has a
/// thread of its own, so the bench's async work cannot delay its clock).
fn round_trip(socket: &UdpSocket, server: SocketAddr, msg: &str) -> Option<(Duration, String)> {
    let start = Instant::now();
    socket.send_to(msg.as_bytes(), server).ok()?;
    // A late answer to an earlier request must not be taken for this one's.
    let cseq = header(msg, "CSeq")?.to_owned();
    let mut buf = [0u8; 8192];
    loop {
        let (n, _) = socket.recv_from(&mut buf).ok()?;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if status(&text) >= 200 && header(&text, "CSeq") == Some(cseq.as_str()) {
            return Some((start.elapsed(), text));
        }
    }
}

/// Round-trip times in ms: OPTIONS and (authenticated) REGISTER, `rate` of each per
/// second for `secs`.
fn probe(server: SocketAddr, account: Account, secs: u64, rate: u64) -> (Vec<f64>, Vec<f64>, u64) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let local = socket.local_addr().unwrap();
    let (mut opts, mut regs, mut lost) = (Vec::new(), Vec::new(), 0);
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let end = Instant::now() + Duration::from_secs(secs);
    let mut next = Instant::now();
    while Instant::now() < end {
        // CSeq numbers keep rising across phases: the binding's Call-ID is the same.
        let n = SEQ.fetch_add(2, Ordering::Relaxed);
        match round_trip(&socket, server, &options(local, n)) {
            Some((t, _)) => opts.push(t.as_secs_f64() * 1000.0),
            None => lost += 1,
        }
        // REGISTER: the challenge round is not timed; the authenticated one is.
        match round_trip(&socket, server, &register(local, &account, n, "")) {
            Some((_, challenge)) if status(&challenge) == 401 => {
                let www = header(&challenge, "WWW-Authenticate").unwrap_or_default();
                let auth = authorization(
                    www,
                    &account.username,
                    &account.password,
                    "REGISTER",
                    "sip:127.0.0.1",
                    1,
                );
                let msg = register(
                    local,
                    &account,
                    n + 1,
                    &format!("Authorization: {auth}\r\n"),
                );
                match round_trip(&socket, server, &msg) {
                    Some((t, ok)) if status(&ok) == 200 => regs.push(t.as_secs_f64() * 1000.0),
                    other => {
                        if lost == 0 {
                            eprintln!("first failed REGISTER: {:?}", other.map(|o| o.1));
                        }
                        lost += 1
                    }
                }
            }
            _ => lost += 1,
        }
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    opts.sort_by(f64::total_cmp);
    regs.sort_by(f64::total_cmp);
    (opts, regs, lost)
}

static SEQ: AtomicU64 = AtomicU64::new(1);

struct Phase {
    options: Vec<f64>,
    register: Vec<f64>,
    lost: u64,
}

fn print_phase(name: &str, p: &Phase) {
    let line = |what: &str, v: &[f64]| {
        println!(
            "  {name:<12} {what:<9} n={:<5} p50 {:>7.3} ms  p99 {:>7.3} ms  max {:>7.3} ms",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        )
    };
    line("OPTIONS", &p.options);
    line("REGISTER", &p.register);
    if p.lost > 0 {
        println!(
            "  {name:<12} {} round trips without an answer in 2 s",
            p.lost
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let secs = if quick { 5 } else { 15 };
    let rate = 100;
    println!(
        "== SIP under API load: OPTIONS and REGISTER+digest, {rate}/s each for {secs} s, idle then with {CLIENTS} GraphQL clients"
    );
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let accounts = create_accounts(&app, 1000, EXTENSIONS).await;
    let server = app.sip_addr();
    let prober = accounts[0].clone();

    // Warm-up, then idle.
    let warm = prober.clone();
    tokio::task::spawn_blocking(move || probe(server, warm, 1, rate))
        .await
        .unwrap();
    let idle_cpu = cpu_ms(app.pid());
    let p = prober.clone();
    let (options, register, lost) =
        tokio::task::spawn_blocking(move || probe(server, p, secs, rate))
            .await
            .unwrap();
    let idle = Phase {
        options,
        register,
        lost,
    };
    let idle_cpu = cpu_ms(app.pid()) - idle_cpu;

    // Load: CLIENTS loops of the heaviest document, while the probe runs again.
    let doc = Arc::new(serde_json::json!({ "query": heaviest_document() }).to_string());
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed, busy_ns) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let client = reqwest::Client::new();
        let (url, key, doc) = (app.url("/graphql"), app.key.clone(), doc.clone());
        let (stop, done, failed, busy_ns) =
            (stop.clone(), done.clone(), failed.clone(), busy_ns.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let resp = client
                    .post(&url)
                    .header("Authorization", format!("Bearer {key}"))
                    .header("Content-Type", "application/json")
                    .body(doc.as_str().to_owned())
                    .send()
                    .await;
                let ok = match resp {
                    Ok(r) if r.status().is_success() => r.text().await.is_ok_and(|body| {
                        body.contains("\"a332\"") && !body.contains("\"errors\"")
                    }),
                    _ => false,
                };
                busy_ns.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (load_cpu, load_start, done_before) = (
        cpu_ms(app.pid()),
        Instant::now(),
        done.load(Ordering::Relaxed),
    );
    let p = prober.clone();
    let (options, register, lost) =
        tokio::task::spawn_blocking(move || probe(server, p, secs, rate))
            .await
            .unwrap();
    let load = Phase {
        options,
        register,
        lost,
    };
    let load_cpu = cpu_ms(app.pid()) - load_cpu;
    let load_secs = load_start.elapsed().as_secs_f64();
    let answered = done.load(Ordering::Relaxed) - done_before;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }

    println!();
    print_phase("idle", &idle);
    print_phase("API load", &load);
    let total = done.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed);
    println!(
        "  GraphQL during the load phase: {:.1} heaviest documents/s answered, {} failed in all, mean {:.0} ms each",
        answered as f64 / load_secs,
        failed.load(Ordering::Relaxed),
        busy_ns.load(Ordering::Relaxed) as f64 / total.max(1) as f64 / 1e6
    );
    println!(
        "  server CPU: idle phase {:.0} % of a core, load phase {:.0} % (2 cores = 200 %)",
        idle_cpu / (secs as f64 * 10.0),
        load_cpu / (load_secs * 10.0)
    );
    let ratio = |load: &[f64], idle: &[f64]| percentile(load, 0.99) / percentile(idle, 0.99);
    println!(
        "  p99 under load / p99 idle: OPTIONS {:.2}×, REGISTER {:.2}× (target ≤ 2×)",
        ratio(&load.options, &idle.options),
        ratio(&load.register, &idle.register)
    );
}
