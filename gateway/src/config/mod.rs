//! The TOML configuration: parsing, defaults, and validation that names the
//! file, line and reason for every problem.
//!
//! Relative paths in the file are resolved against the file's own directory,
//! so `gateway run --config /etc/gateway/gateway.toml` and
//! `cargo run -p gateway` (which uses `config/gateway.toml`) behave the same.

mod cidr;
mod destination;
mod duration;
mod model;
mod ops;
mod poller;
mod validate;

pub use cidr::Cidr;
pub use duration::parse_duration;
pub use model::*;
pub use ops::default_box_id;
pub use validate::{load, parse_str, ConfigError};

/// The development default used when `gateway` runs with no `--config`.
pub const DEFAULT_CONFIG_PATH: &str = "config/gateway.toml";
