//! The HTTP side of an export: requests with the bearer (fresh before each
//! request when near expiry — `TokenProvider` renews — and one
//! re-authentication on a 401), redirects followed by hand (a signed
//! object-store URL rejects a second auth header, and the bearer never
//! goes to another origin), and two clients: one with the per-request
//! timeout (kick-off, polls, manifests) and one for downloads whose only
//! limit is a stall timeout per read.

use std::time::Duration;

use reqwest::header::{HeaderValue, ACCEPT, ACCEPT_ENCODING, AUTHORIZATION, LOCATION};
use reqwest::{Method, Response, Url};

use crate::auth::TokenProvider;
use crate::config::ExportConfig;
use crate::deliver::http_sender::describe_reqwest;

/// Most redirects followed for one request.
const MAX_REDIRECTS: usize = 5;

#[derive(Clone)]
pub struct ExportHttp {
    api: reqwest::Client,
    download: reqwest::Client,
    auth: Option<TokenProvider>,
    /// A download read that yields nothing for this long fails (and is retried).
    pub stall: Duration,
}

/// A request failed without an HTTP answer, or the token could not be had;
/// `permanent`: the token endpoint refused our credentials (retrying will
/// not help: the job fails and says why).
#[derive(Debug, Clone)]
pub struct Transport(pub String, pub bool);

impl ExportHttp {
    pub fn new(
        cfg: &ExportConfig,
    ) -> Result<ExportHttp, crate::net::https_client::HttpsClientError> {
        let api = crate::net::https_client::reqwest_client(&cfg.tls)?;
        let mut long = cfg.tls.clone();
        // A 5 GB file takes long: no total limit, a stall limit per read instead.
        long.request_timeout = Duration::from_secs(7 * 24 * 3600);
        let download = crate::net::https_client::reqwest_client(&long)?;
        let auth = cfg.auth.clone().map(|a| TokenProvider::new(a, api.clone()));
        Ok(ExportHttp {
            api,
            download,
            auth,
            stall: cfg.tls.request_timeout,
        })
    }

    async fn token(&self) -> Result<Option<HeaderValue>, Transport> {
        match &self.auth {
            None => Ok(None),
            Some(p) => p.authorization().await.map_err(|e| {
                Transport(
                    format!("cannot get an access token: {}", e.message()),
                    !e.is_transient(),
                )
            }),
        }
    }

    /// One API request (kick-off, status poll, manifest page, DELETE) with
    /// the bearer; a 401 invalidates the token and retries once.
    pub async fn api(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, Transport> {
        let send = |h: Option<HeaderValue>| {
            let mut req = self
                .api
                .request(method.clone(), url)
                .header(ACCEPT, "application/fhir+json");
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = &body {
                req = req
                    .header("content-type", "application/fhir+json")
                    .body(b.clone());
            }
            if let Some(h) = h {
                req = req.header(AUTHORIZATION, h);
            }
            req.send()
        };
        let h = self.token().await?;
        let resp = send(h.clone())
            .await
            .map_err(|e| Transport(describe_reqwest(&e), false))?;
        if resp.status().as_u16() != 401 {
            return Ok(resp);
        }
        match (&self.auth, &h) {
            (Some(p), Some(sent)) => {
                p.invalidate_if_current(sent);
                let h = self.token().await?;
                send(h)
                    .await
                    .map_err(|e| Transport(describe_reqwest(&e), false))
            }
            _ => Ok(resp),
        }
    }

    /// GET a file of the manifest: `Accept: application/fhir+ndjson`,
    /// `Accept-Encoding: gzip`; the bearer only if `with_token`, and only
    /// to the file URL's own origin across redirects (followed by hand).
    /// A 401 with a token re-authenticates once.
    pub async fn download(&self, url: &str, with_token: bool) -> Result<Response, Transport> {
        let first = self.get_following(url, with_token).await?;
        if first.status().as_u16() == 401 && with_token {
            if let Some(p) = &self.auth {
                p.invalidate();
                return self.get_following(url, with_token).await;
            }
        }
        Ok(first)
    }

    async fn get_following(&self, url: &str, with_token: bool) -> Result<Response, Transport> {
        let start =
            Url::parse(url).map_err(|e| Transport(format!("file URL {url:?}: {e}"), false))?;
        let origin = start.origin();
        let mut at = start;
        let token = if with_token {
            self.token().await?
        } else {
            None
        };
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self
                .download
                .get(at.clone())
                .header(ACCEPT, "application/fhir+ndjson")
                .header(ACCEPT_ENCODING, "gzip");
            if let Some(t) = &token {
                if at.origin() == origin {
                    req = req.header(AUTHORIZATION, t.clone());
                }
            }
            let resp = req
                .send()
                .await
                .map_err(|e| Transport(describe_reqwest(&e), false))?;
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let Some(loc) = resp.headers().get(LOCATION).and_then(|l| l.to_str().ok()) else {
                return Ok(resp);
            };
            at = at
                .join(loc)
                .map_err(|e| Transport(format!("redirect to {loc:?}: {e}"), false))?;
        }
        Err(Transport(
            format!("more than {MAX_REDIRECTS} redirects for a file of the export"),
            false,
        ))
    }
}

/// The `Retry-After` of an answer, as text.
pub fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a [u8]> {
    resp.headers().get(name).map(|v| v.as_bytes())
}
