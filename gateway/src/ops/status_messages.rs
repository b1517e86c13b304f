//! The status page's message views: a search form (`/messages`) and one
//! message's timeline (`/messages/ID`), answered by the same
//! `ops/messages.rs` search and journey as `gateway messages search|show`.
//!
//! - No PHI by default: rows and timelines carry ids, times, source, type,
//!   control id, states and error classes (`status_page::error_summary`).
//! - The raw HL7 only after an explicit click: a POST to
//!   `/messages/ID/raw`, audited as `phi_view` with the page user (Basic
//!   user name and/or client certificate CN, and the peer address).
//! - A patient (MRN) search is a POST only (the MRN is never in a URL),
//!   looked up through the keyed tag and audited as `phi_lookup`; the
//!   result page does not echo the MRN.
//! - POSTs from another origin are refused (`Origin` / `Sec-Fetch-Site`).
//! - Results are bounded: [`PAGE_ROWS`] by default, at most
//!   `messages::PAGE_MAX`, with an "older" link for the next page.

use std::fmt::Write as _;
use std::sync::Arc;

use journal::Journal;

use super::admin::Reply;
use super::clock;
use super::http_server::{Request, Response};
use super::messages::{self, Journey, MessageRow, SearchQuery, PAGE_MAX};
use super::messages_key::PatientKey;
use super::status_page::{error_summary, esc, STYLE};

/// Rows a search page shows unless `limit` says otherwise.
pub const PAGE_ROWS: usize = 50;
/// The largest form body accepted.
pub const FORM_MAX: usize = 4096;

/// What the message views read.
#[derive(Clone)]
pub struct MessageViews {
    pub journal: Journal,
    pub patients: Arc<PatientKey>,
}

/// The answer for a `/messages...` request, or `None` for another path.
/// `who` names the authenticated page user, for the audit trail.
pub async fn answer(views: &MessageViews, req: &Request, who: &str) -> Option<Response> {
    let path = req.path.as_str();
    if path == "/messages" {
        return Some(match req.method.as_str() {
            "POST" => match same_origin(req) {
                Ok(()) => search_page(views, &form(&String::from_utf8_lossy(&req.body)), who).await,
                Err(r) => r,
            },
            _ => {
                let params = form(&req.query);
                if params.iter().any(|(k, v)| k == "patient" && !v.is_empty()) {
                    page(
                        400,
                        "Search by patient",
                        "<p class=\"bad\">Search by patient with the form: an MRN is never put in a link.</p><p><a href=\"/messages\">Back to the search</a></p>",
                    )
                } else {
                    search_page(views, &params, who).await
                }
            }
        });
    }
    let rest = path.strip_prefix("/messages/")?;
    let (id, raw) = match rest.strip_suffix("/raw") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    let Ok(id) = id.parse::<u64>() else {
        return Some(Response::text(404, "not found\n"));
    };
    if raw && req.method != "POST" {
        return Some(
            page(
                405,
                "Show the message",
                &format!("<p>The message is shown only from its timeline's button. <a href=\"/messages/{id}\">Open the timeline</a></p>"),
            )
            .with_header("Allow", "POST"),
        );
    }
    if raw {
        if let Err(r) = same_origin(req) {
            return Some(r);
        }
    }
    Some(timeline_page(views, id, raw, who).await)
}

/// A POST must come from this page: a browser names its origin.
fn same_origin(req: &Request) -> Result<(), Response> {
    let refused = || {
        page(
            403,
            "Refused",
            "<p class=\"bad\">This form can only be sent from the status page itself.</p>",
        )
    };
    if let Some(site) = req.header("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Err(refused());
        }
    }
    if let Some(origin) = req.header("origin") {
        let host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        if host.is_none() || host != req.header("host") {
            return Err(refused());
        }
    }
    Ok(())
}

/// `a=1&b=x+y` (a query string or a form body), percent-decoded.
fn form(s: &str) -> Vec<(String, String)> {
    let dec = |v: &str| {
        percent_encoding::percent_decode_str(&v.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The query the form's fields ask for, or what is wrong with them.
fn query_of(params: &[(String, String)]) -> Result<SearchQuery, String> {
    let text = |name: &str| param(params, name).map(str::to_string);
    let time = |name: &str| {
        param(params, name)
            .map(clock::parse_time)
            .transpose()
            .map_err(|e| format!("{name}: {e}"))
    };
    let number = |name: &str| {
        param(params, name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("{name}: {v:?} is not a number"))
            })
            .transpose()
    };
    Ok(SearchQuery {
        control_id: text("control_id"),
        message_type: text("type"),
        source: text("source"),
        destination: text("destination"),
        state: text("state"),
        since_ms: time("since")?,
        until_ms: time("until")?,
        patient: text("patient"),
        before: number("before")?,
        limit: number("limit")?
            .map_or(PAGE_ROWS, |l| l as usize)
            .clamp(1, PAGE_MAX),
    })
}

fn page(status: u16, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{} - Clinic Gateway</title><style>{STYLE}</style></head><body>\n<p><a href=\"/\">Status</a> · <a href=\"/messages\">Find a message</a></p>\n<h1>{}</h1>\n{body}</body></html>\n",
        esc(title),
        esc(title)
    );
    Response::new(status, "text/html; charset=utf-8", html)
        .with_header(
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        )
        .with_header("X-Frame-Options", "DENY")
        .with_header("Referrer-Policy", "same-origin")
}

/// Run a journal read off the async workers.
async fn blocking(f: impl FnOnce() -> Reply + Send + 'static) -> Reply {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Reply::Error {
            message: format!("the request failed: {e}"),
        })
}

fn search_form(q: &SearchQuery, params: &[(String, String)]) -> String {
    let value = |name: &str| esc(param(params, name).unwrap_or(""));
    let mut h = String::from("<form method=\"post\" action=\"/messages\" id=\"search\"><table>");
    for (name, label, hint) in [
        ("control_id", "Control id", "MSH-10"),
        ("type", "Type", "ORU^R01"),
        ("source", "Source", "listener or poller"),
        ("destination", "Destination", ""),
        (
            "since",
            "Received since",
            "2h, 2026-12-01 or 2026-12-01T08:30:00Z (UTC)",
        ),
        ("until", "Received until", "same forms"),
    ] {
        let _ = write!(
            h,
            "<tr><th><label for=\"{name}\">{label}</label></th><td><input id=\"{name}\" name=\"{name}\" value=\"{}\"> <small>{hint}</small></td></tr>",
            value(name)
        );
    }
    h += "<tr><th><label for=\"state\">State</label></th><td><select id=\"state\" name=\"state\">";
    for s in ["", "pending", "delivered", "dead", "filtered", "purged"] {
        let sel = if q.state.as_deref().unwrap_or("") == s {
            " selected"
        } else {
            ""
        };
        let label = if s.is_empty() { "any" } else { s };
        let _ = write!(h, "<option value=\"{s}\"{sel}>{label}</option>");
    }
    h += "</select></td></tr>";
    // Never prefilled: the MRN is not echoed back.
    h += "<tr><th><label for=\"patient\">Patient MRN</label></th><td><input id=\"patient\" name=\"patient\" autocomplete=\"off\"> <small>MRN or MRN^^^AUTHORITY; a PHI lookup, recorded in the audit trail</small></td></tr>";
    let _ = write!(
        h,
        "<tr><th><label for=\"limit\">At most</label></th><td><input id=\"limit\" name=\"limit\" value=\"{}\"> <small>messages (up to {PAGE_MAX})</small></td></tr>",
        q.limit
    );
    h += "</table><p><button type=\"submit\" id=\"search-button\">Search</button></p></form>\n";
    h
}

fn states_cell(r: &MessageRow) -> String {
    if r.filtered {
        return "<span class=\"state\" data-state=\"filtered\">filtered (no route)</span>".into();
    }
    if r.destinations.is_empty() {
        return "<span class=\"state\" data-state=\"unknown\">unknown (received before the trace index)</span>".into();
    }
    r.destinations
        .iter()
        .map(|d| {
            format!(
                "<span class=\"state\" data-destination=\"{0}\" data-state=\"{1}\">{0}: {1}</span>",
                esc(&d.destination),
                esc(&d.state)
            )
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

async fn search_page(views: &MessageViews, params: &[(String, String)], who: &str) -> Response {
    let q = match query_of(params) {
        Ok(q) => q,
        Err(e) => {
            let body = format!(
                "<p class=\"bad\" id=\"error\">{}</p>{}",
                esc(&e),
                search_form(&SearchQuery::default(), params)
            );
            return page(400, "Find a message", &body);
        }
    };
    let mut body = search_form(&q, params);
    let searched = params
        .iter()
        .any(|(k, v)| k != "limit" && !v.trim().is_empty());
    if !searched {
        body += "<p>Give one or more filters; every one must hold. Rows come newest first and show no patient data.</p>\n";
        return page(200, "Find a message", &body);
    }
    let (v, who2, q2) = (views.clone(), who.to_string(), q.clone());
    let reply = blocking(move || messages::search(&v.journal, &v.patients, &q2, &who2)).await;
    let (items, next_before) = match reply {
        Reply::Messages { items, next_before } => (items, next_before),
        Reply::Error { message } => {
            body += &format!("<p class=\"bad\" id=\"error\">{}</p>", esc(&message));
            return page(400, "Find a message", &body);
        }
        _ => return page(500, "Find a message", "<p>unexpected answer</p>"),
    };
    if q.patient.is_some() {
        body += "<p><small>Searched by patient: recorded in the audit trail; the MRN is not kept in this page.</small></p>\n";
    }
    if items.is_empty() {
        body += "<p id=\"none\">No message matches.</p>\n";
        return page(200, "Find a message", &body);
    }
    body += "<table id=\"results\"><tr><th>Id</th><th>Received (UTC)</th><th>Source</th><th>Type</th><th>Control id</th><th>Where it stands</th></tr>\n";
    for r in &items {
        let _ = writeln!(
            body,
            "<tr><td><a href=\"/messages/{0}\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td>{4}</td><td>{5}</td></tr>",
            r.id,
            esc(&r.received_at),
            esc(&r.source),
            esc(&r.message_type),
            esc(&r.control_id),
            states_cell(r)
        );
    }
    body += "</table>\n";
    if let Some(before) = next_before {
        if q.patient.is_some() {
            body += "<p>More messages of this patient exist: narrow the time (received since / until).</p>\n";
        } else {
            let mut link = String::new();
            for (k, v) in params
                .iter()
                .filter(|(k, v)| k != "before" && !v.is_empty())
            {
                let enc = |s: &str| {
                    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
                        .to_string()
                };
                let _ = write!(link, "{}={}&", enc(k), enc(v));
            }
            let _ = writeln!(
                body,
                "<p><a id=\"older\" href=\"/messages?{}before={before}\">Older messages</a></p>",
                esc(&link)
            );
        }
    }
    page(200, "Find a message", &body)
}

async fn timeline_page(views: &MessageViews, id: u64, raw: bool, who: &str) -> Response {
    let (v, who2) = (views.clone(), who.to_string());
    match blocking(move || messages::show(&v.journal, id, raw, &who2)).await {
        Reply::MessageJourney(j) => page(200, &format!("Message {id}"), &timeline(&j)),
        Reply::Error { message } => page(
            404,
            &format!("Message {id}"),
            &format!("<p class=\"bad\" id=\"error\">{}</p>", esc(&message)),
        ),
        _ => page(500, "Message", "<p>unexpected answer</p>"),
    }
}

/// The timeline of `j`. Pure.
pub fn timeline(j: &Journey) -> String {
    let mut h = format!(
        "<p>{} · control id <b>{}</b> · {} bytes ({})</p>\n<table id=\"timeline\"><tr><th>When (UTC)</th><th>What</th><th>Where</th><th>Details</th></tr>\n",
        esc(&j.message_type),
        esc(&j.control_id),
        j.bytes,
        esc(&j.kind)
    );
    let ack = match &j.ack {
        Some(code) => format!("ACK {} sent", esc(code)),
        None => "no ACK asked for".into(),
    };
    let _ = writeln!(
        h,
        "<tr id=\"received\"><td>{}</td><td>received</td><td>{}</td><td>from {}; {ack}</td></tr>",
        esc(&j.received_at),
        esc(&j.source),
        esc(&j.peer)
    );
    if j.filtered {
        h += "<tr><td></td><td>filtered</td><td></td><td>no route takes it: kept in the journal, not sent</td></tr>\n";
    }
    for d in &j.destinations {
        let mut detail = String::new();
        if d.failures > 0 {
            let _ = write!(detail, "{} failed attempt(s)", d.failures);
        }
        for (label, t) in [
            ("first attempt", &d.first_attempt_at),
            ("last attempt", &d.last_attempt_at),
            ("dead-lettered", &d.dead_at),
        ] {
            if let Some(t) = t {
                let _ = write!(detail, "; {label} {}", esc(t));
            }
        }
        if let Some(e) = &d.last_error {
            let _ = write!(
                detail,
                "; last error: <span class=\"error-class\">{}</span>",
                esc(&error_summary(e))
            );
        }
        if let Some(seq) = d.dead_letter {
            let _ = write!(detail, "; dead letter {seq}");
        }
        let class = match d.state.as_str() {
            "delivered" => "ok",
            "pending" => "warn",
            _ => "bad",
        };
        let _ = writeln!(
            h,
            "<tr class=\"destination\" data-destination=\"{0}\" data-state=\"{1}\"><td>{2}</td><td class=\"{class}\">{1}</td><td>{0}</td><td>{3}</td></tr>",
            esc(&d.destination),
            esc(&d.state),
            esc(d.last_attempt_at.as_deref().or(d.first_attempt_at.as_deref()).unwrap_or("")),
            detail.trim_start_matches("; ")
        );
        for (i, a) in d.attempts.iter().enumerate() {
            if i == 1 && d.attempts_elided > 0 {
                let _ = writeln!(
                    h,
                    "<tr class=\"elided\" data-destination=\"{0}\"><td></td><td>…</td><td>{0}</td><td>{1} more failed attempt(s)</td></tr>",
                    esc(&d.destination),
                    d.attempts_elided
                );
            }
            let _ = writeln!(
                h,
                "<tr class=\"attempt\" data-destination=\"{0}\" data-outcome=\"{1}\"><td>{2}</td><td class=\"bad\">attempt failed ({1})</td><td>{0}</td><td><span class=\"error-class\">{3}</span></td></tr>",
                esc(&d.destination),
                esc(&a.outcome),
                esc(&a.at),
                // Already a class (`error_class`, as the log has it).
                esc(&a.error)
            );
        }
    }
    for e in &j.events {
        let who = e
            .operator
            .as_deref()
            .map(|o| format!("by {}", esc(o)))
            .unwrap_or_default();
        let _ = writeln!(
            h,
            "<tr class=\"event\" data-kind=\"{1}\"><td>{0}</td><td>{1}</td><td>{2}</td><td>{who}</td></tr>",
            esc(&e.at),
            esc(&e.kind),
            esc(e.destination.as_deref().unwrap_or(""))
        );
    }
    h += "</table>\n";
    if j.events_truncated {
        h += "<p><small>The audit trail was read only part of the way after the receipt; <code>gateway audit export</code> has it all.</small></p>\n";
    }
    match &j.raw {
        Some(raw) => {
            let _ = write!(
                h,
                "<h2>The message</h2>\n<p><small>Contains patient data. Your view of it is recorded in the audit trail.</small></p>\n<pre id=\"raw\">{}</pre>\n",
                esc(raw.trim_end())
            );
        }
        None => {
            let _ = writeln!(
                h,
                "<form method=\"post\" action=\"/messages/{}/raw\"><p><button type=\"submit\" id=\"show-raw\">Show the message</button> <small>It contains patient data: your view is recorded in the audit trail.</small></p></form>",
                j.id
            );
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: method.into(),
            path: "/messages".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn forms_decode_and_become_queries() {
        let p = form("control_id=A+1%26&type=ORU%5ER01&state=&limit=9999&since=1970-01-02");
        let q = query_of(&p).unwrap();
        assert_eq!(q.control_id.as_deref(), Some("A 1&"));
        assert_eq!(q.message_type.as_deref(), Some("ORU^R01"));
        assert_eq!(q.state, None);
        assert_eq!(q.limit, PAGE_MAX);
        assert_eq!(q.since_ms, Some(86_400_000));
        assert!(query_of(&form("until=soon")).unwrap_err().contains("until"));
        assert!(query_of(&form("before=x")).is_err());
        assert_eq!(query_of(&[]).unwrap().limit, PAGE_ROWS);
    }

    #[test]
    fn posts_from_elsewhere_are_refused() {
        let host = ("Host", "10.0.0.5:8080");
        assert!(same_origin(&req("POST", &[host])).is_ok());
        assert!(same_origin(&req(
            "POST",
            &[
                host,
                ("Origin", "http://10.0.0.5:8080"),
                ("Sec-Fetch-Site", "same-origin")
            ]
        ))
        .is_ok());
        assert!(same_origin(&req("POST", &[host, ("Origin", "http://evil.example")])).is_err());
        assert!(same_origin(&req("POST", &[host, ("Origin", "null")])).is_err());
        assert!(same_origin(&req("POST", &[host, ("Sec-Fetch-Site", "cross-site")])).is_err());
    }

    #[test]
    fn the_timeline_lists_each_failed_attempt_in_order() {
        let j: Journey = serde_json::from_value(serde_json::json!({
            "id": 7, "received_at": "2026-12-01T10:00:00Z", "received_at_ms": 0,
            "source": "ehr", "peer": "10.0.0.2:4000", "kind": "hl7v2",
            "message_type": "ADT^A04", "control_id": "C7", "bytes": 10,
            "ack": "AA", "filtered": false, "events": [], "events_truncated": false,
            "raw": null,
            "destinations": [{
                "destination": "cloud", "state": "delivered", "failures": 0,
                "first_attempt_at": null, "last_attempt_at": null, "last_error": null,
                "dead_letter": null, "dead_at": null, "attempts_elided": 3,
                "attempts": [
                    {"at": "2026-12-01T10:00:01Z", "at_ms": 1, "outcome": "retry", "error": "HTTP 503"},
                    {"at": "2026-12-01T10:00:09Z", "at_ms": 9, "outcome": "retry", "error": "cannot connect: <b>x</b>"}
                ]
            }]
        }))
        .unwrap();
        let h = timeline(&j);
        assert_eq!(h.matches("class=\"attempt\"").count(), 2, "{h}");
        let first = h.find("2026-12-01T10:00:01Z").unwrap();
        let elided = h.find("3 more failed attempt(s)").unwrap();
        let last = h.find("2026-12-01T10:00:09Z").unwrap();
        assert!(first < elided && elided < last, "{h}");
        assert!(h.contains(">HTTP 503<"), "{h}");
        assert!(!h.contains("<b>x</b>"), "escaped: {h}");
    }
}
