//! Clinic Gateway: see ../README.md and docs/ARCHITECTURE.md.

pub mod hl7;
pub mod journal;
