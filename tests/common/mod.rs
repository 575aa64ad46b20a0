//! Shared test helpers: start the real `switchboard` binary on free ports with a fresh
//! SQLite file or a fresh PostgreSQL database, and talk to it over real sockets.

#![expect(
    dead_code,
    reason = "shared by the tests and the benchmarks; each uses a part"
)]

pub mod rtp;
pub mod sip;
pub mod sip_raw;
pub mod ws;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_switchboard");

/// Where the tests find PostgreSQL (a server with trust auth for user postgres).
pub fn pg_admin_url() -> String {
    std::env::var("SWITCHBOARD_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates one `#[tokio::test]` per backend for each `async fn name(backend: Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            }
        )*
    };
}

pub fn random_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}_{}_{}", std::process::id(), nanos, rand_u32())
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::thread::current().id()) as u32
}

async fn pg_exec(sql: &str) {
    let (client, conn) = tokio_postgres::connect(&pg_admin_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must be reachable for the postgres tests (see README)");
    let task = tokio::spawn(conn);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(client);
    let _ = task.await;
}

/// Runs SQL statements on a PostgreSQL database.
pub async fn pg_batch(db_url: &str, sql: &str) {
    let (client, conn) = tokio_postgres::connect(db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    drop(client);
    let _ = task.await;
}

/// Runs a query on a test database and returns every row's columns as text.
pub async fn pg_rows(db_url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    let (client, conn) = tokio_postgres::connect(db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    let rows = client.simple_query(sql).await.unwrap();
    drop(client);
    let _ = task.await;
    rows.into_iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
            }
            _ => None,
        })
        .collect()
}

/// The addresses the server printed in its ready line.
#[derive(Debug, Clone, Default)]
pub struct Ready {
    pub http: String,
    pub sip: Option<String>,
    /// HTTPS and SIP over TLS, when the server was given a certificate.
    pub https: Option<String>,
    pub sip_tls: Option<String>,
    pub admin_key: Option<String>,
    pub stdout: Vec<String>,
}

/// A running server with its own data directory and database.
pub struct TestApp {
    pub backend: Backend,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub db_name: Option<String>,
    pub base: String,
    pub sip: Option<String>,
    /// HTTPS and SIP over TLS addresses, when the server was given a certificate.
    pub https: Option<String>,
    pub sip_tls: Option<String>,
    pub key: String,
    pub client: reqwest::Client,
    pub extra_args: Vec<String>,
    child: Option<Child>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts a server with extra command-line flags.
    pub async fn spawn_with(backend: Backend, extra: &[&str]) -> TestApp {
        let suffix = random_suffix();
        let data_dir = std::env::temp_dir().join(format!("switchboard-test-{suffix}"));
        std::fs::create_dir_all(&data_dir).unwrap();
        let (database_url, db_name) = match backend {
            Backend::Sqlite => (None, None),
            Backend::Postgres => {
                let name = format!("sb_test_{suffix}");
                pg_exec(&format!("CREATE DATABASE {name}")).await;
                let base = pg_admin_url();
                let root = base
                    .rsplit_once('/')
                    .map(|(r, _)| r)
                    .unwrap_or(&base)
                    .to_owned();
                (Some(format!("{root}/{name}")), Some(name))
            }
        };
        let mut app = TestApp {
            backend,
            data_dir,
            database_url,
            db_name,
            base: String::new(),
            sip: None,
            https: None,
            sip_tls: None,
            key: String::new(),
            client: reqwest::Client::new(),
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        let ready = app.start().await;
        app.key = ready
            .admin_key
            .expect("first start prints an admin API key");
        app
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }

    /// Environment shared by the server and CLI invocations.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env("SWITCHBOARD_DATA_DIR", &self.data_dir);
        cmd.env_remove("DATABASE_URL");
        if let Some(url) = &self.database_url {
            cmd.env("DATABASE_URL", url);
        }
        cmd.env(
            "SWITCHBOARD_LOG",
            std::env::var("TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        cmd
    }

    /// Starts (or restarts) the server process and waits for its ready line.
    pub async fn start(&mut self) -> Ready {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = self.command();
        let http = if self.base.is_empty() {
            "127.0.0.1:0".to_owned()
        } else {
            self.base.trim_start_matches("http://").to_owned()
        };
        let sip = self.sip.clone().unwrap_or_else(|| "127.0.0.1:0".to_owned());
        cmd.args([
            "serve",
            "--http",
            &http,
            "--sip",
            &sip,
            "--sip-domain",
            "127.0.0.1",
        ])
        .args(&self.extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
        let mut child = cmd.spawn().expect("spawn switchboard");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        let ready = tokio::task::spawn_blocking(move || {
            let mut ready = Ready::default();
            loop {
                let line = rx
                    .recv_timeout(Duration::from_secs(30))
                    .expect("server printed its ready line within 30 s");
                if let Some(i) = line.find("do_live_") {
                    ready.admin_key = Some(line[i..].trim().to_owned());
                }
                ready.stdout.push(line.clone());
                if let Some(rest) = line.strip_prefix("switchboard: ready ") {
                    for part in rest.split_whitespace() {
                        if let Some(v) = part.strip_prefix("http=") {
                            ready.http = v.to_owned();
                        }
                        if let Some(v) = part.strip_prefix("sip=") {
                            ready.sip = Some(v.to_owned());
                        }
                        if let Some(v) = part.strip_prefix("https=") {
                            ready.https = Some(v.to_owned());
                        }
                        if let Some(v) = part.strip_prefix("sip_tls=") {
                            ready.sip_tls = Some(v.to_owned());
                        }
                    }
                    // Keep draining so the server never blocks on a full pipe.
                    std::thread::spawn(move || while rx.recv().is_ok() {});
                    return ready;
                }
            }
        })
        .await
        .unwrap();
        self.base = format!("http://{}", ready.http);
        if ready.sip.is_some() {
            self.sip = ready.sip.clone();
        }
        self.https = ready.https.clone();
        self.sip_tls = ready.sip_tls.clone();
        ready
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn restart(&mut self) -> Ready {
        self.stop();
        self.start().await
    }

    /// Runs a CLI subcommand against this app's store; returns (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let out = self
            .command()
            .args(args)
            .output()
            .expect("run switchboard CLI");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A new API key for a PBX (by id or name) with the given scopes.
    pub fn api_key(&self, pbx: &str, scopes: Option<&str>) -> String {
        let mut args = vec!["apikey", "create", "--pbx", pbx];
        if let Some(s) = scopes {
            args.extend(["--scopes", s]);
        }
        let (ok, out, err) = self.cli(&args);
        assert!(ok, "apikey create failed: {err}");
        out.trim().to_owned()
    }

    /// A new PBX; returns (id, key with all scopes).
    pub fn tenant(&self, name: &str) -> (String, String) {
        let (ok, out, err) = self.cli(&["pbx", "create", name]);
        assert!(ok, "pbx create failed: {err}");
        let id = out.trim().to_owned();
        (id.clone(), self.api_key(&id, None))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn request_as(&self, key: &str, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("Authorization", format!("Bearer {key}"))
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_as(&self.key, method, path)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.request(Method::POST, path).json(&body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        send(self.request(Method::PATCH, path).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        send(self.request(Method::DELETE, path)).await
    }

    /// Creates an extension through REST and returns its JSON (with credentials).
    pub async fn create_extension(&self, number: &str, name: &str) -> Value {
        let (status, body) = self
            .post(
                "/v1/pbx/extensions",
                json!({"number": number, "name": name}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["extension"].clone()
    }

    /// Runs a GraphQL operation with this app's key.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_as(&self.key, query, variables).await
    }

    pub async fn graphql_as(&self, key: &str, query: &str, variables: Value) -> Value {
        let (_, body) = send(
            self.request_as(key, Method::POST, "/graphql")
                .json(&json!({"query": query, "variables": variables})),
        )
        .await;
        body
    }

    /// Runs SQL statements straight on this app's database, for tests that need rows
    /// as an older version left them. Stop the server first.
    pub async fn sql(&self, statements: &str) {
        match self.backend {
            Backend::Sqlite => {
                use diesel::Connection;
                use diesel::connection::SimpleConnection;
                let path = self.data_dir.join("switchboard.db");
                let statements = statements.to_owned();
                tokio::task::spawn_blocking(move || {
                    let mut conn =
                        diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
                    conn.batch_execute(&statements)
                        .unwrap_or_else(|e| panic!("{statements}: {e}"));
                })
                .await
                .unwrap();
            }
            Backend::Postgres => {
                pg_batch(self.database_url.as_deref().unwrap(), statements).await;
            }
        }
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

/// Sends a request; returns the status and the JSON body (`null` when empty).
pub async fn send(req: RequestBuilder) -> (StatusCode, Value) {
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = self.server_log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- server log (last lines) ----");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
        if let Some(name) = self.db_name.take() {
            // Dropping happens outside any runtime the test may still be using.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(pg_exec(&format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )));
                }
            })
            .join();
        }
        remove_dir(&self.data_dir);
    }
}

fn remove_dir(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
}
