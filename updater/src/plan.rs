//! What `updater check` and `updater install` decide, given the verified
//! metadata, the stored state, the configuration and the clock. Pure: no
//! files, no clock reads, no randomness; the caller loads the inputs and
//! stores what a decision says to record (`cli/` does).
//!
//! - [`pick`]: which signed target, if any (anti-rollback, failed targets,
//!   up to date), with the message when there is none.
//! - [`wave`]: whether this box's rollout wave is open for it, and the
//!   `wave_wait` to record.
//! - [`already_staged`]: an earlier run staged this very target and it is on
//!   trial: only the reboot is left.
//! - [`reboot`]: reboot now, or not (`--no-reboot`, maintenance window).

use crate::anti_rollback::{choose, Choice, Running};
use crate::boot::BootState;
use crate::config::Window;
use crate::state::{Phase, State, WaveWait};
use crate::target::UpdateTarget;
use crate::trust::Verified;
use crate::waves::{self, WaveDecision};
use jiff::Timestamp;

/// What to do about the signed targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan<'a> {
    Install(&'a UpdateTarget),
    /// A wave holds the target back; the message says until when.
    Wait(String),
    /// Nothing to install; the message says why.
    None(String),
}

/// The target to install, or [`Plan::None`] with the reason. The caller
/// clears `wave_wait` when there is none.
pub fn pick<'a>(v: &'a Verified, running: &Running, st: &State) -> Plan<'a> {
    match choose(&v.targets, running, st.epoch_floor, &st.failed) {
        Choice::UpToDate => Plan::None("up to date".into()),
        Choice::Nothing(why) => {
            let mut all = why;
            all.extend(v.skipped.iter().cloned());
            Plan::None(if all.is_empty() {
                "no targets".into()
            } else {
                format!("nothing installable: {}", all.join("; "))
            })
        }
        Choice::Install(t) => Plan::Install(t),
    }
}

/// Whether `t` may be installed `now` by the box with `seed`; the second
/// value is the `wave_wait` to record (`None` when it may).
pub fn wave<'a>(
    t: &'a UpdateTarget,
    seed: &[u8; 32],
    now: Timestamp,
) -> (Plan<'a>, Option<WaveWait>) {
    let (d, pos) = waves::decide(t, seed, now);
    let wait = |until| WaveWait {
        target: t.name.clone(),
        version: t.version.to_string(),
        until,
        position_bp: pos,
    };
    let at = pos as f64 / 100.0;
    match d {
        WaveDecision::Go => (Plan::Install(t), None),
        WaveDecision::WaitUntil(u) => (
            Plan::Wait(format!(
                "{} {}: waiting for wave until {u} (this box is at {at:.2}% of the fleet)",
                t.name, t.version
            )),
            Some(wait(Some(u))),
        ),
        WaveDecision::NotScheduled => (
            Plan::Wait(format!(
                "{} {}: no wave includes this box yet (at {at:.2}% of the fleet)",
                t.name, t.version
            )),
            Some(wait(None)),
        ),
    }
}

/// True if `t` is already written, verified and on trial in the slot the
/// state names (`slot_state` is what the boot loader says of that slot).
pub fn already_staged(st: &State, t: &UpdateTarget, slot_state: &BootState) -> bool {
    st.pending.as_ref().is_some_and(|p| {
        p.sha256 == t.sha256_hex()
            && p.phase == Phase::Trial
            && matches!(slot_state, BootState::Trial { .. })
    })
}

/// Install step 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reboot {
    /// `--no-reboot`: the update is tried at the next boot.
    No,
    Now,
    /// Outside the maintenance window: a later run inside it reboots.
    OutsideWindow(Window),
}

/// Reboot now? `minute_of_day` is local time.
pub fn reboot(no_reboot: bool, now: bool, window: Option<Window>, minute_of_day: u16) -> Reboot {
    match window {
        _ if no_reboot => Reboot::No,
        Some(w) if !now && !w.contains(minute_of_day) => Reboot::OutsideWindow(w),
        _ => Reboot::Now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::SlotId;
    use crate::state::Pending;
    use crate::target::{Version, Wave};
    use crate::trust::RoleVersions;

    fn target(name: &str, version: &str, epoch: u64, waves: Vec<Wave>) -> UpdateTarget {
        let sha = crate::hash::sha256(format!("{name} {version} {epoch}").as_bytes());
        crate::target::test_target(name, version, epoch, sha, waves)
    }

    fn verified(targets: Vec<UpdateTarget>, skipped: &[&str]) -> Verified {
        Verified {
            targets,
            configs: vec![],
            skipped: skipped.iter().map(|s| s.to_string()).collect(),
            versions: RoleVersions::default(),
            expires: Timestamp::MAX,
            targets_url: "https://x/t/".parse().unwrap(),
        }
    }

    fn running(version: &str, epoch: u64) -> Running {
        Running {
            version: Version::parse(version),
            epoch: Some(epoch),
            sha256: None,
        }
    }

    fn floor(epoch_floor: u64) -> State {
        State {
            epoch_floor,
            ..Default::default()
        }
    }

    #[test]
    fn the_newest_acceptable_target_is_picked() {
        let v = verified(
            vec![target("a", "1.1", 1, vec![]), target("b", "1.2", 1, vec![])],
            &[],
        );
        assert_eq!(
            pick(&v, &running("1.0", 1), &floor(1)),
            Plan::Install(&v.targets[1])
        );
        assert_eq!(
            pick(&v, &running("1.2", 1), &floor(1)),
            Plan::None("up to date".into())
        );
    }

    #[test]
    fn nothing_installable_says_why_including_skipped_targets() {
        let v = verified(vec![], &[]);
        assert_eq!(
            pick(&v, &running("1.0", 1), &floor(1)),
            Plan::None("no targets".into())
        );
        let v = verified(vec![target("old", "2.0", 1, vec![])], &["target x: bad"]);
        let Plan::None(m) = pick(&v, &running("1.0", 2), &floor(2)) else {
            panic!("a target below the floor was picked");
        };
        assert!(m.starts_with("nothing installable: "), "{m}");
        assert!(m.contains("below this box's epoch floor 2"), "{m}");
        assert!(m.ends_with("; target x: bad"), "{m}");
    }

    #[test]
    fn a_failed_target_is_not_picked_again() {
        let v = verified(vec![target("a", "1.1", 1, vec![])], &[]);
        let mut st = floor(1);
        st.failed.push(v.targets[0].sha256_hex());
        let Plan::None(m) = pick(&v, &running("1.0", 1), &st) else {
            panic!("a failed target was picked");
        };
        assert!(m.contains("failed its trial on this box before"), "{m}");
    }

    #[test]
    fn waves_hold_back_and_open() {
        let t0: Timestamp = "2031-01-01T00:00:00Z".parse().unwrap();
        let t = target(
            "gw",
            "3.0",
            1,
            vec![Wave {
                start: t0,
                percent: 100,
            }],
        );
        let seed = [3u8; 32];
        let (p, wait) = wave(&t, &seed, Timestamp::UNIX_EPOCH);
        let Plan::Wait(m) = p else {
            panic!("installed before the wave opened");
        };
        assert!(
            m.starts_with("gw 3.0: waiting for wave until 2031-01-01T00:00:00Z"),
            "{m}"
        );
        let wait = wait.unwrap();
        assert_eq!(
            (wait.target.as_str(), wait.version.as_str(), wait.until),
            ("gw", "3.0", Some(t0))
        );
        assert_eq!(wave(&t, &seed, t0), (Plan::Install(&t), None));
        assert_eq!(
            wave(&target("gw", "3.0", 1, vec![]), &seed, t0).1,
            None,
            "no waves: go"
        );
    }

    #[test]
    fn a_schedule_that_does_not_reach_this_box_records_no_time() {
        let t = target(
            "gw",
            "3.0",
            1,
            vec![Wave {
                start: Timestamp::UNIX_EPOCH,
                percent: 1,
            }],
        );
        // A box outside the first (and only) 1 %.
        let seed = (0u8..=255)
            .map(|i| [i; 32])
            .find(|s| waves::position_bp(s, &t) >= 100)
            .unwrap();
        let (p, wait) = wave(&t, &seed, Timestamp::UNIX_EPOCH);
        assert!(
            matches!(&p, Plan::Wait(m) if m.contains("no wave includes this box yet")),
            "{p:?}"
        );
        assert_eq!(wait.unwrap().until, None);
    }

    #[test]
    fn staged_means_same_target_on_trial() {
        let t = target("gw", "3.0", 1, vec![]);
        let mut st = State::default();
        let trial = BootState::Trial { tries_left: 3 };
        assert!(!already_staged(&st, &t, &trial));
        st.pending = Some(Pending {
            target: t.name.clone(),
            version: "3.0".into(),
            epoch: 1,
            sha256: t.sha256_hex(),
            slot: SlotId::B,
            phase: Phase::Trial,
            chunks_done: 1,
            chunks_total: 1,
            meta_expires: Timestamp::MAX,
            bytes_downloaded: 0,
            bytes_copied: 0,
        });
        assert!(already_staged(&st, &t, &trial));
        assert!(!already_staged(&st, &t, &BootState::Bad));
        assert!(!already_staged(
            &st,
            &target("gw", "3.1", 1, vec![]),
            &trial
        ));
        st.pending.as_mut().unwrap().phase = Phase::Verified;
        assert!(!already_staged(&st, &t, &trial));
    }

    #[test]
    fn reboots_only_inside_the_window_unless_told() {
        let w = Window::parse("02:00-05:00").unwrap();
        assert_eq!(reboot(true, true, None, 0), Reboot::No);
        assert_eq!(reboot(false, false, None, 12 * 60), Reboot::Now);
        assert_eq!(reboot(false, false, Some(w), 3 * 60), Reboot::Now);
        assert_eq!(
            reboot(false, false, Some(w), 12 * 60),
            Reboot::OutsideWindow(w)
        );
        assert_eq!(reboot(false, true, Some(w), 12 * 60), Reboot::Now);
        assert_eq!(reboot(true, false, Some(w), 3 * 60), Reboot::No);
    }
}
