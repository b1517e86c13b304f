//! `[[destination]]`: the kind-specific settings (folder, http, fhir,
//! mllp) and, in `delivery.rs`, the delivery policy. Every problem is
//! reported at the offending value's line; auth secrets, CA files and code
//! maps are read by `resolve`.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{delivery, fhir_settings, outbound, sftp_endpoint};
use crate::auth::RawAuth;
use crate::config::check::{each, maybe, Check};
use crate::config::cross::{FactSheet, Namespace};
use crate::config::model::*;
use crate::config::resolve::Resolver;
use crate::config::secrets::SecretSource;
use crate::config::stage::{Checked, Resolved};
use crate::config::table::Table;
use crate::net::https_client::RawHttpsClient;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDestination {
    name: Spanned<String>,
    kind: Spanned<String>,
    path: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    format: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<String, Spanned<String>>,
    tls: Option<Spanned<RawDestTls>>,
    auth: Option<Spanned<RawAuth>>,
    /// sftp: the remote file name (`deliver::name_template`).
    name_template: Option<Spanned<String>>,
    /// iis_soap: the facility id the registry assigned.
    facility_id: Option<Spanned<String>>,
    // FHIR mapping (fhir_settings.rs).
    pub(super) tenant: Option<Spanned<String>>,
    pub(super) update: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) identifier_systems: BTreeMap<String, Spanned<String>>,
    pub(super) code_maps: Option<Spanned<String>>,
    pub(super) utc_offset: Option<Spanned<String>>,
    pub(super) provenance: Option<Spanned<bool>>,
    // The delivery policy (delivery.rs).
    pub(super) concurrency: Option<Spanned<u64>>,
    pub(super) lane: Option<Spanned<String>>,
    pub(super) on_dead_letter: Option<Spanned<String>>,
    pub(super) backoff_initial: Option<Spanned<String>>,
    pub(super) backoff_max: Option<Spanned<String>>,
    pub(super) max_attempts: Option<Spanned<u64>>,
    pub(super) max_age: Option<Spanned<String>>,
    pub(super) retry_after_max: Option<Spanned<String>>,
    pub(super) circuit_failures: Option<Spanned<u64>>,
    pub(super) probe_interval: Option<Spanned<String>>,
    pub(super) connect_timeout: Option<Spanned<String>>,
    pub(super) timeout: Option<Spanned<String>>,
}

/// `[destination.tls]`: for http/fhir, an extra CA, SPKI pins and an
/// optional client certificate; for mllps, the CA (required) and an
/// optional client certificate.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestTls {
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    spki_sha256_pins: Vec<String>,
    client_cert: Option<Spanned<String>>,
    client_key: Option<Spanned<String>>,
}

pub(crate) struct Destinations;

impl Table for Destinations {
    type Raw = Vec<RawDestination>;
    type Checked = Vec<DestinationConfig<Checked>>;
    type Resolved = Vec<DestinationConfig<Resolved>>;

    fn facts(raw: &Self::Raw, sheet: &mut FactSheet<'_>) {
        for d in raw {
            sheet.name(Namespace::Destination, "destination", &d.name);
            sheet.destination_kind(d.name.get_ref(), d.kind.get_ref());
        }
    }

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<Self::Checked> {
        each(raw, |d| destination(d, cx))
    }

    fn resolve(checked: Self::Checked, rx: &mut Resolver<'_>) -> Option<Self::Resolved> {
        each(checked, |d| {
            let kind = match d.kind {
                DestinationKind::Folder { path } => DestinationKind::Folder { path },
                DestinationKind::Mllp(m) => DestinationKind::Mllp(m),
                DestinationKind::Http(h) => DestinationKind::Http(resolve_http(h, rx)?),
                DestinationKind::Fhir(h) => DestinationKind::Fhir(resolve_http(h, rx)?),
                DestinationKind::IisSoap(i) => {
                    let http = resolve_http(i.http, rx);
                    let password = rx.secret(i.password);
                    DestinationKind::IisSoap(IisSoapDestination {
                        http: http?,
                        username: i.username,
                        password: password?,
                        facility_id: i.facility_id,
                    })
                }
                DestinationKind::Sftp(s) => DestinationKind::Sftp(SftpDestination {
                    endpoint: sftp_endpoint::resolve(s.endpoint, rx)?,
                    name_template: s.name_template,
                }),
            };
            Some(DestinationConfig {
                name: d.name,
                kind,
                delivery: d.delivery,
            })
        })
    }
}

fn resolve_http(
    h: HttpDestination<Checked>,
    rx: &mut Resolver<'_>,
) -> Option<HttpDestination<Resolved>> {
    let auth = maybe(h.auth, |a| rx.auth(a));
    let tls = rx.client(h.tls);
    let fhir = maybe(h.fhir, |f| {
        Some(FhirSettings {
            code_maps_dir: maybe(f.code_maps_dir, |d| rx.code_maps(d))?,
            tenant: f.tenant,
            conditional: f.conditional,
            merge: f.merge,
            identifier_systems: f.identifier_systems,
            utc_offset: f.utc_offset,
            provenance: f.provenance,
        })
    });
    Some(HttpDestination {
        url: h.url,
        format: h.format,
        headers: h.headers,
        auth: auth?,
        tls: tls?,
        fhir: fhir?,
    })
}

fn destination(d: RawDestination, cx: &mut Check<'_>) -> Option<DestinationConfig<Checked>> {
    let name = d.name.get_ref().clone();
    let kind_name = d.kind.get_ref().as_str();
    let mark = cx.mark();
    // Settings that do not apply to this kind.
    let mut not_for_kind = |field: &Option<Spanned<String>>, label: &str| {
        if let Some(f) = field {
            cx.error(
                f,
                format!("destination '{name}': a {kind_name} destination does not take {label}"),
            );
        }
    };
    match kind_name {
        "folder" => {
            not_for_kind(&d.url, "url (use path)");
            not_for_kind(&d.format, "format");
        }
        "mllp" => {
            not_for_kind(&d.path, "path (use url)");
            not_for_kind(&d.format, "format");
        }
        "http" | "fhir" => not_for_kind(&d.path, "path (use url)"),
        "iis_soap" => {
            not_for_kind(&d.path, "path (use url)");
            not_for_kind(
                &d.format,
                "format (it sends the HL7 message in the SOAP body)",
            );
        }
        "sftp" => {
            not_for_kind(&d.path, "path (put the folder in the url)");
            not_for_kind(&d.format, "format");
        }
        _ => {}
    }
    if kind_name != "sftp" {
        not_for_kind(&d.name_template, "name_template (sftp only)");
    }
    if kind_name != "iis_soap" {
        not_for_kind(&d.facility_id, "facility_id (iis_soap only)");
    }
    let http_like = matches!(kind_name, "http" | "fhir");
    if !http_like {
        if let Some((k, v)) = d.headers.iter().next().filter(|_| kind_name != "iis_soap") {
            cx.error(
                v,
                format!("destination '{name}': headers (here '{k}') apply only to http and fhir destinations"),
            );
        }
        match &d.auth {
            Some(a) if !matches!(kind_name, "sftp" | "iis_soap") => cx.error(
                a,
                format!("destination '{name}': [destination.auth] applies to http, fhir, sftp and iis_soap destinations"),
            ),
            _ => {}
        }
    }
    if matches!(kind_name, "folder" | "sftp") && d.tls.is_some() {
        cx.error(
            &d.kind,
            format!("destination '{name}': a {kind_name} destination takes no [destination.tls]"),
        );
    }
    if kind_name != "fhir" {
        let fhir_only = [&d.tenant, &d.update, &d.code_maps, &d.utc_offset];
        if let Some(f) = fhir_only.into_iter().flatten().next() {
            cx.error(
                f,
                format!("destination '{name}': tenant, update, code_maps and utc_offset apply to fhir destinations"),
            );
        }
        if let Some(p) = &d.provenance {
            cx.error(
                p,
                format!("destination '{name}': provenance applies to fhir destinations"),
            );
        }
        if let Some((k, v)) = d.identifier_systems.iter().next() {
            cx.error(
                v,
                format!(
                    "destination '{name}': identifier_systems ('{k}') apply to fhir destinations"
                ),
            );
        }
    }
    let kind = match kind_name {
        "folder" => match &d.path {
            Some(path) => Some(DestinationKind::Folder {
                path: cx.path(path.get_ref()),
            }),
            None => cx.fail(
                &d.kind,
                format!("destination '{name}': kind \"folder\" needs path = \"DIR\""),
            ),
        },
        "http" | "fhir" => http(&name, &d, cx).map(|h| {
            if kind_name == "http" {
                DestinationKind::Http(h)
            } else {
                DestinationKind::Fhir(h)
            }
        }),
        "mllp" => mllp(&name, &d, cx).map(DestinationKind::Mllp),
        "sftp" => sftp(&name, &d, cx).map(DestinationKind::Sftp),
        "iis_soap" => iis_soap(&name, &d, cx).map(DestinationKind::IisSoap),
        other => cx.fail(
            &d.kind,
            format!("destination '{name}': unknown kind \"{other}\"; expected one of folder, fhir, http, mllp, sftp, iis_soap"),
        ),
    };
    let kind = kind?;
    let delivery = delivery::policy(&name, &d, DeliveryPolicy::defaults_for(&kind), cx);
    if !cx.clean_since(mark) {
        return None;
    }
    Some(DestinationConfig {
        name,
        kind,
        delivery: delivery?,
    })
}

fn needs_url<'d>(
    name: &str,
    d: &'d RawDestination,
    example: &str,
    cx: &mut Check<'_>,
) -> Option<&'d Spanned<String>> {
    match &d.url {
        Some(u) => Some(u),
        None => cx.fail(
            &d.kind,
            format!(
                "destination '{name}': kind \"{}\" needs url = \"{example}\"",
                d.kind.get_ref()
            ),
        ),
    }
}

fn http(name: &str, d: &RawDestination, cx: &mut Check<'_>) -> Option<HttpDestination<Checked>> {
    let url = needs_url(name, d, "https://host/path", cx)?;
    let parsed = match reqwest::Url::parse(url.get_ref()) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => u,
        Ok(u) => {
            return cx.fail(
                url,
                format!(
                    "destination '{name}': url scheme '{}' is not http or https",
                    u.scheme()
                ),
            )
        }
        Err(e) => {
            return cx.fail(
                url,
                format!(
                    "destination '{name}': url '{}' is not valid: {e}",
                    url.get_ref()
                ),
            )
        }
    };
    let is_fhir = d.kind.get_ref() == "fhir";
    let format = match &d.format {
        None => Some(HttpFormat::Hl7),
        Some(f) if is_fhir => cx.fail(
            f,
            format!(
                "destination '{name}': a fhir destination always sends FHIR JSON; remove format"
            ),
        ),
        Some(f) => match f.get_ref().as_str() {
            "hl7" => Some(HttpFormat::Hl7),
            "json" => Some(HttpFormat::Json),
            other => cx.fail(
                f,
                format!("destination '{name}': format \"{other}\" is not one of \"hl7\", \"json\""),
            ),
        },
    };
    let headers = each(&d.headers, |(k, v)| {
        let valid_name = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
        if !valid_name || v.get_ref().bytes().any(|b| b == b'\r' || b == b'\n') {
            return cx.fail(
                v,
                format!("destination '{name}': header '{k}' must be a token name with a single-line value"),
            );
        }
        Some((k.clone(), v.get_ref().clone()))
    });
    let auth = maybe(d.auth.as_ref(), |a| {
        outbound::auth(cx, format!("destination '{name}': auth"), a)
    });
    let tls = match &d.tls {
        None => outbound::client(
            cx,
            format!("destination '{name}'"),
            None,
            Default::default(),
        ),
        Some(t) => {
            let t = t.get_ref();
            let raw = RawHttpsClient {
                ca_file: t.ca_file.as_ref().map(|c| c.get_ref().into()),
                spki_sha256_pins: t.spki_sha256_pins.clone(),
                connect_timeout_secs: None,
                request_timeout_secs: None,
                client_cert: t.client_cert.as_ref().map(|c| c.get_ref().into()),
                client_key: t.client_key.as_ref().map(|c| c.get_ref().into()),
            };
            let at = t
                .ca_file
                .as_ref()
                .or(t.client_cert.as_ref())
                .or(t.client_key.as_ref());
            let pos = match at {
                Some(c) => cx.pos(c),
                None => cx.pos(&d.kind),
            };
            outbound::client(cx, format!("destination '{name}'"), Some(raw), pos)
        }
    };
    if parsed.scheme() == "http"
        && (d.auth.is_some() || d.tls.is_some())
        && !outbound::is_loopback(&parsed)
    {
        cx.error(
            url,
            format!("destination '{name}': credentials or TLS settings over plain http would travel unencrypted: use an https:// url"),
        );
    }
    let fhir = if is_fhir {
        fhir_settings::settings(name, d, cx).map(Some)
    } else {
        Some(None)
    };
    Some(HttpDestination {
        url: url.get_ref().trim_end_matches('/').to_string(),
        format: format?,
        headers: headers?,
        auth: auth?,
        tls: tls?,
        fhir: fhir?,
    })
}

fn sftp(name: &str, d: &RawDestination, cx: &mut Check<'_>) -> Option<SftpDestination<Checked>> {
    use crate::deliver::name_template::{NameTemplate, DEFAULT_TEMPLATE};
    let url = needs_url(name, d, "sftp://USER@HOST:22/DIR", cx)?;
    let what = format!("destination '{name}'");
    let endpoint = sftp_endpoint::endpoint(&what, url, d.auth.as_ref(), &d.kind, cx);
    let name_template = match &d.name_template {
        None => NameTemplate::parse(DEFAULT_TEMPLATE).ok(),
        Some(t) => match NameTemplate::parse(t.get_ref()) {
            Ok(t) => Some(t),
            Err(e) => cx.fail(t, format!("{what}: name_template {e}")),
        },
    };
    Some(SftpDestination {
        endpoint: endpoint?,
        name_template: name_template?,
    })
}

fn iis_soap(
    name: &str,
    d: &RawDestination,
    cx: &mut Check<'_>,
) -> Option<IisSoapDestination<Checked>> {
    let what = format!("destination '{name}'");
    let http = http(name, d, cx);
    let creds = match d.auth.as_ref().map(|a| (a, a.get_ref())) {
        Some((
            a,
            RawAuth::Basic {
                username,
                password,
                password_file,
            },
        )) => {
            let file = password_file.as_ref().map(|p| p.to_string_lossy().into_owned());
            match SecretSource::choose(
                "auth.password",
                password.clone(),
                "auth.password_file",
                file.as_deref(),
                cx.base(),
            ) {
                Ok(s) => Some((username.clone(), cx.at(a, s, format!("{what}: auth")))),
                Err(e) => cx.fail(a, format!("{what}: {e}")),
            }
        }
        _ => cx.fail(
            d.auth.as_ref().map_or(&d.kind, |_| &d.kind),
            format!("{what}: iis_soap needs [destination.auth] type = \"basic\" with the registry's username and password_file"),
        ),
    };
    let facility_id = match &d.facility_id {
        Some(f) if !f.get_ref().trim().is_empty() => Some(f.get_ref().clone()),
        Some(f) => cx.fail(f, format!("{what}: facility_id is empty")),
        None => cx.fail(
            &d.kind,
            format!("{what}: iis_soap needs facility_id = \"...\" (the id the registry assigned to the clinic)"),
        ),
    };
    let mut http = http?;
    // The credentials travel in the SOAP body, not an Authorization header.
    http.auth = None;
    let (username, password) = creds?;
    Some(IisSoapDestination {
        http,
        username,
        password,
        facility_id: facility_id?,
    })
}

fn mllp(name: &str, d: &RawDestination, cx: &mut Check<'_>) -> Option<MllpDestination> {
    let url = needs_url(name, d, "mllp://host:port", cx)?;
    let (tls_wanted, address) = match url.get_ref().split_once("://") {
        Some(("mllp", a)) => (false, a),
        Some(("mllps", a)) => (true, a),
        _ => {
            return cx.fail(
                url,
                format!("destination '{name}': url must be mllp://HOST:PORT or mllps://HOST:PORT (MLLP over TLS)"),
            )
        }
    };
    let port_ok = address
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok {
        return cx.fail(
            url,
            format!(
                "destination '{name}': '{}' has no HOST:PORT after the scheme",
                url.get_ref()
            ),
        );
    }
    let tls = match (&d.tls, tls_wanted) {
        (Some(t), true) => Some(mllp_tls(name, t, cx)?),
        (None, true) => {
            return cx.fail(
                url,
                format!("destination '{name}': mllps needs [destination.tls] with ca_file = \"CA.pem\" (the CA that signed the peer's certificate)"),
            )
        }
        (Some(_), false) => {
            return cx.fail(
                url,
                format!("destination '{name}': [destination.tls] needs an mllps:// url"),
            )
        }
        (None, false) => None,
    };
    Some(MllpDestination {
        address: address.to_string(),
        tls,
    })
}

fn mllp_tls(name: &str, t: &Spanned<RawDestTls>, cx: &mut Check<'_>) -> Option<MllpClientTls> {
    let Some(ca_file) = &t.get_ref().ca_file else {
        return cx.fail(
            t,
            format!("destination '{name}': mllps needs [destination.tls] ca_file = \"CA.pem\" (the CA that signed the peer's certificate)"),
        );
    };
    let t = t.get_ref();
    if !t.spki_sha256_pins.is_empty() {
        return cx.fail(
            ca_file,
            format!("destination '{name}': spki_sha256_pins apply to https destinations only"),
        );
    }
    let client_cert = match (&t.client_cert, &t.client_key) {
        (Some(c), Some(k)) => Some((cx.path(c.get_ref()), cx.path(k.get_ref()))),
        (None, None) => None,
        (Some(c), None) => {
            return cx.fail(
                c,
                format!("destination '{name}': client_cert needs client_key too"),
            )
        }
        (None, Some(k)) => {
            return cx.fail(
                k,
                format!("destination '{name}': client_key needs client_cert too"),
            )
        }
    };
    Some(MllpClientTls {
        ca_file: cx.path(ca_file.get_ref()),
        client_cert,
    })
}
