//! SIP test peers: SIPp runs (Debian's `sip-tester`), baresip, and a small raw client
//! for what SIPp cannot express (replays, SHA-256 digests, websocket).

use super::TestApp;
pub use super::sip_raw::*;
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sipp");

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The credentials of an extension created through REST.
pub fn account_of(ext: &Value) -> Account {
    Account {
        id: ext["id"].as_str().unwrap().to_owned(),
        number: ext["number"].as_str().unwrap().to_owned(),
        username: ext["sipCredentials"]["username"]
            .as_str()
            .unwrap()
            .to_owned(),
        password: ext["sipCredentials"]["password"]
            .as_str()
            .unwrap()
            .to_owned(),
    }
}

impl TestApp {
    pub async fn account(&self, number: &str, name: &str) -> Account {
        account_of(&self.create_extension(number, name).await)
    }

    pub fn sip_addr(&self) -> SocketAddr {
        self.sip
            .as_deref()
            .expect("server printed its SIP address")
            .parse()
            .unwrap()
    }
}

/// An 8 kHz mono 16-bit WAV (what G.711 carries) made of segments: seconds of a
/// 440 Hz tone (`true`) or of silence.
pub fn write_wav(path: &Path, segments: &[(f64, bool)]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let mut i: u64 = 0;
    for &(seconds, tone) in segments {
        for _ in 0..(seconds * 8000.0).round() as u64 {
            let v = if tone {
                (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin()) as i16
            } else {
                0
            };
            w.write_sample(v).unwrap();
            i += 1;
        }
    }
    w.finalize().unwrap();
}

/// A free UDP/TCP port whose next port is free too, for UDP and TCP (baresip binds
/// SIP over TLS, a TCP socket, on port + 1; RTP uses the pair for RTCP).
pub fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX
            && UdpSocket::bind(("127.0.0.1", p + 1)).is_ok()
            && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok()
        {
            return p;
        }
    }
}

/// A baresip configuration for `account` with `wav` as its microphone, answering
/// calls by itself.
pub fn baresip_dir(app: &TestApp, account: &Account, wav: &Path) -> PathBuf {
    let dir = app.data_dir.join(format!("baresip-{}", account.number));
    std::fs::create_dir_all(&dir).unwrap();
    let rtp = free_port_pair();
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{}\naudio_player aubridge,nil\naudio_source aufile,{}\n\
             audio_alert aubridge,nil\nrtp_ports {rtp}-{}\nmodule_path /usr/lib/baresip/modules\n\
             module g711.so\nmodule aufile.so\nmodule aubridge.so\nmodule rtcpsummary.so\n\
             module_app account.so\nmodule_app contact.so\nmodule_app menu.so\n",
            free_port_pair(),
            wav.display(),
            rtp + 1
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:{u}@127.0.0.1;transport=udp>;auth_user={u};auth_pass={p};outbound=\"sip:{s};transport=udp\";regint=600;answermode=auto;mwi=no;medianat=\n",
            u = account.username,
            p = account.password,
            s = app.sip_addr()
        ),
    )
    .unwrap();
    dir
}

/// Runs baresip from `dir` for `seconds` (dialling `dial` at start), in the background.
pub fn baresip(
    dir: PathBuf,
    seconds: u32,
    dial: Option<&str>,
) -> tokio::task::JoinHandle<std::process::Output> {
    let mut cmd = Command::new("timeout");
    cmd.arg((seconds + 20).to_string())
        .arg("baresip")
        .arg("-f")
        .arg(&dir)
        .args(["-t", &seconds.to_string()]);
    if let Some(target) = dial {
        cmd.args(["-e", &format!("/dial {target}")]);
    }
    tokio::task::spawn_blocking(move || {
        cmd.output()
            .expect("baresip runs (apt-get install baresip-core)")
    })
}

/// One SIPp run.
pub struct SippRun {
    pub ok: bool,
    pub stdout: String,
    pub messages: String,
    pub dir: PathBuf,
}

pub struct Sipp<'a> {
    app: &'a TestApp,
    scenario: String,
    rows: Vec<String>,
    transport: &'static str,
    calls: usize,
    port: u16,
    bind_ip: &'static str,
    extra: Vec<String>,
    auth_uri: String,
    /// A server-side scenario: no target, no CSV; it waits for calls.
    uas: bool,
}

impl<'a> Sipp<'a> {
    pub fn new(app: &'a TestApp, scenario: &str) -> Self {
        Sipp {
            app,
            scenario: format!("{SCENARIOS}/{scenario}"),
            rows: Vec::new(),
            transport: "u1",
            calls: 1,
            port: free_port(),
            bind_ip: "127.0.0.1",
            extra: Vec::new(),
            auth_uri: "127.0.0.1".to_owned(),
            uas: false,
        }
    }

    /// A SIPp that answers calls on `port` (see `tests/sipp/uas_*.xml`).
    pub fn uas(app: &'a TestApp, scenario: &str, port: u16) -> Self {
        Sipp {
            uas: true,
            port,
            ..Sipp::new(app, scenario)
        }
    }

    /// The digest `uri` SIPp uses (the Request-URI: `EXT@DOMAIN` for INVITE).
    pub fn auth_uri(mut self, uri: &str) -> Self {
        self.auth_uri = uri.to_owned();
        self
    }

    /// Runs in the background; await the handle for the result.
    pub fn spawn(self) -> tokio::task::JoinHandle<SippRun> {
        let fut = self.prepare();
        tokio::spawn(fut)
    }

    /// A CSV row: username, password, [authentication …], AOR user, then `more` fields.
    pub fn user(mut self, account: &Account, aor: &str, more: &[&str]) -> Self {
        let mut fields = vec![
            account.username.clone(),
            account.password.clone(),
            // Quoted: SIPp reads an unquoted value starting with `0x` as hex, so one
            // password in 3,844 (`0xQ…`, `0x1f…`) was sent as something else.
            format!(
                "[authentication username={} password=\"{}\"]",
                account.username, account.password
            ),
            aor.to_owned(),
        ];
        fields.extend(more.iter().map(|s| s.to_string()));
        self.rows.push(fields.join(";"));
        self.calls = self.rows.len();
        self
    }

    pub fn tcp(mut self) -> Self {
        self.transport = "t1";
        self
    }

    pub fn calls(mut self, n: usize) -> Self {
        self.calls = n;
        self
    }

    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn bind_ip(mut self, ip: &'static str) -> Self {
        self.bind_ip = ip;
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.extra.push(a.to_owned());
        self
    }

    /// Runs SIPp to completion in a scratch directory (it writes its logs there).
    pub async fn run(self) -> SippRun {
        self.prepare().await
    }

    fn prepare(self) -> impl std::future::Future<Output = SippRun> + Send + 'static {
        let dir = self
            .app
            .data_dir
            .join(format!("sipp-{}", super::random_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cmd = Command::new("timeout");
        cmd.current_dir(&dir).arg("60").arg("sipp");
        if !self.uas {
            let csv = dir.join("users.csv");
            std::fs::write(&csv, format!("SEQUENTIAL\n{}\n", self.rows.join("\n"))).unwrap();
            cmd.arg(self.app.sip_addr().to_string())
                .args(["-inf", csv.to_str().unwrap()])
                .args(["-auth_uri", &self.auth_uri]);
        }
        cmd.args(["-sf", &self.scenario])
            .args(["-m", &self.calls.to_string()])
            .args(["-t", self.transport])
            .args(["-i", self.bind_ip])
            .args(["-p", &self.port.to_string()])
            .args([
                "-timeout",
                "30s",
                "-timeout_error",
                "-trace_msg",
                "-trace_err",
                "-nostdin",
            ])
            .args(["-r", "50"])
            .args(&self.extra);
        async move {
            let out = tokio::task::spawn_blocking(move || {
                cmd.output()
                    .expect("sipp runs (apt-get install sip-tester)")
            })
            .await
            .unwrap();
            let messages = read_glob(&dir, "_messages.log");
            SippRun {
                ok: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr),
                messages,
                dir,
            }
        }
    }
}

fn read_glob(dir: &Path, suffix: &str) -> String {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

impl SippRun {
    /// Panics with SIPp's own account of what went wrong.
    pub fn assert_ok(&self) {
        assert!(
            self.ok,
            "SIPp failed:\n{}\n--- messages ---\n{}\n--- errors ---\n{}",
            self.stdout,
            self.messages
                .chars()
                .rev()
                .take(4000)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>(),
            read_glob(&self.dir, "_errors.log")
        );
    }
}
