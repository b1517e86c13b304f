//! The shutdown order, watched from outside: `/readyz` over HTTP, the MLLP
//! port over TCP and the journal on disk. The first test runs the real
//! shutdown sequence over the real health endpoint and journal with fake
//! source and deliverer tasks that record what they see when told to stop;
//! the second runs the whole daemon in-process on loopback ports.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use crate::ops::restart_markers::CLEAN_STOP_MARKER;

/// `GET path` on `addr`: the status code and body, or `None` when nothing listens.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    let code = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
}

fn adt(control_id: &str) -> Vec<u8> {
    format!("MSH|^~\\&|ECW|CLINIC|GW|CLOUD|20240101120000||ADT^A04^ADT_A01|{control_id}|P|2.5.1\rEVN|A04|20240101120000\rPID|1||MRN1^^^CLINIC^MR||TEST^PATIENT||19800101|F\rPV1|1|O\r").into_bytes()
}

async fn append(journal: &Journal, control_id: &str) -> Result<(), journal::JournalError> {
    let raw = adt(control_id);
    let header = hl7::Message::parse(&raw).unwrap().header();
    journal
        .append(journal::NewMessage {
            source: "test".into(),
            peer: "127.0.0.1:1".into(),
            received_at_ms: clock::unix_ms(),
            meta: crate::accept::hl7_meta(&header),
            raw,
            ack: Vec::new(),
            destinations: Vec::new(),
            patient_lane: 0,
        })
        .await
        .map(|_| ())
}

async fn open(dir: &Path) -> Journal {
    let cfg = JournalConfig::new(dir.join("journal"));
    tokio::task::spawn_blocking(move || Journal::open(cfg))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_before_sources_stop_and_the_journal_closes_after_the_deliverers() {
    let dir = tempfile::tempdir().unwrap();
    let journal = open(dir.path()).await;
    let health = Arc::new(HealthState {
        refuse_at_percent: 100,
        ..Default::default()
    });
    let _ = health.journal.set(journal.clone());
    health.journal_open.store(true, Ordering::Relaxed);
    health.listeners_bound.store(true, Ordering::Relaxed);

    let mut tasks = Tasks::default();
    let listener = health::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let health_addr = listener.local_addr().unwrap();
    let views = tasks.stage(Stage::Views);
    views.spawn(
        "health endpoint",
        health::serve(listener, health.clone(), views.stop_signal()),
    );
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let sources_done = Arc::new(AtomicBool::new(false));

    // A source: when told to stop, ask /readyz what a load balancer would see.
    let (log, done) = (seen.clone(), sources_done.clone());
    let mut stop = tasks.stage(Stage::Sources).stop_signal();
    tasks
        .stage(Stage::Sources)
        .spawn("fake listener", async move {
            let _ = stop.wait_for(|s| *s).await;
            let (code, body) = get(health_addr, "/readyz").await.unwrap();
            log.lock().unwrap().push(format!(
                "source told to stop: /readyz {code} {}",
                body.trim()
            ));
            // The frame in hand takes a moment; delivery must wait for it.
            tokio::time::sleep(Duration::from_millis(300)).await;
            done.store(true, Ordering::SeqCst);
        });
    // A deliverer: when told to stop, the sources are done and the journal still takes writes.
    let (log, done, j) = (seen.clone(), sources_done.clone(), journal.clone());
    let mut stop = tasks.stage(Stage::Delivery).stop_signal();
    tasks
        .stage(Stage::Delivery)
        .spawn("fake deliverer", async move {
            let _ = stop.wait_for(|s| *s).await;
            let sources = if done.load(Ordering::SeqCst) {
                "done"
            } else {
                "RUNNING"
            };
            let write = match append(&j, "LAST").await {
                Ok(()) => "ok".to_string(),
                Err(e) => e.to_string(),
            };
            log.lock().unwrap().push(format!(
                "deliverer told to stop: sources {sources}, journal write {write}"
            ));
        });

    assert_eq!(get(health_addr, "/readyz").await.unwrap().0, 200);
    let running = Running {
        health,
        tasks,
        journal: journal.clone(),
        data_dir: dir.path().to_path_buf(),
    };
    running.shutdown().await.unwrap();

    assert_eq!(
        *seen.lock().unwrap(),
        [
            "source told to stop: /readyz 503 not ready: shutting down",
            "deliverer told to stop: sources done, journal write ok",
        ]
    );
    assert!(
        get(health_addr, "/readyz").await.is_none(),
        "health endpoint still up"
    );
    assert!(
        append(&journal, "AFTER").await.is_err(),
        "journal still open"
    );
    assert!(dir.path().join(CLEAN_STOP_MARKER).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_in_hand_is_answered_aa_while_the_port_is_closed_and_readyz_says_503() {
    let dir = tempfile::tempdir().unwrap();
    let (mllp, health_addr) = (free_addr(), free_addr());
    let data = dir.path().join("var");
    let text = format!(
        "data_dir = {data:?}\n[health]\nbind = \"{health_addr}\"\n\n[[listener]]\nname = \"ehr\"\nbind = \"{mllp}\"\n\n[[destination]]\nname = \"outbox\"\nkind = \"folder\"\npath = {out:?}\n\n[[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"outbox\"]\n",
        data = data.display().to_string(),
        out = data.join("outbox").display().to_string(),
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, &text).unwrap();
    let cfg = crate::config::load(&path).unwrap();
    let running = start(&cfg).await.unwrap();
    assert_eq!(get(health_addr, "/readyz").await.unwrap().0, 200);

    // A frame in hand: the start block and half the message.
    let mut frame = hl7::mllp::frame(&adt("IN-HAND"));
    let rest = frame.split_off(frame.len() / 2);
    let mut conn = TcpStream::connect(mllp).await.unwrap();
    conn.write_all(&frame).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let stopping = tokio::spawn(running.shutdown());
    // Probe the port, then /readyz. Once the port refuses, /readyz must
    // already say 503: readiness goes first.
    let mut probes = Vec::new();
    for _ in 0..500 {
        let port_open = TcpStream::connect(mllp).await.is_ok();
        let ready = get(health_addr, "/readyz").await.map(|(c, _)| c);
        probes.push((port_open, ready));
        if !port_open {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (port_open, ready) = *probes.last().unwrap();
    assert!(!port_open, "the listener never closed: {probes:?}");
    assert_eq!(ready, Some(503), "port closed while /readyz said {ready:?}");
    assert!(
        probes.iter().all(|(open, r)| *open || *r == Some(503)),
        "{probes:?}"
    );
    assert!(
        !stopping.is_finished(),
        "shutdown did not wait for the frame in hand"
    );

    // The rest of the frame: answered AA, after the port has closed.
    conn.write_all(&rest).await.unwrap();
    let mut ack = Vec::new();
    let mut buf = [0u8; 1024];
    while !ack.ends_with(b"\x1c\r") {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("no ACK within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "closed without an ACK: {:?}",
            String::from_utf8_lossy(&ack)
        );
        ack.extend_from_slice(&buf[..n]);
    }
    let ack = String::from_utf8_lossy(&ack).to_string();
    assert!(ack.contains("MSA|AA|IN-HAND"), "{ack}");
    // Between frames the connection is closed at once.
    assert_eq!(conn.read(&mut buf).await.unwrap(), 0);

    tokio::time::timeout(Duration::from_secs(30), stopping)
        .await
        .expect("shutdown took over 30 s")
        .unwrap()
        .unwrap();
    assert!(data.join(CLEAN_STOP_MARKER).exists());
    assert!(get(health_addr, "/readyz").await.is_none());
    let journal = open(&data).await;
    assert_eq!(
        journal.stats().messages,
        1,
        "the frame in hand was journaled"
    );
    journal.close().await.unwrap();
}
