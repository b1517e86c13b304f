//! `updater repo ...`: the MSP tooling to make, sign and publish a
//! repository (see [`updater::repo_tool`]).

use clap::Subcommand;
use jiff::Timestamp;
use std::path::{Path, PathBuf};
use updater::repo_tool::{self, AddOptions, RepoSettings, SignOptions};
use updater::target::Wave;
use updater::{Error, Result};

#[derive(Subcommand)]
pub enum Cmd {
    /// Create keys (ed25519) for every role and a signed root.
    Init {
        dir: PathBuf,
        /// Keys per role.
        #[arg(long, default_value_t = 1)]
        keys: u64,
        /// Signatures required per role.
        #[arg(long, default_value_t = 1)]
        threshold: u64,
        #[arg(long, default_value_t = 7)]
        timestamp_days: i64,
        #[arg(long, default_value_t = 90)]
        targets_days: i64,
    },
    /// Add an image as a target.
    Add {
        dir: PathBuf,
        image: PathBuf,
        /// Target name (default: the image's file name).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        version: String,
        /// Security epoch: boxes never install below the highest they committed.
        #[arg(long)]
        epoch: u64,
        #[arg(long, default_value_t = 4 * 1024 * 1024)]
        chunk_size: u64,
        /// Allow boxes running a newer version of this epoch to go back to it.
        #[arg(long)]
        recall: bool,
        /// Rollout wave START=PERCENT (RFC 3339 time, cumulative percent); repeatable.
        #[arg(long = "wave")]
        waves: Vec<String>,
    },
    /// Add a configuration (SRC/gateway.toml, SRC/credentials/NAME) for one
    /// box or a group; it replaces that box's or group's earlier one.
    AddConfig {
        dir: PathBuf,
        src: PathBuf,
        /// Config version: a box applies a version higher than the one it runs.
        #[arg(long)]
        version: u64,
        /// For the box with this box id.
        #[arg(
            long = "box",
            conflicts_with = "group",
            required_unless_present = "group"
        )]
        box_id: Option<String>,
        /// For every box provisioned with this group.
        #[arg(long)]
        group: Option<String>,
    },
    /// Sign targets, snapshot and timestamp into DIR/staged.
    Sign { dir: PathBuf },
    /// Copy DIR/staged to OUT (targets first, timestamp.json last).
    Publish { dir: PathBuf, out: PathBuf },
    /// New root version with fresh keys for ROLES, cross-signed by the old root.
    RotateRoot {
        dir: PathBuf,
        #[arg(long, value_delimiter = ',', default_value = "root")]
        roles: Vec<String>,
    },
}

pub fn run(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Init {
            dir,
            keys,
            threshold,
            timestamp_days,
            targets_days,
        } => {
            let s = RepoSettings {
                threshold,
                keys_per_role: keys,
                timestamp_expires_days: timestamp_days,
                targets_expires_days: targets_days,
                snapshot_expires_days: targets_days,
                ..Default::default()
            };
            repo_tool::init(&dir, &s, Timestamp::now())?;
            println!(
                "initialised {}: {keys} key(s) per role, threshold {threshold}; ship {} in the image as the trusted root",
                dir.display(),
                dir.join("root.json").display()
            );
        }
        Cmd::Add {
            dir,
            image,
            name,
            version,
            epoch,
            chunk_size,
            recall,
            waves,
        } => {
            let name = match name {
                Some(n) => n,
                None => image
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| Error::repo(&dir, "give --name"))?,
            };
            let waves = waves
                .iter()
                .map(|w| parse_wave(&dir, w))
                .collect::<Result<Vec<_>>>()?;
            repo_tool::add(
                &dir,
                &image,
                &AddOptions {
                    name: name.clone(),
                    version,
                    epoch,
                    chunk_size,
                    recall,
                    waves,
                    published: Timestamp::now(),
                },
            )?;
            println!("added {name}; run `updater repo sign {}`", dir.display());
        }
        Cmd::AddConfig {
            dir,
            src,
            version,
            box_id,
            group,
        } => {
            use updater::config_target::Scope;
            let scope = match (box_id, group) {
                (Some(b), _) => Scope::Box(b),
                (None, Some(g)) => Scope::Group(g),
                (None, None) => return Err(Error::repo(&dir, "give --box ID or --group NAME")),
            };
            let what = scope.to_string();
            let name = repo_tool::add_config(
                &dir,
                &src,
                &repo_tool::ConfigOptions {
                    version,
                    scope,
                    published: Timestamp::now(),
                },
            )?;
            println!(
                "added {name} (config version {version} for {what}); run `updater repo sign {}`",
                dir.display()
            );
        }
        Cmd::Sign { dir } => {
            repo_tool::sign(&dir, &SignOptions::default())?;
            println!("signed into {}", dir.join("staged").display());
        }
        Cmd::Publish { dir, out } => {
            repo_tool::publish(&dir, &out)?;
            println!("published to {}", out.display());
        }
        Cmd::RotateRoot { dir, roles } => {
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            repo_tool::rotate_root(&dir, &roles, Timestamp::now())?;
            println!("new root written; run `updater repo sign` and `publish`");
        }
    }
    Ok(())
}

/// `--wave START=PERCENT`.
fn parse_wave(dir: &Path, w: &str) -> Result<Wave> {
    let bad = |e: &dyn std::fmt::Display| Error::repo(dir, format!("--wave {w:?}: {e}"));
    let (t, p) = w
        .split_once('=')
        .ok_or_else(|| bad(&"expected START=PERCENT"))?;
    Ok(Wave {
        start: t.parse().map_err(|e| bad(&e))?,
        percent: p.parse().map_err(|e| bad(&e))?,
    })
}
