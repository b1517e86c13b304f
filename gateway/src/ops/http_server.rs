//! A small HTTP/1.1 server for the health endpoint and the status page:
//! one request per connection (`Connection: close`), GET/HEAD (and, where
//! the caller allows it, POST with a `Content-Length` body of at most its
//! bound: the status page's forms), a bounded head (16 KiB) read within
//! 10 s, at most 32 connections at once. Generic over the stream so the
//! status page can run it over TLS.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

const MAX_HEAD: usize = 16 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 32;
/// How long open connections may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    /// A POST's body (empty otherwise).
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body)
    }
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Bind a server of the `[table]`; the error names the address and `hint`
/// says what to change in the config.
pub async fn bind(
    table: &'static str,
    addr: SocketAddr,
    hint: &'static str,
) -> Result<TcpListener, crate::Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| crate::Error::Bind {
            table,
            addr,
            hint,
            source,
        })
}

/// Parse a request head (request line + headers, up to the blank line).
pub fn parse_head(head: &str) -> Result<Request, u16> {
    let mut lines = head.split("\r\n");
    let line = lines.next().ok_or(400u16)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(400);
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    for l in lines {
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').ok_or(400u16)?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: Vec::new(),
    })
}

/// The request head, and the bytes read past it (the body's start).
async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> Result<(Request, Vec<u8>), u16> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end + 2]).map_err(|_| 400u16)?;
            return Ok((parse_head(head)?, buf[end + 4..].to_vec()));
        }
        if buf.len() > MAX_HEAD {
            return Err(431);
        }
        let n = s.read(&mut chunk).await.map_err(|_| 400u16)?;
        if n == 0 {
            return Err(400);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn write_response<S: AsyncWrite + Unpin>(
    s: &mut S,
    r: &Response,
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    for (k, v) in &r.headers {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(&r.body);
    }
    s.write_all(out.as_bytes()).await?;
    s.flush().await?;
    s.shutdown().await
}

/// Read one request from `stream`, answer it with `handler`, close
/// (GET and HEAD only).
pub async fn handle_connection<S, F>(stream: S, handler: &F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Fn(&Request) -> Response,
{
    serve_one(stream, 0, |r| std::future::ready(handler(&r))).await;
}

/// The rest of a POST body (`start`: what came with the head), by its
/// `Content-Length`, at most `max` bytes.
async fn read_body<S: AsyncRead + Unpin>(
    s: &mut S,
    req: &Request,
    mut start: Vec<u8>,
    max: usize,
) -> Result<Vec<u8>, u16> {
    let len: usize = req
        .header("content-length")
        .ok_or(411u16)?
        .parse()
        .map_err(|_| 400u16)?;
    if len > max || start.len() > len {
        return Err(if len > max { 413 } else { 400 });
    }
    let mut chunk = [0u8; 2048];
    while start.len() < len {
        let want = (len - start.len()).min(chunk.len());
        let n = s.read(&mut chunk[..want]).await.map_err(|_| 400u16)?;
        if n == 0 {
            return Err(400);
        }
        start.extend_from_slice(&chunk[..n]);
    }
    Ok(start)
}

/// Read one request from `stream`, answer it with `handler` (async), close.
/// POST is accepted with a body of at most `post_max` bytes (0: GET and
/// HEAD only); head and body are read within [`READ_TIMEOUT`].
pub async fn serve_one<S, F, Fut>(mut stream: S, post_max: usize, handler: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let req = tokio::time::timeout(READ_TIMEOUT, async {
        let (mut r, rest) = read_head(&mut stream).await?;
        if r.method == "POST" && post_max > 0 {
            r.body = read_body(&mut stream, &r, rest, post_max).await?;
        }
        Ok::<Request, u16>(r)
    })
    .await
    .unwrap_or(Err(408));
    let allowed = if post_max > 0 {
        "GET, HEAD, POST"
    } else {
        "GET, HEAD"
    };
    let (resp, head_only) = match req {
        Err(code) => (Response::text(code, format!("{}\n", reason(code))), false),
        Ok(r) if !allowed.split(", ").any(|m| m == r.method) => (
            Response::text(405, format!("only {allowed}\n")).with_header("Allow", allowed),
            false,
        ),
        Ok(r) => {
            let head_only = r.method == "HEAD";
            (handler(r).await, head_only)
        }
    };
    let _ = tokio::time::timeout(READ_TIMEOUT, write_response(&mut stream, &resp, head_only)).await;
}

/// Accept on `listener` until shutdown; each connection runs `serve_conn`
/// (which may wrap the stream, e.g. in TLS) in its own task, at most
/// [`MAX_CONNECTIONS`] at once. At shutdown the listener closes and open
/// connections get [`SHUTDOWN_GRACE`] to finish their answer.
pub async fn accept_loop<C, Fut>(
    listener: TcpListener,
    serve_conn: C,
    mut shutdown: watch::Receiver<bool>,
) where
    C: Fn(tokio::net::TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else {
            // EMFILE and the like: do not spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // over the cap: dropped (closed) at once
        };
        let fut = serve_conn(stream, peer);
        conns.spawn(async move {
            fut.await;
            drop(permit);
        });
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        conns.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let r = parse_head("GET /readyz?x=1 HTTP/1.1\r\nHost: a\r\nAuthorization: Basic eA==\r\n")
            .unwrap();
        assert_eq!((r.path.as_str(), r.query.as_str()), ("/readyz", "x=1"));
        assert_eq!(r.header("authorization"), Some("Basic eA=="));
        assert_eq!(parse_head("GET\r\n").unwrap_err(), 400);
        assert_eq!(parse_head("GET http://x/ HTTP/1.1\r\n").unwrap_err(), 400);
    }
}
