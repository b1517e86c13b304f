//! Files and secrets the config names, and the one `credential:NAME` rule.
//!
//! A file (a TLS key, a SMART private key, a `*_file` secret) is written as
//! a path (relative to the config file) or as `credential:NAME`: a file
//! systemd passes with `LoadCredential=NAME:/path`, found at
//! `$CREDENTIALS_DIRECTORY/NAME`. An inline secret may be `credential:NAME`
//! too. Deciding what a value refers to is pure ([`FileRef::parse`],
//! [`SecretSource::choose`]); following it reads the disk
//! ([`FileRef::locate`] with the credentials directory, [`SecretSource::read`],
//! [`read_secret_file`]) and is done by `resolve`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::paths;

pub const CREDENTIAL_PREFIX: &str = "credential:";

/// Largest secret or key file read.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// A secret string: never printed by `Debug`, never `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

impl Secret {
    pub fn new(s: impl Into<Arc<str>>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself: only for building a request, never for a log line.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The process's `$CREDENTIALS_DIRECTORY` (set by systemd when the unit has
/// `LoadCredential=`): the only place it is read.
pub fn credentials_directory() -> Option<PathBuf> {
    std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from)
}

/// A file named by the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileRef {
    /// An absolute path (resolved against the config file's directory).
    Path(PathBuf),
    /// `credential:NAME`: `$CREDENTIALS_DIRECTORY/NAME`.
    Credential(String),
}

impl FileRef {
    /// What `text` (a value of `field`) refers to. Pure: a credential name
    /// is checked, a path made absolute against `base`.
    pub fn parse(field: &str, text: &str, base: &Path) -> Result<FileRef, String> {
        match text.strip_prefix(CREDENTIAL_PREFIX) {
            Some(name) => {
                if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                    return Err(format!(
                        "{field}: '{text}' is not a valid credential name \
                         (the NAME of LoadCredential=NAME:/path, without '/')"
                    ));
                }
                Ok(FileRef::Credential(name.to_string()))
            }
            None => Ok(FileRef::Path(paths::absolute(base, text))),
        }
    }

    /// Where the file is, given the credentials directory (`None`: the
    /// unit passes no credentials).
    pub fn locate(&self, field: &str, credentials: Option<&Path>) -> Result<PathBuf, String> {
        match self {
            FileRef::Path(p) => Ok(p.clone()),
            FileRef::Credential(name) => match credentials {
                Some(dir) => Ok(dir.join(name)),
                None => Err(format!(
                    "{field}: uses '{CREDENTIAL_PREFIX}{name}' but $CREDENTIALS_DIRECTORY is not set: \
                     add LoadCredential={name}:/path/to/file to gateway.service, or give a file path"
                )),
            },
        }
    }
}

/// Where a secret comes from: written inline, or in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Inline(Secret),
    /// `field` is the setting that named the file (for messages).
    File {
        field: String,
        file: FileRef,
    },
}

impl SecretSource {
    /// Exactly one of `field` (inline, which may itself be
    /// `credential:NAME`) and `file_field` (a path or `credential:NAME`).
    /// Pure.
    pub fn choose(
        field: &str,
        inline: Option<Secret>,
        file_field: &str,
        file: Option<&str>,
        base: &Path,
    ) -> Result<SecretSource, String> {
        match (inline, file) {
            (Some(_), Some(_)) => Err(format!("{field} and {file_field} are both set: keep one")),
            (None, None) => Err(format!(
                "{field} is missing: set {file_field} = \"/path\" (mode 600) or \
                 {file_field} = \"{CREDENTIAL_PREFIX}NAME\" with systemd LoadCredential="
            )),
            (Some(s), None) if s.expose().starts_with(CREDENTIAL_PREFIX) => {
                Ok(SecretSource::File {
                    field: field.to_string(),
                    file: FileRef::parse(field, s.expose(), base)?,
                })
            }
            (Some(s), None) if s.expose().is_empty() => Err(format!("{field} is empty")),
            (Some(s), None) => Ok(SecretSource::Inline(s)),
            (None, Some(p)) => Ok(SecretSource::File {
                field: file_field.to_string(),
                file: FileRef::parse(file_field, p, base)?,
            }),
        }
    }

    /// The secret: inline as written, or the file's text without its
    /// trailing newline (files written by `echo` end with one).
    pub fn read(&self, credentials: Option<&Path>) -> Result<Secret, String> {
        let (field, file) = match self {
            SecretSource::Inline(s) => return Ok(s.clone()),
            SecretSource::File { field, file } => (field, file),
        };
        let path = file.locate(field, credentials)?;
        let bytes = read_secret_file(&path, field, credentials)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("{field}: {} is not UTF-8 text", path.display()))?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            return Err(format!("{field}: {} is empty", path.display()));
        }
        Ok(Secret::new(text))
    }
}

/// Mode bits a secret file must not have: none for group or others, except
/// group read inside the credentials directory. systemd (257 and later)
/// makes the per-service copies of `LoadCredential=` files mode 0440 with the
/// service's own group, in a directory only the service can enter.
fn forbidden_mode_bits(path: &Path, credentials: Option<&Path>) -> u32 {
    match credentials {
        Some(dir) if path.starts_with(dir) => 0o037,
        _ => 0o077,
    }
}

/// Reads a file holding a secret, refusing one that group or others may
/// access (a key readable by every local account is a leaked key); a file in
/// `credentials` (`$CREDENTIALS_DIRECTORY`) may be group-readable.
pub fn read_secret_file(
    path: &Path,
    field: &str,
    credentials: Option<&Path>,
) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("{field}: cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{field}: {} is not a regular file", path.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & forbidden_mode_bits(path, credentials) != 0 {
            return Err(format!(
                "{field}: {} is accessible by group or others (mode {mode:03o}): run \
                 `chmod 600 {}` (owned by the gateway's user), or pass it with systemd \
                 LoadCredential=NAME:{} and write \"{CREDENTIAL_PREFIX}NAME\"",
                path.display(),
                path.display(),
                path.display()
            ));
        }
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(format!(
            "{field}: {} is {} bytes, more than a secret or key file should be ({MAX_SECRET_FILE}): wrong file?",
            path.display(),
            meta.len()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{field}: cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const BASE: &str = "/etc/gw";

    fn choose(inline: Option<&str>, file: Option<&str>) -> Result<SecretSource, String> {
        SecretSource::choose(
            "x.password",
            inline.map(Secret::new),
            "x.password_file",
            file,
            Path::new(BASE),
        )
    }

    #[test]
    fn a_reference_is_decided_without_touching_the_disk() {
        assert_eq!(
            FileRef::parse("f", "keys/a.pem", Path::new(BASE)),
            Ok(FileRef::Path("/etc/gw/keys/a.pem".into()))
        );
        assert_eq!(
            FileRef::parse("f", "credential:tls.key", Path::new(BASE)),
            Ok(FileRef::Credential("tls.key".into()))
        );
        for bad in [
            "credential:",
            "credential:a/b",
            "credential:..",
            "credential:.",
        ] {
            let e = FileRef::parse("f", bad, Path::new(BASE)).unwrap_err();
            assert!(
                e.starts_with("f: ") && e.contains("LoadCredential=NAME"),
                "{e}"
            );
        }
        assert!(matches!(
            choose(Some("s3"), None),
            Ok(SecretSource::Inline(_))
        ));
        assert_eq!(
            choose(Some("credential:pw"), None),
            Ok(SecretSource::File {
                field: "x.password".into(),
                file: FileRef::Credential("pw".into())
            })
        );
        assert!(choose(Some("a"), Some("b"))
            .unwrap_err()
            .contains("both set"));
        assert!(choose(None, None)
            .unwrap_err()
            .contains("x.password is missing"));
        assert!(choose(Some(""), None).unwrap_err().contains("is empty"));
    }

    #[test]
    fn a_credential_needs_the_directory_systemd_sets() {
        let creds = tempfile::tempdir().unwrap();
        let f = FileRef::Credential("pw".into());
        assert_eq!(
            f.locate("f", Some(creds.path())),
            Ok(creds.path().join("pw"))
        );
        let e = f.locate("f", None).unwrap_err();
        assert!(
            e.contains("$CREDENTIALS_DIRECTORY is not set") && e.contains("LoadCredential=pw:"),
            "{e}"
        );
        let p = creds.path().join("pw");
        std::fs::write(&p, "hunter2\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        let s = choose(None, Some("credential:pw")).unwrap();
        assert_eq!(s.read(Some(creds.path())).unwrap().expose(), "hunter2");
        // Readable by others: refused even in the credentials directory.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = s.read(Some(creds.path())).unwrap_err();
        assert!(
            e.starts_with("x.password_file: ") && e.contains("chmod 600"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
    }

    /// systemd 257 hands credentials over as mode 0440 files (group: the
    /// service's own): accepted in the credentials directory, and only there.
    #[test]
    fn group_read_is_accepted_only_inside_the_credentials_directory() {
        let creds = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let inside = creds.path().join("status-password");
        let outside = elsewhere.path().join("status-password");
        for p in [&inside, &outside] {
            std::fs::write(p, "pw\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o440)).unwrap();
        }
        let dir = Some(creds.path());
        assert_eq!(read_secret_file(&inside, "f", dir).unwrap(), b"pw\n");
        let e = read_secret_file(&outside, "f", dir).unwrap_err();
        assert!(e.contains("mode 440") && e.contains("chmod 600"), "{e}");
        let e = read_secret_file(&inside, "f", None).unwrap_err();
        assert!(e.contains("mode 440"), "{e}");
        // Others, or group write, are refused even there.
        for mode in [0o444, 0o460, 0o404] {
            std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read_secret_file(&inside, "f", dir).unwrap_err();
            assert!(e.contains(&format!("mode {mode:03o}")), "{mode:o}: {e}");
        }
        // Through a credential reference, as the daemon reads it.
        std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o440)).unwrap();
        let s = choose(None, Some("credential:status-password")).unwrap();
        assert_eq!(s.read(dir).unwrap().expose(), "pw");
    }
}
