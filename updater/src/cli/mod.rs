//! The verbs of the `updater` command, one module each. `main.rs` parses
//! the arguments, loads the configuration once and calls one of them.

pub mod check;
pub mod config;
pub mod health;
pub mod install;
pub mod repo;
mod session;
pub mod status;
