//! No input makes the reader, the check, the acknowledgment builders, the
//! transform or the reconciliation panic, and the JSON always parses.

use crate::support;

use proptest::prelude::*;
use x12::{
    acknowledgments, check, reconcile_835, to_json, write_json, AckHeader, CheckOptions, Stamp,
    Usage,
};

fn run_everything(bytes: &[u8]) {
    let opts = CheckOptions {
        expected_usage: Some(Usage::Production),
    };
    let doc = check(bytes, &opts, &());
    for e in doc.errors() {
        let _ = e.to_string();
        let _ = e.code().text();
    }
    let json = to_json(&doc);
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(&json) {
        panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(&json));
    }
    // Streamed in small chunks, the JSON is the same bytes.
    let mut streamed = Vec::new();
    write_json(&doc, 64, &mut |chunk| streamed.extend_from_slice(chunk));
    assert!(streamed == json, "streamed JSON differs");
    let mut n = 0;
    let acks = acknowledgments(&doc, || {
        n += 1;
        AckHeader::numbered(n, Stamp::from_unix(1_700_000_000))
    });
    for a in acks {
        // An acknowledgment is itself readable X12.
        let again = check(&a.bytes, &CheckOptions::default(), &());
        assert_eq!(
            again.interchanges.len(),
            1,
            "{}",
            String::from_utf8_lossy(&a.bytes)
        );
    }
    for (_, _, set) in doc.sets() {
        let _ = reconcile_835(set).mismatches();
    }
}

fn seeds() -> Vec<Vec<u8>> {
    [
        "remit-plb-reversal-denial.835",
        "claim-professional.837",
        "claim-ack.277ca",
        "ack-partial.999",
        "ack-rejected.ta1",
    ]
    .iter()
    .map(|n| std::fs::read(support::fixture(n)).unwrap())
    .collect()
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, u8),
    Delete(usize, usize),
    Replace(usize, u8),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let special = prop::sample::select(b"*:^~\r\n ISAGSTEIAE0123456789-.\xef\xbb\xbf\x00".to_vec());
    prop_oneof![
        (any::<usize>(), special.clone()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<usize>(), special).prop_map(|(i, b)| Edit::Replace(i, b)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut v: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = v.len().max(1);
        match *e {
            Edit::Insert(i, b) => v.insert(i % (v.len() + 1), b),
            Edit::Delete(i, n) => {
                let i = i % len;
                let end = (i + n).min(v.len());
                if i < end {
                    v.drain(i..end);
                }
            }
            Edit::Replace(i, b) => {
                if !v.is_empty() {
                    let i = i % v.len();
                    v[i] = b;
                }
            }
            Edit::Truncate(i) => v.truncate(i % len),
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        run_everything(&bytes);
        let mut with_isa = b"ISA*00*          *00*          *ZZ*A              *ZZ*B              *240101*0000*^*00501*000000001*0*T*:~".to_vec();
        with_isa.extend_from_slice(&bytes);
        run_everything(&with_isa);
    }

    #[test]
    fn mutated_fixtures_never_panic(seed in 0usize..5, edits in proptest::collection::vec(edit(), 1..8)) {
        let seeds = seeds();
        let v = apply(seeds[seed % seeds.len()].clone(), &edits);
        run_everything(&v);
    }
}

#[test]
fn deep_hl_chain_does_not_overflow_the_stack() {
    let mut s = String::from("ISA*00*          *00*          *ZZ*A              *ZZ*B              *240101*0000*^*00501*000000001*0*T*:~GS*HN*A*B*20240101*0000*1*X*005010X214~ST*277*0001*005010X214~");
    let n = 200_000;
    for i in 1..=n {
        if i == 1 {
            s.push_str("HL*1**20*1~");
        } else {
            s.push_str(&format!("HL*{i}*{}*21*1~", i - 1));
        }
    }
    s.push_str(&format!("SE*{}*0001~GE*1*1~IEA*1*000000001~", n + 2));
    let doc = check(s.as_bytes(), &CheckOptions::default(), &());
    assert!(doc.is_clean(), "{:?}", doc.errors().next());
    let json = to_json(&doc);
    assert!(json.len() > n * 10);
}

#[test]
fn a_999_with_an_ak1_after_an_ak2_still_maps_to_json() {
    // fuzz/findings/x12 (minimized): the AK1 wrote a key inside "sets".
    let bytes = b"ISA*0**0**Z*******0*01**T*:~\nGS***C*2****005010X231~\nST*999*0~AK2*~\nAK1~";
    let doc = check(bytes, &CheckOptions::default(), &());
    let json = to_json(&doc);
    let v: serde_json::Value = serde_json::from_slice(&json)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
    assert!(v.is_object());
}
