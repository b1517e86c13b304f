//! glibc malloc, kept close to the memory the gateway actually uses.
//!
//! Why: glibc gives every thread that meets a locked arena a new one (up
//! to 8 × cores), and returns freed memory to the kernel only from the top
//! of each heap. The tokio workers, the journal writer and sled's threads
//! all allocate and free message-sized buffers, so freed space stays
//! resident, spread over several arenas. Two measures, both process-wide:
//!
//! - [`limit_arenas`] at start, before any thread: at most [`ARENAS`]
//!   arenas (`MALLOC_ARENA_MAX` in the environment still wins, so an
//!   operator can change it without a rebuild);
//! - [`trim_periodically`]: `malloc_trim(0)` every [`TRIM_EVERY`] hands the
//!   free pages inside every arena back to the kernel, not only the top.
//!
//! What this buys and what it cannot (docs/benchmarks.md, "Where the
//! memory goes"): a 5-minute-outage soak ends ~5 MB lower, ingest and
//! drain of 100k together grow +2 MB instead of +18, and memory freed after
//! a 1M backlog is given back; the growth that remains with the backlog is
//! live data in sled's per-page state, which no allocator setting returns.
//!
//! On other C libraries (musl) these are no-ops and [`heap`] is `None`.

use std::time::Duration;

use tokio::sync::watch;

/// Most glibc malloc arenas. Two rather than one, so the journal writer
/// and the runtime workers do not all queue on one lock; the drain rates
/// measured with 2 were within this machine's noise of glibc's default.
pub const ARENAS: i32 = 2;

/// How often the daemon gives free heap pages back to the kernel. A trim
/// walks the free lists: 0.6 ms when it released 4 MB of a 100k-message
/// journal's heap, 30 µs when there is nothing to give back, so every 10 s
/// costs nothing measurable and matches the soak's sampling period.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Bytes the allocator holds, from `mallinfo2`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Heap {
    /// Bytes in allocated blocks inside the arenas: live small data.
    pub in_use: usize,
    /// Bytes in blocks mmapped one by one (≥ 128 KiB). Counted whole even
    /// where never touched: sled 0.34 allocates ~21 MB of zeroed metric
    /// histograms this way that stay virtual, so this is no RSS figure.
    pub mmapped: usize,
    /// Bytes free inside the arenas: held by malloc, resident until reused
    /// or trimmed.
    pub free: usize,
}

/// Limit the arena count, unless `MALLOC_ARENA_MAX` is set. Call before
/// the first thread is spawned: arenas are created as threads first contend.
pub fn limit_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a malloc tunable; any value is accepted.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Give free heap pages back to the kernel.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes the arena locks itself; it frees nothing in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trim every [`TRIM_EVERY`] until `stop` turns true. The trim runs on a
/// blocking thread: it takes each arena's lock in turn and must not stall
/// a runtime worker behind a busy one.
pub async fn trim_periodically(mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let _ = tokio::task::spawn_blocking(trim).await;
            }
            r = stop.changed() => {
                if r.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

/// What the allocator holds now, where the C library can say.
pub fn heap() -> Option<Heap> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's counters.
        let m = unsafe { libc::mallinfo2() };
        Some(Heap {
            in_use: m.uordblks,
            mmapped: m.hblkhd,
            free: m.fordblks,
        })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn heap_counts_a_live_block_and_trim_keeps_it() {
        let block = vec![7u8; 4 << 20];
        let during = heap().map_or(0, |h| h.in_use + h.mmapped);
        assert!(
            during >= 4 << 20,
            "in use {during} while a 4 MiB block is live"
        );
        trim();
        assert!(
            block.iter().all(|&b| b == 7),
            "trim must not touch live memory"
        );
    }
}
