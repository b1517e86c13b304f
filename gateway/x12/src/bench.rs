//! The x12 benchmark body, for `cargo bench -p x12` and a later
//! `gateway bench x12`: the envelope check, and the check plus the JSON
//! transform, of a generated 835 (about 50 MB: many transaction sets of
//! 1000 claims), in MB/s on one thread, against a plain byte scan that
//! splits the same bytes at the segment terminator, measured in the same
//! run. The caller passes the clock (the crate reads none itself).
//!
//! Cases: `check`; `check+json`, the JSON streamed to a sink in 64 KB
//! chunks ([`write_json`], how a caller writes it to a file); `check+json
//! vec`, the JSON collected in one buffer ([`to_json`]); and `json-size
//! copy`, no transform at all but the input copied into a new buffer until
//! it holds as many bytes as the JSON (4.5 times the input): the cost of
//! first touching that much memory, which bounds `check+json vec`.

use std::time::Instant;

use crate::envelope::{check, CheckOptions};
use crate::json::{to_json, write_json};

/// One measured case.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// What was measured.
    pub case: String,
    /// MB/s (10^6 bytes per second) of the case.
    pub rate_per_s: f64,
    /// What the baseline is.
    pub baseline: String,
    /// MB/s of the baseline.
    pub baseline_per_s: f64,
    /// `rate_per_s / baseline_per_s`.
    pub ratio: f64,
}

const CLAIMS_PER_SET: usize = 1000;

/// A synthetic, balanced 835 of at least `target_bytes` (no PHI: names
/// are TEST PATIENT and numbered ids).
pub fn generate_835(target_bytes: usize) -> Vec<u8> {
    let mut out = String::with_capacity(target_bytes + 4096);
    out.push_str("ISA*00*          *00*          *ZZ*TESTPAYER      *ZZ*TESTCLINIC     *240315*1200*^*00501*000000001*0*T*:~\n");
    out.push_str("GS*HP*TESTPAYER*TESTCLINIC*20240315*1200*1*X*005010X221A1~\n");
    let mut sets = 0;
    let mut claim_no = 0usize;
    while out.len() < target_bytes {
        sets += 1;
        let start = out.len();
        let mut body = String::with_capacity(CLAIMS_PER_SET * 420);
        let mut segments = 0;
        let mut push = |body: &mut String, s: &str| {
            body.push_str(s);
            body.push_str("~\n");
            segments += 1;
        };
        // Each claim: charge 200.00, paid 150.00 (CO 30.00, PR 20.00).
        let paid_total = CLAIMS_PER_SET * 150 - 10;
        push(&mut body, &format!("ST*835*{sets:04}"));
        push(&mut body, &format!("BPR*I*{paid_total}.00*C*ACH*CCP*01*999999992*DA*123456*1512345678**01*999988880*DA*98765*20240315"));
        push(&mut body, &format!("TRN*1*EFT{sets:07}*1512345678"));
        push(&mut body, "DTM*405*20240314");
        push(&mut body, "N1*PR*TEST HEALTH PLAN");
        push(&mut body, "N3*100 EXAMPLE WAY");
        push(&mut body, "N4*SPRINGFIELD*IL*62701");
        push(&mut body, "PER*BL*TEST PAYER SUPPORT*TE*5555550100");
        push(&mut body, "N1*PE*TEST CLINIC*XX*1234567893");
        push(&mut body, "REF*TJ*999999999");
        push(&mut body, "LX*1");
        for _ in 0..CLAIMS_PER_SET {
            claim_no += 1;
            push(
                &mut body,
                &format!(
                    "CLP*TESTPCN{claim_no:09}*1*200.00*150.00*20.00*12*TESTICN{claim_no:09}*11*1"
                ),
            );
            push(
                &mut body,
                &format!("NM1*QC*1*PATIENT*TEST****MI*TESTMEMBER{claim_no:07}"),
            );
            push(&mut body, "DTM*232*20240301");
            push(&mut body, "SVC*HC:99213*120.00*90.00**1");
            push(&mut body, "DTM*472*20240301");
            push(&mut body, "CAS*CO*45*18.00");
            push(&mut body, "CAS*PR*2*12.00");
            push(&mut body, &format!("REF*6R*L{claim_no:09}A"));
            push(&mut body, "AMT*B6*102.00");
            push(&mut body, "SVC*HC:87880*80.00*60.00**1");
            push(&mut body, "DTM*472*20240301");
            push(&mut body, "CAS*CO*45*12.00");
            push(&mut body, "CAS*PR*2*8.00");
            push(&mut body, &format!("REF*6R*L{claim_no:09}B"));
        }
        push(&mut body, "PLB*1234567893*20241231*WO:TESTREF01*10.00");
        let count = segments + 1;
        out.push_str(&body);
        out.push_str(&format!("SE*{count}*{sets:04}~\n"));
        debug_assert!(out.len() > start);
    }
    out.push_str(&format!("GE*{sets}*1~\nIEA*1*000000001~\n"));
    out.into_bytes()
}

/// The baseline: split at the segment terminator, byte by byte, summing
/// segment lengths (what any reader must at least do).
pub fn segment_scan(data: &[u8], terminator: u8) -> usize {
    data.split(|b| *b == terminator).map(<[u8]>::len).sum()
}

fn best_of(rounds: usize, now: &dyn Fn() -> Instant, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut best = f64::INFINITY;
    let mut sink = 0;
    for _ in 0..rounds.max(1) {
        let t = now();
        sink ^= std::hint::black_box(f());
        best = best.min(now().duration_since(t).as_secs_f64());
    }
    (best.max(1e-9), sink)
}

/// Measures the cases over `data` (an 835 with `~` terminators), each the
/// fastest of `rounds`, on the calling thread.
pub fn run(data: &[u8], rounds: usize, now: &dyn Fn() -> Instant) -> Vec<BenchResult> {
    let mb = data.len() as f64 / 1e6;
    let (scan, _) = best_of(rounds, now, || {
        segment_scan(std::hint::black_box(data), b'~')
    });
    let opts = CheckOptions::default();
    let (check_only, _) = best_of(rounds, now, || {
        let doc = check(std::hint::black_box(data), &opts, &());
        usize::from(doc.is_clean()) + doc.interchanges.len()
    });
    let mut json_len = 0;
    let (check_json, _) = best_of(rounds, now, || {
        let doc = check(std::hint::black_box(data), &opts, &());
        json_len = 0;
        write_json(&doc, 64 * 1024, &mut |chunk| {
            json_len += std::hint::black_box(chunk).len();
        });
        json_len
    });
    let (check_json_vec, _) = best_of(rounds, now, || {
        let doc = check(std::hint::black_box(data), &opts, &());
        to_json(&doc).len()
    });
    let (copy, _) = best_of(rounds, now, || {
        let mut out = Vec::with_capacity(json_len);
        while out.len() < json_len {
            for piece in data.chunks(64) {
                out.extend_from_slice(std::hint::black_box(piece));
            }
        }
        out.len()
    });
    let baseline = "segment scan".to_string();
    let row = |case: &str, secs: f64| BenchResult {
        case: case.to_string(),
        rate_per_s: mb / secs,
        baseline: baseline.clone(),
        baseline_per_s: mb / scan,
        ratio: scan / secs,
    };
    let size = data.len() / 1_000_000;
    vec![
        row(&format!("835-{size}MB check"), check_only),
        row(&format!("835-{size}MB check+json"), check_json),
        row(&format!("835-{size}MB check+json vec"), check_json_vec),
        row(&format!("835-{size}MB json-size copy"), copy),
    ]
}

/// A plain-text table of the results.
pub fn table(results: &[BenchResult]) -> String {
    let mut s = format!(
        "{:<24} {:>10} {:>14} {:>14} {:>7}\n",
        "case", "MB/s", "baseline", "baseline MB/s", "ratio"
    );
    for r in results {
        s.push_str(&format!(
            "{:<24} {:>10.1} {:>14} {:>14.1} {:>7.2}\n",
            r.case, r.rate_per_s, r.baseline, r.baseline_per_s, r.ratio
        ));
    }
    s
}

/// `{"bench":"x12","results":[{"case","rate_per_s","baseline","baseline_per_s","ratio"}]}`.
pub fn json(results: &[BenchResult]) -> String {
    let items: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{{\"case\":\"{}\",\"rate_per_s\":{:.1},\"baseline\":\"{}\",\"baseline_per_s\":{:.1},\"ratio\":{:.3}}}",
                r.case, r.rate_per_s, r.baseline, r.baseline_per_s, r.ratio
            )
        })
        .collect();
    format!("{{\"bench\":\"x12\",\"results\":[{}]}}", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_835_is_clean_and_balanced() {
        let data = generate_835(300_000);
        assert!(data.len() >= 300_000);
        let doc = check(&data, &CheckOptions::default(), &());
        assert!(
            doc.is_clean(),
            "{:?}",
            doc.errors().next().map(|e| e.to_string())
        );
        for (_, _, set) in doc.sets() {
            let r = crate::reconcile::reconcile_835(set);
            assert!(r.balanced(), "{:?}", r.mismatches());
        }
        let results = run(&data, 1, &Instant::now);
        assert_eq!(results.len(), 4);
        assert!(json(&results)
            .starts_with("{\"bench\":\"x12\",\"results\":[{\"case\":\"835-0MB check\""));
    }
}
