//! Fleet waves: a signed schedule (in the target's custom metadata) and a
//! per-device random seed decide when this box may install a target.
//!
//! A device's position in the fleet is `SHA-256(seed || target sha256)`
//! mapped to 0–100 % (in hundredths). Wave `k` opens at `start_k` for every
//! device whose position is below `percent_k` (cumulative). No waves: every
//! device may install at once. The position depends on the target, so the
//! same boxes are not always first.

use crate::target::UpdateTarget;
use jiff::Timestamp;

/// Position in hundredths of a percent: 0..10_000.
pub fn position_bp(seed: &[u8; 32], target: &UpdateTarget) -> u32 {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(seed);
    buf.extend_from_slice(&target.sha256);
    let h = crate::hash::sha256(&buf);
    let n = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    (n % 10_000) as u32
}

/// When this device's wave opens: `Some(Timestamp::MIN)`-like "now" for no
/// waves; `None` if no wave includes it yet.
pub fn opens_at(target: &UpdateTarget, position_bp: u32) -> Option<Option<Timestamp>> {
    if target.waves.is_empty() {
        return Some(None);
    }
    target
        .waves
        .iter()
        .find(|w| position_bp < u32::from(w.percent) * 100)
        .map(|w| Some(w.start))
}

/// The decision for `now` (the trusted clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaveDecision {
    Go,
    WaitUntil(Timestamp),
    /// The schedule does not reach this device's position yet.
    NotScheduled,
}

pub fn decide(target: &UpdateTarget, seed: &[u8; 32], now: Timestamp) -> (WaveDecision, u32) {
    let pos = position_bp(seed, target);
    let d = match opens_at(target, pos) {
        None => WaveDecision::NotScheduled,
        Some(None) => WaveDecision::Go,
        Some(Some(t)) if t <= now => WaveDecision::Go,
        Some(Some(t)) => WaveDecision::WaitUntil(t),
    };
    (d, pos)
}

/// Loads or creates the device seed (`STATE_DIR/device-seed`, 32 random bytes).
pub fn device_seed(
    files: &dyn crate::durable::Files,
    dir: &std::path::Path,
) -> crate::Result<[u8; 32]> {
    let path = dir.join("device-seed");
    if let Some(b) = files.read(&path)? {
        if let Ok(seed) = <[u8; 32]>::try_from(b.as_slice()) {
            return Ok(seed);
        }
    }
    let seed = crate::hash::random_bytes::<32>()?;
    files.write_atomic(&path, &seed)?;
    Ok(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::Wave;

    fn target(waves: Vec<Wave>) -> UpdateTarget {
        crate::target::test_target("t", "1.0", 0, [7; 32], waves)
    }

    #[test]
    fn positions_spread_and_waves_open_in_order() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        let t = target(vec![
            Wave {
                start: t0,
                percent: 10,
            },
            Wave {
                start: t1,
                percent: 100,
            },
        ]);
        let mut first = 0;
        for i in 0..1000u32 {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_be_bytes());
            let (d, pos) = decide(&t, &seed, t0);
            if pos < 1000 {
                assert_eq!(d, WaveDecision::Go);
                first += 1;
            } else {
                assert_eq!(d, WaveDecision::WaitUntil(t1));
                assert_eq!(decide(&t, &seed, t1).0, WaveDecision::Go);
            }
        }
        assert!((50..=150).contains(&first), "{first} of 1000 in a 10% wave");
    }

    #[test]
    fn no_waves_means_go_and_partial_schedule_means_not_yet() {
        let seed = [1u8; 32];
        assert_eq!(
            decide(&target(vec![]), &seed, Timestamp::UNIX_EPOCH).0,
            WaveDecision::Go
        );
        let t = target(vec![Wave {
            start: Timestamp::UNIX_EPOCH,
            percent: 1,
        }]);
        let pos = position_bp(&seed, &t);
        let d = decide(&t, &seed, Timestamp::UNIX_EPOCH).0;
        assert_eq!(d == WaveDecision::NotScheduled, pos >= 100);
    }
}
