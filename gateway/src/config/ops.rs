//! `[health]`, `[alerts]`, `[fleet]` and `[status_page]`: the operations
//! tables. Raw TOML forms and their validation; the validated forms are in
//! `model.rs`. Secrets (webhook / fleet auth, the status page password) use
//! the same `*_file` and `credential:NAME` rules as destination auth.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::model::*;
use super::validate::{resolve, Ctx};
use super::ConfigError;
use crate::auth::{AuthConfig, RawAuth, Secret};
use crate::net::https_client::{self, RawHttpsClient};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    bind: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    evaluate_every: Option<Spanned<String>>,
    pending_max: Option<Spanned<u64>>,
    oldest_pending_max: Option<Spanned<String>>,
    destination_down_max: Option<Spanned<String>>,
    dead_letters: Option<bool>,
    disk_warn_percent: Option<Spanned<u8>>,
    cert_warn_days: Option<Spanned<Vec<u32>>>,
    restart_alert_for: Option<Spanned<String>>,
    webhook_url: Option<Spanned<String>>,
    reminder: Option<Spanned<String>>,
    webhook_auth: Option<Spanned<RawAuth>>,
    webhook_tls: Option<Spanned<RawHttpsClient>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    url: Spanned<String>,
    interval: Option<Spanned<String>>,
    box_id: Option<Spanned<String>>,
    auth: Option<Spanned<RawAuth>>,
    tls: Option<Spanned<RawHttpsClient>>,
    updater_report: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatusPage {
    bind: Spanned<String>,
    username: Option<String>,
    password: Option<Secret>,
    password_file: Option<std::path::PathBuf>,
    tls: Option<Spanned<RawStatusTls>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStatusTls {
    cert: Spanned<String>,
    key: Spanned<String>,
    client_ca: Option<Spanned<String>>,
}

/// The four operations tables as written.
pub(super) struct RawOps {
    pub health: Option<Spanned<RawHealth>>,
    pub alerts: Option<Spanned<RawAlerts>>,
    pub fleet: Option<Spanned<RawFleet>>,
    pub status_page: Option<Spanned<RawStatusPage>>,
}

/// The validated operations tables.
pub(super) struct Ops {
    pub health: Option<HealthConfig>,
    pub alerts: AlertsConfig,
    pub fleet: Option<FleetConfig>,
    pub status_page: Option<StatusPageConfig>,
}

fn is_loopback_host(url: &reqwest::Url) -> bool {
    url.host_str().is_some_and(|h| {
        h.eq_ignore_ascii_case("localhost")
            || h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
    })
}

impl Ctx<'_> {
    pub(super) fn ops(
        &self,
        raw: RawOps,
        storage: &StorageConfig,
        base: &Path,
    ) -> Result<Ops, ConfigError> {
        let health = match raw.health {
            None => None,
            Some(h) => {
                let bind = match &h.get_ref().bind {
                    None => DEFAULT_HEALTH_BIND.parse().map_err(|_| {
                        self.err(&h, "health: internal default bind is invalid".into())
                    })?,
                    Some(b) => self.bind("health.bind", b)?,
                };
                Some(HealthConfig { bind })
            }
        };
        let alerts = match raw.alerts {
            None => AlertsConfig::defaults(storage),
            Some(a) => self.alerts(a.into_inner(), storage, base)?,
        };
        let fleet = match raw.fleet {
            None => None,
            Some(f) => Some(self.fleet(f.into_inner(), base)?),
        };
        let status_page = match raw.status_page {
            None => None,
            Some(s) => Some(self.status_page(s, base)?),
        };
        if let (Some(h), Some(s)) = (&health, &status_page) {
            if h.bind == s.bind {
                return Err(self.err_at(
                    0,
                    format!(
                        "health.bind and status_page.bind are both {}: give each its own port",
                        h.bind
                    ),
                ));
            }
        }
        Ok(Ops {
            health,
            alerts,
            fleet,
            status_page,
        })
    }

    fn bind(&self, field: &str, b: &Spanned<String>) -> Result<SocketAddr, ConfigError> {
        b.get_ref().parse().map_err(|_| {
            self.err(
                b,
                format!(
                    "{field} '{}' is not HOST:PORT with an IP address (e.g. 127.0.0.1:9090)",
                    b.get_ref()
                ),
            )
        })
    }

    fn duration(&self, field: &str, v: &Spanned<String>) -> Result<Duration, ConfigError> {
        let d =
            super::parse_duration(v.get_ref()).map_err(|e| self.err(v, format!("{field}: {e}")))?;
        if d.is_zero() {
            return Err(self.err(v, format!("{field} must be above zero")));
        }
        Ok(d)
    }

    /// An outbound URL for alerts/heartbeats: https, or http on loopback (tests).
    fn ops_url(&self, field: &str, v: &Spanned<String>) -> Result<String, ConfigError> {
        let url = reqwest::Url::parse(v.get_ref())
            .map_err(|e| self.err(v, format!("{field}: '{}' is not a URL: {e}", v.get_ref())))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_host(&url) => {}
            _ => {
                return Err(self.err(
                    v,
                    format!(
                        "{field}: '{}' must be https:// (http:// is accepted only for a loopback test server)",
                        v.get_ref()
                    ),
                ))
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.err(
                v,
                format!("{field}: put credentials in the auth table, not in the URL"),
            ));
        }
        Ok(url.to_string())
    }

    fn client(
        &self,
        field: &str,
        auth: Option<Spanned<RawAuth>>,
        tls: Option<Spanned<RawHttpsClient>>,
        base: &Path,
    ) -> Result<(Option<AuthConfig>, https_client::HttpsClientConfig), ConfigError> {
        let auth = match auth {
            None => None,
            Some(a) => Some(
                crate::auth::validate(a.get_ref().clone(), base)
                    .map_err(|e| self.err(&a, format!("{field} auth: {e}")))?,
            ),
        };
        let tls = match tls {
            None => https_client::HttpsClientConfig::default(),
            Some(t) => {
                let mut raw = t.get_ref().clone();
                raw.ca_file = raw.ca_file.map(|p| resolve(base, &p.to_string_lossy()));
                https_client::validate(raw, base)
                    .map_err(|e| self.err(&t, format!("{field} tls: {e}")))?
            }
        };
        Ok((auth, tls))
    }

    fn alerts(
        &self,
        a: RawAlerts,
        storage: &StorageConfig,
        base: &Path,
    ) -> Result<AlertsConfig, ConfigError> {
        let mut c = AlertsConfig::defaults(storage);
        if let Some(v) = &a.evaluate_every {
            c.evaluate_every = self.duration("alerts.evaluate_every", v)?;
        }
        if let Some(v) = &a.pending_max {
            if *v.get_ref() == 0 {
                return Err(self.err(v, "alerts.pending_max must be at least 1".into()));
            }
            c.pending_max = *v.get_ref();
        }
        if let Some(v) = &a.oldest_pending_max {
            c.oldest_pending_max = self.duration("alerts.oldest_pending_max", v)?;
        }
        if let Some(v) = &a.destination_down_max {
            // Zero is allowed here: alert as soon as a destination is down.
            c.destination_down_max = super::parse_duration(v.get_ref())
                .map_err(|e| self.err(v, format!("alerts.destination_down_max: {e}")))?;
        }
        if let Some(v) = a.dead_letters {
            c.dead_letters = v;
        }
        if let Some(v) = &a.disk_warn_percent {
            let p = *v.get_ref();
            if p == 0 || p > 100 {
                return Err(self.err(
                    v,
                    format!("alerts.disk_warn_percent must be 1..=100 (got {p})"),
                ));
            }
            c.disk_warn_percent = p;
        }
        if let Some(v) = &a.cert_warn_days {
            let mut days = v.get_ref().clone();
            if days.is_empty() || days.iter().any(|d| *d == 0 || *d > 3650) {
                return Err(self.err(
                    v,
                    "alerts.cert_warn_days must list days between 1 and 3650, e.g. [90, 60, 30, 7, 1]"
                        .into(),
                ));
            }
            days.sort_unstable_by(|a, b| b.cmp(a));
            days.dedup();
            c.cert_warn_days = days;
        }
        if let Some(v) = &a.restart_alert_for {
            c.restart_alert_for = self.duration("alerts.restart_alert_for", v)?;
        }
        if let Some(v) = &a.reminder {
            c.reminder = self.duration("alerts.reminder", v)?;
        }
        match &a.webhook_url {
            None => {
                if let Some(x) = a.webhook_auth.as_ref() {
                    return Err(self.err(x, "alerts.webhook_auth needs alerts.webhook_url".into()));
                }
            }
            Some(u) => {
                let url = self.ops_url("alerts.webhook_url", u)?;
                let (auth, tls) =
                    self.client("alerts.webhook", a.webhook_auth, a.webhook_tls, base)?;
                c.webhook = Some(WebhookConfig { url, auth, tls });
            }
        }
        Ok(c)
    }

    fn fleet(&self, f: RawFleet, base: &Path) -> Result<FleetConfig, ConfigError> {
        let url = self.ops_url("fleet.url", &f.url)?;
        let interval = match &f.interval {
            None => Duration::from_secs(300),
            Some(v) => self.duration("fleet.interval", v)?,
        };
        let box_id = match &f.box_id {
            Some(b) => {
                let id = b.get_ref().trim();
                if id.is_empty()
                    || id.len() > 128
                    || !id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
                {
                    return Err(self.err(
                        b,
                        "fleet.box_id must be 1-128 letters, digits, '-', '_', '.' or ':'".into(),
                    ));
                }
                id.to_string()
            }
            None => default_box_id(),
        };
        let updater_report = f
            .updater_report
            .as_ref()
            .map(|p| super::validate::resolve(base, p.get_ref()));
        let (auth, tls) = self.client("fleet", f.auth, f.tls, base)?;
        Ok(FleetConfig {
            updater_report,
            url,
            interval,
            box_id,
            auth,
            tls,
        })
    }

    fn status_page(
        &self,
        s: Spanned<RawStatusPage>,
        base: &Path,
    ) -> Result<StatusPageConfig, ConfigError> {
        let span = s.span().start;
        let s = s.into_inner();
        let bind = self.bind("status_page.bind", &s.bind)?;
        let tls = match &s.tls {
            None => None,
            Some(t) => {
                let t = t.get_ref();
                let file = |v: &Spanned<String>, field: &str| {
                    let p = resolve(base, v.get_ref());
                    if p.is_file() {
                        Ok(p)
                    } else {
                        Err(self.err(
                            v,
                            format!(
                                "status_page.{field} '{}' does not exist or is not a file",
                                p.display()
                            ),
                        ))
                    }
                };
                Some(TlsServerConfig {
                    cert: file(&t.cert, "tls.cert")?,
                    key: file(&t.key, "tls.key")?,
                    client_ca: match &t.client_ca {
                        Some(ca) => Some(file(ca, "tls.client_ca")?),
                        None => None,
                    },
                    handshake_timeout: Duration::from_secs(10),
                })
            }
        };
        let username = s.username.clone().unwrap_or_else(|| "admin".to_string());
        let password = if s.password.is_none() && s.password_file.is_none() {
            None
        } else {
            let raw = RawAuth::Basic {
                username: username.clone(),
                password: s.password,
                password_file: s.password_file,
            };
            match crate::auth::validate(raw, base) {
                Ok(AuthConfig::Basic { password, .. }) => Some(password),
                Ok(_) => None,
                Err(e) => {
                    return Err(self.err_at(
                        span,
                        format!("status_page: {}", e.replace("auth.", "status_page.")),
                    ))
                }
            }
        };
        let client_cert = tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        if password.is_none() && !client_cert {
            return Err(self.err_at(
                span,
                "status_page: set password_file = \"/path\" (mode 600) or \"credential:NAME\", \
                 or tls.client_ca for client certificates: the page is never served unprotected"
                    .into(),
            ));
        }
        Ok(StatusPageConfig {
            bind,
            username,
            password,
            tls,
        })
    }
}

/// The box id when `[fleet] box_id` is not set: the host name.
pub fn default_box_id() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "unnamed-gateway".to_string())
}

#[cfg(test)]
mod tests {
    use super::super::parse_str;
    use super::*;

    const BASE: &str = "data_dir = \"/var/lib/gw\"\n";

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        parse_str(&format!("{BASE}{extra}"), Path::new("/etc/gw/gateway.toml"))
    }

    #[test]
    fn defaults_when_the_tables_are_absent() {
        let c = parse("").unwrap();
        assert!(c.health.is_none() && c.fleet.is_none() && c.status_page.is_none());
        assert_eq!(c.alerts.pending_max, 1000);
        assert_eq!(c.alerts.cert_warn_days, vec![90, 60, 30, 7, 1]);
        assert_eq!(c.alerts.disk_warn_percent, 80);
        assert!(c.alerts.webhook.is_none());
        let c = parse("[health]\n").unwrap();
        assert_eq!(c.health.unwrap().bind.to_string(), DEFAULT_HEALTH_BIND);
    }

    #[test]
    fn alert_overrides_and_errors_name_the_line() {
        let c = parse(
            "[alerts]\npending_max = 50\noldest_pending_max = \"2m\"\ndestination_down_max = \"0s\"\ncert_warn_days = [7, 30]\nwebhook_url = \"https://hooks.example.com/x\"\nreminder = \"1h\"\n",
        )
        .unwrap();
        assert_eq!(c.alerts.pending_max, 50);
        assert_eq!(c.alerts.oldest_pending_max, Duration::from_secs(120));
        assert!(c.alerts.destination_down_max.is_zero());
        assert_eq!(c.alerts.cert_warn_days, vec![30, 7]);
        assert_eq!(c.alerts.webhook.unwrap().url, "https://hooks.example.com/x");
        let e = parse("[alerts]\nwebhook_url = \"http://hooks.example.com/x\"\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.reason.contains("must be https://"), "{e}");
        let e = parse("[alerts]\nreminder = \"soon\"\n").unwrap_err();
        assert!(e.to_string().contains("alerts.reminder"), "{e}");
        let e = parse("[alerts]\ncert_warn_days = []\n").unwrap_err();
        assert!(e.reason.contains("cert_warn_days"), "{e}");
        let e = parse("[alerts]\npager = true\n").unwrap_err();
        assert!(e.reason.contains("unknown field"), "{e}");
    }

    #[test]
    fn fleet_and_status_page() {
        let c = parse("[fleet]\nurl = \"https://msp.example.com/hb\"\nbox_id = \"clinic-7\"\ninterval = \"1m\"\n").unwrap();
        let f = c.fleet.unwrap();
        assert_eq!(
            (f.box_id.as_str(), f.interval),
            ("clinic-7", Duration::from_secs(60))
        );
        let e =
            parse("[fleet]\nurl = \"https://msp.example.com/hb\"\nbox_id = \"a b\"\n").unwrap_err();
        assert!(e.reason.contains("fleet.box_id"), "{e}");
        // A status page without a password or client CA is refused.
        let e = parse("[status_page]\nbind = \"0.0.0.0:8080\"\n").unwrap_err();
        assert!(e.reason.contains("never served unprotected"), "{e}");
        let e =
            parse("[status_page]\nbind = \"0.0.0.0:8080\"\npassword_file = \"/nonexistent/pw\"\n")
                .unwrap_err();
        assert!(e.reason.contains("status_page.password_file"), "{e}");
        let c = parse("[status_page]\nbind = \"0.0.0.0:8080\"\npassword = \"inline\"\n").unwrap();
        let s = c.status_page.unwrap();
        assert_eq!(
            (s.username.as_str(), s.password.unwrap().expose()),
            ("admin", "inline")
        );
        // Ports must not collide.
        let e = parse("[health]\nbind = \"127.0.0.1:8080\"\n[status_page]\nbind = \"127.0.0.1:8080\"\npassword = \"x\"\n")
            .unwrap_err();
        assert!(e.reason.contains("own port"), "{e}");
    }
}
