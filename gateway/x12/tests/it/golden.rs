//! Golden tests: the transform's JSON for each fixture, the TA1/999 the
//! builders write, and the examples in docs/x12-json.md, which must equal
//! the transform's output for the files they name (so the schema document
//! cannot drift). `X12_BLESS=1 cargo test -p x12 --test it -- golden::` rewrites
//! the golden files and the doc's examples after a deliberate change.

use crate::support;

use std::path::{Path, PathBuf};

use x12::{acknowledgments, check, to_json, AckHeader, AckKind, CheckOptions, Stamp};

fn bless() -> bool {
    std::env::var("X12_BLESS").is_ok_and(|v| v == "1")
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

fn json_of(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc = check(&bytes, &CheckOptions::default(), &());
    serde_json::from_slice(&to_json(&doc)).unwrap()
}

fn compare(expected_file: &Path, actual: &str) {
    if bless() {
        std::fs::write(expected_file, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(expected_file)
        .unwrap_or_else(|e| panic!("{}: {e} (X12_BLESS=1 writes it)", expected_file.display()));
    assert!(
        expected == actual,
        "{} differs from the output; diff it against this (X12_BLESS=1 rewrites it):\n{actual}",
        expected_file.display()
    );
}

/// The broken 837P whose acknowledgments are kept as fixtures: the second
/// set's SE01 is wrong and one segment id is lower case.
fn broken_837() -> Vec<u8> {
    std::fs::read_to_string(support::fixture("claim-professional.837"))
        .unwrap()
        .replace(
            "SE*30*0001~",
            "SE*30*0001~\nST*837*0002*005010X222A1~\nBHT*0019*00*TESTBATCH02*20240310*0900*CH~\nrEF*D9*X~\nSE*9*0002~",
        )
        .replace("GE*1*201~", "GE*2*201~")
        .into_bytes()
}

#[test]
fn acknowledgment_fixtures() {
    let header = AckHeader::numbered(9001, Stamp::new(2024, 3, 11, 10, 0).unwrap());
    // 999: the group is partially accepted (ISA14=1 also asks for a TA1 A).
    let bytes = broken_837();
    let doc = check(&bytes, &CheckOptions::default(), &());
    let acks = acknowledgments(&doc, || header);
    let kinds: Vec<AckKind> = acks.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, vec![AckKind::Ta1, AckKind::Ack999]);
    compare(
        &support::fixture("ack-partial.999"),
        std::str::from_utf8(&acks[1].bytes).unwrap(),
    );
    // TA1: IEA02 does not match ISA13.
    let bytes = String::from_utf8(bytes)
        .unwrap()
        .replace("IEA*1*000000201~", "IEA*1*000000299~");
    let doc = check(bytes.as_bytes(), &CheckOptions::default(), &());
    let acks = acknowledgments(&doc, || header);
    assert_eq!(
        acks.len(),
        1,
        "a rejected interchange gets a TA1 and no 999"
    );
    compare(
        &support::fixture("ack-rejected.ta1"),
        std::str::from_utf8(&acks[0].bytes).unwrap(),
    );
}

#[test]
fn fixture_json() {
    for name in [
        "claim-professional.837",
        "remit-plb-reversal-denial.835",
        "claim-ack.277ca",
        "ack-partial.999",
        "ack-rejected.ta1",
    ] {
        let v = json_of(&support::fixture(name));
        let golden = support::crate_dir()
            .join("tests/golden")
            .join(format!("{name}.json"));
        compare(&golden, &pretty(&v));
    }
}

/// docs/x12-json.md: each `<!-- example: PATH WHAT -->` line (PATH relative
/// to gateway/x12, WHAT `transaction` or `interchange`) is followed by a
/// ```json block that must equal that part of PATH's JSON.
#[test]
fn doc_examples_match_the_transform() {
    let doc_path: PathBuf = support::crate_dir().join("../../docs/x12-json.md");
    let text = std::fs::read_to_string(&doc_path).unwrap();
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    let mut examples = 0;
    let mut stale = Vec::new();
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let Some(spec) = line
            .strip_prefix("<!-- example: ")
            .and_then(|s| s.strip_suffix(" -->"))
        else {
            continue;
        };
        let (path, what) = spec.split_once(' ').expect("example: PATH WHAT");
        let v = json_of(&support::crate_dir().join(path));
        let part = match what {
            "transaction" => &v["interchanges"][0]["groups"][0]["transactions"][0],
            "interchange" => &v["interchanges"][0],
            other => panic!("unknown example part {other}"),
        };
        assert!(!part.is_null(), "{path}: no {what}");
        let expected = pretty(part);
        // Skip the existing block.
        let mut current = String::new();
        if lines.peek() == Some(&"```json") {
            lines.next();
            for l in lines.by_ref() {
                if l == "```" {
                    break;
                }
                current.push_str(l);
                current.push('\n');
            }
        }
        if current != expected {
            stale.push(path.to_string());
        }
        out.push_str("```json\n");
        out.push_str(&expected);
        out.push_str("```\n");
        examples += 1;
    }
    assert!(
        examples >= 9,
        "{examples} examples in {}",
        doc_path.display()
    );
    if bless() {
        std::fs::write(&doc_path, out).unwrap();
    } else {
        assert!(
            stale.is_empty(),
            "docs/x12-json.md examples differ from the transform for {stale:?}; \
             X12_BLESS=1 cargo test -p x12 --test it -- golden:: rewrites them"
        );
    }
}
