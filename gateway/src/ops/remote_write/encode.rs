//! Prometheus remote-write 1.0 bodies (pure): the few protobuf messages
//! of `prometheus/prompb` written by hand, then the snappy block format.
//!
//! ```text
//! WriteRequest { repeated TimeSeries timeseries = 1; }
//! TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//! Label        { string name = 1; string value = 2; }
//! Sample       { double value = 1; int64 timestamp = 2; }   // ms since the epoch
//! ```
//!
//! The spec wants each series' labels sorted by name (with `__name__`),
//! unique, and its samples in timestamp order; [`Series`] keeps both, and
//! [`write_request`] writes series in the order given.

use std::sync::Arc;

/// One label pair.
pub type Label = (String, String);

/// One time series of a request: sorted labels and samples oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Arc<[Label]>,
    /// (timestamp ms, value), in timestamp order.
    pub samples: Vec<(i64, f64)>,
}

/// The headers remote-write 1.0 asks for, beside the body.
pub const HEADERS: [(&str, &str); 3] = [
    ("Content-Encoding", "snappy"),
    ("Content-Type", "application/x-protobuf"),
    ("X-Prometheus-Remote-Write-Version", "0.1.0"),
];

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Field key: field number and wire type (0 varint, 1 fixed64, 2 length-delimited).
fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn label(l: &Label) -> Vec<u8> {
    let mut m = Vec::with_capacity(l.0.len() + l.1.len() + 4);
    bytes_field(&mut m, 1, l.0.as_bytes());
    bytes_field(&mut m, 2, l.1.as_bytes());
    m
}

fn sample(ts_ms: i64, value: f64) -> Vec<u8> {
    let mut m = Vec::with_capacity(20);
    key(&mut m, 1, 1);
    m.extend_from_slice(&value.to_le_bytes());
    key(&mut m, 2, 0);
    // int64: two's complement as a 64-bit varint (protobuf's rule).
    varint(&mut m, ts_ms as u64);
    m
}

/// The protobuf `WriteRequest` for `series` (not compressed).
pub fn write_request(series: &[Series]) -> Vec<u8> {
    let mut out = Vec::with_capacity(series.len() * 96);
    let mut ts = Vec::new();
    for s in series {
        ts.clear();
        for l in s.labels.iter() {
            bytes_field(&mut ts, 1, &label(l));
        }
        for &(t, v) in &s.samples {
            bytes_field(&mut ts, 2, &sample(t, v));
        }
        bytes_field(&mut out, 1, &ts);
    }
    out
}

/// The body to POST: the `WriteRequest`, snappy block-compressed.
pub fn body(series: &[Series]) -> Result<Vec<u8>, snap::Error> {
    snap::raw::Encoder::new().compress_vec(&write_request(series))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(n: &str, v: &str) -> Label {
        (n.to_string(), v.to_string())
    }

    #[test]
    fn one_series_is_encoded_byte_for_byte() {
        let labels: Arc<[Label]> = vec![l("__name__", "up"), l("box", "b1")].into();
        let req = write_request(&[Series {
            labels,
            samples: vec![(1_000, 1.0)],
        }]);
        let label1 = [
            &[0x0a, 8][..],
            b"__name__",
            &[0x12, 2],
            b"up", // name, value
        ]
        .concat();
        let label2 = [&[0x0a, 3][..], b"box", &[0x12, 2], b"b1"].concat();
        let sample = [
            &[0x09][..],
            &1.0f64.to_le_bytes(),
            &[0x10, 0xe8, 0x07], // 1000 as a varint
        ]
        .concat();
        let ts = [
            &[0x0a, label1.len() as u8][..],
            &label1,
            &[0x0a, label2.len() as u8],
            &label2,
            &[0x12, sample.len() as u8],
            &sample,
        ]
        .concat();
        let want = [&[0x0a, ts.len() as u8][..], &ts].concat();
        assert_eq!(req, want);
    }

    #[test]
    fn long_fields_get_multi_byte_lengths_and_the_body_is_snappy() {
        let long = "x".repeat(300);
        let s = [Series {
            labels: vec![l("__name__", &long)].into(),
            samples: vec![(1_764_600_000_000, 2.5), (1_764_600_030_000, 3.5)],
        }];
        let req = write_request(&s);
        // The value (field 2) of 300 bytes: 300 = 0xac 0x02 as a varint.
        assert!(req.windows(3).any(|w| w == [0x12, 0xac, 0x02]));
        let body = body(&s).unwrap();
        let back = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn varints() {
        let mut v = Vec::new();
        varint(&mut v, 0);
        varint(&mut v, 127);
        varint(&mut v, 128);
        varint(&mut v, u64::MAX);
        assert_eq!(
            v,
            [0, 127, 0x80, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1]
        );
    }
}
