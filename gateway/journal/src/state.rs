//! The durable state store: small values a source keeps next to its
//! messages (a bulk export's lines committed per file, a poller's cursor,
//! a pickup's processed files), by namespace and key.
//!
//! Writes go through the writer like an append: durable before they return
//! (one WAL record + `fdatasync`, the same group commit), and atomic with
//! messages when part of [`Journal::append_batch`]. Each value is a sealed
//! record (CRC) under `s` lp(namespace) key. Reads go straight to sled and
//! are paged. State writes are not audited: they are a source's own
//! bookkeeping (the messages they commit with are).

use crate::error::{corrupt, map_sled};
use crate::record;
use crate::{Journal, JournalError};

#[cfg(test)]
mod tests;

/// Largest value [`Journal::put_state`] stores: state is for cursors and
/// counts, not for data (that goes in messages).
pub const STATE_VALUE_MAX: usize = 64 * 1024;
/// Largest key, in bytes.
pub const STATE_KEY_MAX: usize = 1024;
/// Longest namespace, in bytes (it must not be empty).
pub const STATE_NAMESPACE_MAX: usize = 255;
/// State kept for one message's journey: namespace `journey:<destination>`,
/// key the message id (8 bytes, big endian). Retention removes these
/// entries with the message (a prune or a release), for every destination.
pub const JOURNEY_NAMESPACE_PREFIX: &str = "journey:";

/// The state key of message `id`'s journey entry for `destination`.
pub(crate) fn journey_key(destination: &str, id: u64) -> Vec<u8> {
    crate::record::state_key(
        &format!("{JOURNEY_NAMESPACE_PREFIX}{destination}"),
        &id.to_be_bytes(),
    )
}

/// One change to the state store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateOp {
    Put {
        namespace: String,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        namespace: String,
        key: Vec<u8>,
    },
}

impl StateOp {
    pub fn put(namespace: &str, key: &[u8], value: &[u8]) -> StateOp {
        StateOp::Put {
            namespace: namespace.to_string(),
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    pub fn delete(namespace: &str, key: &[u8]) -> StateOp {
        StateOp::Delete {
            namespace: namespace.to_string(),
            key: key.to_vec(),
        }
    }

    pub(crate) fn namespace(&self) -> &str {
        match self {
            StateOp::Put { namespace, .. } | StateOp::Delete { namespace, .. } => namespace,
        }
    }

    pub(crate) fn key(&self) -> &[u8] {
        match self {
            StateOp::Put { key, .. } | StateOp::Delete { key, .. } => key,
        }
    }

    /// Bytes it adds to the journal (0 for a delete).
    pub(crate) fn size(&self) -> usize {
        match self {
            StateOp::Put { key, value, .. } => key.len() + value.len(),
            StateOp::Delete { .. } => 0,
        }
    }

    /// Within the namespace, key and value limits, or why not.
    pub(crate) fn check(&self) -> Result<(), JournalError> {
        check_key(self.namespace(), self.key())?;
        if let StateOp::Put { value, .. } = self {
            if value.len() > STATE_VALUE_MAX {
                return Err(JournalError::Invalid {
                    reason: format!(
                        "state value for namespace {:?} is {} bytes, more than the {STATE_VALUE_MAX} \
                         a state value may hold: keep data in messages and only cursors or counts in state",
                        self.namespace(),
                        value.len()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// One stored state value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// The key within its namespace.
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

fn check_key(namespace: &str, key: &[u8]) -> Result<(), JournalError> {
    if namespace.is_empty() || namespace.len() > STATE_NAMESPACE_MAX {
        return Err(JournalError::Invalid {
            reason: format!(
                "state namespace {namespace:?} must be 1 to {STATE_NAMESPACE_MAX} bytes long"
            ),
        });
    }
    if key.len() > STATE_KEY_MAX {
        return Err(JournalError::Invalid {
            reason: format!(
                "state key in namespace {namespace:?} is {} bytes, more than the {STATE_KEY_MAX} allowed",
                key.len()
            ),
        });
    }
    Ok(())
}

impl Journal {
    /// Store `value` under (`namespace`, `key`), replacing any value there.
    /// Durable on return. At most [`STATE_VALUE_MAX`] bytes.
    pub async fn put_state(
        &self,
        namespace: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), JournalError> {
        self.append_batch(Vec::new(), vec![StateOp::put(namespace, key, value)])
            .await
            .map(|_| ())
    }

    /// Remove (`namespace`, `key`); durable on return. Removing a key that
    /// is not there does nothing (and commits nothing).
    pub async fn delete_state(&self, namespace: &str, key: &[u8]) -> Result<(), JournalError> {
        self.append_batch(Vec::new(), vec![StateOp::delete(namespace, key)])
            .await
            .map(|_| ())
    }

    /// The value under (`namespace`, `key`), as of the last commit.
    pub fn get_state(&self, namespace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, JournalError> {
        check_key(namespace, key)?;
        let db = self.inner.shared.db()?;
        let what = || format!("state {namespace:?} key {:?}", String::from_utf8_lossy(key));
        match crate::chunk::get(&db, &record::state_key(namespace, key), &what())? {
            None => Ok(None),
            Some(v) => record::open(&v)
                .map(|p| Some(p.to_vec()))
                .map_err(|why| corrupt(what(), why)),
        }
    }

    /// Up to `limit` entries of `namespace` whose key starts with `prefix`
    /// and is greater than `after` (exclusive; `None` = from the first), in
    /// key (byte) order. Page through by passing the last key returned.
    pub fn list_state(
        &self,
        namespace: &str,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<StateEntry>, JournalError> {
        check_key(namespace, prefix)?;
        let db = self.inner.shared.db()?;
        let ns = record::state_prefix(namespace);
        let full = record::state_key(namespace, prefix);
        let mut out = Vec::new();
        let range = match after {
            // Strictly after `after`: its successor is `after` ‖ 0.
            Some(a) => {
                let mut start = record::state_key(namespace, a);
                start.push(0);
                db.range(start.max(full.clone())..)
            }
            None => db.range(full.clone()..),
        };
        for item in range {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| map_sled(format!("scan state {namespace:?}"), e))?;
            if !k.starts_with(&full) {
                break;
            }
            let key = k[ns.len()..].to_vec();
            let what = || {
                format!(
                    "state {namespace:?} key {:?}",
                    String::from_utf8_lossy(&key)
                )
            };
            let v = crate::chunk::resolve_or(&db, &k, &v, &what())?;
            let value = record::open(&v).map_err(|why| corrupt(what(), why))?;
            let value = value.to_vec();
            out.push(StateEntry { key, value });
        }
        Ok(out)
    }
}
