//! The one JSON shape every `gateway bench` prints with `--json`, so a
//! script reads any of them the same way:
//! `{"bench": NAME, "results": [{"case", "rate_per_s", "baseline",
//! "baseline_per_s", "ratio", "rss_mb": {"start", "mid", "end"}, ...}], ...}`.
//! A case may add its own figures (latency percentiles, bytes written);
//! a bench may add run-wide figures next to `results`.

use serde_json::{json, Map, Value};

/// Resident memory at the start, middle and end of a case, in MB.
#[derive(Clone, Copy, Default)]
pub struct Rss {
    pub start: f64,
    pub mid: f64,
    pub end: f64,
}

pub struct CaseResult {
    pub case: String,
    pub rate_per_s: f64,
    pub baseline: String,
    pub baseline_per_s: f64,
    pub rss_mb: Option<Rss>,
    /// Further figures of this case, printed after the common ones.
    pub extra: Map<String, Value>,
}

impl CaseResult {
    pub fn ratio(&self) -> f64 {
        if self.baseline_per_s > 0.0 {
            self.rate_per_s / self.baseline_per_s
        } else {
            0.0
        }
    }

    fn to_json(&self) -> Value {
        let mut v = Map::new();
        v.insert("case".into(), json!(self.case));
        v.insert("rate_per_s".into(), json!(self.rate_per_s.round()));
        v.insert("baseline".into(), json!(self.baseline));
        v.insert("baseline_per_s".into(), json!(self.baseline_per_s.round()));
        v.insert("ratio".into(), json!(round2(self.ratio())));
        if let Some(r) = self.rss_mb {
            v.insert(
                "rss_mb".into(),
                json!({"start": r.start.round(), "mid": r.mid.round(), "end": r.end.round()}),
            );
        }
        for (k, x) in &self.extra {
            v.insert(k.clone(), x.clone());
        }
        Value::Object(v)
    }
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Print `{"bench": name, "results": [...], ...run}` on one line.
pub fn print_json(bench: &str, results: &[CaseResult], run: Map<String, Value>) {
    let mut v = Map::new();
    v.insert("bench".into(), json!(bench));
    v.insert(
        "results".into(),
        Value::Array(results.iter().map(CaseResult::to_json).collect()),
    );
    v.extend(run);
    println!("{}", Value::Object(v));
}
