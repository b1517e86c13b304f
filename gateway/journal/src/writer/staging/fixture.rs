//! The staging test fixture: a real (temporary) sled tree, the current
//! group and the writer's bookkeeping. Shared by the staging tests of
//! every request kind.

use std::collections::BTreeSet;

use super::{Staged, Stager};
use crate::batch::BatchReq;
use crate::chunk::Layout;
use crate::counter::{Counter, Counters};
use crate::quota::SpaceGuard;
use crate::record::{self as rec, AuditRec};
use crate::{Appended, JournalConfig, JournalError, NewMessage, Policy, StateOp};

/// A tree, the current group and the writer's bookkeeping.
pub(crate) struct Fixture {
    pub(crate) db: sled::Db,
    pub(crate) staged: Staged,
    pub(crate) wake: BTreeSet<String>,
    pub(crate) state: Counters,
    pub(crate) space: SpaceGuard,
    pub(crate) cfg: JournalConfig,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        Fixture::with(|_| {})
    }

    pub(crate) fn with(adjust: impl FnOnce(&mut JournalConfig)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = JournalConfig::new(dir.path().to_path_buf());
        cfg.clock = || 1_700_000_000_000;
        adjust(&mut cfg);
        let db = sled::Config::new().temporary(true).open().unwrap();
        let space = SpaceGuard::new(
            &cfg.dir,
            cfg.quota_bytes,
            cfg.refuse_at_percent,
            cfg.warn_at_percent,
            0,
        );
        // As a new journal opens: ids start at 1.
        let mut state = Counters::default();
        state.next_id = 1;
        state.next_q = 1;
        state.next_dead = 1;
        Fixture {
            db,
            staged: Staged::default(),
            wake: BTreeSet::new(),
            state,
            space,
            cfg,
            _dir: dir,
        }
    }

    pub(crate) fn st(&mut self) -> Stager<'_> {
        Stager {
            db: &self.db,
            staged: &mut self.staged,
            wake: &mut self.wake,
            state: &mut self.state,
            space: &mut self.space,
            cfg: &self.cfg,
        }
    }

    /// End the group as a commit would: its ops into the tree.
    pub(crate) fn commit(&mut self) {
        // Chunked, as in a fresh journal (`chunk.rs`).
        let mut layout = Layout { chunked: true };
        for op in self.staged.drain() {
            layout.apply(&self.db, op).unwrap();
        }
        self.wake.clear();
    }

    pub(crate) fn append(&mut self, m: &NewMessage) -> Result<Appended, JournalError> {
        self.append_with(m, Policy::default())
    }

    pub(crate) fn append_with(
        &mut self,
        m: &NewMessage,
        policy: Policy,
    ) -> Result<Appended, JournalError> {
        self.st().append(m, policy, None, 10)
    }

    pub(crate) fn count(&self, c: Counter) -> u64 {
        self.state.get(&c)
    }

    /// A counter as the group staged it (on disk once logged).
    pub(crate) fn staged_count(&self, c: &Counter) -> Option<u64> {
        let v = self.staged.staged(&c.key())??;
        Some(rec::open_u64(v).unwrap())
    }

    pub(crate) fn staged_audits(&self) -> Vec<AuditRec> {
        self.staged
            .staged_sets(&[rec::P_AUDIT])
            .map(|(_, v)| rec::decode_postcard(v).unwrap())
            .collect()
    }

    pub(crate) fn ops(&self) -> usize {
        self.staged.ops().len()
    }

    /// The value of `k` as the group leaves it (staged, else in the tree).
    pub(crate) fn value(&self, k: &[u8]) -> Option<Vec<u8>> {
        self.staged.get(&self.db, k, "test key").unwrap()
    }

    pub(crate) fn batch(
        &mut self,
        messages: Vec<(NewMessage, Policy)>,
        state: Vec<StateOp>,
    ) -> Result<Vec<Appended>, JournalError> {
        self.st().batch(
            BatchReq {
                messages,
                patients: Vec::new(),
                state,
            },
            10,
        )
    }
}
