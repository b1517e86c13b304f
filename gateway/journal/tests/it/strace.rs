//! Syscall-level durability check (Linux, needs `strace`).
//!
//! The test runs the re-exec child's `strace` role (`support::child`)
//! under `strace -f -yy` (every thread, fds shown with their paths). The
//! child opens a journal and does appends (small, 2 MiB and 300 KiB, 16
//! concurrent 40 KiB ones), a delivery and a quarantine; after each call
//! returns it emits a marker syscall (`openat("/JOURNAL-STRACE-MARK-n")`).
//!
//! The parent then checks, for every marker (= every point where the
//! gateway would send an ACK), from the trace alone:
//!
//! 1. every file under the test root that was written before the marker
//!    (db log, blob files, conf, ...) had an `fsync`/`fdatasync` that
//!    *started after its last write* and *completed before the marker*;
//! 2. every directory entry created before the marker (`openat` with
//!    `O_CREAT`, `mkdir`, `rename` target) and still present had an
//!    `fsync` of its parent directory that started after the creation and
//!    completed before the marker.
//!
//! That is exactly the set of syncs a power cut right after the ACK needs;
//! a journal that relied on sled's `flush()` (sync_file_range only) fails
//! rule 1 for `db` and every blob. It runs twice: in a fresh journal
//! (format 2: large values chunked, so no blob file may appear) and in one
//! migrated to format 1 (values whole: the large ones are blobs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use test_support::need::require_tool;

use crate::support::child;

#[derive(Debug)]
enum Ev {
    Write(PathBuf),
    /// path, completed-at line
    Sync(PathBuf, usize),
    Create(PathBuf),
    Unlink(PathBuf),
    Mark(u32),
}

/// `5</a/b/c>` -> `/a/b/c` for the first decorated fd argument.
fn fd_path(args: &str) -> Option<PathBuf> {
    let s = args.find('<')?;
    let e = args[s..].find('>')? + s;
    let p = &args[s + 1..e];
    (!p.ends_with("(deleted)")).then(|| PathBuf::from(p))
}

fn first_string(args: &str) -> Option<String> {
    let s = args.find('"')?;
    let e = args[s + 1..].find('"')? + s + 1;
    Some(args[s + 1..e].to_string())
}

fn ret_ok(line: &str) -> bool {
    line.rsplit_once(" = ")
        .map(|(_, r)| !r.trim_start().starts_with('-'))
        .unwrap_or(false)
}

fn parse(trace: &str) -> Vec<(usize, usize, Ev)> {
    // (start line, completion line, event)
    let mut out = Vec::new();
    let mut open: HashMap<String, (usize, String)> = HashMap::new();
    for (n, line) in trace.lines().enumerate() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let (start, call) = if let Some(r) = rest.strip_prefix("<... ") {
            // "<... fsync resumed>) = 0"
            match open.remove(pid) {
                Some((s, head)) => (
                    s,
                    format!("{head}{}", r.split_once("resumed>").map_or("", |x| x.1)),
                ),
                None => continue,
            }
        } else if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            open.insert(pid.to_string(), (n, head.to_string()));
            continue;
        } else {
            (n, rest.to_string())
        };
        let Some((name, args)) = call.split_once('(') else {
            continue;
        };
        // Markers fail (ENOENT) on purpose; every other call must succeed to count.
        if let Some(m) = first_string(args).and_then(|p| {
            p.strip_prefix("/JOURNAL-STRACE-MARK-")
                .and_then(|x| x.parse::<u32>().ok())
        }) {
            out.push((start, n, Ev::Mark(m)));
            continue;
        }
        if !ret_ok(&call) {
            continue;
        }
        let ev = match name {
            "write" | "pwrite64" | "pwritev" | "pwritev2" | "writev" => {
                fd_path(args).map(Ev::Write)
            }
            "fsync" | "fdatasync" => fd_path(args).map(|p| Ev::Sync(p, n)),
            "openat" | "open" | "creat" => {
                let path = first_string(args);
                match path {
                    Some(p) if args.contains("O_CREAT") => Some(Ev::Create(PathBuf::from(p))),
                    _ => None,
                }
            }
            "mkdir" | "mkdirat" => first_string(args).map(|p| Ev::Create(PathBuf::from(p))),
            "rename" | "renameat" | "renameat2" => {
                // target is the second string
                let mut it = args.split('"');
                let _ = it.next();
                let _ = it.next();
                let _ = it.next();
                it.next().map(|p| Ev::Create(PathBuf::from(p)))
            }
            "unlink" | "unlinkat" => first_string(args).map(|p| Ev::Unlink(PathBuf::from(p))),
            _ => None,
        };
        if let Some(ev) = ev {
            out.push((start, n, ev));
        }
    }
    out
}

fn is_sled_log(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n == "db")
}

fn is_wal_segment(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "wal")
}

/// The durability gaps at a cut point: everything that completed before
/// line `cut` is considered. `skip` exempts files from rule 1.
fn gaps(
    events: &[(usize, usize, Ev)],
    root: &Path,
    cut: usize,
    what: &str,
    skip: &dyn Fn(&Path) -> bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let before = |at: usize| at < cut;
    let unlinked = |p: &Path, after: usize| {
        events
            .iter()
            .any(|(s, c, e)| matches!(e, Ev::Unlink(u) if u == p) && *s > after && before(*c))
    };
    let synced = |p: &Path, after: usize| {
        events.iter().any(
            |(s, _, e)| matches!(e, Ev::Sync(q, done) if q == p && *s > after && before(*done)),
        )
    };
    // Rule 1: last write of each file before the cut is synced.
    let mut last_write: HashMap<&Path, usize> = HashMap::new();
    for (_, c, e) in events {
        if let Ev::Write(p) = e {
            if before(*c) && p.starts_with(root) && !skip(p) {
                last_write.insert(p.as_path(), *c);
            }
        }
    }
    for (p, w) in &last_write {
        if !unlinked(p, *w) && !synced(p, *w) {
            problems.push(format!(
                "{what}: {} written at line {w} but not synced before it",
                p.display()
            ));
        }
    }
    // Rule 2: every created entry's parent directory is synced. Not the
    // space reserve: it holds no data (a power cut that loses its entry
    // loses nothing: the next open allocates it again), and reopening an
    // existing journal opens it with O_CREAT.
    for (_, c, e) in events {
        if let Ev::Create(p) = e {
            let reserve = p.file_name().is_some_and(|n| n == journal::RESERVE_FILE);
            if before(*c) && p.starts_with(root) && !unlinked(p, *c) && !reserve {
                let parent = p.parent().unwrap_or(root);
                if !synced(parent, *c) {
                    problems.push(format!(
                        "{what}: {} created at line {c} but {} not fsync'd before it",
                        p.display(),
                        parent.display()
                    ));
                }
            }
        }
    }
    problems
}

/// Checks every ACK marker (rules 1 and 2 for the WAL, blobs and every
/// created entry; the sled log `db` is exempt: the WAL carries commits)
/// and every WAL segment deletion, i.e. every checkpoint (rules 1 and 2
/// for everything, the sled log included: a WAL record may only go once
/// sled holds it durably). Returns (markers, WAL deletions, problems).
fn check(events: &[(usize, usize, Ev)], root: &Path) -> (u32, u32, Vec<String>) {
    let mut problems = Vec::new();
    let mut marks = 0;
    let mut ckpts = 0;
    for (start, pm, ev) in events {
        match ev {
            Ev::Mark(m) => {
                marks += 1;
                problems.extend(gaps(
                    events,
                    root,
                    *pm,
                    &format!("ACK mark {m}"),
                    &is_sled_log,
                ));
            }
            Ev::Unlink(p) if is_wal_segment(p) => {
                ckpts += 1;
                problems.extend(gaps(
                    events,
                    root,
                    *start,
                    &format!("deletion of {} at line {start}", p.display()),
                    &|_| false,
                ));
            }
            _ => {}
        }
    }
    (marks, ckpts, problems)
}

#[test]
fn strace_proves_every_ack_follows_the_needed_syncs() {
    // A fresh journal: format 2, large values chunked in sled's log.
    let Some(blob_writes) = traced_workload(None) else {
        return;
    };
    assert_eq!(
        blob_writes, 0,
        "format 2 must never make sled write a blob file (`chunk.rs`)"
    );
}

#[test]
fn strace_proves_every_ack_follows_the_needed_syncs_in_a_format_1_journal() {
    // Format 1 (values whole, as before format 2): large ones are sled
    // blob files, each of which must be synced before the ACK.
    let Some(blob_writes) = traced_workload(Some(1)) else {
        return;
    };
    assert!(blob_writes > 0, "test did not exercise sled blob files");
}

/// Run the child's workload under strace (in a journal first migrated to
/// `format`, if given) and check every marker; the blob writes seen, or
/// `None` without strace outside CI.
fn traced_workload(format: Option<u64>) -> Option<usize> {
    if !require_tool("strace", "strace") {
        return None;
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().canonicalize().unwrap();
    let jdir = root.join("j");
    if let Some(f) = format {
        drop(journal::Journal::open(journal::JournalConfig::new(jdir.clone())).unwrap());
        journal::migrate::migrate(&jdir, f).unwrap();
    }
    let trace_file = root.join("trace.txt");
    let st = Command::new("strace")
        .args(["-f", "-yy", "-qq", "-s", "256", "-o"])
        .arg(&trace_file)
        .args([
            "-e",
            "trace=openat,open,creat,write,pwrite64,pwritev,pwritev2,writev,fsync,fdatasync,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat",
        ])
        .arg(child::EXE)
        .arg("strace")
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success(), "child failed under strace");
    let trace = std::fs::read_to_string(&trace_file).unwrap();
    let events = parse(&trace);
    let (marks, ckpts, problems) = check(&events, &root);
    assert_eq!(marks, 7, "markers missing from the trace");
    assert!(
        ckpts >= 1,
        "no WAL segment was deleted: no checkpoint was checked"
    );
    let blob_writes = events
        .iter()
        .filter(|(_, _, e)| matches!(e, Ev::Write(p) if p.starts_with(jdir.join("blobs"))))
        .count();
    let syncs = events
        .iter()
        .filter(|(_, _, e)| matches!(e, Ev::Sync(..)))
        .count();
    eprintln!(
        "trace: {} events, {blob_writes} blob writes, {syncs} syncs",
        events.len()
    );
    assert!(
        problems.is_empty(),
        "durability gaps:\n{}",
        problems.join("\n")
    );
    let wal_syncs = events
        .iter()
        .filter(|(_, _, e)| matches!(e, Ev::Sync(p, _) if is_wal_segment(p)))
        .count();
    assert!(
        wal_syncs >= 6,
        "expected a WAL sync per commit, saw {wal_syncs}"
    );
    Some(blob_writes)
}

#[test]
fn checker_flags_a_missing_wal_fdatasync() {
    // The checker itself must be able to fail: a WAL append with no later sync.
    let root = Path::new("/r");
    let w = "5</r/j/wal/00000000000000000001.wal>";
    let mark = "1 openat(AT_FDCWD</>, \"/JOURNAL-STRACE-MARK-1\", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)\n";
    let trace = format!("1 write({w}, \"x\", 1) = 1\n{mark}");
    let (m, _, p) = check(&parse(&trace), root);
    assert_eq!(m, 1);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].contains(".wal written"), "{p:?}");
    let ok = format!(
        "1 write({w}, \"x\", 1) = 1\n\
         2 fdatasync({w} <unfinished ...>\n\
         2 <... fdatasync resumed>) = 0\n{mark}"
    );
    assert!(check(&parse(&ok), root).2.is_empty());
    // A sync that started before the write does not count.
    let racy = format!(
        "2 fdatasync({w} <unfinished ...>\n\
         1 write({w}, \"x\", 1) = 1\n\
         2 <... fdatasync resumed>) = 0\n{mark}"
    );
    assert_eq!(check(&parse(&racy), root).2.len(), 1);
    // A sync that completes only after the ACK does not count.
    let late = format!(
        "2 fdatasync({w} <unfinished ...>\n\
         1 write({w}, \"x\", 1) = 1\n{mark}\
         2 <... fdatasync resumed>) = 0\n"
    );
    assert_eq!(check(&parse(&late), root).2.len(), 1);
}

#[test]
fn checker_flags_an_unsynced_new_segment_and_an_early_wal_deletion() {
    let root = Path::new("/r");
    let mark = "1 openat(AT_FDCWD</>, \"/JOURNAL-STRACE-MARK-1\", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory)\n";
    // A new WAL segment whose directory entry was never made durable.
    let created = format!(
        "1 openat(AT_FDCWD</>, \"/r/j/wal/00000000000000000002.wal\", O_WRONLY|O_CREAT|O_EXCL|O_APPEND|O_CLOEXEC, 0666) = 5</r/j/wal/00000000000000000002.wal>\n{mark}"
    );
    let (_, _, p) = check(&parse(&created), root);
    assert_eq!(p.len(), 1, "{p:?}");
    let synced = format!(
        "1 openat(AT_FDCWD</>, \"/r/j/wal/00000000000000000002.wal\", O_WRONLY|O_CREAT|O_EXCL|O_APPEND|O_CLOEXEC, 0666) = 5</r/j/wal/00000000000000000002.wal>\n\
         1 fsync(6</r/j/wal>) = 0\n{mark}"
    );
    assert!(check(&parse(&synced), root).2.is_empty());
    // An unsynced sled log write is fine at an ACK (the WAL carries it) ...
    let db = format!("1 pwrite64(5</r/j/db>, \"x\", 1, 0) = 1\n{mark}");
    assert!(check(&parse(&db), root).2.is_empty());
    // ... but not when a WAL segment is deleted (a checkpoint) ...
    let early = "1 pwrite64(5</r/j/db>, \"x\", 1, 0) = 1\n\
                 1 unlink(\"/r/j/wal/00000000000000000001.wal\") = 0\n";
    let (_, c, p) = check(&parse(early), root);
    assert_eq!(c, 1);
    assert_eq!(p.len(), 1, "{p:?}");
    // ... which is right once the log was fdatasync'd first.
    let good = "1 pwrite64(5</r/j/db>, \"x\", 1, 0) = 1\n\
                1 fdatasync(7</r/j/db>) = 0\n\
                1 unlink(\"/r/j/wal/00000000000000000001.wal\") = 0\n";
    assert!(check(&parse(good), root).2.is_empty());
}
