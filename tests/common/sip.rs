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
            format!(
                "[authentication username={} password={}]",
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
