//! The daemon under test: the real `gateway` binary on a temporary config,
//! talked to over loopback as a site would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use test_support::wait;

use super::{free_port, tail};

pub const BIN: &str = env!("CARGO_BIN_EXE_gateway");

pub struct Gateway {
    /// Holds the config, the log and (by default) the data directory;
    /// removed when the gateway is dropped.
    _dir: tempfile::TempDir,
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
        let mut g = Gateway::configure(opts);
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
            _dir: dir,
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
        let addr = self.socket_addr();
        let log = self.log.clone();
        let mut child = self.child.as_mut();
        wait::until(
            "the gateway to accept connections",
            Duration::from_secs(60),
            || {
                if let Some(c) = child.as_mut() {
                    if let Ok(Some(status)) = c.try_wait() {
                        panic!(
                            "gateway exited early ({status}); log:\n{}",
                            std::fs::read_to_string(&log).unwrap_or_default()
                        );
                    }
                }
                std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            },
            || std::fs::read_to_string(&log).unwrap_or_default(),
        );
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last 40 lines of the daemon's log.
    pub fn log_tail(&self) -> String {
        tail(&self.log_text())
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
    pub fn stop_wait(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("gateway not running");
        let mut status = None;
        wait::until(
            "the gateway to exit",
            Duration::from_secs(30),
            || {
                status = c.try_wait().unwrap();
                status.is_some()
            },
            || self.log_tail(),
        );
        status.unwrap()
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> ExitStatus {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        self.stop_wait()
    }

    /// Run a CLI subcommand against this gateway's config.
    pub fn cli(&self, args: &[&str]) -> Output {
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
            "status failed: {}\nlog tail:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The status of destination `name`.
    pub fn dest_status(&self, name: &str) -> serde_json::Value {
        let s = self.status_json();
        s["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no destination {name} in {s}"))
    }

    /// Waits (bounded) until `done`; on timeout the test fails with the
    /// daemon's log tail.
    pub fn wait_for(&self, what: &str, within: Duration, done: impl FnMut() -> bool) {
        wait::until(what, within, done, || {
            format!("log tail:\n{}", self.log_tail())
        });
    }

    /// Files delivered to the folder destination (excluding temp files).
    pub fn delivered_files(&self) -> Vec<PathBuf> {
        if !self.outbox().is_dir() {
            return Vec::new();
        }
        test_support::paths::files_with_extension(&self.outbox(), "hl7")
    }

    /// Wait until the folder holds `n` messages.
    pub fn wait_delivered(&self, n: usize) -> Vec<PathBuf> {
        self.wait_for(
            &format!("{n} messages in the folder"),
            Duration::from_secs(60),
            || self.delivered_files().len() >= n,
        );
        self.delivered_files()
    }

    /// Wait until the (first) destination has nothing pending.
    pub fn wait_drained(&self, within: Duration) {
        wait::until(
            "the backlog to drain",
            within,
            || self.status_json()["destinations"][0]["pending"] == 0,
            || {
                format!(
                    "status: {}\nlog tail:\n{}",
                    self.status_json(),
                    self.log_tail()
                )
            },
        );
    }
}

/// `gateway check-config --config <config>` (no daemon needed).
pub fn check_config(config: &Path) -> Output {
    Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
    }
}
