//! The updater's integration tests, one binary: `cargo test -p updater`
//! runs them all (`cargo test -p updater --test it -- attacks::` one part).
//! Shared fixtures are in `support/`.

mod support;

mod after_commit;
mod attacks;
mod bootloaders;
mod cli;
mod config_targets;
mod crash;
mod loopdev;
mod network;
mod props;
mod rollback;
mod systemd;
