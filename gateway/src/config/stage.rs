//! The two steps a configuration goes through, as a type parameter of
//! [`Config`](super::Config): [`Checked`] by `validate` (pure: the text
//! alone), then [`Resolved`] by `resolve` (the files it names found and
//! read). Each associated type is one thing `resolve` does, so this trait is
//! the list of what loading a config reads from the disk.

use std::fmt::Debug;
use std::path::PathBuf;
use std::sync::Arc;

use super::error::At;
use super::secrets::{FileRef, Secret, SecretSource};
use crate::auth::{AuthConfig, AuthSpec};
use crate::net::https_client::HttpsClientConfig;
use crate::net::known_hosts::KnownHosts;
use crate::net::ssh_client::ClientKey;

pub trait Stage: Debug + Clone + 'static {
    /// A TLS certificate, key or CA file (a path or `credential:NAME`):
    /// `resolve` finds it and checks that it is a file.
    type File: Debug + Clone;
    /// Outbound HTTPS settings: `resolve` loads the extra CA file.
    type Client: Debug + Clone;
    /// Credentials of an outbound client: `resolve` reads the secrets and
    /// keys, checking file modes.
    type Auth: Debug + Clone;
    /// A secret (the status page password): `resolve` reads it.
    type Secret: Debug + Clone;
    /// A directory of code maps: `resolve` loads every map once.
    type CodeMaps: Debug + Clone;
    /// The box id: when not configured, `resolve` reads the host name.
    type BoxId: Debug + Clone;
    /// An SSH private key file: `resolve` reads it (mode checked) and parses it.
    type SshKey: Debug + Clone;
    /// A known_hosts file of pinned SSH host keys: `resolve` reads and parses it.
    type KnownHosts: Debug + Clone;
}

/// Validated from the text alone: file references not yet followed.
#[derive(Debug, Clone, Copy)]
pub enum Checked {}

/// Ready to run on: files found, secrets read, code maps loaded.
#[derive(Debug, Clone, Copy)]
pub enum Resolved {}

impl Stage for Checked {
    type File = At<FileRef>;
    type Client = At<HttpsClientConfig>;
    type Auth = At<AuthSpec>;
    type Secret = At<SecretSource>;
    type CodeMaps = At<PathBuf>;
    type BoxId = Option<String>;
    type SshKey = At<FileRef>;
    type KnownHosts = At<FileRef>;
}

impl Stage for Resolved {
    type File = PathBuf;
    type Client = HttpsClientConfig;
    type Auth = AuthConfig;
    type Secret = Secret;
    type CodeMaps = PathBuf;
    type BoxId = String;
    type SshKey = ClientKey;
    type KnownHosts = Arc<KnownHosts>;
}
