//! Clinic Gateway: see ../README.md and ../docs/ARCHITECTURE.md.

pub mod accept;
pub mod auth;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod error;
pub mod net;
pub mod ops;
pub mod route;
pub mod source;

pub use error::Error;
