//! SIP settings, as the command line gives them.

use crate::auth::digest::{Algorithm, algorithm_of};
use crate::media::ports::PortPool;
use crate::sip::stack::transport::StreamLimits;
use crate::sip::uri::Uri;
use std::net::SocketAddr;
use std::sync::Arc;

/// SIP settings.
#[derive(Debug, Clone)]
pub struct SipConfig {
    /// UDP and TCP listen address (the same port).
    pub addr: SocketAddr,
    /// Digest algorithms offered, most preferred first.
    pub digest: Vec<Algorithm>,
    /// Shortest registration accepted (seconds); shorter ones get 423.
    pub min_expires: u32,
    /// Seconds a digest nonce stays fresh.
    pub nonce_ttl: u64,
    /// Where calls to outside numbers go; INVITEs from its address are trusted.
    pub gateway: Option<Uri>,
    /// Calls longer than this are ended by us (nobody is on a call for four hours).
    pub max_call_duration: std::time::Duration,
    /// How often both legs of a call are probed with OPTIONS.
    pub probe_interval: std::time::Duration,
    /// The address put in our Via and Record-Route; default: the bound one (or this
    /// host's primary address when bound to all interfaces).
    pub advertise: Option<String>,
    /// Ports for voicemail RTP.
    pub rtp_ports: Arc<PortPool>,
    /// A voicemail call without any RTP for this long is ended.
    pub rtp_timeout: std::time::Duration,
    /// Caps on the connections phones open, and the time to finish a message.
    pub stream_limits: StreamLimits,
    /// SIP over TLS, when a certificate was given.
    pub tls: Option<SipTls>,
}

/// Where SIP over TLS listens, and its handshake.
#[derive(Clone)]
pub struct SipTls {
    pub addr: SocketAddr,
    pub acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for SipTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipTls")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Parses `MD5,SHA-256` (order of preference).
pub fn parse_digest_list(raw: &str) -> Result<Vec<Algorithm>, String> {
    let list: Vec<_> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| algorithm_of(Some(s)).ok_or_else(|| format!("unknown digest algorithm {s:?}")))
        .collect::<Result<_, _>>()?;
    if list.is_empty() {
        return Err("at least one digest algorithm is needed".into());
    }
    Ok(list)
}
