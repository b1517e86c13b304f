//! Journal formats (`src/chunk.rs`, `src/migrate.rs`): a fresh journal is
//! format 2 and never makes sled write a blob file; an existing format-1
//! journal stays format 1 until `migrate`; `migrate --to 1` leaves only
//! what a binary older than format 2 reads; verify and salvage read
//! chunked messages and report a missing chunk and a stray one; a gateway
//! limited to format 1 creates format 1 and refuses format 2; a migration
//! requested while the daemon runs is done at its next open.

use std::path::Path;

use journal::migrate::{
    migrate, request, requested, run_requested, MigrateError, Requested, FORMAT_CHUNKED,
    FORMAT_WHOLE, REQUEST_FILE,
};
use journal::{Journal, JournalConfig};

use crate::support::{cfg, message, raw, stored};

/// A message of about `size` bytes, distinct per `cid`.
fn big(cid: &str, size: usize) -> journal::NewMessage {
    let mut bytes = raw(cid, "");
    bytes.extend((0..size).map(|i| (i % 251) as u8));
    message("lab", cid, bytes, &["cloud"])
}

fn blob_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("blobs"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// What a binary before format 2 reads: every record version it knows
/// (1-3), no chunk (`~`) and no format (`F`) key.
fn readable_by_format_1_binary(dir: &Path) -> Result<(), String> {
    let db = sled::Config::new()
        .path(dir)
        .open()
        .map_err(|e| e.to_string())?;
    for item in db.iter() {
        let (k, v) = item.map_err(|e| e.to_string())?;
        if matches!(k.first(), Some(b'~') | Some(b'F')) {
            return Err(format!("format-2 key {:?}", String::from_utf8_lossy(&k)));
        }
        if !matches!(v.first(), Some(1..=3)) {
            return Err(format!(
                "value of {:?} has record version {:?}",
                String::from_utf8_lossy(&k),
                v.first()
            ));
        }
    }
    Ok(())
}

async fn close(j: Journal) {
    j.close().await.unwrap();
}

#[tokio::test]
async fn a_fresh_journal_is_format_2_and_sled_writes_no_blob_file() {
    let t = tempfile::tempdir().unwrap();
    let c = cfg(t.path());
    let j = Journal::open(c.clone()).unwrap();
    let mut ids = Vec::new();
    for (i, size) in [300 * 1024, 2 * 1024 * 1024, 40 * 1024, 7 * 1024, 100]
        .into_iter()
        .enumerate()
    {
        let cid = format!("F{i}");
        ids.push((stored(&j, big(&cid, size)).await, big(&cid, size).raw));
    }
    // A state value over the chunk size is chunked too.
    j.put_state("poller", b"k", &vec![7u8; 60_000])
        .await
        .unwrap();
    for (id, bytes) in &ids {
        assert_eq!(&j.get(*id).unwrap().unwrap().raw, bytes);
    }
    close(j).await;
    assert_eq!(blob_files(&c.dir), 0, "format 2 never writes a blob file");
    let j = Journal::open(c.clone()).unwrap();
    for (id, bytes) in &ids {
        assert_eq!(&j.get(*id).unwrap().unwrap().raw, bytes, "after reopen");
    }
    assert_eq!(
        j.get_state("poller", b"k").unwrap(),
        Some(vec![7u8; 60_000])
    );
    close(j).await;
    let r = journal::verify::verify(&c.dir).unwrap();
    assert!(r.is_clean(), "{:?}", r.findings);
    assert_eq!(r.records.get("messages"), Some(&5));
    // Already format 2: nothing to rewrite.
    let m = migrate(&c.dir, FORMAT_CHUNKED).unwrap();
    assert_eq!((m.from_format, m.values), (FORMAT_CHUNKED, 0));
}

#[tokio::test]
async fn format_1_stays_until_migrated_and_migrates_both_ways() {
    let t = tempfile::tempdir().unwrap();
    let c = cfg(t.path());
    // A journal as a binary before format 2 leaves it (format 1).
    Journal::open(c.clone()).unwrap().close().await.unwrap();
    let m = migrate(&c.dir, FORMAT_WHOLE).unwrap();
    assert_eq!(m.to_format, FORMAT_WHOLE);
    let j = Journal::open(c.clone()).unwrap();
    let a = stored(&j, big("W1", 300 * 1024)).await;
    let b = stored(&j, big("W2", 20 * 1024)).await;
    close(j).await;
    // The new binary did not write format 2 into it: still whole values.
    readable_by_format_1_binary(&c.dir).unwrap();

    // Daemon running: refused, naming what to do.
    let j = Journal::open(c.clone()).unwrap();
    match migrate(&c.dir, FORMAT_CHUNKED) {
        Err(e @ MigrateError::Locked(_)) => assert!(e.to_string().contains("stop the daemon")),
        other => panic!("expected Locked, got {other:?}"),
    }
    close(j).await;

    let m = migrate(&c.dir, FORMAT_CHUNKED).unwrap();
    assert_eq!((m.from_format, m.to_format, m.values), (1, 2, 2), "{m:?}");
    let blobs_before = blob_files(&c.dir);
    let j = Journal::open(c.clone()).unwrap();
    assert_eq!(j.get(a).unwrap().unwrap().raw, big("W1", 300 * 1024).raw);
    assert_eq!(j.get(b).unwrap().unwrap().raw, big("W2", 20 * 1024).raw);
    let d = stored(&j, big("W3", 500 * 1024)).await;
    close(j).await;
    assert!(
        blob_files(&c.dir) <= blobs_before,
        "a message after migrating to format 2 made a blob file"
    );
    assert!(readable_by_format_1_binary(&c.dir).is_err(), "chunked now");
    let r = journal::verify::verify(&c.dir).unwrap();
    assert!(r.is_clean(), "{:?}", r.findings);

    // And back, for a rollback: only whole values, every message intact.
    let m = migrate(&c.dir, FORMAT_WHOLE).unwrap();
    assert_eq!((m.from_format, m.values), (FORMAT_CHUNKED, 3), "{m:?}");
    readable_by_format_1_binary(&c.dir).unwrap();
    let j = Journal::open(JournalConfig::new(c.dir.clone())).unwrap();
    for (id, cid, size) in [
        (a, "W1", 300 * 1024),
        (b, "W2", 20 * 1024),
        (d, "W3", 500 * 1024),
    ] {
        assert_eq!(j.get(id).unwrap().unwrap().raw, big(cid, size).raw);
    }
    let audit = j.audit_events(None, 1000).unwrap();
    assert_eq!(
        audit.iter().filter(|e| e.kind == "journal_migrate").count(),
        3,
        "every migration is audited"
    );
    close(j).await;
    assert!(matches!(
        migrate(&c.dir, 3),
        Err(MigrateError::UnknownFormat(3))
    ));
}

/// The image's version pair with a format change (image/README.md,
/// "Journal format and rollback"): v1 is limited to format 1, v2 runs on
/// v1's journal without converting it, and only the request left after the
/// commit converts it, at v2's next start.
#[tokio::test]
async fn a_gateway_limited_to_format_1_and_a_migration_requested_while_running() {
    let t = tempfile::tempdir().unwrap();
    let mut v1 = cfg(t.path());
    v1.max_format = FORMAT_WHOLE;
    let j = Journal::open(v1.clone()).unwrap();
    assert_eq!(j.stats().format, FORMAT_WHOLE, "created in format 1");
    let a = stored(&j, big("R1", 300 * 1024)).await;
    close(j).await;
    readable_by_format_1_binary(&v1.dir).unwrap();

    // v2 (no limit) runs on it: it stays format 1 while v2 is on trial.
    let v2 = cfg(t.path());
    let j = Journal::open(v2.clone()).unwrap();
    assert_eq!(j.stats().format, FORMAT_WHOLE);
    let b = stored(&j, big("R2", 40 * 1024)).await;
    // The after-commit step, while the daemon holds the journal.
    assert_eq!(
        request(&v2.dir, FORMAT_CHUNKED).unwrap(),
        Requested::Written(v2.dir.join(REQUEST_FILE))
    );
    assert_eq!(requested(&v2.dir).unwrap(), Some(FORMAT_CHUNKED));
    close(j).await;
    readable_by_format_1_binary(&v2.dir).unwrap();

    // A v1 start with the request in place refuses to convert past its
    // limit and keeps the request.
    match run_requested(&v1.dir, v1.max_format) {
        Some(Err(e @ MigrateError::OverMax { .. })) => {
            assert!(e.to_string().contains("GATEWAY_JOURNAL_MAX_FORMAT"), "{e}")
        }
        other => panic!("expected OverMax, got {other:?}"),
    }
    assert_eq!(requested(&v1.dir).unwrap(), Some(FORMAT_CHUNKED));

    // v2's next start: converted, the request gone, every message intact.
    let m = run_requested(&v2.dir, v2.max_format).unwrap().unwrap();
    assert_eq!((m.from_format, m.to_format, m.values), (1, 2, 2), "{m:?}");
    assert_eq!(requested(&v2.dir).unwrap(), None);
    assert!(run_requested(&v2.dir, v2.max_format).is_none());
    let j = Journal::open(v2.clone()).unwrap();
    assert_eq!(j.stats().format, FORMAT_CHUNKED);
    assert_eq!(j.get(a).unwrap().unwrap().raw, big("R1", 300 * 1024).raw);
    assert_eq!(j.get(b).unwrap().unwrap().raw, big("R2", 40 * 1024).raw);
    close(j).await;

    // v1 now refuses it at open, saying what to do, and leaves it as it is.
    let e = Journal::open(v1.clone()).err().expect("format 2 refused");
    let said = e.to_string();
    assert!(
        said.contains("journal format 2 is newer than this gateway reads (up to 1)")
            && said.contains("migrate --to 1"),
        "{said}"
    );
    let j = Journal::open(v2.clone()).unwrap();
    assert_eq!(j.get(a).unwrap().unwrap().raw, big("R1", 300 * 1024).raw);
    close(j).await;

    // Requests: a bad format is refused, garbage in the file is named, and
    // a data directory with no journal yet needs nothing.
    assert!(matches!(
        request(&v2.dir, 3),
        Err(MigrateError::UnknownFormat(3))
    ));
    std::fs::write(v2.dir.join(REQUEST_FILE), "two\n").unwrap();
    let e = requested(&v2.dir).unwrap_err().to_string();
    assert!(e.contains(REQUEST_FILE) && e.contains("\"two\""), "{e}");
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        request(empty.path(), FORMAT_CHUNKED).unwrap(),
        Requested::NoJournal
    );
}

#[tokio::test]
async fn verify_and_salvage_name_a_message_whose_chunk_is_missing() {
    let t = tempfile::tempdir().unwrap();
    let c = cfg(t.path());
    let j = Journal::open(c.clone()).unwrap();
    let ok = stored(&j, big("C1", 200 * 1024)).await;
    let hurt = stored(&j, big("C2", 200 * 1024)).await;
    close(j).await;
    {
        // Damage: one chunk of message `hurt` gone (offline, in sled).
        let db = sled::Config::new().path(&c.dir).open().unwrap();
        let mut key = vec![b'~'];
        key.extend_from_slice(&9u32.to_be_bytes());
        key.push(b'm');
        key.extend_from_slice(&hurt.to_be_bytes());
        key.extend_from_slice(&3u32.to_be_bytes());
        assert!(db.remove(&key).unwrap().is_some(), "chunk 3 of {hurt}");
        // And a chunk no head counts (of a message that does not exist).
        let mut orphan = vec![b'~'];
        orphan.extend_from_slice(&9u32.to_be_bytes());
        orphan.push(b'm');
        orphan.extend_from_slice(&999u64.to_be_bytes());
        orphan.extend_from_slice(&0u32.to_be_bytes());
        db.insert(&orphan, &b"stray"[..]).unwrap();
        db.flush().unwrap();
    }
    let r = journal::verify::verify(&c.dir).unwrap();
    assert!(
        r.findings
            .iter()
            .any(|f| f.place == format!("sled key m/{hurt}") && f.problem.contains("chunk 3")),
        "{:?}",
        r.findings
    );
    assert!(
        r.findings.iter().any(|f| f
            .problem
            .contains("chunk 0 of m/999, which has no head counting it")),
        "{:?}",
        r.findings
    );
    let to = t.path().join("salvaged");
    let (from, into) = (c.dir.clone(), to.clone());
    // salvage opens the new journal on a runtime of its own.
    let s = tokio::task::spawn_blocking(move || journal::salvage::salvage(&from, &into))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.recovered, vec![ok]);
    assert_eq!(s.lost, vec![hurt]);
    let j = Journal::open(JournalConfig::new(to.clone())).unwrap();
    assert_eq!(j.get(ok).unwrap().unwrap().raw, big("C1", 200 * 1024).raw);
    close(j).await;
    assert_eq!(blob_files(&to), 0, "the salvaged journal is format 2");
}
