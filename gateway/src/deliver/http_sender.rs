//! The `http` and `fhir` destinations: one POST per message over a shared,
//! keep-alive `reqwest` client (rustls: the system roots plus the
//! destination's CA file and SPKI pins). The answer is classified by
//! [`classify_http`]: 2xx delivered; 429/503 pause the destination
//! (honouring Retry-After); 5xx, 408, 409 and network errors are retried;
//! other 4xx dead-letter the message with the server's OperationOutcome.
//! A 401 refreshes the token once and retries at once; a second 401 means
//! the credentials are wrong, which is the destination's problem, not the
//! message's: it waits (circuit open) instead of dead-lettering everything.

use std::time::{Duration, SystemTime};

use reqwest::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER,
};

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
    retry_after_max: Duration,
}

/// Most bytes of an error response read (for its OperationOutcome).
const MAX_ERROR_BODY: usize = 64 * 1024;

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
        })
    }

    async fn post(
        &self,
        p: &Prepared,
        auth: Option<&HeaderValue>,
    ) -> Result<reqwest::Response, Verdict> {
        let mut req = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, p.content_type)
            .header("Idempotency-Key", p.message_id.to_string())
            .body(p.body.clone());
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
                    };
                }
            }
        }
        let status = resp.status().as_u16();
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
