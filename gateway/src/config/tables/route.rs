//! `[[route]]`: which messages (globs on type, sending facility, receiving
//! application) of which sources go to which destinations, with which
//! transform. That `from` and `to` name what exists, and that `fhir`
//! matches the destinations' kind, is checked across tables (`cross`).

use serde::Deserialize;
use toml::Spanned;

use crate::config::check::{each, Check};
use crate::config::cross::{FactSheet, Namespace};
use crate::config::model::{RouteConfig, Transform};
use crate::config::resolve::Resolver;
use crate::config::table::Table;
use crate::route::Glob;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
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

fn transform(name: &str) -> Option<Transform> {
    match name {
        "none" => Some(Transform::None),
        "fhir" => Some(Transform::Fhir),
        _ => None,
    }
}

pub(crate) struct Routes;

impl Table for Routes {
    type Raw = Vec<RawRoute>;
    type Checked = Vec<RouteConfig>;
    type Resolved = Vec<RouteConfig>;

    fn facts(raw: &Self::Raw, sheet: &mut FactSheet<'_>) {
        for r in raw {
            let name = r.name.get_ref();
            sheet.name(Namespace::Route, "route", &r.name);
            for f in r.from.get_ref() {
                sheet.reference(Namespace::Source, format!("route '{name}'"), "from", f);
            }
            let t = match &r.transform {
                None => Some(Transform::None),
                Some(t) => transform(t.get_ref()),
            };
            for to in r.to.get_ref() {
                sheet.reference(Namespace::Destination, format!("route '{name}'"), "to", to);
                if let Some(t) = t {
                    sheet.delivery(name, t, to);
                }
            }
        }
    }

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<Self::Checked> {
        each(raw, |r| route(r, cx))
    }

    fn resolve(checked: Self::Checked, _: &mut Resolver<'_>) -> Option<Self::Resolved> {
        Some(checked)
    }
}

fn route(r: RawRoute, cx: &mut Check<'_>) -> Option<RouteConfig> {
    let name = r.name.get_ref().clone();
    let mark = cx.mark();
    if r.from.get_ref().is_empty() {
        cx.error(
            &r.from,
            format!("route '{name}': from is empty: list at least one listener"),
        );
    }
    if r.to.get_ref().is_empty() {
        cx.error(
            &r.to,
            format!("route '{name}': to is empty: list at least one destination"),
        );
    }
    let transform = match &r.transform {
        None => Some(Transform::None),
        Some(t) => match transform(t.get_ref()) {
            Some(t) => Some(t),
            None => cx.fail(
                t,
                format!(
                    "route '{name}': unknown transform \"{}\"; expected \"none\" or \"fhir\"",
                    t.get_ref()
                ),
            ),
        },
    };
    if !cx.clean_since(mark) {
        return None;
    }
    let names = |v: Spanned<Vec<Spanned<String>>>| -> Vec<String> {
        v.into_inner()
            .into_iter()
            .map(Spanned::into_inner)
            .collect()
    };
    Some(RouteConfig {
        name,
        from: names(r.from),
        to: names(r.to),
        transform: transform?,
        message_types: r.types.iter().map(|t| Glob::new(t.get_ref())).collect(),
        sending_facilities: r.sending_facility.globs(),
        receiving_applications: r.receiving_application.globs(),
    })
}
