//! What an outbox reports about itself, for `gateway status`, metrics and
//! alerts. The outbox driver writes it; readers take a snapshot.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use fhir_map::UnmappedCodes;

/// Live state of one destination's deliverer (since the daemon started).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DeliveryState {
    /// Attempts running now.
    pub in_flight: u64,
    pub attempts: u64,
    /// Delivered since the daemon started.
    pub delivered_since_start: u64,
    pub failed_attempts: u64,
    /// Dead-lettered since the daemon started.
    pub dead_lettered_since_start: u64,
    /// "closed" (healthy), "open" (down: probing), "half-open" (probe running).
    pub circuit: String,
    /// When the current outage began (unix ms), if the circuit is not closed.
    pub down_since_ms: Option<u64>,
    /// Probes sent while down, since start.
    pub probes: u64,
    /// Lanes waiting for an operator because a message of theirs is in the
    /// dead-letter queue (policy `hold`).
    pub held_lanes: u64,
    /// The last failure: HTTP status and OperationOutcome text, NAK text or
    /// I/O error. Shown to operators, never logged in full (it may quote
    /// the server's diagnostics).
    pub last_error: Option<String>,
    pub last_error_at_ms: Option<u64>,
    /// Access tokens fetched (OAuth2 / SMART destinations).
    pub token_refreshes: u64,
}

#[derive(Debug, Default)]
pub struct Monitor {
    state: Mutex<DeliveryState>,
    /// fhir destinations: local codes seen without a mapping.
    unmapped: Option<Arc<UnmappedCodes>>,
}

impl Monitor {
    pub fn new() -> Monitor {
        Monitor {
            state: Mutex::new(DeliveryState {
                circuit: "closed".into(),
                ..Default::default()
            }),
            unmapped: None,
        }
    }

    pub fn with_unmapped(unmapped: Arc<UnmappedCodes>) -> Monitor {
        Monitor {
            unmapped: Some(unmapped),
            ..Monitor::new()
        }
    }

    /// Unmapped local codes and their counts (fhir destinations).
    pub fn unmapped_codes(&self) -> Option<Arc<UnmappedCodes>> {
        self.unmapped.clone()
    }

    pub fn snapshot(&self) -> DeliveryState {
        match self.state.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn update(&self, f: impl FnOnce(&mut DeliveryState)) {
        match self.state.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}
