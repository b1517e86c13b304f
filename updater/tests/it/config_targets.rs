//! Signed config targets end to end with the `updater` binary: an MSP adds
//! a `gateway.toml` and credentials for one box or a group (`repo
//! add-config`), a box applies the one meant for it during `install`, only
//! after the check command passed, keeps it only if the gateway is healthy
//! with it, rolls it back otherwise, and `status` shows the config version.
//!
//! The gateway is a stand-in: its "check-config" accepts a config with a
//! `valid = true` line, it is "healthy" while its live config has a
//! `healthy = true` line, and "restarting" it appends to a log. Crashes are
//! real: a command kills the updater with SIGKILL at the chosen step.

use crate::support::cli::{ok, p, run, Box_, MspRepo};
use crate::support::image;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const PROVISIONED: &str = "# provisioned\nvalid = true\nhealthy = true\n";

/// A box with `[config]`: box id `id`, group `group`, its gateway config
/// and credentials in its directory.
struct ConfigBox {
    b: Box_,
    toml: PathBuf,
    creds: PathBuf,
    restarts: PathBuf,
    checks: PathBuf,
}

fn config_box(repo: &MspRepo, id: &str, group: Option<&str>, restart_extra: &str) -> ConfigBox {
    let b = repo.offline_box(&image(&[1, 2], 0));
    let d = b.dir.path();
    let (toml, creds) = (d.join("etc/gateway.toml"), d.join("creds"));
    let (restarts, checks) = (d.join("restarts.log"), d.join("checks.log"));
    std::fs::create_dir_all(d.join("etc")).unwrap();
    std::fs::create_dir_all(&creds).unwrap();
    std::fs::write(&toml, PROVISIONED).unwrap();
    std::fs::write(creds.join("status-password"), "old-password").unwrap();
    std::fs::write(d.join("box-id"), format!("{id}\n")).unwrap();
    if let Some(g) = group {
        std::fs::write(d.join("group"), g).unwrap();
    }
    let cfg = std::fs::read_to_string(&b.config).unwrap().replace(
        "commands = [[\"true\"]]\n",
        &format!(
            "commands = [[\"grep\", \"-q\", \"^healthy = true\", \"{}\"]]\n",
            toml.display()
        ),
    );
    let check = format!(
        "ls \"$CREDENTIALS_DIRECTORY\" | tr '\\n' ' ' >> {}; echo >> {}; grep -q '^valid = true' \"$1\" || {{ echo \"$1: line 1: not a valid config\" >&2; exit 1; }}",
        checks.display(),
        checks.display()
    );
    let restart = format!("echo restart >> {}; {restart_extra}", restarts.display());
    std::fs::write(
        &b.config,
        format!(
            "{cfg}[config]\nbox_id_file = \"box-id\"\ngroup_file = \"group\"\n\
             gateway_toml = \"{}\"\ncredentials_dir = \"{}\"\n\
             check_command = [\"sh\", \"-c\", {check:?}, \"check\", \"{{config}}\"]\n\
             restart_command = [\"sh\", \"-c\", {restart:?}]\n",
            toml.display(),
            creds.display()
        ),
    )
    .unwrap();
    ConfigBox {
        b,
        toml,
        creds,
        restarts,
        checks,
    }
}

/// A config source directory: `gateway.toml` and `credentials/NAME`.
fn config_src(dir: &Path, toml: &str, creds: &[(&str, &str)]) -> PathBuf {
    let src = dir.join(format!("src-{}", toml.len() + creds.len()));
    let _ = std::fs::remove_dir_all(&src);
    std::fs::create_dir_all(src.join("credentials")).unwrap();
    std::fs::write(src.join("gateway.toml"), toml).unwrap();
    for (n, v) in creds {
        std::fs::write(src.join("credentials").join(n), v).unwrap();
    }
    src
}

fn add_config(repo: &MspRepo, src: &Path, version: u64, scope: &[&str]) {
    let v = version.to_string();
    ok(
        &[
            &["repo", "add-config", p(&repo.work), p(src), "--version", &v],
            scope,
        ]
        .concat(),
        &[],
    );
    ok(&["repo", "sign", p(&repo.work)], &[]);
    ok(&["repo", "publish", p(&repo.work), p(&repo.out)], &[]);
}

fn install(repo: &MspRepo, c: &ConfigBox) -> (bool, String) {
    let out = run(
        &[
            "install",
            "--config",
            p(&c.b.config),
            "--from",
            p(&repo.out),
            "--no-reboot",
        ],
        &[],
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .count()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn status(c: &ConfigBox) -> String {
    ok(&["status", "--config", p(&c.b.config)], &[])
}

#[test]
fn a_box_applies_its_config_once_and_refuses_one_that_fails_the_check() {
    let repo = MspRepo::init(&[]);
    let c = config_box(&repo, "b0x1", None, "");
    assert!(
        status(&c).contains("config: as provisioned"),
        "{}",
        status(&c)
    );
    let v1 = "valid = true\nhealthy = true\n# v1\n";
    let src = config_src(repo.dir.path(), v1, &[("clearinghouse-password", "s3cret")]);
    add_config(&repo, &src, 1, &["--box", "b0x1"]);

    let (good, text) = install(&repo, &c);
    assert!(good && text.contains("config version 1 applied"), "{text}");
    assert_eq!(read(&c.toml), v1);
    let cred = c.creds.join("clearinghouse-password");
    assert_eq!(read(&cred), "s3cret");
    assert_eq!(
        std::fs::metadata(&cred).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(read(&c.creds.join("status-password")), "old-password");
    assert_eq!(count(&c.restarts), 1);
    // The check saw the staged credentials.
    assert!(read(&c.checks).contains("clearinghouse-password"));
    let s = status(&c);
    assert!(s.contains("config: version 1 (box b0x1), applied"), "{s}");
    assert!(
        s.contains("last config:") && s.contains("ok — config box b0x1 version 1 applied"),
        "{s}"
    );

    // Applied once: the next run does nothing.
    let (good, text) = install(&repo, &c);
    assert!(good && text.contains("version 1 is applied"), "{text}");
    assert_eq!(count(&c.restarts), 1);

    // Version 2 fails the check: nothing changes, the gateway is not
    // restarted, and it is not tried again.
    let src = config_src(repo.dir.path(), "healthy = true\n# v2 without valid\n", &[]);
    add_config(&repo, &src, 2, &["--box", "b0x1"]);
    let (good, text) = install(&repo, &c);
    assert!(
        good && text.contains("config version 2 refused by its check"),
        "{text}"
    );
    assert!(text.contains("not a valid config"), "{text}");
    assert_eq!(read(&c.toml), v1);
    assert_eq!(count(&c.restarts), 1);
    let s = status(&c);
    assert!(s.contains("config: version 1 (box b0x1)"), "{s}");
    assert!(
        s.contains("FAILED — config box b0x1 version 2 not applied"),
        "{s}"
    );
    let checks = count(&c.checks);
    let (_, text) = install(&repo, &c);
    assert!(
        text.contains("version 2 failed on this box before"),
        "{text}"
    );
    assert_eq!(count(&c.checks), checks);
}

#[test]
fn a_config_the_gateway_is_unhealthy_with_is_rolled_back() {
    let repo = MspRepo::init(&[]);
    let c = config_box(&repo, "b0x2", None, "");
    let src = config_src(
        repo.dir.path(),
        "valid = true\nhealthy = false\n",
        &[("status-password", "new-password"), ("extra-key", "k")],
    );
    add_config(&repo, &src, 1, &["--box", "b0x2"]);
    let (good, text) = install(&repo, &c);
    assert!(
        good && text.contains("config version 1 rolled back"),
        "{text}"
    );
    // Everything as before: the config, the replaced credential, and the
    // credential it added is gone.
    assert_eq!(read(&c.toml), PROVISIONED);
    assert_eq!(read(&c.creds.join("status-password")), "old-password");
    assert!(!c.creds.join("extra-key").exists());
    // Restarted with it, and again with the previous one.
    assert_eq!(count(&c.restarts), 2);
    let s = status(&c);
    assert!(s.contains("config: as provisioned"), "{s}");
    assert!(
        s.contains("FAILED — config box b0x2 version 1 not applied"),
        "{s}"
    );
    let (_, text) = install(&repo, &c);
    assert!(text.contains("failed on this box before"), "{text}");
    assert_eq!(count(&c.restarts), 2);
}

#[test]
fn a_box_takes_its_own_config_over_its_groups() {
    let repo = MspRepo::init(&[]);
    let group_cfg = "valid = true\nhealthy = true\n# group west\n";
    let own_cfg = "valid = true\nhealthy = true\n# box b0x3\n";
    add_config(
        &repo,
        &config_src(repo.dir.path(), group_cfg, &[]),
        5,
        &["--group", "west"],
    );
    add_config(
        &repo,
        &config_src(repo.dir.path(), own_cfg, &[]),
        1,
        &["--box", "b0x3"],
    );
    let own = config_box(&repo, "b0x3", Some("west"), "");
    let member = config_box(&repo, "b0x4", Some("west"), "");
    let stranger = config_box(&repo, "b0x5", Some("east"), "");
    assert!(install(&repo, &own).0 && install(&repo, &member).0 && install(&repo, &stranger).0);
    assert_eq!(read(&own.toml), own_cfg);
    assert_eq!(read(&member.toml), group_cfg);
    assert_eq!(read(&stranger.toml), PROVISIONED);
    assert!(status(&member).contains("config: version 5 (group west)"));
    assert!(status(&stranger).contains("config: as provisioned"));
}

/// The updater is killed right after the new files are in place (its
/// restart command kills it): `updater health` at the next boot finishes
/// the apply; a crash in the check, before anything changed, leaves the
/// old config and the next run applies it.
#[test]
fn an_apply_interrupted_by_a_crash_is_finished_at_the_next_boot() {
    let repo = MspRepo::init(&[]);
    let d = tempfile::tempdir().unwrap();
    let crashed = d.path().join("crashed");
    let kill_once = format!(
        "if [ ! -e {0} ]; then touch {0}; kill -9 $PPID; sleep 5; fi",
        crashed.display()
    );
    let c = config_box(&repo, "b0x6", None, &kill_once);
    let v1 = "valid = true\nhealthy = true\n# v1\n";
    add_config(
        &repo,
        &config_src(repo.dir.path(), v1, &[("k", "v")]),
        1,
        &["--box", "b0x6"],
    );
    let (good, _) = install(&repo, &c);
    assert!(!good, "the updater was killed");
    assert_eq!(read(&c.toml), v1, "the swap was done before the restart");
    let s = status(&c);
    assert!(
        s.contains("config in progress: box b0x6 version 1 (Checking)"),
        "{s}"
    );

    let out = run(
        &["health", "--config", p(&c.b.config)],
        &[("UPDATER_BOOT_ID", "boot-2")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("config version 1 applied"), "{stdout}");
    assert_eq!(count(&c.restarts), 2);
    let s = status(&c);
    assert!(
        s.contains("config: version 1 (box b0x6)") && !s.contains("in progress"),
        "{s}"
    );

    // A crash inside the check: nothing changed, nothing pending; the next
    // run applies it.
    let c = config_box(&repo, "b0x7", None, "");
    let v2 = "valid = true\nhealthy = true\n# v2\n";
    add_config(
        &repo,
        &config_src(repo.dir.path(), v2, &[]),
        2,
        &["--box", "b0x7"],
    );
    let cfg = read(&c.b.config);
    let killing = cfg.replace(
        "check_command = [\"sh\", \"-c\", \"",
        "check_command = [\"sh\", \"-c\", \"kill -9 $PPID; sleep 5; ",
    );
    std::fs::write(&c.b.config, killing).unwrap();
    assert!(!install(&repo, &c).0);
    assert_eq!(read(&c.toml), PROVISIONED);
    assert!(!status(&c).contains("in progress"));
    std::fs::write(&c.b.config, cfg).unwrap();
    let (good, text) = install(&repo, &c);
    assert!(good && text.contains("config version 2 applied"), "{text}");
    assert_eq!(read(&c.toml), v2);
}
