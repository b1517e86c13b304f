//! The helpers that more than one crate's integration tests need, defined
//! once: what a test needs from the machine ([`need`]: a tool, root; under
//! `CI=true` a missing one fails the test), the test venv's Python with
//! the modules a peer script imports ([`python`]), the repository and the
//! shared corpus beside it ([`paths`]), running a program that must
//! succeed ([`run`]), `systemd-analyze` on units ([`systemd`]), a small tmpfs ([`tmpfs::Tmpfs`]) and bounded waits
//! ([`wait`]). Each crate's `tests/it/support/` adds what
//! only its own tests use.

pub mod need;
pub mod paths;
pub mod python;
pub mod run;
pub mod systemd;
pub mod tmpfs;
pub mod wait;
