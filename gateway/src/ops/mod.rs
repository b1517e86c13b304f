//! Operations: logging, counters, the admin socket, systemd notification,
//! clock helpers, health and metrics, alerts, the fleet heartbeat, the
//! status page, and the owner of the daemon's tasks.

pub mod admin;
pub mod alerts;
pub mod allocator;
pub mod audit;
pub mod certs;
pub mod clock;
pub mod dlq;
pub mod feeds;
pub mod fleet;
pub mod health;
pub mod http_server;
pub mod logging;
pub mod messages;
pub mod messages_key;
pub mod metrics;
pub mod notify;
pub mod remote_write;
pub mod restart_markers;
pub mod stats;
pub mod status_messages;
pub mod status_page;
pub mod status_summary;
pub mod tasks;
pub mod watchdog;
pub mod webhook;
