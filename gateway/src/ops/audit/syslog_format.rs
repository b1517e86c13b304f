//! RFC 5424 syslog messages for audit events, in RFC 5425's octet-counted
//! framing (`MSG-LEN SP SYSLOG-MSG`). Pure: no I/O.
//!
//! Each event is one message: facility 13 (log audit), severity 6 (info),
//! MSGID the event kind, and structured data
//! `[audit@32473 seq="N" hash="HEX" prev="HEX"]` so a collector can
//! de-duplicate (delivery is at least once) and check the chain; the MSG is
//! the event's detail (ids, control ids, operators, outcomes: no PHI, as
//! the audit text never has any). Every batch ends with a `chain_head`
//! message carrying `[head@32473 seq="N" hash="HEX"]`, the head of the
//! trail at the time, so the collector has one to pass to
//! `gateway audit verify --head`. 32473 is the private enterprise number
//! RFC 5612 sets aside for documentation.

use journal::{AuditEvent, ChainHead};

use crate::ops::clock;

/// Facility 13 (log audit) × 8 + severity 6 (informational).
const PRI: u8 = 13 * 8 + 6;
const SD_ID: &str = "audit@32473";
const HEAD_SD_ID: &str = "head@32473";

/// What every message of this box carries in its header.
pub struct Header<'a> {
    pub hostname: &'a str,
    pub app_name: &'a str,
    pub procid: u32,
}

/// One audit event as a framed syslog message.
pub fn event(h: &Header<'_>, ev: &AuditEvent) -> Vec<u8> {
    let mut sd = format!("[{SD_ID} seq=\"{}\"", ev.seq);
    if let Some(hash) = &ev.hash {
        sd.push_str(&format!(" hash=\"{}\"", param(hash)));
    }
    if let Some(prev) = &ev.prev {
        sd.push_str(&format!(" prev=\"{}\"", param(prev)));
    }
    sd.push(']');
    frame(&message(h, ev.at_ms, &msgid(&ev.kind), &sd, &ev.detail))
}

/// The chain head sent after every batch.
pub fn head(h: &Header<'_>, at_ms: u64, head: &ChainHead) -> Vec<u8> {
    let text = head.to_text();
    let (seq, hash) = text.split_once(':').unwrap_or((&text, ""));
    let sd = format!("[{HEAD_SD_ID} seq=\"{seq}\" hash=\"{hash}\"]");
    frame(&message(
        h,
        at_ms,
        "chain_head",
        &sd,
        &format!("audit chain head {text}"),
    ))
}

fn message(h: &Header<'_>, at_ms: u64, msgid: &str, sd: &str, text: &str) -> String {
    format!(
        "<{PRI}>1 {} {} {} {} {msgid} {sd} {}",
        clock::iso8601(at_ms),
        h.hostname,
        h.app_name,
        h.procid,
        // Control characters (a CR in a detail) would confuse collectors
        // that split on them; octet counting does not need it.
        text.replace(|c: char| c.is_control(), " ")
    )
}

/// RFC 5425 framing: the byte length, a space, the message.
fn frame(msg: &str) -> Vec<u8> {
    format!("{} {msg}", msg.len()).into_bytes()
}

/// MSGID: 1 to 32 printable US-ASCII characters without spaces.
fn msgid(kind: &str) -> String {
    let s: String = kind
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(32)
        .collect();
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// A PARAM-VALUE: `"`, `\` and `]` escaped with a backslash.
fn param(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> Header<'static> {
        Header {
            hostname: "gw-01",
            app_name: "clinic-gateway",
            procid: 42,
        }
    }

    #[test]
    fn event_is_rfc5424_octet_counted_with_seq_and_hashes() {
        let ev = AuditEvent {
            seq: 7,
            at_ms: 1_764_644_700_000,
            kind: "delivered".into(),
            detail: "id=3 dest=fhir\rcontrol_id=X1".into(),
            hash: Some("ab".repeat(32)),
            prev: Some("cd".repeat(32)),
        };
        let framed = String::from_utf8(event(&hdr(), &ev)).unwrap();
        let (len, msg) = framed.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        let want = format!(
            "<110>1 2025-12-02T03:05:00Z gw-01 clinic-gateway 42 delivered \
             [audit@32473 seq=\"7\" hash=\"{}\" prev=\"{}\"] id=3 dest=fhir control_id=X1",
            "ab".repeat(32),
            "cd".repeat(32)
        );
        assert_eq!(msg, want);
    }

    #[test]
    fn genesis_events_carry_only_their_seq_and_odd_kinds_are_made_safe() {
        let ev = AuditEvent {
            seq: 1,
            at_ms: 0,
            kind: "a kind with spaces and more than thirty-two characters".into(),
            detail: String::new(),
            hash: None,
            prev: None,
        };
        let framed = String::from_utf8(event(&hdr(), &ev)).unwrap();
        assert!(framed.contains(" akindwithspacesandmorethanthirty [audit@32473 seq=\"1\"] "));
    }

    #[test]
    fn head_message_names_seq_and_hash() {
        let head = ChainHead {
            seq: 9,
            hash: [0x11; 32],
        };
        let framed = String::from_utf8(super::head(&hdr(), 0, &head)).unwrap();
        assert!(framed.contains(&format!(
            "chain_head [head@32473 seq=\"9\" hash=\"{}\"]",
            "11".repeat(32)
        )));
    }

    #[test]
    fn param_values_escape_quote_backslash_and_bracket() {
        assert_eq!(param(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
    }
}
