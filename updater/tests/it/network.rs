//! Network faults against a loopback HTTP server: drops, stalls, 503s,
//! 404s and content that changes mid-download. The download resumes and
//! completes, or stops cleanly on a 4xx.

use crate::support::http::{Fault, Server};
use crate::support::tools::require_tool;
use crate::support::*;
use std::sync::atomic::Ordering;
use std::time::Duration;
use updater::boot::SlotId;
use updater::download::http_range::HttpSource;
use updater::durable::RealFiles;
use updater::install::Staged;

fn v1() -> Vec<u8> {
    image(&[1, 2, 3, 4, 5, 6], 0)
}
fn v2() -> Vec<u8> {
    image(&[1, 20, 30, 40, 50, 60, 70, 80], 500)
}

struct Net {
    _repo: Repo,
    dev: Device,
    srv: Server,
}

fn setup() -> Net {
    let repo = Repo::new(1, 1);
    repo.add("gw-2.0.img", &v2(), "2.0", 1);
    repo.sign_publish();
    let dev = Device::new(&repo.root(), &v1(), "1.0", 1, 96 * 1024);
    let srv = Server::start(repo.out.clone());
    Net {
        _repo: repo,
        dev,
        srv,
    }
}

impl Net {
    fn install(&self) -> updater::Result<Staged> {
        let cfg = self
            .dev
            .trust(self.srv.url("metadata/"), self.srv.url("targets/"));
        let v = updater::trust::load(&cfg, &RealFiles, &mut self.dev.clock(hours(t0(), 1)))?;
        let t = target(&v, "gw-2.0.img").clone();
        let fw = self.dev.firmware();
        let ctx = self.dev.context(&fw, &RealFiles, &self.dev.slots, "b1");
        // Two seconds without a byte is a stall, and a retry.
        let mut src = HttpSource::new(
            v.targets_url.clone(),
            Duration::from_secs(2),
            Duration::from_secs(2),
            Duration::from_secs(10),
            vec![],
        )?;
        updater::install::install(&ctx, &t, &mut src, v.expires)
    }
    fn done(&self) -> bool {
        self.dev.slot_holds(SlotId::B, &v2())
            && self.dev.firmware().env().unwrap().order[0] == SlotId::B
    }
}

#[test]
fn clean_download_uses_ranges_and_the_delta() {
    let n = setup();
    let s = n.install().unwrap();
    assert_eq!((s.chunks_copied, s.chunks_downloaded), (1, 7), "{s:?}");
    assert!(n.done());
    assert!(n.dev.slot_holds(SlotId::A, &v1()));
}

#[test]
fn dropped_connections_are_retried() {
    let n = setup();
    n.srv.push("targets/", Fault::DropAfter(100));
    n.srv.push("targets/", Fault::DropAfter(5000));
    n.install().unwrap();
    assert!(n.done());
}

#[test]
fn a_stalled_server_times_out_and_is_retried() {
    let n = setup();
    n.srv.push("targets/", Fault::Stall(Duration::from_secs(5)));
    n.install().unwrap();
    assert!(n.done());
}

#[test]
fn service_unavailable_is_retried() {
    let n = setup();
    n.srv.push("targets/", Fault::Status(503));
    n.srv.push("targets/", Fault::Status(503));
    n.srv.push("targets/", Fault::Status(502));
    n.install().unwrap();
    assert!(n.done());
}

#[test]
fn not_found_stops_at_once_without_a_retry_storm() {
    let n = setup();
    n.srv.always("targets/", Fault::Status(404));
    let before = n.srv.requests.load(Ordering::SeqCst);
    let e = n.install().unwrap_err().to_string();
    assert!(e.contains("404") && e.contains("not retrying"), "{e}");
    let chunk_requests = n.srv.requests.load(Ordering::SeqCst) - before - 4; // minus metadata fetches
    assert!(
        chunk_requests <= 1,
        "{chunk_requests} chunk requests after a 404"
    );
    assert!(!n.done());
    n.dev.assert_active_untouched(&v1());
}

#[test]
fn content_changing_mid_download_is_caught_and_the_download_resumes() {
    let n = setup();
    // The image changes on the server for the rest of this run.
    n.srv.push("targets/", Fault::DropAfter(usize::MAX)); // first chunk fine
    n.srv.always("targets/", Fault::Corrupt);
    let e = n.install().unwrap_err().to_string();
    assert!(
        e.contains("does not match the signed chunk hash") && e.contains("resumes"),
        "{e}"
    );
    n.dev.assert_active_untouched(&v1());
    // The server is fixed; the next run keeps what it has and completes.
    n.srv.clear();
    let before = n.srv.requests.load(Ordering::SeqCst);
    let s = n.install().unwrap();
    assert!(n.done());
    assert!(s.chunks_kept >= 1, "{s:?}");
    let chunk_requests = n.srv.requests.load(Ordering::SeqCst) - before - 4;
    assert_eq!(chunk_requests, s.chunks_downloaded, "{s:?}");
}

#[test]
fn a_download_cut_for_good_resumes_from_the_bitmap() {
    let n = setup();
    // Link dies after 4 chunks for the rest of this run.
    for _ in 0..4 {
        n.srv.push("targets/", Fault::DropAfter(usize::MAX));
    }
    n.srv.always("targets/", Fault::DropAfter(10));
    let e = n.install().unwrap_err().to_string();
    assert!(e.contains("attempts failed"), "{e}");
    let st = n.dev.state();
    let p = st.pending.unwrap();
    assert_eq!(p.phase, updater::state::Phase::Writing);
    n.srv.clear();
    let s = n.install().unwrap();
    assert!(n.done());
    // 1 copied + 4 downloaded earlier are kept (bitmap or hash match).
    assert_eq!(s.chunks_kept, 5, "{s:?}");
    assert_eq!(s.chunks_downloaded, 3, "{s:?}");
}

#[test]
fn backoff_has_full_jitter_under_a_cap() {
    let b = updater::download::Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_millis(1000),
        max_attempts: 5,
    };
    let mut distinct = std::collections::BTreeSet::new();
    for attempt in 0..12 {
        let d = b.delay(attempt);
        let ceiling = Duration::from_millis(100 * (1u64 << attempt.min(20))).min(b.cap);
        assert!(
            d < ceiling || d == Duration::ZERO,
            "attempt {attempt}: {d:?} >= {ceiling:?}"
        );
        distinct.insert(d);
    }
    assert!(distinct.len() > 6, "no jitter: {distinct:?}");
}

/// A private CA and a server certificate for 127.0.0.1, made with openssl;
/// `None` (skipped) where openssl is missing.
fn tls_material(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    if !require_tool("openssl", "openssl") {
        return None;
    }
    let sh = format!(
        "set -e; cd {d}; \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=updater-test-ca 2>/dev/null; \
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null; \
         printf 'subjectAltName=IP:127.0.0.1\\n' > ext; \
         openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 -extfile ext 2>/dev/null",
        d = dir.display()
    );
    let st = std::process::Command::new("sh")
        .arg("-c")
        .arg(sh)
        .status()
        .unwrap();
    assert!(st.success(), "openssl could not make the test certificates");
    Some(dir.join("ca.pem"))
}

#[test]
fn https_with_a_private_ca() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let d = tempfile::tempdir().unwrap();
    let Some(ca) = tls_material(d.path()) else {
        return;
    };
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(d.path().join("srv.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(d.path().join("srv.key")).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();

    let repo = Repo::new(1, 1);
    repo.add("gw-2.0.img", &v2(), "2.0", 1);
    repo.sign_publish();
    let dev = Device::new(&repo.root(), &v1(), "1.0", 1, 96 * 1024);
    let srv = Server::start_tls(repo.out.clone(), std::sync::Arc::new(cfg));

    // Without the private CA the server is not trusted.
    let plain = dev.trust(srv.url("metadata/"), srv.url("targets/"));
    let e = updater::trust::load(&plain, &RealFiles, &mut dev.clock(hours(t0(), 1)))
        .unwrap_err()
        .to_string();
    eprintln!("rejected: {e}");
    assert!(
        e.contains("update metadata rejected") && e.contains("https://127.0.0.1"),
        "{e}"
    );

    // With `ca_file`, metadata and chunks come over TLS.
    let mut with_ca = plain.clone();
    with_ca.extra_ca = Some(ca.clone());
    let v = updater::trust::load(&with_ca, &RealFiles, &mut dev.clock(hours(t0(), 1))).unwrap();
    let t = target(&v, "gw-2.0.img").clone();
    let fw = dev.firmware();
    let ctx = dev.context(&fw, &RealFiles, &dev.slots, "b1");
    let mut src = HttpSource::new(
        v.targets_url.clone(),
        Duration::from_secs(2),
        Duration::from_secs(2),
        Duration::from_secs(10),
        updater::trust::transport::root_certificates(Some(&ca)).unwrap(),
    )
    .unwrap();
    updater::install::install(&ctx, &t, &mut src, v.expires).unwrap();
    assert!(dev.slot_holds(SlotId::B, &v2()));
}

#[test]
fn chunks_that_moved_in_the_image_are_copied_not_downloaded() {
    // v2 inserts one new chunk in front of v1's first three.
    let old = image(&[1, 2, 3, 4], 0);
    let c = CHUNK as usize;
    let mut new = image(&[77], 0);
    new.extend_from_slice(&old[..3 * c]);
    let repo = Repo::new(1, 1);
    repo.add("gw-2.0.img", &new, "2.0", 1);
    repo.sign_publish();
    let dev = Device::new(&repo.root(), &old, "1.0", 1, 96 * 1024);
    let srv = Server::start(repo.out.clone());
    let n = Net {
        _repo: repo,
        dev,
        srv,
    };
    let before = n.srv.requests.load(Ordering::SeqCst);
    let s = n.install().unwrap();
    assert_eq!((s.chunks_copied, s.chunks_downloaded), (3, 1), "{s:?}");
    assert_eq!(
        n.srv.requests.load(Ordering::SeqCst) - before - 4,
        1,
        "one chunk request"
    );
    assert!(n.dev.slot_holds(SlotId::B, &new));
    assert!(n.dev.slot_holds(SlotId::A, &old));
}
