//! SIP: a stack (transports, framing, transactions: [`stack`]) with applications on top
//! (registrar, proxy, dialogs, MWI, voicemail), each owning its own state, and a
//! dispatcher that routes every request to one of them. Only this module knows SIP
//! syntax; the rest of the program sees service calls and [`Sip`].

pub mod authenticate;
mod conference;
mod config;
mod dialogs;
mod dispatch;
mod headers;
mod location;
pub mod message;
mod mwi;
#[cfg(test)]
mod oracle_tests;
mod proxy;
mod registrar;
mod sdp;
pub mod stack;
pub mod syntax;
mod uas;
pub mod uri;
mod voicemail;

pub use config::{SipConfig, SipTls, parse_digest_list};
pub use dispatch::Sip;
pub use registrar::MIN_EXPIRES;
pub use stack::SERVER;

use crate::service::Services;
use std::net::SocketAddr;
use std::sync::Arc;

/// The running SIP server and the addresses it listens on.
pub struct SipListeners {
    pub sip: Arc<Sip>,
    pub addr: SocketAddr,
    /// SIP over TLS, when a certificate was given.
    pub tls_addr: Option<SocketAddr>,
}

/// Binds the SIP transports, puts the applications on the stack, and serves until the
/// stack's `shutdown` is cancelled. Run it on the SIP runtime: everything it starts
/// stays there.
pub async fn start(
    services: Arc<Services>,
    config: SipConfig,
    shutdown: tokio_util::sync::CancellationToken,
) -> anyhow::Result<SipListeners> {
    let (stack, listeners) = stack::SipStack::bind(
        stack::StackConfig {
            addr: config.addr,
            advertise: config.advertise.clone(),
            stream_limits: config.stream_limits,
            tls: config.tls.clone(),
        },
        shutdown,
    )
    .await?;
    let auth = Arc::new(authenticate::DigestAuth::new(
        stack.clone(),
        services.clone(),
        config.digest.clone(),
        config.nonce_ttl,
    ));
    let mwi = Arc::new(mwi::Mwi::new(stack.clone(), services.clone(), auth.clone()));
    let dialogs = Arc::new(dialogs::Dialogs::new(
        stack.clone(),
        services.clone(),
        config.max_call_duration,
        config.probe_interval,
    ));
    let voicemail = Arc::new(voicemail::Voicemail::new(
        stack.clone(),
        services.clone(),
        config.rtp_ports.clone(),
        config.rtp_timeout,
    ));
    let conference = conference::Conference::new(
        stack.clone(),
        services.clone(),
        config.rtp_ports.clone(),
        config.rtp_timeout,
    );
    let proxy = Arc::new(proxy::Proxy::new(
        stack.clone(),
        services.clone(),
        auth.clone(),
        dialogs.clone(),
        voicemail.clone(),
        conference.clone(),
        config.gateway.clone(),
    ));
    let registrar = registrar::Registrar::new(
        stack.clone(),
        services,
        auth,
        mwi.clone(),
        config.min_expires,
    );
    mwi.listen();
    let sip = Sip::new(
        stack.clone(),
        registrar,
        proxy,
        dispatch::Apps {
            dialogs,
            mwi,
            voicemail,
            conference,
        },
    );
    let tls_addr = stack.serve(listeners, sip.clone())?;
    let addr = stack.bound_addr();
    tracing::info!(sip.addr = %addr, "SIP listening on UDP and TCP");
    if let Some(tls) = tls_addr {
        tracing::info!(sip.addr = %tls, "SIP listening on TLS");
    }
    Ok(SipListeners {
        sip,
        addr,
        tls_addr,
    })
}

#[cfg(test)]
mod fuzz_tests;
