//! A slot wrapper that loses power at a chosen I/O point (tests only).

use super::SlotDevice;
use crate::fault::{FaultPlan, Point};
use crate::{Error, Result};
use std::sync::Arc;

/// Every `write_at` and `sync` is an I/O point. Writes since the last
/// successful sync are volatile: when the power goes they are undone (their
/// old bytes restored, newest first), except that the write in progress at
/// the cut lands torn (its first half only). Reads are not I/O points.
pub struct FaultyDisk<D: SlotDevice> {
    inner: D,
    plan: Arc<FaultPlan>,
    /// Pre-images of unsynced writes: (offset, old bytes).
    unsynced: Vec<(u64, Vec<u8>)>,
}

impl<D: SlotDevice> FaultyDisk<D> {
    pub fn new(inner: D, plan: Arc<FaultPlan>) -> Self {
        FaultyDisk {
            inner,
            plan,
            unsynced: Vec::new(),
        }
    }

    fn lose_unsynced(&mut self) {
        while let Some((off, old)) = self.unsynced.pop() {
            let _ = self.inner.write_at(off, &old);
        }
        let _ = self.inner.sync();
    }

    fn cut(&self) -> Error {
        Error::io(self.inner.describe(), "write slot", self.plan.error())
    }
}

impl<D: SlotDevice> SlotDevice for FaultyDisk<D> {
    fn size(&self) -> u64 {
        self.inner.size()
    }
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if self.plan.is_cut() {
            self.lose_unsynced();
            return Err(self.cut());
        }
        self.inner.read_at(offset, buf)
    }
    fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        match self.plan.point() {
            Point::Proceed => {
                let mut old = vec![0u8; data.len()];
                self.inner.read_at(offset, &mut old)?;
                self.unsynced.push((offset, old));
                self.inner.write_at(offset, data)
            }
            Point::Tear => {
                self.lose_unsynced();
                let _ = self.inner.write_at(offset, &data[..data.len() / 2]);
                let _ = self.inner.sync();
                Err(self.cut())
            }
            Point::Dead => {
                self.lose_unsynced();
                Err(self.cut())
            }
        }
    }
    fn sync(&mut self) -> Result<()> {
        match self.plan.point() {
            Point::Proceed => {
                self.inner.sync()?;
                self.unsynced.clear();
                Ok(())
            }
            Point::Tear | Point::Dead => {
                self.lose_unsynced();
                Err(self.cut())
            }
        }
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A cut elsewhere (in a state file, in the firmware environment) loses this
/// disk's unsynced writes too.
impl<D: SlotDevice> Drop for FaultyDisk<D> {
    fn drop(&mut self) {
        if self.plan.is_cut() {
            self.lose_unsynced();
        }
    }
}
