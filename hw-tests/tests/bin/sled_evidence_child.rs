//! The child process of the sled evidence (`tests/sled_evidence.rs`): sled
//! runs here so that the test can SIGKILL it at any moment, like a machine
//! losing power. A `[[bin]]` started through
//! `CARGO_BIN_EXE_sled-evidence-child` rather than a `#[test]` that does
//! nothing when run alone, so it is never counted as a test.
//!
//! - `sled-evidence-child MODE DIR START COUNT`: opens sled in `DIR` and
//!   inserts records START.., printing `ACK <key>` once a record is
//!   durable by MODE's rules (`sled-only`, `flush-only`, `db-only`,
//!   `durable`: see `run_writer`), then `DONE`, and waits to be killed;
//! - `sled-evidence-child dump DIR`: re-opens the database and prints
//!   `KEY <key> <len> <fnv>` for each record, then `END` (or `NODB`,
//!   `ERROR <reason>`).
//!
//! Every line starts with `MARK`.

#[path = "../support/sled_records.rs"]
mod sled_records;

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use sled_records::{fnv, fsync_path, value, MARK};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["dump", dir] => run_dump(Path::new(dir)),
        [mode, dir, start, count] => run_writer(
            Path::new(dir),
            mode,
            start.parse().unwrap(),
            count.parse().unwrap(),
        ),
        _ => {
            eprintln!("usage: sled-evidence-child MODE DIR START COUNT | dump DIR (run by tests/sled_evidence.rs)");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARK}{line}").unwrap();
    out.flush().unwrap();
}

/// Sync every blob file not synced yet, then `blobs/` itself.
fn sync_new_blobs(dir: &Path, synced: &mut HashSet<PathBuf>) {
    let blobs = dir.join("blobs");
    let mut new = false;
    for e in std::fs::read_dir(&blobs).unwrap() {
        let p = e.unwrap().path();
        if synced.insert(p.clone()) {
            fsync_path(&p);
            new = true;
        }
    }
    if new {
        fsync_path(&blobs);
    }
}

fn run_writer(dir: &Path, mode: &str, start: u64, count: u64) {
    // "durable": flush + fsync new blobs + fdatasync db; "db-only": flush +
    // fdatasync db, blobs left unsynced.
    let durable = mode == "durable" || mode == "db-only";
    let sync_blobs = mode == "durable";
    let flush_every = if mode == "flush-only" {
        None
    } else {
        Some(500)
    };
    let db = sled::Config::new()
        .path(dir)
        .flush_every_ms(flush_every)
        .open()
        .expect("open sled");
    let mut synced_blobs = HashSet::new();
    if mode != "sled-only" {
        // What sled never syncs itself: conf, the blobs dir, the entries of
        // the db dir (db, conf, blobs, snapshots) and the db dir's own entry.
        fsync_path(&dir.join("conf"));
        sync_new_blobs(dir, &mut synced_blobs);
        fsync_path(&dir.join("blobs"));
        fsync_path(dir);
        fsync_path(dir.parent().unwrap());
    }
    let db_file = File::open(dir.join("db")).unwrap();
    if durable {
        db_file.sync_data().unwrap();
    }
    say("OPENED");
    for i in start..start + count {
        db.insert(i.to_be_bytes(), value(i)).unwrap();
        db.flush().unwrap();
        if sync_blobs {
            sync_new_blobs(dir, &mut synced_blobs);
        }
        if durable {
            db_file.sync_data().unwrap();
        }
        say(&format!("ACK {i}"));
    }
    say("DONE");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn run_dump(dir: &Path) {
    if !dir.join("db").exists() {
        say("NODB");
        return;
    }
    let db = match sled::Config::new().path(dir).open() {
        Ok(db) => db,
        Err(e) => {
            say(&format!("ERROR {e}"));
            return;
        }
    };
    for kv in db.iter() {
        match kv {
            Ok((k, v)) => {
                let k = u64::from_be_bytes(k.as_ref().try_into().unwrap());
                say(&format!("KEY {k} {} {}", v.len(), fnv(&v)));
            }
            Err(e) => say(&format!("ERROR {e}")),
        }
    }
    say("END");
}
