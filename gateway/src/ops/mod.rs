//! Operations: logging, counters, the admin socket, systemd notification,
//! clock helpers, health and metrics, alerts, the fleet heartbeat and the
//! status page.

pub mod admin;
pub mod alerts;
pub mod certs;
pub mod clock;
pub mod dlq;
pub mod fleet;
pub mod health;
pub mod http_server;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod stats;
pub mod status_page;
pub mod watchdog;
