//! `[status_page]`: a read-only HTML page on the LAN for the office,
//! showing what `gateway status` shows, and the message search and
//! timeline (`status_messages.rs`). Plain server-rendered HTML, no
//! scripts and no external assets; every value is HTML-escaped.
//!
//! Protected by HTTP Basic (password compared in constant time) and/or
//! client certificates (`tls.client_ca`: the TLS handshake refuses clients
//! without one). The default view never shows a destination's last error
//! text (a server's diagnostics may quote the message): only its HTTP
//! status or kind; `?details=1` shows the full text to an authenticated user.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::admin::{StatusReport, StatusSource};
use super::alerts::{Rule, Severity};
use super::clock;
use super::http_server::{self, Request, Response};
use super::status_messages::{self, MessageViews};
use super::status_summary;
use crate::config::{AlertsConfig, StatusPageConfig};

/// HTML-escape text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn ago(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} seconds"),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 2 * 86_400 => format!("{} hours {} minutes", s / 3600, s % 3600 / 60),
        s => format!("{} days", s / 86_400),
    }
}

/// The short, content-free form of a last error: "HTTP 503", "timeout",
/// "connection refused", "NAK", else "error".
pub fn error_summary(e: &str) -> String {
    let lower = e.to_ascii_lowercase();
    if let Some(i) = lower.find("http ") {
        let code: String = lower[i + 5..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if code.len() == 3 {
            return format!("HTTP {code}");
        }
    }
    for (needle, label) in [
        ("refused", "connection refused"),
        ("timed out", "timeout"),
        ("timeout", "timeout"),
        ("certificate", "TLS certificate problem"),
        ("dns", "name lookup failed"),
        ("nak", "rejected (NAK)"),
        ("reset", "connection reset"),
    ] {
        if lower.contains(needle) {
            return label.to_string();
        }
    }
    "error".to_string()
}

pub(super) const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:70em}\
h1{font-size:1.6em}h2{font-size:1.2em;margin-top:1.6em}\
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.35em .6em;text-align:left}\
th{background:#f2f2f2}.ok{color:#1a7f37;font-weight:bold}.bad{color:#b42318;font-weight:bold}\
.warn{color:#9a6700;font-weight:bold}.banner{padding:.8em 1em;border-radius:.4em;font-size:1.15em}\
.banner.ok{background:#dafbe1}.banner.retrying{background:#fff8c5}.banner.bad{background:#ffebe9}.banner p{margin:.2em 0}.banner .detail{font-size:.85em}small{color:#555}";

/// The page for `r`. Pure.
pub fn render(r: &StatusReport, alerts: &AlertsConfig, details: bool, now_ms: u64) -> String {
    let mut h = String::with_capacity(8192);
    h += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
    h += "<meta http-equiv=\"refresh\" content=\"30\"><meta name=\"viewport\" content=\"width=device-width\">";
    h += &format!(
        "<title>Clinic Gateway {}</title><style>{STYLE}</style></head><body>\n",
        esc(&r.box_id)
    );
    h += &format!(
        "<h1>Clinic Gateway <small>{}</small></h1>\n",
        esc(&r.box_id)
    );
    let summary = status_summary::summarize(r, alerts, now_ms);
    h += &format!(
        "<div class=\"banner {}\" id=\"summary\"><p>{}</p>",
        summary.level.as_str(),
        esc(&summary.headline)
    );
    for line in &summary.details {
        h += &format!("<p class=\"detail\">{}</p>", esc(line));
    }
    h += "</div>\n";
    h += "<p><a href=\"/messages\" id=\"find-message\">Find a message</a></p>\n";
    h += "<h2>Alerts</h2>\n";
    if r.alerts.is_empty() {
        h += "<p>No active alerts.</p>\n";
    } else {
        h += "<table id=\"alerts\"><tr><th>Problem</th><th>Affected</th><th>Since</th><th>What to do</th></tr>\n";
        for a in &r.alerts {
            let class = if a.severity == Severity::Critical {
                "bad"
            } else {
                "warn"
            };
            h += &format!(
                "<tr><td class=\"{class}\">{}</td><td>{}</td><td>{} ({} ago)</td><td>{}</td></tr>\n",
                esc(&a.title),
                esc(&a.affected),
                esc(&a.since),
                ago(now_ms.saturating_sub(a.since_ms) / 1000),
                esc(&a.action)
            );
        }
        h += "</table>\n";
    }
    h += "<h2>Where messages go</h2>\n<table id=\"destinations\"><tr><th>Destination</th><th>State</th><th>Waiting</th><th>Oldest waiting</th><th>Delivered</th><th>Could not deliver (dead letters)</th><th>Last error</th></tr>\n";
    for d in &r.destinations {
        let state = match (d.live.circuit.as_str(), d.live.down_since_ms) {
            ("closed", _) | ("", _) => "<span class=\"ok\">Working</span>".to_string(),
            (_, Some(t)) => format!(
                "<span class=\"bad\">Down for {}</span>",
                ago(now_ms.saturating_sub(t) / 1000)
            ),
            (c, None) => format!("<span class=\"bad\">{}</span>", esc(c)),
        };
        let oldest = d
            .oldest_pending_age_secs
            .map(ago)
            .unwrap_or_else(|| "-".into());
        let last = match (&d.live.last_error, d.live.last_error_at_ms) {
            (Some(e), at) => {
                let text = if details { e.clone() } else { error_summary(e) };
                let when = at
                    .map(|t| format!(" ({} ago)", ago(now_ms.saturating_sub(t) / 1000)))
                    .unwrap_or_default();
                format!("{}{}", esc(&text), esc(&when))
            }
            (None, _) => "-".into(),
        };
        h += &format!(
            "<tr><td>{} <small>({})</small></td><td>{state}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{last}</td></tr>\n",
            esc(&d.name),
            esc(&d.kind),
            d.pending,
            esc(&oldest),
            d.delivered,
            d.dead_letters
        );
    }
    h += "</table>\n";
    if !r.exports.is_empty() {
        h += "<h2>Bulk exports</h2>\n<table id=\"exports\"><tr><th>Export</th><th>State</th><th>Last success</th><th>Last error</th></tr>\n";
        for e in &r.exports {
            let mut state = esc(&e.state);
            if e.state == "downloading" {
                state += &format!(" ({} of {} files)", e.files_done, e.files_total);
            }
            if let Some(p) = e.paused.as_ref().or(e.progress.as_ref()) {
                state += &format!(" <small>{}</small>", esc(p));
            }
            let last = e
                .history
                .last_success_ms
                .map(|t| format!("{} ago", ago(now_ms.saturating_sub(t) / 1000)))
                .unwrap_or_else(|| "never".into());
            let err = e
                .history
                .last_error
                .as_deref()
                .map(esc)
                .unwrap_or_else(|| "-".into());
            h += &format!(
                "<tr><td>{} <small>(tenant {})</small></td><td>{state}</td><td>{}</td><td>{err}</td></tr>\n",
                esc(&e.name),
                esc(&e.tenant),
                esc(&last)
            );
        }
        h += "</table>\n";
    }
    h += "<h2>Where messages come from</h2>\n<table id=\"listeners\"><tr><th>Listener</th><th>Address</th><th>Connected now</th><th>Received</th><th>Accepted</th><th>Refused</th></tr>\n";
    for l in &r.listeners {
        let tls = if l.mutual_tls {
            " (TLS, client certificates)"
        } else if l.tls {
            " (TLS)"
        } else {
            ""
        };
        h += &format!(
            "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&l.name),
            esc(&l.bind),
            tls,
            l.counts.connections_open,
            l.counts.received,
            l.counts.acked,
            l.counts.rejected + l.counts.errored
        );
    }
    h += "</table>\n";
    if !r.pickups.is_empty() {
        h += "<table id=\"pickups\"><tr><th>Pickup folder</th><th>Files taken</th><th>Already taken</th><th>Rejected</th><th>In progress</th><th>Last error</th></tr>\n";
        for p in &r.pickups {
            h += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                esc(&p.name),
                p.taken,
                p.duplicates,
                p.rejected,
                p.in_progress,
                esc(p.last_error.as_deref().unwrap_or(""))
            );
        }
        h += "</table>\n";
    }
    h += "<h2>This box</h2>\n<table id=\"box\">";
    h += &format!(
        "<tr><th>Gateway version</th><td>{}</td></tr>",
        esc(&r.version)
    );
    h += &format!(
        "<tr><th>Running since</th><td>{} ({})</td></tr>",
        esc(&r.started_at),
        ago(r.uptime_secs)
    );
    let disk_class = if r.alerts.iter().any(|a| a.rule == Rule::Disk) {
        "bad"
    } else {
        "ok"
    };
    h += &format!(
        "<tr><th>Disk used</th><td class=\"{disk_class}\">{}%</td></tr>",
        r.journal.disk_percent_used
    );
    h += &format!(
        "<tr><th>Messages stored</th><td>{} ({:.1} MB)</td></tr>",
        r.journal.messages,
        r.journal.bytes_on_disk as f64 / 1e6
    );
    for c in &r.certificates {
        let left = c
            .days_left((now_ms / 1000) as i64)
            .map(|d| format!("expires in {d} days"))
            .unwrap_or_else(|| "expiry unknown".into());
        h += &format!(
            "<tr><th>Certificate ({} {}, {})</th><td>{}</td></tr>",
            esc(&c.owner_kind.replace('_', " ")),
            esc(&c.owner),
            esc(&c.role),
            esc(&left)
        );
    }
    h += "</table>\n";
    h += &format!(
        "<p><small>Read-only. Updated {} UTC; this page refreshes every 30 seconds.</small></p>\n</body></html>\n",
        esc(&clock::iso8601(now_ms))
    );
    h
}

/// Constant-time equality of two secrets (compares SHA-256 digests, so
/// neither the content nor the length leaks through timing).
pub fn secret_eq(a: &[u8], b: &[u8]) -> bool {
    let da = ring::digest::digest(&ring::digest::SHA256, a);
    let db = ring::digest::digest(&ring::digest::SHA256, b);
    da.as_ref()
        .iter()
        .zip(db.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Whether `req` carries the configured Basic credentials.
pub fn authorized(cfg: &StatusPageConfig, req: &Request) -> bool {
    let Some(password) = &cfg.password else {
        return true; // client certificates only: the handshake checked them
    };
    let Some(b64) = req.header("authorization").and_then(|h| {
        h.strip_prefix("Basic ")
            .or_else(|| h.strip_prefix("basic "))
    }) else {
        return false;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", cfg.username, password.expose());
    secret_eq(&raw, expected.as_bytes())
}

/// The page's settings, the alert thresholds its summary names, and the
/// journal its message views read.
struct Page {
    cfg: StatusPageConfig,
    alerts: AlertsConfig,
    views: MessageViews,
}

/// Who is asking, for the audit trail: the Basic user name and/or the
/// client certificate's CN (`client`), and the peer address.
fn who(cfg: &StatusPageConfig, client: Option<&str>, peer: SocketAddr) -> String {
    let cert = client.map(|cn| format!("client certificate CN={cn}"));
    match (&cfg.password, cert) {
        (Some(_), Some(c)) => format!("status page user {}, {c}, from {peer}", cfg.username),
        (Some(_), None) => format!("status page user {} from {peer}", cfg.username),
        (None, Some(c)) => format!("status page {c} from {peer}"),
        (None, None) => format!("status page from {peer}"),
    }
}

async fn answer(
    page: &Page,
    status: &StatusSource,
    req: Request,
    peer: SocketAddr,
    client: Option<&str>,
) -> Response {
    let cfg = &page.cfg;
    if !authorized(cfg, &req) {
        return Response::new(
            401,
            "text/html; charset=utf-8",
            "<!DOCTYPE html><html><head><title>Sign in</title></head><body><p>Sign in with the status page user name and password.</p></body></html>\n",
        )
        .with_header("WWW-Authenticate", "Basic realm=\"Clinic Gateway\", charset=\"UTF-8\"");
    }
    let who = who(cfg, client, peer);
    if let Some(r) = status_messages::answer(&page.views, &req, &who).await {
        return r;
    }
    if req.method == "POST" {
        return Response::text(405, "only the message forms take a POST\n")
            .with_header("Allow", "GET, HEAD");
    }
    match req.path.as_str() {
        "/" | "/index.html" => {
            let details = req.query.split('&').any(|p| p == "details=1");
            Response::new(
                200,
                "text/html; charset=utf-8",
                render(&status(), &page.alerts, details, clock::unix_ms()),
            )
            .with_header(
                "Content-Security-Policy",
                "default-src 'none'; style-src 'unsafe-inline'",
            )
            .with_header("X-Frame-Options", "DENY")
        }
        "/status.json" => Response::new(
            200,
            "application/json",
            serde_json::to_string(&status()).unwrap_or_default(),
        ),
        _ => Response::text(404, "not found\n"),
    }
}

/// The CN of the client certificate a TLS connection presented.
fn client_cn(conn: &rustls::ServerConnection) -> Option<String> {
    let cert = conn.peer_certificates()?.first()?;
    Some(
        crate::net::der::certificate_subject_cn(cert.as_ref())
            .ok()
            .flatten()
            .unwrap_or_else(|| "(none)".into()),
    )
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, crate::Error> {
    http_server::bind(
        "status_page",
        addr,
        "choose a free address in status_page.bind",
    )
    .await
}

pub async fn serve(
    listener: TcpListener,
    cfg: StatusPageConfig,
    alerts: AlertsConfig,
    status: StatusSource,
    views: MessageViews,
    shutdown: watch::Receiver<bool>,
) -> Result<(), crate::Error> {
    let tls = match &cfg.tls {
        Some(t) => Some(tokio_rustls::TlsAcceptor::from(
            crate::net::tls_config::server_config(t).map_err(|source| crate::Error::Tls {
                setting: "status_page.tls",
                source: Box::new(source),
            })?,
        )),
        None => None,
    };
    let page = Arc::new(Page { cfg, alerts, views });
    http_server::accept_loop(
        listener,
        move |stream, peer| {
            let (page, status, tls) = (page.clone(), status.clone(), tls.clone());
            async move {
                let max = status_messages::FORM_MAX;
                match tls {
                    None => {
                        http_server::serve_one(stream, max, |r| {
                            answer(&page, &status, r, peer, None)
                        })
                        .await
                    }
                    Some(acceptor) => {
                        let hs = tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            acceptor.accept(stream),
                        )
                        .await;
                        if let Ok(Ok(s)) = hs {
                            let cn = client_cn(s.get_ref().1);
                            http_server::serve_one(s, max, |r| {
                                answer(&page, &status, r, peer, cn.as_deref())
                            })
                            .await;
                        }
                    }
                }
            }
        },
        shutdown,
    )
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_summaries() {
        assert_eq!(esc("<b>\"x\"&'"), "&lt;b&gt;&quot;x&quot;&amp;&#39;");
        assert_eq!(
            error_summary("HTTP 503: OperationOutcome: Jane Doe"),
            "HTTP 503"
        );
        assert_eq!(
            error_summary("error sending request: connection refused"),
            "connection refused"
        );
        assert_eq!(error_summary("Jane Doe"), "error");
        assert!(secret_eq(b"admin:pw", b"admin:pw"));
        assert!(!secret_eq(b"admin:pw", b"admin:pX"));
    }
}
