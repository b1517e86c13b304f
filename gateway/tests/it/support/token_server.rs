//! A loopback OAuth token endpoint that verifies what it gets the way a
//! real authorization server does:
//!
//! - SMART Backend Services: the assertion's signature with the registered
//!   public key (RS384 or ES384), `kid`, `typ`, `iss` = `sub` = client_id,
//!   `aud` = its own URL, `exp` at most 5 minutes ahead, a `jti` never seen
//!   before (replays are refused), and the grant and assertion type fields;
//! - client credentials: the client secret, as HTTP Basic or in the form.
//!
//! It hands out short-lived tokens (`tok-1`, `tok-2`, ...) and can be
//! scripted to fail.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

pub const CLIENT_ID: &str = "clinic-gateway-test";
pub const KID: &str = "key-2026-01";
pub const SCOPE: &str = "system/Patient.rs system/Observation.cruds";

pub enum Verifier {
    Smart {
        key: DecodingKey,
        alg: Algorithm,
    },
    Secret {
        secret: String,
        /// Expect client_secret_post (else Basic).
        post: bool,
    },
}

/// A scripted answer instead of verifying and issuing.
#[derive(Clone)]
pub struct Scripted {
    pub status: u16,
    pub body: &'static str,
    pub retry_after: Option<&'static str>,
}

pub struct State {
    pub url: String,
    pub verifier: Verifier,
    pub expires_in: AtomicU64,
    /// Milliseconds every answer is held back (lets concurrent callers pile up).
    pub delay_ms: AtomicU64,
    pub script: Mutex<Option<Scripted>>,
    pub requests: AtomicU64,
    pub issued: AtomicU64,
    pub jtis: Mutex<HashSet<String>>,
    pub rejections: Mutex<Vec<String>>,
    pub last_form: Mutex<Option<String>>,
}

pub struct TokenServer {
    pub state: Arc<State>,
    pub url: String,
}

impl TokenServer {
    pub async fn start(verifier: Verifier, expires_in: u64) -> TokenServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let state = Arc::new(State {
            url: url.clone(),
            verifier,
            expires_in: AtomicU64::new(expires_in),
            delay_ms: AtomicU64::new(0),
            script: Mutex::new(None),
            requests: AtomicU64::new(0),
            issued: AtomicU64::new(0),
            jtis: Mutex::new(HashSet::new()),
            rejections: Mutex::new(Vec::new()),
            last_form: Mutex::new(None),
        });
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        TokenServer { state, url }
    }

    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }
    pub fn rejections(&self) -> Vec<String> {
        self.state.rejections.lock().unwrap().clone()
    }
    pub fn script(&self, s: Option<Scripted>) {
        *self.state.script.lock().unwrap() = s;
    }
}

fn json(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn form_pairs(body: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{body}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

async fn handle(
    st: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    st.requests.fetch_add(1, Ordering::SeqCst);
    let auth_header = req
        .headers()
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    let method_ok = req.method() == hyper::Method::POST && req.uri().path() == "/token";
    let ctype = req
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    *st.last_form.lock().unwrap() = Some(body.clone());
    let delay = st.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if let Some(s) = st.script.lock().unwrap().clone() {
        let mut r = json(s.status, s.body.to_string());
        if let Some(ra) = s.retry_after {
            r.headers_mut().insert("retry-after", ra.parse().unwrap());
        }
        return Ok(r);
    }
    let verdict = if !method_ok {
        Err("POST /token expected".to_string())
    } else if ctype.as_deref() != Some("application/x-www-form-urlencoded") {
        Err(format!("form content type expected, got {ctype:?}"))
    } else {
        verify(&st, &form_pairs(&body), auth_header.as_deref())
    };
    Ok(match verdict {
        Ok(()) => {
            let n = st.issued.fetch_add(1, Ordering::SeqCst) + 1;
            json(
                200,
                format!(
                    r#"{{"access_token":"tok-{n}","token_type":"bearer","expires_in":{},"scope":"{SCOPE}"}}"#,
                    st.expires_in.load(Ordering::SeqCst)
                ),
            )
        }
        Err(reason) => {
            st.rejections.lock().unwrap().push(reason.clone());
            json(
                401,
                serde_json::json!({"error": "invalid_client", "error_description": reason})
                    .to_string(),
            )
        }
    })
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: u64,
    iat: u64,
    jti: String,
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut it = form.iter().filter(|(k, _)| k == name);
    let first = it.next().map(|(_, v)| v.as_str());
    if it.next().is_some() {
        return None; // a repeated parameter is an error (RFC 6749 §3.2)
    }
    first
}

fn verify(st: &State, form: &[(String, String)], auth: Option<&str>) -> Result<(), String> {
    if field(form, "grant_type") != Some("client_credentials") {
        return Err("grant_type must be client_credentials".into());
    }
    match &st.verifier {
        Verifier::Smart { key, alg } => {
            if field(form, "scope") != Some(SCOPE) {
                return Err(format!("scope {:?}", field(form, "scope")));
            }
            if field(form, "client_assertion_type")
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                return Err("client_assertion_type".into());
            }
            if auth.is_some() {
                return Err("no Authorization header expected with an assertion".into());
            }
            let jwt = field(form, "client_assertion").ok_or("client_assertion missing")?;
            let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("header: {e}"))?;
            if header.alg != *alg {
                return Err(format!("alg {:?}", header.alg));
            }
            if header.kid.as_deref() != Some(KID) {
                return Err(format!("unknown kid {:?}", header.kid));
            }
            if header.typ.as_deref() != Some("JWT") {
                return Err(format!("typ {:?}", header.typ));
            }
            let mut v = Validation::new(*alg);
            v.set_audience(&[&st.url]);
            v.set_issuer(&[CLIENT_ID]);
            v.sub = Some(CLIENT_ID.to_string());
            v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
            v.leeway = 0;
            let data = jsonwebtoken::decode::<Claims>(jwt, key, &v)
                .map_err(|e| format!("assertion rejected: {e}"))?;
            let c = data.claims;
            assert_eq!((c.iss.as_str(), c.sub.as_str()), (CLIENT_ID, CLIENT_ID));
            assert_eq!(c.aud, st.url);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            if c.exp > now + 300 {
                return Err("exp more than 5 minutes ahead".into());
            }
            if c.iat > now + 5 || c.iat >= c.exp {
                return Err("iat".into());
            }
            if c.jti.len() < 16 {
                return Err("jti too short to be unique".into());
            }
            if !st.jtis.lock().unwrap().insert(c.jti) {
                return Err("jti reused: replayed assertion".into());
            }
            Ok(())
        }
        Verifier::Secret { secret, post } => {
            if let Some(a) = field(form, "audience") {
                if a != "https://api.example.com" {
                    return Err("audience".into());
                }
            } else {
                return Err("audience missing".into());
            }
            if field(form, "scope") != Some("claims.write") {
                return Err("scope".into());
            }
            let (id, sec) = if *post {
                if auth.is_some() {
                    return Err("client_secret_post must not send Basic".into());
                }
                (
                    field(form, "client_id").unwrap_or_default().to_string(),
                    field(form, "client_secret").unwrap_or_default().to_string(),
                )
            } else {
                if field(form, "client_secret").is_some() {
                    return Err("client_secret_basic must not put the secret in the form".into());
                }
                let b64 = auth
                    .and_then(|a| a.strip_prefix("Basic "))
                    .ok_or("Basic auth expected")?;
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|_| "basic: base64")?;
                let raw = String::from_utf8(raw).map_err(|_| "basic: utf8")?;
                let (id, sec) = raw.split_once(':').ok_or("basic: no colon")?;
                // RFC 6749 §2.3.1: both halves are form-urlencoded.
                let pairs = form_pairs(&format!("i={id}&s={sec}"));
                (pairs[0].1.clone(), pairs[1].1.clone())
            };
            if id != CLIENT_ID || sec != *secret {
                return Err("bad client credentials".into());
            }
            Ok(())
        }
    }
}
