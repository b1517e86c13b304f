//! The loopback SFTP server of `gateway bench x12`'s pickup-to-SFTP case:
//! Debian's OpenSSH `sshd` on 127.0.0.1 with its own config, a fresh host
//! key and client key, and `internal-sftp` chrooted into a directory of its
//! own, for the bench's duration only. It logs in the user running the
//! bench (root: sshd's chroot needs it) by key only, so no system user is
//! created. Everything lives under `/run/gateway-bench-sftp/` (sshd refuses
//! a chroot with a group- or world-writable path component, so not /tmp)
//! and is removed when the value is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";
const ROOT_DIR: &str = "/run/gateway-bench-sftp";

#[derive(Debug)]
pub struct LoopbackSshd {
    dir: PathBuf,
    child: Option<Child>,
    pub port: u16,
    /// `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
    pub known_hosts_line: String,
    /// The client's private key (mode 600).
    pub client_key: PathBuf,
}

impl LoopbackSshd {
    /// A running sshd, or what to install / how to run the bench instead.
    pub fn start() -> Result<LoopbackSshd, String> {
        let skip = "(or pass --no-sftp to skip the pickup-to-sftp case)";
        if !effective_uid_is_root() {
            return Err(format!(
                "the pickup-to-sftp case runs sshd with a chroot: run the bench as root {skip}"
            ));
        }
        if !Path::new(SSHD).is_file() {
            return Err(format!(
                "{SSHD} not found: apt-get install openssh-server {skip}"
            ));
        }
        let user = Self::user();
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        let dir = PathBuf::from(ROOT_DIR).join(format!("run-{}", std::process::id()));
        let chroot = dir.join("root");
        std::fs::create_dir_all(chroot.join("upload"))
            .map_err(|e| format!("{}: {e}", chroot.display()))?;
        for d in [Path::new(ROOT_DIR), &dir, &chroot] {
            chmod_755(d)?;
        }
        let mut s = LoopbackSshd {
            dir: dir.clone(),
            child: None,
            port: super::bench::free_port()?,
            known_hosts_line: String::new(),
            client_key: dir.join("client_ed25519"),
        };
        keygen(&dir.join("host_ed25519"))?;
        keygen(&s.client_key)?;
        let read =
            |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        let host_pub = read(&dir.join("host_ed25519.pub"))?;
        let mut f = host_pub.split_whitespace();
        s.known_hosts_line = format!(
            "[127.0.0.1]:{} {} {}\n",
            s.port,
            f.next().unwrap_or(""),
            f.next().unwrap_or("")
        );
        std::fs::write(
            dir.join("authorized_keys"),
            read(&dir.join("client_ed25519.pub"))?,
        )
        .map_err(|e| e.to_string())?;
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nAllowUsers {user}\nMaxStartups 100\nMaxSessions 50\n\
             Subsystem sftp internal-sftp\n\
             Match User {user}\n  ChrootDirectory {chroot}\n  ForceCommand internal-sftp\n\
             \x20 AllowTcpForwarding no\n  X11Forwarding no\n",
            port = s.port,
            d = dir.display(),
            chroot = chroot.display(),
        );
        std::fs::write(dir.join("sshd_config"), config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("sshd.log")).map_err(|e| e.to_string())?;
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {SSHD}: {e}"))?;
        s.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", s.port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "sshd did not listen within 20 s: {}",
                    std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(s)
    }

    /// The user the destination logs in as.
    pub fn user() -> String {
        std::env::var("USER").unwrap_or_else(|_| "root".into())
    }

    /// The server folder uploads land in (inside the chroot).
    pub fn upload_dir(&self) -> PathBuf {
        self.dir.join("root").join("upload")
    }
}

impl Drop for LoopbackSshd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn keygen(path: &Path) -> Result<(), String> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "gateway-bench", "-f"])
        .arg(path)
        .output()
        .map_err(|e| format!("ssh-keygen: {e} (apt-get install openssh-client)"))?;
    if !out.status.success() {
        return Err(format!(
            "ssh-keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn chmod_755(p: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: {e}", p.display()))
}

/// The effective uid from /proc/self/status ("Uid: real effective ...").
fn effective_uid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
