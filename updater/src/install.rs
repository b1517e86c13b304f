//! The install, in the order the issue fixes, each step durable before the
//! next:
//!
//! 1. invalidate the target slot (boot loader first, then state);
//! 2. write the image: chunks already in the target slot are kept, chunks
//!    found in the active slot (same offset, or any chunk-aligned offset via
//!    a hash index) are copied, the rest downloaded; each
//!    verified before it is written; the slot fsync'd and the bitmap saved
//!    every few chunks;
//! 3. fsync the slot;
//! 4. read the whole image back and verify every chunk and the image hash;
//! 5. mark the slot valid (state: verified, with version and epoch);
//! 6. switch the boot loader to try it next, `TRIAL_TRIES` times (one
//!    atomic write);
//! 7. reboot in the maintenance window (the caller: `updater install`);
//! 8. – 11. health check, mark good, raise the floor, report:
//!    [`crate::health::after_boot`].
//!
//! Before step 1 nothing is written anywhere: a target below the epoch floor,
//! a forbidden downgrade, a target larger than the slot, a running slot that
//! is itself still on trial, or too little free space stops the install with
//! the slot untouched. The active slot is only ever opened read-only.

use crate::anti_rollback::{check_downgrade, check_floor, Running};
use crate::boot::{BootControl, BootState, SlotId, TRIAL_TRIES};
use crate::download::bitmap::Bitmap;
use crate::download::{fetch_verified, ChunkSource, DownloadPolicy, Throttle};
use crate::durable::Files;
use crate::hash::Sha256;
use crate::slot::{chunk_matches, verify_image, SlotDevice};
use crate::state::{Pending, Phase, Record, SlotInfo, Store};
use crate::target::{UpdateTarget, Version};
use crate::{Error, Result};
use jiff::Timestamp;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Opens slot devices (the trait lets tests wrap them in fault injectors).
pub trait SlotOpener {
    fn open(&self, slot: SlotId, write: bool) -> Result<Box<dyn SlotDevice>>;
}

/// Slot devices by path.
pub struct SlotPaths {
    pub a: PathBuf,
    pub b: PathBuf,
}

impl SlotOpener for SlotPaths {
    fn open(&self, slot: SlotId, write: bool) -> Result<Box<dyn SlotDevice>> {
        let p = match slot {
            SlotId::A => &self.a,
            SlotId::B => &self.b,
        };
        Ok(Box::new(if write {
            crate::slot::FileSlot::open(p)?
        } else {
            crate::slot::FileSlot::open_read_only(p)?
        }))
    }
}

pub struct Context<'a> {
    pub files: &'a dyn Files,
    pub state_dir: PathBuf,
    pub boot: &'a dyn BootControl,
    pub slots: &'a dyn SlotOpener,
    pub policy: DownloadPolicy,
    /// Identifies this boot (`/proc/sys/kernel/random/boot_id`); tells
    /// "not rebooted yet" from "rebooted and fell back".
    pub boot_id: String,
    pub log: &'a dyn Fn(&str),
    /// Commands owed to a trial slot once it is committed (`[health]
    /// after_commit`, see [`crate::health::run_after_commit`]).
    pub after_commit: Vec<Vec<String>>,
}

impl Context<'_> {
    pub fn store(&self) -> Store<'_> {
        Store::new(&self.state_dir, self.files)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    pub slot: SlotId,
    pub chunks_downloaded: usize,
    pub chunks_copied: usize,
    pub chunks_kept: usize,
}

/// Bytes free in the filesystem holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `s` a valid out-pointer.
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (r == 0).then(|| s.f_bavail as u64 * s.f_frsize as u64)
}

/// What an image says about itself (`running_image` in the config, a JSON
/// file shipped in every image: `{"version": "1.4.2", "epoch": 3}`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInfo {
    pub version: String,
    pub epoch: u64,
}

/// A factory-fresh box has no state: learn the running committed slot's
/// version from its image, and keep the floor at least its epoch (it runs
/// committed, so that is the floor's rule). Nothing changes while the
/// running slot is still on trial.
pub fn adopt_running_image(
    store: &Store<'_>,
    boot: &dyn BootControl,
    info: &ImageInfo,
) -> Result<()> {
    let booted = boot.booted_slot()?;
    if boot.slot_state(booted)? != BootState::Good {
        return Ok(());
    }
    let mut st = store.load()?;
    let before = st.clone();
    let slot = st.slot_mut(booted);
    if slot.version.is_none() {
        slot.version = Some(info.version.clone());
        slot.epoch = Some(info.epoch);
    }
    st.epoch_floor = st.epoch_floor.max(info.epoch);
    if st != before {
        store.save(&st)?;
    }
    Ok(())
}

/// Where chunk `i`'s bytes are in the active slot, if anywhere: at the
/// same offset (checked directly), or at any chunk-aligned offset within the
/// active image (a hash index built on first need, as RAUC's adaptive
/// block-hash index does). The caller re-verifies what it copies.
fn find_in_active(
    active: &mut dyn SlotDevice,
    index: &mut Option<HashMap<Sha256, u64>>,
    target: &UpdateTarget,
    i: usize,
    active_len: u64,
) -> Result<Option<u64>> {
    if chunk_matches(active, target, i)? {
        return Ok(Some(target.chunk_range(i).0));
    }
    if target.chunk_range(i).1 != target.chunk_size {
        return Ok(None); // a short last chunk only matches in place
    }
    if index.is_none() {
        let mut map = HashMap::new();
        let mut buf = vec![0u8; target.chunk_size as usize];
        let mut off = 0;
        while off + target.chunk_size <= active_len {
            active.read_at(off, &mut buf)?;
            map.entry(crate::hash::sha256(&buf)).or_insert(off);
            off += target.chunk_size;
        }
        *index = Some(map);
    }
    Ok(index
        .as_ref()
        .and_then(|m| m.get(&target.chunks[i]).copied()))
}

/// What runs now, for the downgrade check.
pub fn running(store: &Store<'_>, boot: &dyn BootControl) -> Result<(SlotId, Running)> {
    let booted = boot.booted_slot()?;
    let st = store.load()?;
    let info = st.slot(booted);
    Ok((
        booted,
        Running {
            version: info.version.as_deref().and_then(Version::parse),
            epoch: info.epoch,
            sha256: info.sha256.clone(),
        },
    ))
}

/// Steps 1–6. Returns when the slot is set to boot next on trial.
pub fn install(
    ctx: &Context<'_>,
    target: &UpdateTarget,
    src: &mut dyn ChunkSource,
    meta_expires: Timestamp,
) -> Result<Staged> {
    let store = ctx.store();
    let mut st = store.load()?;
    let (booted, run) = running(&store, ctx.boot)?;
    let slot = booted.other();

    // --- Checks: nothing is written until all pass. ---
    match ctx.boot.slot_state(booted)? {
        BootState::Good => {}
        s => {
            return Err(Error::State(format!(
                "the running slot {booted} is {s}, not committed: run `updater health` to commit \
                 or roll it back before installing anything"
            )))
        }
    }
    if let Some(p) = &st.pending {
        if p.slot == booted {
            return Err(Error::State(format!(
                "slot {booted} is running on trial ({}); `updater health` must commit it first",
                p.version
            )));
        }
    }
    check_floor(target, st.epoch_floor)?;
    check_downgrade(target, &run)?;
    let mut dev = ctx.slots.open(slot, true)?;
    if target.length > dev.size() {
        return Err(Error::Target {
            name: target.name.clone(),
            reason: format!(
                "image is {} bytes but slot {slot} ({}) holds only {}: oversized target refused",
                target.length,
                dev.describe(),
                dev.size()
            ),
        });
    }
    if let Some(free) = free_bytes(&ctx.state_dir) {
        if free < 1 << 20 {
            return Err(Error::State(format!(
                "{}: only {free} bytes free; the updater needs 1 MiB for its state",
                ctx.state_dir.display()
            )));
        }
    }

    // --- 1. Invalidate. ---
    ctx.boot.mark_invalid(slot)?;
    (ctx.log)(&format!(
        "step 1: slot {slot} invalidated (not bootable until step 6)"
    ));
    let resuming = st
        .pending
        .as_ref()
        .is_some_and(|p| p.slot == slot && p.sha256 == target.sha256_hex());
    *st.slot_mut(slot) = SlotInfo::default();
    st.pending = Some(Pending {
        slot,
        target: target.name.clone(),
        version: target.version.to_string(),
        epoch: target.epoch,
        sha256: target.sha256_hex(),
        phase: Phase::Writing,
        meta_expires,
        chunks_done: 0,
        chunks_total: target.chunks.len() as u64,
        bytes_downloaded: 0,
        bytes_copied: 0,
    });
    store.save(&st)?;
    (ctx.log)(&format!(
        "{} {} {} into slot {slot} ({})",
        if resuming { "resuming" } else { "installing" },
        target.name,
        target.version,
        dev.describe()
    ));

    // --- 2. Write (and 3. fsync as we go). ---
    let mut bitmap = Bitmap::load(ctx.files, &ctx.state_dir, target, slot)?;
    let mut active = ctx.slots.open(booted, false)?;
    let active_len = st
        .slot(booted)
        .length
        .unwrap_or(active.size())
        .min(active.size());
    let mut index: Option<HashMap<Sha256, u64>> = None;
    let mut throttle = Throttle::new(ctx.policy.bandwidth_limit);
    let (mut downloaded, mut copied, mut kept, mut since_sync) = (0usize, 0usize, 0usize, 0usize);
    let (mut bytes_dl, mut bytes_cp) = (0u64, 0u64);
    let total = target.chunks.len();
    // Progress in the step log about every tenth of the image.
    let every = total.div_ceil(10).max(1);
    for i in 0..total {
        if i > 0 && i % every == 0 {
            (ctx.log)(&format!(
                "step 2: chunk {i}/{total} ({downloaded} downloaded, {copied} copied, {kept} kept)"
            ));
        }
        if bitmap.get(i) {
            kept += 1;
            continue;
        }
        let (off, len) = target.chunk_range(i);
        if chunk_matches(dev.as_mut(), target, i)? {
            kept += 1;
        } else if let Some(from) =
            find_in_active(active.as_mut(), &mut index, target, i, active_len)?
        {
            // Adaptive delta: the same bytes are already in the active slot
            // (at this offset, or at another chunk-aligned one).
            let mut buf = vec![0u8; len as usize];
            active.read_at(from, &mut buf)?;
            if crate::hash::sha256(&buf) != target.chunks[i] {
                return Err(Error::State(format!(
                    "active slot changed at offset {from} while copying chunk {i}"
                )));
            }
            dev.write_at(off, &buf)?;
            copied += 1;
            bytes_cp += len;
        } else {
            let data = fetch_verified(src, target, i, &ctx.policy.backoff)?;
            dev.write_at(off, &data)?;
            throttle.account(len);
            downloaded += 1;
            (ctx.log)(&format!(
                "step 2: chunk {i}/{total} downloaded ({len} bytes)"
            ));
            bytes_dl += len;
        }
        bitmap.set(i);
        since_sync += 1;
        if since_sync >= ctx.policy.sync_every.max(1) {
            dev.sync()?;
            bitmap.save(ctx.files)?;
            since_sync = 0;
        }
    }
    // --- 3. fsync. ---
    dev.sync()?;
    bitmap.save(ctx.files)?;
    (ctx.log)(&format!(
        "step 3: slot {slot} written and synced ({downloaded} chunks downloaded, {copied} copied, {kept} kept); step 4: reading it back"
    ));

    // --- 4. Read back and verify. ---
    if let Err(reason) = verify_image(dev.as_mut(), target) {
        bitmap.clear();
        bitmap.save(ctx.files)?;
        return Err(Error::Verify {
            slot: slot.to_string(),
            device: dev.describe(),
            reason: format!("{reason}; the slot stays invalid and the next run rewrites it"),
        });
    }

    // --- 5. Mark valid. ---
    *st.slot_mut(slot) = SlotInfo {
        version: Some(target.version.to_string()),
        epoch: Some(target.epoch),
        sha256: Some(target.sha256_hex()),
        length: Some(target.length),
        verified: true,
    };
    if let Some(p) = st.pending.as_mut() {
        p.phase = Phase::Verified;
        p.chunks_done = target.chunks.len() as u64;
        p.bytes_downloaded = bytes_dl;
        p.bytes_copied = bytes_cp;
    }
    store.save(&st)?;

    (ctx.log)(&format!("step 5: slot {slot} verified and marked valid"));

    // --- 6. Switch: try it next, TRIAL_TRIES times. ---
    (ctx.log)(&format!(
        "step 6: switching the boot loader to try slot {slot} next ({TRIAL_TRIES} tries)"
    ));
    ctx.boot.set_trial(slot, TRIAL_TRIES)?;
    if let Some(p) = st.pending.as_mut() {
        p.phase = Phase::Trial;
    }
    st.last_install = Some(Record {
        at: Timestamp::now(),
        ok: true,
        message: format!(
            "{} {} staged in slot {slot} (boot id {}): {downloaded} chunks downloaded, {copied} copied from slot {booted}, {kept} already there; reboot to try it",
            target.name, target.version, ctx.boot_id
        ),
    });
    st.staged_boot_id = Some(ctx.boot_id.clone());
    store.save(&st)?;
    (ctx.log)(&format!(
        "step 6: slot {slot} boots next on trial; step 7: reboot"
    ));
    Ok(Staged {
        slot,
        chunks_downloaded: downloaded,
        chunks_copied: copied,
        chunks_kept: kept,
    })
}
