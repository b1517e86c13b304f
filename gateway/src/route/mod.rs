//! Routing: which destinations' outboxes a message goes on. Pure.
//!
//! Today a route takes everything from its listeners; per-type matching and
//! transforms come with the delivery engine. A message that no route takes is
//! still journaled (with no outbox) and audited as filtered, never dropped.

use crate::config::{RouteConfig, Transform};
use crate::hl7::HeaderSummary;

#[derive(Debug, Clone)]
pub struct Router {
    routes: Vec<RouteConfig>,
}

impl Router {
    pub fn new(routes: Vec<RouteConfig>) -> Self {
        Router { routes }
    }

    /// Destination names for a message from `listener`, each once, in config order.
    pub fn destinations_for(&self, listener: &str, _header: &HeaderSummary) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.routes {
            if !r.from.iter().any(|f| f == listener) {
                continue;
            }
            debug_assert_eq!(r.transform, Transform::None);
            for d in &r.to {
                if !out.contains(d) {
                    out.push(d.clone());
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, from: &[&str], to: &[&str]) -> RouteConfig {
        RouteConfig {
            name: name.into(),
            from: from.iter().map(|s| s.to_string()).collect(),
            to: to.iter().map(|s| s.to_string()).collect(),
            transform: Transform::None,
        }
    }

    #[test]
    fn fan_out_without_duplicates() {
        let r = Router::new(vec![
            route("a", &["ehr"], &["x", "y"]),
            route("b", &["ehr", "lab"], &["y", "z"]),
        ]);
        let h = HeaderSummary::default();
        assert_eq!(r.destinations_for("ehr", &h), vec!["x", "y", "z"]);
        assert_eq!(r.destinations_for("lab", &h), vec!["y", "z"]);
        assert!(r.destinations_for("other", &h).is_empty());
    }
}
