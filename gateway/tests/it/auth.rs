//! Destination auth (SMART Backend Services, client credentials, static
//! headers) against the loopback token endpoint of
//! `support::token_server`, which verifies assertions and secrets the way a
//! real authorization server does. Keys are made by the `openssl` CLI in
//! every key format we accept.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use gateway::auth::{self, AuthError, RawAuth, TokenProvider};
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::support::http_peer::{HttpPeer, Mode};
use crate::support::pki::openssl;
use crate::support::token_server::{Scripted, TokenServer, Verifier, CLIENT_ID, KID, SCOPE};
use crate::support::{ack_code, adt, require_tool, rt, send_one, Gateway, Options};

// ---------------------------------------------------------------- keys

fn chmod600(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// An RSA-2048 key as PKCS#8 and PKCS#1, and its public half.
fn rsa_keys(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.p8.pem",
        ],
    );
    openssl(
        dir,
        &[
            "pkey",
            "-in",
            "rsa.p8.pem",
            "-traditional",
            "-out",
            "rsa.p1.pem",
        ],
    );
    openssl(
        dir,
        &["pkey", "-in", "rsa.p8.pem", "-pubout", "-out", "rsa.pub"],
    );
    let p1 = std::fs::read_to_string(dir.join("rsa.p1.pem")).unwrap();
    assert!(p1.contains("BEGIN RSA PRIVATE KEY"), "PKCS#1 expected");
    for k in ["rsa.p8.pem", "rsa.p1.pem"] {
        chmod600(&dir.join(k));
    }
    (
        dir.join("rsa.p8.pem"),
        dir.join("rsa.p1.pem"),
        dir.join("rsa.pub"),
    )
}

/// An EC P-384 key as SEC1 and PKCS#8, and its public half.
fn ec_keys(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    openssl(
        dir,
        &[
            "ecparam",
            "-name",
            "secp384r1",
            "-genkey",
            "-noout",
            "-out",
            "ec.sec1.pem",
        ],
    );
    openssl(
        dir,
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "ec.sec1.pem",
            "-out",
            "ec.p8.pem",
        ],
    );
    openssl(
        dir,
        &["pkey", "-in", "ec.sec1.pem", "-pubout", "-out", "ec.pub"],
    );
    let sec1 = std::fs::read_to_string(dir.join("ec.sec1.pem")).unwrap();
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"), "SEC1 expected");
    for k in ["ec.sec1.pem", "ec.p8.pem"] {
        chmod600(&dir.join(k));
    }
    (
        dir.join("ec.sec1.pem"),
        dir.join("ec.p8.pem"),
        dir.join("ec.pub"),
    )
}

// ---------------------------------------------------------------- helpers

fn smart_config(server_url: &str, key: &Path, algorithm: Option<&str>) -> RawAuth {
    let alg = algorithm
        .map(|a| format!("algorithm = \"{a}\"\n"))
        .unwrap_or_default();
    toml::from_str(&format!(
        "type = \"smart_backend\"\ntoken_url = \"{server_url}\"\nclient_id = \"{CLIENT_ID}\"\n\
         private_key_file = {:?}\nkey_id = \"{KID}\"\nscope = \"{SCOPE}\"\n{alg}",
        key.display().to_string()
    ))
    .unwrap()
}

fn provider(raw: RawAuth, base: &Path) -> TokenProvider {
    let cfg = auth::validate_with(raw, base, None).unwrap();
    TokenProvider::new(cfg, reqwest::Client::new())
}

async fn smart_server(dir: &Path, rsa: bool, expires_in: u64) -> (TokenServer, PathBuf) {
    let (key, public, alg) = if rsa {
        let (p8, _, public) = rsa_keys(dir);
        (p8, public, Algorithm::RS384)
    } else {
        let (sec1, _, public) = ec_keys(dir);
        (sec1, public, Algorithm::ES384)
    };
    let pem = std::fs::read(public).unwrap();
    let key_for_server = if rsa {
        DecodingKey::from_rsa_pem(&pem).unwrap()
    } else {
        DecodingKey::from_ec_pem(&pem).unwrap()
    };
    let server = TokenServer::start(
        Verifier::Smart {
            key: key_for_server,
            alg,
        },
        expires_in,
    )
    .await;
    (server, key)
}

async fn header(p: &TokenProvider) -> String {
    p.authorization()
        .await
        .unwrap()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_rs384_and_es384_with_every_key_format() {
    if !require_tool("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (rsa_p8, rsa_p1, rsa_pub) = rsa_keys(dir.path());
    let (ec_sec1, ec_p8, ec_pub) = ec_keys(dir.path());
    let rsa_dec = || DecodingKey::from_rsa_pem(&std::fs::read(&rsa_pub).unwrap()).unwrap();
    let ec_dec = || DecodingKey::from_ec_pem(&std::fs::read(&ec_pub).unwrap()).unwrap();
    let cases: Vec<(&Path, Option<&str>, DecodingKey, Algorithm)> = vec![
        (&rsa_p8, Some("RS384"), rsa_dec(), Algorithm::RS384),
        (&rsa_p1, None, rsa_dec(), Algorithm::RS384),
        (&ec_sec1, Some("ES384"), ec_dec(), Algorithm::ES384),
        (&ec_p8, None, ec_dec(), Algorithm::ES384),
    ];
    for (key, alg_cfg, dec, alg) in cases {
        let server = TokenServer::start(Verifier::Smart { key: dec, alg }, 300).await;
        let p = provider(smart_config(&server.url, key, alg_cfg), dir.path());
        assert_eq!(header(&p).await, "Bearer tok-1", "{}", key.display());
        assert!(server.rejections().is_empty(), "{:?}", server.rejections());
        assert_eq!(p.refreshes(), 1);
    }

    // A key that does not fit the algorithm is refused at validation, naming the field.
    let err = auth::validate_with(
        smart_config("https://ehr.example/token", &rsa_p8, Some("ES384")),
        dir.path(),
        None,
    )
    .unwrap_err();
    assert!(
        err.starts_with("auth.private_key_file:") && err.contains("RS384 for RSA"),
        "{err}"
    );
    openssl(
        dir.path(),
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "p256.pem",
        ],
    );
    chmod600(&dir.path().join("p256.pem"));
    let err = auth::validate_with(
        smart_config(
            "https://ehr.example/token",
            Path::new("p256.pem"),
            Some("ES384"),
        ),
        dir.path(),
        None,
    )
    .unwrap_err();
    assert!(err.contains("P-256") && err.contains("P-384"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_token_is_cached_and_fetched_once_for_concurrent_callers() {
    if !require_tool("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = smart_server(dir.path(), false, 300).await;
    server.state.delay_ms.store(300, Ordering::SeqCst);
    let p = provider(smart_config(&server.url, &key, None), dir.path());

    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move { header(&p).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), "Bearer tok-1");
    }
    assert_eq!(
        server.requests(),
        1,
        "32 concurrent callers, one token request"
    );

    for _ in 0..200 {
        assert_eq!(header(&p).await, "Bearer tok-1");
    }
    assert_eq!(server.requests(), 1, "the cached token is reused");
    assert_eq!(p.refreshes(), 1);
    assert!(server.rejections().is_empty(), "{:?}", server.rejections());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_renews_short_lived_tokens_with_fresh_assertions() {
    if !require_tool("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = smart_server(dir.path(), true, 1).await;
    let p = provider(smart_config(&server.url, &key, None), dir.path());

    // A long run (for a 1-second token): 60 × 100 ms of delivery calls.
    let mut seen = HashSet::new();
    for _ in 0..60 {
        seen.insert(header(&p).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let requests = server.requests();
    assert!(
        requests >= 3,
        "tokens renewed during the run: {requests} requests"
    );
    assert_eq!(
        seen.len() as u64,
        requests,
        "each renewal brought a new token"
    );
    assert_eq!(p.refreshes(), requests);
    assert_eq!(p.refresh_failures(), 0);
    // Every request carried a valid assertion with a never-seen jti.
    assert!(server.rejections().is_empty(), "{:?}", server.rejections());
    assert_eq!(server.state.jtis.lock().unwrap().len() as u64, requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_after_a_401_fetches_a_new_token() {
    if !require_tool("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = smart_server(dir.path(), false, 300).await;
    let p = provider(smart_config(&server.url, &key, None), dir.path());

    let t1 = p.authorization().await.unwrap().unwrap();
    assert_eq!(t1, "Bearer tok-1");
    assert!(t1.is_sensitive());
    p.invalidate(); // the destination answered 401
    let t2 = p.authorization().await.unwrap().unwrap();
    assert_eq!(t2, "Bearer tok-2");
    assert_eq!(server.requests(), 2);

    // A late 401 for the old token does not throw the new one away.
    p.invalidate_if_current(&t1);
    assert_eq!(header(&p).await, "Bearer tok-2");
    assert_eq!(server.requests(), 2);
    p.invalidate_if_current(&t2);
    assert_eq!(header(&p).await, "Bearer tok-3");
    assert!(server.rejections().is_empty(), "{:?}", server.rejections());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_refuses_replays_and_foreign_keys_and_the_error_says_why() {
    if !require_tool("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = smart_server(dir.path(), true, 300).await;
    let p = provider(smart_config(&server.url, &key, None), dir.path());
    header(&p).await;

    // Replaying the very same assertion is refused by the verifier.
    let form = server.state.last_form.lock().unwrap().clone().unwrap();
    let resp = reqwest::Client::new()
        .post(&server.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("jti reused"));

    // A key the server does not know: permanent, with the server's reason, no secret.
    let other = tempfile::tempdir().unwrap();
    let (stranger, _, _) = rsa_keys(other.path());
    let p = provider(smart_config(&server.url, &stranger, None), dir.path());
    let err = p.authorization().await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("401") && msg.contains("invalid_client") && msg.contains("InvalidSignature"),
        "{msg}"
    );
    assert!(msg.contains("key_id"), "a hint at what to check: {msg}");
    assert!(
        !msg.contains("eyJ"),
        "the assertion never appears in errors: {msg}"
    );
    assert_eq!(p.refresh_failures(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_errors_are_transient_or_permanent() {
    if !require_tool("openssl", "openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = smart_server(dir.path(), false, 300).await;
    let p = provider(smart_config(&server.url, &key, None), dir.path());

    let transient = [
        Scripted {
            status: 500,
            body: "oops",
            retry_after: None,
        },
        Scripted {
            status: 503,
            body: "",
            retry_after: Some("7"),
        },
        Scripted {
            status: 429,
            body: r#"{"error":"slow_down"}"#,
            retry_after: Some("2"),
        },
    ];
    for s in transient {
        server.script(Some(s.clone()));
        let err = p.authorization().await.unwrap_err();
        assert!(err.is_transient(), "{} → {err}", s.status);
        assert!(err.to_string().contains(&s.status.to_string()), "{err}");
        assert_eq!(
            err.retry_after(),
            s.retry_after
                .map(|r| Duration::from_secs(r.parse().unwrap()))
        );
    }

    let permanent = [
        (
            400,
            r#"{"error":"invalid_scope","error_description":"system/Observation.cruds is not granted"}"#,
            "invalid_scope: system/Observation.cruds is not granted",
        ),
        (
            401,
            r#"{"error":"invalid_client","error_description":"unknown client"}"#,
            "invalid_client: unknown client",
        ),
        (200, "<html>captive portal</html>", "without a usable token"),
    ];
    for (status, body, want) in permanent {
        server.script(Some(Scripted {
            status,
            body,
            retry_after: None,
        }));
        let err = p.authorization().await.unwrap_err();
        assert!(
            matches!(err, AuthError::Permanent { .. }),
            "{status} → {err}"
        );
        assert!(err.to_string().contains(want), "{err}");
    }

    // Concurrent callers share one failing request instead of hammering the endpoint.
    server.script(Some(Scripted {
        status: 503,
        body: "",
        retry_after: None,
    }));
    server.state.delay_ms.store(300, Ordering::SeqCst);
    let before = server.requests();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move { p.authorization().await })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap().unwrap_err().is_transient());
    }
    assert_eq!(server.requests() - before, 1);

    // Recovery: the next call gets a token.
    server.state.delay_ms.store(0, Ordering::SeqCst);
    server.script(None);
    assert_eq!(header(&p).await, "Bearer tok-1");

    // Nothing listening: transient, naming the endpoint.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/token");
    let p = provider(smart_config(&url, &key, None), dir.path());
    let err = p.authorization().await.unwrap_err();
    assert!(
        err.is_transient() && err.to_string().contains(&url),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_with_basic_and_post() {
    let dir = tempfile::tempdir().unwrap();
    // Characters that RFC 6749 §2.3.1 makes us form-urlencode before Basic.
    let secret = "s3:cr/t+é %";
    std::fs::write(dir.path().join("secret"), format!("{secret}\n")).unwrap();
    chmod600(&dir.path().join("secret"));
    for (post, method) in [(false, "client_secret_basic"), (true, "client_secret_post")] {
        let server = TokenServer::start(
            Verifier::Secret {
                secret: secret.into(),
                post,
            },
            300,
        )
        .await;
        let raw: RawAuth = toml::from_str(&format!(
            "type = \"client_credentials\"\ntoken_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret_file = \"secret\"\nscope = \"claims.write\"\n\
             audience = \"https://api.example.com\"\nclient_auth = \"{method}\"",
            server.url
        ))
        .unwrap();
        let p = provider(raw, dir.path());
        for _ in 0..10 {
            assert_eq!(header(&p).await, "Bearer tok-1", "{method}");
        }
        assert_eq!(server.requests(), 1);
        assert!(server.rejections().is_empty(), "{:?}", server.rejections());
    }

    // A wrong secret: permanent, and the error never quotes it.
    let server = TokenServer::start(
        Verifier::Secret {
            secret: "the-right-one".into(),
            post: false,
        },
        300,
    )
    .await;
    let raw: RawAuth = toml::from_str(&format!(
        "type = \"client_credentials\"\ntoken_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
         client_secret = \"wrong-secret\"\nscope = \"claims.write\"\naudience = \"https://api.example.com\"",
        server.url
    ))
    .unwrap();
    let err = provider(raw, dir.path()).authorization().await.unwrap_err();
    assert!(!err.is_transient());
    assert!(
        err.to_string().contains("bad client credentials")
            && err
                .to_string()
                .contains("check client_id and the client secret"),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong-secret"));
}

#[tokio::test]
async fn static_bearer_and_basic_headers() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(
        toml::from_str("type = \"bearer\"\ntoken = \"abc.def\"").unwrap(),
        dir.path(),
    );
    let h = p.authorization().await.unwrap().unwrap();
    assert_eq!(h, "Bearer abc.def");
    assert!(h.is_sensitive());

    let p = provider(
        toml::from_str("type = \"basic\"\nusername = \"Aladdin\"\npassword = \"open sesame\"")
            .unwrap(),
        dir.path(),
    );
    // RFC 7617's example.
    assert_eq!(header(&p).await, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    p.invalidate(); // harmless for static credentials
    assert_eq!(p.refreshes(), 0);

    assert_eq!(TokenProvider::none().authorization().await.unwrap(), None);
}

// ------------------------------------------------- through the real gateway

/// The real daemon delivering to an `http` destination with SMART Backend
/// Services auth: the destination refuses requests without a token issued
/// by the endpoint above, tokens live 2 s, and a 6 s outage forces the
/// gateway to renew them (fresh assertions, never a reused jti) while it
/// probes; after the outage everything is delivered with a renewed token.
#[test]
fn gateway_delivers_with_smart_tokens_renewed_across_an_outage() {
    if !require_tool("openssl", "openssl") {
        return;
    }
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let (server, key) = rt.block_on(smart_server(dir.path(), false, 2));
    let peer = HttpPeer::start();
    peer.add_rule(Box::new(|r| {
        let ok = r
            .header("Authorization")
            .is_some_and(|h| h.starts_with("Bearer tok-"));
        (!ok).then(|| (401, "{}".to_string()))
    }));
    let routing = format!(
        "[[destination]]\nname = \"cloud\"\nkind = \"http\"\nurl = \"{}\"\nprobe_interval = \"500ms\"\ncircuit_failures = 1\nbackoff_initial = \"50ms\"\n\n\
         [destination.auth]\ntype = \"smart_backend\"\ntoken_url = \"{}\"\nclient_id = \"{CLIENT_ID}\"\n\
         private_key_file = {:?}\nkey_id = \"{KID}\"\nscope = \"{SCOPE}\"\n\n\
         [[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"cloud\"]\n",
        peer.url("/ingest"),
        server.url,
        key.display().to_string()
    );
    let g = Gateway::start_with(Options {
        routing: Some(routing),
        ..Default::default()
    });
    let send = |cid: &str| {
        let ack = send_one(&g.addr(), &adt(cid, "S1")).unwrap();
        assert_eq!(ack_code(&ack), "AA");
    };
    let delivered = |cid: &str| {
        peer.received()
            .iter()
            .any(|r| r.answered == 200 && r.text().contains(&format!("|{cid}|")))
    };
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        test_support::wait::until(what, Duration::from_secs(30), f, || {
            format!("token endpoint rejections: {:?}", server.rejections())
        })
    };
    send("S-1");
    wait("S-1", &|| delivered("S-1"));
    let first_token = peer
        .received()
        .iter()
        .find_map(|r| r.header("Authorization").map(str::to_string))
        .unwrap();

    peer.set_mode(Mode::Status(503, None));
    for i in 2..=5 {
        send(&format!("S-{i}"));
    }
    std::thread::sleep(Duration::from_secs(6));
    let issued_during = server.state.issued.load(Ordering::SeqCst);
    assert!(
        issued_during >= 3,
        "only {issued_during} token(s) issued over a 6 s outage with 2 s tokens"
    );
    peer.set_mode(Mode::Up);
    wait("the backlog", &|| {
        (2..=5).all(|i| delivered(&format!("S-{i}")))
    });
    let last = peer
        .received()
        .iter()
        .rev()
        .find(|r| r.answered == 200)
        .and_then(|r| r.header("Authorization").map(str::to_string))
        .unwrap();
    assert_ne!(last, first_token, "the token was not renewed");
    assert!(
        server.rejections().is_empty(),
        "the endpoint refused assertions: {:?}",
        server.rejections()
    );
    let s = g.status_json();
    assert!(
        s["destinations"][0]["token_refreshes"].as_u64().unwrap() >= 3,
        "{s}"
    );
    assert_eq!(s["destinations"][0]["dead_letters"], 0, "{s}");
    assert!(!g.log_text().contains("tok-"), "a token reached the log");
}
