//! Every X12 file in ../shared/corpus (imsweb, LinuxForHealth): it passes
//! the envelope check and maps to JSON, or is refused with its envelope
//! errors; and the envelope verdict agrees with pyx12's, file by file.

use crate::support;

use std::collections::BTreeMap;
use std::process::Command;

use x12::{check, to_json, CheckOptions, Code, ErrorKind};

/// The comparable envelope findings: what both pyx12's envelope layer and
/// this crate check. The crate also checks what pyx12 does not (ISA values
/// and separators, GS08/ST01/ST03 consistency, ISA15 mode, misplaced
/// segments, segment ids); those are left out of the comparison.
fn category(e: &x12::EnvelopeError) -> Option<&'static str> {
    Some(match (&e.kind, e.code()) {
        (_, Code::Ta105("001")) => "isa13/iea02",
        (_, Code::Ta105("021")) => "iea01 count",
        (ErrorKind::IeaMissing, _) => "iea missing",
        (_, Code::Ta105("025")) => "duplicate isa13",
        (_, Code::Ak905("3")) => "ge missing",
        (_, Code::Ak905("4")) => "gs06/ge02",
        (_, Code::Ak905("5")) => "ge01 count",
        (_, Code::Ak905("19")) => "duplicate gs06",
        (_, Code::Ik502("2")) => "se missing",
        (_, Code::Ik502("3")) => "st02/se02",
        (_, Code::Ik502("4")) => "se01 count",
        (_, Code::Ik502("23")) => "duplicate st02",
        _ => return None,
    })
}

fn pyx12_category(kind: &str, code: &str) -> Option<&'static str> {
    Some(match (kind, code) {
        ("isa", "001") => "isa13/iea02",
        ("isa", "021") => "iea01 count",
        ("isa", "023") => "iea missing",
        ("isa", "025") => "duplicate isa13",
        ("gs", "3") | ("isa", "024") => "ge missing",
        ("gs", "4") => "gs06/ge02",
        ("gs", "5") => "ge01 count",
        ("gs", "6") => "duplicate gs06",
        ("st", "2") => "se missing",
        ("st", "3") => "st02/se02",
        ("st", "4") => "se01 count",
        ("st", "23") => "duplicate st02",
        _ => return None,
    })
}

fn counts<'a>(items: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    m
}

#[test]
fn every_corpus_file_is_mapped_or_refused() {
    let mut clean = 0;
    let mut refused = 0;
    let mut checked_835 = 0;
    for f in support::corpus_files() {
        let bytes = std::fs::read(&f).unwrap();
        let doc = check(&bytes, &CheckOptions::default(), &());
        let json: serde_json::Value = serde_json::from_slice(&to_json(&doc))
            .unwrap_or_else(|e| panic!("{}: JSON does not parse: {e}", f.display()));
        assert_eq!(json["clean"], doc.is_clean());
        if doc.is_clean() {
            clean += 1;
            let mut sets = 0;
            let mut remits = Vec::new();
            for ic in json["interchanges"].as_array().unwrap() {
                for g in ic["groups"].as_array().unwrap() {
                    for t in g["transactions"].as_array().unwrap() {
                        sets += 1;
                        assert!(t.get("mapped").is_none(), "{}: unmapped {t}", f.display());
                        assert!(
                            t.as_object().unwrap().len() > 5,
                            "{}: empty mapping",
                            f.display()
                        );
                        if t["transaction"] == "835" {
                            remits.push(t.clone());
                        }
                    }
                }
            }
            assert!(sets > 0, "{}: clean but no transaction", f.display());
            // Every claim of an 835 is in the JSON (the last one too, which
            // ends at SE), and its verdicts are reconcile_835's.
            let reconciled: Vec<_> = doc
                .sets()
                .filter(|(_, _, s)| s.kind == Some(x12::Kind::Remittance835))
                .map(|(_, _, s)| x12::reconcile_835(s))
                .collect();
            assert_eq!(remits.len(), reconciled.len(), "{}", f.display());
            for (t, r) in remits.iter().zip(&reconciled) {
                let claims = t["claims"].as_array().unwrap();
                assert_eq!(claims.len(), r.claims.len(), "{}", f.display());
                assert_eq!(
                    t["totals"]["claim_count"],
                    r.claims.len(),
                    "{}",
                    f.display()
                );
                assert_eq!(t["balanced"], r.balanced(), "{}", f.display());
                for (c, rc) in claims.iter().zip(&r.claims) {
                    assert_eq!(
                        c["balanced"],
                        rc.balanced && rc.unbalanced_lines.is_empty(),
                        "{}",
                        f.display()
                    );
                }
            }
            checked_835 += remits.len();
        } else {
            refused += 1;
            let errors = json["errors"].as_array().unwrap();
            assert!(!errors.is_empty());
            for e in errors {
                let m = e["message"].as_str().unwrap();
                assert!(m.starts_with("segment "), "{}: {m}", f.display());
            }
        }
    }
    // The imsweb samples carry wrong SE counts (and worse) on purpose.
    assert!(clean >= 40, "clean {clean}, refused {refused}");
    assert!(refused >= 25, "clean {clean}, refused {refused}");
    assert!(checked_835 >= 5, "{checked_835} clean 835 sets");
}

#[test]
fn envelope_verdicts_agree_with_pyx12() {
    let Some(py) = support::python() else { return };
    let files = support::corpus_files();
    let out = test_support::run::succeeds(
        Command::new(&py)
            .arg(support::crate_dir().join("tests/peers/pyx12_envelope.py"))
            .args(&files),
    );
    let theirs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut disagreements = Vec::new();
    let mut compared_with_errors = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let doc = check(&bytes, &CheckOptions::default(), &());
        let r = &theirs[f.to_string_lossy().as_ref()];
        if let Some(fatal) = r.get("fatal") {
            // pyx12 cannot read the interchange at all: the crate must refuse
            // it at the interchange or file level too.
            let refused = doc.errors().any(|e| {
                matches!(
                    e.kind,
                    ErrorKind::NoInterchange
                        | ErrorKind::IsaUnreadable
                        | ErrorKind::IsaLength { .. }
                        | ErrorKind::OutsideInterchange { .. }
                )
            });
            if !refused {
                disagreements.push(format!(
                    "{}: pyx12 fatal {fatal}, crate did not refuse the ISA",
                    f.display()
                ));
            }
            continue;
        }
        let mine = counts(doc.errors().filter_map(category));
        let pyx12 = counts(
            r["errors"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| pyx12_category(e[0].as_str().unwrap(), e[1].as_str().unwrap())),
        );
        if !pyx12.is_empty() {
            compared_with_errors += 1;
        }
        if mine != pyx12 {
            disagreements.push(format!("{}: crate {mine:?}, pyx12 {pyx12:?}", f.display()));
        }
    }
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
    // The comparison is not vacuous: most imsweb samples are broken.
    assert!(compared_with_errors >= 25, "{compared_with_errors}");
}

/// The imsweb 270/271 samples are 004010 files whose envelopes are wrong
/// (pyx12 agrees: IEA02 ≠ ISA13, SE01 and, in the 270, SE02 ≠ ST02; the
/// 271 also has an ST03 that differs from GS08). The check refuses them
/// with exactly those errors, and they still map to JSON.
#[test]
fn imsweb_270_271_samples() {
    let dir = test_support::paths::shared_corpus("x12-imsweb").join("x270_271");
    for (name, expected) in [
        (
            "x270.txt",
            vec![Code::Ta105("001"), Code::Ik502("3"), Code::Ik502("4")],
        ),
        (
            "x271.txt",
            vec![Code::Ta105("001"), Code::Ik502("19"), Code::Ik502("4")],
        ),
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let doc = check(&bytes, &CheckOptions::default(), &());
        let codes: Vec<Code> = doc.errors().map(|e| e.code()).collect();
        assert_eq!(codes, expected, "{name}");
        let json: serde_json::Value = serde_json::from_slice(&to_json(&doc)).unwrap();
        let t = &json["interchanges"][0]["groups"][0]["transactions"][0];
        let tree = t["hierarchy"].as_array().unwrap();
        assert_eq!(tree.len(), 1, "{name}: one information source");
        let subscriber = &tree[0]["children"][0]["children"][0];
        assert_eq!(subscriber["level_name"], "subscriber", "{name}");
        let key = if name == "x270.txt" {
            "inquiries"
        } else {
            "benefits"
        };
        assert!(
            subscriber[key].as_array().is_some_and(|a| !a.is_empty()),
            "{name}: {subscriber}"
        );
    }
}
