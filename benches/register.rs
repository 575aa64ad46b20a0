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
mod common;
mod support;

use common::sip::{RawSip, free_port, header, status};
use common::ws::GqlWs;
use common::{Backend, TestApp};
use serde_json::json;
use std::collections::HashMap;
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

/// Who watches what in a latency run.
#[derive(Clone, Copy, PartialEq)]
enum Watch {
    /// Every subscriber watches every sample extension: each event fans out to all.
    All,
    /// Subscriber `k` watches extension `k` alone: each event reaches one subscriber
    /// while every other one stays subscribed.
    Own,
}

/// REGISTER → presenceChanged latency with `clients` websocket subscribers.
async fn presence_latency(clients: usize, samples: usize, watch: Watch) -> Latency {
    let label = match watch {
        Watch::All => "each watching every sample extension",
        Watch::Own => "each watching its own extension",
    };
    println!(
        "\n== REGISTER → presenceChanged, {clients} websocket subscribers ({label}), {samples} registrations"
    );
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let extensions = if watch == Watch::Own {
        clients.max(samples)
    } else {
        samples
    };
    let accounts = create_accounts(&app, 5000, extensions).await;
    let query = "subscription($n: [String!]) { presenceChanged(numbers: $n) { extension { number } status } }";
    let mut sockets = Vec::with_capacity(clients);
    let mut watching = Vec::with_capacity(clients);
    for k in 0..clients {
        let numbers: Vec<String> = match watch {
            Watch::All => accounts[..samples]
                .iter()
                .map(|a| a.number.clone())
                .collect(),
            Watch::Own => vec![accounts[k].number.clone()],
        };
        let mut ws =
            GqlWs::connect(&app.base, "graphql-transport-ws", json!({"token": app.key})).await;
        ws.subscribe("p", query, json!({"n": numbers})).await;
        for _ in 0..numbers.len() {
            ws.next_data("p", Duration::from_secs(30)).await;
        }
        sockets.push(ws.into_tcp());
        watching.push(numbers);
    }
    println!("  {clients} subscribers ready");
    let raw = RawSip::bind("127.0.0.1", app.sip_addr()).await;
    let accounts = &accounts[..samples];
    let numbers: Vec<String> = accounts.iter().map(|a| a.number.clone()).collect();
    let server = (app.pid(), "server (REGISTERs included)");
    let answered = std::cell::RefCell::new(Vec::with_capacity(samples));
    let run = measure_fanout(server, sockets, &watching, &numbers, async |i| {
        let a = &accounts[i];
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
        answered
            .borrow_mut()
            .push(sent.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(status(&resp), 200, "{resp}");
        sent
    })
    .await;
    let mut answered = answered.into_inner();
    answered.sort_by(|a, b| a.total_cmp(b));
    println!(
        "  of which REGISTER → 200 OK at the phone: p50 {:.2} ms, p99 {:.2} ms",
        percentile(&answered, 0.5),
        percentile(&answered, 0.99)
    );
    run
}

/// The same fan-out without Switchboard: a bare tokio program (this benchmark, run again
/// as a child process) that writes the very frame Switchboard sends to `clients` TCP
/// sockets, one task per socket, as soon as it is told a number. No SIP, no store, no
/// GraphQL, no websocket library: the floor this machine puts under any server.
async fn fanout_reference(clients: usize, samples: usize) -> Latency {
    println!(
        "\n== reference: bare tokio fan-out of the same frame to {clients} TCP sockets, {samples} events"
    );
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(REFERENCE_ENV, clients.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let addr: std::net::SocketAddr = line.trim().parse().unwrap();
    let mut control = tokio::net::TcpStream::connect(addr).await.unwrap();
    control.set_nodelay(true).unwrap();
    let mut sockets = Vec::with_capacity(clients);
    for _ in 0..clients {
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        sockets.push(s);
    }
    // The reference answers once every socket is accepted.
    let mut ready = [0u8; 1];
    tokio::io::AsyncReadExt::read_exact(&mut control, &mut ready)
        .await
        .unwrap();
    let numbers: Vec<String> = (0..samples).map(|i| (9000 + i).to_string()).collect();
    let watching = vec![numbers.clone(); clients];
    let control = tokio::sync::Mutex::new(control);
    let run = measure_fanout(
        (child.id(), "reference"),
        sockets,
        &watching,
        &numbers,
        async |i| {
            let sent = Instant::now();
            let line = format!("{}\n", numbers[i]);
            tokio::io::AsyncWriteExt::write_all(&mut *control.lock().await, line.as_bytes())
                .await
                .unwrap();
            sent
        },
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();
    run
}

const REFERENCE_ENV: &str = "SWITCHBOARD_BENCH_FANOUT_REFERENCE";

/// The child side of [`fanout_reference`]: a 2-worker tokio runtime (what Switchboard
/// runs on here) that accepts a control socket and then `clients` subscriber sockets.
fn reference_server(clients: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        let (control, _) = listener.accept().await.unwrap();
        let (events, _) = tokio::sync::broadcast::channel::<std::sync::Arc<Vec<u8>>>(64);
        for _ in 0..clients {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.set_nodelay(true).unwrap();
            let mut rx = events.subscribe();
            tokio::spawn(async move {
                while let Ok(frame) = rx.recv().await {
                    if socket.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            });
        }
        let (read, mut write) = control.into_split();
        write.write_all(b"R").await.unwrap();
        let mut lines = tokio::io::BufReader::new(read).lines();
        while let Ok(Some(number)) = lines.next_line().await {
            let text = format!(
                r#"{{"id":"p","type":"next","payload":{{"data":{{"presenceChanged":{{"extension":{{"number":"{number}"}},"status":"AVAILABLE"}}}}}}}}"#
            );
            let _ = events.send(std::sync::Arc::new(server_text_frame(text.as_bytes())));
        }
    });
}

/// An unmasked websocket text frame, as a server sends it.
fn server_text_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x81];
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n <= 0xffff => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

/// Latencies of one run, in milliseconds, sorted.
struct Latency {
    latencies: Vec<f64>,
}

impl Latency {
    fn p(&self, q: f64) -> f64 {
        percentile(&self.latencies, q)
    }

    fn print(&self) {
        println!(
            "  deliveries {}  min {:.2} ms  p10 {:.2} ms  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            self.latencies.len(),
            self.p(0.0),
            self.p(0.1),
            self.p(0.5),
            self.p(0.99),
            self.p(1.0),
        );
    }
}

/// Triggers event `i` for every sample (`trigger` returns when it was sent), waits until
/// every subscriber watching that number has it, and prints the latencies and the CPU
/// per delivery of `server` (pid, label) and of the clients. Subscribers are read by a
/// lean frame parser (one task each, no JSON parse, no channel), so the figures measure
/// the server rather than the benchmark's own websocket client.
async fn measure_fanout(
    (server_pid, server_label): (u32, &str),
    sockets: Vec<tokio::net::TcpStream>,
    watching: &[Vec<String>],
    numbers: &[String],
    mut trigger: impl AsyncFnMut(usize) -> Instant,
) -> Latency {
    use std::sync::{Arc, Mutex};
    let index: Arc<HashMap<String, usize>> = Arc::new(
        numbers
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect(),
    );
    let arrivals: Arc<Vec<Mutex<Vec<Instant>>>> =
        Arc::new((0..numbers.len()).map(|_| Mutex::new(Vec::new())).collect());
    let expected: Vec<usize> = numbers
        .iter()
        .map(|n| watching.iter().filter(|w| w.contains(n)).count())
        .collect();
    let wake = Arc::new(tokio::sync::Notify::new());
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|socket| {
            let (index, arrivals, wake) = (index.clone(), arrivals.clone(), wake.clone());
            tokio::spawn(read_frames(socket, move |text| {
                let at = Instant::now();
                let Some(number) = json_string_after(text, b"\"number\":\"") else {
                    return;
                };
                if json_string_after(text, b"\"status\":\"") != Some("AVAILABLE") {
                    return;
                }
                if let Some(&i) = index.get(number) {
                    arrivals[i].lock().unwrap().push(at);
                    wake.notify_one();
                }
            }))
        })
        .collect();
    let (server_cpu, bench_cpu) = (cpu_ms(server_pid), cpu_ms(std::process::id()));
    let mut latencies = Vec::new();
    for i in 0..numbers.len() {
        let sent = trigger(i).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while arrivals[i].lock().unwrap().len() < expected[i] && Instant::now() < deadline {
            let _ = tokio::time::timeout(Duration::from_millis(50), wake.notified()).await;
        }
        let got = std::mem::take(&mut *arrivals[i].lock().unwrap());
        if got.len() < expected[i] {
            println!(
                "  event {i}: only {} of {} deliveries within 10 s",
                got.len(),
                expected[i]
            );
        }
        latencies.extend(
            got.iter()
                .map(|at| at.duration_since(sent).as_secs_f64() * 1000.0),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deliveries = latencies.len().max(1) as f64;
    let server_us = (cpu_ms(server_pid) - server_cpu) * 1000.0 / deliveries;
    let client_us = (cpu_ms(std::process::id()) - bench_cpu) * 1000.0 / deliveries;
    for t in tasks {
        t.abort();
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let run = Latency { latencies };
    run.print();
    println!("  CPU per delivery: {server_label} {server_us:.1} µs, clients {client_us:.1} µs");
    run
}

/// Reads server websocket frames (unmasked) off `socket` and hands each text payload to
/// `on_text`; ends when the socket does.
async fn read_frames(mut socket: tokio::net::TcpStream, mut on_text: impl FnMut(&[u8])) {
    use tokio::io::AsyncReadExt;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // Whole frames first.
        let mut used = 0;
        while let Some((opcode, start, end)) = frame_at(&buf[used..]) {
            if opcode == 1 {
                on_text(&buf[used + start..used + end]);
            }
            used += end;
        }
        buf.drain(..used);
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        match socket.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The opcode and payload range of the complete frame at the start of `b`, if any.
fn frame_at(b: &[u8]) -> Option<(u8, usize, usize)> {
    let (&first, &second) = (b.first()?, b.get(1)?);
    let (len, header) = match second & 0x7f {
        126 => (u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize, 4),
        127 => (
            u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    (b.len() >= header + len).then_some((first & 0x0f, header, header + len))
}

/// The JSON string value right after `key` (no escapes expected: numbers and enums).
fn json_string_after<'a>(text: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let at = text.windows(key.len()).position(|w| w == key)? + key.len();
    let len = text[at..].iter().position(|&c| c == b'"')?;
    std::str::from_utf8(&text[at..at + len]).ok()
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
    if let Some(clients) = std::env::var(REFERENCE_ENV)
        .ok()
        .and_then(|n| n.parse().ok())
    {
        return reference_server(clients);
    }
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
        let latency = if has("--skip-latency") {
            None
        } else {
            let (clients, samples) = if quick { (200, 10) } else { (1000, 50) };
            // One subscriber first: the event path alone, as a reference for the fan-out.
            let single = presence_latency(1, 50, Watch::All).await;
            let all = presence_latency(clients, samples, Watch::All).await;
            // One delivery per event here, so more events for a meaningful p99.
            let own = presence_latency(clients, samples * 4, Watch::Own).await;
            let floor = fanout_reference(clients, samples).await;
            Some((single, all, own, floor))
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
        if let Some((single, all, own, floor)) = latency {
            let line = |what: &str, l: &Latency| {
                println!(
                    "  {what}: p50 {:.2} ms, p99 {:.2} ms over {} deliveries",
                    l.p(0.5),
                    l.p(0.99),
                    l.latencies.len()
                )
            };
            line("presenceChanged, 1 subscriber", &single);
            line("presenceChanged, all subscribers watch the extension", &all);
            line("presenceChanged, each subscriber watches its own", &own);
            line("reference bare tokio fan-out (same frame, same sockets)", &floor);
            println!(
                "  fan-out to all vs the bare reference: p50 {:.2}×, p99 {:.2}×",
                all.p(0.5) / floor.p(0.5),
                all.p(0.99) / floor.p(0.99)
            );
        }
        println!("  memory per binding: {per_binding:.0} bytes at {live} live bindings");
        let _ = std::fs::remove_dir_all(&work);
    });
}
