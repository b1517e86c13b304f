//! The board of active alerts, de-duplicated by id, and what each
//! evaluation makes it announce.
//!
//! Not a `heapless` map: how many alerts can be active is set by the
//! config (four rules per destination, one per certificate file, disk and
//! restart), not by a constant, and a full fixed-capacity board would have
//! to drop an alert.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::alert::Alert;
use crate::ops::clock;

/// What to announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    Fired,
    Reminder,
    Resolved,
}

/// An active alert and when it was last announced: what is kept across
/// restarts ([`super::saved`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    pub alert: Alert,
    pub first_seen_ms: u64,
    pub last_sent_ms: u64,
    /// Restored from before a restart and not seen again yet: kept
    /// (silently) until this time even if absent, because after a restart
    /// a rule may need a while to see its condition again (a destination
    /// is not known to be down until its first failed attempt).
    #[serde(skip)]
    pub unconfirmed_until_ms: Option<u64>,
}

/// Active alerts, de-duplicated.
#[derive(Debug, Default)]
pub struct Board {
    active: Mutex<BTreeMap<String, Tracked>>,
}

impl Board {
    /// Take the alerts of one evaluation; return what to announce.
    /// A new id fires; an id whose stage changed (its severity, or a
    /// certificate going from 30 to 7 days) fires again, while a new count
    /// in the title only updates it; an id still active after `reminder`
    /// since it was last sent is reminded; an id gone is resolved.
    pub fn update(&self, now: Vec<Alert>, now_ms: u64, reminder: Duration) -> Vec<(Event, Alert)> {
        self.update_knowing(now, now_ms, reminder, &|_| false)
    }

    /// [`Board::update`], where `known_clear(id)` says an absent alert's
    /// condition is positively gone: a restored alert is then resolved at
    /// once instead of after its settle time.
    pub fn update_knowing(
        &self,
        now: Vec<Alert>,
        now_ms: u64,
        reminder: Duration,
        known_clear: &dyn Fn(&str) -> bool,
    ) -> Vec<(Event, Alert)> {
        let mut events = Vec::new();
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = BTreeMap::new();
        for mut a in now {
            match active.remove(&a.id) {
                None => {
                    events.push((Event::Fired, a.clone()));
                    next.insert(
                        a.id.clone(),
                        Tracked {
                            first_seen_ms: a.since_ms.min(now_ms),
                            alert: a,
                            last_sent_ms: now_ms,
                            unconfirmed_until_ms: None,
                        },
                    );
                }
                Some(mut t) => {
                    t.unconfirmed_until_ms = None;
                    // Rules without their own start report "now": keep the first sighting.
                    a.since_ms = a.since_ms.min(t.first_seen_ms);
                    a.since = clock::iso8601(a.since_ms);
                    if a.stage != t.alert.stage {
                        events.push((Event::Fired, a.clone()));
                        t.last_sent_ms = now_ms;
                    } else if now_ms.saturating_sub(t.last_sent_ms) >= reminder.as_millis() as u64 {
                        events.push((Event::Reminder, a.clone()));
                        t.last_sent_ms = now_ms;
                    }
                    t.alert = a;
                    next.insert(t.alert.id.clone(), t);
                }
            }
        }
        for (id, t) in std::mem::take(&mut *active) {
            match t.unconfirmed_until_ms {
                Some(until) if now_ms < until && !known_clear(&id) => {
                    next.insert(id, t);
                }
                _ => events.push((Event::Resolved, t.alert)),
            }
        }
        *active = next;
        events
    }

    /// Alerts announced before a restart: the next [`Board::update`] goes
    /// on from them (no second "fired"; "resolved" if gone meanwhile, once
    /// known clear or `settle` after `now_ms`).
    pub fn restore(&self, saved: Vec<Tracked>, now_ms: u64, settle: Duration) {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        for mut t in saved {
            t.unconfirmed_until_ms = Some(now_ms.saturating_add(settle.as_millis() as u64));
            active.insert(t.alert.id.clone(), t);
        }
    }

    /// The active alert `id`, as tracked.
    pub fn tracked(&self, id: &str) -> Option<Tracked> {
        let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        active.get(id).cloned()
    }

    /// The active alerts, ordered by severity label descending ("warning"
    /// before "critical", as the status page and `gateway status` have
    /// always listed them), then oldest first.
    pub fn active(&self) -> Vec<Alert> {
        let active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Alert> = active.values().map(|t| t.alert.clone()).collect();
        v.sort_by(|a, b| (b.severity.as_str(), a.since_ms).cmp(&(a.severity.as_str(), b.since_ms)));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::alerts::alert::{Finding, Rule, Severity};

    const HOUR: Duration = Duration::from_secs(3600);

    fn alert(rule: Rule, key: &str, severity: Severity, title: &str, since_ms: u64) -> Alert {
        rule.alert(Finding {
            key: key.into(),
            severity,
            title: title.into(),
            affected: "a".into(),
            since_ms,
            action: "do".into(),
        })
    }

    #[test]
    fn fires_once_keeps_the_first_sighting_and_resolves_once() {
        let board = Board::default();
        let a = |now| alert(Rule::PendingDepth, "cloud", Severity::Warning, "many", now);
        let ev = board.update(vec![a(1000)], 1000, HOUR);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].0, Event::Fired);
        // The rule reports "now" each time; the board keeps 1000.
        assert!(board.update(vec![a(6000)], 6000, HOUR).is_empty());
        assert_eq!(board.active()[0].since_ms, 1000);
        assert_eq!(board.active()[0].since, clock::iso8601(1000));
        let ev = board.update(vec![], 7000, HOUR);
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].0, ev[0].1.since_ms), (Event::Resolved, 1000));
        assert!(board.update(vec![], 8000, HOUR).is_empty());
    }

    #[test]
    fn reminders_count_from_the_last_notice() {
        let board = Board::default();
        let a = alert(Rule::Disk, "data", Severity::Critical, "full", 0);
        board.update(vec![a.clone()], 0, HOUR);
        let hour = HOUR.as_millis() as u64;
        assert!(board.update(vec![a.clone()], hour - 1, HOUR).is_empty());
        assert_eq!(
            board.update(vec![a.clone()], hour, HOUR)[0].0,
            Event::Reminder
        );
        assert!(board.update(vec![a.clone()], hour + 1, HOUR).is_empty());
        assert_eq!(board.update(vec![a], 2 * hour, HOUR)[0].0, Event::Reminder);
    }

    #[test]
    fn a_changed_count_in_the_title_is_not_news_but_is_kept() {
        let board = Board::default();
        let at = |pct: &str| alert(Rule::Disk, "data", Severity::Critical, pct, 0);
        board.update(vec![at("91% full")], 0, HOUR);
        assert!(board.update(vec![at("92% full")], 10, HOUR).is_empty());
        assert_eq!(board.active()[0].title, "92% full");
        let hour = HOUR.as_millis() as u64;
        let ev = board.update(vec![at("93% full")], hour, HOUR);
        assert_eq!(
            (ev[0].0, ev[0].1.title.as_str()),
            (Event::Reminder, "93% full")
        );
    }

    #[test]
    fn a_new_stage_fires_again_and_restarts_the_reminder() {
        let board = Board::default();
        let at30 = alert(
            Rule::Certificate,
            "l/ehr/server",
            Severity::Warning,
            "30 days",
            0,
        );
        let at7 = alert(
            Rule::Certificate,
            "l/ehr/server",
            Severity::Critical,
            "7 days",
            0,
        );
        board.update(vec![at30], 0, HOUR);
        let ev = board.update(vec![at7.clone()], 10, HOUR);
        assert_eq!((ev.len(), ev[0].0), (1, Event::Fired));
        assert_eq!(ev[0].1.severity, Severity::Critical);
        let hour = HOUR.as_millis() as u64;
        assert!(board.update(vec![at7.clone()], hour, HOUR).is_empty());
        assert_eq!(
            board.update(vec![at7], hour + 10, HOUR)[0].0,
            Event::Reminder
        );
    }

    #[test]
    fn a_restored_alert_seen_again_resolves_as_soon_as_it_is_gone() {
        let board = Board::default();
        let a = alert(
            Rule::DestinationDown,
            "cloud",
            Severity::Critical,
            "down",
            0,
        );
        board.update(vec![a.clone()], 0, HOUR);
        let after = Board::default();
        after.restore(
            vec![board.tracked("destination_down/cloud").unwrap()],
            10,
            HOUR,
        );
        assert!(after.update(vec![a], 20, HOUR).is_empty());
        let ev = after.update(vec![], 30, HOUR);
        assert_eq!((ev.len(), ev[0].0), (1, Event::Resolved));
    }

    #[test]
    fn a_restored_alert_is_not_fired_again_and_resolves_if_gone() {
        let board = Board::default();
        let a = alert(Rule::Disk, "data", Severity::Critical, "full", 0);
        let b = alert(Rule::DeadLetters, "x", Severity::Warning, "one", 0);
        board.update(vec![a.clone(), b.clone()], 0, HOUR);
        let saved = vec![
            board.tracked("disk/data").unwrap(),
            board.tracked("dead_letters/x").unwrap(),
        ];
        let after = Board::default();
        let settle = Duration::from_millis(100);
        after.restore(saved, 10, settle);
        // Absent right after the restart: kept quietly while the rules
        // settle; resolved once the settle time is over.
        assert!(after.update(vec![a.clone()], 10, HOUR).is_empty());
        assert_eq!(after.active().len(), 2);
        let known = Board::default();
        known.restore(vec![after.tracked("dead_letters/x").unwrap()], 10, settle);
        let ev = known.update_knowing(vec![], 20, HOUR, &|id| id == "dead_letters/x");
        assert_eq!(ev[0].0, Event::Resolved, "known clear: resolved at once");
        let ev = after.update(vec![a.clone()], 110, HOUR);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            (ev[0].0, ev[0].1.id.as_str()),
            (Event::Resolved, "dead_letters/x")
        );
        // The reminder still counts from the notice before the restart.
        let hour = HOUR.as_millis() as u64;
        assert_eq!(after.update(vec![a], hour, HOUR)[0].0, Event::Reminder);
    }

    #[test]
    fn active_lists_by_severity_label_then_oldest() {
        let board = Board::default();
        board.update(
            vec![
                alert(Rule::Disk, "data", Severity::Critical, "d", 50),
                alert(Rule::PendingDepth, "b", Severity::Warning, "p", 30),
                alert(Rule::DeadLetters, "a", Severity::Warning, "q", 20),
                alert(Rule::DestinationDown, "a", Severity::Critical, "x", 10),
            ],
            100,
            HOUR,
        );
        let ids: Vec<String> = board.active().into_iter().map(|a| a.id).collect();
        assert_eq!(
            ids,
            [
                "dead_letters/a",
                "pending_depth/b",
                "destination_down/a",
                "disk/data"
            ]
        );
    }
}
