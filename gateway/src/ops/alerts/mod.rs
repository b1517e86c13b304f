//! Alerts: pure rules over a status snapshot ([`rules::evaluate`], one
//! function per [`Rule`]), a board that tracks which alerts are active and
//! decides what to announce ([`Board`]: fired once, reminded every
//! `reminder`, resolved once), and the task that runs them and delivers
//! announcements to the journal and an optional webhook ([`run`]). The
//! board is kept in the journal ([`saved`]) so a restart announces nothing
//! twice.
//!
//! Alert texts carry names, counts and times only: never message content,
//! and never a destination's last error (a server's diagnostics may quote
//! the message).

mod alert;
mod alertmanager;
mod board;
pub mod rules;
mod saved;
mod task;

pub use alert::{Alert, Finding, Rule, Severity};
pub use board::{Board, Event};
pub use rules::evaluate;
pub use task::{run, webhook_body, AlertTask};
