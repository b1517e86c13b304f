//! What one delivery attempt came to, and how HTTP answers map onto it. Pure.

use std::time::{Duration, SystemTime};

/// The outcome of one attempt to deliver one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The destination has it (2xx, AA/CA, file renamed into place).
    Delivered,
    /// Not now: try again later. `retry_after` is what the server asked
    /// for; `whole_destination` means the destination as a whole is
    /// unavailable or throttling (429/503, auth rejected), not this message.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
        whole_destination: bool,
        /// The destination answered and is up, but this message could not
        /// be applied now (FHIR 412 after every re-read: the resource it
        /// writes kept changing, e.g. a shared Practitioner written by
        /// other lanes). Never counts toward opening the circuit, or
        /// contention would make a healthy server look down.
        answered: bool,
    },
    /// This message will never be accepted as it is: dead-letter it with
    /// the reason (HTTP status and OperationOutcome text, NAK text, map error).
    Reject { reason: String },
}

impl Verdict {
    pub fn retry(reason: impl Into<String>) -> Verdict {
        Verdict::Retry {
            reason: reason.into(),
            retry_after: None,
            whole_destination: false,
            answered: false,
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date, relative to `now`,
/// clamped to `max`. `None` when absent or unreadable.
pub fn parse_retry_after(value: &str, now: SystemTime, max: Duration) -> Option<Duration> {
    let v = value.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(v).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(d.min(max))
}

/// Classify an HTTP response. `retry_after` is the raw header value;
/// `body` is used for the OperationOutcome's diagnostics on errors.
pub fn classify_http(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: SystemTime,
    retry_after_max: Duration,
) -> Verdict {
    let after = retry_after.and_then(|v| parse_retry_after(v, now, retry_after_max));
    let detail = || {
        let text = error_text(body);
        if text.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {text}")
        }
    };
    match status {
        200..=299 => Verdict::Delivered,
        // Throttled or down for maintenance: the whole destination waits.
        429 | 503 => Verdict::Retry {
            reason: detail(),
            retry_after: after,
            whole_destination: true,
            answered: false,
        },
        // Timeouts, conflicts from concurrent updates, too-early: try again.
        408 | 409 | 425 => Verdict::Retry {
            reason: detail(),
            retry_after: after,
            whole_destination: false,
            answered: false,
        },
        500..=599 => Verdict::Retry {
            reason: detail(),
            retry_after: after,
            whole_destination: false,
            answered: false,
        },
        300..=399 => Verdict::Reject {
            reason: format!(
                "{}: the server redirects; set the destination url to the final address",
                detail()
            ),
        },
        _ => Verdict::Reject { reason: detail() },
    }
}

/// Most characters of a server's error text kept in a dead letter.
const MAX_ERROR_TEXT: usize = 2000;

/// The useful text of an error body: a FHIR OperationOutcome's issues
/// (severity, code, diagnostics or details.text), else the start of the
/// body if it is text.
pub fn error_text(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if v.get("resourceType").and_then(|r| r.as_str()) == Some("OperationOutcome") {
            let issues: Vec<String> = v
                .get("issue")
                .and_then(|i| i.as_array())
                .map(|a| {
                    a.iter()
                        .map(|i| {
                            let s = |k: &str| i.get(k).and_then(|x| x.as_str()).unwrap_or("");
                            let text = i
                                .get("diagnostics")
                                .and_then(|x| x.as_str())
                                .or_else(|| {
                                    i.get("details")
                                        .and_then(|d| d.get("text"))
                                        .and_then(|x| x.as_str())
                                })
                                .unwrap_or("");
                            let loc = i
                                .get("expression")
                                .or_else(|| i.get("location"))
                                .and_then(|x| x.as_array())
                                .and_then(|a| a.first())
                                .and_then(|x| x.as_str())
                                .map(|l| format!(" at {l}"))
                                .unwrap_or_default();
                            format!("{} {}{loc}: {text}", s("severity"), s("code"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            return clip(&format!("OperationOutcome: {}", issues.join("; ")));
        }
    }
    match std::str::from_utf8(body) {
        Ok(t) => clip(t.trim()),
        Err(_) => format!("{} bytes of non-text body", body.len()),
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() <= MAX_ERROR_TEXT {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX_ERROR_TEXT).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(
            parse_retry_after("120", now, MAX),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("999999", now, MAX), Some(MAX));
        // RFC 9110's example date, 60 s after `now`.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now, MAX),
            Some(Duration::from_secs(60))
        );
        // A date in the past means now.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now, MAX),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now, MAX), None);
    }

    #[test]
    fn status_classes() {
        let now = SystemTime::now();
        assert_eq!(classify_http(201, None, b"", now, MAX), Verdict::Delivered);
        match classify_http(429, Some("7"), b"", now, MAX) {
            Verdict::Retry {
                retry_after,
                whole_destination,
                ..
            } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
                assert!(whole_destination);
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            classify_http(500, None, b"oops", now, MAX),
            Verdict::Retry {
                whole_destination: false,
                answered: false,
                ..
            }
        ));
        assert!(matches!(
            classify_http(302, None, b"", now, MAX),
            Verdict::Reject { .. }
        ));
        let oo = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"Patient.birthDate: invalid date","expression":["Patient.birthDate"]}]}"#;
        match classify_http(400, None, oo, now, MAX) {
            Verdict::Reject { reason } => {
                assert_eq!(
                    reason,
                    "HTTP 400: OperationOutcome: error invalid at Patient.birthDate: Patient.birthDate: invalid date"
                );
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn long_bodies_are_clipped() {
        let body = "x".repeat(10_000);
        assert!(error_text(body.as_bytes()).chars().count() <= MAX_ERROR_TEXT + 1);
        assert_eq!(error_text(&[0xff, 0xfe]), "2 bytes of non-text body");
    }
}
