//! Writes segments with the default separators, and the ISA/IEA envelope
//! shared by the TA1 and 999 builders.

use super::AckHeader;
use crate::isa::{trim, Isa};
use crate::reader::Separators;

const SEPS: Separators = Separators::DEFAULT;

/// Appends segments to a buffer and counts them.
pub(crate) struct SegmentWriter {
    pub(crate) out: Vec<u8>,
    /// Segments written since the last [`SegmentWriter::reset_count`].
    pub(crate) count: usize,
}

impl SegmentWriter {
    pub(crate) fn new() -> Self {
        SegmentWriter {
            out: Vec::with_capacity(512),
            count: 0,
        }
    }

    /// Writes `id*e1*e2...~\n`, dropping trailing empty elements (X12
    /// forbids trailing separators).
    pub(crate) fn segment(&mut self, id: &str, elements: &[&[u8]]) {
        let used = elements
            .iter()
            .rposition(|e| !e.is_empty())
            .map_or(0, |i| i + 1);
        self.out.extend_from_slice(id.as_bytes());
        for e in &elements[..used] {
            self.out.push(SEPS.element);
            self.out.extend_from_slice(e);
        }
        self.out.push(SEPS.segment);
        self.out.push(b'\n');
        self.count += 1;
    }

    pub(crate) fn reset_count(&mut self) {
        self.count = 0;
    }
}

/// A value copied from the received file, made safe to write: delimiter
/// bytes and control characters become spaces, at most `max` bytes.
pub(crate) fn clean(v: &[u8], max: usize) -> Vec<u8> {
    v.iter()
        .take(max)
        .map(|&b| {
            if SEPS.is_delimiter(b) || !(b.is_ascii_graphic() || b == b' ') {
                b' '
            } else {
                b
            }
        })
        .collect()
}

/// `v` cleaned, trimmed and padded with spaces to exactly `width`.
fn fixed(v: &[u8], width: usize) -> Vec<u8> {
    let mut out = clean(trim(v), width);
    out.resize(width, b' ');
    out
}

/// ISA13 text for a control number (modulo 10^9, 9 digits).
pub(crate) fn isa13(n: u32) -> String {
    format!("{:09}", n % 1_000_000_000)
}

/// Writes the acknowledgment's ISA: from the received receiver to the
/// received sender.
pub(crate) fn write_isa(w: &mut SegmentWriter, received: &Isa<'_>, h: &AckHeader) {
    let usage = match h.usage {
        Some(u) => vec![u.byte()],
        None => match received.element(15) {
            [b @ (b'T' | b'P')] => vec![*b],
            _ => b"P".to_vec(),
        },
    };
    let qualifier = |v: &[u8]| {
        let q = fixed(v, 2);
        if q == b"  " {
            b"ZZ".to_vec()
        } else {
            q
        }
    };
    let rep = [SEPS.repetition.unwrap_or(b'^')];
    let comp = [SEPS.component];
    w.segment(
        "ISA",
        &[
            b"00",
            b"          ",
            b"00",
            b"          ",
            &qualifier(received.element(7)),
            &fixed(received.element(8), 15),
            &qualifier(received.element(5)),
            &fixed(received.element(6), 15),
            h.stamp.date6().as_bytes(),
            h.stamp.time4().as_bytes(),
            &rep,
            b"00501",
            isa13(h.interchange_control_number).as_bytes(),
            b"0",
            &usage,
            &comp,
        ],
    );
}

/// Writes the IEA.
pub(crate) fn write_iea(w: &mut SegmentWriter, groups: usize, h: &AckHeader) {
    w.segment(
        "IEA",
        &[
            groups.to_string().as_bytes(),
            isa13(h.interchange_control_number).as_bytes(),
        ],
    );
}
