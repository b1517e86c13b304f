//! A download's body on its way to lines: a gzip'd body is inflated, and
//! every byte is split into lines for a [`LineTaker`]. Pure: bytes in,
//! lines out.
//!
//! The gzip decoder writes its output straight into the line splitter from
//! its own 32 KiB output buffer: there is no copy in between, and no more
//! than that buffer is inflated at a time, whatever the compression ratio.
//! One 256 KiB network chunk of a 30× compressible NDJSON file is 7.5 MB
//! once inflated; it goes through in 32 KiB pieces, so RSS stays flat.
//! The splitter joins a line cut across two of those pieces, or across two
//! gzip members, just as it joins one cut across two network chunks.

use std::io::Write;

use flate2::write::MultiGzDecoder;

use super::ndjson::{LineSplitter, Piece};

/// The first bytes of every gzip member. A JSON line never starts with
/// them, so a server that gzips without saying so (no Content-Encoding)
/// is still read right.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What gets the lines (the download's check, tag and part file).
pub trait LineTaker {
    fn take(&mut self, piece: Piece<'_>) -> std::io::Result<()>;
}

/// Why the body could not be turned into lines.
#[derive(Debug)]
pub enum BodyError {
    /// The gzip stream is corrupt, or it ended before its last member did.
    Gzip(std::io::Error),
    /// The [`LineTaker`] failed (writing the part file).
    Take(std::io::Error),
}

/// The splitter and its taker as one `Write`, the decoder's output.
struct Split<T> {
    splitter: LineSplitter,
    taker: T,
    /// The taker's own error. The decoder only passes an `io::Error` on,
    /// so this is kept here, and a write error is not mistaken for a
    /// corrupt gzip stream.
    failed: Option<std::io::Error>,
}

impl<T: LineTaker> Split<T> {
    fn push(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let Split {
            splitter, taker, ..
        } = self;
        splitter.push(bytes, &mut |p| taker.take(p))
    }
}

impl<T: LineTaker> Write for Split<T> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.push(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                let kind = e.kind();
                self.failed = Some(e);
                Err(std::io::Error::new(kind, "the line taker failed"))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum State<T: LineTaker> {
    Plain(Split<T>),
    Gzip(Box<MultiGzDecoder<Split<T>>>),
}

/// A body being split into lines, inflated on the way if it is gzip.
pub struct BodyLines<T: LineTaker> {
    state: State<T>,
}

impl<T: LineTaker> BodyLines<T> {
    /// Lines of at most `max_line` bytes (see [`LineSplitter`]) go to
    /// `taker`. `gzip`: the body is inflated first (multi-member).
    pub fn new(taker: T, max_line: usize, gzip: bool) -> BodyLines<T> {
        let split = Split {
            splitter: LineSplitter::new(max_line),
            taker,
            failed: None,
        };
        let state = if gzip {
            State::Gzip(Box::new(MultiGzDecoder::new(split)))
        } else {
            State::Plain(split)
        };
        BodyLines { state }
    }

    /// The taker, between chunks (its bad lines, its journal flushes).
    pub fn taker(&mut self) -> &mut T {
        &mut self.split().taker
    }

    fn split(&mut self) -> &mut Split<T> {
        match &mut self.state {
            State::Plain(s) => s,
            State::Gzip(d) => d.get_mut(),
        }
    }

    /// Feed the next bytes of the body. `taker` gets every line they complete.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        match &mut self.state {
            State::Plain(s) => s.push(chunk).map_err(BodyError::Take),
            State::Gzip(d) => {
                let r = d.write_all(chunk);
                r.map_err(|e| gzip_or_take(d.get_mut(), e))
            }
        }
    }

    /// The end of the body: the gzip stream must be complete (its CRC and
    /// length checked), and a last line without `\n` counts too.
    pub fn finish(&mut self) -> Result<(), BodyError> {
        if let State::Gzip(d) = &mut self.state {
            let r = d.try_finish();
            r.map_err(|e| gzip_or_take(d.get_mut(), e))?;
        }
        let Split {
            splitter, taker, ..
        } = self.split();
        splitter
            .finish(&mut |p| taker.take(p))
            .map_err(BodyError::Take)
    }

    /// The taker back, once [`finish`](Self::finish) has succeeded.
    pub fn into_taker(self) -> Result<T, BodyError> {
        match self.state {
            State::Plain(s) => Ok(s.taker),
            // After a successful `try_finish`, `finish` only hands the writer back.
            State::Gzip(d) => d.finish().map(|s| s.taker).map_err(BodyError::Gzip),
        }
    }
}

fn gzip_or_take<T>(split: &mut Split<T>, e: std::io::Error) -> BodyError {
    match split.failed.take() {
        Some(taken) => BodyError::Take(taken),
        None => BodyError::Gzip(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Collects the lines (`Err(len)` for an over-long one); fails on
    /// request to show a taker's error is told apart from the gzip's.
    #[derive(Default)]
    struct Collect {
        lines: Vec<Result<Vec<u8>, usize>>,
        fail_at: Option<usize>,
    }

    impl LineTaker for Collect {
        fn take(&mut self, piece: Piece<'_>) -> std::io::Result<()> {
            if self.fail_at == Some(self.lines.len()) {
                return Err(std::io::Error::other("disk full"));
            }
            self.lines.push(match piece {
                Piece::Line(l) => Ok(l.to_vec()),
                Piece::TooLong { len } => Err(len),
            });
            Ok(())
        }
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(data).unwrap();
        z.finish().unwrap()
    }

    fn lines_of(body: &[u8], gzip: bool, chunk: usize, max: usize) -> Result<Collect, BodyError> {
        let mut b = BodyLines::new(Collect::default(), max, gzip);
        for c in body.chunks(chunk.max(1)) {
            b.push(c)?;
        }
        b.finish()?;
        b.into_taker()
    }

    /// ~100 KB of numbered lines of different lengths: several times the
    /// decoder's 32 KiB output buffer, so lines are cut between its pieces.
    fn text() -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut want = Vec::new();
        let mut all = Vec::new();
        for i in 0..3000u32 {
            let line = format!(
                "{{\"n\":{i},\"pad\":\"{}\"}}",
                "x".repeat((i % 37) as usize)
            );
            all.extend_from_slice(line.as_bytes());
            all.push(b'\n');
            want.push(line.into_bytes());
        }
        (all, want)
    }

    fn ok(c: &Collect) -> Vec<Vec<u8>> {
        c.lines.iter().map(|l| l.clone().unwrap()).collect()
    }

    #[test]
    fn a_gzip_body_gives_the_lines_of_the_plain_one_whatever_the_chunking() {
        let (plain, want) = text();
        let gz = gzip(&plain);
        assert!(
            plain.len() > 3 * 32 * 1024,
            "lines must cross the decoder's buffer"
        );
        for chunk in [1, 7, 4096, 65536, gz.len()] {
            assert_eq!(
                ok(&lines_of(&gz, true, chunk, 1024).unwrap()),
                want,
                "{chunk}"
            );
        }
        assert_eq!(ok(&lines_of(&plain, false, 1000, 1024).unwrap()), want);
    }

    #[test]
    fn a_line_cut_across_two_gzip_members_is_one_line() {
        let (plain, want) = text();
        // Cut in the middle of a line, each half its own member.
        let cut = plain.len() / 2 + 5;
        assert_ne!(plain[cut - 1], b'\n');
        let mut gz = gzip(&plain[..cut]);
        gz.extend_from_slice(&gzip(&plain[cut..]));
        for chunk in [3, 1000, gz.len()] {
            assert_eq!(
                ok(&lines_of(&gz, true, chunk, 1024).unwrap()),
                want,
                "{chunk}"
            );
        }
    }

    #[test]
    fn a_last_line_without_a_newline_and_an_over_long_line_in_gzip() {
        let mut plain = b"{\"a\":1}\n".to_vec();
        plain.extend_from_slice(&vec![b'y'; 70_000]);
        plain.extend_from_slice(b"\n{\"b\":2}");
        let got = lines_of(&gzip(&plain), true, 512, 1024).unwrap();
        assert_eq!(
            got.lines,
            vec![
                Ok(b"{\"a\":1}".to_vec()),
                Err(70_000),
                Ok(b"{\"b\":2}".to_vec())
            ]
        );
    }

    #[test]
    fn a_truncated_gzip_stream_is_a_gzip_error() {
        let (plain, _) = text();
        let gz = gzip(&plain);
        for cut in [1, 10, gz.len() / 2, gz.len() - 8, gz.len() - 1] {
            match lines_of(&gz[..cut], true, 4096, 1024) {
                Err(BodyError::Gzip(_)) => {}
                Err(e) => panic!("cut at {cut}: {e:?}"),
                Ok(_) => panic!("cut at {cut}: a truncated stream was accepted"),
            }
        }
    }

    #[test]
    fn a_corrupt_gzip_stream_is_a_gzip_error() {
        let (plain, _) = text();
        let mut gz = gzip(&plain);
        // A flipped bit in the CRC-32 of the trailer.
        let at = gz.len() - 8;
        gz[at] ^= 1;
        assert!(matches!(
            lines_of(&gz, true, 4096, 1024),
            Err(BodyError::Gzip(_))
        ));
        // Garbage after the last member is not a gzip header.
        let mut tail = gzip(&plain);
        tail.extend_from_slice(b"not gzip");
        assert!(matches!(
            lines_of(&tail, true, 4096, 1024),
            Err(BodyError::Gzip(_))
        ));
    }

    #[test]
    fn the_takers_error_is_not_taken_for_a_gzip_one() {
        let (plain, _) = text();
        let gz = gzip(&plain);
        let mut b = BodyLines::new(
            Collect {
                fail_at: Some(2500),
                ..Collect::default()
            },
            1024,
            true,
        );
        let e = b.push(&gz).and_then(|()| b.finish());
        match e {
            Err(BodyError::Take(e)) => assert_eq!(e.to_string(), "disk full"),
            other => panic!("{other:?}"),
        }
    }
}
