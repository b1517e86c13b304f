//! A small streaming JSON writer into a byte buffer. Values from the file
//! are written as JSON strings exactly as sent (amounts included); bytes
//! that are not UTF-8 become U+FFFD, so the output is always valid JSON.

/// Writes JSON with commas placed automatically.
pub struct JsonWriter {
    out: Vec<u8>,
    need_comma: bool,
}

impl Default for JsonWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonWriter {
    /// An empty writer.
    pub fn new() -> Self {
        JsonWriter {
            out: Vec::with_capacity(4096),
            need_comma: false,
        }
    }

    /// The JSON written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }

    fn comma(&mut self) {
        if self.need_comma {
            self.out.push(b',');
        }
    }

    /// `{`
    pub fn begin_object(&mut self) {
        self.comma();
        self.out.push(b'{');
        self.need_comma = false;
    }

    /// `}`
    pub fn end_object(&mut self) {
        self.out.push(b'}');
        self.need_comma = true;
    }

    /// `[`
    pub fn begin_array(&mut self) {
        self.comma();
        self.out.push(b'[');
        self.need_comma = false;
    }

    /// `]`
    pub fn end_array(&mut self) {
        self.out.push(b']');
        self.need_comma = true;
    }

    /// `"key":` (keys are static ASCII, written as they are).
    pub fn key(&mut self, key: &str) {
        self.comma();
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.need_comma = false;
    }

    /// A string value.
    pub fn string(&mut self, v: &[u8]) {
        self.comma();
        self.out.push(b'"');
        escape_into(&mut self.out, v);
        self.out.push(b'"');
        self.need_comma = true;
    }

    /// A number value (callers pass digits they formatted).
    pub fn number(&mut self, n: usize) {
        self.comma();
        self.out.extend_from_slice(n.to_string().as_bytes());
        self.need_comma = true;
    }

    /// `true` / `false`.
    pub fn boolean(&mut self, b: bool) {
        self.comma();
        self.out
            .extend_from_slice(if b { b"true" } else { b"false" });
        self.need_comma = true;
    }

    /// `null`.
    pub fn null(&mut self) {
        self.comma();
        self.out.extend_from_slice(b"null");
        self.need_comma = true;
    }

    /// `"key":"value"`, omitted when the value is empty.
    pub fn field(&mut self, key: &str, v: &[u8]) {
        if !v.is_empty() {
            self.key(key);
            self.string(v);
        }
    }

    /// `"key":"value"` for a static text, omitted when `None`.
    pub fn field_text(&mut self, key: &str, v: Option<&str>) {
        if let Some(v) = v {
            self.field(key, v.as_bytes());
        }
    }

    /// A D8 date (`CCYYMMDD`, month 01-12, day 01-31) as `CCYY-MM-DD`;
    /// other values as sent; omitted when empty.
    pub fn field_date(&mut self, key: &str, v: &[u8]) {
        let plausible = v.len() == 8
            && v.iter().all(u8::is_ascii_digit)
            && (b"01".as_slice()..=b"12".as_slice()).contains(&&v[4..6])
            && (b"01".as_slice()..=b"31".as_slice()).contains(&&v[6..8]);
        if plausible {
            let mut iso = [0u8; 10];
            iso[..4].copy_from_slice(&v[..4]);
            iso[4] = b'-';
            iso[5..7].copy_from_slice(&v[4..6]);
            iso[7] = b'-';
            iso[8..].copy_from_slice(&v[6..]);
            self.field(key, &iso);
        } else {
            self.field(key, v);
        }
    }

    /// `"key":true|false`.
    pub fn field_bool(&mut self, key: &str, b: bool) {
        self.key(key);
        self.boolean(b);
    }

    /// `"key":n`.
    pub fn field_number(&mut self, key: &str, n: usize) {
        self.key(key);
        self.number(n);
    }

    /// `"key":{`
    pub fn object_field(&mut self, key: &str) {
        self.key(key);
        self.begin_object();
    }

    /// `"key":[`
    pub fn array_field(&mut self, key: &str) {
        self.key(key);
        self.begin_array();
    }
}

fn plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// Appends `v` JSON-escaped (without quotes).
pub fn escape_into(out: &mut Vec<u8>, v: &[u8]) {
    if v.iter().all(|&b| plain(b)) {
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
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
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
}
