//! MLLP framing (`0x0B payload 0x1C 0x0D`): [`frame`] wraps a payload, and
//! [`Decoder`] is an incremental frame decoder.
//!
//! Pure and bounded: the caller pushes whatever bytes it read and pulls
//! events. Memory never exceeds the largest allowed frame plus one read
//! buffer, whatever the peer sends: an oversized frame is discarded as it
//! streams in and reported once its end arrives. The sockets (listener,
//! client) live in the gateway crate.

/// Start of block (VT).
pub const SB: u8 = 0x0B;
/// End of block (FS), always followed by CR.
pub const EB: u8 = 0x1C;
pub const CR: u8 = 0x0D;

/// Wrap a payload in an MLLP frame.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    out.push(SB);
    out.extend_from_slice(payload);
    out.push(EB);
    out.push(CR);
    out
}

/// How much of an oversized frame is kept to salvage its header.
const OVERSIZED_HEAD: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete frame's payload.
    Frame(Vec<u8>),
    /// A frame over the limit ended; its bytes were discarded except the
    /// first few KiB (`head`), kept so a NAK can still echo the MSH.
    Oversized { len: usize, head: Vec<u8> },
    /// Protocol violation; the connection must be closed.
    FramingError(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for 0x0B; everything else is junk.
    Between,
    /// Inside a frame, collecting payload.
    InFrame,
    /// Inside an over-long frame, counting and discarding.
    Discarding,
    /// Saw 0x1C; the next byte must be 0x0D.
    AfterEb { discarding: bool },
}

pub struct Decoder {
    max_frame: usize,
    state: State,
    input: Vec<u8>,
    pos: usize,
    payload: Vec<u8>,
    discarded: usize,
    junk: u64,
}

impl Decoder {
    pub fn new(max_frame: usize) -> Self {
        Decoder {
            max_frame,
            state: State::Between,
            input: Vec::new(),
            pos: 0,
            payload: Vec::new(),
            discarded: 0,
            junk: 0,
        }
    }

    /// Add bytes read from the peer.
    pub fn push(&mut self, data: &[u8]) {
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        }
        self.input.extend_from_slice(data);
    }

    /// True while a frame has started but not ended (the frame deadline applies).
    pub fn in_frame(&self) -> bool {
        self.state != State::Between
    }

    /// Bytes skipped outside frames so far.
    pub fn junk_bytes(&self) -> u64 {
        self.junk
    }

    /// The next event, or `None` when more input is needed.
    pub fn next_event(&mut self) -> Option<Event> {
        while self.pos < self.input.len() {
            match self.state {
                State::Between => {
                    let rest = &self.input[self.pos..];
                    match rest.iter().position(|&b| b == SB) {
                        Some(i) => {
                            self.junk += i as u64;
                            self.pos += i + 1;
                            self.payload.clear();
                            self.state = State::InFrame;
                        }
                        None => {
                            self.junk += rest.len() as u64;
                            self.pos = self.input.len();
                        }
                    }
                }
                State::InFrame | State::Discarding => {
                    let discarding = self.state == State::Discarding;
                    let rest = &self.input[self.pos..];
                    let end = rest.iter().position(|&b| b == EB || b == SB);
                    let chunk = &rest[..end.unwrap_or(rest.len())];
                    if discarding {
                        self.discarded += chunk.len();
                        // Keep filling the head, so it does not depend on
                        // where the reads split the frame (found by fuzzing).
                        let keep = OVERSIZED_HEAD
                            .saturating_sub(self.payload.len())
                            .min(chunk.len());
                        self.payload.extend_from_slice(&chunk[..keep]);
                    } else if self.payload.len() + chunk.len() > self.max_frame {
                        self.discarded = self.payload.len() + chunk.len();
                        let keep = OVERSIZED_HEAD
                            .saturating_sub(self.payload.len())
                            .min(chunk.len());
                        self.payload.extend_from_slice(&chunk[..keep]);
                        self.payload.truncate(OVERSIZED_HEAD);
                        self.payload.shrink_to(OVERSIZED_HEAD);
                        self.state = State::Discarding;
                    } else {
                        self.payload.extend_from_slice(chunk);
                    }
                    self.pos += chunk.len();
                    if let Some(i) = end {
                        let b = rest[i];
                        self.pos += 1;
                        if b == SB {
                            self.reset();
                            return Some(Event::FramingError(
                                "a new frame start (0x0B) arrived before the previous frame's end (0x1C 0x0D)".into(),
                            ));
                        }
                        self.state = State::AfterEb {
                            discarding: self.state == State::Discarding,
                        };
                    }
                }
                State::AfterEb { discarding } => {
                    let b = self.input[self.pos];
                    self.pos += 1;
                    if b != CR {
                        self.reset();
                        return Some(Event::FramingError(format!(
                            "end of block 0x1C was followed by 0x{b:02X}, not 0x0D"
                        )));
                    }
                    self.state = State::Between;
                    if discarding {
                        let len = std::mem::take(&mut self.discarded);
                        let head = std::mem::take(&mut self.payload);
                        return Some(Event::Oversized { len, head });
                    }
                    return Some(Event::Frame(std::mem::take(&mut self.payload)));
                }
            }
        }
        // All input consumed; keep the buffer from growing across reads.
        self.input.clear();
        self.pos = 0;
        None
    }

    fn reset(&mut self) {
        self.state = State::Between;
        self.payload = Vec::new();
        self.discarded = 0;
        self.input.clear();
        self.pos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(d: &mut Decoder) -> Vec<Event> {
        std::iter::from_fn(|| d.next_event()).collect()
    }

    #[test]
    fn frames_junk_and_split_reads() {
        let mut d = Decoder::new(100);
        d.push(b"xx\x0bMSH|1\x1c\r\r\n\x0bMSH|2");
        assert_eq!(all(&mut d), vec![Event::Frame(b"MSH|1".to_vec())]);
        assert!(d.in_frame());
        d.push(b"\x1c");
        assert_eq!(all(&mut d), vec![]);
        d.push(b"\r");
        assert_eq!(all(&mut d), vec![Event::Frame(b"MSH|2".to_vec())]);
        assert_eq!(d.junk_bytes(), 4);
        assert!(!d.in_frame());
    }

    #[test]
    fn eb_without_cr_is_a_framing_error() {
        let mut d = Decoder::new(100);
        d.push(b"\x0bMSH\x1cX");
        match d.next_event() {
            Some(Event::FramingError(r)) => assert!(r.contains("0x58"), "{r}"),
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn oversized_frame_is_discarded_then_reported() {
        let mut d = Decoder::new(10);
        d.push(b"\x0b0123456789ABC");
        assert_eq!(all(&mut d), vec![]);
        d.push(&[b'z'; 5000]);
        assert_eq!(all(&mut d), vec![]);
        d.push(b"\x1c\r\x0bok\x1c\r");
        // The head: the first 4 KiB, whatever the reads.
        let mut head = b"0123456789ABC".to_vec();
        head.resize(OVERSIZED_HEAD, b'z');
        assert_eq!(
            all(&mut d),
            vec![
                Event::Oversized { len: 5013, head },
                Event::Frame(b"ok".to_vec())
            ]
        );
    }

    #[test]
    fn oversized_head_is_the_same_whatever_the_reads() {
        // fuzz/findings/mllp: limit 512, a 600-byte frame read 4 bytes at a
        // time kept 515 bytes of head, read at once 600.
        let mut stream = frame(&[b'A'; 600]);
        stream.extend_from_slice(&frame(b"MSH|^~\\&|"));
        let mut whole = Decoder::new(512);
        whole.push(&stream);
        let expected = all(&mut whole);
        assert_eq!(
            expected[0],
            Event::Oversized {
                len: 600,
                head: vec![b'A'; 600]
            }
        );
        let mut split = Decoder::new(512);
        let mut got = Vec::new();
        for piece in stream.chunks(4) {
            split.push(piece);
            got.extend(all(&mut split));
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn frame_exactly_at_limit_is_accepted() {
        let mut d = Decoder::new(5);
        d.push(b"\x0b12345\x1c\r");
        assert_eq!(all(&mut d), vec![Event::Frame(b"12345".to_vec())]);
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_frames(payloads in proptest::collection::vec(proptest::collection::vec(0x20u8..0x7f, 0..50), 1..6), cut in 1usize..20) {
            let mut wire = Vec::new();
            for p in &payloads { wire.extend(crate::mllp::frame(p)); }
            let mut d = Decoder::new(1000);
            let mut got = Vec::new();
            for chunk in wire.chunks(cut) {
                d.push(chunk);
                while let Some(e) = d.next_event() { got.push(e); }
            }
            let want: Vec<Event> = payloads.into_iter().map(Event::Frame).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn never_panics_and_stays_bounded(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut d = Decoder::new(64);
            for chunk in data.chunks(7) {
                d.push(chunk);
                while let Some(e) = d.next_event() {
                    if let Event::Frame(f) = e { prop_assert!(f.len() <= 64); }
                }
                prop_assert!(d.payload.len() <= OVERSIZED_HEAD.max(64));
            }
        }
    }
}
