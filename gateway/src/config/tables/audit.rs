//! `[audit]`: the audit trail's own retention (default six years, HIPAA
//! 45 CFR 164.316) and its size cap (docs/audit.md).

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::check::Check;
use crate::config::model::AuditConfig;
use crate::config::resolve::Resolver;
use crate::config::table::Table;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    retention_days: Option<Spanned<f64>>,
    max_mb: Option<Spanned<u64>>,
}

pub(crate) struct Audit;

/// Longest audit retention accepted (ten years).
const MAX_DAYS: f64 = 3650.0;

impl Table for Audit {
    type Raw = Option<RawAudit>;
    type Checked = AuditConfig;
    type Resolved = AuditConfig;

    fn validate(raw: Self::Raw, cx: &mut Check<'_>) -> Option<AuditConfig> {
        let mut a = AuditConfig::default();
        let Some(raw) = raw else { return Some(a) };
        let mark = cx.mark();
        if let Some(d) = &raw.retention_days {
            let days = *d.get_ref();
            if (1.0..=MAX_DAYS).contains(&days) {
                a.retention = Duration::from_secs_f64(days * 86400.0);
            } else {
                cx.error(
                    d,
                    format!("audit.retention_days must be from 1 to {MAX_DAYS} (got {days}); HIPAA asks for six years: 2190"),
                );
            }
        }
        if let Some(m) = &raw.max_mb {
            if *m.get_ref() == 0 {
                cx.error(
                    m,
                    "audit.max_mb must be at least 1 (the audit trail's size cap, in MiB)",
                );
            }
            a.max_bytes = m.get_ref().saturating_mul(1024 * 1024);
        }
        cx.clean_since(mark).then_some(a)
    }

    fn resolve(c: AuditConfig, _: &mut Resolver<'_>) -> Option<AuditConfig> {
        Some(c)
    }
}
