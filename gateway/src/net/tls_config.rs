//! rustls configuration from PEM files: TLS 1.2 and 1.3 only, ring
//! provider. Server configs (MLLP listeners, the status page) with a
//! certificate and key and an optional client CA that makes mutual TLS
//! mandatory; client configs (`gateway send`, MLLP destinations) that trust
//! only a given CA. Errors are [`TlsConfigError`], naming the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::TlsServerConfig;

/// Why a TLS configuration could not be built; every variant names the
/// file (or host) involved, and keeps the underlying error as its source.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("{}: cannot read certificates: {source}", path.display())]
    ReadCertificates {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{}: bad PEM certificate: {source}", path.display())]
    BadCertificate {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{}: no CERTIFICATE block found", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{}: no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {source}", path.display())]
    Key {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{}: unusable CA certificate: {source}", path.display())]
    CaCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("TLS setup: {0}")]
    Setup(#[source] rustls::Error),
    #[error("{}: client CA: {source}", path.display())]
    ClientCa {
        path: PathBuf,
        source: rustls::server::VerifierBuilderError,
    },
    #[error("{} / {}: certificate and key do not form a usable pair: {source}", cert.display(), key.display())]
    KeyPair {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("{}: client certificate: {source}", path.display())]
    ClientCertificate {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("'{host}' is not a valid TLS server name: {source}")]
    ServerName {
        host: String,
        source: rustls::pki_types::InvalidDnsNameError,
    },
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|source| TlsConfigError::ReadCertificates {
            path: path.to_path_buf(),
            source,
        })?
        .collect::<Result<_, _>>()
        .map_err(|source| TlsConfigError::BadCertificate {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsConfigError::Key {
        path: path.to_path_buf(),
        source,
    })
}

fn roots(path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let mut store = RootCertStore::empty();
    for c in load_certs(path)? {
        store
            .add(c)
            .map_err(|source| TlsConfigError::CaCertificate {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(store)
}

pub fn server_config(cfg: &TlsServerConfig) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let certs = load_certs(&cfg.cert)?;
    let key = load_key(&cfg.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(TlsConfigError::Setup)?;
    let builder = match &cfg.client_ca {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(|source| TlsConfigError::ClientCa {
                        path: ca.clone(),
                        source,
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config =
        builder
            .with_single_cert(certs, key)
            .map_err(|source| TlsConfigError::KeyPair {
                cert: cfg.cert.clone(),
                key: cfg.key.clone(),
                source,
            })?;
    Ok(Arc::new(config))
}

/// Client side, for `gateway send --tls-ca`: trust only the given CA; optional client certificate for mTLS.
pub fn client_config(
    ca: &Path,
    client_cert: Option<(&Path, &Path)>,
) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(TlsConfigError::Setup)?
        .with_root_certificates(roots(ca)?);
    let config = match client_cert {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|source| TlsConfigError::ClientCertificate {
                path: cert.to_path_buf(),
                source,
            })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The name to verify the server certificate against: an IP address or a DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsConfigError> {
    ServerName::try_from(host.to_string()).map_err(|source| TlsConfigError::ServerName {
        host: host.to_string(),
        source,
    })
}
