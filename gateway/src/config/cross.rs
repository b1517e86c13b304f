//! Checks across tables, over the [`Facts`] each table states from its raw
//! form (where every value still has its span): names unique within their
//! kind, routes naming sources and destinations that exist, the `fhir`
//! transform going to (and only to) `fhir` destinations, and every address
//! bound once. Every error is placed at the value at fault (the second
//! `name`, the `to` entry, the second `bind`), and names the line of the
//! other value involved. Pure.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use toml::Spanned;

use super::error::{ConfigError, Pos, TextMap};
use super::model::{StorageConfig, Transform};

/// What names a table defines and another may refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Namespace {
    /// Where messages come from (listeners, pollers): routes' `from`.
    Source,
    /// Where messages go: routes' `to`.
    Destination,
    Route,
}

#[derive(Debug)]
struct Name {
    ns: Namespace,
    /// The table it is from, e.g. "listener".
    kind: &'static str,
    name: String,
    pos: Pos,
}

#[derive(Debug)]
struct Reference {
    ns: Namespace,
    name: String,
    pos: Pos,
    /// e.g. "route 'all'".
    owner: String,
    /// e.g. "from".
    field: &'static str,
}

#[derive(Debug)]
struct Bind {
    addr: SocketAddr,
    pos: Pos,
    /// e.g. "listener 'ehr'", "health".
    owner: String,
}

/// A route sending to a destination with a transform.
#[derive(Debug)]
struct Delivery {
    route: String,
    transform: Transform,
    destination: String,
    pos: Pos,
}

/// What the tables state for the checks across them, and the little one
/// table's validation needs to know of another.
#[derive(Debug)]
pub(crate) struct Facts {
    names: Vec<Name>,
    references: Vec<Reference>,
    binds: Vec<Bind>,
    deliveries: Vec<Delivery>,
    /// Destination name → its `kind` as written.
    destination_kinds: BTreeMap<String, String>,
    /// `[storage] warn_at_percent` (the default of `[alerts] disk_warn_percent`).
    pub storage_warn_at_percent: u8,
}

/// Collects [`Facts`] from the raw tables.
pub(crate) struct FactSheet<'a> {
    map: &'a TextMap<'a>,
    facts: Facts,
}

impl Facts {
    /// A destination's `kind` as written (`None`: no such destination).
    pub fn destination_kind_of(&self, name: &str) -> Option<&str> {
        self.destination_kinds.get(name).map(String::as_str)
    }
}

impl<'a> FactSheet<'a> {
    pub(super) fn new(map: &'a TextMap<'a>) -> FactSheet<'a> {
        FactSheet {
            map,
            facts: Facts {
                names: Vec::new(),
                references: Vec::new(),
                binds: Vec::new(),
                deliveries: Vec::new(),
                destination_kinds: BTreeMap::new(),
                storage_warn_at_percent: StorageConfig::default().warn_at_percent,
            },
        }
    }

    pub fn pos<T>(&self, v: &Spanned<T>) -> Pos {
        self.map.pos(v.span().start)
    }

    /// A table item's `name`.
    pub fn name(&mut self, ns: Namespace, kind: &'static str, name: &Spanned<String>) {
        let pos = self.pos(name);
        self.facts.names.push(Name {
            ns,
            kind,
            name: name.get_ref().clone(),
            pos,
        });
    }

    /// A value naming an item of another table.
    pub fn reference(
        &mut self,
        ns: Namespace,
        owner: String,
        field: &'static str,
        name: &Spanned<String>,
    ) {
        let pos = self.pos(name);
        self.facts.references.push(Reference {
            ns,
            name: name.get_ref().clone(),
            pos,
            owner,
            field,
        });
    }

    /// An address a server will bind (one that does not parse is its table's error).
    pub fn bind(&mut self, owner: String, text: &str, pos: Pos) {
        if let Ok(addr) = text.parse() {
            self.facts.binds.push(Bind { addr, pos, owner });
        }
    }

    pub fn destination_kind(&mut self, name: &str, kind: &str) {
        self.facts
            .destination_kinds
            .insert(name.to_string(), kind.to_string());
    }

    /// A route's `to` entry, with the route's transform.
    pub fn delivery(&mut self, route: &str, transform: Transform, destination: &Spanned<String>) {
        let pos = self.pos(destination);
        self.facts.deliveries.push(Delivery {
            route: route.to_string(),
            transform,
            destination: destination.get_ref().clone(),
            pos,
        });
    }

    pub fn storage_warn_at_percent(&mut self, percent: u8) {
        self.facts.storage_warn_at_percent = percent;
    }

    pub(super) fn finish(self) -> Facts {
        self.facts
    }
}

/// Every cross-table problem, each at the value at fault.
pub(super) fn check(facts: &Facts, file: &Path) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut err = |pos: Pos, reason: String| errors.push(ConfigError::new(file, pos, reason));
    names(facts, &mut err);
    references(facts, &mut err);
    deliveries(facts, &mut err);
    binds(facts, &mut err);
    errors
}

fn names(facts: &Facts, err: &mut impl FnMut(Pos, String)) {
    let mut names: Vec<&Name> = facts.names.iter().collect();
    names.sort_by_key(|n| n.pos);
    for (i, n) in names.iter().enumerate() {
        let valid = !n.name.is_empty()
            && n.name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !valid {
            err(
                n.pos,
                format!(
                    "{} name '{}' must be non-empty and use only letters, digits, '-', '_' or '.'",
                    n.kind, n.name
                ),
            );
            continue;
        }
        if let Some(first) = names[..i].iter().find(|m| m.ns == n.ns && m.name == n.name) {
            err(
                n.pos,
                format!(
                    "{} name '{}' is used twice: names must be unique{} (the {} '{}' at line {})",
                    n.kind,
                    n.name,
                    match n.ns {
                        Namespace::Source => " among listeners and pollers",
                        _ => "",
                    },
                    first.kind,
                    first.name,
                    first.pos.line
                ),
            );
        }
    }
}

fn defined(facts: &Facts, ns: Namespace) -> String {
    let mut v: Vec<&str> = facts
        .names
        .iter()
        .filter(|n| n.ns == ns)
        .map(|n| n.name.as_str())
        .collect();
    v.sort_unstable();
    v.dedup();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn references(facts: &Facts, err: &mut impl FnMut(Pos, String)) {
    for r in &facts.references {
        if facts.names.iter().any(|n| n.ns == r.ns && n.name == r.name) {
            continue;
        }
        let (owner, field, name, known) = (&r.owner, r.field, &r.name, defined(facts, r.ns));
        err(
            r.pos,
            match r.ns {
                Namespace::Source => format!("{owner}: {field} names '{name}', which is not a listener or poller (defined: {known})"),
                Namespace::Destination => format!("{owner}: {field} names destination '{name}', which is not defined (destinations: {known})"),
                Namespace::Route => format!("{owner}: {field} names route '{name}', which is not defined (routes: {known})"),
            },
        );
    }
}

/// A fhir destination needs Bundles, and only it takes them.
fn deliveries(facts: &Facts, err: &mut impl FnMut(Pos, String)) {
    for d in &facts.deliveries {
        let Some(kind) = facts.destination_kinds.get(&d.destination) else {
            continue;
        };
        let (route, to) = (&d.route, &d.destination);
        let is_fhir = kind == "fhir";
        if is_fhir && d.transform != Transform::Fhir {
            err(d.pos, format!("route '{route}': destination '{to}' is kind fhir: add transform = \"fhir\" to the route"));
        }
        if !is_fhir && d.transform == Transform::Fhir {
            err(d.pos, format!("route '{route}': transform \"fhir\" makes FHIR Bundles, but destination '{to}' is kind {kind}: send them to a fhir destination"));
        }
    }
}

/// Whether two servers cannot both bind: the same port, and the same
/// address or a wildcard of the same family (0.0.0.0 takes every IPv4 address).
fn collide(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && (a.ip() == b.ip()
            || (a.is_ipv4() == b.is_ipv4() && (a.ip().is_unspecified() || b.ip().is_unspecified())))
}

fn binds(facts: &Facts, err: &mut impl FnMut(Pos, String)) {
    let mut binds: Vec<&Bind> = facts.binds.iter().collect();
    binds.sort_by_key(|b| b.pos);
    for (i, b) in binds.iter().enumerate() {
        if let Some(first) = binds[..i].iter().find(|f| collide(f.addr, b.addr)) {
            err(
                b.pos,
                format!(
                    "{}: bind {} collides with {} on {} (line {}): give each its own port",
                    b.owner, b.addr, first.owner, first.addr, first.pos.line
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_collide_within_their_family() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(collide(a("127.0.0.1:2575"), a("127.0.0.1:2575")));
        assert!(collide(a("0.0.0.0:2575"), a("127.0.0.1:2575")));
        assert!(!collide(a("127.0.0.1:2575"), a("127.0.0.2:2575")));
        assert!(!collide(a("127.0.0.1:2575"), a("127.0.0.1:2576")));
        assert!(!collide(a("[::1]:2575"), a("127.0.0.1:2575")));
    }
}
