//! When each watched feed (a source and a message type, from
//! `[[alerts.silence]]`) last delivered a message: what the `silence` alert
//! rule reads. Only the configured feeds are tracked, so a sender cannot
//! grow this with made-up message types.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::config::SilenceRule;
use crate::route::glob::Glob;

struct Feed {
    rule: SilenceRule,
    glob: Glob,
    /// Unix ms of the last message journaled; the daemon's start before any.
    last_ms: AtomicU64,
    seen: AtomicU64,
}

/// The watched feeds.
pub struct FeedWatch {
    feeds: Vec<Feed>,
}

/// One feed, as `gateway status --json` and the alert rule see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FeedStatus {
    pub name: String,
    pub source: String,
    pub message_type: String,
    /// The rule's limit, in seconds.
    pub max_secs: u64,
    pub critical: bool,
    /// The last message (unix ms), or the daemon's start.
    pub last_ms: u64,
    /// Messages since start.
    pub seen: u64,
}

impl FeedWatch {
    pub fn new(rules: &[SilenceRule], start_ms: u64) -> FeedWatch {
        FeedWatch {
            feeds: rules
                .iter()
                .map(|r| Feed {
                    glob: Glob::new(&r.message_type),
                    rule: r.clone(),
                    last_ms: AtomicU64::new(start_ms),
                    seen: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// A message of `message_type` ("ORU^R01": MSH-9.1 ^ MSH-9.2, as routes
    /// match it) from `source` was journaled.
    pub fn seen(&self, source: &str, message_type: &str, at_ms: u64) {
        for f in &self.feeds {
            if f.rule.source == source && f.glob.matches(message_type) {
                f.last_ms.fetch_max(at_ms, Ordering::Relaxed);
                f.seen.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn snapshot(&self) -> Vec<FeedStatus> {
        self.feeds
            .iter()
            .map(|f| FeedStatus {
                name: f.rule.name.clone(),
                source: f.rule.source.clone(),
                message_type: f.rule.message_type.clone(),
                max_secs: f.rule.max.as_secs(),
                critical: f.rule.critical,
                last_ms: f.last_ms.load(Ordering::Relaxed),
                seen: f.seen.load(Ordering::Relaxed),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rule(t: &str) -> SilenceRule {
        SilenceRule {
            name: format!("ehr {t}"),
            source: "ehr".into(),
            message_type: t.into(),
            max: Duration::from_secs(60),
            critical: true,
            office_hours: false,
        }
    }

    #[test]
    fn only_the_watched_source_and_type_count() {
        let w = FeedWatch::new(&[rule("ORU^R01"), rule("ADT^*")], 100);
        w.seen("ehr", "ORU^R01", 200);
        w.seen("lab", "ORU^R01", 300);
        w.seen("ehr", "ADT^A08", 400);
        w.seen("ehr", "SIU^S12", 500);
        let s = w.snapshot();
        assert_eq!((s[0].last_ms, s[0].seen), (200, 1));
        assert_eq!((s[1].last_ms, s[1].seen), (400, 1));
        // Older times never move it back.
        w.seen("ehr", "ORU^R01", 150);
        assert_eq!(w.snapshot()[0].last_ms, 200);
    }
}
