//! Retry timing: exponential backoff with full jitter (AWS architecture
//! blog, "Exponential Backoff And Jitter"): the delay before attempt n+1 is
//! uniform in [0, min(cap, base·2ⁿ)], which spreads retries from many
//! lanes instead of synchronising them. Pure, with the randomness passed in.

use std::time::Duration;

/// Delay before the next attempt after `failures` consecutive failures
/// (≥ 1), given a uniform sample `u` in [0, 1).
pub fn full_jitter(failures: u32, base: Duration, cap: Duration, u: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(40);
    let ceiling = base.saturating_mul(1u32 << exp.min(31)).min(cap);
    // Never zero: a tight loop against a failing server helps no one.
    ceiling
        .mul_f64(u.clamp(0.0, 1.0))
        .max(Duration::from_millis(10).min(ceiling))
}

/// A small xorshift generator for jitter (not for anything secret).
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn seeded(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    pub fn from_clock() -> Jitter {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Jitter::seeded(t ^ (std::process::id() as u64).rotate_left(32))
    }

    /// Uniform in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_and_stays_within_bounds() {
        let base = Duration::from_secs(1);
        let cap = Duration::from_secs(300);
        assert_eq!(full_jitter(1, base, cap, 0.999_999).as_millis(), 999);
        assert_eq!(full_jitter(3, base, cap, 0.5), Duration::from_secs(2));
        assert_eq!(full_jitter(30, base, cap, 0.5), Duration::from_secs(150));
        assert_eq!(
            full_jitter(u32::MAX, base, cap, 0.5),
            Duration::from_secs(150)
        );
        assert_eq!(full_jitter(5, base, cap, 0.0), Duration::from_millis(10));
        let mut j = Jitter::seeded(42);
        for _ in 0..10_000 {
            let u = j.next_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
