//! Outbound TLS for HTTPS destinations (`fhir`, `http`), token endpoints and
//! MLLP-over-TLS destinations.
//!
//! Trust is the system roots (rustls-native-certs: the OS store, or
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` when set) **plus** an optional CA file,
//! so a site with a private CA keeps working with public clouds. TLS 1.2 and
//! 1.3 only, ring provider.
//!
//! Optional SPKI pinning (`spki_sha256_pins`, base64 SHA-256 of the leaf
//! certificate's DER SubjectPublicKeyInfo, the HPKP / curl `--pinnedpubkey`
//! format): the normal WebPKI verification runs first (chain, name, dates);
//! a pin never replaces it. Then the leaf's SPKI hash must equal one pin.
//! Pinning the key (not the certificate) survives certificate renewals
//! that keep the key; list the next key's pin too before rotating it.
//!
//! Optional client certificate (`client_cert` + `client_key`, as for
//! mllps destinations): mutual TLS for a server that asks for one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::Deserialize;

use super::der;

/// `[destination.tls]` as written in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpsClient {
    /// PEM file with extra trusted CA certificates (added to the system roots).
    pub ca_file: Option<PathBuf>,
    /// base64(SHA-256(DER SubjectPublicKeyInfo)) of acceptable leaf keys;
    /// a `sha256//` prefix (curl's notation) is accepted.
    #[serde(default)]
    pub spki_sha256_pins: Vec<String>,
    pub connect_timeout_secs: Option<u64>,
    pub request_timeout_secs: Option<u64>,
    /// PEM certificate chain presented to a server that asks for one
    /// (mutual TLS); needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert` (PKCS#8, PKCS#1 or SEC1).
    pub client_key: Option<PathBuf>,
}

/// Validated client TLS and timeout settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsClientConfig {
    pub ca_file: Option<PathBuf>,
    /// As configured (base64), validated to decode to 32 bytes.
    pub spki_sha256_pins: Vec<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// `(client_cert, client_key)`: presented for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for HttpsClientConfig {
    fn default() -> Self {
        HttpsClientConfig {
            ca_file: None,
            spki_sha256_pins: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            client_cert: None,
        }
    }
}

/// What building an HTTPS client can fail with. Display names the config
/// field (`tls.ca_file`, `tls.spki_sha256_pins[i]`) where there is one.
#[derive(Debug, thiserror::Error)]
pub enum HttpsClientError {
    #[error("tls.ca_file: {0}")]
    CaFile(#[source] Box<crate::net::tls_config::TlsConfigError>),
    #[error("tls.ca_file: {}: unusable CA certificate: {source}", path.display())]
    UnusableCa {
        path: std::path::PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error(
        "no trusted CA certificates: the system store is empty (install the \
         ca-certificates package) and no tls.ca_file is set"
    )]
    NoRoots,
    #[error("tls.spki_sha256_pins[{index}]: {reason}")]
    Pin { index: usize, reason: String },
    #[error("TLS setup: {0}")]
    Rustls(#[source] rustls::Error),
    #[error("TLS setup: {0}")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
    #[error("HTTPS client setup: {}", error_chain(.0))]
    Client(#[source] reqwest::Error),
    #[error("certificate: {0}")]
    Certificate(&'static str),
    #[error("tls.client_cert / tls.client_key: {0}")]
    ClientCert(#[source] Box<crate::net::tls_config::TlsConfigError>),
    #[error(
        "tls.client_cert / tls.client_key: {} and {} do not form a pair: {source} \
         (the key must be the one the certificate was issued for)",
        cert.display(), key.display()
    )]
    ClientKeyPair {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// Validates `[destination.tls]`: [`check`], then its files ([`check_files`]).
pub fn validate(raw: RawHttpsClient, base_dir: &Path) -> Result<HttpsClientConfig, String> {
    let cfg = check(raw, base_dir)?;
    check_files(&cfg)?;
    Ok(cfg)
}

/// The CA file, if any, holds at least one usable certificate; the client
/// certificate, if any, is readable and its key belongs to it. Reads them.
pub fn check_files(cfg: &HttpsClientConfig) -> Result<(), String> {
    if let Some(p) = &cfg.ca_file {
        load_ca_file(p).map_err(|e| e.to_string())?;
    }
    if let Some((cert, key)) = &cfg.client_cert {
        client_identity(cert, key).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The client certificate chain and key, checked to be a pair.
type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

fn client_identity(cert: &Path, key: &Path) -> Result<Identity, HttpsClientError> {
    let boxed = |e| HttpsClientError::ClientCert(Box::new(e));
    let chain = crate::net::tls_config::load_certs(cert).map_err(boxed)?;
    let der = crate::net::tls_config::load_key(key).map_err(boxed)?;
    let pair = |source| HttpsClientError::ClientKeyPair {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        source,
    };
    rustls::sign::CertifiedKey::from_der(chain.clone(), der.clone_key(), &provider())
        .and_then(|c| c.keys_match())
        .map_err(pair)?;
    Ok((chain, der))
}

/// The checks that need no file (pure): relative `ca_file` is resolved
/// against `base_dir` (the config file's directory); every pin must be
/// base64 of 32 bytes; timeouts must be positive.
pub fn check(raw: RawHttpsClient, base_dir: &Path) -> Result<HttpsClientConfig, String> {
    let ca_file = raw.ca_file.map(|p| base_dir.join(p));
    let client_cert = match (raw.client_cert, raw.client_key) {
        (Some(c), Some(k)) => Some((base_dir.join(c), base_dir.join(k))),
        (None, None) => None,
        (Some(_), None) => return Err("tls.client_cert needs tls.client_key too".into()),
        (None, Some(_)) => return Err("tls.client_key needs tls.client_cert too".into()),
    };
    for (i, pin) in raw.spki_sha256_pins.iter().enumerate() {
        decode_pin(pin).map_err(|e| format!("tls.spki_sha256_pins[{i}]: {e}"))?;
    }
    let secs = |v: Option<u64>, field: &str, default: Duration| match v {
        None => Ok(default),
        Some(0) => Err(format!(
            "tls.{field}: must be at least 1 second (omit it for the default of {} s)",
            default.as_secs()
        )),
        Some(s) => Ok(Duration::from_secs(s)),
    };
    Ok(HttpsClientConfig {
        ca_file,
        spki_sha256_pins: raw.spki_sha256_pins,
        connect_timeout: secs(
            raw.connect_timeout_secs,
            "connect_timeout_secs",
            DEFAULT_CONNECT_TIMEOUT,
        )?,
        request_timeout: secs(
            raw.request_timeout_secs,
            "request_timeout_secs",
            DEFAULT_REQUEST_TIMEOUT,
        )?,
        client_cert,
    })
}

fn decode_pin(pin: &str) -> Result<[u8; 32], String> {
    let b64 = pin
        .strip_prefix("sha256//")
        .or_else(|| pin.strip_prefix("sha256/"))
        .unwrap_or(pin)
        .trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| {
            format!(
                "'{pin}' is not base64 ({e}); compute it with: openssl x509 -in cert.pem -pubkey -noout \
                 | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64"
            )
        })?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "'{pin}' decodes to {} bytes, a SHA-256 pin has 32 (base64 of the SPKI's SHA-256 digest)",
            b.len()
        )
    })
}

fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, HttpsClientError> {
    let certs = crate::net::tls_config::load_certs(path)
        .map_err(|e| HttpsClientError::CaFile(Box::new(e)))?;
    let mut probe = RootCertStore::empty();
    for c in &certs {
        probe
            .add(c.clone())
            .map_err(|source| HttpsClientError::UnusableCa {
                path: path.to_path_buf(),
                source,
            })?;
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The system roots plus `ca_file`. Unreadable system certificates are
/// skipped (the OS store often holds a few odd ones); ending up with no
/// root at all is an error that says what to install or configure.
fn root_store(cfg: &HttpsClientConfig) -> Result<RootCertStore, HttpsClientError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 && !native.errors.is_empty() {
        log::warn!(
            "system CA certificates could not be loaded ({} errors); only tls.ca_file is trusted",
            native.errors.len()
        );
    }
    if let Some(path) = &cfg.ca_file {
        for c in load_ca_file(path)? {
            roots
                .add(c)
                .map_err(|source| HttpsClientError::UnusableCa {
                    path: path.clone(),
                    source,
                })?;
        }
    }
    if roots.is_empty() {
        return Err(HttpsClientError::NoRoots);
    }
    Ok(roots)
}

/// A rustls client configuration for `cfg`: system roots + CA file, TLS
/// 1.2/1.3, ring, and SPKI pinning on top of WebPKI verification when pins
/// are set. No ALPN is set (callers that speak HTTP/1.1 may add it).
pub fn rustls_client_config(cfg: &HttpsClientConfig) -> Result<ClientConfig, HttpsClientError> {
    let roots = Arc::new(root_store(cfg)?);
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(HttpsClientError::Rustls)?;
    let builder = if cfg.spki_sha256_pins.is_empty() {
        builder.with_root_certificates(roots)
    } else {
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(HttpsClientError::Verifier)?;
        let mut pins = Vec::with_capacity(cfg.spki_sha256_pins.len());
        for (index, pin) in cfg.spki_sha256_pins.iter().enumerate() {
            pins.push(decode_pin(pin).map_err(|reason| HttpsClientError::Pin { index, reason })?);
        }
        builder
            .dangerous() // a verifier that adds a check; WebPKI still runs first
            .with_custom_certificate_verifier(Arc::new(PinningVerifier { webpki, pins }))
    };
    let config = match &cfg.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let (chain, der) = client_identity(cert, key)?;
            builder
                .with_client_auth_cert(chain, der)
                .map_err(|source| HttpsClientError::ClientKeyPair {
                    cert: cert.clone(),
                    key: key.clone(),
                    source,
                })?
        }
    };
    Ok(config)
}

/// The User-Agent of every outbound HTTP request.
pub const USER_AGENT: &str = concat!("clinic-gateway/", env!("CARGO_PKG_VERSION"));

/// A reqwest client for one destination: the TLS above, HTTP/1.1, the
/// configured timeouts, keep-alive pooling sized for many concurrent lanes
/// to one host, and no redirects (a redirected POST would silently become a
/// GET; a 3xx is the caller's to report).
pub fn reqwest_client(cfg: &HttpsClientConfig) -> Result<reqwest::Client, HttpsClientError> {
    let mut tls = rustls_client_config(cfg)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .user_agent(USER_AGENT)
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.request_timeout)
        // Keep connections warm between bursts; the server usually closes
        // idle ones first (typ. 60–120 s), which reqwest handles by retrying
        // on a fresh connection only for requests not yet sent.
        .pool_idle_timeout(Duration::from_secs(50))
        .pool_max_idle_per_host(64)
        .tcp_keepalive(Duration::from_secs(30))
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(HttpsClientError::Client)
}

/// An error and all its sources on one line, with a hint for the common TLS
/// failures, e.g. "error sending request for url (...): ...: invalid peer
/// certificate: UnknownIssuer (the server's certificate is not signed by a
/// trusted CA: add its CA to [destination.tls] ca_file)".
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    if out.contains("UnknownIssuer") {
        out.push_str(
            " (the server's certificate is not signed by a trusted CA: add its CA to \
             [destination.tls] ca_file)",
        );
    } else if out.contains("NotValidForName") {
        out.push_str(" (the server's certificate does not name the host in the URL)");
    } else if out.contains("CertificateRequired") {
        out.push_str(
            " (the server requires a client certificate: set tls.client_cert and tls.client_key)",
        );
    } else if out.contains("Expired") {
        out.push_str(" (the server's certificate has expired, or this box's clock is wrong)");
    }
    out
}

/// WebPKI first, then the leaf's SPKI must match a pin.
#[derive(Debug)]
struct PinningVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
}

/// SHA-256 of the DER SubjectPublicKeyInfo of a DER certificate, base64.
pub fn spki_sha256_pin(cert_der: &[u8]) -> Result<String, HttpsClientError> {
    let spki = der::certificate_spki(cert_der).map_err(HttpsClientError::Certificate)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    Ok(base64::engine::general_purpose::STANDARD.encode(digest.as_ref()))
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let spki = der::certificate_spki(end_entity.as_ref())
            .map_err(|e| rustls::Error::General(format!("SPKI pin check: {e}")))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, spki);
        if self.pins.iter().any(|p| p[..] == *digest.as_ref()) {
            return Ok(verified);
        }
        let got = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        let wanted: Vec<String> = self
            .pins
            .iter()
            .map(|p| base64::engine::general_purpose::STANDARD.encode(p))
            .collect();
        Err(rustls::Error::General(format!(
            "SPKI pin mismatch for {}: the server's key is sha256 {got}, \
             tls.spki_sha256_pins allows [{}]; if the server's key was rotated on purpose, \
             add its pin",
            server_name.to_str(),
            wanted.join(", ")
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_validated_with_a_fix() {
        let good = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        for pin in [good.clone(), format!("sha256//{good}")] {
            assert!(decode_pin(&pin).is_ok(), "{pin}");
        }
        let raw = RawHttpsClient {
            spki_sha256_pins: vec![good, "abc".into()],
            ..Default::default()
        };
        let err = validate(raw, Path::new("/")).unwrap_err();
        assert!(err.contains("tls.spki_sha256_pins[1]"), "{err}");
        let err = decode_pin("AAAA").unwrap_err();
        assert!(err.contains("3 bytes"), "{err}");
    }

    #[test]
    fn timeouts_default_and_zero_is_refused() {
        let cfg = validate(RawHttpsClient::default(), Path::new("/")).unwrap();
        assert_eq!(cfg, HttpsClientConfig::default());
        let raw = RawHttpsClient {
            connect_timeout_secs: Some(0),
            ..Default::default()
        };
        let err = validate(raw, Path::new("/")).unwrap_err();
        assert!(err.contains("tls.connect_timeout_secs"), "{err}");
    }

    #[test]
    fn missing_ca_file_names_the_field_and_path() {
        let raw = RawHttpsClient {
            ca_file: Some("nope/ca.pem".into()),
            ..Default::default()
        };
        let err = validate(raw, Path::new("/etc/gateway")).unwrap_err();
        assert!(
            err.contains("tls.ca_file") && err.contains("/etc/gateway/nope/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn toml_shape() {
        let raw: RawHttpsClient = toml::from_str(
            "ca_file = \"ca.pem\"\nspki_sha256_pins = [\"x\"]\nrequest_timeout_secs = 5\n",
        )
        .unwrap();
        assert_eq!(raw.spki_sha256_pins, vec!["x".to_string()]);
        assert!(toml::from_str::<RawHttpsClient>("cafile = \"x\"").is_err());
    }
}
