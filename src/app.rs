//! Wiring: open the store, bootstrap the first PBX, start every listener, and stop them
//! all on one cancellation signal.

use crate::api::{self, AppState};
use crate::auth::jwt::JwtKeys;
use crate::config::{ServeOpts, StoreOpts};
use crate::events::Bus;
use crate::service::{ServiceConfig, Services};
use crate::store::Store;
use anyhow::Context;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub async fn open_store(opts: &StoreOpts) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("cannot create data directory {}", opts.data_dir.display()))?;
    // An empty DATABASE_URL means "not set" (SQLite would read it as a private,
    // per-connection temporary database).
    let url = opts
        .database_url
        .as_deref()
        .filter(|u| !u.trim().is_empty());
    Store::open(url, &opts.data_dir).await
}

/// `SWITCHBOARD_JWT_SECRET`, or a 256-bit secret generated into the data directory on
/// first start (readable by the owner only).
fn jwt_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(secret) = std::env::var("SWITCHBOARD_JWT_SECRET") {
        return Ok(secret.into_bytes());
    }
    let path = data_dir.join("jwt.secret");
    match std::fs::read_to_string(&path) {
        Ok(hex_secret) => hex::decode(hex_secret.trim()).context("jwt.secret is not hex"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret: [u8; 32] = rand::random();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            file.write_all(hex::encode(secret).as_bytes())?;
            Ok(secret.to_vec())
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Runs the server until SIGINT/SIGTERM. SIP and the registrar's upkeep run on
/// `sip_runtime`; HTTP on the runtime this is called on (see [`crate::runtime`]).
pub async fn serve(
    store_opts: StoreOpts,
    opts: ServeOpts,
    sip_runtime: tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let rtp_ports = crate::media::ports::PortPool::parse(&opts.rtp_ports)
        .map_err(|e| anyhow::anyhow!("--rtp-ports {:?}: {e}", opts.rtp_ports))?;
    let mailer = match &opts.smtp_url {
        Some(url) => Some(crate::service::Mailer::new(url, &opts.smtp_from).context("--smtp-url")?),
        None => None,
    };
    let tls = match (&opts.tls_cert, &opts.tls_key) {
        (Some(cert), Some(key)) => Some(crate::tls::Tls::load(cert, key)?),
        _ => None,
    };
    let store = open_store(&store_opts).await?;
    let jwt = JwtKeys::new(&jwt_secret(&store_opts.data_dir)?, opts.jwt_ttl)?;
    let config = ServiceConfig {
        node_id: opts.node_id.clone().unwrap_or_else(crate::config::hostname),
        max_bindings: opts.max_bindings.max(1),
        data_dir: store_opts.data_dir.clone(),
        mailer,
    };
    // Built on the SIP runtime: the write-behind tasks it starts (bindings, call
    // records) are SIP's work and must not queue behind API load.
    let event_buffer = opts.event_buffer;
    let services = sip_runtime
        .spawn(async move { Services::with_config(store, Bus::new(event_buffer), jwt, config) })
        .await?;

    let domain = opts
        .sip_domain
        .clone()
        .unwrap_or_else(crate::config::primary_ip);
    if let Some((pbx, key)) = services.bootstrap().ensure_default(&domain).await? {
        println!(
            "switchboard: created PBX \"{}\" ({}) with SIP domain {}",
            pbx.name, pbx.id, pbx.sip_domain
        );
        println!("switchboard: admin API key (all scopes), shown only this once: {key}");
    } else if let Some(wanted) = &opts.sip_domain
        && let Some(pbx) = services.pbx_by_id_or_name("default").await?
        && &pbx.sip_domain != wanted
    {
        tracing::warn!(
            pbx.sip_domain = %pbx.sip_domain,
            wanted = %wanted,
            "--sip-domain applies when the default PBX is created; the stored domain is the digest realm of every SIP password, so it is kept"
        );
    }

    let orphans = services.end_orphaned_calls().await?;
    if orphans > 0 {
        tracing::warn!(
            calls = orphans,
            "calls left up by the previous run were ended"
        );
    }
    let (orphan_files, orphan_rows) = services.reconcile_voicemail().await?;
    if orphan_files + orphan_rows > 0 {
        tracing::warn!(
            files = orphan_files,
            rows = orphan_rows,
            "voicemail files without a message and messages without a file were removed"
        );
    }
    let restored = services.restore_bindings().await?;
    if restored > 0 {
        tracing::info!(bindings = restored, "registrations restored");
    }

    let shutdown = CancellationToken::new();
    let message_timeout = std::time::Duration::from_secs(opts.message_timeout.max(1));
    let sip_config = crate::sip::SipConfig {
        addr: opts.sip,
        digest: crate::sip::parse_digest_list(&opts.sip_digest).map_err(anyhow::Error::msg)?,
        min_expires: opts.sip_min_expires.max(1),
        nonce_ttl: opts.sip_nonce_ttl,
        gateway: match &opts.sip_gateway {
            Some(raw) => Some(
                crate::sip::uri::Uri::parse(raw)
                    .map_err(|e| anyhow::anyhow!("--sip-gateway {raw:?}: {e}"))?,
            ),
            None => None,
        },
        max_call_duration: std::time::Duration::from_secs(opts.call_max_duration.max(1)),
        probe_interval: std::time::Duration::from_secs(opts.call_probe_interval.max(1)),
        advertise: opts.sip_advertise.clone(),
        rtp_ports,
        rtp_timeout: std::time::Duration::from_secs(opts.rtp_timeout.max(1)),
        stream_limits: crate::sip::stack::transport::StreamLimits {
            max_connections: opts.sip_max_connections.max(1),
            max_per_address: opts.sip_max_connections_per_address.max(1),
            message_timeout,
        },
        tls: tls.as_ref().map(|t| crate::sip::SipTls {
            addr: opts.sip_tls,
            acceptor: t.sip.clone(),
        }),
    };
    let sip = sip_runtime
        .spawn(crate::sip::start(
            services.clone(),
            sip_config,
            shutdown.clone(),
        ))
        .await??;
    sip_runtime.spawn(maintenance(services.clone(), shutdown.clone()));
    let schema = api::graphql::build_schema(Some(services.clone()));
    let state = AppState {
        graphql: api::graphql::SubscriptionExecutor::new(schema, opts.event_buffer),
        services: services.clone(),
        sip: Some(sip.sip.clone()),
        shutdown: shutdown.clone(),
    };
    let listener = tokio::net::TcpListener::bind(opts.http)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", opts.http))?;
    let http_addr = listener.local_addr()?;
    let https = match &tls {
        Some(tls) => {
            let listener = tokio::net::TcpListener::bind(opts.https)
                .await
                .with_context(|| format!("cannot listen for HTTPS on {}", opts.https))?;
            Some((listener, tls.https.clone()))
        }
        None => None,
    };
    let mut ready = format!("switchboard: ready http={http_addr} sip={}", sip.addr);
    if let Some((listener, _)) = &https {
        ready.push_str(&format!(" https={}", listener.local_addr()?));
    }
    if let Some(addr) = sip.tls_addr {
        ready.push_str(&format!(" sip_tls={addr}"));
    }
    println!("{ready} database={}", services.database_backend());
    std::io::stdout().flush()?;
    tracing::info!(http.addr = %http_addr, "listening");

    tokio::spawn(stop_on_signal(shutdown.clone()));
    let router = api::router(state);
    if let Some((listener, acceptor)) = https {
        let app = router
            .clone()
            .layer(axum::Extension(api::Secure))
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        let listener = axum::serve::ListenerExt::tap_io(
            api::HttpsListener::new(listener, acceptor, message_timeout),
            |_| {},
        );
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
            {
                tracing::error!(error = %e, "HTTPS server failed");
            }
        });
    }
    let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    // The no-op tap is how axum hands a custom listener's address to `ConnectInfo`: it
    // implements that for any tapped listener, and the orphan rule keeps us from
    // implementing it for ours.
    let listener =
        axum::serve::ListenerExt::tap_io(api::HttpListener::new(listener, message_timeout), |_| {});
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await?;
    tracing::info!("stopped");
    Ok(())
}

/// Background upkeep: expire bindings every second, purge old device records hourly.
async fn maintenance(services: Arc<Services>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(e) = services.expire_bindings().await {
            tracing::error!(error = %e, "expiring registrations failed");
        }
        ticks += 1;
        if ticks % 3600 == 1 {
            if let Err(e) = services.purge_old_devices().await {
                tracing::error!(error = %e, "purging old devices failed");
            }
            match services.purge_voicemail().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "voicemail past its retention purged"),
                Err(e) => tracing::error!(error = %e, "purging voicemail failed"),
            }
        }
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
    shutdown.cancel();
}
