//! Power-cut injection for crash-consistency tests.
//!
//! A [`FaultPlan`] counts every durable I/O point (each slot write, each
//! fsync, each step of an atomic file replacement) across all the wrappers
//! that share it. At point N the "power" goes: that operation is torn (a
//! write lands only half, an atomic replacement never becomes visible), the
//! writes to a slot since its last fsync are lost, and every later operation
//! fails. Tests then throw away every handle, "reboot" the simulated firmware
//! and check the invariants.
//!
//! Production code never constructs a plan; [`crate::durable::RealFiles`] and
//! [`crate::slot::FileSlot`] do not consult one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Shared counter of I/O points with an optional cut.
#[derive(Debug, Default)]
pub struct FaultPlan {
    seen: AtomicU64,
    cut_at: Option<u64>,
    cut: AtomicBool,
}

#[derive(Debug)]
struct PowerCutMarker(u64);

impl std::fmt::Display for PowerCutMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "simulated power cut at I/O point {}", self.0)
    }
}
impl std::error::Error for PowerCutMarker {}

/// What a wrapper must do at an I/O point.
#[derive(Debug, PartialEq, Eq)]
pub enum Point {
    /// Carry on normally.
    Proceed,
    /// The power goes during this operation: tear it, then fail.
    Tear,
    /// The power is already gone: fail without touching anything.
    Dead,
}

impl FaultPlan {
    /// Counts points and never cuts (to measure how many points a run has).
    pub fn counting() -> Arc<Self> {
        Arc::new(FaultPlan::default())
    }

    /// Cuts the power at the `n`-th point (0-based).
    pub fn cut_at(n: u64) -> Arc<Self> {
        Arc::new(FaultPlan {
            seen: AtomicU64::new(0),
            cut_at: Some(n),
            cut: AtomicBool::new(false),
        })
    }

    pub fn points_seen(&self) -> u64 {
        self.seen.load(Ordering::SeqCst)
    }

    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// Registers one I/O point and says what to do with it.
    pub fn point(&self) -> Point {
        if self.is_cut() {
            return Point::Dead;
        }
        let n = self.seen.fetch_add(1, Ordering::SeqCst);
        if Some(n) == self.cut_at {
            self.cut.store(true, Ordering::SeqCst);
            Point::Tear
        } else {
            Point::Proceed
        }
    }

    /// The error a wrapper returns once the power is gone.
    pub fn error(&self) -> std::io::Error {
        std::io::Error::other(PowerCutMarker(self.cut_at.unwrap_or(0)))
    }
}

/// If `e` is a simulated power cut, the point it happened at.
pub fn power_cut_point(e: &std::io::Error) -> Option<u64> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<PowerCutMarker>())
        .map(|m| m.0)
}
