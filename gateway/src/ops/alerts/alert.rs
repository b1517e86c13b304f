//! One alert, its [`Rule`] and its [`Severity`]. The wire and label strings
//! (webhook JSON, the admin socket's status, `/metrics` labels, log fields)
//! come from [`Rule::as_str`] and [`Severity::as_str`] and nowhere else;
//! serde uses them too.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ops::clock;

/// The rules, in the order [`super::evaluate`] reports them for a
/// destination (destination rules first, then the box-wide ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    DestinationDown,
    PendingDepth,
    OldestPending,
    DeadLetters,
    Disk,
    Restarted,
    Certificate,
    PickupRejected,
    ExportStale,
    Silence,
    AuditTrailSize,
}

impl Rule {
    pub const ALL: [Rule; 11] = [
        Rule::DestinationDown,
        Rule::PendingDepth,
        Rule::OldestPending,
        Rule::DeadLetters,
        Rule::Disk,
        Rule::Restarted,
        Rule::Certificate,
        Rule::PickupRejected,
        Rule::ExportStale,
        Rule::Silence,
        Rule::AuditTrailSize,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::DestinationDown => "destination_down",
            Rule::PendingDepth => "pending_depth",
            Rule::OldestPending => "oldest_pending",
            Rule::DeadLetters => "dead_letters",
            Rule::Disk => "disk",
            Rule::Restarted => "restarted",
            Rule::Certificate => "certificate",
            Rule::PickupRejected => "pickup_rejected",
            Rule::ExportStale => "export_stale",
            Rule::Silence => "silence",
            Rule::AuditTrailSize => "audit_trail_size",
        }
    }

    /// The alert this rule raises for `f`; its id is `rule/key`.
    pub fn alert(self, f: Finding) -> Alert {
        Alert {
            id: format!("{}/{}", self.as_str(), f.key),
            rule: self,
            severity: f.severity,
            stage: f.severity.as_str().to_string(),
            title: f.title,
            affected: f.affected,
            since_ms: f.since_ms,
            since: clock::iso8601(f.since_ms),
            action: f.action,
        }
    }

    /// [`Rule::alert`] with its own escalation step, announced again when it changes.
    pub fn staged_alert(self, f: Finding, stage: String) -> Alert {
        Alert {
            stage,
            ..self.alert(f)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 2] = [Severity::Warning, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serde through `as_str`, so the JSON cannot drift from the labels.
macro_rules! serde_by_label {
    ($t:ty, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                <$t>::ALL
                    .into_iter()
                    .find(|v| v.as_str() == text)
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            concat!("unknown alert ", $what, " '{}'"),
                            text
                        ))
                    })
            }
        }
    };
}
serde_by_label!(Rule, "rule");
serde_by_label!(Severity, "severity");

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Alert {
    /// Stable while the condition lasts, e.g. "destination_down/cloud-fhir".
    pub id: String,
    pub rule: Rule,
    pub severity: Severity,
    pub title: String,
    /// What announces it again while it lasts: the severity, or a rule's
    /// own escalation step (a certificate's threshold). A title may carry
    /// a count that changes ("92% full"); that alone is not news.
    #[serde(default)]
    pub stage: String,
    /// What is affected (a destination, a certificate file, the disk).
    pub affected: String,
    /// Since when (unix ms) and the same as ISO 8601.
    pub since_ms: u64,
    pub since: String,
    /// What to do about it.
    pub action: String,
}

/// What a rule found, before [`Rule::alert`] names it.
pub struct Finding {
    /// What the alert is about within its rule (a destination name, "data").
    pub key: String,
    pub severity: Severity,
    pub title: String,
    pub affected: String,
    /// The condition's own start where it has one, else now.
    pub since_ms: u64,
    pub action: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_round_trip() {
        for r in Rule::ALL {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), r);
        }
        for s in Severity::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<Severity>(&json).unwrap(), s);
        }
        let e = serde_json::from_str::<Severity>("\"urgent\"").unwrap_err();
        assert!(
            e.to_string().contains("unknown alert severity 'urgent'"),
            "{e}"
        );
    }

    #[test]
    fn the_id_is_rule_slash_key() {
        let a = Rule::Disk.alert(Finding {
            key: "data".into(),
            severity: Severity::Critical,
            title: "t".into(),
            affected: "a".into(),
            since_ms: 0,
            action: "x".into(),
        });
        assert_eq!(a.id, "disk/data");
        assert_eq!(a.since, "1970-01-01T00:00:00Z");
    }
}
