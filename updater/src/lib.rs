//! Clinic Gateway's signed A/B updater.
//!
//! Policy is kept apart from mechanism, in the manner of Bottlerocket's
//! `updog`/`tough`:
//!
//! - **trust** ([`trust`]): TUF metadata through `tough`, a durable copy of
//!   what was last trusted (root, role versions), and a clock that never goes
//!   below build time, the last signed publication time or the last commit.
//! - **policy** ([`anti_rollback`], [`waves`], [`plan`]): which signed
//!   target, if any, this box may install now, and whether to reboot into
//!   it. Pure functions.
//! - **mechanism** ([`download`], [`slot`], [`boot`], [`install`],
//!   [`health`]): fetch verified chunks, write and read back the inactive
//!   slot, switch the boot loader, check health, commit or fall back.
//! - **configuration** ([`config_target`], [`config_apply`]): signed
//!   `gateway.toml` and credentials for a box or a group, checked with
//!   `gateway check-config`, applied, kept only if the gateway comes up
//!   healthy with them.
//!
//! Every durable small file goes through [`durable::Files`], and every slot
//! write through [`slot::SlotDevice`], so that [`fault`] can cut the power at
//! any write or fsync in tests.

pub mod anti_rollback;
pub mod boot;
pub mod config;
pub mod config_apply;
pub mod config_target;
pub mod deb_install;
pub mod download;
pub mod durable;
pub mod error;
pub mod fault;
pub mod hash;
pub mod health;
pub mod install;
pub mod plan;
pub mod repo_tool;
pub mod slot;
pub mod state;
pub mod target;
pub mod trust;
pub mod waves;

pub use error::{Error, Result};
