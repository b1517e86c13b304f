//! SHA-256 helpers (aws-lc-rs, the library tough already links).

use aws_lc_rs::digest::{Context, SHA256};

pub type Sha256 = [u8; 32];

pub fn sha256(data: &[u8]) -> Sha256 {
    let d = aws_lc_rs::digest::digest(&SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Incremental hashing, for streaming a whole slot.
pub struct Hasher(Context);

impl Default for Hasher {
    fn default() -> Self {
        Hasher(Context::new(&SHA256))
    }
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(self) -> Sha256 {
        let d = self.0.finish();
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }
}

pub fn to_hex(h: &Sha256) -> String {
    hex::encode(h)
}

/// Parses 64 hex digits.
pub fn from_hex(s: &str) -> Option<Sha256> {
    let v = hex::decode(s).ok()?;
    v.try_into().ok()
}

/// Cryptographically random bytes.
pub fn random_bytes<const N: usize>() -> crate::Result<[u8; N]> {
    use aws_lc_rs::rand::SecureRandom;
    let mut out = [0u8; N];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| crate::Error::Random)?;
    Ok(out)
}
