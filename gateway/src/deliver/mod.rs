//! Destinations and the store-and-forward machinery: one outbox driver per
//! destination ([`outbox`]) over a [`sender::Sender`] for its kind
//! ([`folder`], [`http`] for `http` and `fhir`, [`mllp`], [`sftp`]). Pure pieces:
//! [`verdict`] (HTTP answers → delivered / retry / dead letter),
//! [`backoff`], [`circuit`], [`payload`] (transforms and wire formats).
//!
//! Each destination has its own durable outbox in the journal and its own
//! driver task, so a slow or dead destination never delays another.

pub mod attempt_record;
pub mod backoff;
pub mod circuit;
pub mod fhir_context;
pub mod fhir_update;
pub mod folder;
pub mod http_sender;
pub mod iis_soap_sender;
pub mod mllp_sender;
pub mod monitor;
pub mod name_template;
pub mod outage_log;
pub mod outbox;
pub mod payload;
pub mod sender;
pub mod sftp_sender;
pub mod verdict;

use std::sync::Arc;

use crate::config::DestinationConfig;
use crate::ops::tasks::StageTasks;
use crate::ops::watchdog::Heartbeats;
use journal::Journal;
pub use monitor::{DeliveryState, Monitor};

/// Start one outbox driver per destination. Returns each destination's
/// monitor, in config order. Fails (before anything starts) if a
/// destination cannot be set up, naming it.
pub fn start_all(
    destinations: &[DestinationConfig],
    journal: &Journal,
    heartbeats: &Heartbeats,
    tasks: &mut StageTasks,
) -> Result<Vec<(String, Arc<Monitor>)>, crate::Error> {
    let mut built = Vec::new();
    for d in destinations {
        let in_destination = |e: crate::Error| crate::Error::Destination {
            name: d.name.clone(),
            source: Box::new(e),
        };
        let (sender, wire) = sender::Sender::build(d).map_err(in_destination)?;
        let fhir = match &d.kind {
            crate::config::DestinationKind::Fhir(h) => match &h.fhir {
                Some(s) => Some(Arc::new(
                    fhir_context::FhirContext::new(s).map_err(in_destination)?,
                )),
                None => None,
            },
            _ => None,
        };
        built.push((d, sender, wire, fhir));
    }
    let mut monitors = Vec::new();
    for (d, sender, wire, fhir) in built {
        let monitor = Arc::new(match &fhir {
            Some(f) => Monitor::with_unmapped(f.unmapped()),
            None => Monitor::new(),
        });
        if let Some(f) = &fhir {
            let watch = f.clone().watch(d.name.clone(), tasks.stop_signal());
            tasks.spawn(format!("code maps {}", d.name), watch);
        }
        let outbox = outbox::Outbox {
            name: d.name.clone(),
            journal: journal.clone(),
            sender: Arc::new(sender),
            wire,
            policy: d.delivery.clone(),
            monitor: monitor.clone(),
            heartbeat: heartbeats.register(format!("deliverer {}", d.name)),
            fhir,
        };
        let run = outbox.run(tasks.stop_signal());
        tasks.spawn(format!("deliverer {}", d.name), run);
        monitors.push((d.name.clone(), monitor));
    }
    Ok(monitors)
}
