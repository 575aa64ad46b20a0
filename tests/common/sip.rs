//! SIP test peers: SIPp runs (Debian's `sip-tester`), baresip, and a small raw client
//! for what SIPp cannot express (replays, SHA-256 digests, websocket).

use super::TestApp;
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use switchboard::auth::digest::{self, Algorithm, ResponseInput};

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

/// SIP credentials of an extension created through REST.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub number: String,
    pub username: String,
    pub password: String,
}

impl Account {
    pub fn from_created(ext: &Value) -> Account {
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
}

impl TestApp {
    pub async fn account(&self, number: &str, name: &str) -> Account {
        Account::from_created(&self.create_extension(number, name).await)
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
        }
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
        let dir = self
            .app
            .data_dir
            .join(format!("sipp-{}", super::random_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("users.csv");
        std::fs::write(&csv, format!("SEQUENTIAL\n{}\n", self.rows.join("\n"))).unwrap();
        let server = self.app.sip_addr().to_string();
        let mut cmd = Command::new("timeout");
        cmd.current_dir(&dir)
            .arg("60")
            .arg("sipp")
            .arg(&server)
            .args(["-sf", &self.scenario])
            .args(["-inf", csv.to_str().unwrap()])
            .args(["-m", &self.calls.to_string()])
            .args(["-t", self.transport])
            .args(["-i", self.bind_ip])
            .args(["-p", &self.port.to_string()])
            .args(["-auth_uri", "127.0.0.1"])
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

/// A minimal SIP client over a real UDP socket, for exact control of what is sent.
pub struct RawSip {
    pub socket: tokio::net::UdpSocket,
    pub server: SocketAddr,
    seq: std::sync::atomic::AtomicU32,
}

/// Header value by name from a raw message (first match, case-insensitive).
pub fn header<'m>(msg: &'m str, name: &str) -> Option<&'m str> {
    msg.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn headers<'m>(msg: &'m str, name: &'m str) -> impl Iterator<Item = &'m str> + 'm {
    msg.split("\r\n").filter_map(move |line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn status(msg: &str) -> u16 {
    msg.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn challenge_param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let start = challenge.find(&format!("{name}="))? + name.len() + 1;
    let rest = &challenge[start..];
    if let Some(q) = rest.strip_prefix('"') {
        q.split('"').next()
    } else {
        rest.split([',', ' ']).next()
    }
}

/// An `Authorization` value answering `challenge` (RFC 7616, qop=auth).
pub fn authorization(
    challenge: &str,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    let realm = challenge_param(challenge, "realm").unwrap();
    let nonce = challenge_param(challenge, "nonce").unwrap();
    let (algorithm, name) = match challenge_param(challenge, "algorithm") {
        Some("SHA-256") => (Algorithm::Sha256, "SHA-256"),
        _ => (Algorithm::Md5, "MD5"),
    };
    let ha1 = digest::ha1(algorithm, user, realm, password);
    let nc = format!("{nc:08x}");
    let cnonce = "0a4f113b";
    let response = digest::response(
        algorithm,
        &ha1,
        &ResponseInput {
            nonce,
            nc: &nc,
            cnonce,
            qop: "auth",
            method,
            uri,
        },
    );
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         response=\"{response}\", algorithm={name}, cnonce=\"{cnonce}\", qop=auth, nc={nc}"
    )
}

impl RawSip {
    pub async fn bind(ip: &str, server: SocketAddr) -> RawSip {
        let socket = tokio::net::UdpSocket::bind((ip, 0)).await.unwrap();
        RawSip {
            socket,
            server,
            seq: Default::default(),
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    pub async fn send(&self, msg: &str) {
        self.socket
            .send_to(msg.as_bytes(), self.server)
            .await
            .unwrap();
    }

    /// The next message within `limit`, or `None`.
    pub async fn recv(&self, limit: Duration) -> Option<String> {
        let mut buf = vec![0u8; 65536];
        match tokio::time::timeout(limit, self.socket.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => None,
        }
    }

    /// Sends and waits for a final (non-1xx) response.
    pub async fn transact(&self, msg: &str) -> String {
        self.send(msg).await;
        loop {
            let resp = self
                .recv(Duration::from_secs(5))
                .await
                .expect("a response within 5 s");
            if status(&resp) >= 200 {
                return resp;
            }
        }
    }

    /// A REGISTER for `aor_user`, with optional extra header lines.
    pub fn register(&self, aor_user: &str, call_id: &str, contact: &str, extra: &str) -> String {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let local = self.local();
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-raw-{call_id}-{seq};rport\r\n\
             From: <sip:{aor_user}@127.0.0.1>;tag=raw{seq}\r\n\
             To: <sip:{aor_user}@127.0.0.1>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: {seq} REGISTER\r\n\
             Contact: {contact}\r\n\
             Max-Forwards: 70\r\n\
             User-Agent: switchboard-tests\r\n\
             {extra}Content-Length: 0\r\n\r\n"
        )
    }

    /// REGISTER, answer the challenge, return the final response.
    pub async fn register_with_auth(
        &self,
        account: &Account,
        aor_user: &str,
        call_id: &str,
        contact: &str,
        extra: &str,
    ) -> String {
        let first = self
            .transact(&self.register(aor_user, call_id, contact, extra))
            .await;
        assert_eq!(status(&first), 401, "{first}");
        let challenge = header(&first, "WWW-Authenticate").unwrap().to_owned();
        let auth = authorization(
            &challenge,
            &account.username,
            &account.password,
            "REGISTER",
            "sip:127.0.0.1",
            1,
        );
        let second = self.register(
            aor_user,
            call_id,
            contact,
            &format!("{extra}Authorization: {auth}\r\n"),
        );
        self.transact(&second).await
    }
}
