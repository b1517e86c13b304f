//! The HTTPS client's TLS against a real OpenSSL peer (`openssl s_server
//! -www`): trust through a CA file, refusal of an unknown issuer, SPKI
//! pinning on top of (never instead of) WebPKI verification, a client
//! certificate for a server that requires one (`-Verify 1`), and the same
//! rustls config reused for a raw TLS stream (as MLLP over TLS does).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use gateway::net::https_client::{
    error_chain, reqwest_client, rustls_client_config, spki_sha256_pin, validate, RawHttpsClient,
};
use rustls::pki_types::pem::PemObject as _;

use crate::support::pki::{openssl, Pki, ServerKey};
use crate::support::{free_port, require_tool};

/// base64(SHA-256(DER SPKI)) of a PEM certificate, the way the README tells operators to compute it.
fn openssl_pin(dir: &Path, cert: &str) -> String {
    openssl(
        dir,
        &["x509", "-in", cert, "-pubkey", "-noout", "-out", "pin.pub"],
    );
    openssl(
        dir,
        &[
            "pkey", "-pubin", "-in", "pin.pub", "-outform", "der", "-out", "pin.der",
        ],
    );
    let digest = openssl(dir, &["dgst", "-sha256", "-binary", "pin.der"]);
    base64::engine::general_purpose::STANDARD.encode(digest)
}

struct SServer {
    child: Child,
    port: u16,
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s_server(dir: &Path) -> SServer {
    s_server_with(dir, &[])
}

/// `openssl s_server -www` with `extra` arguments (e.g. `-Verify 1`).
fn s_server_with(dir: &Path, extra: &[&str]) -> SServer {
    let port = free_port();
    let accept = format!("127.0.0.1:{port}");
    let mut args = vec![
        "s_server",
        "-accept",
        &accept,
        "-cert",
        "server.pem",
        "-key",
        "server.key",
        "-www",
        "-quiet",
    ];
    args.extend_from_slice(extra);
    let child = Command::new("openssl")
        .current_dir(dir)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let server = SServer { child, port };
    test_support::wait::until(
        &format!("openssl s_server to listen on {port}"),
        Duration::from_secs(5),
        || TcpStream::connect(("127.0.0.1", port)).is_ok(),
        String::new,
    );
    server
}

fn raw(ca: Option<&Path>, pins: &[&str]) -> RawHttpsClient {
    RawHttpsClient {
        ca_file: ca.map(PathBuf::from),
        spki_sha256_pins: pins.iter().map(|p| p.to_string()).collect(),
        connect_timeout_secs: Some(5),
        request_timeout_secs: Some(10),
        client_cert: None,
        client_key: None,
    }
}

async fn get(dir: &Path, raw: RawHttpsClient, url: &str) -> Result<String, String> {
    let cfg = validate(raw, dir)?;
    let client = reqwest_client(&cfg).map_err(|e| e.to_string())?;
    let resp = client.get(url).send().await.map_err(|e| error_chain(&e))?;
    assert_eq!(resp.status(), 200);
    resp.text().await.map_err(|e| error_chain(&e))
}

#[tokio::test]
async fn ca_file_trust_unknown_issuer_and_spki_pins() {
    if !require_tool("openssl", "openssl") {
        return;
    }
    // The server's key is RSA: the pin test compares our SPKI walk of an
    // RSA key with OpenSSL's.
    let pki = Pki::new(ServerKey::Rsa);
    let d = pki.dir();
    let server = s_server(d);
    let url = format!("https://127.0.0.1:{}/", server.port);
    let by_name = format!("https://localhost:{}/", server.port);

    // Our SPKI extraction agrees with OpenSSL's.
    let pin = openssl_pin(d, "server.pem");
    let der = rustls::pki_types::CertificateDer::from_pem_file(d.join("server.pem")).unwrap();
    assert_eq!(spki_sha256_pin(&der).unwrap(), pin);
    let ca_pin = openssl_pin(d, "ca.pem");
    assert_ne!(ca_pin, pin);

    // Trusted through the CA file (relative to the config's directory), by IP and by name.
    let body = get(d, raw(Some(Path::new("ca.pem")), &[]), &url)
        .await
        .unwrap();
    assert!(body.contains("s_server"), "{body}");
    get(d, raw(Some(Path::new("ca.pem")), &[]), &by_name)
        .await
        .unwrap();

    // A CA that did not sign the server: a clear refusal that says what to do.
    let err = get(d, raw(Some(Path::new("evil.pem")), &[]), &url)
        .await
        .unwrap_err();
    assert!(
        {
            eprintln!("untrusted: {err}");
            err.contains("UnknownIssuer") && err.contains("ca_file")
        },
        "{err}"
    );

    // The right pin: works (also in curl's sha256// notation).
    get(d, raw(Some(Path::new("ca.pem")), &[&ca_pin, &pin]), &url)
        .await
        .unwrap();
    let curl_style = format!("sha256//{pin}");
    get(d, raw(Some(Path::new("ca.pem")), &[&curl_style]), &url)
        .await
        .unwrap();

    // A pin that does not match the server's key: refused, naming the pins.
    let err = get(d, raw(Some(Path::new("ca.pem")), &[&ca_pin]), &url)
        .await
        .unwrap_err();
    eprintln!("pin mismatch: {err}");
    assert!(err.contains("SPKI pin mismatch"), "{err}");
    assert!(err.contains(&ca_pin), "names the configured pin: {err}");
    assert!(err.contains(&pin), "names the server's key: {err}");

    // A pin never replaces chain verification.
    let err = get(d, raw(Some(Path::new("evil.pem")), &[&pin]), &url)
        .await
        .unwrap_err();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn the_rustls_config_serves_raw_tls_streams_too() {
    if !require_tool("openssl", "openssl") {
        return;
    }
    // The server's key is RSA: the pin test compares our SPKI walk of an
    // RSA key with OpenSSL's.
    let pki = Pki::new(ServerKey::Rsa);
    let d = pki.dir();
    let server = s_server(d);
    let pin = openssl_pin(d, "server.pem");
    let cfg = validate(raw(Some(Path::new("ca.pem")), &[&pin]), d).unwrap();
    let tls = Arc::new(rustls_client_config(&cfg).unwrap());
    let connector = tokio_rustls::TlsConnector::from(tls);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
}

#[tokio::test]
async fn a_client_certificate_for_a_server_that_requires_one() {
    if !require_tool("openssl", "openssl") {
        return;
    }
    let pki = Pki::new(ServerKey::Ec);
    let d = pki.dir();
    // -Verify 1 -verify_return_error: a client certificate signed by ca.pem is required.
    let server = s_server_with(
        d,
        &["-Verify", "1", "-verify_return_error", "-CAfile", "ca.pem"],
    );
    let url = format!("https://127.0.0.1:{}/", server.port);
    let with = |cert: Option<&str>, key: Option<&str>| RawHttpsClient {
        client_cert: cert.map(PathBuf::from),
        client_key: key.map(PathBuf::from),
        ..raw(Some(Path::new("ca.pem")), &[])
    };

    // Without a certificate: refused by the server.
    let err = get(d, with(None, None), &url).await.unwrap_err();
    assert!(
        err.contains("CertificateRequired") && err.contains("tls.client_cert"),
        "{err}"
    );
    // With the clinic's client certificate (paths relative to the config): accepted.
    let body = get(d, with(Some("client.pem"), Some("client.key")), &url)
        .await
        .unwrap();
    assert!(body.contains("s_server"), "{body}");
    // A certificate from a CA the server does not trust: refused.
    get(d, with(Some("stranger.pem"), Some("stranger.key")), &url)
        .await
        .unwrap_err();

    // Config errors name the field: a key that is not the certificate's,
    // an unreadable file, one without the other.
    let err = validate(with(Some("client.pem"), Some("stranger.key")), d).unwrap_err();
    assert!(
        err.contains("tls.client_cert / tls.client_key") && err.contains("do not form a pair"),
        "{err}"
    );
    let err = validate(with(Some("nope.pem"), Some("client.key")), d).unwrap_err();
    assert!(
        err.contains("tls.client_cert / tls.client_key") && err.contains("nope.pem"),
        "{err}"
    );
    let err = validate(with(Some("client.pem"), None), d).unwrap_err();
    assert!(
        err.contains("tls.client_cert needs tls.client_key"),
        "{err}"
    );
}
