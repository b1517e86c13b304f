//! Alerts: pure rules over a status snapshot ([`rules::evaluate`], one
//! function per [`Rule`]), a board that tracks which alerts are active and
//! decides what to announce ([`Board`]: fired once, reminded every
//! `reminder`, resolved once), and the task that runs them and delivers
//! announcements to the journal, an optional webhook, Alertmanager and
//! e-mail on the site's office hours ([`email`], [`office_hours`]) ([`run`]). The
//! board is kept in the journal ([`saved`]) so a restart announces nothing
//! twice.
//!
//! Alert texts carry names, counts and times only: never message content,
//! and never a destination's last error (a server's diagnostics may quote
//! the message).

mod alert;
mod alertmanager;
mod board;
mod email;
pub mod office_hours;
pub mod rules;
mod saved;
mod smtp;
mod task;

pub use alert::{Alert, Finding, Rule, Severity};
pub use board::{Board, Event};
pub use office_hours::OfficeHours;
pub use rules::evaluate;
pub use smtp::Security;
pub use task::{run, webhook_body, AlertTask};
