//! The per-box secret that keys the journal's patient index: a message's
//! patient is indexed as HMAC-SHA256(key, lp(MRN) ‖ lp(authority)),
//! truncated to 16 bytes (`journal::trace_index`), so no MRN is stored in
//! clear and a stolen journal cannot be searched by MRN without this key.
//!
//! The key is 32 random bytes in `<data_dir>/patient-index.key` (mode 0600,
//! created on first start, synced). It is never logged or shown, and no
//! tag ever leaves the daemon: `gateway messages search --patient MRN`
//! sends the MRN over the admin socket and the daemon computes the tag.
//! Losing the file only makes searches by patient miss the messages
//! indexed before; deleting it is how to make old tags unlinkable.

use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use hl7::HeaderSummary;
use journal::PatientRef;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "patient-index.key";
const KEY_LEN: usize = 32;

pub struct PatientKey {
    key: hmac::Key,
}

impl std::fmt::Debug for PatientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PatientKey(secret)")
    }
}

fn io_err(action: &'static str, path: &Path, source: io::Error) -> crate::Error {
    crate::Error::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

impl PatientKey {
    /// The box's key, created in `data_dir` if there is none yet.
    pub fn load_or_create(data_dir: &Path) -> Result<PatientKey, crate::Error> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::File::open(&path) {
            Ok(f) => Self::read(f, &path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Self::create(data_dir, &path),
            Err(e) => Err(io_err("cannot read the patient index key", &path, e)),
        }
    }

    fn read(f: std::fs::File, path: &Path) -> Result<PatientKey, crate::Error> {
        let mut bytes = Vec::with_capacity(KEY_LEN);
        f.take(KEY_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_err("cannot read the patient index key", path, e))?;
        if bytes.len() != KEY_LEN {
            let why = format!(
                "it holds {} bytes, not {KEY_LEN}: restore it from a backup, or delete it to start a new key (searches by patient then miss the messages received before)",
                bytes.len()
            );
            return Err(io_err(
                "unusable patient index key",
                path,
                io::Error::new(io::ErrorKind::InvalidData, why),
            ));
        }
        Ok(PatientKey::from_bytes(&bytes))
    }

    fn create(data_dir: &Path, path: &PathBuf) -> Result<PatientKey, crate::Error> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new().fill(&mut bytes).map_err(|_| {
            io_err(
                "cannot create the patient index key",
                path,
                io::Error::other("the system random source failed"),
            )
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io_err("cannot create the patient index key", path, e))?;
        f.write_all(&bytes)
            .and_then(|()| f.sync_all())
            .and_then(|()| journal::durable_fs::sync_dir(data_dir))
            .map_err(|e| io_err("cannot write the patient index key", path, e))?;
        log::info!(target: "gateway::messages", "created the patient index key {}", path.display());
        Ok(PatientKey::from_bytes(&bytes))
    }

    /// A key from its bytes (tests, benches).
    pub fn from_bytes(bytes: &[u8]) -> PatientKey {
        PatientKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// The tag of MRN `id` of `authority` (both trimmed); `None` for an
    /// empty MRN.
    pub fn tag(&self, id: &str, authority: &str) -> Option<[u8; 16]> {
        let id = id.trim();
        if id.is_empty() {
            return None;
        }
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [id, authority.trim()] {
            ctx.update(&(part.len() as u32).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let mut tag = [0u8; 16];
        tag.copy_from_slice(&ctx.sign().as_ref()[..16]);
        Some(tag)
    }

    /// The patient an HL7 header names (its first PID-3), as the journal
    /// indexes it.
    pub fn patient_of(&self, header: &HeaderSummary) -> Option<PatientRef> {
        let p = header.patient_id.as_ref()?;
        Some(PatientRef {
            tag: self.tag(&p.id, &p.assigning_authority)?,
            authority: p.assigning_authority.trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let a = PatientKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = PatientKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.tag("123", "ECW"), b.tag("123", "ECW"));
        assert_ne!(a.tag("123", "ECW"), a.tag("123", "OTHER"));
        assert_ne!(a.tag("12", "3ECW"), a.tag("123", "ECW"));
        assert_eq!(a.tag(" 123 ", "ECW"), a.tag("123", "ECW"));
        assert_eq!(a.tag("  ", "ECW"), None);
        // Another box (another key) gets another tag for the same MRN.
        let other = tempfile::tempdir().unwrap();
        let c = PatientKey::load_or_create(other.path()).unwrap();
        assert_ne!(a.tag("123", "ECW"), c.tag("123", "ECW"));
        assert_eq!(format!("{a:?}"), "PatientKey(secret)");
    }

    #[test]
    fn a_truncated_key_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let e = PatientKey::load_or_create(dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains(KEY_FILE) && e.contains("5 bytes"), "{e}");
    }
}
