//! Downloading a target chunk by chunk, each verified against its signed
//! SHA-256 before anyone writes it anywhere.
//!
//! - [`http_range::HttpSource`]: HTTP `Range` requests, short connect timeout, a
//!   per-request timeout (a stalled server is a retry, not a hang), a body
//!   read with a hard cap (a server that sends more than asked is cut off).
//! - [`dir::DirSource`]: the same from a directory (USB stick,
//!   `updater install --from DIR`).
//! - [`fetch_verified`]: retries with capped exponential backoff and full
//!   jitter; 4xx is final (no retry storms, cf. rauc-hawkbit-updater#158).
//! - [`bitmap::Bitmap`]: which chunks are durably in the slot, for resume.

pub mod bitmap;
pub mod dir;
pub mod http_range;

use crate::target::UpdateTarget;
use crate::{Error, Result};
use std::time::{Duration, Instant};

/// Why one fetch attempt failed.
#[derive(Debug, Clone)]
pub enum FetchError {
    /// Worth retrying after a backoff (timeouts, drops, 5xx, bad content).
    Retry(String),
    /// Not worth retrying (4xx, a server that ignores Range).
    Terminal(String),
}

pub trait ChunkSource {
    /// The bytes of chunk `i` (unverified).
    fn fetch(&mut self, target: &UpdateTarget, i: usize) -> Result<Vec<u8>, FetchError>;
    fn describe(&self) -> String;
}

/// Capped exponential backoff with full jitter: attempt `n` waits a uniform
/// random time in `[0, min(cap, base * 2^n))`.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Attempts per chunk before giving up (the next timer run starts over,
    /// keeping the chunks already done).
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(300),
            max_attempts: 8,
        }
    }
}

impl Backoff {
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX));
        let ceiling = exp.min(self.cap);
        let r = crate::hash::random_bytes::<8>()
            .map(u64::from_le_bytes)
            .unwrap_or(0);
        let frac = (r >> 11) as f64 / (1u64 << 53) as f64;
        ceiling.mul_f64(frac)
    }
}

/// Download settings.
#[derive(Debug, Clone)]
pub struct DownloadPolicy {
    pub backoff: Backoff,
    /// Average bytes per second over the download; `None` = unlimited.
    pub bandwidth_limit: Option<u64>,
    /// fsync the slot and persist the bitmap every this many chunks.
    pub sync_every: usize,
}

impl Default for DownloadPolicy {
    fn default() -> Self {
        DownloadPolicy {
            backoff: Backoff::default(),
            bandwidth_limit: None,
            sync_every: 8,
        }
    }
}

/// Fetches chunk `i` and verifies it, retrying per `backoff`.
pub fn fetch_verified(
    src: &mut dyn ChunkSource,
    target: &UpdateTarget,
    i: usize,
    backoff: &Backoff,
) -> Result<Vec<u8>> {
    let mut last = String::new();
    for attempt in 0..backoff.max_attempts.max(1) {
        if attempt > 0 {
            std::thread::sleep(backoff.delay(attempt - 1));
        }
        match src.fetch(target, i) {
            Ok(data) => {
                let (_, len) = target.chunk_range(i);
                if data.len() as u64 != len {
                    last = format!("got {} bytes, expected {len}", data.len());
                } else if crate::hash::sha256(&data) != target.chunks[i] {
                    last = "content does not match the signed chunk hash".into();
                } else {
                    return Ok(data);
                }
            }
            Err(FetchError::Terminal(m)) => {
                return Err(Error::Download(format!(
                    "{} chunk {i}: {m}; not retrying (fix the repository, then run `updater install` again)",
                    target.name
                )))
            }
            Err(FetchError::Retry(m)) => last = m,
        }
    }
    Err(Error::Download(format!(
        "{} chunk {i} from {}: {} attempts failed, last: {last}; the chunks done so far are kept \
         and the next run resumes",
        target.name,
        src.describe(),
        backoff.max_attempts
    )))
}

/// Sleeps as needed to keep the average rate under a limit.
pub struct Throttle {
    limit: Option<u64>,
    start: Instant,
    bytes: u64,
}

impl Throttle {
    pub fn new(limit: Option<u64>) -> Self {
        Throttle {
            limit,
            start: Instant::now(),
            bytes: 0,
        }
    }
    pub fn account(&mut self, n: u64) {
        self.bytes += n;
        if let Some(l) = self.limit.filter(|l| *l > 0) {
            let due = Duration::from_secs_f64(self.bytes as f64 / l as f64);
            let spent = self.start.elapsed();
            if due > spent {
                std::thread::sleep(due - spent);
            }
        }
    }
}
