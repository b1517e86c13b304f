//! TOML → [`Config`]: serde does the syntax (its errors carry a byte span),
//! then every semantic check reports the span of the offending value, turned
//! into `file:line:column: reason` here.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::destination::RawDestination;
use super::model::*;
use super::poller::RawPoller;
use super::Cidr;
use crate::route::Glob;

/// A configuration problem, located in its file.
#[derive(Debug, Clone)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no position (e.g. the file is unreadable).
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.reason
            )
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Spanned<String>,
    admin_socket: Option<Spanned<String>>,
    #[serde(default)]
    storage: Option<RawStorage>,
    #[serde(default, rename = "listener")]
    listeners: Vec<RawListener>,
    #[serde(default, rename = "destination")]
    destinations: Vec<RawDestination>,
    #[serde(default, rename = "route")]
    routes: Vec<RawRoute>,
    #[serde(default, rename = "poller")]
    pollers: Vec<RawPoller>,
    health: Option<Spanned<super::ops::RawHealth>>,
    alerts: Option<Spanned<super::ops::RawAlerts>>,
    fleet: Option<Spanned<super::ops::RawFleet>>,
    status_page: Option<Spanned<super::ops::RawStatusPage>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    quota_mb: Option<Spanned<u64>>,
    warn_at_percent: Option<Spanned<u8>>,
    refuse_at_percent: Option<Spanned<u8>>,
    quarantine_max_entries: Option<usize>,
    quarantine_max_mb: Option<u64>,
    retention_days: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    name: Spanned<String>,
    bind: Spanned<String>,
    max_frame_bytes: Option<Spanned<u64>>,
    idle_timeout_secs: Option<Spanned<u64>>,
    frame_timeout_secs: Option<Spanned<u64>>,
    max_connections: Option<Spanned<u64>>,
    max_connections_per_peer: Option<Spanned<u64>>,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    tls: Option<RawTls>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Spanned<String>,
    key: Spanned<String>,
    client_ca: Option<Spanned<String>>,
    handshake_timeout_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Spanned<String>,
    from: Spanned<Vec<Spanned<String>>>,
    to: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    transform: Option<Spanned<String>>,
    #[serde(default)]
    types: Vec<Spanned<String>>,
    #[serde(default)]
    sending_facility: OneOrMany,
    #[serde(default)]
    receiving_application: OneOrMany,
}

/// A glob or a list of globs.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum OneOrMany {
    #[default]
    Empty,
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn globs(self) -> Vec<Glob> {
        match self {
            OneOrMany::Empty => vec![],
            OneOrMany::One(s) => vec![Glob::new(&s)],
            OneOrMany::Many(v) => v.iter().map(|s| Glob::new(s)).collect(),
        }
    }
}

/// Read and validate a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        reason: format!("cannot read the config file: {e}"),
    })?;
    parse_str(&text, path)
}

/// Validate config text as if it were the file at `path` (paths resolve against its directory).
pub fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let ctx = Ctx { text, file: path };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        ctx.err_at(span.start, e.message().to_string())
    })?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let base = std::path::absolute(&base).unwrap_or(base);
    ctx.build(raw, &base)
}

pub(super) struct Ctx<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Ctx<'_> {
    pub(super) fn err_at(&self, offset: usize, reason: String) -> ConfigError {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .map(|l| l.chars().count())
            .unwrap_or(0)
            + 1;
        ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            reason,
        }
    }

    /// An error located at the first occurrence of `needle` in the file
    /// (for checks across tables, which have no single span).
    fn named_err(&self, needle: &str, reason: String) -> ConfigError {
        let offset = self.text.find(needle).unwrap_or(0);
        self.err_at(offset, reason)
    }

    pub(super) fn err<T>(&self, at: &Spanned<T>, reason: String) -> ConfigError {
        self.err_at(at.span().start, reason)
    }

    fn build(&self, raw: RawConfig, base: &Path) -> Result<Config, ConfigError> {
        if raw.data_dir.get_ref().trim().is_empty() {
            return Err(self.err(&raw.data_dir, "data_dir is empty: give a directory for the journal, e.g. data_dir = \"/var/lib/gateway\"".into()));
        }
        let data_dir = resolve(base, raw.data_dir.get_ref());
        let admin_socket = raw
            .admin_socket
            .as_ref()
            .map(|s| resolve(base, s.get_ref()));
        if let (Some(path), Some(span)) = (&admin_socket, &raw.admin_socket) {
            // sun_path holds 108 bytes including the NUL.
            if path.as_os_str().len() > 107 {
                return Err(self.err(
                    span,
                    format!(
                        "admin_socket path {} is longer than the 107 bytes a Unix socket allows",
                        path.display()
                    ),
                ));
            }
        }
        let storage = self.storage(raw.storage)?;
        let ops = self.ops(
            super::ops::RawOps {
                health: raw.health,
                alerts: raw.alerts,
                fleet: raw.fleet,
                status_page: raw.status_page,
            },
            &storage,
            base,
        )?;

        let mut names = HashSet::new();
        let mut listeners = Vec::new();
        for l in raw.listeners {
            self.unique_name(&mut names, "listener", &l.name)?;
            listeners.push(self.listener(l, base)?);
        }
        // Pollers are sources like listeners: routes name them in `from`.
        let mut pollers = Vec::new();
        for p in raw.pollers {
            self.unique_name(&mut names, "listener or poller", &p.name)?;
            pollers.push(self.poller(p, base)?);
        }
        let mut dest_names = HashSet::new();
        let mut destinations = Vec::new();
        for d in raw.destinations {
            self.unique_name(&mut dest_names, "destination", &d.name)?;
            destinations.push(self.destination(d, base)?);
        }
        let mut route_names = HashSet::new();
        let mut routes = Vec::new();
        for r in raw.routes {
            self.unique_name(&mut route_names, "route", &r.name)?;
            routes.push(self.route(r, &names, &dest_names)?);
        }
        // A fhir destination needs Bundles, and only it takes them.
        for r in &routes {
            for t in &r.to {
                let Some(d) = destinations.iter().find(|d| &d.name == t) else {
                    continue;
                };
                let is_fhir = matches!(d.kind, DestinationKind::Fhir(_));
                if is_fhir && r.transform != Transform::Fhir {
                    return Err(self.named_err(
                        &format!("name = \"{}\"", r.name),
                        format!("route '{}': destination '{t}' is kind fhir: add transform = \"fhir\" to the route", r.name),
                    ));
                }
                if !is_fhir && r.transform == Transform::Fhir {
                    return Err(self.named_err(
                        &format!("name = \"{}\"", r.name),
                        format!("route '{}': transform \"fhir\" makes FHIR Bundles, but destination '{t}' is kind {}: send them to a fhir destination", r.name, d.kind.label()),
                    ));
                }
            }
        }
        let mut binds = HashSet::new();
        binds.extend(ops.health.as_ref().map(|h| h.bind));
        binds.extend(ops.status_page.as_ref().map(|h| h.bind));
        for l in &listeners {
            if !binds.insert(l.bind) {
                return Err(ConfigError {
                    file: self.file.to_path_buf(),
                    line: 0,
                    column: 0,
                    reason: format!(
                        "two listeners (or a listener and [health]/[status_page]) bind {}: give each its own port",
                        l.bind
                    ),
                });
            }
        }
        Ok(Config {
            source: std::path::absolute(self.file).unwrap_or_else(|_| self.file.to_path_buf()),
            data_dir,
            admin_socket,
            storage,
            listeners,
            destinations,
            routes,
            pollers,
            health: ops.health,
            alerts: ops.alerts,
            fleet: ops.fleet,
            status_page: ops.status_page,
        })
    }

    fn unique_name(
        &self,
        seen: &mut HashSet<String>,
        what: &str,
        name: &Spanned<String>,
    ) -> Result<(), ConfigError> {
        let n = name.get_ref();
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(self.err(name, format!("{what} name '{n}' must be non-empty and use only letters, digits, '-', '_' or '.'")));
        }
        if !seen.insert(n.clone()) {
            return Err(self.err(
                name,
                format!("{what} name '{n}' is used twice: names must be unique"),
            ));
        }
        Ok(())
    }

    fn storage(&self, raw: Option<RawStorage>) -> Result<StorageConfig, ConfigError> {
        let mut s = StorageConfig::default();
        let Some(raw) = raw else { return Ok(s) };
        if let Some(q) = raw.quota_mb {
            if *q.get_ref() == 0 {
                return Err(self.err(
                    &q,
                    "storage.quota_mb must be at least 1 (omit it for no quota)".into(),
                ));
            }
            s.quota_bytes = Some(q.get_ref().saturating_mul(1024 * 1024));
        }
        if let Some(w) = &raw.warn_at_percent {
            s.warn_at_percent = *w.get_ref();
        }
        if let Some(r) = &raw.refuse_at_percent {
            s.refuse_at_percent = *r.get_ref();
        }
        if s.refuse_at_percent == 0
            || s.refuse_at_percent > 100
            || s.warn_at_percent >= s.refuse_at_percent
        {
            let at = raw
                .refuse_at_percent
                .as_ref()
                .map(|r| r.span().start)
                .or(raw.warn_at_percent.as_ref().map(|w| w.span().start))
                .unwrap_or(0);
            return Err(self.err_at(
                at,
                format!(
                    "storage: need 0 < warn_at_percent ({}) < refuse_at_percent ({}) <= 100",
                    s.warn_at_percent, s.refuse_at_percent
                ),
            ));
        }
        if let Some(n) = raw.quarantine_max_entries {
            s.quarantine_max_entries = n;
        }
        if let Some(mb) = raw.quarantine_max_mb {
            s.quarantine_max_bytes = mb.saturating_mul(1024 * 1024);
        }
        if let Some(d) = &raw.retention_days {
            let days = *d.get_ref();
            if !(days > 0.0 && days <= 3650.0) {
                return Err(self.err(
                    d,
                    format!("storage.retention_days must be above 0 and at most 3650 (got {days})"),
                ));
            }
            s.retention = Duration::from_secs_f64(days * 86400.0);
        }
        Ok(s)
    }

    fn listener(&self, l: RawListener, base: &Path) -> Result<ListenerConfig, ConfigError> {
        let name = l.name.get_ref().clone();
        let bind: SocketAddr = l.bind.get_ref().parse().map_err(|_| {
            self.err(&l.bind, format!("listener '{name}': bind '{}' is not HOST:PORT with an IP address (e.g. 0.0.0.0:2575 or 127.0.0.1:2575)", l.bind.get_ref()))
        })?;
        let positive =
            |v: &Option<Spanned<u64>>, field: &str, default: u64| -> Result<u64, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(s) if *s.get_ref() == 0 => Err(self.err(
                        s,
                        format!("listener '{name}': {field} must be greater than 0"),
                    )),
                    Some(s) => Ok(*s.get_ref()),
                }
            };
        let max_frame_bytes = positive(
            &l.max_frame_bytes,
            "max_frame_bytes",
            DEFAULT_MAX_FRAME_BYTES as u64,
        )?;
        if max_frame_bytes > 256 * 1024 * 1024 {
            let at = l
                .max_frame_bytes
                .as_ref()
                .map(|s| s.span().start)
                .unwrap_or(0);
            return Err(self.err_at(at, format!("listener '{name}': max_frame_bytes {max_frame_bytes} is above the 256 MiB ceiling")));
        }
        let idle = positive(&l.idle_timeout_secs, "idle_timeout_secs", 300)?;
        let frame = positive(&l.frame_timeout_secs, "frame_timeout_secs", 60)?;
        let max_conn = positive(&l.max_connections, "max_connections", 64)?;
        let per_peer = positive(&l.max_connections_per_peer, "max_connections_per_peer", 16)?;
        let mut allow = Vec::new();
        for a in &l.allow {
            let c: Cidr = a
                .get_ref()
                .parse()
                .map_err(|e: String| self.err(a, format!("listener '{name}': allow entry {e}")))?;
            allow.push(c);
        }
        let tls = match l.tls {
            None => None,
            Some(t) => {
                let cert = self.existing_file(base, &t.cert, &name, "tls.cert")?;
                let key = self.existing_file(base, &t.key, &name, "tls.key")?;
                let client_ca = match &t.client_ca {
                    Some(ca) => Some(self.existing_file(base, ca, &name, "tls.client_ca")?),
                    None => None,
                };
                Some(TlsServerConfig {
                    cert,
                    key,
                    client_ca,
                    handshake_timeout: Duration::from_secs(
                        t.handshake_timeout_secs.unwrap_or(10).max(1),
                    ),
                })
            }
        };
        Ok(ListenerConfig {
            name,
            bind,
            max_frame_bytes: max_frame_bytes as usize,
            idle_timeout: Duration::from_secs(idle),
            frame_timeout: Duration::from_secs(frame),
            max_connections: max_conn as usize,
            max_connections_per_peer: per_peer as usize,
            allow,
            tls,
        })
    }

    fn existing_file(
        &self,
        base: &Path,
        v: &Spanned<String>,
        owner: &str,
        field: &str,
    ) -> Result<PathBuf, ConfigError> {
        let p = match v.get_ref().strip_prefix("credential:") {
            // systemd LoadCredential=NAME:/path (e.g. a private key only root can read).
            Some(name) => {
                if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                    return Err(self.err(v, format!("listener '{owner}': {field}: '{}' is not a valid credential name (the NAME of LoadCredential=NAME:/path)", v.get_ref())));
                }
                match std::env::var_os("CREDENTIALS_DIRECTORY") {
                    Some(dir) => PathBuf::from(dir).join(name),
                    None => return Err(self.err(v, format!("listener '{owner}': {field} uses '{}' but $CREDENTIALS_DIRECTORY is not set: add LoadCredential={name}:/path/to/file to gateway.service, or give a file path", v.get_ref()))),
                }
            }
            None => resolve(base, v.get_ref()),
        };
        if !p.is_file() {
            return Err(self.err(
                v,
                format!(
                    "listener '{owner}': {field} '{}' does not exist or is not a file",
                    p.display()
                ),
            ));
        }
        Ok(p)
    }

    fn route(
        &self,
        r: RawRoute,
        listeners: &HashSet<String>,
        dests: &HashSet<String>,
    ) -> Result<RouteConfig, ConfigError> {
        let name = r.name.get_ref().clone();
        if r.from.get_ref().is_empty() {
            return Err(self.err(
                &r.from,
                format!("route '{name}': from is empty: list at least one listener"),
            ));
        }
        if r.to.get_ref().is_empty() {
            return Err(self.err(
                &r.to,
                format!("route '{name}': to is empty: list at least one destination"),
            ));
        }
        for f in r.from.get_ref() {
            if !listeners.contains(f.get_ref()) {
                return Err(self.err(f, format!("route '{name}': from names '{}', which is not a listener or poller (defined: {})", f.get_ref(), sorted(listeners))));
            }
        }
        for t in r.to.get_ref() {
            if !dests.contains(t.get_ref()) {
                return Err(self.err(t, format!("route '{name}': to names destination '{}', which is not defined (destinations: {})", t.get_ref(), sorted(dests))));
            }
        }
        let transform = match &r.transform {
            None => Transform::None,
            Some(t) => match t.get_ref().as_str() {
                "none" => Transform::None,
                "fhir" => Transform::Fhir,
                other => return Err(self.err(t, format!("route '{name}': unknown transform \"{other}\"; expected \"none\" or \"fhir\""))),
            },
        };
        Ok(RouteConfig {
            name,
            from: r
                .from
                .into_inner()
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            to: r
                .to
                .into_inner()
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
            transform,
            message_types: r.types.iter().map(|t| Glob::new(t.get_ref())).collect(),
            sending_facilities: r.sending_facility.globs(),
            receiving_applications: r.receiving_application.globs(),
        })
    }
}

fn sorted(set: &HashSet<String>) -> String {
    let mut v: Vec<&str> = set.iter().map(String::as_str).collect();
    v.sort_unstable();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

pub(super) fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    normalize(&joined)
}

/// Drop `.` and fold `dir/..` lexically, so messages show `/srv/var`, not `/srv/config/../var`.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_str(text, Path::new("/etc/gw/gateway.toml"))
    }

    const GOOD: &str = r#"
data_dir = "../var"

[[listener]]
name = "ehr"
bind = "127.0.0.1:2575"

[[destination]]
name = "archive"
kind = "folder"
path = "out"

[[route]]
name = "all"
from = ["ehr"]
to = ["archive"]
"#;

    #[test]
    fn good_config_resolves_relative_paths_against_the_file() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/etc/var"));
        match &c.destinations[0].kind {
            DestinationKind::Folder { path } => assert_eq!(path, &PathBuf::from("/etc/gw/out")),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.listeners[0].max_frame_bytes, 16 * 1024 * 1024);
        assert_eq!(c.routes[0].transform, Transform::None);
    }

    #[test]
    fn unknown_listener_in_route_names_line() {
        let bad = GOOD.replace("from = [\"ehr\"]", "from = [\"lab\"]");
        let e = parse(&bad).unwrap_err();
        assert_eq!(e.line, 15, "{e}");
        assert!(e.reason.contains("from names 'lab'"), "{e}");
        assert!(e.to_string().starts_with("/etc/gw/gateway.toml:15:"), "{e}");
    }

    #[test]
    fn bad_bind_and_syntax_and_unknown_key() {
        let e = parse(&GOOD.replace("127.0.0.1:2575", "localhost")).unwrap_err();
        assert_eq!(e.line, 6);
        assert!(e.reason.contains("HOST:PORT"));
        let e = parse(&GOOD.replace("name = \"ehr\"", "name = ehr")).unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        let e = parse(&GOOD.replace("name = \"archive\"", "name = \"archive\"\ncolour = 1"))
            .unwrap_err();
        assert!(e.reason.contains("colour"), "{e}");
    }

    #[test]
    fn duplicate_names_and_unsupported_kinds() {
        let dup = format!("{GOOD}\n[[listener]]\nname = \"ehr\"\nbind = \"127.0.0.1:2576\"\n");
        let e = parse(&dup).unwrap_err();
        assert!(e.reason.contains("used twice"), "{e}");
        let e = parse(&GOOD.replace("kind = \"folder\"", "kind = \"ftp\"")).unwrap_err();
        assert!(e.reason.contains("unknown kind"), "{e}");
        let e = parse(&GOOD.replace("path = \"out\"", "")).unwrap_err();
        assert!(e.reason.contains("needs path"), "{e}");
    }

    const DESTS: &str = r#"
[[destination]]
name = "cloud"
kind = "fhir"
url = "https://fhir.example.com/r4/"
concurrency = 4
backoff_max = "2m"
max_attempts = 10
probe_interval = "5s"

[[destination]]
name = "lab"
kind = "mllp"
url = "mllp://10.1.2.3:6661"
lane = "destination"
on_dead_letter = "continue"

[[destination]]
name = "billing"
kind = "http"
url = "http://127.0.0.1:8080/hl7"
format = "json"
headers = { "X-Api-Key" = "k1" }
"#;

    #[test]
    fn destination_kinds_and_delivery_policy() {
        let text = GOOD.replace(
            "[[route]]",
            &format!(
                "{DESTS}\n[[route]]\n{}",
                r#"sending_facility = "CLINIC*"
types = ["ADT^*", "ORU^R01"]"#
            ),
        );
        let c = parse(&text).unwrap();
        let cloud = &c.destinations[1];
        match &cloud.kind {
            DestinationKind::Fhir(h) => assert_eq!(h.url, "https://fhir.example.com/r4"),
            other => panic!("{other:?}"),
        }
        assert_eq!(cloud.delivery.concurrency, 4);
        assert_eq!(cloud.delivery.max_backoff, Duration::from_secs(120));
        assert_eq!(cloud.delivery.max_attempts, Some(10));
        assert_eq!(cloud.delivery.lane, LaneMode::Patient);
        assert_eq!(cloud.delivery.on_dead_letter, DeadLetterPolicy::Hold);
        let lab = &c.destinations[2];
        match &lab.kind {
            DestinationKind::Mllp(m) => {
                assert_eq!(m.address, "10.1.2.3:6661");
                assert!(m.tls.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(lab.delivery.concurrency, 1);
        assert_eq!(lab.delivery.lane, LaneMode::Destination);
        assert_eq!(lab.delivery.on_dead_letter, DeadLetterPolicy::Continue);
        match &c.destinations[3].kind {
            DestinationKind::Http(h) => {
                assert_eq!(h.format, HttpFormat::Json);
                assert_eq!(h.headers, vec![("X-Api-Key".to_string(), "k1".to_string())]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.routes[0].message_types.len(), 2);
        assert_eq!(c.routes[0].sending_facilities.len(), 1);
    }

    #[test]
    fn destination_errors_name_the_line() {
        let text = GOOD.replace("[[route]]", &format!("{DESTS}\n[[route]]"));
        let e =
            parse(&text.replace("backoff_max = \"2m\"", "backoff_max = \"2 weeks\"")).unwrap_err();
        assert!(
            e.reason.contains("backoff_max") && e.reason.contains("unit"),
            "{e}"
        );
        assert_eq!(e.line, 19, "{e}");
        let e = parse(&text.replace("mllp://10.1.2.3:6661", "tcp://10.1.2.3:6661")).unwrap_err();
        assert!(e.reason.contains("mllp://HOST:PORT"), "{e}");
        let e = parse(&text.replace("mllp://10.1.2.3:6661", "mllps://10.1.2.3:6661")).unwrap_err();
        assert!(e.reason.contains("ca_file"), "{e}");
        let e = parse(&text.replace("lane = \"destination\"", "lane = \"facility\"")).unwrap_err();
        assert!(e.reason.contains("lane \"facility\""), "{e}");
        let e = parse(&text.replace("https://fhir.example.com/r4/", "ftp://x")).unwrap_err();
        assert!(e.reason.contains("not http or https"), "{e}");
        let e = parse(&text.replace("max_attempts = 10", "max_attempts = 0")).unwrap_err();
        assert!(e.reason.contains("max_attempts"), "{e}");
    }

    #[test]
    fn fhir_destinations_need_the_fhir_transform_and_valid_settings() {
        let base = GOOD.replace(
            "[[route]]",
            "[[destination]]\nname = \"cloud\"\nkind = \"fhir\"\nurl = \"https://fhir.example.com/r4\"\ntenant = \"clinic-7\"\nupdate = \"conditional\"\nutc_offset = \"-05:00\"\nidentifier_systems = { CLINIC = \"http://clinic.example/mrn\" }\n\n[[route]]",
        )
        .replace("to = [\"archive\"]", "to = [\"cloud\"]\ntransform = \"fhir\"");
        let c = parse(&base).unwrap();
        match &c.destinations[1].kind {
            DestinationKind::Fhir(h) => {
                let f = h.fhir.as_ref().unwrap();
                assert_eq!(f.tenant, "clinic-7");
                assert!(f.conditional);
                assert_eq!(f.utc_offset.as_deref(), Some("-05:00"));
                assert_eq!(f.identifier_systems.len(), 1);
            }
            other => panic!("{other:?}"),
        }
        let e = parse(&base.replace("transform = \"fhir\"", "")).unwrap_err();
        assert!(e.reason.contains("add transform = \"fhir\""), "{e}");
        let e = parse(&base.replace("to = [\"cloud\"]", "to = [\"archive\"]")).unwrap_err();
        assert!(e.reason.contains("send them to a fhir destination"), "{e}");
        let e = parse(&base.replace("-05:00", "EST")).unwrap_err();
        assert!(e.reason.contains("utc_offset"), "{e}");
        let e = parse(&base.replace("\"conditional\"", "\"merge\"")).unwrap_err();
        assert!(e.reason.contains("update \"merge\""), "{e}");
        let e = parse(&base.replace("http://clinic.example/mrn", "clinic mrn")).unwrap_err();
        assert!(e.reason.contains("must be a URI"), "{e}");
    }

    #[test]
    fn allowlist_and_tls_missing_file() {
        let c = parse(&GOOD.replace(
            "bind = \"127.0.0.1:2575\"",
            "bind = \"127.0.0.1:2575\"\nallow = [\"10.0.0.0/8\"]",
        ))
        .unwrap();
        assert_eq!(c.listeners[0].allow.len(), 1);
        let e = parse(&GOOD.replace(
            "bind = \"127.0.0.1:2575\"",
            "bind = \"127.0.0.1:2575\"\nallow = [\"10.0.0.0/99\"]",
        ))
        .unwrap_err();
        assert_eq!(e.line, 7);
        let e = parse(&GOOD.replace(
            "bind = \"127.0.0.1:2575\"",
            "bind = \"127.0.0.1:2575\"\ntls = { cert = \"nope.pem\", key = \"nope.key\" }",
        ))
        .unwrap_err();
        assert!(e.reason.contains("tls.cert"), "{e}");
    }
}
