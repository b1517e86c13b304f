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
    let py = python(&["hl7"])?;
    let mut lab = KillOnDrop(
        Command::new(py)
            .arg(script("mllp_lab.py"))
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
    Some((lab, port))
}
