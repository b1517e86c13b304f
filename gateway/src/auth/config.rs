//! `[destination.auth]`: the raw TOML form and its validation, in two steps
//! like the rest of the config: [`check`] is pure (every rule that needs no
//! file, giving an [`AuthSpec`]), then [`AuthSpec::resolve`] reads the
//! secrets and the key (file modes checked, the key parsed and test-signed),
//! so a bad credential stops `gateway check-config` and start-up with a
//! message naming the field, not the first delivery at 3 am.
//!
//! Secrets can be written inline (discouraged: the config file then holds a
//! secret), in a file (`*_file`, mode 0600 or stricter), or come from systemd
//! `LoadCredential=` (`credential:NAME`), by the rules of
//! `crate::config::secrets`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::assertion::{JwtAlgorithm, SigningKey};
use crate::config::secrets::{read_secret_file, FileRef, Secret, SecretSource};

/// How a `client_credentials` client authenticates at the token endpoint
/// (RFC 6749 §2.3.1): HTTP Basic (the default every server must support) or
/// `client_id` + `client_secret` in the form body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
}

/// `[destination.auth]` as written. `type` selects the variant.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "type", rename_all = "snake_case")]
pub enum RawAuth {
    /// A static bearer token: `token` or `token_file`.
    Bearer {
        token: Option<Secret>,
        token_file: Option<PathBuf>,
    },
    /// HTTP Basic: `username` and `password` or `password_file`.
    Basic {
        username: String,
        password: Option<Secret>,
        password_file: Option<PathBuf>,
    },
    /// OAuth 2.0 client credentials grant with a client secret.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: Option<Secret>,
        client_secret_file: Option<PathBuf>,
        scope: Option<String>,
        /// Sent as `audience=` (Auth0 and similar require it).
        audience: Option<String>,
        #[serde(default)]
        client_auth: ClientAuthMethod,
    },
    /// SMART Backend Services: client credentials with a signed JWT
    /// assertion (`private_key_jwt`).
    SmartBackend {
        token_url: String,
        client_id: String,
        private_key_file: PathBuf,
        key_id: String,
        /// RS384 or ES384; when omitted, taken from the key (RSA → RS384,
        /// EC P-384 → ES384).
        algorithm: Option<JwtAlgorithm>,
        /// v1 (`system/*.read`) or v2 (`system/*.rs`) syntax, sent as given.
        scope: String,
    },
    /// SSH public-key login (sftp destinations and pollers only; checked by
    /// `config::tables::sftp_endpoint`): the key file and the pinned host keys.
    SshKey {
        key_file: String,
        known_hosts: String,
    },
    /// SSH password login (sftp destinations and pollers only).
    Password {
        password: Option<Secret>,
        password_file: Option<PathBuf>,
        known_hosts: String,
    },
}

/// Validated auth settings for one destination.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    Bearer { token: Secret },
    Basic { username: String, password: Secret },
    ClientCredentials(ClientCredentials),
    SmartBackend(SmartBackend),
}

#[derive(Debug, Clone)]
pub struct ClientCredentials {
    pub token_url: reqwest::Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub client_auth: ClientAuthMethod,
}

#[derive(Debug, Clone)]
pub struct SmartBackend {
    pub token_url: reqwest::Url,
    /// The token URL exactly as configured: the assertion's `aud`.
    pub audience: String,
    pub client_id: String,
    pub key_id: String,
    pub scope: String,
    pub key: SigningKey,
}

impl AuthConfig {
    /// The flow's name for logs and status: bearer, basic, client_credentials, smart_backend.
    pub fn kind(&self) -> &'static str {
        match self {
            AuthConfig::Bearer { .. } => "bearer",
            AuthConfig::Basic { .. } => "basic",
            AuthConfig::ClientCredentials(_) => "client_credentials",
            AuthConfig::SmartBackend(_) => "smart_backend",
        }
    }
}

/// `[destination.auth]` checked from the text alone: what
/// [`AuthSpec::resolve`] will read.
#[derive(Debug, Clone)]
pub enum AuthSpec {
    Bearer {
        token: SecretSource,
    },
    Basic {
        username: String,
        password: SecretSource,
    },
    ClientCredentials {
        token_url: reqwest::Url,
        client_id: String,
        client_secret: SecretSource,
        scope: Option<String>,
        audience: Option<String>,
        client_auth: ClientAuthMethod,
    },
    SmartBackend {
        token_url: reqwest::Url,
        /// The token URL exactly as configured: the assertion's `aud`.
        audience: String,
        client_id: String,
        key_id: String,
        scope: String,
        algorithm: Option<JwtAlgorithm>,
        private_key: FileRef,
    },
}

/// [`check`] then [`AuthSpec::resolve`]: relative paths against `base_dir`
/// (the config file's directory), `credential:NAME` in `credentials_dir`.
pub fn validate_with(
    raw: RawAuth,
    base_dir: &Path,
    credentials_dir: Option<&Path>,
) -> Result<AuthConfig, String> {
    check(raw, base_dir)?.resolve(credentials_dir)
}

/// Every rule that needs no file. Pure.
pub fn check(raw: RawAuth, base_dir: &Path) -> Result<AuthSpec, String> {
    let file = |p: &Option<PathBuf>| p.as_ref().map(|p| p.to_string_lossy().into_owned());
    match raw {
        RawAuth::Bearer { token, token_file } => Ok(AuthSpec::Bearer {
            token: SecretSource::choose(
                "auth.token",
                token,
                "auth.token_file",
                file(&token_file).as_deref(),
                base_dir,
            )?,
        }),
        RawAuth::Basic {
            username,
            password,
            password_file,
        } => {
            check_username("auth.username", &username)?;
            let password = SecretSource::choose(
                "auth.password",
                password,
                "auth.password_file",
                file(&password_file).as_deref(),
                base_dir,
            )?;
            Ok(AuthSpec::Basic { username, password })
        }
        RawAuth::ClientCredentials {
            token_url,
            client_id,
            client_secret,
            client_secret_file,
            scope,
            audience,
            client_auth,
        } => {
            let token_url = check_token_url(&token_url)?;
            check_client_id(&client_id)?;
            let client_secret = SecretSource::choose(
                "auth.client_secret",
                client_secret,
                "auth.client_secret_file",
                file(&client_secret_file).as_deref(),
                base_dir,
            )?;
            if let Some(s) = &scope {
                check_scope(s)?;
            }
            if let Some(a) = &audience {
                if a.is_empty() || a.chars().any(char::is_control) {
                    return Err(
                        "auth.audience: must be non-empty, without control characters \
                                (or omit it)"
                            .into(),
                    );
                }
            }
            Ok(AuthSpec::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
                client_auth,
            })
        }
        RawAuth::SmartBackend {
            token_url: token_url_text,
            client_id,
            private_key_file,
            key_id,
            algorithm,
            scope,
        } => {
            let token_url = check_token_url(&token_url_text)?;
            check_client_id(&client_id)?;
            if key_id.is_empty() || key_id.chars().any(char::is_control) {
                return Err(
                    "auth.key_id: must be the `kid` of the public key registered with \
                            the server (its JWKS entry)"
                        .into(),
                );
            }
            check_scope(&scope)?;
            let private_key = FileRef::parse(
                "auth.private_key_file",
                &private_key_file.to_string_lossy(),
                base_dir,
            )?;
            Ok(AuthSpec::SmartBackend {
                token_url,
                audience: token_url_text,
                client_id,
                key_id,
                scope,
                algorithm,
                private_key,
            })
        }
        RawAuth::SshKey { .. } | RawAuth::Password { .. } => Err(
            "type \"ssh_key\" and type \"password\" are SSH logins, for sftp destinations and pollers; \
             use bearer, basic, client_credentials or smart_backend here"
                .into(),
        ),
    }
}

impl AuthSpec {
    /// Reads the secrets and the key (`credential:NAME` in
    /// `credentials_dir`) and checks what only their content can tell.
    pub fn resolve(self, credentials_dir: Option<&Path>) -> Result<AuthConfig, String> {
        match self {
            AuthSpec::Bearer { token } => {
                let token = token.read(credentials_dir)?;
                if token.expose().chars().any(|c| !c.is_ascii_graphic()) {
                    return Err(
                        "auth.token: a bearer token must be printable ASCII without spaces \
                                (check the file for stray characters)"
                            .into(),
                    );
                }
                Ok(AuthConfig::Bearer { token })
            }
            AuthSpec::Basic { username, password } => {
                let password = password.read(credentials_dir)?;
                check_password("auth.password", &password)?;
                Ok(AuthConfig::Basic { username, password })
            }
            AuthSpec::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                audience,
                client_auth,
            } => Ok(AuthConfig::ClientCredentials(ClientCredentials {
                token_url,
                client_id,
                client_secret: client_secret.read(credentials_dir)?,
                scope,
                audience,
                client_auth,
            })),
            AuthSpec::SmartBackend {
                token_url,
                audience,
                client_id,
                key_id,
                scope,
                algorithm,
                private_key,
            } => {
                let path = private_key.locate("auth.private_key_file", credentials_dir)?;
                let pem = read_secret_file(&path, "auth.private_key_file", credentials_dir)?;
                let key = SigningKey::from_pem(&pem, algorithm)
                    .map_err(|e| format!("auth.private_key_file: {}: {e}", path.display()))?;
                // Sign once now: a key ring cannot use fails here, not at the
                // first token request.
                super::assertion::client_assertion(
                    &key,
                    &client_id,
                    &audience,
                    &key_id,
                    0,
                    "validation",
                )
                .map_err(|e| {
                    format!(
                        "auth.private_key_file: {}: cannot sign: {e}",
                        path.display()
                    )
                })?;
                Ok(AuthConfig::SmartBackend(SmartBackend {
                    token_url,
                    audience,
                    client_id,
                    key_id,
                    scope,
                    key,
                }))
            }
        }
    }
}

/// An HTTP Basic user name (RFC 7617), `field` naming the setting.
pub fn check_username(field: &str, username: &str) -> Result<(), String> {
    if username.is_empty() || username.contains(':') || username.chars().any(char::is_control) {
        return Err(format!(
            "{field}: must be non-empty, without ':' or control characters (RFC 7617)"
        ));
    }
    Ok(())
}

/// An HTTP Basic password, `field` naming the setting.
pub fn check_password(field: &str, password: &Secret) -> Result<(), String> {
    if password.expose().chars().any(char::is_control) {
        return Err(format!("{field}: contains control characters"));
    }
    Ok(())
}

fn check_token_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text)
        .map_err(|e| format!("auth.token_url: '{text}' is not a URL: {e}"))?;
    let loopback = url.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
    });
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "auth.token_url: '{text}' must be https:// (credentials never travel in clear; \
                 http:// is accepted only for a loopback test server)"
            ))
        }
    }
    if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "auth.token_url: '{text}' must name a host and carry no user:password"
        ));
    }
    Ok(url)
}

fn check_client_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.chars().any(char::is_control) {
        return Err("auth.client_id: must be the non-empty client id the server registered".into());
    }
    Ok(())
}

/// RFC 6749 §3.3: scope-tokens of %x21 / %x23-5B / %x5D-7E separated by spaces.
fn check_scope(scope: &str) -> Result<(), String> {
    let ok = !scope.is_empty()
        && scope.split(' ').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "auth.scope: '{scope}' is not a space-separated list of scopes, e.g. \
             \"system/Patient.read system/Observation.read\" (v1) or \"system/*.rs\" (v2)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn raw(toml_text: &str) -> RawAuth {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn bearer_inline_file_and_credential() {
        let dir = tempfile::tempdir().unwrap();
        let creds = tempfile::tempdir().unwrap();
        write(dir.path(), "tok", "abc.def\n", 0o600);
        write(creds.path(), "fhir-token", "from-systemd\n", 0o400);

        let cfg =
            validate_with(raw("type = \"bearer\"\ntoken = \"t0k\""), dir.path(), None).unwrap();
        assert!(matches!(cfg, AuthConfig::Bearer { ref token } if token.expose() == "t0k"));

        let cfg = validate_with(
            raw("type = \"bearer\"\ntoken_file = \"tok\""),
            dir.path(),
            None,
        )
        .unwrap();
        assert!(matches!(cfg, AuthConfig::Bearer { ref token } if token.expose() == "abc.def"));

        for text in [
            "type = \"bearer\"\ntoken_file = \"credential:fhir-token\"",
            "type = \"bearer\"\ntoken = \"credential:fhir-token\"",
        ] {
            let cfg = validate_with(raw(text), dir.path(), Some(creds.path())).unwrap();
            assert!(
                matches!(cfg, AuthConfig::Bearer { ref token } if token.expose() == "from-systemd")
            );
        }
        let err = validate_with(
            raw("type = \"bearer\"\ntoken_file = \"credential:fhir-token\""),
            dir.path(),
            None,
        )
        .unwrap_err();
        assert!(
            err.contains("CREDENTIALS_DIRECTORY") && err.contains("LoadCredential=fhir-token"),
            "{err}"
        );
    }

    #[test]
    fn readable_secret_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "pw", "hunter2", 0o644);
        let err = validate_with(
            raw("type = \"basic\"\nusername = \"u\"\npassword_file = \"pw\""),
            dir.path(),
            None,
        )
        .unwrap_err();
        assert!(err.starts_with("auth.password_file:"), "{err}");
        assert!(err.contains(&format!("chmod 600 {}", p.display())), "{err}");
        assert!(err.contains("LoadCredential="), "{err}");
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn exactly_one_secret_source() {
        let dir = tempfile::tempdir().unwrap();
        let err = validate_with(raw("type = \"bearer\""), dir.path(), None).unwrap_err();
        assert!(
            err.contains("auth.token is missing") && err.contains("token_file"),
            "{err}"
        );
        let err = validate_with(
            raw("type = \"bearer\"\ntoken = \"a\"\ntoken_file = \"b\""),
            dir.path(),
            None,
        )
        .unwrap_err();
        assert!(err.contains("both set"), "{err}");
        let err =
            validate_with(raw("type = \"bearer\"\ntoken = \"a b\""), dir.path(), None).unwrap_err();
        assert!(err.contains("auth.token"), "{err}");
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        assert!(
            toml::from_str::<RawAuth>("type = \"bearer\"\ntoken = \"a\"\ntokn = \"b\"").is_err()
        );
        assert!(toml::from_str::<RawAuth>("type = \"kerberos\"").is_err());
        assert!(toml::from_str::<RawAuth>(
            "type = \"smart_backend\"\ntoken_url = \"https://x/t\"\nclient_id = \"c\"\n\
             private_key_file = \"k\"\nkey_id = \"k1\"\nscope = \"system/*.rs\"\nalgorithm = \"HS256\""
        )
        .is_err());
    }

    #[test]
    fn token_url_must_be_https_unless_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let text = |url: &str| {
            format!(
                "type = \"client_credentials\"\ntoken_url = \"{url}\"\nclient_id = \"c\"\nclient_secret = \"s\""
            )
        };
        for ok in [
            "https://auth.example.com/token",
            "http://127.0.0.1:8080/t",
            "http://localhost/t",
        ] {
            validate_with(raw(&text(ok)), dir.path(), None).unwrap();
        }
        for bad in [
            "http://auth.example.com/token",
            "ftp://x/y",
            "not a url",
            "https://u:p@x/t",
        ] {
            let err = validate_with(raw(&text(bad)), dir.path(), None).unwrap_err();
            assert!(err.starts_with("auth.token_url:"), "{err}");
        }
    }

    #[test]
    fn scopes_v1_and_v2_are_accepted_as_given() {
        for ok in [
            "system/*.read",
            "system/*.rs",
            "system/Patient.read system/Observation.cruds",
        ] {
            check_scope(ok).unwrap();
        }
        for bad in ["", "system/*.read  x", "a\"b", "a\\b"] {
            assert!(check_scope(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_do_not_show_in_debug() {
        let cfg = AuthConfig::Basic {
            username: "u".into(),
            password: Secret::new("hunter2"),
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let r = raw("type = \"bearer\"\ntoken = \"s3cr3t\"");
        assert!(!format!("{r:?}").contains("s3cr3t"));
    }
}
