//! Conference mixing under load (prints figures; never asserts on time).
//!
//! Rooms of 10 G.711 participants are called in over SIP and fed by RTP generators on
//! loopback: each participant sends a 20 ms packet every 20 ms, two per room talking
//! (a tone) and the rest sending low background noise, as phones without silence
//! suppression do. Rooms are added a step at a time; at each step the output the
//! server sends back is measured over a window, with kernel receive timestamps
//! (`SO_TIMESTAMPNS`, so the generator's own scheduling does not count):
//!
//! - missing: output frames not received (each participant is owed one per 20 ms);
//! - late: frames that arrive more than one frame (20 ms) behind their stream's
//!   schedule (the stream's earliest frame sets it);
//! - tick jitter: how far behind schedule frames arrive, p99 over all frames;
//! - CPU: the server's user + system time per participant per frame.
//!
//! The largest load with < 0.1 % late or missing and tick jitter p99 < 5 ms is the
//! capacity. In the same run a bare UDP reflector (this program with `--reflector`: one
//! thread that, every 20 ms, sends each socket's packets back to their sender) carries
//! the same sockets and packet rate; its CPU per participant per frame is the floor,
//! and the ratio against it is what mixing, codecs and signalling cost on top.
//!
//! Run: `scripts/bench/conference [--quick] [--talkers N] [--max-rooms N]`.

#[path = "../tests/common/mod.rs"]
mod common;
#[expect(dead_code, reason = "shared by the benchmarks; each uses a part")]
mod support;

use common::rtp::{RtpPhone, rtp_packet};
use common::sip::Account;
use common::{Backend, TestApp};
use serde_json::json;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{cpu_ms, percentile};
use switchboard::media::codec::{Codec, Encoder};

const ROOM_SIZE: usize = 10;
const FRAME: Duration = Duration::from_millis(20);
/// Frames of audio each generator cycles through (one second).
const LOOP_FRAMES: usize = 50;
/// Late or missing output frames allowed at a passing step.
const MAX_BAD_SHARE: f64 = 0.001;
/// Tick jitter p99 allowed at a passing step (ms).
const MAX_JITTER_P99_MS: f64 = 5.0;

/// One RTP leg the generator drives: its socket, where it sends, what it sends.
struct Leg {
    socket: UdpSocket,
    to: SocketAddr,
    talking: bool,
    ssrc: u32,
    seq: u16,
    /// Output received in the current window: (RTP timestamp, kernel arrival in ns).
    heard: Vec<(u32, i128)>,
}

/// What a window measured, summed over every leg.
#[derive(Default)]
struct Window {
    owed: u64,
    received: u64,
    late: u64,
    /// Lateness behind schedule of every received frame (ms).
    behind_ms: Vec<f64>,
    /// How late the generator itself sent, p99 (ms): a loaded generator feeds the
    /// server late, which would be blamed on the server otherwise.
    send_lag_p99_ms: f64,
}

impl Window {
    fn missing(&self) -> u64 {
        self.owed.saturating_sub(self.received)
    }

    fn bad_share(&self) -> f64 {
        (self.missing() + self.late) as f64 / self.owed.max(1) as f64
    }

    fn jitter_p99_ms(&self) -> f64 {
        let mut v = self.behind_ms.clone();
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.99)
    }

    fn passes(&self) -> bool {
        self.bad_share() < MAX_BAD_SHARE && self.jitter_p99_ms() < MAX_JITTER_P99_MS
    }
}

enum Command {
    Add(Vec<Leg>),
    Measure(Duration, mpsc::Sender<Window>),
    Clear,
}

/// Lets the kernel stamp each datagram's arrival time.
fn enable_timestamps(socket: &UdpSocket) {
    let one: libc::c_int = 1;
    // SAFETY: a valid socket, an int option of the documented size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_TIMESTAMPNS: {}", std::io::Error::last_os_error());
}

/// One datagram, if any is waiting, with its kernel arrival time (ns, CLOCK_REALTIME).
fn recv_stamped(socket: &UdpSocket, buf: &mut [u8]) -> Option<(usize, i128)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in msg points into live buffers of the stated sizes.
    let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return None;
    }
    let mut stamp = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled in.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                stamp = Some(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Some((n as usize, stamp?))
}

/// The generator's payloads: a tone for talkers, faint noise for the others, one
/// second of each, PCMU.
fn payloads() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut encoder = Encoder::new(Codec::Pcmu);
    let mut noise_state: u32 = 0x1234_5678;
    let mut make = |talk: bool| -> Vec<Vec<u8>> {
        (0..LOOP_FRAMES)
            .map(|f| {
                let pcm: Vec<i16> = (0..160)
                    .map(|i| {
                        noise_state ^= noise_state << 13;
                        noise_state ^= noise_state >> 17;
                        noise_state ^= noise_state << 5;
                        let noise = (noise_state % 161) as i16 - 80;
                        if talk {
                            let t = (f * 160 + i) as f64 / 8000.0;
                            (8000.0 * (2.0 * std::f64::consts::PI * 450.0 * t).sin()) as i16 + noise
                        } else {
                            noise
                        }
                    })
                    .collect();
                let mut out = vec![0u8; 160];
                let n = encoder.encode(&pcm, &mut out);
                out.truncate(n);
                out
            })
            .collect()
    };
    (make(true), make(false))
}

/// The generator: one thread that sends every leg's packet each 20 ms and reads what
/// came back. Runs until the command sender is dropped.
fn generator(commands: mpsc::Receiver<Command>) {
    let (talk, quiet) = payloads();
    let mut legs: Vec<Leg> = Vec::new();
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    let mut tick: u64 = 0;
    let mut measuring: Option<(u64, mpsc::Sender<Window>, Vec<f64>)> = None;
    loop {
        loop {
            match commands.try_recv() {
                Ok(Command::Add(new)) => legs.extend(new),
                Ok(Command::Measure(d, reply)) => {
                    for leg in &mut legs {
                        leg.heard.clear();
                    }
                    measuring = Some((tick + (d.as_millis() / 20) as u64, reply, Vec::new()));
                }
                Ok(Command::Clear) => legs.clear(),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        let due = start + FRAME * tick as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let lag = Instant::now().duration_since(due);
        let frame = tick as usize % LOOP_FRAMES;
        for leg in &mut legs {
            let payload = if leg.talking {
                &talk[frame]
            } else {
                &quiet[frame]
            };
            let packet = rtp_packet(0, leg.ssrc, leg.seq, (tick as u32) * 160, payload);
            leg.seq = leg.seq.wrapping_add(1);
            let _ = leg.socket.send_to(&packet, leg.to);
        }
        for leg in &mut legs {
            while let Some((n, at)) = recv_stamped(&leg.socket, &mut buf) {
                if n > 12 && buf[1] & 0x7f == 0 && measuring.is_some() {
                    let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
                    leg.heard.push((ts, at));
                }
            }
        }
        if let Some((end, _, lags)) = measuring.as_mut() {
            lags.push(lag.as_secs_f64() * 1000.0);
            if tick >= *end {
                let (_, reply, mut lags) = measuring.take().unwrap();
                lags.sort_by(f64::total_cmp);
                let mut w = summarise(&mut legs, lags.len() as u64);
                w.send_lag_p99_ms = percentile(&lags, 0.99);
                let _ = reply.send(w);
            }
        }
        tick += 1;
    }
}

/// Late, missing and lateness over the window that just ended (`frames` ticks long).
fn summarise(legs: &mut [Leg], frames: u64) -> Window {
    let mut w = Window::default();
    for leg in legs.iter_mut() {
        w.owed += frames;
        let mut heard = std::mem::take(&mut leg.heard);
        heard.sort_by_key(|(ts, _)| *ts);
        heard.dedup_by_key(|(ts, _)| *ts);
        // Over a window a few frames more than `frames` may arrive (a burst catching
        // up); those are not owed, so they cannot hide missing ones elsewhere.
        w.received += (heard.len() as u64).min(frames);
        let Some(&(ts0, _)) = heard.first() else {
            continue;
        };
        // Where each frame stands against its slot (ns), from the stream's timestamps.
        let offsets: Vec<i128> = heard
            .iter()
            .map(|&(ts, at)| at - i128::from(ts.wrapping_sub(ts0) / 160) * 20_000_000)
            .collect();
        let base = offsets.iter().copied().min().unwrap_or(0);
        for off in offsets {
            let behind = (off - base) as f64 / 1e6;
            if behind > 20.0 {
                w.late += 1;
            }
            w.behind_ms.push(behind);
        }
    }
    w
}

/// A bare UDP reflector for `count` sockets: prints their ports on one line, then
/// every 20 ms sends whatever each socket received back to its sender.
fn reflector(count: usize) {
    let sockets: Vec<UdpSocket> = (0..count)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    let ports: Vec<String> = sockets
        .iter()
        .map(|s| s.local_addr().unwrap().port().to_string())
        .collect();
    println!("{}", ports.join(" "));
    let mut buf = [0u8; 2048];
    let start = Instant::now();
    for tick in 1u32.. {
        for s in &sockets {
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(&buf[..n], from);
            }
        }
        if let Some(wait) = (start + FRAME * tick).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

fn leg(to: SocketAddr, socket: UdpSocket, talking: bool) -> Leg {
    socket.set_nonblocking(true).unwrap();
    enable_timestamps(&socket);
    let ssrc = 0x5b00_0000 | u32::from(socket.local_addr().unwrap().port());
    Leg {
        socket,
        to,
        talking,
        ssrc,
        seq: 0,
        heard: Vec::with_capacity(512),
    }
}

struct Options {
    quick: bool,
    talkers: usize,
    max_rooms: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    Options {
        quick: args.iter().any(|a| a == "--quick"),
        talkers: value("--talkers").unwrap_or(2).min(ROOM_SIZE),
        max_rooms: value("--max-rooms").unwrap_or(100),
    }
}

struct Step {
    participants: usize,
    window: Window,
    cpu_us_per_frame: f64,
}

fn print_step(label: &str, s: &Step) {
    let w = &s.window;
    if label == "reflector" {
        // Its per-tick drain holds an echo up to a frame by design: only CPU counts.
        println!(
            "{label:<10} {:>5} {:>8.3} {:>8} {:>9} {:>8.2} {:>10.2}",
            s.participants,
            100.0 * w.missing() as f64 / w.owed.max(1) as f64,
            "-",
            "-",
            w.send_lag_p99_ms,
            s.cpu_us_per_frame,
        );
        return;
    }
    println!(
        "{label:<10} {:>5} {:>8.3} {:>8.3} {:>9.2} {:>8.2} {:>10.2}",
        s.participants,
        100.0 * w.missing() as f64 / w.owed.max(1) as f64,
        100.0 * w.late as f64 / w.owed.max(1) as f64,
        w.jitter_p99_ms(),
        w.send_lag_p99_ms,
        s.cpu_us_per_frame,
    );
}

/// Measures one window: the output as the generator saw it and `pid`'s CPU.
fn measure(tx: &mpsc::Sender<Command>, pid: u32, participants: usize, window: Duration) -> Step {
    let (reply, result) = mpsc::channel();
    let cpu0 = cpu_ms(pid);
    tx.send(Command::Measure(window, reply)).unwrap();
    let w = result.recv().unwrap();
    let cpu = cpu_ms(pid) - cpu0;
    let frames = (window.as_millis() / 20) as f64;
    Step {
        participants,
        cpu_us_per_frame: cpu * 1000.0 / (participants as f64 * frames),
        window: w,
    }
}

/// The reflector at `participants`, driven by the same generator.
fn reflect(
    tx: &mpsc::Sender<Command>,
    participants: usize,
    talkers: usize,
    window: Duration,
) -> Step {
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--reflector", &participants.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let legs: Vec<Leg> = line
        .split_whitespace()
        .enumerate()
        .map(|(i, port)| {
            let to = SocketAddr::from(([127, 0, 0, 1], port.parse::<u16>().unwrap()));
            leg(
                to,
                UdpSocket::bind("127.0.0.1:0").unwrap(),
                i % ROOM_SIZE < talkers,
            )
        })
        .collect();
    tx.send(Command::Clear).unwrap();
    tx.send(Command::Add(legs)).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let step = measure(tx, child.id(), participants, window);
    tx.send(Command::Clear).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    step
}

/// Calls one room full: `ROOM_SIZE` participants, each a SIP call with its own RTP
/// socket; returns the legs for the generator (the SIP sides stay open in `keep`).
async fn fill_room(
    app: &TestApp,
    callers: &[Account],
    room: &str,
    talkers: usize,
    keep: &mut Vec<common::sip_raw::RawSip>,
) -> Vec<Leg> {
    let ids: Vec<String> = (0..callers.len())
        .map(|i| format!("bench-{room}-{i}"))
        .collect();
    let calls = callers
        .iter()
        .zip(&ids)
        .map(|(account, id)| RtpPhone::call(app, account, room, id, Codec::Pcmu));
    let mut legs = Vec::new();
    for (i, phone) in futures_util::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        let phone = phone.unwrap_or_else(|resp| panic!("room {room} refused a caller: {resp}"));
        let to = phone.server_rtp;
        keep.push(phone.sip);
        let socket = phone.media.into_std().unwrap();
        legs.push(leg(to, socket, i < talkers));
    }
    legs
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--reflector") {
        reflector(args[i + 1].parse().unwrap());
        return;
    }
    let opts = options();
    let window = if opts.quick {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(8)
    };
    let step_rooms = if opts.quick { 10 } else { 5 };

    let app = TestApp::spawn(Backend::Sqlite).await;
    let pid = app.pid();
    let mut callers = Vec::new();
    for i in 0..ROOM_SIZE {
        callers.push(
            app.account(&format!("{}", 200 + i), &format!("Caller {i}"))
                .await,
        );
    }
    let (tx, rx) = mpsc::channel();
    let generator = std::thread::spawn(move || generator(rx));

    println!(
        "conference bench: rooms of {ROOM_SIZE} (PCMU), {} talking per room, {} s windows",
        opts.talkers,
        window.as_secs()
    );
    println!(
        "{:<10} {:>5} {:>8} {:>8} {:>9} {:>8} {:>10}",
        "", "parts", "miss %", "late %", "jit p99", "gen lag", "cpu us/pf"
    );
    let mut keep = Vec::new();
    let mut rooms = 0;
    let mut steps: Vec<Step> = Vec::new();
    let mut failures = 0;
    while rooms < opts.max_rooms {
        let mut new = Vec::new();
        for _ in 0..step_rooms {
            let number = format!("{}", 8000 + rooms);
            let (code, body) = app
                .post(
                    "/v1/pbx/extensions",
                    json!({"number": number, "name": format!("Room {number}"), "type": "conference"}),
                )
                .await;
            assert_eq!(code, 201, "{body}");
            new.extend(fill_room(&app, &callers, &number, opts.talkers, &mut keep).await);
            rooms += 1;
        }
        tx.send(Command::Add(new)).unwrap();
        // Let jitter buffers and talker detection settle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let step = tokio::task::block_in_place(|| measure(&tx, pid, rooms * ROOM_SIZE, window));
        print_step("switchboard", &step);
        let passed = step.window.passes();
        steps.push(step);
        // Two failed steps in a row: past capacity, not a blip.
        failures = if passed { 0 } else { failures + 1 };
        if failures >= 2 {
            break;
        }
    }
    let (_, health) = app.get("/healthz").await;
    println!(
        "server reports {} conference participants",
        health["sip"]["conferenceParticipants"]
    );
    tx.send(Command::Clear).unwrap();
    drop(keep);
    drop(app);

    let best = steps
        .iter()
        .filter(|s| s.window.passes())
        .max_by_key(|s| s.participants);
    let target = 500.min(steps.last().map_or(0, |s| s.participants));
    let mut compare: Vec<usize> = vec![target];
    if let Some(b) = best
        && b.participants != target
    {
        compare.push(b.participants);
    }
    for participants in compare.into_iter().filter(|p| *p > 0) {
        let floor =
            tokio::task::block_in_place(|| reflect(&tx, participants, opts.talkers, window));
        print_step("reflector", &floor);
        if let Some(s) = steps.iter().find(|s| s.participants == participants) {
            println!(
                "  at {participants} participants: switchboard {:.2} us per participant per frame, \
                 reflector {:.2}: ratio {:.2}x",
                s.cpu_us_per_frame,
                floor.cpu_us_per_frame,
                s.cpu_us_per_frame / floor.cpu_us_per_frame.max(1e-9)
            );
        }
    }
    match best {
        Some(b) => println!(
            "capacity: {} participants ({} rooms) with {:.3} % late or missing and tick jitter p99 {:.2} ms",
            b.participants,
            b.participants / ROOM_SIZE,
            100.0 * b.window.bad_share(),
            b.window.jitter_p99_ms()
        ),
        None => println!("capacity: no step passed"),
    }
    drop(tx);
    let _ = generator.join();
}
