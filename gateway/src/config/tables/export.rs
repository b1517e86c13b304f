//! `[[export]]`: FHIR Bulk Data `$export` jobs, one per tenant and job
//! (`source/export`). Auth and TLS are checked by the same code as a
//! destination's (`outbound::auth`, `outbound::client`).

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::outbound;
use crate::auth::RawAuth;
use crate::config::check::{each, maybe, Check};
use crate::config::cross::{FactSheet, Namespace};
use crate::config::model::{ExportConfig, ExportLevel, ExportSince, NamespaceIds};
use crate::config::resolve::Resolver;
use crate::config::stage::{Checked, Resolved};
use crate::config::table::Table;
use crate::net::https_client::RawHttpsClient;
use crate::source::export::poll::PollBounds;
use crate::source::export::schedule::parse_schedule;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExport {
    name: Spanned<String>,
    tenant: Spanned<String>,
    url: Spanned<String>,
    level: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    types: Option<Vec<String>>,
    #[serde(default)]
    type_filters: Vec<String>,
    since: Option<Spanned<String>>,
    schedule: Option<Spanned<String>>,
    output: Option<Spanned<String>>,
    #[serde(default)]
    to: Vec<Spanned<String>>,
    namespace_ids: Option<Spanned<String>>,
    parallel_downloads: Option<Spanned<u64>>,
    poll_min: Option<Spanned<String>>,
    poll_max: Option<Spanned<String>>,
    max_line_bytes: Option<Spanned<u64>>,
    alert_after: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    auth: Option<Spanned<RawAuth>>,
    tls: Option<Spanned<RawExportTls>>,
}

/// `[export.tls]`: as `[destination.tls]` for an https destination.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExportTls {
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    spki_sha256_pins: Vec<String>,
}

pub(crate) struct Exports;

impl Table for Exports {
    type Raw = Vec<RawExport>;
    type Checked = Vec<ExportConfig<Checked>>;
    type Resolved = Vec<ExportConfig<Resolved>>;

    fn facts(raw: &Self::Raw, sheet: &mut FactSheet<'_>) {
        for e in raw {
            sheet.name(Namespace::Source, "export", &e.name);
            for to in &e.to {
                let owner = format!("export '{}'", e.name.get_ref());
                sheet.reference(Namespace::Destination, owner, "to", to);
            }
        }
    }

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<Self::Checked> {
        each(raw, |e| export(e, cx))
    }

    fn resolve(checked: Self::Checked, rx: &mut Resolver<'_>) -> Option<Self::Resolved> {
        each(checked, |e| {
            let auth = maybe(e.auth, |a| rx.auth(a));
            let tls = rx.client(e.tls);
            Some(ExportConfig {
                auth: auth?,
                tls: tls?,
                name: e.name,
                tenant: e.tenant,
                base_url: e.base_url,
                level: e.level,
                types: e.types,
                type_filters: e.type_filters,
                since: e.since,
                schedule: e.schedule,
                output: e.output,
                parallel_downloads: e.parallel_downloads,
                poll: e.poll,
                max_line_bytes: e.max_line_bytes,
                alert_after: e.alert_after,
                to: e.to,
                namespace_ids: e.namespace_ids,
            })
        })
    }
}

/// A FHIR resource type name: what `types` and `_typeFilter` start with.
fn is_type_name(t: &str) -> bool {
    let mut c = t.chars();
    c.next().is_some_and(|f| f.is_ascii_uppercase()) && c.all(|c| c.is_ascii_alphanumeric())
}

fn export(e: RawExport, cx: &mut Check<'_>) -> Option<ExportConfig<Checked>> {
    let name = e.name.get_ref().clone();
    let what = format!("export '{name}'");
    let mark = cx.mark();
    let tenant = e.tenant.get_ref().clone();
    if tenant.is_empty()
        || !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || tenant.starts_with('.')
    {
        cx.error(
            &e.tenant,
            format!("{what}: tenant must be letters, digits, '-', '_' or '.' (it names a directory), e.g. tenant = \"acme\""),
        );
    }
    let url = match reqwest::Url::parse(e.url.get_ref()) {
        Ok(u) if (u.scheme() == "https" || u.scheme() == "http") && u.host().is_some() => Some(u),
        _ => cx.fail(
            &e.url,
            format!("{what}: url must be the FHIR base URL, e.g. https://fhir.acme.example/r4"),
        ),
    };
    if let Some(u) = &url {
        if u.scheme() == "http" && !outbound::is_loopback(u) {
            cx.error(
                &e.url,
                format!("{what}: exported records would travel unencrypted: use https://"),
            );
        }
    }
    let level = match (e.level.as_ref().map(|l| l.get_ref().as_str()), &e.group) {
        (None | Some("system"), None) => Some(ExportLevel::System),
        (Some("patient"), None) => Some(ExportLevel::Patient),
        (Some("group"), Some(g)) if !g.get_ref().is_empty() && !g.get_ref().contains('/') => {
            Some(ExportLevel::Group(g.get_ref().clone()))
        }
        (Some("group"), _) => {
            let at = e.level.as_ref().unwrap_or(&e.name);
            cx.fail(
                at,
                format!("{what}: level = \"group\" needs group = \"<Group id>\""),
            )
        }
        (_, Some(g)) if e.level.as_ref().is_none_or(|l| l.get_ref() != "group") => {
            cx.fail(g, format!("{what}: group is only for level = \"group\""))
        }
        (Some(_), _) => {
            let at = e.level.as_ref().unwrap_or(&e.name);
            cx.fail(
                at,
                format!("{what}: level must be \"system\", \"patient\" or \"group\""),
            )
        }
        (None, Some(_)) => None,
    };
    let types = e.types.unwrap_or_default();
    let mut seen = BTreeSet::new();
    for t in &types {
        if !is_type_name(t) || !seen.insert(t.clone()) {
            cx.error(
                &e.name,
                format!("{what}: types: {t:?} is not a resource type or is listed twice (e.g. types = [\"Patient\", \"Observation\"])"),
            );
        }
    }
    for f in &e.type_filters {
        let ty = f.split('?').next().unwrap_or("");
        if !f.contains('?') || !is_type_name(ty) {
            cx.error(
                &e.name,
                format!("{what}: type_filters: {f:?} must be Type?search, e.g. \"Observation?category=laboratory\""),
            );
        }
    }
    let since = match e.since.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("auto") => Some(ExportSince::Auto),
        Some("none") => Some(ExportSince::None),
        Some(s) if looks_like_instant(s) => Some(ExportSince::Instant(s.to_string())),
        Some(_) => cx.fail(
            e.since.as_ref().unwrap_or(&e.name),
            format!("{what}: since must be \"auto\" (the last success's transactionTime), \"none\" or an instant such as \"2026-01-01T00:00:00Z\""),
        ),
    };
    let schedule = match &e.schedule {
        None => Some(parse_schedule("manual").ok()?),
        Some(s) => match parse_schedule(s.get_ref()) {
            Ok(p) => Some(p),
            Err(m) => cx.fail(s, format!("{what}: {m}")),
        },
    };
    // The folder sink is optional when resources go to `to`; one of them is needed.
    let output = match &e.output {
        Some(o) => Some(Some(cx.path(o.get_ref()))),
        None if !e.to.is_empty() => Some(None),
        None => cx.fail(
            &e.name,
            format!("{what}: export.{name}.output is missing: set output = \"exports\" (a folder, relative to this file) and/or to = [\"cloud-fhir\"] (kind = \"fhir\" destinations)"),
        ),
    };
    let mut to = Vec::new();
    for d in &e.to {
        let name = d.get_ref();
        match cx.facts().destination_kind_of(name) {
            // An unknown name is the cross check's error (it lists the destinations).
            None | Some("fhir") => {}
            Some(kind) => cx.error(
                d,
                format!("{what}: to names destination '{name}', which is kind {kind}: exported resources are written with PUT/DELETE to a kind = \"fhir\" destination"),
            ),
        }
        if to.contains(name) {
            cx.error(d, format!("{what}: to lists '{name}' twice"));
        }
        to.push(name.clone());
    }
    let namespace_ids = match e.namespace_ids.as_ref().map(|n| n.get_ref().as_str()) {
        None | Some("to") => Some(NamespaceIds::To),
        Some("all") => Some(NamespaceIds::All),
        Some("none") => Some(NamespaceIds::None),
        Some(_) => cx.fail(
            e.namespace_ids.as_ref().unwrap_or(&e.name),
            format!("{what}: namespace_ids must be \"to\" (ids namespaced per tenant in what goes to the `to` destinations; the folder keeps the server's ids), \"all\" (the folder too) or \"none\""),
        ),
    };
    let parallel = match &e.parallel_downloads {
        None => Some(2),
        Some(p) if (1..=16).contains(p.get_ref()) => Some(*p.get_ref() as usize),
        Some(p) => cx.fail(p, format!("{what}: parallel_downloads must be 1..=16")),
    };
    let max_line = match &e.max_line_bytes {
        None => Some(16 * 1024 * 1024),
        Some(m) if (1024..=256 * 1024 * 1024).contains(m.get_ref()) => Some(*m.get_ref() as usize),
        Some(m) => cx.fail(
            m,
            format!("{what}: max_line_bytes must be 1024 to 268435456"),
        ),
    };
    let mut dur = |v: &Option<Spanned<String>>, field: &str, default: Duration| {
        let Some(s) = v else { return Some(default) };
        cx.duration(&format!("{what}: {field}"), s)
    };
    let bounds = PollBounds::default();
    let floor = dur(&e.poll_min, "poll_min", bounds.floor);
    let ceiling = dur(&e.poll_max, "poll_max", bounds.ceiling);
    let alert_after = dur(
        &e.alert_after,
        "alert_after",
        Duration::from_secs(48 * 3600),
    );
    let timeout = dur(&e.timeout, "timeout", Duration::from_secs(60));
    let poll = match (floor, ceiling) {
        (Some(f), Some(c)) if f <= c && f >= Duration::from_millis(100) => Some(PollBounds {
            floor: f,
            ceiling: c,
        }),
        (Some(_), Some(_)) => cx.fail(
            e.poll_min.as_ref().unwrap_or(&e.name),
            format!("{what}: poll_min must be at least 100ms and at most poll_max"),
        ),
        _ => None,
    };
    let auth = maybe(e.auth.as_ref(), |a| {
        outbound::auth(cx, format!("{what}: auth"), a)
    });
    let tls = match &e.tls {
        None => outbound::client(cx, what.clone(), None, Default::default()),
        Some(t) => {
            let raw = RawHttpsClient {
                ca_file: t.get_ref().ca_file.as_ref().map(|c| c.get_ref().into()),
                spki_sha256_pins: t.get_ref().spki_sha256_pins.clone(),
                connect_timeout_secs: None,
                request_timeout_secs: None,
                ..Default::default()
            };
            let pos = cx.pos(t.get_ref().ca_file.as_ref().unwrap_or(&e.url));
            outbound::client(cx, what.clone(), Some(raw), pos)
        }
    };
    if !cx.clean_since(mark) {
        return None;
    }
    let mut tls = tls?;
    // The timeout is per request (kick-off, poll) and per read of a download, not per file.
    tls.value.request_timeout = timeout?;
    let base = url?.to_string().trim_end_matches('/').to_string();
    Some(ExportConfig {
        name,
        tenant,
        base_url: base,
        level: level?,
        types,
        type_filters: e.type_filters,
        since: since?,
        schedule: schedule?,
        output: output?,
        parallel_downloads: parallel?,
        poll: poll?,
        max_line_bytes: max_line?,
        alert_after: alert_after?,
        to,
        namespace_ids: namespace_ids?,
        auth: auth?,
        tls,
    })
}

/// `YYYY-MM-DDThh:mm:ss` with a zone: what `_since` takes.
fn looks_like_instant(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && (s.ends_with('Z') || s[19..].contains('+') || s[19..].contains('-'))
        && s[..4].bytes().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{validate, ExportLevel, ExportSince};
    use crate::source::export::schedule::Schedule;

    fn check(
        table: &str,
    ) -> Result<Vec<crate::config::ExportConfig<crate::config::Checked>>, String> {
        check_after("", table)
    }

    /// `table` after other tables `before`.
    fn check_after(
        before: &str,
        table: &str,
    ) -> Result<Vec<crate::config::ExportConfig<crate::config::Checked>>, String> {
        let text = format!("data_dir = \"/var/lib/gateway\"\n\n{before}[[export]]\n{table}");
        validate(
            &text,
            Path::new("/etc/gateway/gateway.toml"),
            Path::new("/etc/gateway"),
        )
        .map(|c| c.exports)
        .map_err(|e| e.to_string())
    }

    const MIN: &str =
        "name = \"acme-nightly\"\ntenant = \"acme\"\nurl = \"https://fhir.acme.example/r4/\"\noutput = \"exports\"\n";

    #[test]
    fn defaults_and_full_table() {
        let e = &check(MIN).unwrap()[0];
        assert_eq!(e.base_url, "https://fhir.acme.example/r4");
        assert_eq!(e.level, ExportLevel::System);
        assert_eq!(e.since, ExportSince::Auto);
        assert_eq!(e.schedule, Schedule::Manual);
        assert_eq!(e.output.as_deref(), Some(Path::new("/etc/gateway/exports")));
        assert_eq!(
            (e.parallel_downloads, e.alert_after.as_secs()),
            (2, 48 * 3600)
        );
        let e = &check(&format!(
            "{MIN}level = \"group\"\ngroup = \"diabetes\"\ntypes = [\"Patient\", \"Observation\"]\ntype_filters = [\"Observation?category=laboratory\"]\nsince = \"2026-01-01T00:00:00Z\"\nschedule = \"daily 02:00\"\n"
        ))
        .unwrap()[0];
        assert_eq!(e.level, ExportLevel::Group("diabetes".into()));
        assert_eq!(e.since, ExportSince::Instant("2026-01-01T00:00:00Z".into()));
        assert_eq!(e.schedule, Schedule::Daily { minute_of_day: 120 });
    }

    #[test]
    fn errors_name_the_line_and_say_what_to_do() {
        for (extra, line, says) in [
            ("level = \"group\"\n", 8, "needs group"),
            ("since = \"yesterday\"\n", 8, "since must be"),
            ("schedule = \"hourly\"\n", 8, "daily HH:MM"),
            (
                "to = [\"cloud-fhir\"]\n",
                8,
                "names destination 'cloud-fhir', which is not defined",
            ),
            ("namespace_ids = \"some\"\n", 8, "namespace_ids must be"),
            ("parallel_downloads = 0\n", 8, "1..=16"),
            (
                "poll_min = \"10m\"\npoll_max = \"1m\"\n",
                8,
                "at most poll_max",
            ),
        ] {
            let e = check(&format!("{MIN}{extra}")).unwrap_err();
            assert!(
                e.contains(&format!("gateway.toml:{line}:")) && e.contains(says),
                "{extra}: {e}"
            );
        }
        // `to` takes fhir destinations only, each once.
        let with_dest = |kind: &str, to: &str| {
            let at = if kind == "folder" {
                "path = \"/tmp/x\""
            } else {
                "url = \"https://cloud.example/fhir\""
            };
            let dest = format!("[[destination]]\nname = \"d\"\nkind = \"{kind}\"\n{at}\n\n");
            check_after(&dest, &format!("{MIN}to = {to}\n"))
        };
        let e = with_dest("folder", "[\"d\"]").unwrap_err();
        assert!(e.contains("which is kind folder"), "{e}");
        let e = with_dest("fhir", "[\"d\", \"d\"]").unwrap_err();
        assert!(e.contains("lists 'd' twice"), "{e}");
        let ok = with_dest("fhir", "[\"d\"]").unwrap();
        assert_eq!(ok[0].to, ["d"]);
        assert_eq!(ok[0].namespace_ids, crate::config::NamespaceIds::To);
        // No folder sink with `to`; neither is an error naming the key.
        assert_eq!(
            ok[0].output.as_deref(),
            Some(Path::new("/etc/gateway/exports"))
        );
        let dest = "[[destination]]\nname = \"d\"\nkind = \"fhir\"\nurl = \"https://cloud.example/fhir\"\n\n";
        let bare = "name = \"n\"\ntenant = \"t\"\nurl = \"https://fhir.example\"\n";
        let only_to = check_after(dest, &format!("{bare}to = [\"d\"]\n")).unwrap();
        assert_eq!(only_to[0].output, None);
        let e = check_after(dest, bare).unwrap_err();
        assert!(
            e.contains("export.n.output is missing") && e.contains("to = ["),
            "{e}"
        );
        let e = check("name = \"x\"\ntenant = \"../etc\"\nurl = \"http://fhir.example.com\"\n")
            .unwrap_err();
        assert!(
            e.contains("tenant must be") && e.contains("use https://"),
            "{e}"
        );
    }
}
