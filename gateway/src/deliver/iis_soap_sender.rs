//! The `iis_soap` destination: the CDC IIS SOAP transport (WSDL namespace
//! `urn:cdc:iisb:2011`, SOAP 1.2) that most state immunization registries
//! take VXU messages on. One `submitSingleMessage` per message, with the
//! registry's credentials (username, password, facilityID) in the body as
//! the WSDL requires; the registry's HL7 ACK, in `<return>`, is the verdict:
//!
//! - AA/CA: delivered;
//! - AE/AR (and CE/CR): the registry refused this message: dead letter with
//!   the ACK's text;
//! - an ACK for another control id, or no readable ACK: retry;
//! - `SecurityFault` (bad credentials, expired password): the whole
//!   destination waits (held until fixed, outage alert), as an HTTP 401 does;
//! - `MessageTooLargeFault`: dead letter (resending cannot help);
//! - `UnsupportedOperationFault`: the whole destination waits (the URL is not
//!   a CDC IIS endpoint: a config problem);
//! - `UnknownFault`, other faults, HTTP 5xx, network errors: retry.
//!
//! The XML handled is the little the WSDL defines: the envelope is written
//! here, and the answer is searched for the `return` element or the fault
//! detail's element by local name (any prefix), with entities and CDATA
//! decoded. Pure apart from `send`.

use std::time::SystemTime;

use super::http_sender::describe_reqwest;
use super::payload::Prepared;
use super::verdict::{classify_http, Verdict};
use crate::config::{DeliveryPolicy, IisSoapDestination};
use crate::net::https_client;

pub const NAMESPACE: &str = "urn:cdc:iisb:2011";
const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";
/// Answers larger than this are not read further (an ACK is small).
const MAX_ANSWER: usize = 1 << 20;

pub struct IisSoapSender {
    client: reqwest::Client,
    url: String,
    username: String,
    password: String,
    facility_id: String,
    retry_after_max: std::time::Duration,
}

impl IisSoapSender {
    pub fn new(
        d: &IisSoapDestination,
        policy: &DeliveryPolicy,
    ) -> Result<IisSoapSender, crate::Error> {
        let mut tls = d.http.tls.clone();
        tls.connect_timeout = policy.connect_timeout;
        tls.request_timeout = policy.timeout;
        Ok(IisSoapSender {
            client: https_client::reqwest_client(&tls)?,
            // Validated by the config.
            url: d.http.url.clone(),
            username: d.username.clone(),
            password: d.password.expose().to_string(),
            facility_id: d.facility_id.clone(),
            retry_after_max: policy.retry_after_max,
        })
    }

    pub async fn send(&self, p: &Prepared) -> Verdict {
        let body = envelope(
            &self.username,
            &self.password,
            &self.facility_id,
            &String::from_utf8_lossy(&p.body),
        );
        let sent = self
            .client
            .post(self.url.as_str())
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("application/soap+xml; charset=utf-8; action=\"{NAMESPACE}:submitSingleMessage\""),
            )
            .body(body)
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            Err(e) => return Verdict::retry(describe_reqwest(&e)),
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut answer = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    let room = MAX_ANSWER.saturating_sub(answer.len());
                    answer.extend_from_slice(&c[..c.len().min(room)]);
                    if answer.len() >= MAX_ANSWER {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return Verdict::retry(describe_reqwest(&e)),
            }
        }
        let text = String::from_utf8_lossy(&answer);
        judge(status, &text, &p.control_id).unwrap_or_else(|| {
            classify_http(
                status,
                retry_after.as_deref(),
                &answer,
                SystemTime::now(),
                self.retry_after_max,
            )
        })
    }
}

/// The `submitSingleMessage` request (SOAP 1.2, document/literal).
pub fn envelope(username: &str, password: &str, facility_id: &str, hl7: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <soap:Envelope xmlns:soap=\"{SOAP12}\" xmlns:iis=\"{NAMESPACE}\"><soap:Header/><soap:Body>\
         <iis:submitSingleMessage><iis:username>{}</iis:username><iis:password>{}</iis:password>\
         <iis:facilityID>{}</iis:facilityID><iis:hl7Message>{}</iis:hl7Message></iis:submitSingleMessage>\
         </soap:Body></soap:Envelope>",
        escape(username),
        escape(password),
        escape(facility_id),
        escape(hl7),
    )
}

/// The verdict a SOAP answer carries, if it is one (`None`: not SOAP; the
/// HTTP status decides).
pub fn judge(status: u16, xml: &str, sent_control_id: &str) -> Option<Verdict> {
    let fault_text = || {
        ["Reason", "Text", "Summary", "Detail", "faultstring"]
            .iter()
            .filter_map(|n| element_text(xml, n))
            .map(|t| t.trim().to_string())
            .find(|t| !t.is_empty())
            .unwrap_or_default()
    };
    if has_element(xml, "SecurityFault") {
        return Some(Verdict::Retry {
            reason: format!(
                "SecurityFault from the registry ({}): check the username, password and facilityID in the config (held until fixed)",
                fault_text()
            ),
            retry_after: None,
            whole_destination: true,
            answered: false,
        });
    }
    if has_element(xml, "MessageTooLargeFault") {
        return Some(Verdict::Reject {
            reason: format!("MessageTooLargeFault from the registry: {}", fault_text()),
        });
    }
    if has_element(xml, "UnsupportedOperationFault") {
        return Some(Verdict::Retry {
            reason: format!(
                "UnsupportedOperationFault: the registry does not offer submitSingleMessage at this url ({})",
                fault_text()
            ),
            retry_after: None,
            whole_destination: true,
            answered: false,
        });
    }
    if has_element(xml, "Fault") {
        return Some(Verdict::retry(format!(
            "SOAP fault (HTTP {status}) from the registry: {}",
            fault_text()
        )));
    }
    let ack = element_text(xml, "return")?;
    Some(judge_registry_ack(ack.trim().as_bytes(), sent_control_id))
}

/// The registry's ACK: AA/CA delivered, any refusal a dead letter with its text.
fn judge_registry_ack(ack: &[u8], sent_control_id: &str) -> Verdict {
    let a = match hl7::parse_ack(ack) {
        Ok(a) => a,
        Err(e) => return Verdict::retry(format!("the registry's answer is not an HL7 ACK ({e})")),
    };
    if a.acked_control_id.trim() != sent_control_id.trim() {
        return Verdict::retry(format!(
            "the registry acknowledged control id '{}', not '{sent_control_id}'",
            a.acked_control_id
        ));
    }
    match a.code.as_str() {
        "AA" | "CA" => Verdict::Delivered,
        code => Verdict::Reject {
            reason: format!("{code} from the registry: {}", a.text),
        },
    }
}

/// XML text (the status page's escaping, which XML reads the same), with
/// CR as a character reference: XML parsers turn a bare CR into LF, and CR
/// is HL7's segment separator.
fn escape(s: &str) -> String {
    crate::ops::status_page::esc(s).replace('\r', "&#13;")
}

/// Decode the five entities, numeric references and CDATA sections.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['&', '<']) {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("<![CDATA[") {
            let end = after.find("]]>").unwrap_or(after.len());
            out.push_str(&after[..end]);
            rest = after.get(end + 3..).unwrap_or("");
            continue;
        }
        if rest.starts_with('<') {
            out.push('<');
            rest = &rest[1..];
            continue;
        }
        let Some(semi) = rest.find(';').filter(|&n| n <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let name = &rest[1..semi];
        let decoded = match name {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            n => n
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| n.strip_prefix('#').map(|d| d.parse::<u32>()))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Where the start tag of an element with this local name (any prefix)
/// ends, and the tag's qualified name.
fn start_tag<'a>(xml: &'a str, local: &str) -> Option<(usize, &'a str, bool)> {
    let mut from = 0;
    while let Some(i) = xml[from..].find('<') {
        let at = from + i + 1;
        let tail = &xml[at..];
        let name_len = tail
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(tail.len());
        let qname = &tail[..name_len];
        let local_name = qname.rsplit(':').next().unwrap_or(qname);
        if local_name == local && !qname.starts_with(['/', '?', '!']) {
            let close = tail.find('>')?;
            let empty = tail[..close].ends_with('/');
            return Some((at + close + 1, qname, empty));
        }
        from = at;
    }
    None
}

fn has_element(xml: &str, local: &str) -> bool {
    start_tag(xml, local).is_some()
}

/// The decoded text inside the first element with this local name.
pub fn element_text(xml: &str, local: &str) -> Option<String> {
    let (start, qname, empty) = start_tag(xml, local)?;
    if empty {
        return Some(String::new());
    }
    let end = xml[start..].find(&format!("</{qname}"))?;
    Some(unescape(&xml[start..start + end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VXU: &str =
        "MSH|^~\\&|ECW|CLINIC|IIS|STATE|20240101||VXU^V04^VXU_V04|V1|P|2.5.1\rPID|1||M1\r";

    #[test]
    fn the_envelope_escapes_and_keeps_segment_separators() {
        let e = envelope("u<1>", "p&w", "F1", VXU);
        assert!(e.contains("<iis:username>u&lt;1&gt;</iis:username>"), "{e}");
        assert!(e.contains("<iis:password>p&amp;w</iis:password>"), "{e}");
        let back = element_text(&e, "hl7Message").unwrap();
        assert_eq!(back, VXU);
    }

    fn response(ack: &str) -> String {
        format!(
            "<soap:Envelope xmlns:soap=\"{SOAP12}\"><soap:Body><ns2:submitSingleMessageResponse xmlns:ns2=\"{NAMESPACE}\"><ns2:return>{}</ns2:return></ns2:submitSingleMessageResponse></soap:Body></soap:Envelope>",
            escape(ack)
        )
    }

    fn ack(code: &str, id: &str, text: &str) -> String {
        format!(
            "MSH|^~\\&|IIS|STATE|ECW|CLINIC|20240101||ACK^V04|A1|P|2.5.1\rMSA|{code}|{id}|{text}\r"
        )
    }

    #[test]
    fn the_registry_ack_is_the_verdict() {
        assert_eq!(
            judge(200, &response(&ack("AA", "V1", "")), "V1"),
            Some(Verdict::Delivered)
        );
        for code in ["AE", "AR"] {
            match judge(
                200,
                &response(&ack(code, "V1", "Unknown vaccine code")),
                "V1",
            ) {
                Some(Verdict::Reject { reason }) => {
                    assert!(
                        reason.contains("Unknown vaccine code") && reason.contains(code),
                        "{reason}"
                    )
                }
                v => panic!("{v:?}"),
            }
        }
        assert!(matches!(
            judge(200, &response(&ack("AA", "V0", "")), "V1"),
            Some(Verdict::Retry { .. })
        ));
        // CDATA instead of entities.
        let cdata = format!("<return><![CDATA[{}]]></return>", ack("AA", "V1", ""));
        assert_eq!(judge(200, &cdata, "V1"), Some(Verdict::Delivered));
        assert_eq!(judge(502, "<html>bad gateway</html>", "V1"), None);
    }

    #[test]
    fn faults_map_to_hold_dead_letter_or_retry() {
        let fault = |name: &str| {
            format!(
                "<soap:Envelope xmlns:soap=\"{SOAP12}\"><soap:Body><soap:Fault><soap:Code><soap:Value>soap:Sender</soap:Value></soap:Code>\
                 <soap:Reason><soap:Text xml:lang=\"en\">{name} happened</soap:Text></soap:Reason><soap:Detail>\
                 <iis:{name} xmlns:iis=\"{NAMESPACE}\"><iis:Code>1</iis:Code><iis:Reason>{name} reason</iis:Reason></iis:{name}>\
                 </soap:Detail></soap:Fault></soap:Body></soap:Envelope>"
            )
        };
        match judge(500, &fault("SecurityFault"), "V1") {
            Some(Verdict::Retry {
                whole_destination: true,
                answered: false,
                reason,
                ..
            }) => {
                assert!(reason.contains("SecurityFault"), "{reason}")
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            judge(500, &fault("MessageTooLargeFault"), "V1"),
            Some(Verdict::Reject { .. })
        ));
        assert!(matches!(
            judge(500, &fault("UnsupportedOperationFault"), "V1"),
            Some(Verdict::Retry {
                whole_destination: true,
                answered: false,
                ..
            })
        ));
        assert!(matches!(
            judge(500, &fault("UnknownFault"), "V1"),
            Some(Verdict::Retry {
                whole_destination: false,
                answered: false,
                ..
            })
        ));
    }
}
