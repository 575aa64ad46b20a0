//! Media micro-benchmark (prints figures; never asserts on time): 50 conference rooms
//! × 10 G.711 participants over loopback UDP, mixed on one engine thread with one
//! 20 ms timer for all rooms; then the same packet rate through a bare UDP reflector
//! on one thread, in the same run, for the CPU ratio.
//!
//! Run: `cargo bench --bench media -- [--quick] [--seconds N]`.
//! Figures: late/missing frames (the engine's jitter buffers and the phones' count of
//! frames sent back), tick lateness p50/p99, engine CPU µs per participant per frame,
//! reflector CPU µs per packet pair, and the ratio of the two.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use switchboard::media::codec::{Codec, Encoder};
use switchboard::media::mixer::{Mixer, RoomConfig};
use switchboard::media::ports::PortPool;
use switchboard::media::session::{Direction, MediaParams, RtpSession};

const ROOMS: usize = 50;
const PER_ROOM: usize = 10;

/// Nanoseconds this thread has spent on a CPU (Linux schedstat; 0 elsewhere).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The phones: one socket each, a G.711 frame every 20 ms (the first of each room
/// talks, the rest send silence), counting what comes back.
fn phones(targets: Vec<(UdpSocket, SocketAddr)>, stop: Arc<AtomicBool>) -> (u64, u64) {
    let mut encoder = Encoder::new(Codec::Pcmu);
    let tone: Vec<i16> = (0..160)
        .map(|i| (6000.0 * (2.0 * std::f64::consts::PI * 500.0 * i as f64 / 8000.0).sin()) as i16)
        .collect();
    let mut talk = [0u8; 160];
    encoder.encode(&tone, &mut talk);
    let quiet = [0xffu8; 160];
    let mut packet = [0u8; 172];
    let (mut sent, mut received) = (0u64, 0u64);
    let start = Instant::now();
    let mut frame = 0u32;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        for (i, (sock, to)) in targets.iter().enumerate() {
            packet[0] = 0x80;
            packet[1] = 0;
            packet[2..4].copy_from_slice(&(frame as u16).to_be_bytes());
            packet[4..8].copy_from_slice(&(frame * 160).to_be_bytes());
            packet[8..12].copy_from_slice(&(i as u32 + 1).to_be_bytes());
            let payload = if i % PER_ROOM == 0 { &talk } else { &quiet };
            packet[12..].copy_from_slice(payload);
            if sock.send_to(&packet, to).is_ok() {
                sent += 1;
            }
            while sock.recv(&mut buf).is_ok() {
                received += 1;
            }
        }
        frame += 1;
        let next = start + Duration::from_millis(20 * u64::from(frame));
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    for (sock, _) in &targets {
        while sock.recv(&mut buf).is_ok() {
            received += 1;
        }
    }
    (sent, received)
}

fn phone_sockets(n: usize) -> Vec<UdpSocket> {
    (0..n)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").expect("bind a phone");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect()
}

struct EngineRun {
    ticks: u64,
    cpu_ns: u64,
    lateness_ms: Vec<f64>,
    frames: u64,
    missing: u64,
    late: u64,
    sent: u64,
    received: u64,
}

fn engine(seconds: u64) -> EngineRun {
    let phones_socks = phone_sockets(ROOMS * PER_ROOM);
    let addrs: Vec<SocketAddr> = phones_socks
        .iter()
        .map(|s| s.local_addr().expect("addr"))
        .collect();
    let (ports_tx, ports_rx) = std::sync::mpsc::channel::<Vec<SocketAddr>>();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_engine = stop.clone();
    let engine = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let pool = PortPool::new(30000, 39998);
            let mut rooms: Vec<Mixer> = Vec::new();
            let mut ports = Vec::new();
            for r in 0..ROOMS {
                let mut mixer = Mixer::new(RoomConfig {
                    alone_prompt: None,
                    alone_music: None,
                    ..RoomConfig::default()
                });
                for p in 0..PER_ROOM {
                    let lease = pool
                        .lease("127.0.0.1".parse().expect("ip"))
                        .expect("a port");
                    ports.push(SocketAddr::from(([127, 0, 0, 1], lease.port)));
                    let session = RtpSession::new(
                        lease,
                        MediaParams {
                            remote: addrs[r * PER_ROOM + p],
                            codec: Codec::Pcmu,
                            telephone_event: Some(101),
                            direction: Direction::SendRecv,
                        },
                    );
                    mixer.add(p as u64, session, false);
                }
                rooms.push(mixer);
            }
            let _ = ports_tx.send(ports);
            // Let the phones start, then measure.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut ticker = tokio::time::interval(Duration::from_millis(20));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let cpu0 = thread_cpu_ns();
            let mut lateness = Vec::new();
            let mut ticks = 0u64;
            let end = Instant::now() + Duration::from_secs(seconds);
            while Instant::now() < end {
                let scheduled = ticker.tick().await;
                let now = tokio::time::Instant::now();
                lateness.push(now.duration_since(scheduled).as_secs_f64() * 1000.0);
                for room in &mut rooms {
                    room.tick(scheduled);
                }
                ticks += 1;
            }
            let cpu = thread_cpu_ns() - cpu0;
            stop_engine.store(true, Ordering::Relaxed);
            let (mut missing, mut late) = (0, 0);
            for room in &rooms {
                for p in 0..PER_ROOM {
                    if let Some(s) = room.session(p as u64) {
                        missing += s.stats().jitter.missing;
                        late += s.stats().jitter.late;
                    }
                }
            }
            (ticks, cpu, lateness, missing, late)
        })
    });
    let ports = ports_rx.recv().expect("engine ports");
    let targets = phones_socks.into_iter().zip(ports).collect();
    let (sent, received) = phones(targets, stop);
    let (ticks, cpu_ns, lateness_ms, missing, late) = engine.join().expect("engine thread");
    EngineRun {
        ticks,
        cpu_ns,
        lateness_ms,
        frames: ticks * (ROOMS * PER_ROOM) as u64,
        missing,
        late,
        sent,
        received,
    }
}

/// A bare reflector: one thread, every socket echoes what it gets.
fn reflector(seconds: u64) -> (u64, u64) {
    let phones_socks = phone_sockets(ROOMS * PER_ROOM);
    let (ports_tx, ports_rx) = std::sync::mpsc::channel::<Vec<SocketAddr>>();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_reflector = stop.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let mut ports = Vec::new();
            let mut tasks = Vec::new();
            let reflected = Arc::new(std::sync::atomic::AtomicU64::new(0));
            for _ in 0..ROOMS * PER_ROOM {
                let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                ports.push(sock.local_addr().expect("addr"));
                let count = reflected.clone();
                tasks.push(tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                        let _ = sock.send_to(&buf[..n], from).await;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            let _ = ports_tx.send(ports);
            tokio::time::sleep(Duration::from_millis(500)).await;
            let cpu0 = thread_cpu_ns();
            let n0 = reflected.load(Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            let cpu = thread_cpu_ns() - cpu0;
            let n = reflected.load(Ordering::Relaxed) - n0;
            stop_reflector.store(true, Ordering::Relaxed);
            for t in tasks {
                t.abort();
            }
            (cpu, n)
        })
    });
    let ports = ports_rx.recv().expect("reflector ports");
    let targets = phones_socks.into_iter().zip(ports).collect();
    phones(targets, stop);
    thread.join().expect("reflector thread")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut seconds = if args.iter().any(|a| a == "--quick") {
        2
    } else {
        5
    };
    if let Some(i) = args.iter().position(|a| a == "--seconds")
        && let Some(s) = args.get(i + 1).and_then(|s| s.parse().ok())
    {
        seconds = s;
    }
    println!(
        "media bench: {ROOMS} rooms x {PER_ROOM} PCMU participants, {seconds} s, one engine thread"
    );
    let e = engine(seconds);
    let mut lateness = e.lateness_ms.clone();
    lateness.sort_by(|a, b| a.total_cmp(b));
    let frames = e.frames.max(1) as f64;
    let engine_us = e.cpu_ns as f64 / 1000.0 / frames;
    println!("engine: {} ticks, {} participant-frames", e.ticks, e.frames);
    println!(
        "  missing frames (jitter buffer): {:.3} %, late packets: {:.3} %",
        100.0 * e.missing as f64 / frames,
        100.0 * e.late as f64 / frames
    );
    println!(
        "  phones: sent {}, received {} ({:.3} % not returned)",
        e.sent,
        e.received,
        100.0 * (1.0 - e.received as f64 / e.sent.max(1) as f64)
    );
    println!(
        "  tick lateness: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        percentile(&lateness, 0.5),
        percentile(&lateness, 0.99),
        lateness.last().copied().unwrap_or(0.0)
    );
    println!("  CPU: {engine_us:.2} µs per participant per frame (one packet in, one out)");
    let (cpu, packets) = reflector(seconds);
    let reflector_us = cpu as f64 / 1000.0 / packets.max(1) as f64;
    println!("reflector: {packets} packets echoed, {reflector_us:.2} µs per packet (in + out)");
    println!(
        "ratio engine/reflector per packet pair: {:.2} (target ≤ 2)",
        engine_us / reflector_us.max(f64::MIN_POSITIVE)
    );
}
