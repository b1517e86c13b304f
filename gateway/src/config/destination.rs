//! `[[destination]]` tables: kind-specific settings and the delivery policy
//! (lanes, concurrency, retry, circuit breaker, timeouts). Every problem is
//! reported at the offending value's line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::duration::parse_duration;
use super::model::*;
use super::validate::{resolve, ConfigError, Ctx};
use crate::auth::RawAuth;
use crate::net::https_client::{self, RawHttpsClient};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDestination {
    pub name: Spanned<String>,
    kind: Spanned<String>,
    path: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    format: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    tls: Option<RawDestTls>,
    auth: Option<Spanned<RawAuth>>,
    tenant: Option<Spanned<String>>,
    update: Option<Spanned<String>>,
    #[serde(default)]
    identifier_systems: BTreeMap<String, Spanned<String>>,
    code_maps: Option<Spanned<String>>,
    utc_offset: Option<Spanned<String>>,
    concurrency: Option<Spanned<u64>>,
    lane: Option<Spanned<String>>,
    on_dead_letter: Option<Spanned<String>>,
    backoff_initial: Option<Spanned<String>>,
    backoff_max: Option<Spanned<String>>,
    max_attempts: Option<Spanned<u64>>,
    max_age: Option<Spanned<String>>,
    retry_after_max: Option<Spanned<String>>,
    circuit_failures: Option<Spanned<u64>>,
    probe_interval: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

/// `[destination.tls]`: for http/fhir, an extra CA and SPKI pins; for
/// mllps, the CA (required) and an optional client certificate.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestTls {
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    spki_sha256_pins: Vec<String>,
    client_cert: Option<Spanned<String>>,
    client_key: Option<Spanned<String>>,
}

impl Ctx<'_> {
    pub(super) fn destination(
        &self,
        d: RawDestination,
        base: &Path,
    ) -> Result<DestinationConfig, ConfigError> {
        let name = d.name.get_ref().clone();
        let kind_name = d.kind.get_ref().as_str();
        let needs_url = |what: &str| {
            d.url.as_ref().ok_or_else(|| {
                self.err(
                    &d.kind,
                    format!("destination '{name}': kind \"{kind_name}\" needs url = \"{what}\""),
                )
            })
        };
        let no = |field: &Option<Spanned<String>>, label: &str| -> Result<(), ConfigError> {
            match field {
                Some(f) => Err(self.err(
                    f,
                    format!(
                        "destination '{name}': a {kind_name} destination does not take {label}"
                    ),
                )),
                None => Ok(()),
            }
        };
        let kind = match kind_name {
            "folder" => {
                let path = d.path.as_ref().ok_or_else(|| {
                    self.err(
                        &d.kind,
                        format!("destination '{name}': kind \"folder\" needs path = \"DIR\""),
                    )
                })?;
                no(&d.url, "url (use path)")?;
                no(&d.format, "format")?;
                DestinationKind::Folder {
                    path: resolve(base, path.get_ref()),
                }
            }
            "http" | "fhir" => {
                let url = needs_url("https://host/path")?;
                no(&d.path, "path (use url)")?;
                self.http_url(&name, url)?;
                let format = match (&d.format, kind_name) {
                    (None, _) => HttpFormat::Hl7,
                    (Some(f), "http") => match f.get_ref().as_str() {
                        "hl7" => HttpFormat::Hl7,
                        "json" => HttpFormat::Json,
                        other => {
                            return Err(self.err(
                                f,
                                format!("destination '{name}': format \"{other}\" is not one of \"hl7\", \"json\""),
                            ))
                        }
                    },
                    (Some(f), _) => {
                        return Err(self.err(
                            f,
                            format!("destination '{name}': a fhir destination always sends FHIR JSON; remove format"),
                        ))
                    }
                };
                let mut headers = Vec::new();
                for (k, v) in &d.headers {
                    let valid_name = !k.is_empty()
                        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
                    if !valid_name || v.get_ref().bytes().any(|b| b == b'\r' || b == b'\n') {
                        return Err(self.err(
                            v,
                            format!("destination '{name}': header '{k}' must be a token name with a single-line value"),
                        ));
                    }
                    headers.push((k.clone(), v.get_ref().clone()));
                }
                let auth = match &d.auth {
                    None => None,
                    Some(a) => Some(
                        crate::auth::validate(a.get_ref().clone(), base).map_err(|e| {
                            self.err(a, format!("destination '{name}': auth: {e}"))
                        })?,
                    ),
                };
                let tls = match &d.tls {
                    None => https_client::HttpsClientConfig::default(),
                    Some(t) => {
                        if let Some(c) = t.client_cert.as_ref().or(t.client_key.as_ref()) {
                            return Err(self.err(
                                c,
                                format!("destination '{name}': client certificates are supported for mllps destinations only"),
                            ));
                        }
                        let raw = RawHttpsClient {
                            ca_file: t.ca_file.as_ref().map(|c| resolve(base, c.get_ref())),
                            spki_sha256_pins: t.spki_sha256_pins.clone(),
                            connect_timeout_secs: None,
                            request_timeout_secs: None,
                        };
                        let at = t.ca_file.as_ref().map(|c| c.span().start).unwrap_or(d.kind.span().start);
                        https_client::validate(raw, base)
                            .map_err(|e| self.err_at(at, format!("destination '{name}': {e}")))?
                    }
                };
                if url.get_ref().starts_with("http://") && (auth.is_some() || d.tls.is_some()) {
                    let loopback = reqwest::Url::parse(url.get_ref())
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_string))
                        .is_some_and(|h| {
                            h == "localhost"
                                || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
                        });
                    if !loopback {
                        return Err(self.err(
                            url,
                            format!("destination '{name}': credentials or TLS settings over plain http would travel unencrypted: use an https:// url"),
                        ));
                    }
                }
                let fhir = if kind_name == "fhir" {
                    Some(self.fhir_settings(&name, &d, base)?)
                } else {
                    None
                };
                let h = HttpDestination {
                    url: url.get_ref().trim_end_matches('/').to_string(),
                    format,
                    headers,
                    auth,
                    tls,
                    fhir,
                };
                if kind_name == "http" {
                    DestinationKind::Http(h)
                } else {
                    DestinationKind::Fhir(h)
                }
            }
            "mllp" => {
                let url = needs_url("mllp://host:port")?;
                no(&d.path, "path (use url)")?;
                no(&d.format, "format")?;
                let (tls_wanted, address) = match url.get_ref().split_once("://") {
                    Some(("mllp", a)) => (false, a),
                    Some(("mllps", a)) => (true, a),
                    _ => {
                        return Err(self.err(
                            url,
                            format!("destination '{name}': url must be mllp://HOST:PORT or mllps://HOST:PORT (MLLP over TLS)"),
                        ))
                    }
                };
                let port_ok = address
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !port_ok {
                    return Err(self.err(
                        url,
                        format!("destination '{name}': '{}' has no HOST:PORT after the scheme", url.get_ref()),
                    ));
                }
                let tls = match (&d.tls, tls_wanted) {
                    (Some(t), true) => Some(self.mllp_tls(&name, t, base)?),
                    (None, true) => {
                        return Err(self.err(
                            url,
                            format!("destination '{name}': mllps needs [destination.tls] with ca_file = \"CA.pem\" (the CA that signed the peer's certificate)"),
                        ))
                    }
                    (Some(_), false) => {
                        return Err(self.err(
                            url,
                            format!("destination '{name}': [destination.tls] needs an mllps:// url"),
                        ))
                    }
                    (None, false) => None,
                };
                DestinationKind::Mllp(MllpDestination {
                    address: address.to_string(),
                    tls,
                })
            }
            other => {
                return Err(self.err(
                    &d.kind,
                    format!("destination '{name}': unknown kind \"{other}\"; expected one of folder, fhir, http, mllp"),
                ))
            }
        };
        if !matches!(kind, DestinationKind::Http(_) | DestinationKind::Fhir(_)) {
            if let Some((k, v)) = d.headers.iter().next() {
                return Err(self.err(
                    v,
                    format!("destination '{name}': headers (here '{k}') apply only to http and fhir destinations"),
                ));
            }
        }
        if matches!(kind, DestinationKind::Folder { .. }) && d.tls.is_some() {
            return Err(self.err(
                &d.kind,
                format!("destination '{name}': a folder destination takes no [destination.tls]"),
            ));
        }
        if kind_name != "fhir" {
            let fhir_only = [&d.tenant, &d.update, &d.code_maps, &d.utc_offset];
            if let Some(f) = fhir_only.into_iter().flatten().next() {
                return Err(self.err(
                    f,
                    format!("destination '{name}': tenant, update, code_maps and utc_offset apply to fhir destinations"),
                ));
            }
            if let Some((k, v)) = d.identifier_systems.iter().next() {
                return Err(self.err(
                    v,
                    format!("destination '{name}': identifier_systems ('{k}') apply to fhir destinations"),
                ));
            }
        }
        if let (Some(a), false) = (
            &d.auth,
            matches!(kind, DestinationKind::Http(_) | DestinationKind::Fhir(_)),
        ) {
            return Err(self.err(
                a,
                format!("destination '{name}': [destination.auth] applies to http and fhir destinations"),
            ));
        }
        let delivery = self.delivery(&name, &d, &kind)?;
        Ok(DestinationConfig {
            name,
            kind,
            delivery,
        })
    }

    fn fhir_settings(
        &self,
        name: &str,
        d: &RawDestination,
        base: &Path,
    ) -> Result<FhirSettings, ConfigError> {
        let tenant = match &d.tenant {
            None => "default".to_string(),
            Some(t) => {
                let v = t.get_ref();
                if v.is_empty()
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                {
                    return Err(self.err(
                        t,
                        format!("destination '{name}': tenant '{v}' must be letters, digits, '-' or '.' (it is part of every resource id)"),
                    ));
                }
                v.clone()
            }
        };
        let conditional = match &d.update {
            None => false,
            Some(u) => match u.get_ref().as_str() {
                "put" => false,
                "conditional" => true,
                other => {
                    return Err(self.err(
                        u,
                        format!("destination '{name}': update \"{other}\" is not \"put\" (PUT Type/id) or \"conditional\" (PUT Type?identifier=...)"),
                    ))
                }
            },
        };
        let mut identifier_systems = Vec::new();
        for (authority, uri) in &d.identifier_systems {
            let u = uri.get_ref();
            if !(u.starts_with("http://") || u.starts_with("https://") || u.starts_with("urn:")) {
                return Err(self.err(
                    uri,
                    format!("destination '{name}': identifier system for '{authority}' must be a URI (http(s):// or urn:), got '{u}'"),
                ));
            }
            identifier_systems.push((authority.clone(), u.clone()));
        }
        let code_maps_dir = match &d.code_maps {
            Some(c) => {
                let dir = resolve(base, c.get_ref());
                crate::deliver::fhir_context::load_code_maps(&dir)
                    .map_err(|e| self.err(c, format!("destination '{name}': code_maps: {e}")))?;
                Some(dir)
            }
            None => None,
        };
        let utc_offset = match &d.utc_offset {
            None => None,
            Some(o) => {
                let v = o.get_ref();
                let b = v.as_bytes();
                let ok = b.len() == 6
                    && (b[0] == b'+' || b[0] == b'-')
                    && b[3] == b':'
                    && [1, 2, 4, 5].iter().all(|&i| b[i].is_ascii_digit());
                if !ok {
                    return Err(self.err(
                        o,
                        format!("destination '{name}': utc_offset '{v}' must look like \"-05:00\""),
                    ));
                }
                Some(v.clone())
            }
        };
        Ok(FhirSettings {
            tenant,
            conditional,
            identifier_systems,
            code_maps_dir,
            utc_offset,
        })
    }

    fn http_url(&self, name: &str, url: &Spanned<String>) -> Result<(), ConfigError> {
        match reqwest::Url::parse(url.get_ref()) {
            Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => {
                Ok(())
            }
            Ok(u) => Err(self.err(
                url,
                format!(
                    "destination '{name}': url scheme '{}' is not http or https",
                    u.scheme()
                ),
            )),
            Err(e) => Err(self.err(
                url,
                format!(
                    "destination '{name}': url '{}' is not valid: {e}",
                    url.get_ref()
                ),
            )),
        }
    }

    fn mllp_tls(
        &self,
        name: &str,
        t: &RawDestTls,
        base: &Path,
    ) -> Result<MllpClientTls, ConfigError> {
        let Some(ca_file) = &t.ca_file else {
            return Err(self.err_at(
                0,
                format!("destination '{name}': mllps needs [destination.tls] ca_file = \"CA.pem\" (the CA that signed the peer's certificate)"),
            ));
        };
        if !t.spki_sha256_pins.is_empty() {
            return Err(self.err(
                ca_file,
                format!("destination '{name}': spki_sha256_pins apply to https destinations only"),
            ));
        }
        let client_cert = match (&t.client_cert, &t.client_key) {
            (Some(c), Some(k)) => Some((resolve(base, c.get_ref()), resolve(base, k.get_ref()))),
            (None, None) => None,
            (Some(c), None) => {
                return Err(self.err(
                    c,
                    format!("destination '{name}': client_cert needs client_key too"),
                ))
            }
            (None, Some(k)) => {
                return Err(self.err(
                    k,
                    format!("destination '{name}': client_key needs client_cert too"),
                ))
            }
        };
        Ok(MllpClientTls {
            ca_file: resolve(base, ca_file.get_ref()),
            client_cert,
        })
    }

    fn delivery(
        &self,
        name: &str,
        d: &RawDestination,
        kind: &DestinationKind,
    ) -> Result<DeliveryPolicy, ConfigError> {
        let mut p = DeliveryPolicy::defaults_for(kind);
        let dur = |v: &Option<Spanned<String>>,
                   field: &str,
                   min: Duration|
         -> Result<Option<Duration>, ConfigError> {
            let Some(v) = v else { return Ok(None) };
            let x = parse_duration(v.get_ref())
                .map_err(|e| self.err(v, format!("destination '{name}': {field}: {e}")))?;
            if x < min {
                return Err(self.err(
                    v,
                    format!(
                        "destination '{name}': {field} must be at least {} ms",
                        min.as_millis()
                    ),
                ));
            }
            Ok(Some(x))
        };
        let ms = Duration::from_millis(1);
        if let Some(x) = dur(&d.backoff_initial, "backoff_initial", ms)? {
            p.initial_backoff = x;
        }
        if let Some(x) = dur(&d.backoff_max, "backoff_max", ms)? {
            p.max_backoff = x;
        }
        if p.max_backoff < p.initial_backoff {
            let at = d.backoff_max.as_ref().or(d.backoff_initial.as_ref());
            let offset = at.map(|s| s.span().start).unwrap_or(0);
            return Err(self.err_at(
                offset,
                format!("destination '{name}': backoff_max is below backoff_initial"),
            ));
        }
        p.max_age = dur(&d.max_age, "max_age", ms)?;
        if let Some(x) = dur(&d.retry_after_max, "retry_after_max", ms)? {
            p.retry_after_max = x;
        }
        if let Some(x) = dur(&d.probe_interval, "probe_interval", ms)? {
            p.probe_interval = x;
        }
        if let Some(x) = dur(&d.connect_timeout, "connect_timeout", ms)? {
            p.connect_timeout = x;
        }
        if let Some(x) = dur(&d.timeout, "timeout", ms)? {
            p.timeout = x;
        }
        if let Some(c) = &d.concurrency {
            let n = *c.get_ref();
            if n == 0 || n > 1024 {
                return Err(self.err(
                    c,
                    format!("destination '{name}': concurrency must be 1..=1024"),
                ));
            }
            p.concurrency = n as usize;
        }
        if let Some(a) = &d.max_attempts {
            let n = *a.get_ref();
            if n == 0 || n > u32::MAX as u64 {
                return Err(self.err(
                    a,
                    format!("destination '{name}': max_attempts must be at least 1 (omit it to retry until delivered)"),
                ));
            }
            p.max_attempts = Some(n as u32);
        }
        if let Some(c) = &d.circuit_failures {
            let n = *c.get_ref();
            if n == 0 || n > 10_000 {
                return Err(self.err(
                    c,
                    format!("destination '{name}': circuit_failures must be 1..=10000"),
                ));
            }
            p.circuit_failures = n as u32;
        }
        if let Some(l) = &d.lane {
            p.lane = match l.get_ref().as_str() {
                "patient" => LaneMode::Patient,
                "destination" => LaneMode::Destination,
                "none" => LaneMode::None,
                other => {
                    return Err(self.err(
                        l,
                        format!("destination '{name}': lane \"{other}\" is not one of \"patient\", \"destination\", \"none\""),
                    ))
                }
            };
        }
        if let Some(o) = &d.on_dead_letter {
            p.on_dead_letter = match o.get_ref().as_str() {
                "hold" => DeadLetterPolicy::Hold,
                "continue" => DeadLetterPolicy::Continue,
                other => {
                    return Err(self.err(
                        o,
                        format!("destination '{name}': on_dead_letter \"{other}\" is not \"hold\" or \"continue\""),
                    ))
                }
            };
        }
        Ok(p)
    }
}
