//! The journal's integration tests, one binary: `cargo test -p journal`
//! (`cargo test -p journal --test it -- wal::` runs one module). Shared
//! fixtures are in `support/`; the crash and strace workloads run in a
//! separate process, the `journal-test-child` bin (`support::child`).

mod support;

mod audit;
mod basic;
mod disk_full;
mod format;
mod salvage;
mod strace;
mod wal;
