//! Credentials for `fhir` and `http` destinations, one set per destination
//! (so each tenant has its own).
//!
//! Flows, selected by `[destination.auth] type = ...`:
//!
//! - `bearer`: a static token, sent as `Authorization: Bearer <token>`.
//! - `basic`: `Authorization: Basic base64(username:password)` (RFC 7617).
//! - `client_credentials`: OAuth 2.0 client credentials grant (RFC 6749
//!   §4.4) with a client secret, sent as HTTP Basic (default,
//!   `client_auth = "client_secret_basic"`) or in the form
//!   (`client_secret_post`); optional `scope` and `audience`.
//! - `smart_backend`: SMART Backend Services (HL7 SMART App Launch,
//!   `client-confidential-asymmetric`): the same grant, but the client
//!   authenticates with a JWT it signs with its private key (RS384 or
//!   ES384, `kid` in the header, `iss` = `sub` = client_id, `aud` = the
//!   token URL, `exp` within 5 minutes, a unique `jti`); see [`assertion`].
//!
//! Pieces:
//!
//! - [`config`]: the TOML form ([`RawAuth`]), [`check`] (pure) and
//!   [`AuthSpec::resolve`], which reads every secret and key up front (file
//!   modes checked, systemd `LoadCredential=` supported) and returns an
//!   [`AuthConfig`];
//! - [`assertion`]: pure construction and signing of the client assertion;
//! - [`provider`]: [`TokenProvider`], the header source a deliverer calls for
//!   every request: caching, renewal before expiry, single flight, 401
//!   invalidation, and errors classified transient vs permanent.
//!
//! How a deliverer uses it:
//!
//! ```text
//! let auth = provider.authorization().await?;          // AuthError::Transient → back off,
//! let resp = send(auth.clone()).await?;                 // AuthError::Permanent → dead-letter / alert
//! if resp.status() == 401 {
//!     if let Some(h) = &auth { provider.invalidate_if_current(h) }
//!     let resp = send(provider.authorization().await?).await?;   // retry once
//! }
//! ```

pub mod assertion;
pub mod config;
pub mod provider;

pub use crate::config::secrets::Secret;
pub use assertion::{JwtAlgorithm, SigningKey};
pub use config::{check, validate_with, AuthConfig, AuthSpec, ClientAuthMethod, RawAuth};
pub use provider::{AuthError, TokenProvider};
