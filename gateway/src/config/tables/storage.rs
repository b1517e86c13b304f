//! `[storage]`: the journal's quota, disk watermarks, quarantine bounds and
//! retention.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::check::Check;
use crate::config::cross::FactSheet;
use crate::config::model::StorageConfig;
use crate::config::resolve::Resolver;
use crate::config::table::Table;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStorage {
    quota_mb: Option<Spanned<u64>>,
    warn_at_percent: Option<Spanned<u8>>,
    refuse_at_percent: Option<Spanned<u8>>,
    quarantine_max_entries: Option<usize>,
    quarantine_max_mb: Option<u64>,
    retention_days: Option<Spanned<f64>>,
    reserve_mb: Option<u64>,
}

pub(crate) struct Storage;

impl Table for Storage {
    type Raw = Option<RawStorage>;
    type Checked = StorageConfig;
    type Resolved = StorageConfig;

    fn facts(raw: &Self::Raw, sheet: &mut FactSheet<'_>) {
        if let Some(w) = raw.as_ref().and_then(|r| r.warn_at_percent.as_ref()) {
            sheet.storage_warn_at_percent(*w.get_ref());
        }
    }

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<StorageConfig> {
        let mut s = StorageConfig::default();
        let Some(raw) = raw else { return Some(s) };
        let mark = cx.mark();
        if let Some(q) = &raw.quota_mb {
            if *q.get_ref() == 0 {
                cx.error(
                    q,
                    "storage.quota_mb must be at least 1 (omit it for no quota)",
                );
            }
            s.quota_bytes = Some(q.get_ref().saturating_mul(1024 * 1024));
        }
        if let Some(w) = &raw.warn_at_percent {
            s.warn_at_percent = *w.get_ref();
        }
        if let Some(r) = &raw.refuse_at_percent {
            s.refuse_at_percent = *r.get_ref();
        }
        if s.warn_at_percent == 0
            || s.refuse_at_percent > 100
            || s.warn_at_percent >= s.refuse_at_percent
        {
            let reason = format!(
                "storage: need 0 < warn_at_percent ({}) < refuse_at_percent ({}) <= 100",
                s.warn_at_percent, s.refuse_at_percent
            );
            // The defaults are in order, so one of the two is set.
            if let Some(at) = raw
                .refuse_at_percent
                .as_ref()
                .or(raw.warn_at_percent.as_ref())
            {
                cx.error(at, reason);
            }
        }
        if let Some(n) = raw.quarantine_max_entries {
            s.quarantine_max_entries = n;
        }
        if let Some(mb) = raw.quarantine_max_mb {
            s.quarantine_max_bytes = mb.saturating_mul(1024 * 1024);
        }
        if let Some(mb) = raw.reserve_mb {
            s.reserve_bytes = mb.saturating_mul(1024 * 1024);
        }
        if let Some(d) = &raw.retention_days {
            let days = *d.get_ref();
            if days > 0.0 && days <= 3650.0 {
                s.retention = Duration::from_secs_f64(days * 86400.0);
            } else {
                cx.error(
                    d,
                    format!("storage.retention_days must be above 0 and at most 3650 (got {days})"),
                );
            }
        }
        cx.clean_since(mark).then_some(s)
    }

    fn resolve(c: StorageConfig, _: &mut Resolver<'_>) -> Option<StorageConfig> {
        Some(c)
    }
}
