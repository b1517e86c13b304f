//! What both sides of the sled evidence (`tests/sled_evidence.rs` and its
//! child, `tests/bin/sled_evidence_child.rs`) must agree on: the records,
//! their hash, fsync of a path, and the child-to-parent line marker.

use std::fs::File;
use std::path::Path;

use hw_tests::model::Rng;

/// Child-to-parent protocol: every line the parent reads starts with it.
pub const MARK: &str = "@@ ";

/// Every 5th record is 1–1.6 MiB, above sled's inline limit (a quarter of
/// the 512 KiB segment), so it goes to its own file under `blobs/`.
pub fn value(i: u64) -> Vec<u8> {
    let len = if i % 5 == 2 {
        (1 << 20) + (i % 7) as usize * 100_000
    } else {
        64 + (i % 200) as usize
    };
    let mut rng = Rng::new(i);
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

pub fn fsync_path(p: &Path) {
    File::open(p)
        .and_then(|f| f.sync_all())
        .unwrap_or_else(|e| panic!("fsync {}: {e}", p.display()));
}
