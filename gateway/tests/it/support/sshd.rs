//! A real OpenSSH `sshd` (Debian's openssh-server) on 127.0.0.1 with its
//! own config, host key, client key and one user, `gwsftp`, that may only
//! use `internal-sftp` inside a chroot: the clearinghouse as the sftp
//! destination and poller see it. Needs root (the chroot, the user).
//!
//! The chroot is under /run because sshd refuses a chroot with any
//! group- or world-writable path component (so not /tmp).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use test_support::{need, wait};

use super::free_port;

pub const USER: &str = "gwsftp";
pub const PASSWORD: &str = "correct-horse-42";

pub struct Sshd {
    pub dir: PathBuf,
    pub port: u16,
    child: Option<Child>,
    /// The server's host key, as known_hosts wants it (`ssh-ed25519 AAAA...`).
    pub host_key: String,
    /// The client key the user is authorized with (OpenSSH private key file).
    pub client_key: PathBuf,
}

impl Sshd {
    /// A running sshd, or `None` where sshd or root is missing (a failure
    /// under `CI=true`).
    pub fn start() -> Option<Sshd> {
        if !need::require_tool("/usr/sbin/sshd", "openssh-server")
            || !need::require_tool("ssh-keygen", "openssh-client")
            || !need::require_root("sshd with a chrooted internal-sftp user")
        {
            return None;
        }
        ensure_user();
        std::fs::create_dir_all("/run/sshd").unwrap();
        std::fs::create_dir_all("/run/gateway-sftp-tests").unwrap();
        let dir = tempfile::Builder::new()
            .prefix("sshd-")
            .tempdir_in("/run/gateway-sftp-tests")
            .unwrap()
            .keep();
        chmod(&dir, 0o755);
        let chroot = dir.join("root");
        std::fs::create_dir_all(&chroot).unwrap();
        chmod(&chroot, 0o755);
        for sub in ["upload", "outbound", "archive"] {
            let d = chroot.join(sub);
            std::fs::create_dir_all(&d).unwrap();
            Command::new("chown")
                .arg(format!("{USER}:{USER}"))
                .arg(&d)
                .status()
                .unwrap();
        }
        keygen(&dir.join("host_ed25519"));
        keygen(&dir.join("client_ed25519"));
        let host_key = pub_key(&dir.join("host_ed25519.pub"));
        std::fs::write(
            dir.join("authorized_keys"),
            std::fs::read(dir.join("client_ed25519.pub")).unwrap(),
        )
        .unwrap();
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_ed25519\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication yes\nKbdInteractiveAuthentication no\nPermitRootLogin no\n\
             AllowUsers {USER}\nMaxStartups 100\nMaxSessions 50\nLogLevel VERBOSE\n\
             Subsystem sftp internal-sftp\n\
             Match User {USER}\n  ChrootDirectory {chroot}\n  ForceCommand internal-sftp\n\
             \x20 AllowTcpForwarding no\n  X11Forwarding no\n",
            dir = dir.display(),
            chroot = chroot.display(),
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let mut s = Sshd {
            dir,
            port,
            child: None,
            host_key,
            client_key: PathBuf::new(),
        };
        s.client_key = s.dir.join("client_ed25519");
        s.spawn();
        Some(s)
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("sshd.log"))
            .unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(self.dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let port = self.port;
        wait::until(
            "sshd to listen",
            Duration::from_secs(20),
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            || self.log(),
        );
    }

    /// Stop the server (its listener and every session).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Sessions run in processes of their own (setsid) forked from
            // the listener: find them by parentage, then end them all.
            let sessions = descendants(c.id() as i32);
            let _ = c.kill();
            let _ = c.wait();
            for pid in sessions {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_key)
    }

    pub fn url(&self, dir: &str) -> String {
        format!("sftp://{USER}@127.0.0.1:{}/{dir}", self.port)
    }

    /// A folder inside the chroot ("upload", "outbound", "archive").
    pub fn folder(&self, name: &str) -> PathBuf {
        self.dir.join("root").join(name)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The system user the chroot is for, with the test password (idempotent).
fn ensure_user() {
    let exists = Command::new("id")
        .arg(USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    if !exists {
        // Concurrent tests may race to create it: either wins.
        let _ = Command::new("useradd")
            .args(["--system", "--no-create-home", "--user-group", "--shell"])
            .arg("/usr/sbin/nologin")
            .arg(USER)
            .status();
    }
    let mut c = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{USER}:{PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(c.wait().unwrap().success(), "chpasswd failed");
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "gateway-test", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn pub_key(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let mut f = text.split_whitespace();
    format!("{} {}", f.next().unwrap(), f.next().unwrap())
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every process below `pid` (from /proc's parent links).
fn descendants(pid: i32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                continue;
            };
            // "pid (comm) state ppid ...": comm may hold spaces.
            let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|v| v.parse().ok()) {
                parent_of.push((p, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(q) = frontier.pop() {
        for &(p, pp) in &parent_of {
            if pp == q && !out.contains(&p) {
                out.push(p);
                frontier.push(p);
            }
        }
    }
    out
}
