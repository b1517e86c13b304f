//! For the benchmarks: the message they append, and baselines (the raw
//! rate of the disk the journal is on; the process's memory).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::{Enqueue, MessageMeta, NewMessage, KIND_HL7V2};

/// An ORU^R01 with control id `cid`, `obx` result lines, received at
/// `received_at_ms`, for the outbox "cloud" (no patient lane).
pub fn oru(cid: &str, received_at_ms: u64, obx: usize) -> NewMessage {
    NewMessage {
        source: "lab".into(),
        peer: "p".into(),
        received_at_ms,
        meta: MessageMeta {
            kind: KIND_HL7V2.into(),
            sender: "A|B".into(),
            control_id: cid.to_string(),
            message_type: "ORU^R01".into(),
            dedup: vec!["A".into(), "B".into(), cid.to_string()],
        },
        raw: format!(
            "MSH|^~\\&|A|B|C|D|1||ORU^R01|{cid}|P|2.5.1\r{}",
            "OBX|1|NM|x||1\r".repeat(obx)
        )
        .into_bytes(),
        ack: b"MSA|AA".to_vec(),
        destinations: vec![Enqueue::plain("cloud")],
        patient_lane: 0,
    }
}

/// (current, peak) resident set of this process in MB, from
/// /proc/self/status (0 where it cannot be read).
pub fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |field: &str| {
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

/// Appends `n` small (128-byte) records to a fresh plain file in `dir`,
/// `fdatasync`ing after each, and returns the rate in records per second.
/// This is the ceiling for a journal that syncs every record without group
/// commit, on the same disk. The file is removed afterwards.
pub fn raw_fdatasync_rate(dir: &Path, n: usize) -> std::io::Result<f64> {
    let path = dir.join(format!(".raw-fdatasync-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let rec = [0x5au8; 128];
    let start = Instant::now();
    let mut res = Ok(());
    for _ in 0..n {
        res = f.write_all(&rec).and_then(|()| f.sync_data());
        if res.is_err() {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    drop(f);
    let _ = std::fs::remove_file(&path);
    res?;
    Ok(if secs > 0.0 {
        n as f64 / secs
    } else {
        f64::INFINITY
    })
}
