//! How eCW's files reach the box: the box serves its pickup folder over SMB
//! (docs/x12.md says why). Debian's samba, started here on a loopback high
//! port with its own config and a share on the pickup folder; `smbclient`
//! puts claim files in as eCW's server would; the gateway takes them with
//! inotify off (`inotify = false`), so the periodic rescan alone does it —
//! the path a CIFS mount would take — and delivers them byte-identical.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
