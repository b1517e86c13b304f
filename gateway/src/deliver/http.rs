//! The `http` and `fhir` destinations: one POST per message over a shared,
//! keep-alive `reqwest` client (rustls). The answer is classified by
//! [`classify_http`]: 2xx delivered; 429/503 pause the destination
//! (honouring Retry-After); 5xx, 408, 409 and network errors are retried;
//! other 4xx dead-letter the message with the server's OperationOutcome.
//! A 401 refreshes the token once and retries at once; a second 401 means
//! the credentials are wrong, which is the destination's problem, not the
//! message's: it waits (circuit open) instead of dead-lettering everything.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, RETRY_AFTER};

use super::payload::Prepared;
use super::verdict::{classify_http, Verdict};
use crate::config::{DeliveryPolicy, HttpDestination};

pub struct HttpSender {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    fhir: bool,
    retry_after_max: Duration,
}

/// Most bytes of an error response read (for its OperationOutcome).
const MAX_ERROR_BODY: usize = 64 * 1024;

impl HttpSender {
    pub fn new(
        dest: &HttpDestination,
        fhir: bool,
        policy: &DeliveryPolicy,
        client: reqwest::Client,
    ) -> Result<HttpSender, String> {
        let mut headers = HeaderMap::new();
        for (k, v) in &dest.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| format!("header name '{k}': {e}"))?;
            let mut value =
                HeaderValue::from_str(v).map_err(|e| format!("header '{k}' value: {e}"))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        Ok(HttpSender {
            client,
            url: dest.url.clone(),
            headers,
            fhir,
            retry_after_max: policy.retry_after_max,
        })
    }

    /// A client for destinations without custom TLS settings.
    pub fn default_client(policy: &DeliveryPolicy) -> Result<reqwest::Client, String> {
        reqwest::Client::builder()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(policy.concurrency.max(1))
            .tcp_nodelay(true)
            .user_agent(concat!("clinic-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))
    }

    pub async fn send(&self, p: &Prepared) -> Verdict {
        let mut req = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, p.content_type)
            .header("Idempotency-Key", p.message_id.to_string())
            .body(p.body.clone());
        if self.fhir {
            req = req.header(ACCEPT, "application/fhir+json");
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Verdict::retry(describe_reqwest(&e)),
        };
        let status = resp.status().as_u16();
        if (200..300).contains(&status) {
            // Drain the body so the connection returns to the pool.
            let _ = resp.bytes().await;
            return Verdict::Delivered;
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

/// A network error in words an operator can act on (no URL query strings).
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
    let mut cause = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {cause}")
    }
}
