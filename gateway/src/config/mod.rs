//! The TOML configuration, in two steps:
//!
//! 1. [`validate`] (pure): TOML with spans, each table checked by its own
//!    file in `tables/`, then the checks across tables (`cross`). The result
//!    is a `Config<Checked>`: every file the config names is a reference
//!    not yet followed.
//! 2. [`resolve`]: TLS files found, CA files and code maps loaded, secrets
//!    read (`secrets`: the one `credential:NAME` rule), giving the
//!    `Config` the daemon runs on.
//!
//! [`load`] does both; [`load_checked`] only the first. Each step reports every problem it finds, each as
//! `file:line:column: reason` at the value at fault.
//!
//! Relative paths in the file are resolved against the file's own directory,
//! so `gateway run --config /etc/gateway/gateway.toml` and
//! `cargo run -p gateway` (which uses `config/gateway.toml`) behave the same.

mod check;
mod cidr;
mod cross;
mod duration;
mod error;
mod load;
mod model;
mod paths;
mod resolve;
pub mod secrets;
mod stage;
mod table;
mod tables;
#[cfg(test)]
mod tests;

pub use cidr::Cidr;
pub use duration::parse_duration;
pub use error::{At, ConfigError, ConfigErrors, Pos};
pub use load::{load, load_checked, validate};
pub use model::*;
pub use resolve::{resolve, Host};
pub use stage::{Checked, Resolved, Stage};
pub use tables::{default_box_id, Config};

/// The development default used when `gateway` runs with no `--config`.
pub const DEFAULT_CONFIG_PATH: &str = "config/gateway.toml";
