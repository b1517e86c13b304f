//! Failed delivery attempts that survive a restart, so that `max_attempts`
//! and `max_age` mean what they say across restarts and power cuts.
//!
//! Written only when an attempt fails (one small state write in the
//! journal's store), and removed when the message is delivered or
//! dead-lettered: a healthy destination's fast path gains no journal write.
//! Namespace `attempts:<destination>`, key the message id (8 bytes, big
//! endian), value [`encode`]d.

use std::collections::HashMap;

use journal::{Journal, JournalError};

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

/// One destination's persisted attempts.
pub struct AttemptRecord {
    namespace: String,
}

impl AttemptRecord {
    pub fn new(destination: &str) -> AttemptRecord {
        AttemptRecord {
            namespace: format!("attempts:{destination}"),
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

    /// Durable on return.
    pub async fn record(
        &self,
        journal: &Journal,
        id: u64,
        attempts: Attempts,
    ) -> Result<(), JournalError> {
        journal
            .put_state(&self.namespace, &id.to_be_bytes(), &encode(attempts))
            .await
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
}
