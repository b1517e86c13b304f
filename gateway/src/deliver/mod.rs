//! Destinations and the store-and-forward machinery: one outbox driver per
//! destination ([`outbox`]) over a [`sender::Sender`] for its kind
//! ([`folder`], [`http`] for `http` and `fhir`, [`mllp`]). Pure pieces:
//! [`verdict`] (HTTP answers → delivered / retry / dead letter),
//! [`backoff`], [`circuit`], [`payload`] (transforms and wire formats).
//!
//! Each destination has its own durable outbox in the journal and its own
//! driver task, so a slow or dead destination never delays another.

pub mod backoff;
pub mod circuit;
pub mod folder;
pub mod http;
pub mod mllp;
pub mod monitor;
pub mod outage_log;
pub mod outbox;
pub mod payload;
pub mod sender;
pub mod verdict;

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::DestinationConfig;
use crate::journal::Journal;
use crate::ops::watchdog::Heartbeats;
pub use monitor::{DeliveryState, Monitor};

/// Start one outbox driver per destination. Returns each destination's
/// monitor, in config order. Fails (before anything starts) if a
/// destination cannot be set up, naming it.
pub fn start_all(
    destinations: &[DestinationConfig],
    journal: &Journal,
    heartbeats: &Heartbeats,
    tasks: &mut JoinSet<()>,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<(String, Arc<Monitor>)>, String> {
    let mut built = Vec::new();
    for d in destinations {
        let (sender, wire) =
            sender::Sender::build(d).map_err(|e| format!("destination '{}': {e}", d.name))?;
        built.push((d, sender, wire));
    }
    let mut monitors = Vec::new();
    for (d, sender, wire) in built {
        let monitor = Arc::new(Monitor::new());
        let outbox = outbox::Outbox {
            name: d.name.clone(),
            journal: journal.clone(),
            sender: Arc::new(sender),
            wire,
            policy: d.delivery.clone(),
            monitor: monitor.clone(),
            heartbeat: heartbeats.register(format!("deliverer {}", d.name)),
        };
        tasks.spawn(outbox.run(stop.clone()));
        monitors.push((d.name.clone(), monitor));
    }
    Ok(monitors)
}
