//! The poster that the alerts webhook, the fleet heartbeat and remote-write share:
//! one HTTPS client (the destinations' TLS options, `crate::net::https_client`),
//! the optional `Authorization` of a destination (`crate::auth`), and one
//! POST at a time. Retrying is the caller's policy: the alerts queue retries
//! each notice, the heartbeat simply sends the next one.

use crate::auth::{AuthConfig, TokenProvider};
use crate::net::https_client::{self, HttpsClientConfig};

/// Why a POST did not get a 2xx. The texts are the ones the alerts and
/// fleet logs have always shown.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// No `Authorization` header could be produced.
    #[error("auth: {0}")]
    Auth(String),
    /// Connect, TLS, timeout or a cut response (reqwest's error chain).
    #[error("{0}")]
    Request(String),
    /// The server answered, but not with 2xx.
    #[error("HTTP {0}")]
    Status(u16),
    /// The caller's own deadline passed.
    #[error("timed out")]
    TimedOut,
}

/// Where JSON goes and how to authenticate.
pub struct Poster {
    url: String,
    client: reqwest::Client,
    auth: Option<TokenProvider>,
}

impl Poster {
    /// The client for `url` (errors are the TLS set-up's: CA file, pins).
    pub fn new(
        url: &str,
        tls: &HttpsClientConfig,
        auth: Option<&AuthConfig>,
    ) -> Result<Poster, crate::net::https_client::HttpsClientError> {
        let client = https_client::reqwest_client(tls)?;
        let auth = auth.cloned().map(|a| TokenProvider::new(a, client.clone()));
        Ok(Poster {
            url: url.to_string(),
            client,
            auth,
        })
    }

    /// POST `body` as JSON; Ok on 2xx. A 401 drops the cached token so the
    /// next POST fetches a fresh one.
    pub async fn post_json(&self, body: &serde_json::Value) -> Result<(), PostError> {
        self.send(self.client.post(&self.url).json(body)).await
    }

    /// POST raw `body` with these headers (remote-write: protobuf + snappy).
    pub async fn post_bytes(
        &self,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<(), PostError> {
        let mut req = self.client.post(&self.url).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    async fn send(&self, mut req: reqwest::RequestBuilder) -> Result<(), PostError> {
        if let Some(p) = &self.auth {
            match p.authorization().await {
                Ok(Some(h)) => req = req.header(reqwest::header::AUTHORIZATION, h),
                Ok(None) => {}
                Err(e) => return Err(PostError::Auth(e.message().to_string())),
            }
        }
        let resp = req
            .send()
            .await
            .map_err(|e| PostError::Request(https_client::error_chain(&e)))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            if let Some(p) = &self.auth {
                p.invalidate();
            }
        }
        Err(PostError::Status(status.as_u16()))
    }
}
