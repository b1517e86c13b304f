//! The `http` and `fhir` destinations: one POST per message over a shared,
//! keep-alive `reqwest` client (rustls: the system roots plus the
//! destination's CA file and SPKI pins). The answer is classified by
//! [`classify_http`]: 2xx delivered; 429/503 pause the destination
//! (honouring Retry-After); 5xx, 408, 409 and network errors are retried;
//! other 4xx dead-letter the message with the server's OperationOutcome.
//! A 401 refreshes the token once and retries at once; a second 401 means
//! the credentials are wrong, which is the destination's problem, not the
//! message's: it waits (circuit open) instead of dead-lettering everything.
//!
//! A bulk export's resource (`Prepared::rest`) is one `PUT [base]/Type/id`
//! (a tombstone: `DELETE`, where 404/410 count as done) instead of a POST.
//!
//! A `fhir` destination in PUT mode first reads what the Bundle's writes
//! depend on (`fhir_update`: create-only entries; every Patient with
//! `update = "merge"`) and sends the Bundle rewritten with `If-Match`. A
//! 412 (the resource changed since it was read) reads again, at most
//! [`MAX_PRECONDITION_ROUNDS`] times in one attempt, then retries later.

use std::time::{Duration, SystemTime};

use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER,
};

use super::fhir_update;
use super::payload::Prepared;
use super::verdict::{classify_http, error_text, Verdict};
use crate::auth::TokenProvider;
use crate::config::{DeliveryPolicy, HttpDestination};
use crate::net::https_client::{self, error_chain, HttpsClientConfig};

pub struct HttpSender {
    client: reqwest::Client,
    auth: Option<TokenProvider>,
    /// Parsed once: parsing (with IDNA) per request showed in profiles.
    url: reqwest::Url,
    headers: HeaderMap,
    fhir: bool,
    /// `update = "merge"` (fhir): Patients are read, merged, written with If-Match.
    merge: bool,
    retry_after_max: Duration,
}

/// Most bytes of an error response read (for its OperationOutcome).
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Most bytes of a resource read before a write.
const MAX_READ_BODY: usize = 1024 * 1024;
/// Read-merge-write rounds per attempt when the server answers 412.
pub const MAX_PRECONDITION_ROUNDS: u32 = 3;

impl HttpSender {
    /// Build the sender, its HTTPS client and its token provider.
    pub fn new(
        dest: &HttpDestination,
        fhir: bool,
        policy: &DeliveryPolicy,
    ) -> Result<HttpSender, crate::Error> {
        let mut headers = HeaderMap::new();
        for (k, v) in &dest.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|source| {
                crate::Error::HeaderName {
                    name: k.clone(),
                    source,
                }
            })?;
            let mut value =
                HeaderValue::from_str(v).map_err(|source| crate::Error::HeaderValue {
                    name: k.clone(),
                    source,
                })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let mut tls = dest.tls.clone();
        tls.connect_timeout = policy.connect_timeout;
        tls.request_timeout = policy.timeout;
        let client = https_client::reqwest_client(&tls)?;
        // The token endpoint is another host: same extra CA, not the
        // destination's pins.
        let auth = match &dest.auth {
            None => None,
            Some(a) => {
                let token_tls = HttpsClientConfig {
                    spki_sha256_pins: Vec::new(),
                    ..tls.clone()
                };
                Some(TokenProvider::new(
                    a.clone(),
                    https_client::reqwest_client(&token_tls)?,
                ))
            }
        };
        Ok(HttpSender {
            client,
            auth,
            url: reqwest::Url::parse(&dest.url).map_err(|source| crate::Error::Url {
                url: dest.url.clone(),
                source,
            })?,
            headers,
            fhir,
            merge: dest.fhir.as_ref().is_some_and(|f| f.merge),
            retry_after_max: policy.retry_after_max,
        })
    }

    /// Access tokens fetched so far (for status and metrics).
    pub fn token_refreshes(&self) -> u64 {
        self.auth.as_ref().map_or(0, TokenProvider::refreshes)
    }

    async fn authorization(&self) -> Result<Option<HeaderValue>, Verdict> {
        let Some(p) = &self.auth else { return Ok(None) };
        p.authorization().await.map_err(|e| Verdict::Retry {
            // Permanent or not, a token failure is the destination's problem
            // (wrong credentials, token endpoint down), never the message's:
            // hold everything (circuit) rather than dead-letter the backlog.
            reason: format!("cannot get an access token: {}", e.message()),
            retry_after: e.retry_after(),
            whole_destination: true,
            answered: false,
        })
    }

    /// `GET <base>/<Type/id>`: the server's resource, `None` if it has none.
    async fn read(
        &self,
        path: &str,
        auth: Option<&HeaderValue>,
    ) -> Result<Option<serde_json::Value>, Verdict> {
        let url = format!("{}/{path}", self.url.as_str().trim_end_matches('/'));
        let mut req = self
            .client
            .get(&url)
            .headers(self.headers.clone())
            .header(ACCEPT, "application/fhir+json");
        if let Some(h) = auth {
            req = req.header(AUTHORIZATION, h.clone());
        }
        let resp = req.send().await.map_err(|e| {
            Verdict::retry(format!(
                "reading {path} before the write: {}",
                describe_reqwest(&e)
            ))
        })?;
        let status = resp.status().as_u16();
        match status {
            200 => {
                let body = read_capped(resp, MAX_READ_BODY).await;
                serde_json::from_slice(&body).map(Some).map_err(|e| {
                    Verdict::retry(format!("reading {path} before the write: not JSON: {e}"))
                })
            }
            404 | 410 => Ok(None),
            _ => {
                let body = read_capped(resp, MAX_ERROR_BODY).await;
                Err(Verdict::retry(format!(
                    "reading {path} before the write: HTTP {status} ({})",
                    error_text(&body)
                )))
            }
        }
    }

    /// The body to send: the Bundle rewritten from what the server has
    /// (fhir_update), or as mapped when nothing depends on it.
    async fn body_for(
        &self,
        p: &Prepared,
        auth: Option<&HeaderValue>,
    ) -> Result<bytes::Bytes, Verdict> {
        if !self.fhir || p.rest.is_some() {
            return Ok(p.body.clone());
        }
        let bad = |e: String| Verdict::Reject {
            reason: format!("cannot prepare the Bundle's reads: {e}"),
        };
        let urls = fhir_update::to_read(&p.body, &p.create_only, self.merge).map_err(bad)?;
        if urls.is_empty() {
            return Ok(p.body.clone());
        }
        let mut found = std::collections::HashMap::new();
        for u in urls {
            if let Some(r) = self.read(&u, auth).await? {
                found.insert(u, r);
            }
        }
        fhir_update::rewrite(&p.body, &p.create_only, self.merge, &found)
            .map(bytes::Bytes::from)
            .map_err(bad)
    }

    async fn post(
        &self,
        p: &Prepared,
        auth: Option<&HeaderValue>,
    ) -> Result<reqwest::Response, Verdict> {
        let mut rounds = 0;
        loop {
            rounds += 1;
            let body = self.body_for(p, auth).await?;
            let resp = self.post_body(p, body, auth).await?;
            // Only a fhir Bundle's If-Match is ours to answer by reading again.
            if !self.fhir || resp.status().as_u16() != 412 || rounds >= MAX_PRECONDITION_ROUNDS {
                return Ok(resp);
            }
            // Changed since read: read again and merge again.
            let _ = read_capped(resp, MAX_ERROR_BODY).await;
        }
    }

    async fn post_body(
        &self,
        p: &Prepared,
        body: bytes::Bytes,
        auth: Option<&HeaderValue>,
    ) -> Result<reqwest::Response, Verdict> {
        let req = match &p.rest {
            None => self.client.post(self.url.clone()),
            Some(w) => {
                let url = format!("{}/{}", self.url.as_str().trim_end_matches('/'), w.path);
                let method = if w.delete {
                    reqwest::Method::DELETE
                } else {
                    reqwest::Method::PUT
                };
                self.client.request(method, url)
            }
        };
        let mut req = req
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, p.content_type)
            .header("Idempotency-Key", p.message_id.to_string())
            .body(body);
        if self.fhir {
            req = req.header(ACCEPT, "application/fhir+json");
        }
        if let Some(h) = auth {
            req = req.header(AUTHORIZATION, h.clone());
        }
        req.send()
            .await
            .map_err(|e| Verdict::retry(describe_reqwest(&e)))
    }

    pub async fn send(&self, p: &Prepared) -> Verdict {
        let auth = match self.authorization().await {
            Ok(a) => a,
            Err(v) => return v,
        };
        let mut resp = match self.post(p, auth.as_ref()).await {
            Ok(r) => r,
            Err(v) => return v,
        };
        if resp.status().as_u16() == 401 {
            if let (Some(provider), Some(sent)) = (&self.auth, &auth) {
                // Once: a fresh token, then the same request again.
                provider.invalidate_if_current(sent);
                let fresh = match self.authorization().await {
                    Ok(a) => a,
                    Err(v) => return v,
                };
                resp = match self.post(p, fresh.as_ref()).await {
                    Ok(r) => r,
                    Err(v) => return v,
                };
                if resp.status().as_u16() == 401 {
                    let body = read_capped(resp, MAX_ERROR_BODY).await;
                    return Verdict::Retry {
                        reason: format!(
                            "HTTP 401 even with a new access token ({}): check the credentials in [destination.auth]",
                            error_text(&body)
                        ),
                        retry_after: None,
                        whole_destination: true,
                        answered: false,
                    };
                }
            }
        }
        let status = resp.status().as_u16();
        if matches!(status, 404 | 410) && p.rest.as_ref().is_some_and(|w| w.delete) {
            // Deleting what the server does not have: done.
            let _ = read_capped(resp, MAX_ERROR_BODY).await;
            return Verdict::Delivered;
        }
        if status == 412 && self.fhir {
            // Still changing after MAX_PRECONDITION_ROUNDS reads: later.
            let body = read_capped(resp, MAX_ERROR_BODY).await;
            return Verdict::Retry {
                reason: format!(
                    "HTTP 412 {MAX_PRECONDITION_ROUNDS} times: the resource kept changing between read and write ({})",
                    error_text(&body)
                ),
                retry_after: None,
                whole_destination: false,
                answered: true,
            };
        }
        if (200..300).contains(&status) {
            // Read the body so the connection goes back to the pool; a
            // response cut short means we cannot be sure: retry (the
            // destination de-duplicates).
            return match resp.bytes().await {
                Ok(_) => Verdict::Delivered,
                Err(e) => Verdict::retry(describe_reqwest(&e)),
            };
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_capped(resp, MAX_ERROR_BODY).await;
        classify_http(
            status,
            retry_after.as_deref(),
            &body,
            SystemTime::now(),
            self.retry_after_max,
        )
    }
}

async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    out
}

/// A network error in words an operator can act on: the kind, then the
/// whole cause chain (with a hint for TLS failures).
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "connection dropped mid-response"
    } else if e.is_request() {
        "request failed"
    } else {
        "HTTP error"
    };
    format!("{kind}: {}", error_chain(e))
}
