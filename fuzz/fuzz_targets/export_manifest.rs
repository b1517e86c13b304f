//! The Bulk Data export's manifest parser
//! (`gateway::source::export::manifest::parse_manifest`), as the export job
//! reads each manifest page. Checks: no panic on any body.
#![no_main]

use gateway::source::export::manifest::parse_manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_manifest(data);
});
