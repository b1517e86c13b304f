//! Test harness: runs the real `gateway` binary on a temporary config and talks
//! to it over loopback, as a site would.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway::net::mllp_client::Client;

pub mod http_peer;

pub const BIN: &str = env!("CARGO_BIN_EXE_gateway");

/// The shared third-party corpus beside the repository.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/hl7v2-fhir-converter")
}

pub fn corpus_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("../shared/corpus/hl7v2-fhir-converter must exist beside the repo")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hl7"))
        .collect();
    v.sort();
    v
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The Python interpreter of the test venv (made by scripts/test).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("GATEWAY_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python test venv at {}: run scripts/test (it creates it) or set GATEWAY_TEST_PYTHON",
        venv.display()
    );
    venv
}

pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// A minimal MSH-led message.
pub fn adt(control_id: &str, mrn: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ECW|CLINIC|GW|CLOUD|20240101120000||ADT^A04^ADT_A01|{control_id}|P|2.5.1\rEVN|A04|20240101120000\rPID|1||{mrn}^^^CLINIC^MR||TEST^PATIENT||19800101|F\rPV1|1|O\r"
    )
    .into_bytes()
}

pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
    pub log: PathBuf,
}

#[derive(Default)]
pub struct Options {
    /// Extra keys for the [[listener]] table.
    pub listener_extra: String,
    /// Extra top-level tables (e.g. "[storage]\nquota_mb = 5\n"), placed before the listener.
    pub top_extra: String,
    /// Put data_dir here instead of inside the temp dir.
    pub data_dir: Option<PathBuf>,
    /// Replaces the default folder destination and route: the
    /// `[[destination]]` and `[[route]]` tables (the listener is "ehr").
    pub routing: Option<String>,
}

impl Gateway {
    pub fn start() -> Gateway {
        Gateway::start_with(Options::default())
    }

    pub fn start_with(opts: Options) -> Gateway {
        let g = Gateway::configure(opts);
        let mut g = g;
        g.spawn();
        g
    }

    /// Write the config without starting.
    pub fn configure(opts: Options) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let data_dir = opts
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("var"));
        let config = dir.path().join("gateway.toml");
        let routing = opts.routing.clone().unwrap_or_else(|| {
            format!(
                "[[destination]]\nname = \"outbox\"\nkind = \"folder\"\npath = {out:?}\n\n[[route]]\nname = \"all\"\nfrom = [\"ehr\"]\nto = [\"outbox\"]\n",
                out = data_dir.join("outbox").display().to_string(),
            )
        });
        let text = format!(
            "data_dir = {data:?}\n{top}\n[[listener]]\nname = \"ehr\"\nbind = \"127.0.0.1:{port}\"\n{extra}\n\n{routing}",
            data = data_dir.display().to_string(),
            top = opts.top_extra,
            extra = opts.listener_extra,
        );
        std::fs::write(&config, text).unwrap();
        let log = dir.path().join("gateway.log");
        Gateway {
            dir,
            config,
            port,
            child: None,
            log,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let line = text.lines().find(|l| l.starts_with("data_dir")).unwrap();
        PathBuf::from(line.split('"').nth(1).unwrap())
    }

    pub fn outbox(&self) -> PathBuf {
        self.data_dir().join("outbox")
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.addr().parse().unwrap()
    }

    /// Start the daemon and wait until it accepts connections.
    pub fn spawn(&mut self) {
        self.spawn_with_env(&[]);
        self.wait_ready();
    }

    /// Start the daemon with extra environment variables; does not wait.
    pub fn spawn_with_env(&mut self, env: &[(&str, &std::ffi::OsStr)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(BIN)
            .envs(env.iter().map(|(k, v)| (*k, *v)))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("GATEWAY_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("gateway exited early ({status}); log:\n{}", self.log_text());
                }
            }
            if std::net::TcpStream::connect_timeout(&self.socket_addr(), Duration::from_millis(200))
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gateway not ready within 60 s; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Wait (bounded) for an already signalled daemon to exit.
    pub fn stop_wait(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("gateway not running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "gateway did not exit within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.stop_wait()
    }

    /// Run a CLI subcommand against this gateway's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap()
    }

    pub fn status_json(&self) -> serde_json::Value {
        let out = self.cli(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Files delivered to the folder destination (excluding temp files).
    pub fn delivered_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = match std::fs::read_dir(self.outbox()) {
            Ok(rd) => rd
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "hl7"))
                .collect(),
            Err(_) => Vec::new(),
        };
        v.sort();
        v
    }

    /// Wait until the folder holds `n` messages.
    pub fn wait_delivered(&self, n: usize) -> Vec<PathBuf> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let files = self.delivered_files();
            if files.len() >= n {
                return files;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} delivered; log:\n{}",
                files.len(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Send one message on a fresh connection and return the ACK payload.
pub fn send_one(addr: &str, msg: &[u8]) -> Result<Vec<u8>, String> {
    rt().block_on(async {
        let mut c = Client::connect(addr, None, Duration::from_secs(20)).await?;
        c.exchange(msg).await
    })
    .map_err(|e| e.to_string())
}

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// MSA-1 of an ACK payload.
pub fn ack_code(ack: &[u8]) -> String {
    hl7::parse_ack(ack)
        .map(|a| a.code)
        .unwrap_or_else(|e| format!("unreadable ACK: {e}"))
}

/// Wait until the folder destination has nothing pending.
pub fn wait_drained(g: &Gateway, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let s = g.status_json();
        if s["destinations"][0]["pending"] == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "backlog did not drain: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The exactly-once check of the crash tests: every file in the folder is a
/// byte-identical copy of a message a client sent, and every acknowledged
/// message is there exactly once. Returns how many messages were delivered.
pub fn assert_acked_delivered_exactly_once(
    g: &Gateway,
    sent: &std::collections::HashMap<String, Vec<u8>>,
    acked: &std::collections::HashSet<String>,
    seed: u64,
) -> usize {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for f in g.delivered_files() {
        let bytes = std::fs::read(&f).unwrap();
        let id = control_id(&bytes);
        let original = sent.get(&id).unwrap_or_else(|| {
            panic!(
                "{} holds a message no client sent (control id '{id}')",
                f.display()
            )
        });
        assert!(
            original == &bytes,
            "{} is not byte-identical to what was sent",
            f.display()
        );
        *seen.entry(id).or_default() += 1;
    }
    for id in acked {
        match seen.get(id) {
            Some(1) => {}
            Some(n) => panic!("acknowledged message {id} delivered {n} times (seed {seed})"),
            None => panic!(
                "acknowledged message {id} was lost (seed {seed}); log:\n{}",
                g.log_text()
            ),
        }
    }
    seen.len()
}

/// MSH-10 of an HL7 message's bytes.
pub fn control_id(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .split('\r')
        .next()
        .unwrap_or("")
        .split('|')
        .nth(9)
        .unwrap_or("")
        .to_string()
}

/// A child process (a Python peer) killed when the test ends, pass or fail.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `tests/peers/mllp_lab.py` logging to `log`; returns it and its port.
pub fn start_mllp_lab(log: &Path) -> (KillOnDrop, u16) {
    use std::io::BufRead;
    let mut lab = KillOnDrop(
        Command::new(python())
            .arg(peers_dir().join("mllp_lab.py"))
            .arg(log)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(lab.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("mllp_lab.py did not start: {line:?}"))
        .parse()
        .unwrap();
    (lab, port)
}
