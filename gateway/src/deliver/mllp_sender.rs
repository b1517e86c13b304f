//! The `mllp` destination: an MLLP(S) client to a reference lab or back to
//! eCW. Connections are kept open and reused (a small pool, one per
//! concurrent lane) and reopened after any error. The message is sent as
//! stored, so a resend keeps its MSH-10 and the receiver can de-duplicate.
//!
//! The reply must be an ACK whose MSA-2 equals the MSH-10 sent (anything
//! else is a stale or foreign ACK: the connection is dropped and the
//! message retried). AA/CA: delivered. AE/CE: dead letter with the MSA/ERR
//! text. AR/CR, a timeout or a broken connection: retried.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::payload::Prepared;
use super::verdict::Verdict;
use crate::config::{DeliveryPolicy, MllpDestination};
use crate::net::mllp_client::Client;
use crate::net::tls_config;
use hl7::parse_ack;

pub struct MllpSender {
    address: String,
    tls: Option<Arc<rustls::ClientConfig>>,
    connect_timeout: Duration,
    response_timeout: Duration,
    idle: Mutex<Vec<Client>>,
}

impl MllpSender {
    pub fn new(
        dest: &MllpDestination,
        policy: &DeliveryPolicy,
    ) -> Result<MllpSender, crate::Error> {
        let tls = match &dest.tls {
            None => None,
            Some(t) => Some(
                tls_config::client_config(
                    &t.ca_file,
                    t.client_cert
                        .as_ref()
                        .map(|(c, k)| (c.as_path(), k.as_path())),
                )
                .map_err(|source| crate::Error::Tls {
                    setting: "tls",
                    source: Box::new(source),
                })?,
            ),
        };
        Ok(MllpSender {
            address: dest.address.clone(),
            tls,
            connect_timeout: policy.connect_timeout,
            response_timeout: policy.timeout,
            idle: Mutex::new(Vec::new()),
        })
    }

    fn take_idle(&self) -> Option<Client> {
        self.idle.lock().ok().and_then(|mut v| v.pop())
    }

    fn put_idle(&self, c: Client) {
        if let Ok(mut v) = self.idle.lock() {
            v.push(c);
        }
    }

    pub async fn send(&self, p: &Prepared) -> Verdict {
        let mut client = match self.take_idle() {
            Some(c) => c,
            None => {
                match Client::connect(&self.address, self.tls.clone(), self.connect_timeout).await {
                    Ok(c) => c,
                    Err(e) => return Verdict::retry(e.to_string()),
                }
            }
        };
        if let Err(e) = client.send(&p.body).await {
            // A pooled connection the peer closed while idle: one fresh try.
            match Client::connect(&self.address, self.tls.clone(), self.connect_timeout).await {
                Ok(c) => client = c,
                Err(e2) => return Verdict::retry(format!("{e}; reconnect: {e2}")),
            }
            if let Err(e) = client.send(&p.body).await {
                return Verdict::retry(e.to_string());
            }
        }
        let reply = match client.read_reply(self.response_timeout).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Verdict::retry(format!(
                    "no ACK within {} s (connection dropped; the resend keeps MSH-10 {})",
                    self.response_timeout.as_secs(),
                    p.control_id
                ))
            }
            Err(e) => return Verdict::retry(e.to_string()),
        };
        let verdict = judge_ack(&reply, &p.control_id);
        // Keep the connection unless the exchange went out of step.
        if !matches!(&verdict, Verdict::Retry { reason, .. } if reason.starts_with("out of step")) {
            self.put_idle(client);
        }
        verdict
    }
}

/// What an ACK payload means for the message whose MSH-10 was `sent_control_id`. Pure.
pub fn judge_ack(reply: &[u8], sent_control_id: &str) -> Verdict {
    let ack = match parse_ack(reply) {
        Ok(a) => a,
        Err(e) => return Verdict::retry(format!("out of step: the reply is not an ACK ({e})")),
    };
    if ack.acked_control_id.trim() != sent_control_id.trim() {
        return Verdict::retry(format!(
            "out of step: ACK for control id '{}' while waiting for '{}'",
            ack.acked_control_id, sent_control_id
        ));
    }
    let text = if ack.text.is_empty() {
        String::new()
    } else {
        format!(": {}", ack.text)
    };
    match ack.code.as_str() {
        "AA" | "CA" => Verdict::Delivered,
        "AE" | "CE" => Verdict::Reject {
            reason: format!("{} (application error){text}", ack.code),
        },
        _ => Verdict::retry(format!(
            "{} (rejected by the receiver, will retry){text}",
            ack.code
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(code: &str, id: &str, text: &str) -> Vec<u8> {
        format!("MSH|^~\\&|LAB|L|GW|G|20240101||ACK|A1|P|2.5.1\rMSA|{code}|{id}|{text}\r")
            .into_bytes()
    }

    #[test]
    fn ack_codes() {
        assert_eq!(judge_ack(&ack("AA", "42", ""), "42"), Verdict::Delivered);
        assert_eq!(judge_ack(&ack("CA", "42", ""), "42"), Verdict::Delivered);
        match judge_ack(&ack("AE", "42", "PID-3 unknown patient"), "42") {
            Verdict::Reject { reason } => {
                assert!(reason.contains("PID-3 unknown patient"), "{reason}")
            }
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            judge_ack(&ack("AR", "42", "busy"), "42"),
            Verdict::Retry { .. }
        ));
        match judge_ack(&ack("AA", "41", ""), "42") {
            Verdict::Retry { reason, .. } => assert!(reason.starts_with("out of step")),
            v => panic!("{v:?}"),
        }
        assert!(matches!(judge_ack(b"garbage", "42"), Verdict::Retry { .. }));
    }
}
