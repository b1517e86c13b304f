//! Anti-rollback policy. Pure functions over signed targets and the stored
//! floor.
//!
//! - A target's security epoch must be at least the box's epoch floor; the
//!   floor is raised to a target's epoch only after its slot is marked good
//!   (install step 10), so a box that falls back still boots its old slot.
//! - Within the epoch, the newest version wins. A target older than what
//!   runs is installed only if the signed metadata marks it a recall.
//! - A target that failed its trial on this box is not offered again.

use crate::target::{UpdateTarget, Version};
use crate::{Error, Result};

/// What is running now.
#[derive(Debug, Clone)]
pub struct Running {
    pub version: Option<Version>,
    pub epoch: Option<u64>,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Choice<'a> {
    Install(&'a UpdateTarget),
    UpToDate,
    /// Nothing acceptable; each skipped target with the reason.
    Nothing(Vec<String>),
}

/// Checks one target against the floor (also done right before writing).
pub fn check_floor(t: &UpdateTarget, floor: u64) -> Result<()> {
    if t.epoch < floor {
        return Err(Error::Target {
            name: t.name.clone(),
            reason: format!(
                "security epoch {} is below this box's epoch floor {floor}; it may never be installed here",
                t.epoch
            ),
        });
    }
    Ok(())
}

/// Checks that installing `t` over `running` is not a forbidden downgrade.
pub fn check_downgrade(t: &UpdateTarget, running: &Running) -> Result<()> {
    if let Some(cur) = &running.version {
        if t.version < *cur && !t.recall {
            return Err(Error::Target {
                name: t.name.clone(),
                reason: format!(
                    "version {} is older than the running {cur} and the signed metadata does not mark it a recall",
                    t.version
                ),
            });
        }
        if t.version < *cur && running.epoch.is_some_and(|e| e != t.epoch) {
            return Err(Error::Target {
                name: t.name.clone(),
                reason: format!(
                    "recall to {} (epoch {}) crosses from the running epoch {}; a recall stays within one epoch",
                    t.version,
                    t.epoch,
                    running.epoch.unwrap_or_default()
                ),
            });
        }
    }
    Ok(())
}

/// Picks the target to install, if any.
pub fn choose<'a>(
    targets: &'a [UpdateTarget],
    running: &Running,
    floor: u64,
    failed: &[String],
) -> Choice<'a> {
    let mut skipped = Vec::new();
    let mut ok: Vec<&UpdateTarget> = Vec::new();
    for t in targets {
        if let Err(e) = check_floor(t, floor) {
            skipped.push(e.to_string());
        } else if failed.contains(&t.sha256_hex()) {
            skipped.push(format!(
                "target {} failed its trial on this box before; not offered again",
                t.name
            ));
        } else {
            ok.push(t);
        }
    }
    // A recall beats newer versions of its epoch: the MSP pulled them.
    let recall = ok
        .iter()
        .filter(|t| t.recall && check_downgrade(t, running).is_ok())
        .max_by(|a, b| a.version.cmp(&b.version));
    let best = recall
        .or_else(|| ok.iter().max_by(|a, b| a.version.cmp(&b.version)))
        .copied();
    let Some(best) = best else {
        return Choice::Nothing(skipped);
    };
    if running.sha256.as_deref() == Some(&best.sha256_hex()) {
        return Choice::UpToDate;
    }
    match (&running.version, best.recall) {
        (Some(cur), false) if best.version <= *cur => Choice::UpToDate,
        (Some(cur), true) if best.version == *cur => Choice::UpToDate,
        _ => Choice::Install(best),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::ImageMeta;

    fn t(v: &str, epoch: u64, recall: bool, fill: u8) -> UpdateTarget {
        UpdateTarget::from_meta(
            &format!("img-{v}"),
            4096,
            [fill; 32],
            ImageMeta {
                version: v.into(),
                epoch,
                chunk_size: 4096,
                chunks: vec!["00".repeat(32)],
                recall,
                published: jiff::Timestamp::UNIX_EPOCH,
                waves: vec![],
            },
        )
        .unwrap()
    }

    fn running(v: &str) -> Running {
        Running {
            version: Version::parse(v),
            epoch: Some(2),
            sha256: None,
        }
    }

    #[test]
    fn newest_above_floor_wins() {
        let ts = [
            t("1.0", 1, false, 1),
            t("1.2", 2, false, 2),
            t("1.1", 2, false, 3),
        ];
        match choose(&ts, &running("1.0"), 2, &[]) {
            Choice::Install(x) => assert_eq!(x.version.to_string(), "1.2"),
            c => panic!("{c:?}"),
        }
        assert!(matches!(
            choose(&ts, &running("1.2"), 2, &[]),
            Choice::UpToDate
        ));
    }

    #[test]
    fn below_floor_never() {
        let ts = [t("2.0", 1, false, 1)];
        match choose(&ts, &running("1.0"), 2, &[]) {
            Choice::Nothing(why) => assert!(why[0].contains("below this box's epoch floor 2")),
            c => panic!("{c:?}"),
        }
    }

    #[test]
    fn downgrade_only_by_recall() {
        let ts = [t("1.1", 2, false, 1)];
        assert!(matches!(
            choose(&ts, &running("1.2"), 2, &[]),
            Choice::UpToDate
        ));
        assert!(check_downgrade(&ts[0], &running("1.2")).is_err());
        let ts = [t("1.2", 2, false, 1), t("1.1", 2, true, 2)];
        match choose(&ts, &running("1.2"), 2, &[]) {
            Choice::Install(x) => assert_eq!(x.version.to_string(), "1.1"),
            c => panic!("{c:?}"),
        }
        assert!(check_downgrade(&ts[1], &running("1.2")).is_ok());
        // A recall does not cross epochs.
        let ts = [t("1.2", 3, false, 1), t("1.1", 3, true, 2)];
        assert!(check_downgrade(&ts[1], &running("1.2")).is_err());
        assert!(matches!(
            choose(&ts, &running("1.2"), 2, &[]),
            Choice::UpToDate
        ));
    }

    #[test]
    fn failed_targets_are_skipped() {
        let ts = [t("1.3", 2, false, 9)];
        let failed = vec![ts[0].sha256_hex()];
        assert!(matches!(
            choose(&ts, &running("1.2"), 2, &failed),
            Choice::Nothing(_)
        ));
    }
}
