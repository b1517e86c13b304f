//! The config loader's pure part (`gateway::config::validate`): TOML with
//! spans, every table's checks, the checks across tables. No file is read.
//! Checks: no panic, and every error names the config file and a line
//! inside the text.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/etc/clinic-gateway/gateway.toml");
    if let Err(errors) = gateway::config::validate(text, file, Path::new("/etc/clinic-gateway")) {
        let lines = text.lines().count().max(1) + 1;
        for e in errors.iter() {
            assert_eq!(e.file, file);
            assert!(
                e.line <= lines,
                "error at line {} of a {lines}-line text",
                e.line
            );
        }
    }
});
