//! `[health]`: `/healthz`, `/readyz` and `/metrics` over plain HTTP; off
//! unless the table is present.

use serde::Deserialize;
use toml::Spanned;

use crate::config::check::Check;
use crate::config::cross::FactSheet;
use crate::config::model::{HealthConfig, DEFAULT_HEALTH_BIND};
use crate::config::resolve::Resolver;
use crate::config::table::Table;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHealth {
    bind: Option<Spanned<String>>,
}

pub(crate) struct Health;

impl Table for Health {
    type Raw = Option<Spanned<RawHealth>>;
    type Checked = Option<HealthConfig>;
    type Resolved = Option<HealthConfig>;

    fn facts(raw: &Self::Raw, sheet: &mut FactSheet<'_>) {
        let Some(h) = raw else { return };
        match &h.get_ref().bind {
            Some(b) => {
                let pos = sheet.pos(b);
                sheet.bind("health.bind".into(), b.get_ref(), pos);
            }
            None => {
                let pos = sheet.pos(h);
                sheet.bind("[health] (default bind)".into(), DEFAULT_HEALTH_BIND, pos);
            }
        }
    }

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<Self::Checked> {
        let Some(h) = raw else { return Some(None) };
        let bind = match &h.get_ref().bind {
            None => match DEFAULT_HEALTH_BIND.parse() {
                Ok(b) => b,
                Err(_) => return cx.fail(&h, "health: internal default bind is invalid"),
            },
            Some(b) => cx.bind("health.bind", b, "127.0.0.1:9090")?,
        };
        Some(Some(HealthConfig { bind }))
    }

    fn resolve(c: Self::Checked, _: &mut Resolver<'_>) -> Option<Self::Resolved> {
        Some(c)
    }
}
