//! `TokenProvider`: the `Authorization` header for one destination.
//!
//! Static flows (bearer, basic) return a precomputed header. OAuth flows
//! (client_credentials, smart_backend) keep one cached access token:
//!
//! - **Renewal before expiry.** A token obtained with `expires_in = E` is
//!   renewed from `E - min(60 s, E/5)` after the request was sent (80 % for
//!   short tokens, a minute early for long ones) and not used after
//!   `E - min(5 s, E/10)`.
//! - **Single flight.** One task renews; callers arriving meanwhile keep the
//!   current token if it is still usable, or wait for the renewal and share
//!   its outcome, success or error. N concurrent callers ⇒ one token request.
//! - **Outages.** If a renewal fails while the current token is still
//!   usable, the current token is used and renewal is retried after 5 s. When
//!   no usable token is left, the error goes to the caller, classified
//!   [`AuthError::Transient`] (network, timeout, TLS, 408/429/5xx: back off
//!   and retry) or [`AuthError::Permanent`] (the server refused the
//!   credentials or the request: an operator must act).
//! - **401 from the destination.** The caller calls [`TokenProvider::invalidate`]
//!   (or `invalidate_if_current` with the header it sent), gets a fresh
//!   token from the next `authorization()`, and retries once.
//!
//! SMART Backend Services signs a fresh assertion, with a new random `jti`,
//! for every token request. Tokens, secrets and assertions are never logged
//! and never appear in errors.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use serde::Deserialize;

use super::assertion;
use super::config::{AuthConfig, ClientAuthMethod, ClientCredentials, SmartBackend};
use crate::net::https_client::error_chain;

/// Why no `Authorization` header could be produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Network, timeout, TLS, or the token endpoint answered 408, 429 or
    /// 5xx: back off and retry; `retry_after` is the endpoint's
    /// `Retry-After` (seconds form) when it gave one.
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The token endpoint refused (400/401/403 `invalid_client`,
    /// `invalid_scope`, ...) or answered something that is not a token:
    /// retrying will not help until the configuration or the server's
    /// registration is fixed. The message carries the OAuth `error` and
    /// `error_description`, never a secret.
    Permanent { message: String },
}

impl AuthError {
    pub fn is_transient(&self) -> bool {
        matches!(self, AuthError::Transient { .. })
    }
    pub fn message(&self) -> &str {
        match self {
            AuthError::Transient { message, .. } | AuthError::Permanent { message } => message,
        }
    }
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AuthError::Transient { retry_after, .. } => *retry_after,
            AuthError::Permanent { .. } => None,
        }
    }
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for AuthError {}

/// Cheap to clone: all clones share one cache and one set of counters.
#[derive(Clone)]
pub struct TokenProvider {
    inner: Arc<Inner>,
}

struct Inner {
    flow: Flow,
    client: reqwest::Client,
    cache: Mutex<Cache>,
    /// Held by the one task that is fetching a token.
    refresh: tokio::sync::Mutex<()>,
    refreshes: AtomicU64,
    failures: AtomicU64,
}

enum Flow {
    None,
    Static(HeaderValue),
    ClientCredentials(ClientCredentials),
    Smart(SmartBackend),
}

#[derive(Default)]
struct Cache {
    token: Option<Cached>,
    /// Completed token requests, successful or not.
    attempts: u64,
    /// The outcome of the last attempt when it failed.
    last_error: Option<AuthError>,
    /// After a failed renewal, keep the current token until then.
    retry_not_before: Option<Instant>,
}

struct Cached {
    header: HeaderValue,
    refresh_at: Instant,
    expires_at: Instant,
}

/// After a failed renewal with a still-usable token, wait this long before the next try.
const RENEWAL_RETRY: Duration = Duration::from_secs(5);
/// When the server omits `expires_in`.
const DEFAULT_EXPIRES_IN: u64 = 300;
/// A token endpoint answer larger than this is not a token response.
const MAX_TOKEN_RESPONSE: usize = 256 * 1024;

impl TokenProvider {
    /// A provider for `config`, sending token requests with `client`
    /// (normally the destination's own [`crate::net::https_client::reqwest_client`]).
    pub fn new(config: AuthConfig, client: reqwest::Client) -> TokenProvider {
        let flow = match config {
            AuthConfig::Bearer { token } => {
                Flow::Static(sensitive_header(&format!("Bearer {}", token.expose())))
            }
            AuthConfig::Basic { username, password } => {
                let raw = format!("{username}:{}", password.expose());
                let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
                Flow::Static(sensitive_header(&format!("Basic {b64}")))
            }
            AuthConfig::ClientCredentials(c) => Flow::ClientCredentials(c),
            AuthConfig::SmartBackend(s) => Flow::Smart(s),
        };
        TokenProvider::with_flow(flow, client)
    }

    /// A provider for a destination without auth: `authorization()` is `Ok(None)`.
    pub fn none() -> TokenProvider {
        TokenProvider::with_flow(Flow::None, reqwest::Client::new())
    }

    fn with_flow(flow: Flow, client: reqwest::Client) -> TokenProvider {
        TokenProvider {
            inner: Arc::new(Inner {
                flow,
                client,
                cache: Mutex::new(Cache::default()),
                refresh: tokio::sync::Mutex::new(()),
                refreshes: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            }),
        }
    }

    /// The `Authorization` header to send (marked sensitive), or `None` for
    /// a destination without auth.
    pub async fn authorization(&self) -> Result<Option<HeaderValue>, AuthError> {
        match &self.inner.flow {
            Flow::None => Ok(None),
            Flow::Static(h) => Ok(Some(h.clone())),
            Flow::ClientCredentials(_) | Flow::Smart(_) => self.oauth().await.map(Some),
        }
    }

    /// The destination answered 401: forget the cached token so the next
    /// `authorization()` fetches a new one.
    pub fn invalidate(&self) {
        let mut c = self.cache();
        c.token = None;
        c.retry_not_before = None;
    }

    /// Like [`invalidate`](Self::invalidate), but only if `rejected` is still
    /// the cached token: when many lanes get 401 for the same old token,
    /// the first one's renewal is not thrown away by the others.
    pub fn invalidate_if_current(&self, rejected: &HeaderValue) {
        let mut c = self.cache();
        if c.token.as_ref().is_some_and(|t| t.header == *rejected) {
            c.token = None;
            c.retry_not_before = None;
        }
    }

    /// Tokens obtained so far (for metrics).
    pub fn refreshes(&self) -> u64 {
        self.inner.refreshes.load(Ordering::Relaxed)
    }

    /// Token requests that failed so far (for metrics).
    pub fn refresh_failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// The flow's name: none, static, client_credentials, smart_backend.
    pub fn kind(&self) -> &'static str {
        match self.inner.flow {
            Flow::None => "none",
            Flow::Static(_) => "static",
            Flow::ClientCredentials(_) => "client_credentials",
            Flow::Smart(_) => "smart_backend",
        }
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        // Nothing panics while holding this lock; recover from poison anyway.
        self.inner.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn oauth(&self) -> Result<HeaderValue, AuthError> {
        enum Fast {
            Use(HeaderValue),
            Renew(HeaderValue),
            Wait(u64),
        }
        let fast = {
            let c = self.cache();
            let now = Instant::now();
            match &c.token {
                Some(t) if now < t.refresh_at => Fast::Use(t.header.clone()),
                // Renewal is due but the token still works: never wait for a renewal.
                Some(t) if now < t.expires_at => {
                    if c.retry_not_before.is_some_and(|r| now < r) {
                        Fast::Use(t.header.clone())
                    } else {
                        Fast::Renew(t.header.clone())
                    }
                }
                _ => Fast::Wait(c.attempts),
            }
        };
        let seen_attempts = match fast {
            Fast::Use(h) => return Ok(h),
            Fast::Renew(old) => {
                return match self.inner.refresh.try_lock() {
                    Ok(_guard) => {
                        let fresh = self
                            .cache()
                            .token
                            .as_ref()
                            .filter(|t| Instant::now() < t.refresh_at)
                            .map(|t| t.header.clone());
                        match fresh {
                            Some(h) => Ok(h), // renewed while we looked
                            None => Ok(self.fetch_and_store().await.unwrap_or(old)),
                        }
                    }
                    Err(_) => Ok(old), // another task is renewing
                };
            }
            Fast::Wait(seen) => seen,
        };
        // No usable token: wait for our turn; someone else may get it meanwhile.
        let _guard = self.inner.refresh.lock().await;
        {
            let c = self.cache();
            let now = Instant::now();
            if let Some(t) = &c.token {
                if now < t.expires_at {
                    return Ok(t.header.clone());
                }
            }
            if c.attempts != seen_attempts {
                if let Some(e) = &c.last_error {
                    // The request made while we waited failed: share its outcome.
                    return Err(e.clone());
                }
            }
        }
        self.fetch_and_store().await
    }

    /// Fetches a token (caller holds `refresh`) and records the outcome.
    /// On failure while the old token is still usable, returns `Err` but
    /// keeps the old token and delays the next renewal attempt.
    async fn fetch_and_store(&self) -> Result<HeaderValue, AuthError> {
        let started = Instant::now();
        let result = self.fetch().await;
        let mut c = self.cache();
        c.attempts += 1;
        match result {
            Ok((header, expires_in)) => {
                self.inner.refreshes.fetch_add(1, Ordering::Relaxed);
                let refresh_lead = (expires_in / 5).min(Duration::from_secs(60));
                let safety = (expires_in / 10).min(Duration::from_secs(5));
                c.token = Some(Cached {
                    header: header.clone(),
                    refresh_at: started + expires_in - refresh_lead,
                    expires_at: started + expires_in - safety,
                });
                c.last_error = None;
                c.retry_not_before = None;
                log::debug!(
                    "access token obtained, valid for {} s",
                    expires_in.as_secs()
                );
                Ok(header)
            }
            Err(e) => {
                self.inner.failures.fetch_add(1, Ordering::Relaxed);
                c.last_error = Some(e.clone());
                let now = Instant::now();
                if c.token.as_ref().is_some_and(|t| now < t.expires_at) {
                    c.retry_not_before = Some(now + RENEWAL_RETRY);
                    log::warn!("access token renewal failed, the current token is still used: {e}");
                } else {
                    c.token = None;
                }
                Err(e)
            }
        }
    }

    /// One token request. Returns the header and `expires_in`.
    async fn fetch(&self) -> Result<(HeaderValue, Duration), AuthError> {
        let (url, request) = match &self.inner.flow {
            Flow::ClientCredentials(cc) => {
                let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
                if let Some(s) = &cc.scope {
                    form.push(("scope", s));
                }
                if let Some(a) = &cc.audience {
                    form.push(("audience", a));
                }
                let mut req = self.inner.client.post(cc.token_url.clone());
                match cc.client_auth {
                    ClientAuthMethod::ClientSecretBasic => {
                        // RFC 6749 §2.3.1: both parts form-urlencoded before Basic.
                        let raw = format!(
                            "{}:{}",
                            form_urlencode(&cc.client_id),
                            form_urlencode(cc.client_secret.expose())
                        );
                        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
                        req = req.header(AUTHORIZATION, sensitive_header(&format!("Basic {b64}")));
                    }
                    ClientAuthMethod::ClientSecretPost => {
                        form.push(("client_id", &cc.client_id));
                        form.push(("client_secret", cc.client_secret.expose()));
                    }
                }
                (&cc.token_url, req.form(&form))
            }
            Flow::Smart(s) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_err(|_| AuthError::Transient {
                        message: "the system clock is before 1970: set the time (NTP) so \
                                  assertions can be dated"
                            .into(),
                        retry_after: None,
                    })?
                    .as_secs();
                let jti = new_jti()?;
                let jwt = assertion::client_assertion(
                    &s.key,
                    &s.client_id,
                    &s.audience,
                    &s.key_id,
                    now,
                    &jti,
                )
                .map_err(|message| AuthError::Permanent { message })?;
                let form = assertion::token_request_form(&s.scope, &jwt);
                (
                    &s.token_url,
                    self.inner.client.post(s.token_url.clone()).form(&form),
                )
            }
            Flow::None | Flow::Static(_) => {
                return Err(AuthError::Permanent {
                    message: "no token endpoint for this auth type".into(),
                })
            }
        };
        let endpoint = format!("token endpoint {url}");
        let response = request
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| AuthError::Transient {
                message: format!("{endpoint}: {}", error_chain(&e)),
                retry_after: None,
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_capped(response)
            .await
            .map_err(|e| AuthError::Transient {
                message: format!("{endpoint}: reading the answer: {e}"),
                retry_after: None,
            })?;
        if status.is_success() {
            return parse_token(&body).map_err(|e| AuthError::Permanent {
                message: format!(
                    "{endpoint} answered {status} without a usable token: {e}; check token_url"
                ),
            });
        }
        let oauth = describe_oauth_error(&body);
        if status.as_u16() == 429 || status.as_u16() == 408 || status.is_server_error() {
            return Err(AuthError::Transient {
                message: format!("{endpoint} answered {status}{oauth}"),
                retry_after,
            });
        }
        let hint = if status.is_redirection() {
            " (set token_url to the final URL: redirects are not followed)"
        } else if oauth.contains("invalid_scope") {
            " (check auth.scope against what the client is registered for)"
        } else if oauth.contains("invalid_client") || status.as_u16() == 401 {
            match self.inner.flow {
                Flow::Smart(_) => {
                    " (check client_id, key_id and that the server holds this key's public \
                     half; also this box's clock)"
                }
                _ => " (check client_id and the client secret)",
            }
        } else {
            ""
        };
        Err(AuthError::Permanent {
            message: format!("{endpoint} refused the request: {status}{oauth}{hint}"),
        })
    }
}

fn sensitive_header(value: &str) -> HeaderValue {
    // Validation guarantees printable ASCII; fall back to an empty (rejected)
    // header rather than panicking if that ever changes.
    let mut h = HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""));
    h.set_sensitive(true);
    h
}

/// 128 random bits, base64url: unique per assertion.
fn new_jti() -> Result<String, AuthError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AuthError::Transient {
            message: "the OS random number generator failed".into(),
            retry_after: None,
        })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_chain(&e))? {
        if body.len() + chunk.len() > MAX_TOKEN_RESPONSE {
            return Err(format!("more than {MAX_TOKEN_RESPONSE} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
}

fn parse_token(body: &[u8]) -> Result<(HeaderValue, Duration), String> {
    let t: TokenResponse =
        serde_json::from_slice(body).map_err(|e| format!("not an OAuth token response ({e})"))?;
    if let Some(tt) = &t.token_type {
        if !tt.eq_ignore_ascii_case("bearer") {
            return Err(format!("token_type '{}' is not Bearer", printable(tt, 40)));
        }
    }
    if t.access_token.is_empty() || !t.access_token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("access_token is empty or not printable ASCII".into());
    }
    let secs = match &t.expires_in {
        None => DEFAULT_EXPIRES_IN,
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or("expires_in is not a number of seconds")?,
    };
    // A zero or absurd lifetime must neither spin nor overflow.
    let secs = secs.clamp(1, 366 * 24 * 3600);
    let mut header = HeaderValue::from_str(&format!("Bearer {}", t.access_token))
        .map_err(|_| "access_token cannot be sent in a header".to_string())?;
    header.set_sensitive(true);
    Ok((header, Duration::from_secs(secs)))
}

/// ` (invalid_client: description)` from an RFC 6749 §5.2 error body, or "".
fn describe_oauth_error(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct OAuthError {
        error: Option<String>,
        error_description: Option<String>,
    }
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(OAuthError {
            error: Some(error),
            error_description,
        }) => match error_description {
            Some(d) => format!(" ({}: {})", printable(&error, 60), printable(&d, 300)),
            None => format!(" ({})", printable(&error, 60)),
        },
        _ => String::new(),
    }
}

/// At most `max` characters, control characters dropped: server text is
/// quoted into logs and status, so it must stay one short line.
fn printable(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// application/x-www-form-urlencoded, as RFC 6749 §2.3.1 asks for Basic.
fn form_urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_responses() {
        let (h, d) =
            parse_token(br#"{"access_token":"abc","token_type":"bearer","expires_in":60}"#)
                .unwrap();
        assert_eq!(h.to_str().unwrap(), "Bearer abc");
        assert!(h.is_sensitive());
        assert_eq!(d, Duration::from_secs(60));
        let (_, d) =
            parse_token(br#"{"access_token":"abc","token_type":"Bearer","expires_in":"120"}"#)
                .unwrap();
        assert_eq!(d, Duration::from_secs(120));
        let (_, d) = parse_token(br#"{"access_token":"abc"}"#).unwrap();
        assert_eq!(d, Duration::from_secs(DEFAULT_EXPIRES_IN));
        let (_, d) = parse_token(br#"{"access_token":"abc","expires_in":0}"#).unwrap();
        assert_eq!(d, Duration::from_secs(1));
        assert!(parse_token(br#"{"access_token":"abc","token_type":"mac"}"#).is_err());
        assert!(parse_token(br#"{"access_token":"a b"}"#).is_err());
        assert!(parse_token(b"<html>").is_err());
    }

    #[test]
    fn oauth_errors_are_short_single_lines() {
        assert_eq!(
            describe_oauth_error(br#"{"error":"invalid_client","error_description":"bad\nkey"}"#),
            " (invalid_client: badkey)"
        );
        assert_eq!(describe_oauth_error(b"<html>"), "");
    }

    #[test]
    fn form_urlencoding() {
        assert_eq!(form_urlencode("a b:c/é"), "a+b%3Ac%2F%C3%A9");
    }

    #[test]
    fn jti_is_random() {
        let a = new_jti().unwrap();
        assert_ne!(a, new_jti().unwrap());
        assert_eq!(a.len(), 22);
    }
}
