//! Certificates and keys made by the real `openssl` CLI. Tests that use
//! them first check `require_tool("openssl", "openssl")`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `openssl args` in `dir`; it must succeed. Returns its stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    test_support::run::succeeds(Command::new("openssl").current_dir(dir).args(args)).stdout
}

/// The server certificate's key type.
#[derive(Clone, Copy)]
pub enum ServerKey {
    /// EC P-256, like every other key here.
    Ec,
    /// RSA-2048 (what the SPKI pin tests compare with OpenSSL's).
    Rsa,
}

/// A test PKI in a temporary directory, valid for 30 days: `ca.pem`
/// (+ `ca.key`) and a stranger CA `evil.pem`; `server.pem`/`server.key`
/// for 127.0.0.1 and localhost (serverAuth) from the CA; client
/// certificates (clientAuth) `client.pem` from the CA and `stranger.pem`
/// from the stranger CA. CA keys are EC P-256.
pub struct Pki(tempfile::TempDir);

impl Pki {
    pub fn new(server_key: ServerKey) -> Pki {
        let pki = Pki(tempfile::tempdir().unwrap());
        let dir = pki.dir();
        for (ca, subject) in [("ca", "/CN=Test Clinic CA"), ("evil", "/CN=Stranger CA")] {
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-nodes",
                    "-keyout",
                    &format!("{ca}.key"),
                    "-out",
                    &format!("{ca}.pem"),
                    "-days",
                    "30",
                    "-subj",
                    subject,
                ],
            );
        }
        let server_ext = "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n";
        let client_ext = "extendedKeyUsage=clientAuth\n";
        for (name, ca, ext) in [
            ("server", "ca", server_ext),
            ("client", "ca", client_ext),
            ("stranger", "evil", client_ext),
        ] {
            std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
            let key: &[&str] = match (name, server_key) {
                ("server", ServerKey::Rsa) => &["-newkey", "rsa:2048"],
                _ => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            };
            let (keyout, csr) = (format!("{name}.key"), format!("{name}.csr"));
            let mut req = vec!["req"];
            req.extend_from_slice(key);
            req.extend_from_slice(&["-nodes", "-keyout", &keyout, "-out", &csr]);
            let subject = format!("/CN={name}");
            req.extend_from_slice(&["-subj", &subject]);
            openssl(dir, &req);
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    &format!("{ca}.pem"),
                    "-CAkey",
                    &format!("{ca}.key"),
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "30",
                    "-extfile",
                    &format!("{name}.ext"),
                ],
            );
        }
        pki
    }

    pub fn dir(&self) -> &Path {
        self.0.path()
    }

    /// A file of the PKI (`"ca.pem"`, `"client.key"`, ...).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// `file(name)` as a string, for a config or a command line.
    pub fn path_str(&self, name: &str) -> String {
        self.file(name).display().to_string()
    }
}

/// A self-signed RSA certificate for localhost valid for `days`, written
/// to `dir/cert.pem` and `dir/key.pem`; returns (cert, key).
pub fn self_signed(dir: &Path, days: u32) -> (PathBuf, PathBuf) {
    let days = days.to_string();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            &days,
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
    );
    (dir.join("cert.pem"), dir.join("key.pem"))
}
