//! Command line and environment: flags with env equivalents and defaults that run out
//! of the box.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "A PBX core: SIP registrar and proxy with a GraphQL/REST API"
)]
pub struct Cli {
    #[command(flatten)]
    pub store: StoreOpts,
    #[command(flatten)]
    pub serve: ServeOpts,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Args)]
pub struct StoreOpts {
    /// Holds switchboard.db, secrets and (later) audio.
    #[arg(
        long,
        env = "SWITCHBOARD_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// A postgres:// URL switches from the embedded SQLite file to PostgreSQL.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeOpts {
    /// HTTP listen address (REST, GraphQL, websockets, playground).
    #[arg(
        long,
        env = "SWITCHBOARD_HTTP",
        default_value = "0.0.0.0:8080",
        global = true
    )]
    pub http: SocketAddr,
    /// SIP listen address, UDP and TCP on the same port.
    #[arg(
        long,
        env = "SWITCHBOARD_SIP",
        default_value = "0.0.0.0:5060",
        global = true
    )]
    pub sip: SocketAddr,
    /// SIP domain (and digest realm) of the default PBX, set when it is first created.
    /// Defaults to this host's primary IP address.
    #[arg(long, env = "SWITCHBOARD_SIP_DOMAIN", global = true)]
    pub sip_domain: Option<String>,
    /// JWT lifetime in seconds.
    #[arg(
        long,
        env = "SWITCHBOARD_JWT_TTL",
        default_value_t = 3600,
        global = true
    )]
    pub jwt_ttl: i64,
    /// Digest algorithms offered to phones, most preferred first. MD5 only by default:
    /// libre-based phones (Debian's baresip 1.0 among them) abort when any challenge
    /// names SHA-256. A phone that answers with SHA-256 anyway is accepted whatever is
    /// offered; `SHA-256,MD5` offers both.
    #[arg(
        long,
        env = "SWITCHBOARD_SIP_DIGEST",
        default_value = "MD5",
        global = true
    )]
    pub sip_digest: String,
    /// SIP connections (TCP and websocket) open at once, all phones together; more are
    /// closed at once (websocket upgrades get 503).
    #[arg(
        long,
        env = "SWITCHBOARD_SIP_MAX_CONNECTIONS",
        default_value_t = 10_000,
        global = true
    )]
    pub sip_max_connections: usize,
    /// SIP connections open at once from one source address (an office behind one NAT
    /// opens one per phone over TCP).
    #[arg(
        long,
        env = "SWITCHBOARD_SIP_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 256,
        global = true
    )]
    pub sip_max_connections_per_address: usize,
    /// Seconds a peer has to finish a message it started: SIP over TCP, and any
    /// websocket on the HTTP port. A connection idle between messages stays open.
    #[arg(
        long,
        env = "SWITCHBOARD_MESSAGE_TIMEOUT",
        default_value_t = 10,
        global = true
    )]
    pub message_timeout: u64,
    /// Shortest registration accepted, in seconds (shorter ones get 423 Interval Too Brief).
    #[arg(
        long,
        env = "SWITCHBOARD_SIP_MIN_EXPIRES",
        default_value_t = crate::sip::MIN_EXPIRES,
        global = true
    )]
    pub sip_min_expires: u32,
    /// Seconds a digest nonce stays fresh before it is answered with `stale=true`.
    #[arg(
        long,
        env = "SWITCHBOARD_SIP_NONCE_TTL",
        default_value_t = crate::auth::digest::NONCE_LIFETIME_SECS,
        global = true
    )]
    pub sip_nonce_ttl: u64,
    /// The outbound gateway for calls to outside numbers (7+ digits), a SIP URI such as
    /// `sip:203.0.113.5:5060`; INVITEs from its address are trusted without digest.
    #[arg(long, env = "SWITCHBOARD_SIP_GATEWAY", global = true)]
    pub sip_gateway: Option<String>,
    /// The `host:port` put in our Via and Record-Route headers.
    #[arg(long, env = "SWITCHBOARD_SIP_ADVERTISE", global = true)]
    pub sip_advertise: Option<String>,
    /// Calls are ended after this many seconds (default 4 hours).
    #[arg(long, env = "SWITCHBOARD_CALL_MAX_DURATION", default_value_t = 4 * 3600, global = true)]
    pub call_max_duration: u64,
    /// Seconds between OPTIONS probes of both legs of an answered call.
    #[arg(
        long,
        env = "SWITCHBOARD_CALL_PROBE_INTERVAL",
        default_value_t = 120,
        global = true
    )]
    pub call_probe_interval: u64,
    /// Names this node in device records (several nodes can share PostgreSQL).
    #[arg(long, env = "SWITCHBOARD_NODE_ID", global = true)]
    pub node_id: Option<String>,
    /// Live registrations per extension; past it the least recently registered one
    /// makes room for the new one.
    #[arg(
        long,
        env = "SWITCHBOARD_MAX_BINDINGS",
        default_value_t = 10,
        global = true
    )]
    pub max_bindings: usize,
    /// Events the bus buffers per subscriber before a slow one is resynced.
    #[arg(
        long,
        env = "SWITCHBOARD_EVENT_BUFFER",
        default_value_t = 4096,
        global = true
    )]
    pub event_buffer: usize,
    /// SMTP relay for voicemail-to-email, `smtp://host[:port]` (plain, as to a local
    /// relay); unset, no emails are sent.
    #[arg(long, env = "SWITCHBOARD_SMTP_URL", global = true)]
    pub smtp_url: Option<String>,
    /// Sender address of voicemail emails.
    #[arg(
        long,
        env = "SWITCHBOARD_SMTP_FROM",
        default_value = "voicemail@switchboard.local",
        global = true
    )]
    pub smtp_from: String,
    /// UDP port range for voicemail media (RTP), `low-high`.
    #[arg(
        long,
        env = "SWITCHBOARD_RTP_PORTS",
        default_value = "10000-20000",
        global = true
    )]
    pub rtp_ports: String,
    /// Certificate chain (PEM) for SIP over TLS and HTTPS; with `--tls-key`, turns both on.
    #[arg(
        long,
        env = "SWITCHBOARD_TLS_CERT",
        requires = "tls_key",
        global = true
    )]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1) of `--tls-cert`.
    #[arg(
        long,
        env = "SWITCHBOARD_TLS_KEY",
        requires = "tls_cert",
        global = true
    )]
    pub tls_key: Option<PathBuf>,
    /// SIP over TLS listen address (with a certificate).
    #[arg(
        long,
        env = "SWITCHBOARD_SIP_TLS",
        default_value = "0.0.0.0:5061",
        global = true
    )]
    pub sip_tls: SocketAddr,
    /// HTTPS listen address (with a certificate): the same API as `--http`, with
    /// `wss://…/sip` and `wss://…/graphql/ws`.
    #[arg(
        long,
        env = "SWITCHBOARD_HTTPS",
        default_value = "0.0.0.0:8443",
        global = true
    )]
    pub https: SocketAddr,
    /// Seconds without any RTP after which a voicemail call is ended.
    #[arg(
        long,
        env = "SWITCHBOARD_RTP_TIMEOUT",
        default_value_t = 30,
        global = true
    )]
    pub rtp_timeout: u64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage PBXes (tenants).
    Pbx {
        #[command(subcommand)]
        command: PbxCommand,
    },
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
}

#[derive(Debug, Subcommand)]
pub enum PbxCommand {
    /// Create a PBX and print its id.
    Create {
        name: String,
        /// Its SIP domain and digest realm; defaults to `<name>.local`.
        #[arg(long = "domain")]
        domain: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Create an API key and print it (only the key, on stdout).
    Create {
        /// PBX id or name.
        #[arg(long)]
        pbx: String,
        /// Comma-separated scopes; all scopes when omitted.
        #[arg(long)]
        scopes: Option<String>,
        /// A `do_test_` key instead of `do_live_`.
        #[arg(long)]
        test: bool,
    },
}

/// The address other hosts would reach this one at, for a default SIP domain. Connecting
/// a UDP socket sends nothing; it only asks the kernel which source address it would use.
pub fn primary_ip() -> String {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".to_owned())
}

/// This host's name, for the default node id.
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node-1".to_owned())
}
