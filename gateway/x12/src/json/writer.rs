//! A small streaming JSON writer into one byte buffer. Values from the file
//! are written as JSON strings exactly as sent (amounts included); bytes
//! that are not UTF-8 become U+FFFD, so the output is always valid JSON.
//!
//! It is the hot path of the transform (the JSON of an 835 is about 4.5
//! times its size), so nothing here allocates except the buffer, and a
//! value from a set body that [`JsonWriter::trust`] found plain is copied
//! without looking at its bytes again. Written to a sink
//! ([`JsonWriter::streaming`]), the buffer stays one chunk deep: a 50 MB
//! 835 does not become 230 MB of memory first touched (and zeroed by the
//! kernel, page by page) before the caller sees a byte.

use crate::decimal::Decimal;

/// Where [`JsonWriter::streaming`] hands its chunks.
pub type Sink<'s> = dyn FnMut(&[u8]) + 's;

/// Writes JSON with commas placed automatically: every value is followed
/// by a comma, and closing an object or array replaces the last one (no
/// "is a comma needed" state to test on every write).
pub struct JsonWriter<'s> {
    out: Vec<u8>,
    /// Address range of input bytes that need no escaping (see
    /// [`JsonWriter::trust`]); empty when none.
    plain: (usize, usize),
    /// Where full chunks go, when streaming.
    sink: Option<&'s mut Sink<'s>>,
    /// The buffer length at which a chunk is handed to the sink.
    flush_at: usize,
}

impl Default for JsonWriter<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'s> JsonWriter<'s> {
    /// An empty writer.
    pub fn new() -> Self {
        Self::with_capacity(4096)
    }

    /// An empty writer whose buffer holds `bytes` before it grows.
    pub fn with_capacity(bytes: usize) -> Self {
        JsonWriter {
            out: Vec::with_capacity(bytes),
            plain: (0, 0),
            sink: None,
            flush_at: usize::MAX,
        }
    }

    /// A writer that hands its output to `sink` in pieces of about
    /// `chunk` bytes (cut where an object ends); [`JsonWriter::finish`]
    /// hands over the rest.
    pub fn streaming(chunk: usize, sink: &'s mut Sink<'s>) -> Self {
        let chunk = chunk.max(64);
        JsonWriter {
            // Room for the chunk and the object that crosses its end.
            out: Vec::with_capacity(chunk + chunk / 2),
            plain: (0, 0),
            sink: Some(sink),
            flush_at: chunk,
        }
    }

    /// The JSON written so far (without the comma after the last value);
    /// when streaming, what was not handed to the sink yet.
    pub fn into_bytes(mut self) -> Vec<u8> {
        if self.out.last() == Some(&b',') {
            self.out.pop();
        }
        std::mem::take(&mut self.out)
    }

    /// Hands the rest of the output to the sink (without the comma after
    /// the last value).
    pub fn finish(mut self) {
        if self.out.last() == Some(&b',') {
            self.out.pop();
        }
        if let Some(sink) = self.sink.as_mut() {
            sink(&self.out);
        }
        self.out.clear();
    }

    /// Hands all but the last byte to the sink: the last byte may be the
    /// comma that closing the enclosing object replaces.
    #[cold]
    fn flush(&mut self) {
        let keep = self.out.len().saturating_sub(1);
        if let Some(sink) = self.sink.as_mut() {
            sink(&self.out[..keep]);
            self.out.drain(..keep);
        }
    }

    /// Marks `body` (a set's bytes between ST and SE, terminated by
    /// `terminator`) as needing no escape when [`plain_body`] says so:
    /// values that lie inside it are then copied as they are. A value is
    /// always a sub-slice of a segment, never the terminator or the filler
    /// between segments, so that is all `plain_body` lets through.
    pub fn trust(&mut self, body: &[u8], terminator: u8) {
        self.plain = if plain_body(body, terminator) {
            let start = body.as_ptr() as usize;
            (start, start + body.len())
        } else {
            (0, 0)
        };
    }

    /// True when `v` lies inside the trusted range (an address check, no
    /// look at the bytes).
    #[inline(always)]
    fn trusted(&self, v: &[u8]) -> bool {
        let start = v.as_ptr() as usize;
        start >= self.plain.0 && start + v.len() <= self.plain.1
    }

    /// Closes an object or array: `close` replaces the comma after its
    /// last value, or follows its opening bracket when it is empty.
    #[inline(always)]
    fn close(&mut self, close: u8) {
        match self.out.last_mut() {
            Some(last) if *last == b',' => *last = close,
            _ => self.out.push(close),
        }
        self.out.push(b',');
    }

    /// `{`
    #[inline]
    pub fn begin_object(&mut self) {
        self.out.push(b'{');
    }

    /// `}`
    #[inline]
    pub fn end_object(&mut self) {
        self.close(b'}');
        if self.out.len() >= self.flush_at {
            self.flush();
        }
    }

    /// `[`
    #[inline]
    pub fn begin_array(&mut self) {
        self.out.push(b'[');
    }

    /// `]`
    #[inline]
    pub fn end_array(&mut self) {
        self.close(b']');
    }

    /// `"key":` (keys are static ASCII, written as they are).
    #[inline(always)]
    pub fn key(&mut self, key: &str) {
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// The characters of a string value, escaped unless trusted.
    #[inline(always)]
    fn chars(&mut self, v: &[u8]) {
        if self.trusted(v) {
            self.out.extend_from_slice(v);
        } else {
            escape_into(&mut self.out, v);
        }
    }

    /// A string value.
    #[inline(always)]
    pub fn string(&mut self, v: &[u8]) {
        self.out.push(b'"');
        self.chars(v);
        self.out.extend_from_slice(b"\",");
    }

    /// A number value.
    #[inline]
    pub fn number(&mut self, n: usize) {
        let mut buf = [0u8; 20];
        self.out.extend_from_slice(digits(n, &mut buf));
        self.out.push(b',');
    }

    /// `true` / `false`.
    #[inline(always)]
    pub fn boolean(&mut self, b: bool) {
        self.out
            .extend_from_slice(if b { b"true," } else { b"false," });
    }

    /// `null`.
    pub fn null(&mut self) {
        self.out.extend_from_slice(b"null,");
    }

    /// `"key":"`: the key and its punctuation in one copy (keys are
    /// literals, so the compiler builds the bytes as constants).
    #[inline(always)]
    fn key_open(&mut self, key: &str) {
        const MAX: usize = 48;
        let key = key.as_bytes();
        if key.len() > MAX - 4 {
            self.out.push(b'"');
            self.out.extend_from_slice(key);
            self.out.extend_from_slice(b"\":\"");
            return;
        }
        let mut buf = [0u8; MAX];
        buf[0] = b'"';
        buf[1..1 + key.len()].copy_from_slice(key);
        buf[1 + key.len()..4 + key.len()].copy_from_slice(b"\":\"");
        self.out.extend_from_slice(&buf[..4 + key.len()]);
    }

    /// `"key":"value"`, omitted when the value is empty.
    #[inline(always)]
    pub fn field(&mut self, key: &str, v: &[u8]) {
        if !v.is_empty() {
            self.key_open(key);
            self.chars(v);
            self.out.extend_from_slice(b"\",");
        }
    }

    /// `"key":"value"` for a static text, omitted when `None`.
    #[inline(always)]
    pub fn field_text(&mut self, key: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.field(key, v.as_bytes());
        }
    }

    /// `"key":"value"` for ASCII this crate formatted (digits, `-`, `.`),
    /// which needs no escape.
    #[inline(always)]
    fn field_ascii(&mut self, key: &str, v: &[u8]) {
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":\"");
        self.out.extend_from_slice(v);
        self.out.extend_from_slice(b"\",");
    }

    /// A D8 date (`CCYYMMDD`, month 01-12, day 01-31) as `CCYY-MM-DD`;
    /// other values as sent; omitted when empty.
    #[inline]
    pub fn field_date(&mut self, key: &str, v: &[u8]) {
        match iso_date(v) {
            Some(iso) => self.field_ascii(key, &iso),
            None => self.field(key, v),
        }
    }

    /// `"key":"12.50"`: an exact decimal with at least two decimals.
    pub fn field_decimal(&mut self, key: &str, d: Decimal) {
        let mut buf = [0u8; Decimal::MAX_TEXT];
        self.field_ascii(key, d.write_to(&mut buf));
    }

    /// `"key":true|false`.
    #[inline(always)]
    pub fn field_bool(&mut self, key: &str, b: bool) {
        self.key(key);
        self.boolean(b);
    }

    /// `"key":n`.
    #[inline]
    pub fn field_number(&mut self, key: &str, n: usize) {
        self.key(key);
        self.number(n);
    }

    /// `"key":{`
    #[inline]
    pub fn object_field(&mut self, key: &str) {
        self.key(key);
        self.begin_object();
    }

    /// `"key":[`
    #[inline]
    pub fn array_field(&mut self, key: &str) {
        self.key(key);
        self.begin_array();
    }
}

/// `CCYYMMDD` (month 01-12, day 01-31) as `CCYY-MM-DD`.
fn iso_date(v: &[u8]) -> Option<[u8; 10]> {
    let v: &[u8; 8] = v.try_into().ok()?;
    let plausible = v.iter().all(u8::is_ascii_digit)
        && (b"01".as_slice()..=b"12".as_slice()).contains(&&v[4..6])
        && (b"01".as_slice()..=b"31".as_slice()).contains(&&v[6..8]);
    if !plausible {
        return None;
    }
    let [c1, c2, y1, y2, m1, m2, d1, d2] = *v;
    Some([c1, c2, y1, y2, b'-', m1, m2, b'-', d1, d2])
}

/// The decimal digits of `n`, written at the end of `buf`.
fn digits(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        // `n % 10` is below 10.
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// For each byte: true when it may appear in a JSON string as it is
/// (printable ASCII other than `"` and `\`).
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        t[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// True when one of the 8 bytes of `x` is zero (exact, no false positive).
#[inline]
fn has_zero_byte(x: u64) -> bool {
    x.wrapping_sub(ONES) & !x & HIGHS != 0
}

/// True when every byte of `v` may be written as it is, 8 bytes at a time.
#[inline]
fn is_plain(v: &[u8]) -> bool {
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        let x = u64::from_le_bytes(word);
        // A control byte (below 0x20), a high byte (0x80 and up, so
        // UTF-8), DEL, `"` or `\`.
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGHS != 0;
        if control
            || x & HIGHS != 0
            || has_zero_byte(x ^ (ONES * 0x7f))
            || has_zero_byte(x ^ (ONES * u64::from(b'"')))
            || has_zero_byte(x ^ (ONES * u64::from(b'\\')))
        {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| PLAIN[usize::from(b)])
}

/// True when no value read from `body` needs a JSON escape: every byte is
/// plain ASCII, the segment terminator, or CR/LF/tab right after the
/// terminator or after such a byte (line endings between segments, which
/// no value includes). The first byte follows ST's terminator.
pub fn plain_body(body: &[u8], terminator: u8) -> bool {
    // Arithmetic on whole chunks, no table and no early exit, so that the
    // compiler vectorizes it: this pass replaces a look at every value.
    let filler = |b: u8| (b == b'\r') | (b == b'\n') | (b == b'\t');
    let plain = |b: u8| (0x20..0x7f).contains(&b) & (b != b'"') & (b != b'\\');
    let ok = |prev: u8, b: u8| {
        plain(b) | (b == terminator) | (filler(b) & ((prev == terminator) | filler(prev)))
    };
    let Some(&first) = body.first() else {
        return true;
    };
    let mut all = ok(terminator, first);
    const CHUNK: usize = 64;
    let pairs = body.len() - 1;
    let mut at = 0;
    while at + CHUNK <= pairs {
        let prev = &body[at..at + CHUNK];
        let next = &body[at + 1..at + 1 + CHUNK];
        let mut chunk_ok = true;
        for i in 0..CHUNK {
            chunk_ok &= ok(prev[i], next[i]);
        }
        if !chunk_ok {
            return false;
        }
        at += CHUNK;
    }
    for i in at..pairs {
        all &= ok(body[i], body[i + 1]);
    }
    all
}

/// Appends `v` JSON-escaped (without quotes).
pub fn escape_into(out: &mut Vec<u8>, v: &[u8]) {
    if is_plain(v) {
        out.extend_from_slice(v);
        return;
    }
    let text = String::from_utf8_lossy(v);
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let n = c as usize;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[n >> 4]);
                out.push(HEX[n & 0xf]);
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json() {
        let mut w = JsonWriter::new();
        w.begin_object();
        w.field("a", b"x\"y\\z\n\x01");
        w.field("empty", b"");
        w.field_date("d", b"20240102");
        w.field_date("r", b"20240102-20240105");
        w.array_field("list");
        w.string(b"\xff\xfe");
        w.number(3);
        w.begin_object();
        w.end_object();
        w.end_array();
        w.field_bool("ok", true);
        w.end_object();
        let s = String::from_utf8(w.into_bytes()).unwrap();
        assert_eq!(
            s,
            "{\"a\":\"x\\\"y\\\\z\\n\\u0001\",\"d\":\"2024-01-02\",\"r\":\"20240102-20240105\",\"list\":[\"\u{fffd}\u{fffd}\",3,{}],\"ok\":true}"
        );
    }

    #[test]
    fn numbers() {
        for n in [0, 7, 10, 99, 12345, usize::MAX] {
            let mut buf = [0u8; 20];
            assert_eq!(digits(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn plain_bytes_word_by_word() {
        for b in 0..=255u8 {
            for at in 0..17 {
                let mut v = vec![b'A'; 17];
                v[at] = b;
                assert_eq!(is_plain(&v), PLAIN[usize::from(b)], "byte {b:#x} at {at}");
            }
        }
    }

    #[test]
    fn plain_bodies() {
        assert!(plain_body(b"", b'~'));
        assert!(plain_body(b"\r\nBPR*I*1~\r\nN1*PR*A B~\n\n", b'~'));
        assert!(plain_body(b"BPR*I\x1c\nN1*PR\x1c", 0x1c));
        // Inside a segment, line endings, controls, quotes, backslashes and
        // UTF-8 need escapes.
        for bad in [
            &b"BPR*I\r\n*1~"[..],
            b"N1*PR*A\"B~",
            b"N1*PR*A\\B~",
            b"N1*PR*A\x01B~",
            b"N1*PR*Jos\xc3\xa9~",
            b"N1*PR*A\x7f~",
            b"BPR*I~ \nN1~",
        ] {
            assert!(!plain_body(bad, b'~'), "{:?}", String::from_utf8_lossy(bad));
        }
        // With a line-feed terminator, the CR before it stays in the bytes.
        assert!(!plain_body(b"BPR*I\r\nN1*PR\r\n", b'\n'));
        assert!(plain_body(b"BPR*I\nN1*PR\n", b'\n'));
    }

    #[test]
    fn streaming_gives_the_same_bytes() {
        let write = |w: &mut JsonWriter<'_>| {
            w.begin_object();
            w.array_field("list");
            for i in 0..500 {
                w.begin_object();
                w.field_number("n", i);
                w.array_field("empty");
                w.end_array();
                w.end_object();
            }
            w.end_array();
            w.object_field("last");
            w.end_object();
            w.end_object();
        };
        let mut whole = JsonWriter::new();
        write(&mut whole);
        let whole = whole.into_bytes();
        let mut streamed = Vec::new();
        let mut chunks = 0;
        let mut sink = |c: &[u8]| {
            streamed.extend_from_slice(c);
            chunks += 1;
        };
        let mut w = JsonWriter::streaming(100, &mut sink);
        write(&mut w);
        w.finish();
        assert!(chunks > 10, "{chunks}");
        assert_eq!(
            String::from_utf8(streamed).unwrap(),
            String::from_utf8(whole).unwrap()
        );
    }

    #[test]
    fn trusted_values_are_copied_and_others_escaped() {
        let body = b"N1*PR*PLAIN~\n".to_vec();
        let mut w = JsonWriter::new();
        w.trust(&body, b'~');
        w.begin_object();
        w.field("a", &body[6..11]);
        w.field("b", b"\"x\"");
        w.end_object();
        assert_eq!(w.into_bytes(), b"{\"a\":\"PLAIN\",\"b\":\"\\\"x\\\"\"}");
    }
}
