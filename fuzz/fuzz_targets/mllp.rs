//! The MLLP decoder (`hl7::mllp::Decoder`) fed the input as a peer's reads
//! would deliver it. Checks: no panic, every frame within the limit, an
//! oversized frame's kept head within 4 KiB, and the same events whatever
//! the read size (up to the first framing error, where the listener closes
//! the connection).
#![no_main]

use gateway_fuzz::chunked;
use hl7::mllp::{Decoder, Event};
use libfuzzer_sys::fuzz_target;

/// Small, so oversized frames are common.
const MAX_FRAME: usize = 512;

fn events(data: &[u8], chunk: usize) -> Vec<Event> {
    let mut d = Decoder::new(MAX_FRAME);
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        d.push(piece);
        while let Some(e) = d.next_event() {
            let stop = matches!(e, Event::FramingError(_));
            out.push(e);
            if stop {
                return out;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (chunk, stream) = chunked(data);
    let split = events(stream, chunk);
    for e in &split {
        match e {
            Event::Frame(p) => assert!(p.len() <= MAX_FRAME, "frame of {} bytes", p.len()),
            Event::Oversized { len, head } => {
                assert!(*len > MAX_FRAME && head.len() <= 4096 && head.len() <= *len)
            }
            Event::FramingError(_) => {}
        }
    }
    let whole = events(stream, stream.len());
    assert_eq!(
        split, whole,
        "events depend on how the reads split the stream"
    );
    // A frame's payload framed again decodes to itself.
    for e in &split {
        if let Event::Frame(p) = e {
            if !p.contains(&hl7::mllp::EB) && !p.contains(&hl7::mllp::SB) {
                let again = events(&hl7::mllp::frame(p), 7);
                assert_eq!(again, vec![Event::Frame(p.clone())]);
            }
        }
    }
});
