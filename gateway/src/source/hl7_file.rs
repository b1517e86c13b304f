//! The HL7 v2 messages of a dropped file (pure): one or more MSH-led
//! messages, optionally wrapped in a batch (FHS/BHS ... BTS/FTS). Segments
//! may end in CR, LF or CRLF (files from Windows tools); each message comes
//! out with CR terminators, as MLLP carries them. The batch envelope
//! segments are dropped; bytes before the first MSH other than the
//! envelope are an error (they would be lost otherwise).

/// The messages of `bytes`, or why the file is not HL7 v2.
pub fn split_messages(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut messages: Vec<Vec<u8>> = Vec::new();
    for (n, segment) in body
        .split(|b| *b == b'\r' || *b == b'\n')
        .filter(|s| !s.iter().all(u8::is_ascii_whitespace))
        .enumerate()
    {
        let id = segment.get(..3).unwrap_or(segment);
        match id {
            b"FHS" | b"BHS" | b"BTS" | b"FTS" => continue,
            b"MSH" => messages.push(Vec::new()),
            _ if messages.is_empty() => {
                return Err(format!(
                    "segment {} ({:?}) comes before any MSH: not an HL7 v2 file",
                    n + 1,
                    String::from_utf8_lossy(id)
                ))
            }
            _ => {}
        }
        if let Some(m) = messages.last_mut() {
            m.extend_from_slice(segment);
            m.push(b'\r');
        }
    }
    if messages.is_empty() {
        return Err("no MSH segment: not an HL7 v2 file".into());
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_batch_and_line_endings() {
        let one = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A04|1|P|2.5.1\rPID|1||X\r";
        assert_eq!(split_messages(one).unwrap(), vec![one.to_vec()]);
        let batch = b"FHS|^~\\&|A\r\nBHS|^~\\&|A\r\nMSH|^~\\&|A|B|C|D|2024||ADT^A04|1|P|2.5.1\r\nPID|1\r\n\r\nMSH|^~\\&|A|B|C|D|2024||ADT^A04|2|P|2.5.1\nPID|2\nBTS|2\r\nFTS|1\r\n";
        let m = split_messages(batch).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0], b"MSH|^~\\&|A|B|C|D|2024||ADT^A04|1|P|2.5.1\rPID|1\r");
        assert_eq!(m[1], b"MSH|^~\\&|A|B|C|D|2024||ADT^A04|2|P|2.5.1\rPID|2\r");
    }

    #[test]
    fn not_hl7() {
        assert!(split_messages(b"ISA*00*...~")
            .unwrap_err()
            .contains("segment 1"));
        assert!(split_messages(b"\r\n\r\n").unwrap_err().contains("no MSH"));
        assert!(split_messages(b"").is_err());
    }
}
