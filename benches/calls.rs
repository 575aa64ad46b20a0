//! Call benchmark (prints figures; never asserts on time): SIPp callers place calls
//! (INVITE, 407, INVITE with digest, 180, 200, ACK, BYE) through the proxy to a SIPp
//! callee at rising rates; the highest rate with no failed call and no retransmission,
//! with call-setup p50/p99 — against Switchboard and, when installed, the reference
//! Kamailio in ../shared/reference/kamailio in the same run.
//!
//! Run: `scripts/bench/calls` (or `cargo bench --bench calls -- [--quick]`).

#[path = "../tests/common/mod.rs"]
mod common;
#[expect(dead_code, reason = "shared by both benchmarks; each uses a part")]
mod support;

use common::sip::{Account, free_port};
use common::{Backend, TestApp};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::{
    Stage, Target, bench_dir, best, create_accounts, csv, fineclock, kamailio_dir, rising, row,
    sipp,
};

const CALLERS: usize = 100;
const REGISTER_TO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp/register_to.xml");

/// The callee: a SIPp UAS answering every call on `port` until killed.
fn callee(work: &Path, port: u16) -> Child {
    let dir = work.join(format!("uas-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    Command::new("sipp")
        .current_dir(&dir)
        .arg("-sf")
        .arg(bench_dir().join("uas_bench.xml"))
        .args([
            "-p",
            &port.to_string(),
            "-i",
            "127.0.0.1",
            "-nostdin",
            "-buff_size",
            "4194304",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp runs (apt-get install sip-tester)")
}

fn caller_row(a: &Account, caller: &str, dialled: &str) -> String {
    format!(
        "{u};{p};[authentication username={u} password=\"{p}\"];{caller};{dialled}",
        u = a.username,
        p = a.password
    )
}

fn rates(quick: bool) -> Vec<usize> {
    if quick {
        vec![200, 600, 1200, 2000]
    } else {
        vec![
            200, 400, 800, 1200, 1600, 2000, 2400, 2800, 3200, 3600, 4000, 4500, 5000,
        ]
    }
}

async fn switchboard(work: &Path, quick: bool, shim: Option<&Path>) -> Vec<Stage> {
    println!(
        "\n== calls through Switchboard ({CALLERS} callers, one callee, {} s per stage)",
        support::STAGE_SECS
    );
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let callers = create_accounts(&app, 2000, CALLERS).await;
    let target = create_accounts(&app, 3000, 1).await.remove(0);
    let uas_port = free_port();
    let mut uas = callee(work, uas_port);
    let reg = work.join("callee-switchboard.csv");
    csv(
        &reg,
        std::iter::once(row(
            &target,
            &target.number,
            3600,
            &format!("{}@127.0.0.1:{uas_port}", target.number),
        )),
    );
    sipp(
        work,
        &Target {
            addr: app.sip_addr().to_string(),
            users: &reg,
            local_port: free_port(),
            scenario: REGISTER_TO,
            auth_uri: "127.0.0.1",
        },
        10,
        1,
        "u1",
        None,
    );
    let users = work.join("callers-switchboard.csv");
    csv(
        &users,
        callers
            .iter()
            .map(|a| caller_row(a, &a.number, &target.number)),
    );
    let auth_uri = format!("{}@127.0.0.1", target.number);
    let stages = rising(
        work,
        "switchboard",
        &Target {
            addr: app.sip_addr().to_string(),
            users: &users,
            local_port: free_port(),
            scenario: "call_rtd.xml",
            auth_uri: &auth_uri,
        },
        &rates(quick),
        shim,
    );
    let _ = uas.kill();
    let _ = uas.wait();
    stages
}

fn kamailio(
    work: &Path,
    quick: bool,
    shim: Option<&Path>,
    callers: &[Account],
    target: &Account,
) -> Vec<Stage> {
    println!("\n== calls through the reference Kamailio");
    let plain = work.join("kamailio-users.csv");
    std::fs::write(
        &plain,
        callers
            .iter()
            .chain(std::iter::once(target))
            .map(|a| format!("{};{}\n", a.username, a.password))
            .collect::<String>(),
    )
    .unwrap();
    let port = free_port();
    let kw = work.join("kamailio");
    let envs = [
        ("KAM_USERS_CSV", plain.to_string_lossy().to_string()),
        ("KAM_PORT", port.to_string()),
        ("KAM_WORKDIR", kw.to_string_lossy().to_string()),
    ];
    if !Command::new(kamailio_dir().join("start.sh"))
        .envs(envs.clone())
        .status()
        .is_ok_and(|s| s.success())
    {
        println!("  kamailio did not start; no comparison");
        return Vec::new();
    }
    let addr = format!("127.0.0.1:{port}");
    let uas_port = free_port();
    let mut uas = callee(work, uas_port);
    let reg = work.join("callee-kamailio.csv");
    csv(
        &reg,
        std::iter::once(row(
            target,
            &target.username,
            3600,
            &format!("{}@127.0.0.1:{uas_port}", target.username),
        )),
    );
    sipp(
        work,
        &Target {
            addr: addr.clone(),
            users: &reg,
            local_port: free_port(),
            scenario: REGISTER_TO,
            auth_uri: "127.0.0.1",
        },
        10,
        1,
        "u1",
        None,
    );
    let users = work.join("callers-kamailio.csv");
    csv(
        &users,
        callers
            .iter()
            .map(|a| caller_row(a, &a.username, &target.username)),
    );
    let auth_uri = format!("{}@127.0.0.1", target.username);
    let stages = rising(
        work,
        "kamailio",
        &Target {
            addr,
            users: &users,
            local_port: free_port(),
            scenario: "call_rtd.xml",
            auth_uri: &auth_uri,
        },
        &rates(quick),
        shim,
    );
    let _ = uas.kill();
    let _ = uas.wait();
    let _ = Command::new(kamailio_dir().join("stop.sh"))
        .envs(envs)
        .status();
    stages
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let skip_kamailio = args.iter().any(|a| a == "--skip-kamailio");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let work =
            std::env::temp_dir().join(format!("switchboard-calls-bench-{}", std::process::id()));
        std::fs::create_dir_all(&work).unwrap();
        let shim = fineclock(&work);
        let ours = switchboard(&work, quick, shim.as_deref()).await;
        let installed = Command::new("sh")
            .args(["-c", "command -v kamailio"])
            .output()
            .is_ok_and(|o| o.status.success());
        let theirs = if skip_kamailio || !installed || !kamailio_dir().join("start.sh").exists() {
            println!("\n  kamailio not run (not installed, or --skip-kamailio)");
            Vec::new()
        } else {
            // The same credentials: fresh accounts (Kamailio keeps its own user table).
            let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
            let callers = create_accounts(&app, 2000, CALLERS).await;
            let target = create_accounts(&app, 3000, 1).await.remove(0);
            drop(app);
            tokio::time::sleep(Duration::from_millis(200)).await;
            kamailio(&work, quick, shim.as_deref(), &callers, &target)
        };
        println!("\n== summary (target: ≥ 1.0× Kamailio's clean call rate)");
        match best(&ours) {
            Some(s) => println!(
                "  switchboard: {}/s clean, setup p50 {:.2} ms, p99 {:.2} ms",
                s.rate, s.p50_ms, s.p99_ms
            ),
            None => println!("  switchboard: no clean stage"),
        }
        match (best(&ours), best(&theirs)) {
            (Some(o), Some(t)) => {
                println!(
                    "  kamailio:    {}/s clean, setup p50 {:.2} ms, p99 {:.2} ms",
                    t.rate, t.p50_ms, t.p99_ms
                );
                println!(
                    "  ratio switchboard / kamailio: {:.2}×",
                    o.rate as f64 / t.rate as f64
                );
            }
            _ => println!("  kamailio: not measured in this run"),
        }
        let _ = std::fs::remove_dir_all(&work);
    });
}
