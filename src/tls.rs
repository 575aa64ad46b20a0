//! TLS: the server configuration shared by SIP over TLS and HTTPS, from PEM files, on
//! rustls with the ring provider (no C toolchain beyond what ring itself builds).

use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

/// What a TLS listener needs: the acceptor, per protocol (ALPN differs).
#[derive(Clone)]
pub struct Tls {
    /// SIP over TLS (no ALPN).
    pub sip: TlsAcceptor,
    /// HTTPS, HTTP/1.1 only (websockets upgrade over it).
    pub https: TlsAcceptor,
}

impl Tls {
    /// Loads `cert` (a PEM chain, leaf first) and `key` (PEM).
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Tls> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .with_context(|| format!("cannot read certificate {}", cert.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("bad PEM in {}", cert.display()))?;
        if chain.is_empty() {
            anyhow::bail!("no certificate in {}", cert.display());
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("cannot read a private key from {}", key.display()))?;
        let config = |alpn: &[&[u8]]| -> anyhow::Result<Arc<ServerConfig>> {
            let mut config = ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key.clone_key())
            .context("the certificate and key do not go together")?;
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(Arc::new(config))
        };
        Ok(Tls {
            sip: TlsAcceptor::from(config(&[])?),
            https: TlsAcceptor::from(config(&[b"http/1.1"])?),
        })
    }
}
