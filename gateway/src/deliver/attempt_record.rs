//! Failed delivery attempts that survive a restart, so that `max_attempts`
//! and `max_age` mean what they say across restarts and power cuts.
//!
//! Written only when an attempt fails (one small state write in the
//! journal's store), and removed when the message is delivered or
//! dead-lettered: a healthy destination's fast path gains no journal write.
//! Namespace `attempts:<destination>`, key the message id (8 bytes, big
//! endian), value [`encode`]d.
//!
//! With each failure the message's [`History`] (the time, outcome and error
//! class of its failed attempts, bounded) is written in the same commit, in
//! the journey namespace (`journal::JOURNEY_NAMESPACE_PREFIX`): it is not
//! removed on delivery, so that `gateway messages show` can list the
//! attempts afterwards, and retention removes it with the message.

use std::collections::HashMap;

use journal::{Journal, JournalError, StateOp};
use serde::{Deserialize, Serialize};

/// What the outbox knows of a message's failed attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    /// Consecutive failed attempts.
    pub failures: u32,
    /// When the first of them started (unix ms).
    pub first_attempt_ms: u64,
}

const VERSION: u8 = 1;

/// `[version 1][failures u32 LE][first_attempt_ms u64 LE]`.
pub fn encode(a: Attempts) -> [u8; 13] {
    let mut out = [0u8; 13];
    out[0] = VERSION;
    out[1..5].copy_from_slice(&a.failures.to_le_bytes());
    out[5..13].copy_from_slice(&a.first_attempt_ms.to_le_bytes());
    out
}

/// The inverse of [`encode`]; `None` for anything else (a value written by
/// a later version is ignored: the message is then retried from zero).
pub fn decode(bytes: &[u8]) -> Option<Attempts> {
    let (&version, rest) = bytes.split_first()?;
    if version != VERSION || rest.len() != 12 {
        return None;
    }
    let failures = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    let first_attempt_ms = u64::from_le_bytes(rest.get(4..)?.try_into().ok()?);
    Some(Attempts {
        failures,
        first_attempt_ms,
    })
}

/// How many failed attempts a [`History`] keeps besides the first.
pub const HISTORY_LAST: usize = 20;

/// One failed attempt: when it started, what came of it, and the error's
/// class (`error_class`: "HTTP 503", "cannot connect"; never a server's text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at_ms: u64,
    /// `retry` (it will be tried again, or was given up on) or `rejected`
    /// (the destination refused it: dead-lettered).
    pub outcome: String,
    pub error: String,
}

/// The failed attempts of one message at one destination: the first and
/// the last [`HISTORY_LAST`], with a count of those left out between them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Failed attempts left out (after the first, before the kept ones).
    pub elided: u32,
    /// Oldest first.
    pub attempts: Vec<Attempt>,
}

const HISTORY_VERSION: u8 = 1;

impl History {
    pub fn push(&mut self, a: Attempt) {
        self.attempts.push(a);
        if self.attempts.len() > HISTORY_LAST + 1 {
            self.attempts.remove(1);
            self.elided = self.elided.saturating_add(1);
        }
    }

    /// `[version 1]` then JSON.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![HISTORY_VERSION];
        // Serializing plain strings and numbers cannot fail.
        out.extend(serde_json::to_vec(self).unwrap_or_default());
        out
    }

    /// The inverse of [`History::encode`]; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<History> {
        let (&version, rest) = bytes.split_first()?;
        if version != HISTORY_VERSION {
            return None;
        }
        serde_json::from_slice(rest).ok()
    }
}

/// Where `destination`'s attempt histories are kept.
pub fn journey_namespace(destination: &str) -> String {
    format!("{}{destination}", journal::JOURNEY_NAMESPACE_PREFIX)
}

/// One destination's persisted attempts.
pub struct AttemptRecord {
    namespace: String,
    journey: String,
}

impl AttemptRecord {
    pub fn new(destination: &str) -> AttemptRecord {
        AttemptRecord {
            namespace: format!("attempts:{destination}"),
            journey: journey_namespace(destination),
        }
    }

    /// Every record of messages still pending here. Records of messages no
    /// longer pending (a crash between a delivery and the record's removal)
    /// are removed, so that a later replay starts from zero.
    pub async fn load(&self, journal: &Journal) -> Result<HashMap<u64, Attempts>, JournalError> {
        let destination = self.namespace.trim_start_matches("attempts:");
        let mut found = HashMap::new();
        let mut stale = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = journal.list_state(&self.namespace, &[], after.as_deref(), 1024)?;
            let Some(last) = page.last().map(|e| e.key.clone()) else {
                break;
            };
            for entry in page {
                let id = <[u8; 8]>::try_from(entry.key.as_slice())
                    .ok()
                    .map(u64::from_be_bytes);
                let pending = match id {
                    Some(id) => journal
                        .pending_entries(destination, id.checked_sub(1), 1)?
                        .first()
                        .is_some_and(|pe| pe.id == id),
                    None => false,
                };
                match (id, decode(&entry.value)) {
                    (Some(id), Some(a)) if pending => {
                        found.insert(id, a);
                    }
                    _ => stale.push(entry.key),
                }
            }
            after = Some(last);
        }
        for key in stale {
            journal.delete_state(&self.namespace, &key).await?;
        }
        Ok(found)
    }

    /// Durable on return. `attempts` is `None` when the message leaves the
    /// outbox with this failure (dead-lettered): only its history is kept.
    pub async fn record(
        &self,
        journal: &Journal,
        id: u64,
        attempts: Option<Attempts>,
        failed: Attempt,
    ) -> Result<(), JournalError> {
        let key = id.to_be_bytes();
        let mut history = journal
            .get_state(&self.journey, &key)?
            .and_then(|v| History::decode(&v))
            .unwrap_or_default();
        history.push(failed);
        let mut ops = vec![StateOp::put(&self.journey, &key, &history.encode())];
        if let Some(a) = attempts {
            ops.push(StateOp::put(&self.namespace, &key, &encode(a)));
        }
        journal.append_batch(Vec::new(), ops).await.map(|_| ())
    }

    pub async fn clear(&self, journal: &Journal, id: u64) -> Result<(), JournalError> {
        journal
            .delete_state(&self.namespace, &id.to_be_bytes())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let a = Attempts {
            failures: 7,
            first_attempt_ms: 1_764_633_600_000,
        };
        assert_eq!(decode(&encode(a)), Some(a));
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&encode(a)[..12]), None);
        let mut later = encode(a);
        later[0] = 2;
        assert_eq!(decode(&later), None);
    }

    #[test]
    fn history_keeps_the_first_and_the_last() {
        let mut h = History::default();
        for i in 0..30u64 {
            h.push(Attempt {
                at_ms: i,
                outcome: "retry".into(),
                error: "HTTP 503".into(),
            });
        }
        assert_eq!(h.attempts.len(), HISTORY_LAST + 1);
        assert_eq!(h.elided, 30 - HISTORY_LAST as u32 - 1);
        assert_eq!(h.attempts[0].at_ms, 0);
        assert_eq!(h.attempts[1].at_ms, 10);
        assert_eq!(h.attempts.last().map(|a| a.at_ms), Some(29));
        assert_eq!(History::decode(&h.encode()), Some(h.clone()));
        assert_eq!(History::decode(&h.encode()[1..]), None);
        assert_eq!(History::decode(&[]), None);
    }
}
