//! Sources other than the MLLP listeners: today the HTTPS results poller
//! ([`poller`]), with its pure helpers in [`results`]. A source journals
//! what it fetches exactly like a listener, so routing, delivery, retries
//! and dead letters are the same for every message.

pub mod poller;
pub mod results;
