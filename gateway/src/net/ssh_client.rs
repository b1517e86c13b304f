//! The SSH/SFTP client for `sftp` destinations and pollers: russh (ring
//! crypto) for the SSH transport, russh-sftp for the SFTP subsystem.
//!
//! Trust: the server's host key must be pinned for its `[host]:port` in the
//! configured known_hosts file ([`KnownHosts`]); an unknown, changed or
//! revoked key ends the handshake before any credential is sent. There is
//! no trust on first use and no fallback to `~/.ssh`.
//!
//! Errors are sorted by what the caller should do ([`SshError`]): network
//! trouble is retried, a refused host key or rejected credentials hold the
//! destination (an operator must act), SFTP status errors say which path.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKey};
use russh_sftp::client::SftpSession;

use super::known_hosts::{HostKeyVerdict, KnownHosts};
use crate::config::{SftpEndpoint, SshLogin};

/// A client private key (OpenSSH or PEM format, unencrypted). `Debug`
/// never shows it.
#[derive(Clone)]
pub struct ClientKey(Arc<PrivateKey>);

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientKey({})", self.0.algorithm())
    }
}

impl ClientKey {
    /// Parse the key file's text; `what` names the setting in errors.
    pub fn parse(text: &str, what: &str) -> Result<ClientKey, String> {
        match russh::keys::decode_secret_key(text, None) {
            Ok(k) => Ok(ClientKey(Arc::new(k))),
            Err(russh::keys::Error::KeyIsEncrypted) => Err(format!(
                "{what}: the key is protected by a passphrase: store it unencrypted \
                 (`ssh-keygen -p -N '' -f FILE`) and protect the file instead (mode 600 or LoadCredential=)"
            )),
            Err(e) => Err(format!(
                "{what}: not a private key this gateway can read ({e}); give an OpenSSH \
                 (`ssh-keygen -t ed25519`) or PEM private key"
            )),
        }
    }

    /// The public half, as `ssh-ed25519 AAAA...` (for the docs and tests).
    pub fn public_openssh(&self) -> String {
        self.0.public_key().to_openssh().unwrap_or_default()
    }
}

/// Everything needed to open an SFTP session with one server.
#[derive(Debug, Clone)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub credential: SshLogin,
    pub known_hosts: Arc<KnownHosts>,
    /// TCP connect, handshake and authentication together.
    pub connect_timeout: Duration,
    /// Each SFTP request's answer.
    pub timeout: Duration,
}

impl SshTarget {
    pub fn new(e: &SftpEndpoint, connect_timeout: Duration, timeout: Duration) -> SshTarget {
        SshTarget {
            host: e.host.clone(),
            port: e.port,
            user: e.user.clone(),
            credential: e.login.clone(),
            known_hosts: e.known_hosts.clone(),
            connect_timeout,
            timeout,
        }
    }

    /// `user@host:port`, for logs and status (no secrets).
    pub fn label(&self) -> String {
        format!("{}@{}:{}", self.user, self.host, self.port)
    }
}

/// Why an SFTP session could not be opened or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SshError {
    /// Network: refused, unreachable, timed out, connection dropped.
    #[error("{0}")]
    Network(String),
    /// The server's host key is not the pinned one: never connected.
    #[error("{0}")]
    HostKey(String),
    /// The server rejected the credentials.
    #[error("{0}")]
    Auth(String),
    /// An SFTP request failed (`path: reason`).
    #[error("{0}")]
    Sftp(String),
}

impl SshError {
    /// An operator must act (host key, credentials): hold the destination.
    pub fn needs_operator(&self) -> bool {
        matches!(self, SshError::HostKey(_) | SshError::Auth(_))
    }
}

/// The russh handler: judges the host key against the pins, and remembers
/// the verdict so a refusal can be explained.
struct PinnedHost {
    host: String,
    port: u16,
    known_hosts: Arc<KnownHosts>,
    refusal: Arc<Mutex<Option<String>>>,
}

impl client::Handler for PinnedHost {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKey) -> Result<bool, Self::Error> {
        let fp = key.fingerprint(Default::default());
        let why = match self.known_hosts.verify(&self.host, self.port, key) {
            HostKeyVerdict::Trusted { .. } => return Ok(true),
            HostKeyVerdict::Revoked { line } => {
                format!("host key {fp} of {}:{} is revoked (known_hosts line {line})", self.host, self.port)
            }
            HostKeyVerdict::Mismatch { pinned } => format!(
                "host key {fp} of {}:{} is NOT the pinned key ({pinned} pinned): refusing to connect \
                 (a changed server or a man in the middle; if the provider announced a new key, \
                 verify its fingerprint and update the known_hosts file)",
                self.host, self.port
            ),
            HostKeyVerdict::Unknown => format!(
                "host key {fp} of {}:{} is not in the known_hosts file: refusing to connect \
                 (add it with `ssh-keyscan -p {} {}` after checking the fingerprint with the provider)",
                self.host, self.port, self.port, self.host
            ),
        };
        if let Ok(mut g) = self.refusal.lock() {
            *g = Some(why);
        }
        Ok(false)
    }
}

/// An open SFTP session (and the SSH connection under it).
pub struct SftpConnection {
    handle: client::Handle<PinnedHost>,
    pub sftp: SftpSession,
}

impl SftpConnection {
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Close politely (best effort).
    pub async fn close(&self) {
        let _ = self.sftp.close().await;
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

fn network(t: &SshTarget, e: impl fmt::Display) -> SshError {
    SshError::Network(format!("sftp {}: {e}", t.label()))
}

/// Connect, verify the host key, log in and start the SFTP subsystem,
/// all within `connect_timeout`.
pub async fn open_sftp(t: &SshTarget) -> Result<SftpConnection, SshError> {
    match tokio::time::timeout(t.connect_timeout, open_inner(t)).await {
        Ok(r) => r,
        Err(_) => Err(network(
            t,
            format!(
                "no SSH session within {} s (connect, handshake, login)",
                t.connect_timeout.as_secs_f32()
            ),
        )),
    }
}

async fn open_inner(t: &SshTarget) -> Result<SftpConnection, SshError> {
    let config = Arc::new(client::Config {
        // Keeps NAT state alive and notices a dead peer between messages.
        keepalive_interval: Some(Duration::from_secs(15)),
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    });
    let refusal = Arc::new(Mutex::new(None));
    let handler = PinnedHost {
        host: t.host.clone(),
        port: t.port,
        known_hosts: t.known_hosts.clone(),
        refusal: refusal.clone(),
    };
    let connected = client::connect(config, (t.host.as_str(), t.port), handler).await;
    let mut handle = match connected {
        Ok(h) => h,
        Err(e) => {
            if let Some(why) = refusal.lock().ok().and_then(|mut g| g.take()) {
                return Err(SshError::HostKey(format!("sftp {}: {why}", t.label())));
            }
            return Err(network(t, describe(&e)));
        }
    };
    let result = match &t.credential {
        SshLogin::Password(p) => handle
            .authenticate_password(t.user.clone(), p.expose().to_string())
            .await
            .map_err(|e| network(t, describe(&e)))?,
        SshLogin::Key(k) => {
            let hash = handle
                .best_supported_rsa_hash()
                .await
                .map_err(|e| network(t, describe(&e)))?
                .flatten();
            handle
                .authenticate_publickey(
                    t.user.clone(),
                    PrivateKeyWithHashAlg::new(k.0.clone(), hash),
                )
                .await
                .map_err(|e| network(t, describe(&e)))?
        }
    };
    if !result.success() {
        let how = match &t.credential {
            SshLogin::Password(_) => "password",
            SshLogin::Key(_) => "key",
        };
        return Err(SshError::Auth(format!(
            "sftp {}: the server rejected the {how} for user '{}': check [auth] (clearinghouse passwords expire; \
             a key must be registered with the provider)",
            t.label(),
            t.user
        )));
    }
    let channel = handle.channel_open_session().await.map_err(|e| {
        network(
            t,
            format!("cannot open a session channel: {}", describe(&e)),
        )
    })?;
    channel.request_subsystem(true, "sftp").await.map_err(|e| {
        network(
            t,
            format!("the server refused the sftp subsystem: {}", describe(&e)),
        )
    })?;
    let sftp = SftpSession::new(channel.into_stream())
        .await
        .map_err(|e| network(t, format!("SFTP start failed: {e}")))?;
    sftp.set_timeout(t.timeout.as_secs().max(1));
    Ok(SftpConnection { handle, sftp })
}

fn describe(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => format!("cannot connect: {io}"),
        russh::Error::Disconnect => "the server closed the connection".into(),
        russh::Error::ConnectionTimeout | russh::Error::KeepaliveTimeout => "timed out".into(),
        other => format!("SSH error: {other}"),
    }
}

/// One SFTP session kept open between uses and shared by concurrent
/// requests (SFTP multiplexes them), reopened when it is found closed or
/// after a failure.
pub struct SessionCache {
    target: SshTarget,
    current: tokio::sync::Mutex<Option<Arc<SftpConnection>>>,
}

impl SessionCache {
    pub fn new(target: SshTarget) -> SessionCache {
        SessionCache {
            target,
            current: tokio::sync::Mutex::new(None),
        }
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    /// The open session, or a new one (one connect at a time).
    pub async fn get(&self) -> Result<Arc<SftpConnection>, SshError> {
        let mut g = self.current.lock().await;
        if let Some(c) = g.as_ref() {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        *g = None;
        let c = Arc::new(open_sftp(&self.target).await?);
        *g = Some(c.clone());
        Ok(c)
    }

    /// Forget the session after a failure on it: the next use reconnects.
    pub async fn discard(&self, failed: &Arc<SftpConnection>) {
        let mut g = self.current.lock().await;
        if g.as_ref().is_some_and(|c| Arc::ptr_eq(c, failed)) {
            *g = None;
        }
        drop(g);
        failed.close().await;
    }
}

/// Does this SFTP error say "no such file"?
pub fn is_not_found(e: &russh_sftp::client::error::Error) -> bool {
    matches!(e, russh_sftp::client::error::Error::Status(s)
        if s.status_code == russh_sftp::protocol::StatusCode::NoSuchFile)
}

/// An SFTP request failure as an [`SshError`], naming what was done to which path.
pub fn sftp_error(t: &SshTarget, what: &str, path: &str, e: impl fmt::Display) -> SshError {
    SshError::Sftp(format!("sftp {}: {what} {path}: {e}", t.label()))
}

/// Join a remote directory and a file name ("" = the login directory).
pub fn remote_path(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}
