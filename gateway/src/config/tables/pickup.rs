//! `[[pickup]]`: folder sources. eCW drops files into `path`; files whose
//! name matches `pattern` are taken once settled, journaled, then archived
//! or deleted (`source::pickup`). Pickups are sources: routes name them in
//! `from`. `usage` and `ack_dir` are for `format = "x12"` only.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::check::{each, Check};
use crate::config::cross::{FactSheet, Namespace};
use crate::config::model::{AfterPickup, PickupConfig, PickupFormat};
use crate::config::resolve::Resolver;
use crate::config::table::Table;
use crate::route::Glob;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPickup {
    name: Spanned<String>,
    path: Spanned<String>,
    pattern: Spanned<Patterns>,
    format: Spanned<String>,
    settle: Option<Spanned<String>>,
    after: Option<Spanned<String>>,
    rescan: Option<Spanned<String>>,
    inotify: Option<bool>,
    usage: Option<Spanned<String>>,
    ack_dir: Option<Spanned<String>>,
}

/// A glob or a list of globs.
#[derive(Deserialize)]
#[serde(untagged)]
enum Patterns {
    One(String),
    Many(Vec<String>),
}

pub(crate) struct Pickups;

impl Table for Pickups {
    type Raw = Vec<RawPickup>;
    type Checked = Vec<PickupConfig>;
    type Resolved = Vec<PickupConfig>;

    fn facts(raw: &Self::Raw, sheet: &mut FactSheet<'_>) {
        for p in raw {
            sheet.name(Namespace::Source, "pickup", &p.name);
        }
    }

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<Self::Checked> {
        each(raw, |p| pickup(p, cx))
    }

    fn resolve(checked: Self::Checked, _: &mut Resolver<'_>) -> Option<Self::Resolved> {
        Some(checked)
    }
}

fn pickup(p: RawPickup, cx: &mut Check<'_>) -> Option<PickupConfig> {
    let name = p.name.get_ref().clone();
    let mark = cx.mark();
    if p.path.get_ref().trim().is_empty() {
        cx.error(
            &p.path,
            format!("pickup '{name}': path is empty: give the folder eCW writes to"),
        );
    }
    let patterns: Vec<String> = match p.pattern.get_ref() {
        Patterns::One(s) => vec![s.clone()],
        Patterns::Many(v) => v.clone(),
    };
    if patterns.is_empty() || patterns.iter().any(|s| s.is_empty() || s.contains('/')) {
        cx.error(
            &p.pattern,
            format!("pickup '{name}': pattern must be one or more non-empty file-name globs (no '/'), e.g. \"*.837\""),
        );
    }
    let format = match p.format.get_ref().as_str() {
        "x12" => Some(PickupFormat::X12),
        "hl7" => Some(PickupFormat::Hl7),
        other => cx.fail(
            &p.format,
            format!("pickup '{name}': format \"{other}\" is not supported; use \"x12\" or \"hl7\""),
        ),
    };
    let after = match p.after.as_ref().map(|a| (a, a.get_ref().as_str())) {
        None | Some((_, "archive")) => Some(AfterPickup::Archive),
        Some((_, "delete")) => Some(AfterPickup::Delete),
        Some((a, other)) => cx.fail(
            a,
            format!("pickup '{name}': after = \"{other}\": use \"archive\" (moved to <path>/.done/<date>/) or \"delete\""),
        ),
    };
    let mut dur = |v: &Option<Spanned<String>>, field: &str, default: Duration, min: Duration| {
        let Some(s) = v else { return Some(default) };
        let d = cx.duration(&format!("pickup '{name}': {field}"), s)?;
        if d < min {
            return cx.fail(
                s,
                format!(
                    "pickup '{name}': {field} must be at least {} ms",
                    min.as_millis()
                ),
            );
        }
        Some(d)
    };
    let settle = dur(&p.settle, "settle", Duration::from_secs(5), Duration::ZERO);
    let rescan = dur(
        &p.rescan,
        "rescan",
        Duration::from_secs(10),
        Duration::from_millis(100),
    );
    let usage = match p.usage.as_ref().map(|u| (u, u.get_ref().as_str())) {
        None => Some(None),
        Some((_, "T")) => Some(Some(x12::Usage::Test)),
        Some((_, "P")) => Some(Some(x12::Usage::Production)),
        Some((u, other)) => cx.fail(
            u,
            format!("pickup '{name}': usage \"{other}\": use \"T\" (test) or \"P\" (production), as ISA15 says"),
        ),
    };
    if format != Some(PickupFormat::X12) {
        for (field, v) in [("usage", &p.usage), ("ack_dir", &p.ack_dir)] {
            if let Some(v) = v {
                cx.error(
                    v,
                    format!("pickup '{name}': {field} is for format = \"x12\" only"),
                );
            }
        }
    }
    if !cx.clean_since(mark) {
        return None;
    }
    Some(PickupConfig {
        path: cx.path(p.path.get_ref()),
        ack_dir: p.ack_dir.as_ref().map(|a| cx.path(a.get_ref())),
        name,
        patterns: patterns.iter().map(|s| Glob::new(s)).collect(),
        format: format?,
        settle: settle?,
        after: after?,
        rescan: rescan?,
        inotify: p.inotify.unwrap_or(true),
        usage: usage?,
    })
}
