//! How eCW's files reach the box: the box serves its pickup folder over SMB
//! (docs/x12.md says why). Debian's samba, started here on a loopback high
//! port with its own config and a share on the pickup folder; `smbclient`
//! puts claim files in as eCW's server would; the gateway takes them with
//! inotify off (`inotify = false`), so the periodic rescan alone does it —
//! the path a CIFS mount would take — and delivers them byte-identical.
//!
//! The appliance's own shares: the image's boot script
//! (`image/rootfs/usr/lib/appliance/smb-shares`, which runs `gateway
//! smb-conf`) makes the Samba configuration and the share folders from a
//! gateway.toml with two pickups, a folder destination and an `sftp`
//! poller (a real sshd, `support::sshd`) with an `ack_dir`; the real smbd
//! serves it; `smbclient` with the provisioned password puts a claim into
//! each pickup share, reads the delivered file back from the destination's
//! share and the TA1/999 of a response the poller refused from the
//! poller's `<poller>-acks` share; a wrong password, a guest and an SMB2
//! client are refused.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::sshd::Sshd;
use crate::support::{free_port, require_root, require_tool, Gateway, Options};

struct Smbd {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Smbd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_smbd(dir: &Path, share: &Path) -> Smbd {
    let port = free_port();
    for d in ["private", "lock", "state", "cache", "run", "ncalrpc"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let d = |n: &str| dir.join(n).display().to_string();
    let conf = format!(
        "[global]\n\
         server role = standalone server\n\
         smb ports = {port}\n\
         interfaces = 127.0.0.1\n\
         bind interfaces only = yes\n\
         disable netbios = yes\n\
         private dir = {private}\n\
         lock directory = {lock}\n\
         state directory = {state}\n\
         cache directory = {cache}\n\
         pid directory = {run}\n\
         ncalrpc dir = {ncalrpc}\n\
         passdb backend = tdbsam:{private}/passdb.tdb\n\
         log file = {log}\n\
         map to guest = Bad User\n\
         guest account = nobody\n\
         load printers = no\n\
         printcap name = /dev/null\n\
         disable spoolss = yes\n\
         server min protocol = SMB2\n\
         \n\
         [claims]\n\
         path = {share}\n\
         read only = no\n\
         guest ok = yes\n\
         force user = root\n",
        private = d("private"),
        lock = d("lock"),
        state = d("state"),
        cache = d("cache"),
        run = d("run"),
        ncalrpc = d("ncalrpc"),
        log = d("smbd.log"),
        share = share.display(),
    );
    let conf_path = dir.join("smb.conf");
    std::fs::write(&conf_path, conf).unwrap();
    spawn_smbd(&conf_path, port, dir)
}

/// Starts smbd on `conf` (which listens on 127.0.0.1:`port`), its output in
/// `dir`, and waits until it listens.
fn spawn_smbd(conf_path: &Path, port: u16, dir: &Path) -> Smbd {
    let child = Command::new("smbd")
        .args([
            "--foreground",
            "--no-process-group",
            "--debug-stdout",
            "-d",
            "1",
        ])
        .arg(format!("--configfile={}", conf_path.display()))
        .stdout(Stdio::from(
            std::fs::File::create(dir.join("smbd.out")).unwrap(),
        ))
        .stderr(Stdio::null())
        .spawn()
        .expect("start smbd");
    let smbd = Smbd {
        child,
        port,
        log: dir.join("smbd.out"),
    };
    test_support::wait::until(
        "smbd to listen",
        Duration::from_secs(30),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        || std::fs::read_to_string(&smbd.log).unwrap_or_default(),
    );
    smbd
}

fn smbclient_put(smbd: &Smbd, local: &Path, remote: &str) {
    let out = Command::new("smbclient")
        .arg("//127.0.0.1/claims")
        .args(["-p", &smbd.port.to_string(), "-N", "-m", "SMB3", "-c"])
        .arg(format!("put {} {remote}", local.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "smbclient put {remote}: {}{}\nsmbd log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&smbd.log).unwrap_or_default()
    );
}

#[test]
fn claims_put_over_smb_are_taken_by_the_rescan_and_delivered_unchanged() {
    if !require_tool("smbd", "samba")
        || !require_tool("smbclient", "smbclient")
        || !require_root("smbd on a test share")
    {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let share = root.path().join("claims");
    std::fs::create_dir_all(&share).unwrap();
    let smbd = start_smbd(&root.path().join("samba"), &share);
    let data = root.path().join("var");
    let top = format!(
        "[[pickup]]\nname = \"claims\"\npath = {share:?}\npattern = \"*.837\"\nformat = \"x12\"\nsettle = \"1s\"\nrescan = \"1s\"\ninotify = false\n",
        share = share.display().to_string()
    );
    let routing = format!(
        "[[destination]]\nname = \"outbox\"\nkind = \"folder\"\npath = {out:?}\n\n[[route]]\nname = \"all\"\nfrom = [\"claims\"]\nto = [\"outbox\"]\n",
        out = data.join("outbox").display().to_string()
    );
    let mut g = Gateway::configure(Options {
        top_extra: top,
        data_dir: Some(data),
        routing: Some(routing),
        ..Options::default()
    });
    g.spawn();
    let fixture = std::fs::read_to_string(
        test_support::paths::repo_root().join("gateway/x12/tests/fixtures/claim-professional.837"),
    )
    .unwrap();
    let mut sent = Vec::new();
    for n in 0..5u32 {
        let body = fixture
            .replace("000000201", &format!("{:09}", 500 + n))
            .into_bytes();
        let local = root.path().join(format!("local{n}.837"));
        std::fs::write(&local, &body).unwrap();
        smbclient_put(&smbd, &local, &format!("claim{n}.837"));
        sent.push(body);
    }
    let delivered = g.wait_delivered(5);
    let mut got: Vec<Vec<u8>> = delivered
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent);
    g.wait_for("the share to be emptied", Duration::from_secs(30), || {
        std::fs::read_dir(&share)
            .unwrap()
            .flatten()
            .all(|e| e.file_name().to_string_lossy().starts_with('.'))
    });
    assert!(g.log_text().contains("rescanning every 1000 ms"));
    g.stop();
}

/// The share user of the appliance test (the image's is `ecw`).
const SHARE_USER: &str = "gwsmbtest";
const SHARE_PASSWORD: &str = "test-only-smb-pass-1";

/// The Unix user (and its group) smbd admits (idempotent; concurrent tests
/// may race to create it: either wins).
fn ensure_share_user() -> (u32, u32) {
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, SHARE_USER])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<u32>()
                    .ok()
            })
    };
    if id("-u").is_none() {
        let _ = Command::new("useradd")
            .args(["--system", "--no-create-home", "--user-group", "--shell"])
            .arg("/usr/sbin/nologin")
            .arg(SHARE_USER)
            .status();
    }
    (
        id("-u").expect("useradd gwsmbtest"),
        id("-g").expect("the group of gwsmbtest"),
    )
}

/// `smbclient //127.0.0.1/SHARE -c COMMAND` as `user` with `password`
/// (through $PASSWD, as eCW's server would log in), plus `extra` options.
fn smbclient(
    port: u16,
    share: &str,
    auth: Option<(&str, &str)>,
    extra: &[&str],
    command: &str,
) -> std::process::Output {
    let mut c = Command::new("smbclient");
    c.arg(format!("//127.0.0.1/{share}"))
        .args(["-p", &port.to_string()])
        .args(extra)
        .args(["-c", command]);
    match auth {
        Some((user, password)) => c.args(["-U", user]).env("PASSWD", password),
        None => c.arg("-N"),
    };
    c.output().unwrap()
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The files archived in a pickup folder (`.done/<date>/NAME`).
fn archived(pickup: &Path) -> Vec<std::path::PathBuf> {
    let Ok(days) = std::fs::read_dir(pickup.join(".done")) else {
        return Vec::new();
    };
    days.flatten()
        .filter_map(|d| std::fs::read_dir(d.path()).ok())
        .flat_map(|files| files.flatten().map(|f| f.path()))
        .collect()
}

#[test]
fn the_images_shares_from_gateway_toml_admit_the_provisioned_user_only() {
    if !require_tool("smbd", "samba")
        || !require_tool("smbclient", "smbclient")
        || !require_tool("smbpasswd", "samba-common-bin")
        || !require_tool("testparm", "samba-common-bin")
        || !require_tool("useradd", "passwd")
        || !require_root("smbd on test shares, a share user")
    {
        return;
    }
    let Some(sshd) = Sshd::start() else { return };
    let (uid, gid) = ensure_share_user();
    let root = tempfile::tempdir().unwrap();
    // smbd opens the shares as the share user, who must get through here.
    std::fs::set_permissions(
        root.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let shares = root.path().join("shares");
    let samba = root.path().join("samba");
    let pickup_a = shares.join("claims-a");
    let pickup_b = shares.join("claims-b");
    let to_ecw = shares.join("to-ecw");
    let pickup = |name: &str, path: &Path| {
        format!(
            "[[pickup]]\nname = \"{name}\"\npath = {path:?}\npattern = \"*.837\"\nformat = \"x12\"\nsettle = \"1s\"\nrescan = \"1s\"\n\n",
            path = path.display().to_string()
        )
    };
    // The clearinghouse's responses: one the poller refuses (SE01 off by
    // 900), whose 999 goes to the poller's ack_dir, a share of its own.
    let era_acks = shares.join("era-refused");
    let refused = std::fs::read_to_string(
        test_support::paths::repo_root()
            .join("gateway/x12/tests/fixtures/remit-plb-reversal-denial.835"),
    )
    .unwrap()
    .replacen("\nSE*", "\nSE*9", 1);
    std::fs::write(sshd.folder("outbound").join("BADSE.835"), &refused).unwrap();
    let known_hosts = root.path().join("clearinghouse.known_hosts");
    std::fs::write(&known_hosts, sshd.known_hosts_line()).unwrap();
    let key = root.path().join("client_key");
    std::fs::copy(&sshd.client_key, &key).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let routing = format!(
        "[[poller]]\nname = \"era\"\nkind = \"sftp\"\nurl = \"{url}\"\npattern = \"*.835\"\ninterval = \"300ms\"\nack_dir = {acks:?}\n\
         [poller.auth]\ntype = \"ssh_key\"\nkey_file = {key:?}\nknown_hosts = {kh:?}\n\n\
         [[destination]]\nname = \"to-ecw\"\nkind = \"folder\"\npath = {out:?}\n\n[[route]]\nname = \"claims\"\nfrom = [\"claims-a\", \"claims-b\", \"era\"]\nto = [\"to-ecw\"]\n",
        url = sshd.url("outbound"),
        acks = era_acks.display().to_string(),
        key = key.display().to_string(),
        kh = known_hosts.display().to_string(),
        out = to_ecw.display().to_string()
    );
    let mut g = Gateway::configure(Options {
        top_extra: pickup("claims-a", &pickup_a) + &pickup("claims-b", &pickup_b),
        data_dir: Some(root.path().join("var")),
        routing: Some(routing),
        ..Options::default()
    });

    // What the boot unit does: folders, smb.conf, the password.
    let password_file = root.path().join("smb-password");
    std::fs::write(&password_file, format!("{SHARE_PASSWORD}\n")).unwrap();
    let port = free_port();
    let script = test_support::paths::repo_root().join("image/rootfs/usr/lib/appliance/smb-shares");
    let out = Command::new(&script)
        .env("GATEWAY", crate::support::BIN)
        .env("CONFIG", &g.config)
        .env("PASSWORD_FILE", &password_file)
        .env("SHARES_ROOT", &shares)
        .env("STATE", samba.join("state"))
        .env("RUN", samba.join("run"))
        .env("SMB_USER", SHARE_USER)
        .env("SMB_GROUP", SHARE_USER)
        .env(
            "SMB_CONF_ARGS",
            format!("--port {port} --interfaces 127.0.0.1"),
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", script.display(), text(&out));
    let conf = samba.join("run/smb.conf");
    let conf_text = std::fs::read_to_string(&conf).unwrap();
    for share in ["[claims-a]", "[claims-b]", "[era-acks]", "[to-ecw]"] {
        assert!(conf_text.contains(share), "{share} missing:\n{conf_text}");
    }
    // Real Samba reads every line of it.
    let parsed = Command::new("testparm")
        .arg("-s")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        parsed.status.success() && !text(&parsed).contains("nknown parameter"),
        "testparm: {}",
        text(&parsed)
    );
    for dir in [&pickup_a, &pickup_b, &era_acks, &to_ecw] {
        let m = std::fs::metadata(dir).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o2770, uid, gid),
            "{}",
            dir.display()
        );
    }

    let smbd = spawn_smbd(&conf, port, &samba);
    g.spawn();
    let auth = Some((SHARE_USER, SHARE_PASSWORD));
    let smb3 = ["-m", "SMB3"];
    let fixture = std::fs::read_to_string(
        test_support::paths::repo_root().join("gateway/x12/tests/fixtures/claim-professional.837"),
    )
    .unwrap();
    let mut sent = Vec::new();
    for (n, share) in ["claims-a", "claims-b"].into_iter().enumerate() {
        let body = fixture
            .replace("000000201", &format!("{:09}", 700 + n))
            .into_bytes();
        let local = root.path().join(format!("local-{share}.837"));
        std::fs::write(&local, &body).unwrap();
        let put = smbclient(
            port,
            share,
            auth,
            &smb3,
            &format!("put {} claim.837", local.display()),
        );
        assert!(
            put.status.success(),
            "put into {share}: {}\nsmbd:\n{}",
            text(&put),
            std::fs::read_to_string(&smbd.log).unwrap_or_default()
        );
        sent.push(body);
    }
    // Refused: a wrong password, a guest, a client that stops at SMB2.
    let local = root.path().join("local-claims-a.837");
    let put = format!("put {} refused.837", local.display());
    let wrong = smbclient(
        port,
        "claims-a",
        Some((SHARE_USER, "wrong-password-123")),
        &smb3,
        &put,
    );
    assert!(
        !wrong.status.success() && text(&wrong).contains("NT_STATUS_LOGON_FAILURE"),
        "a wrong password: {}",
        text(&wrong)
    );
    let guest = smbclient(port, "claims-a", None, &smb3, &put);
    assert!(!guest.status.success(), "a guest: {}", text(&guest));
    let smb2 = smbclient(
        port,
        "claims-a",
        auth,
        &["--option=client max protocol=SMB2_10"],
        &put,
    );
    assert!(!smb2.status.success(), "an SMB2 client: {}", text(&smb2));

    // The gateway takes both files and delivers them unchanged.
    let delivered = || test_support::paths::files_with_extension(&to_ecw, "hl7");
    g.wait_for(
        "2 claims delivered to the to-ecw share",
        Duration::from_secs(60),
        || delivered().len() >= 2,
    );
    let mut got: Vec<Vec<u8>> = delivered()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent);
    // What came in over SMB is group read/write for the gateway's group
    // (the archived file keeps its owner and mode), and nothing refused got in.
    for dir in [&pickup_a, &pickup_b] {
        g.wait_for("the share to be archived", Duration::from_secs(30), || {
            archived(dir).len() == 1
        });
        let file = &archived(dir)[0];
        let m = std::fs::metadata(file).unwrap();
        assert_eq!(
            (m.mode() & 0o777, m.uid(), m.gid()),
            (0o660, uid, gid),
            "{}",
            file.display()
        );
    }
    assert!(!pickup_a.join("refused.837").exists());
    // eCW reads the delivered file back from the destination's share.
    let first = delivered()[0].clone();
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    let back = root.path().join("back.hl7");
    let get = smbclient(
        port,
        "to-ecw",
        auth,
        &smb3,
        &format!("get {name} {}", back.display()),
    );
    assert!(get.status.success(), "get from to-ecw: {}", text(&get));
    assert_eq!(
        std::fs::read(&back).unwrap(),
        std::fs::read(&first).unwrap()
    );
    // The share's group, from the folder's setgid bit: with the appliance's
    // UMask=0007 that is what lets eCW's user read it (this gateway runs as
    // root with the test's umask, so the read above also works without it).
    assert_eq!(std::fs::metadata(&first).unwrap().gid(), gid);
    // The refused response's 999 is in the poller's ack_dir, and eCW reads
    // it through the `era-acks` share.
    let acks = || test_support::paths::files_with_extension(&era_acks, "999");
    g.wait_for(
        "the refused response's 999 in the poller's ack_dir",
        Duration::from_secs(60),
        || !acks().is_empty(),
    );
    let ack = acks()[0].clone();
    let name = ack.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("BADSE.835."), "{name}");
    let listed = smbclient(port, "era-acks", auth, &smb3, "ls");
    assert!(
        listed.status.success() && text(&listed).contains(&name),
        "ls era-acks: {}",
        text(&listed)
    );
    let back = root.path().join("back.999");
    let get = smbclient(
        port,
        "era-acks",
        auth,
        &smb3,
        &format!("get {name} {}", back.display()),
    );
    assert!(get.status.success(), "get from era-acks: {}", text(&get));
    let got = std::fs::read(&back).unwrap();
    assert_eq!(got, std::fs::read(&ack).unwrap());
    assert!(String::from_utf8_lossy(&got).contains("IK5*R"), "{got:?}");
    assert_eq!(std::fs::metadata(&ack).unwrap().gid(), gid);
    assert!(
        sshd.folder("outbound").join("BADSE.835").exists(),
        "a refused response stays on the server"
    );
    g.stop();
    drop(smbd);
}
