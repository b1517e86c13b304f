//! tough's `Transport` over reqwest 0.12 (rustls + ring, the gateway's own
//! HTTP stack) for `https://`/`http://`, and tough's filesystem transport for
//! `file://` (offline installs from a USB stick). Bodies are read with a hard
//! cap, so an endless response is cut off instead of filling memory.

use std::time::Duration;
use tough::{FilesystemTransport, Transport, TransportError, TransportErrorKind, TransportStream};
use url::Url;

#[derive(Debug, Clone)]
pub struct UpdaterTransport {
    client: reqwest::Client,
    /// Largest body accepted for any metadata file.
    max_body: u64,
}

/// Trusted CA certificates: the system's, plus an optional extra PEM file.
pub fn root_certificates(
    extra_ca: Option<&std::path::Path>,
) -> crate::Result<Vec<reqwest::Certificate>> {
    let mut out = Vec::new();
    for c in rustls_native_certs::load_native_certs().certs {
        if let Ok(cert) = reqwest::Certificate::from_der(c.as_ref()) {
            out.push(cert);
        }
    }
    if let Some(p) = extra_ca {
        let pem = std::fs::read(p).map_err(|e| crate::Error::io(p, "read CA file", e))?;
        let certs =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| crate::Error::Config {
                file: p.to_path_buf(),
                msg: format!("not a PEM certificate bundle: {e}"),
            })?;
        out.extend(certs);
    }
    Ok(out)
}

/// The HTTP client both the metadata and the chunk downloads start from:
/// the updater's user agent, the connect timeout, the trusted roots.
pub fn client_builder(
    connect_timeout: Duration,
    certs: Vec<reqwest::Certificate>,
) -> reqwest::ClientBuilder {
    let mut b = reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .user_agent(concat!(
            "clinic-gateway-updater/",
            env!("CARGO_PKG_VERSION")
        ));
    for c in certs {
        b = b.add_root_certificate(c);
    }
    b
}

impl UpdaterTransport {
    pub fn new(
        connect_timeout: Duration,
        timeout: Duration,
        certs: Vec<reqwest::Certificate>,
        max_body: u64,
    ) -> crate::Result<Self> {
        let client = client_builder(connect_timeout, certs)
            .timeout(timeout)
            .https_only(false)
            .build()
            .map_err(|e| crate::Error::Trust(format!("cannot build the HTTP client: {e}")))?;
        Ok(UpdaterTransport { client, max_body })
    }

    /// The most this file may be, by role (tough's limits, so an endless
    /// response is cut at the same size tough would refuse).
    fn cap_for(&self, url: &Url) -> u64 {
        let l = super::limits();
        let name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or("");
        let cap = if name == "timestamp.json" {
            l.max_timestamp_size
        } else if name.ends_with("root.json") {
            l.max_root_size
        } else if name.ends_with("snapshot.json") {
            l.max_snapshot_size
        } else {
            l.max_targets_size
        };
        cap.min(self.max_body)
    }
}

#[tough::async_trait]
impl Transport for UpdaterTransport {
    async fn fetch(&self, url: Url) -> Result<TransportStream, TransportError> {
        if url.scheme() == "file" {
            return FilesystemTransport.fetch(url).await;
        }
        if url.scheme() != "https" && url.scheme() != "http" {
            return Err(TransportError::new(
                TransportErrorKind::UnsupportedUrlScheme,
                url,
            ));
        }
        let other = |u: &Url, e: String| {
            TransportError::new_with_cause(
                TransportErrorKind::Other,
                u.clone(),
                std::io::Error::other(e),
            )
        };
        let mut resp = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| other(&url, super::chain(&e)))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND || status == reqwest::StatusCode::GONE {
            return Err(TransportError::new(TransportErrorKind::FileNotFound, url));
        }
        if !status.is_success() {
            return Err(other(&url, format!("HTTP {status}")));
        }
        let cap = self.cap_for(&url);
        let mut body: Vec<u8> = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| other(&url, super::chain(&e)))?
        {
            body.extend_from_slice(&chunk);
            if body.len() as u64 > cap {
                return Err(other(
                    &url,
                    format!("response exceeds {cap} bytes (endless data?)"),
                ));
            }
        }
        let bytes = tough::Bytes::from(body);
        Ok(Box::pin(futures::stream::once(async move { Ok(bytes) })))
    }
}
