//! The Python that runs the real third-party peers and validators (hl7,
//! hl7apy, fhir.resources, prometheus_client, pyx12): `$GATEWAY_TEST_PYTHON`
//! or the repository's `.venv`, which scripts/test makes from
//! `gateway/tests/peers/requirements.txt`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use crate::need::unavailable;
use crate::paths::repo_root;

/// The test Python if it can import every one of `modules`; otherwise
/// [`unavailable`] (a failure under `CI=true`) and `None`.
pub fn python(modules: &[&str]) -> Option<PathBuf> {
    // Importing fhir.resources takes a second: check each set once.
    static CHECKED: Mutex<Option<HashSet<(PathBuf, String)>>> = Mutex::new(None);
    let import = format!("import {}", modules.join(", "));
    let candidates = [
        std::env::var_os("GATEWAY_TEST_PYTHON").map(PathBuf::from),
        Some(repo_root().join(".venv/bin/python")),
    ];
    for py in candidates.into_iter().flatten() {
        let key = (py.clone(), import.clone());
        let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
        if checked.get_or_insert_with(HashSet::new).contains(&key) {
            return Some(py);
        }
        let ok = Command::new(&py)
            .args(["-c", &import])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            checked.get_or_insert_with(HashSet::new).insert(key);
            return Some(py);
        }
    }
    unavailable(
        &format!("no test Python can `{import}`"),
        "run scripts/test (it makes .venv with gateway/tests/peers/requirements.txt), \
         or set GATEWAY_TEST_PYTHON to a Python that has them",
    );
    None
}
