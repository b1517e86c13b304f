//! Operations: logging, counters, the admin socket, systemd notification, clock helpers.

pub mod admin;
pub mod clock;
pub mod dlq;
pub mod logging;
pub mod notify;
pub mod stats;
pub mod watchdog;
