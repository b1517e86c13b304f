//! pyx12's x12valid is the independent judge: the synthetic fixtures are
//! TR3-valid, and every TA1 and 999 the crate builds (for the whole corpus,
//! the fixtures and broken variants of them) passes x12valid.

use crate::support;

use std::path::PathBuf;

use x12::{acknowledgments, check, reconcile_835, AckHeader, CheckOptions, Stamp, Usage};

const FIXTURES: [&str; 3] = [
    "claim-professional.837",
    "remit-plb-reversal-denial.835",
    "claim-ack.277ca",
];

fn header(n: u32) -> AckHeader {
    AckHeader::numbered(n, Stamp::new(2024, 3, 11, 10, 0).unwrap())
}

/// Broken variants of the 837P fixture, one envelope fault each.
fn broken_variants() -> Vec<(&'static str, Vec<u8>)> {
    let good = std::fs::read_to_string(support::fixture("claim-professional.837")).unwrap();
    let v = |name, s: String| (name, s.into_bytes());
    vec![
        v("iea02", good.replace("IEA*1*000000201~", "IEA*1*000000202~")),
        v("iea01", good.replace("IEA*1*000000201~", "IEA*2*000000201~")),
        v("se01", good.replace("SE*30*0001~", "SE*31*0001~")),
        v("se02", good.replace("SE*30*0001~", "SE*30*0002~")),
        v("ge01", good.replace("GE*1*201~", "GE*3*201~")),
        v("ge02", good.replace("GE*1*201~", "GE*1*202~")),
        v("no-se", good.replace("SE*30*0001~\n", "")),
        v("no-ge", good.replace("GE*1*201~\n", "")),
        v("no-iea", good.replace("IEA*1*000000201~\n", "")),
        v("truncated", good[..good.len() / 2].to_string()),
        v("st03", good.replace("ST*837*0001*005010X222A1~", "ST*837*0001*005010X223A2~")),
        v("gs08", good.replace("*X*005010X222A1~", "*X*005010X999~")),
        v("bad-id", good.replace("REF*D9*", "rEF*D9*")),
        v("isa-trimmed", good.replace("*ZZ*TESTCLINIC     *", "*ZZ*TESTCLINIC*")),
        v("garbage", format!("NOT X12\n{good}")),
        v("two-sets-one-bad", good.replace("SE*30*0001~", "SE*30*0001~\nST*837*0002*005010X222A1~\nBHT*0019*00*X*20240310*0900*CH~\nSE*9*0002~").replace("GE*1*201~", "GE*2*201~")),
    ]
}

#[test]
fn fixtures_are_tr3_valid_and_clean() {
    for name in FIXTURES {
        let bytes = std::fs::read(support::fixture(name)).unwrap();
        let doc = check(
            &bytes,
            &CheckOptions {
                expected_usage: Some(Usage::Test),
            },
            &(),
        );
        let errors: Vec<String> = doc.errors().map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
    }
    let Some(py) = support::python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = FIXTURES
        .iter()
        .map(|n| {
            let p = dir.path().join(n);
            std::fs::copy(support::fixture(n), &p).unwrap();
            p
        })
        .collect();
    for (f, problems) in support::x12valid(&py, &files) {
        assert!(problems.is_empty(), "{}: {problems:#?}", f.display());
    }
}

#[test]
fn remittance_fixture_has_plb_reversal_denial_and_balances() {
    let bytes = std::fs::read(support::fixture("remit-plb-reversal-denial.835")).unwrap();
    let doc = check(&bytes, &CheckOptions::default(), &());
    let set = &doc.interchanges[0].groups[0].sets[0];
    let r = reconcile_835(set);
    assert!(r.balanced(), "{:?}", r.mismatches());
    assert_eq!(r.payment.unwrap().to_string(), "152.50");
    assert_eq!(r.provider_adjustments.to_string(), "7.50");
    let statuses: Vec<&[u8]> = set
        .body()
        .filter(|s| s.id() == b"CLP")
        .map(|s| s.element(2))
        .collect();
    assert!(statuses.contains(&&b"22"[..]) && statuses.contains(&&b"4"[..]));
    assert!(set.body().any(|s| s.id() == b"PLB"));
    // A wrong BPR02 is reported.
    let off = String::from_utf8(bytes)
        .unwrap()
        .replace("BPR*I*152.50", "BPR*I*152.60");
    let doc = check(off.as_bytes(), &CheckOptions::default(), &());
    let r = reconcile_835(&doc.interchanges[0].groups[0].sets[0]);
    assert!(!r.payment_balanced);
    assert_eq!(r.mismatches().len(), 1);
}

#[test]
fn every_generated_ack_passes_x12valid() {
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for f in support::corpus_files() {
        inputs.push((
            f.file_name().unwrap().to_string_lossy().to_string(),
            std::fs::read(&f).unwrap(),
        ));
    }
    for name in FIXTURES {
        inputs.push((
            name.to_string(),
            std::fs::read(support::fixture(name)).unwrap(),
        ));
    }
    for (name, bytes) in broken_variants() {
        inputs.push((format!("broken-{name}"), bytes));
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let (mut ta1s, mut rejected_ta1s, mut acks, mut rejecting_999s) = (0, 0, 0, 0);
    let mut n = 0;
    for (name, bytes) in &inputs {
        let doc = check(bytes, &CheckOptions::default(), &());
        let mut acks_for_file = acknowledgments(&doc, || {
            n += 1;
            header(n)
        });
        // The 312-interchange imsweb file gives 312 TA1s; a few suffice.
        acks_for_file.truncate(4);
        for a in acks_for_file {
            let text = String::from_utf8(a.bytes.clone()).unwrap();
            let ext = match a.kind {
                x12::AckKind::Ta1 => {
                    ta1s += 1;
                    rejected_ta1s += usize::from(text.contains("*R*"));
                    "ta1"
                }
                x12::AckKind::Ack999 => {
                    acks += 1;
                    rejecting_999s += usize::from(text.contains("IK5*R"));
                    "999"
                }
            };
            let p = dir
                .path()
                .join(format!("{name}.{}.{ext}", a.control_number));
            std::fs::write(&p, &a.bytes).unwrap();
            files.push(p);
        }
    }
    assert!(
        ta1s >= 30 && rejected_ta1s >= 10,
        "{ta1s} TA1, {rejected_ta1s} rejecting"
    );
    assert!(
        acks >= 40 && rejecting_999s >= 20,
        "{acks} 999, {rejecting_999s} rejecting"
    );
    let Some(py) = support::python() else { return };
    let mut failures = Vec::new();
    for chunk in files.chunks(60) {
        for (f, problems) in support::x12valid(&py, chunk) {
            if !problems.is_empty() {
                let ack = std::fs::read_to_string(&f).unwrap_or_default();
                failures.push(format!("{}: {problems:#?}\n{ack}", f.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
