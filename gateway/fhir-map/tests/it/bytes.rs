//! `translate_to_bytes` (what the FHIR destination sends) and `translate`
//! (the `serde_json::Value` for `gateway translate`) give the same Bundle,
//! byte for byte, for every message of both corpora, in PUT and in
//! conditional mode, and fail alike where a message cannot be mapped.

use std::path::PathBuf;

use fhir_map::{MapContext, UpdateMode};

use crate::support;
use hl7::Message;

fn all_files() -> Vec<PathBuf> {
    let mut v = support::own_corpus();
    v.extend(support::shared_corpus());
    v
}

fn contexts() -> Vec<MapContext> {
    let put = MapContext::new("acme");
    let mut conditional = MapContext::new("acme");
    conditional.update_mode = UpdateMode::Conditional;
    conditional.default_utc_offset = Some("-05:00".into());
    vec![put, conditional]
}

#[test]
fn bytes_and_value_are_the_same_bundle() {
    let files = all_files();
    assert!(files.len() >= 100, "corpus files: {}", files.len());
    let mut bundles = 0;
    for f in &files {
        let raw = std::fs::read(f).unwrap();
        let Ok(msg) = Message::parse(&raw) else {
            continue;
        };
        for ctx in contexts() {
            let name = f.display();
            match (
                fhir_map::translate(&msg, &ctx),
                fhir_map::translate_to_bytes(&msg, &ctx),
            ) {
                (Ok(value), Ok(bytes)) => {
                    let parsed: serde_json::Value = serde_json::from_slice(&bytes)
                        .unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
                    assert_eq!(parsed, value, "{name}");
                    // Same key order too: the bytes are serde_json's own.
                    assert_eq!(bytes, serde_json::to_vec(&value).unwrap(), "{name}");
                    bundles += 1;
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "{name}"),
                (a, b) => panic!(
                    "{name}: translate {:?} but translate_to_bytes {:?}",
                    a.map(|_| "ok"),
                    b.map(|_| "ok")
                ),
            }
        }
    }
    // 63 own messages and the shared files of the mapped families, twice.
    assert!(bundles >= 200, "bundles compared: {bundles}");
}
