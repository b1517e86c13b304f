//! Outbound network plumbing shared by destinations: client TLS (system
//! roots + CA file + SPKI pins) and the HTTPS client built on it.

pub mod der;
pub mod https_client;
