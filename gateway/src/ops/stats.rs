//! In-memory counters since the daemon started. Durable counts (pending,
//! delivered) come from the journal; these are the live, per-listener ones.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

#[derive(Default, Debug)]
pub struct ListenerStats {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    /// Refused: not on the allowlist, over a connection limit, or a failed TLS handshake.
    pub connections_refused: AtomicU64,
    pub received: AtomicU64,
    pub acked: AtomicU64,
    /// Answered AE/CE (we could not take it now).
    pub errored: AtomicU64,
    /// Answered AR/CR (unreadable, oversized ...).
    pub rejected: AtomicU64,
    pub duplicates: AtomicU64,
    pub framing_errors: AtomicU64,
    pub junk_bytes: AtomicU64,
    pub oversized: AtomicU64,
    pub timeouts: AtomicU64,
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ListenerSnapshot {
    pub connections_open: u64,
    pub connections_total: u64,
    pub connections_refused: u64,
    pub received: u64,
    pub acked: u64,
    pub errored: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub framing_errors: u64,
    pub junk_bytes: u64,
    pub oversized: u64,
    pub timeouts: u64,
}

impl ListenerStats {
    pub fn snapshot(&self) -> ListenerSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ListenerSnapshot {
            connections_open: g(&self.connections_open),
            connections_total: g(&self.connections_total),
            connections_refused: g(&self.connections_refused),
            received: g(&self.received),
            acked: g(&self.acked),
            errored: g(&self.errored),
            rejected: g(&self.rejected),
            duplicates: g(&self.duplicates),
            framing_errors: g(&self.framing_errors),
            junk_bytes: g(&self.junk_bytes),
            oversized: g(&self.oversized),
            timeouts: g(&self.timeouts),
        }
    }
}

/// All live counters, keyed by listener name.
#[derive(Default, Debug)]
pub struct Registry {
    listeners: BTreeMap<String, Arc<ListenerStats>>,
}

impl Registry {
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        Registry {
            listeners: names
                .into_iter()
                .map(|n| (n.to_string(), Arc::default()))
                .collect(),
        }
    }
    pub fn listener(&self, name: &str) -> Arc<ListenerStats> {
        self.listeners.get(name).cloned().unwrap_or_default()
    }
    pub fn snapshot(&self) -> BTreeMap<String, ListenerSnapshot> {
        self.listeners
            .iter()
            .map(|(k, v)| (k.clone(), v.snapshot()))
            .collect()
    }
}
