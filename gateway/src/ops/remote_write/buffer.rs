//! The remote-write buffer (pure): readings kept in memory, oldest first,
//! until the receiver took them. Bounded twice: at most `max_samples`
//! samples (the oldest readings go first when it is full) and nothing
//! older than `max_age` (receivers refuse samples behind their
//! out-of-order window, so sending them would only fail). Both losses are
//! counted. Label sets are interned: a reading holds series ids and
//! values; the set of series is bounded by the config (listener,
//! destination, certificate, export names), not by traffic.
//!
//! It is not durable: a restart loses what was not sent yet (the box's
//! journal keeps messages, not metrics). The daemon restarts in seconds;
//! an outage of the receiver is what the buffer covers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use super::encode::{Label, Series};

/// One reading: every series' value at one instant.
struct Reading {
    at_ms: i64,
    values: Vec<(u32, f64)>,
}

/// Why buffered samples were given up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Older than `max_age` before they could be sent.
    pub too_old: u64,
    /// Pushed out by newer readings when the buffer was full.
    pub overflow: u64,
}

pub struct Buffer {
    max_samples: usize,
    max_age_ms: i64,
    ids: HashMap<Arc<[Label]>, u32>,
    labels: Vec<Arc<[Label]>>,
    readings: VecDeque<Reading>,
    samples: usize,
    pub dropped: Dropped,
}

/// A batch taken from the front: the series to encode and how many
/// readings and samples it covers (for [`Buffer::pop`]).
pub struct Batch {
    pub series: Vec<Series>,
    pub readings: usize,
    pub samples: usize,
}

impl Buffer {
    pub fn new(max_samples: usize, max_age_ms: i64) -> Buffer {
        Buffer {
            max_samples: max_samples.max(1),
            max_age_ms,
            ids: HashMap::new(),
            labels: Vec::new(),
            readings: VecDeque::new(),
            samples: 0,
            dropped: Dropped::default(),
        }
    }

    /// Samples waiting.
    pub fn len(&self) -> usize {
        self.samples
    }

    pub fn is_empty(&self) -> bool {
        self.readings.is_empty()
    }

    /// Timestamp of the oldest waiting reading.
    pub fn oldest_ms(&self) -> Option<i64> {
        self.readings.front().map(|r| r.at_ms)
    }

    fn id(&mut self, mut labels: Vec<Label>) -> u32 {
        labels.sort();
        labels.dedup_by(|a, b| a.0 == b.0);
        let key: Arc<[Label]> = labels.into();
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.labels.len() as u32;
        self.labels.push(key.clone());
        self.ids.insert(key, id);
        id
    }

    /// Add the reading taken at `at_ms` (label sets in any order; a
    /// reading not newer than the last one is ignored, so every series
    /// stays in timestamp order), then drop what `max_samples` does not
    /// hold.
    pub fn push(&mut self, at_ms: i64, series: Vec<(Vec<Label>, f64)>) {
        if self.readings.back().is_some_and(|r| r.at_ms >= at_ms) || series.is_empty() {
            return;
        }
        let mut values: Vec<(u32, f64)> =
            series.into_iter().map(|(l, v)| (self.id(l), v)).collect();
        // One sample per series and instant (a receiver refuses a batch
        // with two different values at one timestamp).
        values.sort_by_key(|&(id, _)| id);
        values.dedup_by_key(|&mut (id, _)| id);
        self.samples += values.len();
        self.readings.push_back(Reading { at_ms, values });
        while self.samples > self.max_samples && self.readings.len() > 1 {
            if let Some(r) = self.readings.pop_front() {
                self.samples -= r.values.len();
                self.dropped.overflow += r.values.len() as u64;
            }
        }
    }

    /// Drop readings older than `max_age` at `now_ms`.
    pub fn expire(&mut self, now_ms: i64) {
        while let Some(r) = self.readings.front() {
            if now_ms - r.at_ms <= self.max_age_ms {
                break;
            }
            let n = r.values.len();
            self.readings.pop_front();
            self.samples -= n;
            self.dropped.too_old += n as u64;
        }
    }

    /// The oldest readings, whole, up to about `max_samples` samples (at
    /// least one reading), grouped by series with samples in time order.
    pub fn front(&self, max_samples: usize) -> Option<Batch> {
        let mut per: BTreeMap<u32, Vec<(i64, f64)>> = BTreeMap::new();
        let (mut readings, mut samples) = (0, 0);
        for r in &self.readings {
            if readings > 0 && samples + r.values.len() > max_samples {
                break;
            }
            for &(id, v) in &r.values {
                per.entry(id).or_default().push((r.at_ms, v));
            }
            readings += 1;
            samples += r.values.len();
        }
        if readings == 0 {
            return None;
        }
        let series = per
            .into_iter()
            .filter_map(|(id, samples)| {
                Some(Series {
                    labels: self.labels.get(id as usize)?.clone(),
                    samples,
                })
            })
            .collect();
        Some(Batch {
            series,
            readings,
            samples,
        })
    }

    /// Remove the `readings` oldest readings (after they were sent, or refused for good).
    pub fn pop(&mut self, readings: usize) {
        for _ in 0..readings {
            if let Some(r) = self.readings.pop_front() {
                self.samples -= r.values.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(names: &[&str], v: f64) -> Vec<(Vec<Label>, f64)> {
        names
            .iter()
            .map(|n| {
                (
                    vec![
                        ("box".to_string(), "b".to_string()),
                        ("__name__".to_string(), (*n).to_string()),
                    ],
                    v,
                )
            })
            .collect()
    }

    #[test]
    fn batches_keep_time_order_per_series_and_sorted_labels() {
        let mut b = Buffer::new(1000, 60_000);
        b.push(1_000, reading(&["a", "b"], 1.0));
        b.push(2_000, reading(&["a", "b"], 2.0));
        b.push(2_000, reading(&["a"], 9.0)); // not newer: ignored
        assert_eq!(b.len(), 4);
        b.push(3_000, reading(&["a", "a"], 3.0)); // one sample per series and instant
        assert_eq!(b.len(), 5);
        b.pop(1);
        let batch = b.front(100).unwrap();
        assert_eq!(batch.readings, 2);
        assert_eq!(batch.series.len(), 2);
        let s = &batch.series[0];
        assert_eq!(s.labels[0].0, "__name__");
        assert_eq!(s.samples, vec![(2_000, 2.0), (3_000, 3.0)]);
        b.pop(batch.readings);
        assert!(b.is_empty());
        assert_eq!(b.len(), 0);
    }

    #[test]
    fn a_batch_takes_whole_readings_up_to_the_limit() {
        let mut b = Buffer::new(1000, 60_000);
        for t in 1..=5 {
            b.push(t * 1000, reading(&["a", "b", "c"], t as f64));
        }
        let batch = b.front(7).unwrap();
        assert_eq!((batch.readings, batch.samples), (2, 6));
        // One reading larger than the limit still goes.
        assert_eq!(b.front(1).unwrap().readings, 1);
    }

    #[test]
    fn too_old_and_overflow_are_counted() {
        let mut b = Buffer::new(4, 10_000);
        b.push(1_000, reading(&["a", "b"], 1.0));
        b.push(2_000, reading(&["a", "b"], 1.0));
        b.push(3_000, reading(&["a", "b"], 1.0));
        assert_eq!(b.dropped.overflow, 2);
        assert_eq!(b.oldest_ms(), Some(2_000));
        b.expire(12_500);
        assert_eq!(b.dropped.too_old, 2);
        assert_eq!(b.oldest_ms(), Some(3_000));
        assert_eq!(b.len(), 2);
    }
}
