//! SMART Backend Services client assertion (pure: the caller passes the
//! time and the `jti`).
//!
//! The assertion is a JWT (RFC 7523, SMART App Launch "client-confidential-
//! asymmetric") signed with the client's private key:
//!
//! - header: `alg` RS384 or ES384, `kid` = the registered key's id, `typ` = `JWT`;
//! - claims: `iss` = `sub` = client_id, `aud` = the token endpoint URL,
//!   `iat` = now, `exp` = now + 4 minutes (the spec caps it at 5 minutes; the
//!   minute of slack absorbs clock skew), `jti` = a fresh random id per
//!   request (servers reject a reused one).
//!
//! It is POSTed as a form: `grant_type=client_credentials`, `scope`,
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`,
//! `client_assertion=<JWT>`.

use std::fmt;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use serde::{Deserialize, Serialize};

use crate::net::der;

/// Lifetime of one assertion, in seconds (SMART: no more than five minutes).
pub const ASSERTION_LIFETIME_SECS: u64 = 240;

pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The two algorithms SMART Backend Services requires servers to support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum JwtAlgorithm {
    RS384,
    ES384,
}

impl JwtAlgorithm {
    fn jwt(self) -> Algorithm {
        match self {
            JwtAlgorithm::RS384 => Algorithm::RS384,
            JwtAlgorithm::ES384 => Algorithm::ES384,
        }
    }
}

/// A private key ready to sign assertions.
#[derive(Clone)]
pub struct SigningKey {
    algorithm: JwtAlgorithm,
    key: EncodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({:?}, <redacted>)", self.algorithm)
    }
}

const TO_PKCS8: &str = "openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8";

impl SigningKey {
    /// Parses a PEM private key: RSA as PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8
    /// (`PRIVATE KEY`), EC P-384 as SEC1 (`EC PRIVATE KEY`) or PKCS#8.
    /// `algorithm` must fit the key; when `None` it is taken from the key.
    pub fn from_pem(pem: &[u8], algorithm: Option<JwtAlgorithm>) -> Result<SigningKey, String> {
        if pem.windows(9).any(|w| w == b"ENCRYPTED") {
            return Err(format!(
                "the key is encrypted; store it unencrypted with mode 600 or pass it with \
                 systemd LoadCredential= (decrypt: {TO_PKCS8})"
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
            format!("no PEM private key found ({e}); expected PKCS#8, PKCS#1 (RSA) or SEC1 (EC)")
        })?;
        let (family, der_key) = match &key {
            PrivateKeyDer::Pkcs1(k) => (Family::Rsa, Der::Pkcs1(k.secret_pkcs1_der().to_vec())),
            PrivateKeyDer::Sec1(k) => {
                let sec1 = k.secret_sec1_der();
                let curve = der::sec1_curve(sec1)
                    .map_err(|e| format!("unreadable EC key: {e}"))?
                    .ok_or_else(|| {
                        format!("the EC key does not name its curve; convert it: {TO_PKCS8}")
                    })?;
                (
                    Family::Ec(curve.to_vec()),
                    Der::Pkcs8(der::sec1_to_pkcs8(sec1, curve)),
                )
            }
            PrivateKeyDer::Pkcs8(k) => {
                let p8 = der::parse_pkcs8(k.secret_pkcs8_der())
                    .map_err(|e| format!("unreadable PKCS#8 key: {e}"))?;
                if p8.algorithm == der::OID_RSA_ENCRYPTION {
                    (Family::Rsa, Der::Pkcs1(p8.private_key.to_vec()))
                } else if p8.algorithm == der::OID_EC_PUBLIC_KEY {
                    let curve = p8.parameters.unwrap_or_default().to_vec();
                    (Family::Ec(curve), Der::Pkcs8(k.secret_pkcs8_der().to_vec()))
                } else {
                    return Err("the key is neither RSA nor EC (SMART needs RS384 or ES384)".into());
                }
            }
            _ => return Err("unsupported private key format".into()),
        };
        let algorithm = match (&family, algorithm) {
            (Family::Rsa, None | Some(JwtAlgorithm::RS384)) => JwtAlgorithm::RS384,
            (Family::Ec(curve), None | Some(JwtAlgorithm::ES384)) => {
                if curve != der::CURVE_P384 {
                    let name = if curve == der::CURVE_P256 {
                        "P-256"
                    } else {
                        "not P-384"
                    };
                    return Err(format!(
                        "the EC key's curve is {name}; ES384 needs a P-384 key \
                         (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384)"
                    ));
                }
                JwtAlgorithm::ES384
            }
            (Family::Rsa, Some(a)) | (Family::Ec(_), Some(a)) => {
                let kind = if matches!(family, Family::Rsa) {
                    "an RSA"
                } else {
                    "an EC"
                };
                return Err(format!(
                    "algorithm {a:?} does not fit {kind} key: use RS384 for RSA, ES384 for EC P-384"
                ));
            }
        };
        let key = match der_key {
            Der::Pkcs1(d) => EncodingKey::from_rsa_der(&d),
            Der::Pkcs8(d) => EncodingKey::from_ec_der(&d),
        };
        Ok(SigningKey { algorithm, key })
    }

    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }
}

enum Family {
    Rsa,
    /// The named curve's whole OID TLV.
    Ec(Vec<u8>),
}

enum Der {
    Pkcs1(Vec<u8>),
    Pkcs8(Vec<u8>),
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub jti: String,
}

/// The claims for one assertion at `now` (seconds since the Unix epoch).
pub fn claims(client_id: &str, token_url: &str, now: u64, jti: &str) -> Claims {
    Claims {
        iss: client_id.to_string(),
        sub: client_id.to_string(),
        aud: token_url.to_string(),
        exp: now + ASSERTION_LIFETIME_SECS,
        iat: now,
        jti: jti.to_string(),
    }
}

/// A signed client assertion. The result is a credential: never log it.
pub fn client_assertion(
    key: &SigningKey,
    client_id: &str,
    token_url: &str,
    key_id: &str,
    now: u64,
    jti: &str,
) -> Result<String, String> {
    let mut header = Header::new(key.algorithm.jwt());
    header.kid = Some(key_id.to_string());
    header.typ = Some("JWT".to_string());
    jsonwebtoken::encode(&header, &claims(client_id, token_url, now, jti), &key.key)
        .map_err(|e| format!("signing the client assertion failed: {e}"))
}

/// The token request form for SMART Backend Services.
pub fn token_request_form(scope: &str, assertion: &str) -> [(&'static str, String); 4] {
    [
        ("grant_type", "client_credentials".to_string()),
        ("scope", scope.to_string()),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE.to_string()),
        ("client_assertion", assertion.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_follow_smart() {
        let c = claims("cid", "https://ehr/token", 1_000, "j1");
        assert_eq!(c.iss, "cid");
        assert_eq!(c.sub, "cid");
        assert_eq!(c.aud, "https://ehr/token");
        assert!(c.exp > c.iat && c.exp - c.iat <= 300);
        assert_eq!(c.jti, "j1");
    }

    #[test]
    fn garbage_and_encrypted_keys_are_refused_clearly() {
        assert!(SigningKey::from_pem(b"hello", None)
            .unwrap_err()
            .contains("no PEM private key"));
        let enc =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(SigningKey::from_pem(enc, None)
            .unwrap_err()
            .contains("encrypted"));
    }
}
