//! The real third-party peers in `tests/peers`, run by the test Python:
//! the `hl7`/`hl7apy` clients (`hl7_peers.py`), an MLLP lab that answers
//! as scripted (`mllp_lab.py`) and the Prometheus text parser
//! (`parse_metrics.py`).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `tests/peers/<script>`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// The test Python if it has `modules` (a failure under `CI=true`).
pub fn python(modules: &[&str]) -> Option<PathBuf> {
    test_support::python::python(modules)
}

/// SIGTERM `child` (so a peer flushes what it holds, as at a real
/// shutdown) and reap it; nothing if it was already stopped.
pub fn terminate(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = c.wait();
    }
}

/// A child process (a Python peer) killed when the test ends, pass or fail.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `mllp_lab.py` logging to `log`; returns it and its port, or
/// `None` where the test Python lacks `hl7`.
pub fn start_mllp_lab(log: &Path) -> Option<(KillOnDrop, u16)> {
    start_peer("mllp_lab.py", &["hl7"], &[log.as_os_str()])
}

/// Starts `tests/peers/<name>` with `args` under the test Python (which
/// must have `modules`); it prints "listening PORT" once ready.
pub fn start_peer(
    name: &str,
    modules: &[&str],
    args: &[&std::ffi::OsStr],
) -> Option<(KillOnDrop, u16)> {
    let py = python(modules)?;
    let mut peer = KillOnDrop(
        Command::new(py)
            .arg(script(name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufReader::new(peer.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("{name} did not start: {line:?}"))
        .parse()
        .unwrap();
    Some((peer, port))
}
