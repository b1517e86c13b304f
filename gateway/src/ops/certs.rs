//! The certificates the gateway holds (listener TLS, client CAs, mllps
//! client certificates and CAs, extra CAs of HTTPS destinations, the status
//! page's), with their notAfter, for `/metrics` and the expiry alerts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Config, DestinationKind, IisSoapDestination};

/// One certificate file the config names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CertInfo {
    /// "listener", "destination", "status_page", "alerts", "fleet".
    pub owner_kind: String,
    /// The listener or destination name.
    pub owner: String,
    /// "server", "client", "ca".
    pub role: String,
    pub path: String,
    /// notAfter of the first certificate in the file (seconds since the
    /// epoch); `None` when it cannot be read (then `error` says why).
    pub not_after: Option<i64>,
    pub error: Option<String>,
}

impl CertInfo {
    /// Whole days left (negative once expired), rounded down.
    pub fn days_left(&self, now_secs: i64) -> Option<i64> {
        self.not_after.map(|t| (t - now_secs).div_euclid(86_400))
    }
}

/// Every certificate file in `cfg`, read now.
pub fn collect(cfg: &Config) -> Vec<CertInfo> {
    let mut wanted: Vec<(&str, String, &str, PathBuf)> = Vec::new();
    for l in &cfg.listeners {
        if let Some(t) = &l.tls {
            wanted.push(("listener", l.name.clone(), "server", t.cert.clone()));
            if let Some(ca) = &t.client_ca {
                wanted.push(("listener", l.name.clone(), "ca", ca.clone()));
            }
        }
    }
    for d in &cfg.destinations {
        match &d.kind {
            DestinationKind::Mllp(m) => {
                if let Some(t) = &m.tls {
                    wanted.push(("destination", d.name.clone(), "ca", t.ca_file.clone()));
                    if let Some((cert, _)) = &t.client_cert {
                        wanted.push(("destination", d.name.clone(), "client", cert.clone()));
                    }
                }
            }
            DestinationKind::IisSoap(IisSoapDestination { http: h, .. })
            | DestinationKind::Http(h)
            | DestinationKind::Fhir(h) => {
                if let Some(ca) = &h.tls.ca_file {
                    wanted.push(("destination", d.name.clone(), "ca", ca.clone()));
                }
                if let Some((cert, _)) = &h.tls.client_cert {
                    wanted.push(("destination", d.name.clone(), "client", cert.clone()));
                }
            }
            DestinationKind::Folder { .. } | DestinationKind::Sftp(_) => {}
        }
    }
    let remote_write = cfg.fleet.as_ref().and_then(|f| f.remote_write.as_ref());
    if let Some((cert, _)) = remote_write.and_then(|w| w.tls.client_cert.as_ref()) {
        wanted.push((
            "remote_write",
            "remote_write".into(),
            "client",
            cert.clone(),
        ));
    }
    if let Some(t) = cfg.status_page.as_ref().and_then(|s| s.tls.as_ref()) {
        wanted.push((
            "status_page",
            "status_page".into(),
            "server",
            t.cert.clone(),
        ));
        if let Some(ca) = &t.client_ca {
            wanted.push(("status_page", "status_page".into(), "ca", ca.clone()));
        }
    }
    wanted
        .into_iter()
        .map(|(kind, owner, role, path)| read(kind, owner, role, &path))
        .collect()
}

fn read(kind: &str, owner: String, role: &str, path: &Path) -> CertInfo {
    let (not_after, error) = match crate::net::tls_config::load_certs(path) {
        Ok(certs) => match certs
            .first()
            .map(|c| crate::net::der::certificate_not_after(c))
        {
            Some(Ok(t)) => (Some(t), None),
            Some(Err(e)) => (None, Some(format!("cannot read notAfter: {e}"))),
            None => (None, Some("no certificate".to_string())),
        },
        Err(e) => (None, Some(e.to_string())),
    };
    CertInfo {
        owner_kind: kind.to_string(),
        owner,
        role: role.to_string(),
        path: path.display().to_string(),
        not_after,
        error,
    }
}
