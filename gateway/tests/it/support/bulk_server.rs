//! A FHIR Bulk Data server (IG STU3 `$export`) on loopback, written for
//! the export tests and scripted to behave like the real ones do at their
//! worst: 429 at kick-off, slow jobs with `Retry-After` in seconds and as
//! an HTTP-date, transient and fatal OperationOutcomes, gzip'd chunked
//! files without Content-Length, multi-file outputs, an `error` array of
//! OperationOutcome NDJSON (or no `error` key at all, HAPI style),
//! `deleted`, partial manifests (`link` next), a 307 to a second loopback
//! origin that records whether it got the bearer, a 410 expired link, a
//! file cut mid-way, a bad NDJSON line, bearer tokens checked against the
//! token server's expiry, and files served slowly (for kill tests).

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::{Request, Response};
use tokio::sync::mpsc;

use super::token_server::{State as TokenState, TokenServer};

/// A response body fed from a channel: streamed, chunked (no
/// Content-Length), and cut with an error when the script says so.
pub struct ChanBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl Body for ChanBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

/// One output file of the data set.
#[derive(Clone)]
pub struct DataFile {
    pub ty: String,
    pub lines: Vec<String>,
}

/// The generated population: `patients` Patients and `observations`
/// Observations over `files_per_type` files each. Some resources carry a
/// `meta`, some none, some `contained` with their own `meta`; decimals
/// like `1.50` must survive byte for byte.
pub fn dataset(patients: usize, observations: usize, files_per_type: usize) -> Vec<DataFile> {
    let mut out = Vec::new();
    for (ty, n) in [("Patient", patients), ("Observation", observations)] {
        let per = n.div_ceil(files_per_type.max(1));
        for f in 0..files_per_type {
            let lines = (f * per..((f + 1) * per).min(n))
                .map(|i| resource(ty, i))
                .collect();
            out.push(DataFile {
                ty: ty.into(),
                lines,
            });
        }
    }
    out
}

pub fn resource(ty: &str, i: usize) -> String {
    match (ty, i % 3) {
        ("Patient", 0) => format!(
            r#"{{"resourceType":"Patient","id":"p{i}","meta":{{"versionId":"1","lastUpdated":"2026-01-01T00:00:00Z"}},"active":true}}"#
        ),
        ("Patient", 1) => format!(
            r#"{{"resourceType":"Patient","id":"p{i}","extension":[{{"url":"http://x.example/unknown","valueDecimal":0.10}}]}}"#
        ),
        ("Patient", _) => format!(
            r#"{{"resourceType":"Patient","id":"p{i}","meta":{{"tag":[{{"system":"http://x.example","code":"t"}}]}},"contained":[{{"resourceType":"Organization","id":"o","meta":{{"versionId":"9"}}}}]}}"#
        ),
        (_, 0) => format!(
            r#"{{"resourceType":"Observation","id":"o{i}","status":"final","subject":{{"reference":"Patient/p{}"}},"valueQuantity":{{"value":1.50,"unit":"mmol/L"}}}}"#,
            i % 1000
        ),
        (_, 1) => format!(
            r#"{{"resourceType":"Observation","meta":{{}},"id":"o{i}","status":"final","valueQuantity":{{"value":120.000}}}}"#
        ),
        (_, _) => format!(
            r#"{{"resourceType":"Observation","id":"o{i}","contained":[{{"resourceType":"Patient","id":"c","meta":{{"tag":[{{"code":"z"}}]}}}}],"status":"final"}}"#
        ),
    }
}

pub const ERROR_LINES: [&str; 2] = [
    r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"Observation o-x could not be read"}]}"#,
    r#"{"resourceType":"OperationOutcome","issue":[{"severity":"warning","code":"incomplete","diagnostics":"some Conditions skipped"}]}"#,
];
pub const DELETED_LINE: &str = r#"{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/gone-1"}}]}"#;

/// What the server does; change it between runs.
#[derive(Default)]
pub struct Script {
    /// 429 answers to kick-off before one is accepted.
    pub kickoff_429: AtomicU32,
    /// 202 answers per job before the manifest.
    pub polls_before_ready: AtomicU32,
    /// Retry-After as an HTTP-date on every other 202 (else seconds).
    pub retry_after_dates: AtomicBool,
    /// The next poll answers 500 with a transient OperationOutcome.
    pub transient_once: AtomicBool,
    /// Polls answer 500 with a fatal OperationOutcome.
    pub fatal: AtomicBool,
    /// Files (by index) served gzip'd.
    pub gzip: Mutex<BTreeSet<usize>>,
    /// This file's first request answers 410 (its link expired); the next manifest has new links.
    pub expire_once: Mutex<Option<usize>>,
    /// This file's first download is cut half-way.
    pub cut_once: Mutex<Option<usize>>,
    /// This file redirects (307) to the second origin.
    pub redirect: Mutex<Option<usize>>,
    /// (file, line) served as broken JSON.
    pub bad_line: Mutex<Option<(usize, usize)>>,
    /// Output entries per manifest page (0: one page).
    pub page_size: AtomicU32,
    /// Leave the `error` key out (HAPI style) when there are no errors.
    pub omit_error_key: AtomicBool,
    /// Include the error and deleted files.
    pub errors_and_deleted: AtomicBool,
    /// Demand a valid, unexpired token from the token server.
    pub require_token: AtomicBool,
    /// Sleep this many ms between 64 KiB chunks of a file.
    pub throttle_ms: AtomicU64,
    /// While set, every file download stops before its last chunk and
    /// waits: no file can finish (a test that must kill mid-download on a
    /// fast machine holds them, then lets go).
    pub hold_files: AtomicBool,
}

/// What the server saw.
#[derive(Default)]
pub struct Seen {
    /// Kick-off requests: method, path and query, Prefer header.
    pub kickoffs: Mutex<Vec<(String, String, Option<String>)>>,
    pub polls: AtomicU32,
    pub deletes: Mutex<Vec<String>>,
    /// Authorization headers the second origin received.
    pub other_origin_auth: Mutex<Vec<Option<String>>>,
    /// Requests refused for a missing or expired token.
    pub unauthorized: AtomicU32,
    pub file_requests: AtomicU32,
    /// Accept / Accept-Encoding of file requests.
    pub file_headers: Mutex<Vec<(Option<String>, Option<String>)>>,
}

struct Job {
    polls: u32,
    since: Option<String>,
    transaction_time: String,
    /// Link generation (bumped after a 410).
    generation: u32,
}

pub struct BulkState {
    pub base: String,
    pub other: String,
    pub script: Script,
    pub seen: Seen,
    /// The data a full export returns.
    pub full: Vec<DataFile>,
    /// What an export with `_since` returns.
    pub incremental: Vec<DataFile>,
    jobs: Mutex<HashMap<u64, Job>>,
    next_job: AtomicU64,
    expired: Mutex<BTreeSet<usize>>,
    cut: Mutex<BTreeSet<usize>>,
    tokens: Option<Arc<TokenState>>,
}

pub struct BulkServer {
    pub state: Arc<BulkState>,
    /// The FHIR base URL.
    pub base: String,
}

async fn bind() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (l, url)
}

fn serve(l: tokio::net::TcpListener, st: Arc<BulkState>, other: bool) {
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = l.accept().await else {
                return;
            };
            let st = st.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(st.clone(), req, other));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

impl BulkServer {
    /// Start on two loopback ports (the FHIR server and a second origin
    /// standing in for an object store). Call inside a runtime.
    pub async fn start(
        full: Vec<DataFile>,
        incremental: Vec<DataFile>,
        tokens: Option<&TokenServer>,
    ) -> BulkServer {
        let (l1, u1) = bind().await;
        let (l2, u2) = bind().await;
        let st = Arc::new(BulkState {
            base: format!("{u1}/fhir"),
            other: u2,
            script: Script::default(),
            seen: Seen::default(),
            full,
            incremental,
            jobs: Mutex::new(HashMap::new()),
            next_job: AtomicU64::new(1),
            expired: Mutex::new(BTreeSet::new()),
            cut: Mutex::new(BTreeSet::new()),
            tokens: tokens.map(|t| t.state.clone()),
        });
        serve(l1, st.clone(), false);
        serve(l2, st.clone(), true);
        BulkServer {
            base: st.base.clone(),
            state: st,
        }
    }

    pub fn kickoffs(&self) -> Vec<(String, String, Option<String>)> {
        self.state.seen.kickoffs.lock().unwrap().clone()
    }
}

type Resp = Response<http_body_util::Either<http_body_util::Full<Bytes>, ChanBody>>;

fn full(status: u16, body: impl Into<Bytes>) -> Resp {
    Response::builder()
        .status(status)
        .header("content-type", "application/fhir+json")
        .body(http_body_util::Either::Left(http_body_util::Full::new(
            body.into(),
        )))
        .unwrap()
}

fn outcome(code: &str, text: &str) -> String {
    serde_json::json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":code,"diagnostics":text}]}).to_string()
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| v.to_str().unwrap_or("").to_string())
}

impl BulkState {
    fn authorized(&self, req: &Request<Incoming>) -> bool {
        if !self.script.require_token.load(Ordering::SeqCst) {
            return true;
        }
        let ok = self
            .tokens
            .as_ref()
            .is_some_and(|t| TokenServer::valid(t, header(req, "authorization").as_deref()));
        if !ok {
            self.seen.unauthorized.fetch_add(1, Ordering::SeqCst);
        }
        ok
    }

    fn files_of(&self, job: &Job) -> &[DataFile] {
        if job.since.is_some() {
            &self.incremental
        } else {
            &self.full
        }
    }

    /// The manifest's file list: outputs, then (maybe) error and deleted.
    fn manifest(&self, id: u64, job: &Job, page: usize) -> String {
        let files = self.files_of(job);
        let entries: Vec<serde_json::Value> = files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let url = if self.script.redirect.lock().unwrap().is_some_and(|r| r == i) {
                    format!(
                        "{}/fhir/redirect/{id}/{i}",
                        self.base.trim_end_matches("/fhir")
                    )
                } else {
                    format!("{}/files/{id}/{i}?g={}", self.base, job.generation)
                };
                serde_json::json!({"type": f.ty, "url": url, "count": f.lines.len()})
            })
            .collect();
        let size = self.script.page_size.load(Ordering::SeqCst) as usize;
        let (chunk, next) = if size == 0 {
            (entries.clone(), None)
        } else {
            let chunks: Vec<Vec<serde_json::Value>> =
                entries.chunks(size).map(<[_]>::to_vec).collect();
            let next = (page + 1 < chunks.len())
                .then(|| format!("{}/status/{id}/page/{}", self.base, page + 1));
            (chunks.get(page).cloned().unwrap_or_default(), next)
        };
        let last_page = next.is_none();
        let mut m = serde_json::json!({
            "transactionTime": job.transaction_time,
            "request": format!("{}/$export", self.base),
            "requiresAccessToken": self.script.require_token.load(Ordering::SeqCst),
            "output": chunk,
        });
        let with_errors = self.script.errors_and_deleted.load(Ordering::SeqCst) && last_page;
        if with_errors {
            m["error"] = serde_json::json!([{"type": "OperationOutcome", "url": format!("{}/errors/{id}", self.base)}]);
            m["deleted"] = serde_json::json!([{"type": "Bundle", "url": format!("{}/deleted/{id}", self.base)}]);
        } else if !self.script.omit_error_key.load(Ordering::SeqCst) {
            m["error"] = serde_json::json!([]);
        }
        if let Some(n) = next {
            m["link"] = serde_json::json!([{"relation": "next", "url": n}]);
        }
        m.to_string()
    }
}

async fn handle(
    st: Arc<BulkState>,
    req: Request<Incoming>,
    other_origin: bool,
) -> Result<Resp, Infallible> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let method = req.method().clone();
    if other_origin {
        // The "object store": a signed URL that needs no bearer.
        st.seen
            .other_origin_auth
            .lock()
            .unwrap()
            .push(header(&req, "authorization"));
        if header(&req, "authorization").is_some() {
            return Ok(full(
                400,
                "a signed URL must not carry a second auth header",
            ));
        }
        let parts: Vec<&str> = path.trim_start_matches("/signed/").split('/').collect();
        let (id, i) = (
            parts[0].parse().unwrap_or(0),
            parts.get(1).and_then(|p| p.parse().ok()).unwrap_or(0),
        );
        return Ok(file(&st, id, i, &req).await);
    }
    let rel = path.strip_prefix("/fhir").unwrap_or(&path).to_string();
    if rel.ends_with("$export") {
        st.seen.kickoffs.lock().unwrap().push((
            method.to_string(),
            format!("{rel}?{query}"),
            header(&req, "prefer"),
        ));
        if !st.authorized(&req) {
            return Ok(full(401, outcome("login", "token missing or expired")));
        }
        if header(&req, "prefer").as_deref() != Some("respond-async") {
            return Ok(full(
                400,
                outcome("invalid", "Prefer: respond-async is required"),
            ));
        }
        if st.script.kickoff_429.load(Ordering::SeqCst) > 0 {
            st.script.kickoff_429.fetch_sub(1, Ordering::SeqCst);
            return Ok(Response::builder()
                .status(429)
                .header("retry-after", "1")
                .body(http_body_util::Either::Left(http_body_util::Full::new(
                    Bytes::from(outcome(
                        "too-costly",
                        "an export is already running for this client",
                    )),
                )))
                .unwrap());
        }
        let since = reqwest::Url::parse(&format!("http://x/?{query}"))
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "_since")
            .map(|(_, v)| v.into_owned());
        let id = st.next_job.fetch_add(1, Ordering::SeqCst);
        st.jobs.lock().unwrap().insert(
            id,
            Job {
                polls: 0,
                since,
                transaction_time: format!("2026-02-0{}T10:00:00.000Z", id.min(9)),
                generation: 1,
            },
        );
        return Ok(Response::builder()
            .status(202)
            .header("content-location", format!("{}/status/{id}", st.base))
            .body(http_body_util::Either::Left(http_body_util::Full::new(
                Bytes::new(),
            )))
            .unwrap());
    }
    if let Some(rest) = rel.strip_prefix("/status/") {
        if !st.authorized(&req) {
            return Ok(full(401, outcome("login", "token missing or expired")));
        }
        let mut parts = rest.split('/');
        let id: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let page: usize = match (parts.next(), parts.next()) {
            (Some("page"), Some(p)) => p.parse().unwrap_or(0),
            _ => 0,
        };
        if method == hyper::Method::DELETE {
            st.seen.deletes.lock().unwrap().push(rest.to_string());
            let existed = st.jobs.lock().unwrap().remove(&id).is_some();
            return Ok(full(if existed { 202 } else { 404 }, ""));
        }
        st.seen.polls.fetch_add(1, Ordering::SeqCst);
        if st.script.fatal.load(Ordering::SeqCst) {
            return Ok(full(
                500,
                outcome("processing", "the _typeFilter cannot be evaluated"),
            ));
        }
        if st.script.transient_once.swap(false, Ordering::SeqCst) {
            return Ok(full(500, outcome("transient", "the database is busy")));
        }
        let mut jobs = st.jobs.lock().unwrap();
        let Some(job) = jobs.get_mut(&id) else {
            return Ok(full(404, outcome("not-found", "no such job")));
        };
        if page == 0 && job.polls < st.script.polls_before_ready.load(Ordering::SeqCst) {
            job.polls += 1;
            let retry = if st.script.retry_after_dates.load(Ordering::SeqCst) && job.polls % 2 == 0
            {
                httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(1))
            } else {
                "1".to_string()
            };
            return Ok(Response::builder()
                .status(202)
                .header("retry-after", retry)
                .header(
                    "x-progress",
                    format!("in progress: step {} of many", job.polls),
                )
                .body(http_body_util::Either::Left(http_body_util::Full::new(
                    Bytes::new(),
                )))
                .unwrap());
        }
        return Ok(full(200, st.manifest(id, job, page)));
    }
    if let Some(rest) = rel.strip_prefix("/redirect/") {
        return Ok(Response::builder()
            .status(307)
            .header("location", format!("{}/signed/{rest}", st.other))
            .body(http_body_util::Either::Left(http_body_util::Full::new(
                Bytes::new(),
            )))
            .unwrap());
    }
    if let Some(rest) = rel.strip_prefix("/files/") {
        if !st.authorized(&req) {
            return Ok(full(401, outcome("login", "token missing or expired")));
        }
        let mut parts = rest.split('/');
        let id: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let i: usize = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let generation: u32 = query
            .strip_prefix("g=")
            .and_then(|g| g.parse().ok())
            .unwrap_or(0);
        let expire = *st.script.expire_once.lock().unwrap() == Some(i);
        if expire {
            let mut expired = st.expired.lock().unwrap();
            if !expired.contains(&i) {
                expired.insert(i);
                if let Some(j) = st.jobs.lock().unwrap().get_mut(&id) {
                    j.generation += 1;
                }
                return Ok(full(410, outcome("expired", "the link has expired")));
            }
            let current = st.jobs.lock().unwrap().get(&id).map_or(0, |j| j.generation);
            if generation != current {
                return Ok(full(410, outcome("expired", "the link has expired")));
            }
        }
        return Ok(file(&st, id, i, &req).await);
    }
    if rel.starts_with("/errors/") || rel.starts_with("/deleted/") {
        if !st.authorized(&req) {
            return Ok(full(401, outcome("login", "token missing or expired")));
        }
        let body = if rel.starts_with("/errors/") {
            format!("{}\n{}\n", ERROR_LINES[0], ERROR_LINES[1])
        } else {
            format!("{DELETED_LINE}\n")
        };
        return Ok(Response::builder()
            .status(200)
            .header("content-type", "application/fhir+ndjson")
            .body(http_body_util::Either::Left(http_body_util::Full::new(
                Bytes::from(body),
            )))
            .unwrap());
    }
    Ok(full(404, outcome("not-found", "unknown path")))
}

/// Serve output file `i` of job `id`: streamed in 64 KiB chunks (gzip'd
/// if scripted), cut half-way once if scripted.
async fn file(st: &Arc<BulkState>, id: u64, i: usize, req: &Request<Incoming>) -> Resp {
    st.seen.file_requests.fetch_add(1, Ordering::SeqCst);
    st.seen
        .file_headers
        .lock()
        .unwrap()
        .push((header(req, "accept"), header(req, "accept-encoding")));
    let data = {
        let jobs = st.jobs.lock().unwrap();
        let Some(job) = jobs.get(&id) else {
            return full(404, outcome("not-found", "no such job"));
        };
        match st.files_of(job).get(i) {
            Some(f) => f.clone(),
            None => return full(404, outcome("not-found", "no such file")),
        }
    };
    let bad = *st.script.bad_line.lock().unwrap();
    let mut text = Vec::new();
    for (n, l) in data.lines.iter().enumerate() {
        if bad == Some((i, n)) {
            text.extend_from_slice(br#"{"resourceType":"Observation","id":"#);
        } else {
            text.extend_from_slice(l.as_bytes());
        }
        text.push(b'\n');
    }
    let gzip = st.script.gzip.lock().unwrap().contains(&i)
        && header(req, "accept-encoding").is_some_and(|a| a.contains("gzip"));
    if gzip {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&text).unwrap();
        text = e.finish().unwrap();
    }
    let cut = *st.script.cut_once.lock().unwrap() == Some(i) && st.cut.lock().unwrap().insert(i);
    let throttle = st.script.throttle_ms.load(Ordering::SeqCst);
    let (tx, rx) = mpsc::channel(4);
    let held = st.clone();
    tokio::spawn(async move {
        let stop = if cut { text.len() / 2 } else { text.len() };
        let chunks: Vec<&[u8]> = text[..stop].chunks(64 * 1024).collect();
        for (n, c) in chunks.iter().enumerate() {
            while n + 1 == chunks.len() && held.script.hold_files.load(Ordering::SeqCst) {
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if tx.send(Ok(Bytes::copy_from_slice(c))).await.is_err() {
                return;
            }
            if throttle > 0 {
                tokio::time::sleep(Duration::from_millis(throttle)).await;
            }
        }
        if cut {
            let _ = tx.send(Err(std::io::Error::other("cut mid-way"))).await;
        }
    });
    let mut b = Response::builder()
        .status(200)
        .header("content-type", "application/fhir+ndjson");
    if gzip {
        b = b.header("content-encoding", "gzip");
    }
    b.body(http_body_util::Either::Right(ChanBody(rx))).unwrap()
}
