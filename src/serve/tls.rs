//! TLS for both of `floe serve`'s ports, from a PEM certificate chain and
//! key (`[serve] tls_cert_file`, `tls_key_file`).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate chain and key, read and checked once at start.
pub struct TlsFiles {
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
}

impl TlsFiles {
    pub fn read(cert: &Path, key: &Path) -> Result<Self> {
        // floe links two rustls crypto providers (ring, and aws-lc-rs
        // through a dependency), and tonic takes the process default:
        // name it (a second call finds it set, which is fine)
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cert_pem = std::fs::read(cert)
            .with_context(|| format!("[serve] tls_cert_file: cannot read {}", cert.display()))?;
        let key_pem = std::fs::read(key)
            .with_context(|| format!("[serve] tls_key_file: cannot read {}", key.display()))?;
        let files = Self { cert_pem, key_pem };
        // found now, not at the first connection
        files.http()?;
        Ok(files)
    }

    /// The HTTP port's acceptor.
    pub fn http(&self) -> Result<tokio_rustls::TlsAcceptor> {
        let certs = CertificateDer::pem_slice_iter(&self.cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .context("[serve] tls_cert_file is not a PEM certificate chain")?;
        if certs.is_empty() {
            anyhow::bail!("[serve] tls_cert_file holds no certificate");
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .context("[serve] tls_key_file is not a PEM private key")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context(
                "[serve] tls_cert_file and tls_key_file do not make a certificate and its key",
            )?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// The Flight SQL port's configuration.
    pub fn grpc(&self) -> tonic::transport::ServerTlsConfig {
        tonic::transport::ServerTlsConfig::new().identity(tonic::transport::Identity::from_pem(
            &self.cert_pem,
            &self.key_pem,
        ))
    }
}
