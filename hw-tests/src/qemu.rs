//! The qemu harness: boots the appliance image (`image/build`) in
//! `qemu-system-x86_64` (OVMF) or `qemu-system-aarch64 -M virt` (AAVMF), with
//! user-mode networking only (`hostfwd` from 127.0.0.1 into the guest; the
//! guest reaches the host's loopback as 10.0.2.2), the serial console captured
//! to `console.log`, and the provisioning stick as a second virtual disk.
//!
//! The guest is driven the way a site would drive the box: MLLP and HTTP
//! through hostfwd, plus the provisioned service console on the serial port
//! for what only a technician could see (`updater status`, the outbox). A
//! power cut is `kill -9` of qemu: writes qemu already received survive (the
//! disk is opened with `cache=none`, so a guest flush is an `fdatasync` of
//! the image file on the host), the guest's page cache is lost.
//!
//! Every failure message quotes the tail of the console log.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where the CI script (`hw-tests/qemu/ci`) left the images and host tools.
pub struct Artifacts {
    pub dir: PathBuf,
    pub arch: String,
}

/// What the scenarios need on the host, each with the Debian package that
/// provides it (image/host-deps installs them all; qemu and the firmware come
/// from bookworm-backports).
pub fn required_tools(arch: &str) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![
        ("/usr/sbin/mkfs.vfat", "dosfstools"),
        ("/usr/bin/mcopy", "mtools"),
        ("/usr/bin/mmd", "mtools"),
        ("/usr/sbin/mkfs.ext4", "e2fsprogs"),
    ];
    if arch == "x86_64" {
        v.push(("/usr/bin/qemu-system-x86_64", "qemu-system-x86"));
        v.push(("/usr/share/OVMF/OVMF_CODE_4M.fd", "ovmf"));
        v.push(("/usr/share/OVMF/OVMF_VARS_4M.fd", "ovmf"));
    } else {
        v.push(("/usr/bin/qemu-system-aarch64", "qemu-system-arm"));
        v.push(("/usr/share/AAVMF/AAVMF_CODE.fd", "qemu-efi-aarch64"));
        v.push(("/usr/share/AAVMF/AAVMF_VARS.fd", "qemu-efi-aarch64"));
    }
    v
}

/// Fails, naming the packages to install, when a tool is missing. A missing
/// tool is never a skip: these tests only run when asked for
/// (`--features qemu`, from hw-tests/qemu/ci).
pub fn require_tools(arch: &str) -> Result<(), String> {
    let missing: Vec<String> = required_tools(arch)
        .into_iter()
        .filter(|(path, _)| !Path::new(path).exists())
        .map(|(path, pkg)| format!("{path} (package {pkg})"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "missing on this host: {}; install them as root with image/host-deps \
         (qemu-system-*, ovmf and qemu-efi-aarch64 from bookworm-backports)",
        missing.join(", ")
    ))
}

impl Artifacts {
    /// `HW_QEMU_DIR` (default `target/hw-qemu`) and `HW_QEMU_ARCH` (default
    /// x86_64); fails when a host tool or the v1 image is missing.
    pub fn from_env() -> Result<Artifacts, String> {
        let dir = std::env::var_os("HW_QEMU_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../target/hw-qemu")
                    .to_path_buf()
            });
        let arch = std::env::var("HW_QEMU_ARCH").unwrap_or_else(|_| "x86_64".into());
        require_tools(&arch)?;
        let a = Artifacts { dir, arch };
        if !a.image("1.0.0").exists() {
            return Err(format!(
                "{} is missing: build the images first with `hw-tests/qemu/ci --prepare-only` (needs root; \
                 installs qemu, ovmf, mmdebstrap, erofs-utils with image/host-deps)",
                a.image("1.0.0").display()
            ));
        }
        Ok(a)
    }
    pub fn image(&self, version: &str) -> PathBuf {
        self.dir
            .join(format!("images/gateway-{}-{version}.img", self.arch))
    }
    pub fn root(&self, version: &str) -> PathBuf {
        self.dir
            .join(format!("images/gateway-{}-{version}.root", self.arch))
    }
    /// A host binary (`gateway`, `updater`) of the same build as the image.
    pub fn host_bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }
    /// Where this architecture's VMs, repositories and results go: the top
    /// of `HW_QEMU_DIR` for x86-64, `HW_QEMU_DIR/aarch64` for aarch64, so
    /// both can run at once without sharing a box's directory.
    pub fn work(&self) -> PathBuf {
        if self.arch == "x86_64" {
            self.dir.clone()
        } else {
            self.dir.join(&self.arch)
        }
    }
    /// A fresh working directory for one VM.
    pub fn vm_dir(&self, name: &str) -> Result<PathBuf, String> {
        let d = self.work().join("vms").join(name);
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        Ok(d)
    }
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{:?}: {e} (is it installed? see image/host-deps)", cmd))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} exited with {}: {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The provisioning stick: a FAT image labelled GW-CONFIG with these files.
pub fn make_stick(path: &Path, files: &[(&str, Vec<u8>)]) -> Result<(), String> {
    let staging = path.with_extension("d");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(path);
    run(Command::new("mkfs.vfat")
        .args(["-C", "-n", "GW-CONFIG"])
        .arg(path)
        .arg("16384"))?;
    for (name, data) in files {
        let p = staging.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&p, data).map_err(|e| e.to_string())?;
    }
    let mut dirs: Vec<&str> = files
        .iter()
        .filter_map(|(n, _)| n.rsplit_once('/').map(|(d, _)| d))
        .collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        run(Command::new("mmd")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(path)
            .arg(format!("::{d}")))?;
    }
    for (name, _) in files {
        run(Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(path)
            .arg(staging.join(name))
            .arg(format!("::{name}")))?;
    }
    Ok(())
}

/// The appliance's default config with health on the guest's LAN address, so
/// hostfwd reaches it (the default binds it to loopback only).
pub fn test_gateway_toml() -> Vec<u8> {
    let default =
        include_str!("../../image/rootfs/usr/share/clinic-gateway/appliance/gateway.toml");
    default
        .replace("127.0.0.1:9090", "0.0.0.0:9090")
        .into_bytes()
}

pub const LUKS_KEY: &[u8] = b"test-only data partition key: 0123456789abcdef0123456789abcdef";
pub const STATUS_PASSWORD: &str = "test-status-password";

/// The stick every test box gets: the test config, the LUKS key, the status
/// password, the service console; plus `extra` (root.json, update-url...).
pub fn standard_stick(path: &Path, extra: Vec<(&str, Vec<u8>)>) -> Result<(), String> {
    let mut files = vec![
        ("gateway.toml", test_gateway_toml()),
        ("luks.key", LUKS_KEY.to_vec()),
        ("status-password", STATUS_PASSWORD.as_bytes().to_vec()),
        ("service-console", b"on\n".to_vec()),
        ("serial", b"1\n".to_vec()),
    ];
    files.extend(extra);
    make_stick(path, &files)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub mllp: u16,
    pub health: u16,
    pub status: u16,
}

/// `tcg` or `kvm`: KVM only when a short probe boot of the image's kernel
/// under KVM gets as far as the kernel's own panic for a missing root (on
/// these VMs `/dev/kvm` exists but nested virtualisation fails).
pub fn accel(arch: &str) -> &'static str {
    static ACCEL: OnceLock<&'static str> = OnceLock::new();
    ACCEL.get_or_init(|| {
        if std::env::var("HW_QEMU_ACCEL").as_deref() == Ok("tcg") || arch != std::env::consts::ARCH
        {
            return "tcg";
        }
        if !Path::new("/dev/kvm").exists() {
            return "tcg";
        }
        let dir = std::env::temp_dir().join(format!("kvm-probe-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let log = dir.join("probe.log");
        let kernel = ["/boot/vmlinuz", "/vmlinuz"]
            .iter()
            .map(PathBuf::from)
            .chain(
                std::fs::read_dir("/boot")
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.to_string_lossy().contains("vmlinuz")),
            )
            .find(|p| p.exists());
        let Some(kernel) = kernel else {
            return "tcg";
        };
        let child = Command::new("qemu-system-x86_64")
            .args([
                "-accel",
                "kvm",
                "-m",
                "256",
                "-display",
                "none",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(&kernel)
            .args(["-append", "console=ttyS0 panic=-1", "-serial"])
            .arg(format!("file:{}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else { return "tcg" };
        let deadline = Instant::now() + Duration::from_secs(30);
        let ok = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Kernel panic") || text.contains("VFS: Unable to mount root") {
                break true;
            }
            if let Ok(Some(_)) = child.try_wait() {
                break std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("Kernel panic");
            }
            if Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        if ok {
            "kvm"
        } else {
            "tcg"
        }
    })
}

pub struct VmConfig {
    pub arch: String,
    pub dir: PathBuf,
    pub disk: PathBuf,
    pub stick: Option<PathBuf>,
    pub extra_disk: Option<PathBuf>,
    pub ports: Ports,
    pub memory_mb: u32,
    /// vCPUs (`HW_QEMU_SMP`, default 1: two VMs run at once on two cores).
    pub smp: u32,
}

impl VmConfig {
    /// A box in `dir` with its `disk`, fresh loopback ports, 1 GiB of memory.
    fn new(art: &Artifacts, dir: PathBuf, disk: PathBuf, stick: Option<PathBuf>) -> VmConfig {
        VmConfig {
            arch: art.arch.clone(),
            dir,
            disk,
            stick,
            extra_disk: None,
            ports: Ports {
                mllp: free_port(),
                health: free_port(),
                status: free_port(),
            },
            memory_mb: 1024,
            smp: smp_from_env(),
        }
    }
}

/// The disk cache mode: `none` (O_DIRECT on the host) makes a guest flush an
/// `fdatasync` of the image file, so what the guest flushed survives the
/// `kill -9` of qemu and what it did not flush is lost with its page cache.
pub const DISK_CACHE: &str = "none";

/// A UUID (version 4 form) fixed by the box's directory: each box has its
/// own, and keeps it across power cuts, as a real board's SMBIOS UUID.
fn system_uuid(dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let half = |salt: u8| {
        // DefaultHasher::new() has fixed keys: the same value in every run.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, dir).hash(&mut h);
        h.finish()
    };
    let (a, b) = (half(1), half(2));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

fn smp_from_env() -> u32 {
    std::env::var("HW_QEMU_SMP")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

pub struct Vm {
    pub cfg: VmConfig,
    child: Option<Child>,
    serial: Option<UnixStream>,
    /// Console log offset where this power-on began.
    pub boot_offset: u64,
    pub started: Instant,
    seq: u64,
}

impl Vm {
    /// A fresh box: its own copy of `image` (sparse), grown to `disk_gb`, and
    /// its own UEFI variable store (kept across power cuts, as NVRAM is).
    pub fn create(
        art: &Artifacts,
        name: &str,
        image: &Path,
        disk_gb: u64,
        stick: Option<PathBuf>,
    ) -> Result<VmConfig, String> {
        let dir = art.vm_dir(name)?;
        let disk = dir.join("disk.img");
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(image)
            .arg(&disk))?;
        run(Command::new("truncate")
            .arg("-s")
            .arg(format!("{disk_gb}G"))
            .arg(&disk))?;
        let vars = dir.join("efivars.fd");
        let src = if art.arch == "x86_64" {
            "/usr/share/OVMF/OVMF_VARS_4M.fd"
        } else {
            "/usr/share/AAVMF/AAVMF_VARS.fd"
        };
        std::fs::copy(src, &vars).map_err(|e| {
            format!("{src}: {e} (install ovmf / qemu-efi-aarch64: image/host-deps)")
        })?;
        Ok(VmConfig::new(art, dir, disk, stick))
    }

    /// A box that starts as a copy of another box's powered-off disk and
    /// UEFI variables (`from`: a directory holding `disk.img` and
    /// `efivars.fd`), e.g. one already through its first boot.
    pub fn create_from(
        art: &Artifacts,
        name: &str,
        from: &Path,
        stick: Option<PathBuf>,
    ) -> Result<VmConfig, String> {
        let dir = art.vm_dir(name)?;
        let disk = dir.join("disk.img");
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(from.join("disk.img"))
            .arg(&disk))?;
        std::fs::copy(from.join("efivars.fd"), dir.join("efivars.fd"))
            .map_err(|e| format!("{}: {e}", from.join("efivars.fd").display()))?;
        Ok(VmConfig::new(art, dir, disk, stick))
    }

    /// Copies this (powered-off) box's disk and UEFI variables to `to`, for
    /// [`Vm::create_from`].
    pub fn snapshot(&self, to: &Path) -> Result<(), String> {
        let _ = std::fs::remove_dir_all(to);
        std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(&self.cfg.disk)
            .arg(to.join("disk.img")))?;
        std::fs::copy(self.cfg.dir.join("efivars.fd"), to.join("efivars.fd"))
            .map_err(|e| format!("efivars: {e}"))?;
        Ok(())
    }

    pub fn console_path(&self) -> PathBuf {
        self.cfg.dir.join("console.log")
    }

    /// Power on.
    pub fn start(cfg: VmConfig) -> Result<Vm, String> {
        let mut vm = Vm {
            cfg,
            child: None,
            serial: None,
            boot_offset: 0,
            started: Instant::now(),
            seq: 0,
        };
        vm.power_on()?;
        Ok(vm)
    }

    pub fn power_on(&mut self) -> Result<(), String> {
        let c = &self.cfg;
        let sock = c.dir.join("serial.sock");
        let _ = std::fs::remove_file(&sock);
        self.boot_offset = std::fs::metadata(self.console_path())
            .map(|m| m.len())
            .unwrap_or(0);
        let accel = accel(&c.arch);
        let (qemu, machine, cpu, code) = if c.arch == "x86_64" {
            let cpu = if accel == "kvm" { "host" } else { "max" };
            (
                "qemu-system-x86_64",
                format!("q35,accel={accel}"),
                cpu,
                "/usr/share/OVMF/OVMF_CODE_4M.fd",
            )
        } else {
            (
                "qemu-system-aarch64",
                "virt,accel=tcg".to_string(),
                "max",
                "/usr/share/AAVMF/AAVMF_CODE.fd",
            )
        };
        let mut cmd = Command::new(qemu);
        cmd.args(["-machine", &machine, "-cpu", cpu]);
        cmd.arg("-drive").arg(format!(
            "if=pflash,format=raw,unit=0,readonly=on,file={code}"
        ));
        cmd.arg("-drive").arg(format!(
            "if=pflash,format=raw,unit=1,file={}",
            c.dir.join("efivars.fd").display()
        ));
        // The firmware's system UUID, the same at every power-on of this box:
        // the image takes its machine id from it (systemd.machine_id=firmware).
        cmd.args(["-uuid", &system_uuid(&c.dir)]);
        // The hardware watchdog (a PCI device on both machines).
        cmd.args(["-device", "i6300esb", "-action", "watchdog=reset"]);
        cmd.args(["-m", &c.memory_mb.to_string(), "-smp", &c.smp.to_string()]);
        cmd.args(["-display", "none", "-vga", "none", "-nodefaults"]);
        cmd.arg("-drive").arg(format!(
            "file={},format=raw,if=none,id=disk0,cache={DISK_CACHE},aio=threads,discard=unmap",
            c.disk.display()
        ));
        cmd.args(["-device", "virtio-blk-pci,drive=disk0,bootindex=0"]);
        if let Some(s) = &c.stick {
            cmd.arg("-drive").arg(format!(
                "file={},format=raw,if=none,id=stick,readonly=on",
                s.display()
            ));
            cmd.args(["-device", "virtio-blk-pci,drive=stick"]);
        }
        if let Some(s) = &c.extra_disk {
            cmd.arg("-drive").arg(format!(
                "file={},format=raw,if=none,id=extra,readonly=on",
                s.display()
            ));
            cmd.args(["-device", "virtio-blk-pci,drive=extra"]);
        }
        let p = c.ports;
        cmd.arg("-netdev").arg(format!(
            "user,id=n0,hostfwd=tcp:127.0.0.1:{}-:2575,hostfwd=tcp:127.0.0.1:{}-:9090,hostfwd=tcp:127.0.0.1:{}-:8080",
            p.mllp, p.health, p.status
        ));
        cmd.args(["-device", "virtio-net-pci,netdev=n0"]);
        cmd.args(["-device", "virtio-rng-pci"]);
        cmd.arg("-chardev").arg(format!(
            "socket,id=ser0,path={},server=on,wait=off,logfile={},logappend=on",
            sock.display(),
            self.console_path().display()
        ));
        cmd.args(["-serial", "chardev:ser0"]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(c.dir.join("qemu.stderr")).map_err(|e| e.to_string())?);
        self.started = Instant::now();
        let child = cmd.spawn().map_err(|e| {
            format!(
                "qemu: {e} (install qemu-system-x86/-arm from bookworm-backports: image/host-deps)"
            )
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = UnixStream::connect(&sock) {
                // qemu's logfile= records the console; the socket must still be
                // drained, or the guest's console writes block when it fills.
                if let Ok(mut r) = s.try_clone() {
                    std::thread::spawn(move || {
                        let mut b = [0u8; 65536];
                        while matches!(r.read(&mut b), Ok(n) if n > 0) {}
                    });
                }
                self.serial = Some(s);
                break;
            }
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Err(self.fail(&format!("qemu exited at once with {st}")));
            }
            if Instant::now() > deadline {
                return Err(self.fail("qemu's serial socket never appeared"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The power cut: SIGKILL qemu.
    pub fn power_cut(&mut self) {
        self.serial = None;
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether qemu is still running.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Clean shutdown through the service console; waits for qemu to exit.
    pub fn poweroff(&mut self, timeout: Duration) -> Result<(), String> {
        self.type_line("systemctl poweroff")?;
        let deadline = Instant::now() + timeout;
        while self.running() {
            if Instant::now() > deadline {
                let msg = self.fail("the guest did not power off");
                self.power_cut();
                return Err(msg);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.child = None;
        Ok(())
    }

    /// The console text of this power-on.
    pub fn console_since(&self, offset: u64) -> String {
        let mut f = match std::fs::File::open(self.console_path()) {
            Ok(f) => f,
            Err(_) => return String::new(),
        };
        let mut buf = Vec::new();
        let _ = io::Seek::seek(&mut f, io::SeekFrom::Start(offset));
        let _ = f.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }

    pub fn console_len(&self) -> u64 {
        std::fs::metadata(self.console_path())
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// A failure message quoting the console's last lines.
    pub fn fail(&self, what: &str) -> String {
        let text = self.console_since(0);
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        let stderr = std::fs::read_to_string(self.cfg.dir.join("qemu.stderr")).unwrap_or_default();
        format!(
            "{what}\n--- console ({}), last 60 lines ---\n{tail}\n--- qemu stderr ---\n{stderr}",
            self.console_path().display()
        )
    }

    /// Waits until `pat` appears in the console after `offset`.
    pub fn wait_console(
        &mut self,
        offset: u64,
        pat: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.console_since(offset).contains(pat) {
                return Ok(());
            }
            if !self.running() {
                return Err(self.fail(&format!("qemu exited while waiting for {pat:?}")));
            }
            if Instant::now() > deadline {
                return Err(self.fail(&format!("no {pat:?} on the console within {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Polls GET /readyz through hostfwd until 200; returns the time since power-on.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, _)) = http_get(self.cfg.ports.health, "/readyz", None) {
                return Ok(self.started.elapsed());
            }
            if !self.running() {
                return Err(self.fail("qemu exited before the gateway was ready"));
            }
            if Instant::now() > deadline {
                return Err(self.fail(&format!("/readyz not 200 within {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn type_line(&mut self, line: &str) -> Result<(), String> {
        let s = self
            .serial
            .as_mut()
            .ok_or_else(|| "no serial connection (the VM is off)".to_string())?;
        s.write_all(line.as_bytes())
            .and_then(|_| s.write_all(b"\n"))
            .and_then(|_| s.flush())
            .map_err(|e| format!("serial: {e}"))
    }

    /// Types `cmd` on the service console and returns at once (for a command
    /// the test cuts the power under; its output lands on the console).
    pub fn sh_start(&mut self, cmd: &str) -> Result<(), String> {
        self.type_line(cmd)
    }

    /// Waits until `pat` appears `n` times in the console after `offset`.
    pub fn wait_console_n(
        &mut self,
        offset: u64,
        pat: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.console_since(offset).matches(pat).count() >= n {
                return Ok(());
            }
            if !self.running() {
                return Err(self.fail(&format!("qemu exited while waiting for {pat:?} x{n}")));
            }
            if Instant::now() > deadline {
                return Err(self.fail(&format!(
                    "{pat:?} not seen {n} times on the console within {timeout:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a shell command on the service console; returns (exit code, output).
    pub fn sh(&mut self, cmd: &str, timeout: Duration) -> Result<(i32, String), String> {
        self.seq += 1;
        let tag = format!("T{}x{}", self.seq, std::process::id());
        let start = self.console_len();
        // The end marker is built by printf so the echoed command line does not match it.
        self.type_line(&format!(
            "{{ {cmd} ; }} 2>&1 | sed 's/^/|/'; printf '\\100\\100END {tag} %s\\n' \"${{PIPESTATUS[0]}}\""
        ))?;
        let marker = format!("@@END {tag} ");
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.console_since(start);
            if let Some(i) = text.find(&marker) {
                let rest = &text[i + marker.len()..];
                let code: i32 = rest
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(-1);
                let out: String = text[..i].lines().filter_map(|l| l.strip_prefix('|')).fold(
                    String::new(),
                    |mut acc, l| {
                        let _ = writeln!(acc, "{}", l.trim_end_matches('\r'));
                        acc
                    },
                );
                return Ok((code, out));
            }
            if !self.running() {
                return Err(self.fail(&format!("qemu exited while running `{cmd}`")));
            }
            if Instant::now() > deadline {
                return Err(self.fail(&format!("`{cmd}` did not finish within {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `sh` that must exit 0.
    pub fn sh_ok(&mut self, cmd: &str, timeout: Duration) -> Result<String, String> {
        let (code, out) = self.sh(cmd, timeout)?;
        if code != 0 {
            return Err(self.fail(&format!("`{cmd}` exited with {code}:\n{out}")));
        }
        Ok(out)
    }

    /// Waits for the service console's shell after a (re)boot.
    pub fn wait_console_shell(&mut self, timeout: Duration) -> Result<(), String> {
        let off = self.boot_offset;
        self.wait_console(off, "appliance service console", timeout)?;
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.power_cut();
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1:port; returns (status, body).
pub fn http_get(port: u16, path: &str, basic: Option<&str>) -> io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(3),
    )?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let auth = basic
        .map(|b| format!("Authorization: Basic {b}\r\n"))
        .unwrap_or_default();
    write!(s, "GET {path} HTTP/1.0\r\nHost: box\r\n{auth}\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("not HTTP: {text:.80}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// One HL7 ADT^A04 with control id `ctrl` (synthetic patient).
pub fn hl7_message(ctrl: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|EHR|CLINIC|LAB|LAB|20260101120000||ADT^A04|{ctrl}|P|2.5.1\rEVN|A04|20260101120000\rPID|1||{ctrl}^^^HOSP^MR||TEST^PATIENT||19800101|F\rPV1|1|O\r"
    )
    .into_bytes()
}

/// An MLLP connection to the box (through hostfwd).
pub struct Mllp {
    s: TcpStream,
}

impl Mllp {
    pub fn connect(port: u16) -> io::Result<Mllp> {
        let s = TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(3),
        )?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.set_nodelay(true)?;
        Ok(Mllp { s })
    }

    /// Sends one message; Ok(true) for AA/CA, Ok(false) for any other ACK.
    pub fn send(&mut self, msg: &[u8]) -> io::Result<bool> {
        let mut frame = Vec::with_capacity(msg.len() + 3);
        frame.push(0x0b);
        frame.extend_from_slice(msg);
        frame.extend_from_slice(&[0x1c, 0x0d]);
        self.s.write_all(&frame)?;
        let mut ack = Vec::new();
        let mut b = [0u8; 1024];
        loop {
            let n = self.s.read(&mut b)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the ACK",
                ));
            }
            ack.extend_from_slice(&b[..n]);
            if ack.windows(2).any(|w| w == [0x1c, 0x0d]) {
                break;
            }
        }
        let text = String::from_utf8_lossy(&ack);
        Ok(text.contains("MSA|AA") || text.contains("MSA|CA"))
    }
}

/// A small file server on 127.0.0.1 with HTTP Range support (the updater
/// downloads chunks with Range requests), serving `root`; the guest reaches
/// it as `http://10.0.2.2:PORT/`. Each test publishes under its own first
/// path segment (`/s3/...`); the server counts the body bytes it sent per
/// segment (the update's size over the wire) and can slow a segment down
/// (so a power cut can land inside the download).
pub struct FileServer {
    pub port: u16,
    shared: std::sync::Arc<ServerShared>,
}

#[derive(Default)]
struct ServerShared {
    served: std::sync::Mutex<std::collections::HashMap<String, u64>>,
    /// Bytes per second, per first path segment.
    throttle: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl FileServer {
    pub fn start(root: PathBuf) -> io::Result<FileServer> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        let shared = std::sync::Arc::new(ServerShared::default());
        let sh = shared.clone();
        std::thread::spawn(move || {
            for conn in l.incoming().flatten() {
                let root = root.clone();
                let sh = sh.clone();
                std::thread::spawn(move || {
                    let _ = serve_one(conn, &root, &sh);
                });
            }
        });
        Ok(FileServer { port, shared })
    }

    /// Body bytes sent for paths under `/prefix/`.
    pub fn bytes_served(&self, prefix: &str) -> u64 {
        self.shared
            .served
            .lock()
            .map(|m| m.get(prefix).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Sends paths under `/prefix/` at most `bytes_per_sec` (0: unlimited).
    pub fn throttle(&self, prefix: &str, bytes_per_sec: u64) {
        if let Ok(mut m) = self.shared.throttle.lock() {
            m.insert(prefix.to_string(), bytes_per_sec);
        }
    }
}

fn serve_one(mut s: TcpStream, root: &Path, sh: &ServerShared) -> io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    loop {
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut b)? == 0 {
                return Ok(());
            }
            head.push(b[0]);
            if head.len() > 16384 {
                return Ok(());
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let mut lines = head.lines();
        let req = lines.next().unwrap_or("");
        let path = req.split_whitespace().nth(1).unwrap_or("/");
        let range = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("range"))
            .map(|(_, v)| v.trim().to_string());
        let rel = path.split('?').next().unwrap_or("").trim_start_matches('/');
        let prefix = rel.split('/').next().unwrap_or("").to_string();
        let file = root.join(rel);
        if rel.contains("..") || !file.is_file() {
            s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
            continue;
        }
        let data = std::fs::read(&file)?;
        let (status, body, extra) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
            Some(r) => {
                let (a, b) = r.split_once('-').unwrap_or((r, ""));
                let start: usize = a.parse().unwrap_or(0);
                let end: usize = if b.is_empty() {
                    data.len().saturating_sub(1)
                } else {
                    b.parse::<usize>()
                        .unwrap_or(data.len())
                        .min(data.len().saturating_sub(1))
                };
                if start > end || start >= data.len() {
                    s.write_all(
                        b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\n\r\n",
                    )?;
                    continue;
                }
                (
                    "206 Partial Content",
                    &data[start..=end],
                    format!("Content-Range: bytes {start}-{end}/{}\r\n", data.len()),
                )
            }
            None => ("200 OK", &data[..], String::new()),
        };
        write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}Accept-Ranges: bytes\r\n\r\n",
            body.len()
        )?;
        let rate = sh
            .throttle
            .lock()
            .map(|m| m.get(&prefix).copied().unwrap_or(0))
            .unwrap_or(0);
        // In pieces of a tenth of a second at the throttled rate.
        let piece = if rate == 0 {
            body.len().max(1)
        } else {
            (rate as usize / 10).max(1024)
        };
        for part in body.chunks(piece) {
            s.write_all(part)?;
            if let Ok(mut m) = sh.served.lock() {
                *m.entry(prefix.clone()).or_insert(0) += part.len() as u64;
            }
            if rate > 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A tiny deterministic PRNG (xorshift64*) for cut points; the seed is
/// printed so a failing run can be replayed with `HW_QEMU_SEED`.
pub struct Rng(u64);

impl Rng {
    pub fn from_env() -> Rng {
        let seed = std::env::var("HW_QEMU_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("HW_QEMU_SEED={seed}");
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [lo, hi) milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next_u64() % (hi - lo).max(1))
    }
}
