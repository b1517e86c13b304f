//! `[[poller]]` tables: HTTPS pollers that fetch results from the cloud
//! (a FHIR search by `_lastUpdated`) and journal them as ORU^R01 messages,
//! so they flow through routes like anything an MLLP listener receives.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::duration::parse_duration;
use super::model::PollerConfig;
use super::validate::{resolve, ConfigError, Ctx};
use crate::auth::RawAuth;
use crate::net::https_client::{self, RawHttpsClient};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPoller {
    pub name: Spanned<String>,
    kind: Spanned<String>,
    url: Spanned<String>,
    interval: Option<Spanned<String>>,
    max_pages: Option<Spanned<u64>>,
    sending_application: Option<String>,
    sending_facility: Option<String>,
    receiving_application: Option<String>,
    receiving_facility: Option<String>,
    auth: Option<Spanned<RawAuth>>,
    tls: Option<RawPollerTls>,
    timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPollerTls {
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    spki_sha256_pins: Vec<String>,
}

impl Ctx<'_> {
    pub(super) fn poller(&self, p: RawPoller, base: &Path) -> Result<PollerConfig, ConfigError> {
        let name = p.name.get_ref().clone();
        if p.kind.get_ref() != "fhir" {
            return Err(self.err(
                &p.kind,
                format!("poller '{name}': kind \"{}\" is not supported; use kind = \"fhir\" (a FHIR search returning DiagnosticReports)", p.kind.get_ref()),
            ));
        }
        let url = match reqwest::Url::parse(p.url.get_ref()) {
            Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => u,
            _ => {
                return Err(self.err(
                    &p.url,
                    format!("poller '{name}': url must be an http(s) FHIR search URL, e.g. https://cloud.example.com/fhir/DiagnosticReport?_include=DiagnosticReport:result"),
                ))
            }
        };
        let dur = |v: &Option<Spanned<String>>,
                   field: &str,
                   default: Duration|
         -> Result<Duration, ConfigError> {
            match v {
                None => Ok(default),
                Some(s) => {
                    let d = parse_duration(s.get_ref())
                        .map_err(|e| self.err(s, format!("poller '{name}': {field}: {e}")))?;
                    if d < Duration::from_millis(100) {
                        return Err(self.err(
                            s,
                            format!("poller '{name}': {field} must be at least 100ms"),
                        ));
                    }
                    Ok(d)
                }
            }
        };
        let interval = dur(&p.interval, "interval", Duration::from_secs(60))?;
        let timeout = dur(&p.timeout, "timeout", Duration::from_secs(30))?;
        let max_pages = match &p.max_pages {
            None => 20,
            Some(m) if *m.get_ref() == 0 || *m.get_ref() > 10_000 => {
                return Err(self.err(m, format!("poller '{name}': max_pages must be 1..=10000")))
            }
            Some(m) => *m.get_ref() as usize,
        };
        let auth = match &p.auth {
            None => None,
            Some(a) => Some(
                crate::auth::validate(a.get_ref().clone(), base)
                    .map_err(|e| self.err(a, format!("poller '{name}': auth: {e}")))?,
            ),
        };
        let mut tls = match &p.tls {
            None => https_client::HttpsClientConfig::default(),
            Some(t) => {
                let raw = RawHttpsClient {
                    ca_file: t.ca_file.as_ref().map(|c| resolve(base, c.get_ref())),
                    spki_sha256_pins: t.spki_sha256_pins.clone(),
                    connect_timeout_secs: None,
                    request_timeout_secs: None,
                };
                https_client::validate(raw, base)
                    .map_err(|e| self.err(&p.url, format!("poller '{name}': {e}")))?
            }
        };
        tls.request_timeout = timeout;
        if url.scheme() == "http" && auth.is_some() {
            let loopback = url.host_str().is_some_and(|h| {
                h == "localhost"
                    || h.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            });
            if !loopback {
                return Err(self.err(
                    &p.url,
                    format!("poller '{name}': credentials over plain http would travel unencrypted: use https://"),
                ));
            }
        }
        Ok(PollerConfig {
            name,
            url: url.to_string(),
            interval,
            max_pages,
            sending_application: p.sending_application.unwrap_or_else(|| "CLOUD".into()),
            sending_facility: p.sending_facility.unwrap_or_default(),
            receiving_application: p.receiving_application.unwrap_or_else(|| "ECW".into()),
            receiving_facility: p.receiving_facility.unwrap_or_default(),
            auth,
            tls,
        })
    }
}
