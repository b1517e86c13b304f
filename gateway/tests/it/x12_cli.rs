//! `gateway x12 check|json`, the real binary: every X12 sample of
//! ../shared/corpus passes `x12 check` and maps with `x12 json`, or is
//! refused with its envelope errors at their segment positions; broken
//! variants of our synthetic 837P report the right code and write the right
//! TA1/999 to `--ack-dir`; every TA1/999 written passes pyx12's `x12valid`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::BIN;

fn gateway(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN).arg("x12").args(args).output().unwrap()
}

fn check(file: &Path, extra: &[&str], ack_dir: &Path) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec!["check".as_ref(), file.as_os_str()];
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    args.extend(["--ack-dir".as_ref(), ack_dir.as_os_str()]);
    gateway(&args)
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn fixture_837() -> String {
    let p =
        test_support::paths::repo_root().join("gateway/x12/tests/fixtures/claim-professional.837");
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn every_corpus_sample_is_checked_and_mapped_or_refused() {
    let work = tempfile::tempdir().unwrap();
    let (mut clean, mut refused) = (0, 0);
    let mut acks = Vec::new();
    for (i, f) in test_support::paths::x12_corpus_files().iter().enumerate() {
        let acks_here = work.path().join(format!("acks-{i}"));
        let out = check(f, &[], &acks_here);
        let report = text(&out);
        let errors: Vec<&str> = report
            .lines()
            .filter(|l| l.starts_with("  error: "))
            .collect();
        let json_out = gateway(&["json".as_ref(), f.as_os_str()]);
        let json: serde_json::Value = serde_json::from_slice(&json_out.stdout)
            .unwrap_or_else(|e| panic!("{}: x12 json is not JSON: {e}", f.display()));
        match out.status.code() {
            Some(0) => {
                clean += 1;
                assert!(report.contains(": clean\n"), "{}: {report}", f.display());
                assert!(errors.is_empty(), "{}: {report}", f.display());
                assert!(json_out.status.success(), "{}", f.display());
                assert_eq!(json["clean"], true, "{}", f.display());
                let sets: Vec<&serde_json::Value> = json["interchanges"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|ic| ic["groups"].as_array().unwrap())
                    .flat_map(|g| g["transactions"].as_array().unwrap())
                    .collect();
                assert!(
                    !sets.is_empty(),
                    "{}: clean but no transaction",
                    f.display()
                );
                for t in sets {
                    assert!(t.get("mapped").is_none(), "{}: unmapped {t}", f.display());
                }
            }
            Some(1) => {
                refused += 1;
                assert!(
                    !errors.is_empty(),
                    "{}: exit 1 without errors: {report}",
                    f.display()
                );
                for e in &errors {
                    assert!(e.starts_with("  error: segment "), "{}: {e}", f.display());
                }
                assert_eq!(json_out.status.code(), Some(1), "{}", f.display());
                assert_eq!(json["clean"], false, "{}", f.display());
                assert_eq!(
                    json["errors"].as_array().unwrap().len(),
                    errors.len(),
                    "{}: the JSON and the report list different errors",
                    f.display()
                );
            }
            other => panic!(
                "{}: exit {other:?}: {}",
                f.display(),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
        // What the report says it would send is what it wrote.
        let written = files_in(&acks_here);
        assert_eq!(
            written.len(),
            report.matches("  would send: ").count(),
            "{}: {report}",
            f.display()
        );
        acks.extend(written);
    }
    // The imsweb samples carry wrong SE counts (and worse) on purpose.
    assert!(
        clean >= 40 && refused >= 25,
        "clean {clean}, refused {refused}"
    );
    let ta1 = acks
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "ta1"))
        .count();
    let ack999 = acks
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "999"))
        .count();
    assert!(ta1 >= 5 && ack999 >= 40, "{ta1} TA1, {ack999} 999 written");
    let Some(py) = test_support::pyx12::python() else {
        return;
    };
    for (f, problems) in test_support::pyx12::x12valid(&py, &acks) {
        assert!(problems.is_empty(), "{}: {problems:#?}", f.display());
    }
}

/// (name, file, options, error reported, an ack segment, acks written).
type Case = (
    &'static str,
    String,
    &'static [&'static str],
    &'static str,
    &'static str,
    usize,
);

#[test]
fn check_names_positions_and_codes_and_writes_the_acks() {
    let work = tempfile::tempdir().unwrap();
    let good = fixture_837();
    // ISA14 = 1 asks for a TA1 even when the interchange is sound.
    let cases: [Case; 5] = [
        ("clean", good.clone(), &["--usage", "test"], "", "AK9*A*1*1*1~", 2),
        (
            "se01",
            good.replace("SE*30*0001~", "SE*31*0001~"),
            &[],
            "error: segment 32 (byte 941): SE01 says \"31\" segments, ST..SE inclusive has 30 [IK502 4]",
            "IK5*R*4~",
            2,
        ),
        (
            "iea02",
            good.replace("IEA*1*000000201~", "IEA*1*000000202~"),
            &[],
            "IEA02 \"000000202\" does not match ISA13 \"000000201\" [TA105 001]",
            "TA1*000000201*240310*0900*R*001~",
            1,
        ),
        (
            "usage",
            good.clone(),
            &["--usage", "production"],
            "[TA105 020]",
            "TA1*000000201*240310*0900*R*020~",
            1,
        ),
        (
            "garbage",
            "NOT X12 AT ALL\n".to_string(),
            &[],
            "no ISA segment",
            "",
            0,
        ),
    ];
    let mut written = Vec::new();
    for (name, body, extra, error, ack, count) in cases {
        let file = work.path().join(format!("{name}.837"));
        std::fs::write(&file, &body).unwrap();
        let acks = work.path().join(format!("acks-{name}"));
        let out = check(&file, extra, &acks);
        let report = text(&out);
        assert_eq!(out.status.success(), error.is_empty(), "{name}: {report}");
        assert!(report.contains(error), "{name}: no {error:?} in\n{report}");
        let files = files_in(&acks);
        assert_eq!(files.len(), count, "{name}: {files:?}\n{report}");
        if !ack.is_empty() {
            let found = files
                .iter()
                .any(|f| std::fs::read_to_string(f).unwrap().contains(ack));
            assert!(found, "{name}: no {ack:?} in {files:?}");
            assert!(
                report.contains(ack),
                "{name}: the report does not show the ack\n{report}"
            );
        }
        for f in &files {
            let n = f.file_name().unwrap().to_string_lossy().to_string();
            assert!(n.starts_with(&format!("{name}.837.")), "{n}");
        }
        written.extend(files);
    }
    let Some(py) = test_support::pyx12::python() else {
        return;
    };
    for (f, problems) in test_support::pyx12::x12valid(&py, &written) {
        assert!(problems.is_empty(), "{}: {problems:#?}", f.display());
    }
}

#[test]
fn json_prints_the_transform_and_unreadable_files_fail_with_their_name() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("claim.837");
    std::fs::write(&file, fixture_837()).unwrap();
    let out = gateway(&["json".as_ref(), file.as_os_str()]);
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &json["interchanges"][0]["groups"][0]["transactions"][0];
    assert_eq!(t["transaction"], "837P");
    let missing = work.path().join("missing.837");
    for verb in ["check", "json"] {
        let out = gateway(&[verb.as_ref(), missing.as_os_str()]);
        assert_eq!(out.status.code(), Some(1), "{verb}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("missing.837: cannot read"), "{verb}: {err}");
    }
}
