//! REGISTER benchmark (prints figures; never asserts on time).
//!
//! 1. SIPp REGISTER+digest over UDP at rising rates over 1,000 extensions: the highest
//!    rate with no failed call, no retransmission and the offered rate actually reached,
//!    with p50/p99 response times — against Switchboard and, when Kamailio is installed,
//!    the reference Kamailio in ../shared/reference/kamailio, same users, same run.
//! 2. REGISTER → `presenceChanged` latency with 1,000 GraphQL websocket subscribers.
//! 3. Memory per binding: RSS growth for 100,000 live bindings (registered over TCP, so
//!    no UDP transaction state is counted).
//!
//! Run: `scripts/bench/register` (or `cargo bench --bench register -- [--quick]`).

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports, unused_macros)]
mod common;
#[allow(dead_code)]
mod support;

use common::sip::{RawSip, free_port, header, status};
use common::ws::{GqlWs, Incoming};
use common::{Backend, TestApp};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{
    STAGE_SECS, Target, best, cpu_ms, create_accounts, csv, fineclock, kamailio_dir, num,
    percentile, rising, row, rss_kib, rss_split_kib, sipp,
};

const EXTENSIONS: usize = 1000;

async fn throughput(
    work: &Path,
    quick: bool,
    skip_kamailio: bool,
    shim: Option<&Path>,
) -> (Option<(usize, f64)>, Option<(usize, f64)>) {
    println!("\n== REGISTER + digest over UDP, {EXTENSIONS} extensions, {STAGE_SECS} s per stage");
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let accounts = create_accounts(&app, 1000, EXTENSIONS).await;
    let ours = work.join("users-switchboard.csv");
    csv(
        &ours,
        accounts
            .iter()
            .map(|a| row(a, &a.number, 3600, &format!("{}-b", a.number))),
    );
    let rates: Vec<usize> = if quick {
        vec![5000, 10000, 15000, 20000]
    } else {
        vec![
            4000, 8000, 12000, 14000, 16000, 17000, 18000, 19000, 20000, 21000, 22000, 24000, 26000,
        ]
    };
    // Warm-up: every extension gets its binding; later stages refresh them.
    let target = Target {
        addr: app.sip_addr().to_string(),
        users: &ours,
        local_port: free_port(),
        scenario: "register_rtd.xml",
        auth_uri: "127.0.0.1",
    };
    let _ = sipp(work, &target, 2000, EXTENSIONS, "u1", shim);
    let sb = rising(work, "switchboard", &target, &rates, shim);
    drop(app);

    let mut kam = Vec::new();
    let start = kamailio_dir().join("start.sh");
    if skip_kamailio {
        println!("  (kamailio skipped)");
    } else if Command::new("sh")
        .args(["-c", "command -v kamailio"])
        .output()
        .is_ok_and(|o| o.status.success())
        && start.exists()
    {
        let kam_users = work.join("users-kamailio-plain.csv");
        std::fs::write(
            &kam_users,
            accounts
                .iter()
                .map(|a| format!("{};{}\n", a.username, a.password))
                .collect::<String>(),
        )
        .unwrap();
        let theirs = work.join("users-kamailio.csv");
        csv(
            &theirs,
            accounts
                .iter()
                .map(|a| row(a, &a.username, 3600, &format!("{}-b", a.username))),
        );
        let port = free_port();
        let kw = work.join("kamailio");
        let envs = [
            ("KAM_USERS_CSV", kam_users.to_string_lossy().to_string()),
            ("KAM_PORT", port.to_string()),
            ("KAM_WORKDIR", kw.to_string_lossy().to_string()),
        ];
        let started = Command::new(&start)
            .envs(envs.clone())
            .status()
            .is_ok_and(|s| s.success());
        if started {
            let target = Target {
                addr: format!("127.0.0.1:{port}"),
                users: &theirs,
                local_port: free_port(),
                scenario: "register_rtd.xml",
                auth_uri: "127.0.0.1",
            };
            let _ = sipp(work, &target, 2000, EXTENSIONS, "u1", shim);
            kam = rising(work, "kamailio", &target, &rates, shim);
            let _ = Command::new(kamailio_dir().join("stop.sh"))
                .envs(envs)
                .status();
        } else {
            println!("  kamailio did not start; no comparison");
        }
    } else {
        println!("  kamailio not installed (apt-get install kamailio); no comparison");
    }
    (
        best(&sb).map(|s| (s.rate, s.p99_ms)),
        best(&kam).map(|s| (s.rate, s.p99_ms)),
    )
}

/// REGISTER → presenceChanged latency with `clients` websocket subscribers watching the
/// sample extensions (each event fans out to every client).
async fn presence_latency(clients: usize, samples: usize) -> (f64, f64, usize) {
    println!(
        "\n== REGISTER → presenceChanged, {clients} websocket subscribers, {samples} registrations"
    );
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let accounts = create_accounts(&app, 5000, samples).await;
    let numbers: Vec<String> = accounts.iter().map(|a| a.number.clone()).collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String, Instant)>();
    let query = "subscription($n: [String!]) { presenceChanged(numbers: $n) { extension { number } status } }";
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut ws =
            GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
        ws.subscribe("p", query, json!({"n": numbers})).await;
        for _ in 0..samples {
            ws.next_data("p", Duration::from_secs(30)).await;
        }
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match ws.next(Duration::from_secs(3600)).await {
                    Incoming::Json(v) if v["type"] == "next" => {
                        let p = &v["payload"]["data"]["presenceChanged"];
                        let n = p["extension"]["number"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned();
                        let s = p["status"].as_str().unwrap_or_default().to_owned();
                        if tx.send((n, s, Instant::now())).is_err() {
                            return;
                        }
                    }
                    Incoming::Json(_) => {}
                    Incoming::Closed(_) => return,
                }
            }
        }));
    }
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let mut latencies = Vec::with_capacity(clients * samples);
    let (server_cpu, bench_cpu) = (cpu_ms(app.pid()), cpu_ms(std::process::id()));
    for (i, a) in accounts.iter().enumerate() {
        let contact = format!("<sip:{}@{}>", a.number, raw.local());
        let first = raw
            .transact(&raw.register(&a.number, &format!("lat-{i}"), &contact, ""))
            .await;
        let challenge = header(&first, "WWW-Authenticate").unwrap().to_owned();
        let auth = common::sip::authorization(
            &challenge,
            &a.username,
            &a.password,
            "REGISTER",
            "sip:127.0.0.1",
            1,
        );
        let request = raw.register(
            &a.number,
            &format!("lat-{i}"),
            &contact,
            &format!("Authorization: {auth}\r\n"),
        );
        let sent = Instant::now();
        let resp = raw.transact(&request).await;
        assert_eq!(status(&resp), 200, "{resp}");
        let mut got = 0;
        while got < clients {
            let Ok(Some((n, s, at))) =
                tokio::time::timeout(Duration::from_secs(10), rx.recv()).await
            else {
                break;
            };
            if n == a.number && s == "AVAILABLE" {
                latencies.push(at.duration_since(sent).as_secs_f64() * 1000.0);
                got += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deliveries = latencies.len().max(1) as f64;
    let server_us = (cpu_ms(app.pid()) - server_cpu) * 1000.0 / deliveries;
    let client_us = (cpu_ms(std::process::id()) - bench_cpu) * 1000.0 / deliveries;
    for t in tasks {
        t.abort();
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!(
        "  deliveries {}  min {:.2} ms  p10 {:.2} ms  p50 {p50:.2} ms  p99 {p99:.2} ms  max {:.2} ms",
        latencies.len(),
        latencies.first().copied().unwrap_or(f64::NAN),
        percentile(&latencies, 0.1),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "  CPU per delivery: server {server_us:.1} µs, clients {client_us:.1} µs (REGISTERs included)"
    );
    (p50, p99, latencies.len())
}

/// RSS growth per live binding, 100,000 bindings over TCP.
async fn memory_per_binding(
    work: &Path,
    extensions: usize,
    per_extension: usize,
    shim: Option<&Path>,
) -> (f64, usize) {
    let total = extensions * per_extension;
    println!(
        "\n== memory: {total} bindings ({extensions} extensions × {per_extension}), registered over TCP"
    );
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &["--max-bindings", &per_extension.to_string()],
    )
    .await;
    let accounts = create_accounts(&app, 10000, extensions).await;
    let users = work.join("users-memory.csv");
    csv(
        &users,
        accounts.iter().flat_map(|a| {
            (0..per_extension).map(move |i| row(a, &a.number, 3600, &format!("{}-{i}", a.number)))
        }),
    );
    let pid = app.pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_kib(pid);
    let before_split = rss_split_kib(pid);
    let target = Target {
        addr: app.sip_addr().to_string(),
        users: &users,
        local_port: free_port(),
        scenario: "register_rtd.xml",
        auth_uri: "127.0.0.1",
    };
    let (stats, _) = sipp(work, &target, 5000, total, "t1", shim);
    let ok = num(&stats, "SuccessfulCall(C)") as usize;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib(pid);
    let (_, body) = app.get("/v1/pbx/phones/stats").await;
    let live = body["stats"]["registered"].as_u64().unwrap_or(0) as usize;
    let per = (after.saturating_sub(before) as f64 * 1024.0) / live.max(1) as f64;
    println!(
        "  registered {ok}/{total} (live {live})  RSS {before} KiB → {after} KiB  = {per:.0} bytes per binding"
    );
    // Transactions, write batches and the allocator's spare pages settle within ~40 s.
    tokio::time::sleep(Duration::from_secs(40)).await;
    let settled = rss_kib(pid);
    let per_settled = (settled.saturating_sub(before) as f64 * 1024.0) / live.max(1) as f64;
    let (anon, file, shmem) = rss_split_kib(pid);
    println!(
        "  after 40 s: RSS {settled} KiB = {per_settled:.0} bytes per binding (anon {anon} KiB, file {file} KiB, shmem {shmem} KiB; before: {before_split:?})"
    );
    (per_settled, live)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |f: &str| args.iter().any(|a| a == f);
    let quick = has("--quick");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let work = std::env::temp_dir().join(format!("switchboard-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work).unwrap();
        let shim = fineclock(&work);
        let (sb, kam) = if has("--skip-throughput") {
            (None, None)
        } else {
            throughput(&work, quick, has("--skip-kamailio"), shim.as_deref()).await
        };
        let mut single = None;
        let (p50, p99, deliveries) = if has("--skip-latency") {
            (f64::NAN, f64::NAN, 0)
        } else {
            // One subscriber first: the event path alone, as a reference for the fan-out.
            let (one_p50, one_p99, _) = presence_latency(1, 50).await;
            single = Some((one_p50, one_p99));
            presence_latency(if quick { 200 } else { 1000 }, if quick { 10 } else { 50 }).await
        };
        let (per_binding, live) = if has("--skip-memory") {
            (f64::NAN, 0)
        } else if quick {
            memory_per_binding(&work, 1000, 10, shim.as_deref()).await
        } else {
            memory_per_binding(&work, 10_000, 10, shim.as_deref()).await
        };
        println!("\n== summary (targets: ≥ 1.2× Kamailio's clean rate, p99 ≤ 10 ms; event p99 ≤ 5 ms; ≤ 2048 B per binding)");
        match sb {
            Some((rate, p99)) => println!("  switchboard REGISTER+digest: {rate}/s clean, p99 {p99:.2} ms"),
            None => println!("  switchboard REGISTER+digest: no clean stage"),
        }
        match (sb, kam) {
            (Some((ours, _)), Some((theirs, kp99))) => {
                println!("  kamailio    REGISTER+digest: {theirs}/s clean, p99 {kp99:.2} ms");
                println!("  ratio switchboard / kamailio: {:.2}×", ours as f64 / theirs as f64);
            }
            _ => println!("  kamailio    REGISTER+digest: not measured in this run"),
        }
        if let Some((one_p50, one_p99)) = single {
            println!("  presenceChanged latency, 1 subscriber: p50 {one_p50:.2} ms, p99 {one_p99:.2} ms");
        }
        println!("  presenceChanged latency: p50 {p50:.2} ms, p99 {p99:.2} ms over {deliveries} deliveries");
        println!("  memory per binding: {per_binding:.0} bytes at {live} live bindings");
        let _ = std::fs::remove_dir_all(&work);
    });
}
