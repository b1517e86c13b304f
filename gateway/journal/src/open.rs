//! [`Journal::open`]: recovery, the tail check, the durable open summary,
//! and the writer thread.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::mpsc;

use crate::counter::{Counter, Counters};
use crate::durability::CommitSync;
use crate::error::map_sled;
use crate::record;
use crate::wal::OpBatch;
use crate::writer::{self, Shared};
use crate::{Inner, Journal, JournalConfig, JournalError};

/// Newest messages whose CRC is verified at open.
const OPEN_TAIL_CHECK: usize = 64;

impl Journal {
    pub fn open(cfg: JournalConfig) -> Result<Journal, JournalError> {
        let existed = cfg.dir.join("db").exists();
        let writer::Recovered {
            mut store,
            mut state,
            replayed,
            torn,
        } = writer::recover(&cfg)?;

        let (checked, bad) = check_tail(&store.db)?;
        let format = store.layout.format();
        let summary = format!(
            "{} {} tail_checked={checked} tail_corrupt={bad:?} wal_replayed={replayed} wal_torn_tail={} format={format}",
            if existed { "recovered" } else { "created" },
            counts(&state),
            torn.as_ref()
                .map_or("none".to_string(), |(p, off)| format!("{}@{off}", p.display()))
        );
        if bad.is_empty() {
            log::info!("journal: opened {}: {summary}", cfg.dir.display());
        } else {
            log::error!(
                "journal: opened {} with corrupt records: {summary}",
                cfg.dir.display()
            );
        }

        // The open summary is written durably before the writer starts, so
        // it is in the trail before any message of this run.
        let mut b = OpBatch::default();
        if !state.audit.anchor_stored {
            // The first open by a chaining binary: the events kept so far
            // are the chain's genesis prefix, anchored just before them.
            b.insert(
                vec![record::P_AUDIT_ANCHOR],
                crate::audit::chain::encode_anchor(&state.audit.anchor),
            );
            state.audit.anchor_stored = true;
        }
        writer::push_audit(
            &mut b,
            &mut state.audit.head,
            (cfg.clock)(),
            "journal_open",
            &summary,
        )?;
        // Written straight to sled and checkpointed (not through the WAL).
        store
            .db
            .apply_batch(b.to_sled())
            .map_err(|e| map_sled(format!("write open summary in {}", cfg.dir.display()), e))?;
        writer::checkpoint_sled(&cfg.dir, &store.db, &mut store.dur)?;

        let shared = Arc::new(Shared {
            cfg: cfg.clone(),
            db: RwLock::new(Some(store.db.clone())),
            closed: AtomicBool::new(false),
            counters: Mutex::new(state.clone()),
            usage: Default::default(),
            notifies: Mutex::new(Default::default()),
            commits: AtomicU64::new(0),
            committed_requests: AtomicU64::new(0),
            largest_batch: AtomicU64::new(0),
            reopens: AtomicU64::new(0),
            sled_syncs: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            last_sync: Mutex::new(CommitSync::default()),
            alive_ms: AtomicU64::new((cfg.clock)()),
            dlq_changes: AtomicU64::new(0),
            commit_latency: Default::default(),
            format,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let w = writer::Writer::new(shared.clone(), rx, store, state);
        let thread = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || w.run())
            .map_err(|e| JournalError::Io {
                context: "spawn journal writer thread".into(),
                source: e,
            })?;
        Ok(Journal {
            inner: Arc::new(Inner {
                shared,
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }
}

/// Verify the CRC of the newest messages (the records written last are the
/// ones a crash hurts). Returns how many were checked and the corrupt ids.
fn check_tail(db: &sled::Db) -> Result<(usize, Vec<u64>), JournalError> {
    let mut checked = 0usize;
    let mut bad: Vec<u64> = Vec::new();
    for item in db
        .scan_prefix([record::P_MESSAGE])
        .rev()
        .take(OPEN_TAIL_CHECK)
    {
        let (k, v) = item.map_err(|e| map_sled("scan newest messages".into(), e))?;
        checked += 1;
        let whole = crate::chunk::resolve(db, &k, &v);
        if whole.map_or(true, |v| record::decode_message(&v).is_err()) {
            bad.push(record::seq_of_key(&k).unwrap_or(0));
        }
    }
    Ok((checked, bad))
}

/// The open summary's counts (no PHI: numbers only).
fn counts(state: &Counters) -> String {
    format!(
        "messages={} next_id={} pending={} quarantined_held={}",
        state.get(&Counter::Messages),
        state.next_id,
        state.pending_total(),
        state.get(&Counter::QuarantineEntries),
    )
}
