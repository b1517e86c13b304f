//! Routing: which destinations' outboxes a message goes on, and with which
//! transform. Pure: the decision depends only on the config, the listener
//! and the message header.
//!
//! A route takes a message when all of its filters match: it came from one
//! of the route's listeners (`from`), its type matches one of `types` (globs
//! such as `ADT^*`, `ORU^R01`; empty = any), and the sending facility and
//! receiving application (MSH-4 / MSH-5, matched on the first component and
//! on the whole raw field) match their globs when given. A message can
//! match several routes (fan-out); each destination gets it once, with the
//! transform of the first route (in config order) that sends it there. A
//! message no route takes is still journaled and audited as `filtered`,
//! never dropped silently.

pub mod glob;
pub mod lane;

pub use glob::Glob;

use crate::config::RouteConfig;
use hl7::HeaderSummary;
use journal::Enqueue;

/// What routing looks at in a message that is not HL7 v2: its type (for
/// `types`), its sender (for `sending_facility`) and receiver (for
/// `receiving_application`).
#[derive(Debug, Clone, Copy)]
pub struct RouteKey<'a> {
    pub message_type: &'a str,
    pub sender: &'a str,
    pub receiver: &'a str,
    /// Globs also match the part before the first of these.
    pub component_sep: u8,
}

#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<RouteConfig>,
}

/// First component of an HD field (`CLINIC^1.2.3^ISO` → `CLINIC`), raw.
fn namespace(raw: &str, component_sep: u8) -> &str {
    raw.split(component_sep as char).next().unwrap_or("")
}

fn any_matches(globs: &[Glob], raw: &str, component_sep: u8) -> bool {
    globs.is_empty()
        || globs
            .iter()
            .any(|g| g.matches(raw) || g.matches(namespace(raw, component_sep)))
}

impl Router {
    pub fn new(routes: Vec<RouteConfig>) -> Self {
        Router { routes }
    }

    /// Does `route` take this message?
    pub fn route_matches(route: &RouteConfig, listener: &str, header: &HeaderSummary) -> bool {
        let key = RouteKey {
            message_type: &header.message_type(),
            sender: &header.sending_facility_raw,
            receiver: &header.receiving_application_raw,
            component_sep: header.encoding.component,
        };
        Self::key_matches(route, listener, &key)
    }

    fn key_matches(route: &RouteConfig, source: &str, key: &RouteKey<'_>) -> bool {
        let sep = key.component_sep;
        route.from.iter().any(|f| f == source)
            && (route.message_types.is_empty()
                || route
                    .message_types
                    .iter()
                    .any(|g| g.matches(key.message_type)))
            && any_matches(&route.sending_facilities, key.sender, sep)
            && any_matches(&route.receiving_applications, key.receiver, sep)
    }

    /// Outboxes for a message from `listener`: each destination once, in
    /// config order, with the first matching route's transform.
    pub fn destinations_for(&self, listener: &str, header: &HeaderSummary) -> Vec<Enqueue> {
        self.destinations_where(|r| Self::route_matches(r, listener, header))
    }

    /// Outboxes for a message of another format (X12: type "837P", sender
    /// ISA06, receiver ISA08), by the same rules.
    pub fn destinations_for_key(&self, source: &str, key: &RouteKey<'_>) -> Vec<Enqueue> {
        self.destinations_where(|r| Self::key_matches(r, source, key))
    }

    fn destinations_where(&self, takes: impl Fn(&RouteConfig) -> bool) -> Vec<Enqueue> {
        let mut out: Vec<Enqueue> = Vec::new();
        for r in &self.routes {
            if !takes(r) {
                continue;
            }
            for d in &r.to {
                if !out.iter().any(|e| &e.destination == d) {
                    out.push(Enqueue {
                        destination: d.clone(),
                        transform: r.transform.label().to_string(),
                    });
                }
            }
        }
        out
    }

    /// Outboxes for a file a source took as it is (not HL7: an sftp
    /// poller's download): routes from `source` whose `types` match its
    /// `file_type` (e.g. "835", from the name's extension). Routes that
    /// filter on HL7 header fields (facility, receiver) never take files.
    pub fn destinations_for_file(&self, source: &str, file_type: &str) -> Vec<Enqueue> {
        let mut out: Vec<Enqueue> = Vec::new();
        let takes = |r: &RouteConfig| {
            r.from.iter().any(|f| f == source)
                && (r.message_types.is_empty()
                    || r.message_types.iter().any(|g| g.matches(file_type)))
                && r.sending_facilities.is_empty()
                && r.receiving_applications.is_empty()
        };
        for r in self.routes.iter().filter(|r| takes(r)) {
            for d in &r.to {
                if !out.iter().any(|e| &e.destination == d) {
                    out.push(Enqueue {
                        destination: d.clone(),
                        transform: r.transform.label().to_string(),
                    });
                }
            }
        }
        out
    }

    /// Names of the routes that take this message (for the audit trail).
    pub fn matching_routes(&self, listener: &str, header: &HeaderSummary) -> Vec<&str> {
        self.routes
            .iter()
            .filter(|r| Self::route_matches(r, listener, header))
            .map(|r| r.name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transform;
    use hl7::header::EncodingChars;

    fn route(name: &str, from: &[&str], to: &[&str]) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            from: from.iter().map(|s| s.to_string()).collect(),
            to: to.iter().map(|s| s.to_string()).collect(),
            transform: Transform::None,
            message_types: vec![],
            sending_facilities: vec![],
            receiving_applications: vec![],
        }
    }

    fn header(code: &str, trigger: &str, facility: &str, rcv_app: &str) -> HeaderSummary {
        HeaderSummary {
            encoding: EncodingChars::default(),
            message_code: code.into(),
            trigger_event: trigger.into(),
            sending_facility_raw: facility.into(),
            receiving_application_raw: rcv_app.into(),
            ..Default::default()
        }
    }

    fn names(v: Vec<Enqueue>) -> Vec<String> {
        v.into_iter().map(|e| e.destination).collect()
    }

    #[test]
    fn fan_out_without_duplicates() {
        let r = Router::new(vec![
            route("a", &["ehr"], &["x", "y"]),
            route("b", &["ehr", "lab"], &["y", "z"]),
        ]);
        let h = HeaderSummary::default();
        assert_eq!(names(r.destinations_for("ehr", &h)), vec!["x", "y", "z"]);
        assert_eq!(names(r.destinations_for("lab", &h)), vec!["y", "z"]);
        assert!(r.destinations_for("other", &h).is_empty());
    }

    #[test]
    fn filters_on_type_facility_and_receiver() {
        let mut adt = route("adt", &["ehr"], &["cloud"]);
        adt.message_types = vec![Glob::new("ADT^*")];
        adt.transform = Transform::Fhir;
        let mut labs = route("labs", &["ehr"], &["lab", "cloud"]);
        labs.message_types = vec![Glob::new("ORM^O01"), Glob::new("ORU^R01")];
        labs.sending_facilities = vec![Glob::new("CLINIC*")];
        labs.receiving_applications = vec![Glob::new("QUEST")];
        let r = Router::new(vec![adt, labs]);

        let a08 = header("ADT", "A08", "CLINIC1", "ANY");
        let got = r.destinations_for("ehr", &a08);
        assert_eq!(
            got,
            vec![Enqueue {
                destination: "cloud".into(),
                transform: "fhir".into()
            }]
        );

        let orm = header("ORM", "O01", "CLINIC2^1.2.3^ISO", "QUEST^2.16.1^ISO");
        let got = r.destinations_for("ehr", &orm);
        assert_eq!(names(got.clone()), vec!["lab", "cloud"]);
        assert_eq!(got[1].transform, "none");

        // Wrong facility, wrong receiver, wrong type: filtered.
        assert!(r
            .destinations_for("ehr", &header("ORM", "O01", "OTHER", "QUEST"))
            .is_empty());
        assert!(r
            .destinations_for("ehr", &header("ORM", "O01", "CLINIC1", "LABCORP"))
            .is_empty());
        assert!(r
            .destinations_for("ehr", &header("SIU", "S12", "CLINIC1", "QUEST"))
            .is_empty());
        assert_eq!(r.matching_routes("ehr", &a08), vec!["adt"]);
    }

    #[test]
    fn first_route_transform_wins_per_destination() {
        let mut a = route("a", &["ehr"], &["cloud"]);
        a.transform = Transform::Fhir;
        let b = route("b", &["ehr"], &["cloud"]);
        let r = Router::new(vec![a, b]);
        let got = r.destinations_for("ehr", &HeaderSummary::default());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].transform, "fhir");
    }
}
