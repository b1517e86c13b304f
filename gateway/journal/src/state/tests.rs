//! The state store through the journal's API: a real journal in a
//! temporary directory, its writer thread and its WAL.

use crate::record as rec;
use crate::test_support::{open, runtime};
use crate::writer::Req;
use crate::{JournalError, StateEntry, STATE_KEY_MAX, STATE_VALUE_MAX};

fn entry(key: &str, value: &str) -> StateEntry {
    StateEntry {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

#[test]
fn put_get_replace_delete_and_it_survives_a_reopen() {
    let t = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let j = open(t.path());
        assert_eq!(j.get_state("sftp/clearinghouse", b"cursor").unwrap(), None);
        j.put_state("sftp/clearinghouse", b"cursor", b"2024-01-01")
            .await
            .unwrap();
        j.put_state("sftp/clearinghouse", b"cursor", b"2024-01-02")
            .await
            .unwrap();
        j.put_state("sftp/clearinghouse", b"gone", b"x")
            .await
            .unwrap();
        j.delete_state("sftp/clearinghouse", b"gone").await.unwrap();
        assert_eq!(
            j.get_state("sftp/clearinghouse", b"cursor").unwrap(),
            Some(b"2024-01-02".to_vec())
        );
        assert_eq!(j.get_state("sftp/clearinghouse", b"gone").unwrap(), None);
        j.close().await.unwrap();

        let j = open(t.path());
        assert_eq!(
            j.get_state("sftp/clearinghouse", b"cursor").unwrap(),
            Some(b"2024-01-02".to_vec())
        );
        assert_eq!(j.get_state("sftp/clearinghouse", b"gone").unwrap(), None);
        // State is no message.
        assert_eq!(j.stats().messages, 0);
        j.close().await.unwrap();
    });
}

#[test]
fn each_write_is_its_own_durable_wal_commit_and_a_missing_delete_commits_nothing() {
    let t = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let j = open(t.path());
        // WAL appends + fdatasyncs are what the commit-latency histogram times.
        let wal_commits = || j.commit_latency().count;
        let before = wal_commits();
        j.put_state("pickup", b"a.x12", b"taken").await.unwrap();
        assert_eq!(wal_commits(), before + 1);
        let sync = j.last_commit_sync();
        let wal = sync.synced.first().expect("a commit syncs the WAL first");
        assert!(
            wal.starts_with(t.path().join("j/wal")) && wal.extension().is_some_and(|e| e == "wal"),
            "{wal:?}"
        );
        j.delete_state("pickup", b"never-there").await.unwrap();
        assert_eq!(wal_commits(), before + 1);
        j.delete_state("pickup", b"a.x12").await.unwrap();
        assert_eq!(wal_commits(), before + 2);
        j.close().await.unwrap();
    });
}

#[test]
fn list_pages_by_prefix_in_key_order_within_one_namespace() {
    let t = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let j = open(t.path());
        for (k, v) in [
            ("f/3", "c"),
            ("f/1", "a"),
            ("f/2", "b"),
            ("g/1", "z"),
            ("f", "root"),
        ] {
            j.put_state("export", k.as_bytes(), v.as_bytes())
                .await
                .unwrap();
        }
        // A namespace that extends another's name is another namespace.
        j.put_state("exports", b"f/9", b"other").await.unwrap();
        j.put_state("expor", b"tf/0", b"other").await.unwrap();

        let page1 = j.list_state("export", b"f/", None, 2).unwrap();
        assert_eq!(page1, [entry("f/1", "a"), entry("f/2", "b")]);
        let after = page1.last().map(|e| e.key.as_slice());
        let page2 = j.list_state("export", b"f/", after, 2).unwrap();
        assert_eq!(page2, [entry("f/3", "c")]);
        let after = page2.last().map(|e| e.key.as_slice());
        assert!(j.list_state("export", b"f/", after, 2).unwrap().is_empty());
        // No prefix: the whole namespace; `after` below the prefix is fine.
        let all = j.list_state("export", b"", None, 100).unwrap();
        let keys: Vec<&[u8]> = all.iter().map(|e| e.key.as_slice()).collect();
        assert_eq!(keys, [&b"f"[..], b"f/1", b"f/2", b"f/3", b"g/1"]);
        assert_eq!(
            j.list_state("export", b"g/", Some(b"a"), 10).unwrap(),
            [entry("g/1", "z")]
        );
        j.close().await.unwrap();
    });
}

#[test]
fn values_keys_and_namespaces_over_their_limits_are_refused_and_nothing_is_stored() {
    let t = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let j = open(t.path());
        j.put_state("ns", b"k", b"old").await.unwrap();
        j.put_state("ns", b"max", &vec![1u8; STATE_VALUE_MAX])
            .await
            .unwrap();
        let commits = j.commit_latency().count;
        match j
            .put_state("ns", b"k", &vec![1u8; STATE_VALUE_MAX + 1])
            .await
        {
            Err(JournalError::Invalid { reason }) => {
                assert!(
                    reason.contains("namespace \"ns\"")
                        && reason.contains("65537 bytes")
                        && reason.contains("65536"),
                    "{reason}"
                );
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        let long_key = vec![b'k'; STATE_KEY_MAX + 1];
        assert!(matches!(
            j.put_state("ns", &long_key, b"v").await,
            Err(JournalError::Invalid { .. })
        ));
        assert!(matches!(
            j.put_state("", b"k", b"v").await,
            Err(JournalError::Invalid { .. })
        ));
        assert!(matches!(
            j.get_state(&"n".repeat(256), b"k"),
            Err(JournalError::Invalid { .. })
        ));
        assert_eq!(j.commit_latency().count, commits, "nothing was logged");
        assert_eq!(j.get_state("ns", b"k").unwrap(), Some(b"old".to_vec()));
        j.close().await.unwrap();
    });
}

#[test]
fn a_corrupt_state_value_is_reported_with_its_namespace_and_key() {
    let t = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let j = open(t.path());
        j.put_state("poller/results", b"cursor", b"v")
            .await
            .unwrap();
        let mut v = rec::seal_bytes(b"v");
        v[5] ^= 0x40;
        let k = rec::state_key("poller/results", b"cursor");
        j.call(|tx| Req::RawPut(k, Some(v), tx)).await.unwrap();
        for e in [
            j.get_state("poller/results", b"cursor").unwrap_err(),
            j.list_state("poller/results", b"", None, 10).unwrap_err(),
        ] {
            match e {
                JournalError::Corrupt { context } => assert!(
                    context.contains("\"poller/results\" key \"cursor\"")
                        && context.contains("checksum"),
                    "{context}"
                ),
                other => panic!("expected Corrupt, got {other:?}"),
            }
        }
        j.close().await.unwrap();
    });
}
