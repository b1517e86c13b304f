//! Pinned SSH host keys, in OpenSSH's `known_hosts` format (pure: the
//! file's text in, the keys for one host out). An SFTP peer is trusted only
//! if the key it presents is listed here for its host and port: there is no
//! trust on first use.
//!
//! Read: one entry per line, `hosts keytype base64 [comment]`, fields
//! separated by spaces or tabs; `#` comments and blank lines skipped; host
//! patterns comma-separated, `[host]:port` for a port other than 22, `*` and
//! `?` wildcards, `!pattern` negation, and hashed names
//! (`|1|salt|hmac-sha1`, as `ssh-keygen -H` writes them). `@revoked` lines
//! revoke a key for the hosts they name; `@cert-authority` lines are
//! ignored (host certificates are not supported: the key itself is pinned).

use base64::Engine;
use russh::keys::PublicKey;

use crate::route::Glob;

/// One usable line of a known_hosts file.
#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    hosts: String,
    revoked: bool,
    key: PublicKey,
}

/// A parsed known_hosts file.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// What the file says about a key a server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyVerdict {
    /// Listed for this host (at that line).
    Trusted { line: usize },
    /// Listed under `@revoked`.
    Revoked { line: usize },
    /// The host has pinned keys, none of them this one.
    Mismatch { pinned: usize },
    /// The file has no key for this host at all.
    Unknown,
}

impl KnownHosts {
    /// Parse the file's text; `what` names it in errors ("auth.known_hosts
    /// /etc/gw/availity.known_hosts"). A line that cannot be read is an
    /// error naming its number: a typo must not silently unpin a host.
    pub fn parse(text: &str, what: &str) -> Result<KnownHosts, String> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut fields = l.split_ascii_whitespace();
            let mut first = fields.next().unwrap_or_default();
            let mut revoked = false;
            if let Some(marker) = first.strip_prefix('@') {
                match marker {
                    "revoked" => revoked = true,
                    "cert-authority" => continue,
                    other => {
                        return Err(format!(
                            "{what}: line {line}: unknown marker '@{other}' (expected @revoked or @cert-authority)"
                        ))
                    }
                }
                first = fields.next().unwrap_or_default();
            }
            let (Some(_keytype), Some(b64)) = (fields.next(), fields.next()) else {
                return Err(format!(
                    "{what}: line {line}: expected 'HOSTS KEYTYPE BASE64-KEY' (as ssh-keyscan prints it)"
                ));
            };
            let key = russh::keys::parse_public_key_base64(b64).map_err(|e| {
                format!("{what}: line {line}: the key cannot be read ({e}); copy the line from ssh-keyscan again")
            })?;
            entries.push(Entry {
                line,
                hosts: first.to_string(),
                revoked,
                key,
            });
        }
        Ok(KnownHosts { entries })
    }

    /// How many keys are pinned for `host:port` (revoked ones not counted).
    pub fn pinned_for(&self, host: &str, port: u16) -> usize {
        let name = host_port(host, port);
        self.entries
            .iter()
            .filter(|e| !e.revoked && hosts_match(&e.hosts, &name))
            .count()
    }

    /// Judge the key `host:port` presented.
    pub fn verify(&self, host: &str, port: u16, key: &PublicKey) -> HostKeyVerdict {
        let name = host_port(host, port);
        let mine: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| hosts_match(&e.hosts, &name))
            .collect();
        if let Some(r) = mine.iter().find(|e| e.revoked && same_key(&e.key, key)) {
            return HostKeyVerdict::Revoked { line: r.line };
        }
        if let Some(t) = mine.iter().find(|e| !e.revoked && same_key(&e.key, key)) {
            return HostKeyVerdict::Trusted { line: t.line };
        }
        let pinned = mine.iter().filter(|e| !e.revoked).count();
        if pinned == 0 {
            HostKeyVerdict::Unknown
        } else {
            HostKeyVerdict::Mismatch { pinned }
        }
    }
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

/// The name known_hosts uses for a host: `host`, or `[host]:port` off port 22.
fn host_port(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// A comma-separated pattern list against `name`: a negated match wins.
fn hosts_match(patterns: &str, name: &str) -> bool {
    let mut hit = false;
    for p in patterns.split(',') {
        if let Some(neg) = p.strip_prefix('!') {
            if pattern_match(neg, name) {
                return false;
            }
        } else if pattern_match(p, name) {
            hit = true;
        }
    }
    hit
}

fn pattern_match(pattern: &str, name: &str) -> bool {
    if let Some(hashed) = pattern.strip_prefix("|1|") {
        return hashed_match(hashed, name);
    }
    Glob::new(&pattern.to_ascii_lowercase()).matches(&name.to_ascii_lowercase())
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
fn hashed_match(hashed: &str, name: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((salt, mac)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(mac)) = (b64.decode(salt), b64.decode(mac)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    ring::hmac::verify(&key, name.as_bytes(), &mac).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two ed25519 public keys (test material only).
    const K1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIGR9V7YrGYiVxaZY1fnlrX4a45HjZAOcf+JrT5HFfDNw";
    const K2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAINKd5XWdYI071rgjY/v7Kv6LuorCe+NyIP3pOuXictmV";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    #[test]
    fn a_listed_key_is_trusted_and_another_is_a_mismatch() {
        let text = format!("# pinned\n\n[127.0.0.1]:2222\tssh-ed25519 {K1} host\n");
        let kh = KnownHosts::parse(&text, "kh").unwrap();
        assert_eq!(
            kh.verify("127.0.0.1", 2222, &key(K1)),
            HostKeyVerdict::Trusted { line: 3 }
        );
        assert_eq!(
            kh.verify("127.0.0.1", 2222, &key(K2)),
            HostKeyVerdict::Mismatch { pinned: 1 }
        );
        // The port is part of the name: no key for port 22.
        assert_eq!(
            kh.verify("127.0.0.1", 22, &key(K1)),
            HostKeyVerdict::Unknown
        );
        assert_eq!(kh.pinned_for("127.0.0.1", 2222), 1);
    }

    #[test]
    fn patterns_negation_hashes_and_revocation() {
        // `ssh-keygen -H` style entry for "sftp.example.com", salt = 20 zero bytes.
        let salt = [0u8; 20];
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
        let tag = ring::hmac::sign(&k, b"sftp.example.com");
        let b64 = base64::engine::general_purpose::STANDARD;
        let hashed = format!("|1|{}|{}", b64.encode(salt), b64.encode(tag.as_ref()));
        let text = format!(
            "{hashed} ssh-ed25519 {K1}\n*.example.org,!bad.example.org ssh-ed25519 {K2}\n@revoked * ssh-ed25519 {K2}\n"
        );
        let kh = KnownHosts::parse(&text, "kh").unwrap();
        assert_eq!(
            kh.verify("sftp.example.com", 22, &key(K1)),
            HostKeyVerdict::Trusted { line: 1 }
        );
        assert_eq!(
            kh.verify("bad.example.org", 22, &key(K1)),
            HostKeyVerdict::Unknown
        );
        assert_eq!(
            kh.verify("a.example.org", 22, &key(K2)),
            HostKeyVerdict::Revoked { line: 3 }
        );
    }

    #[test]
    fn a_bad_line_is_an_error_naming_it() {
        let e = KnownHosts::parse("host ssh-ed25519\n", "kh").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = KnownHosts::parse(&format!("ok ssh-ed25519 {K1}\nh ssh-ed25519 nope!\n"), "kh")
            .unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }
}
