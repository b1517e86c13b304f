//! Property tests: the parser never panics, escaping is inverted by
//! decoding, owned messages round-trip through bytes, and every ACK we
//! build parses and reads back.

use hl7::{
    build_ack, decode_text, escape, parse_ack, salvage_header, Charset, EncodingChars,
    HeaderSummary, Message, Outcome, OwnedField, OwnedMessage, OwnedSegment, Terminator,
};
use proptest::prelude::*;

/// Valid delimiter sets: the default, odd ones, with and without truncation.
fn encodings() -> impl Strategy<Value = EncodingChars> {
    prop_oneof![
        Just(EncodingChars::default()),
        Just(EncodingChars::from_msh(b'#', b"*@!%").unwrap()),
        Just(EncodingChars::from_msh(b'|', b"^~\\&#").unwrap()),
        // Any 5 or 6 distinct punctuation characters.
        proptest::sample::subsequence(b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".to_vec(), 6)
            .prop_shuffle()
            .prop_flat_map(|p| (Just(p), any::<bool>()))
            .prop_map(|(p, trunc)| EncodingChars::from_msh(
                p[0],
                if trunc { &p[1..6] } else { &p[1..5] }
            )
            .unwrap()),
    ]
}

/// Text rich in delimiters, escapes, line breaks, framing bytes and non-ASCII.
fn text(max_char: u32) -> impl Strategy<Value = String> {
    let special = proptest::sample::select(vec![
        '|', '^', '~', '\\', '&', '#', '*', '@', '!', '%', '\r', '\n', '\u{0b}', '\u{1c}', ' ',
        'X', '.',
    ]);
    let any_char = (0u32..=max_char).prop_filter_map("valid char", char::from_u32);
    let plain = proptest::sample::select(('a'..='z').chain('0'..='9').collect::<Vec<char>>());
    prop::collection::vec(prop_oneof![3 => special, 2 => plain, 1 => any_char], 0..8)
        .prop_map(|v| v.into_iter().collect())
}

fn field(max_char: u32) -> impl Strategy<Value = OwnedField> {
    let sub = text(max_char);
    let comp = prop::collection::vec(sub, 1..3);
    let rep = prop::collection::vec(comp, 1..4);
    prop::collection::vec(rep, 0..3).prop_map(|f| {
        // One repetition holding a single empty value is written as an
        // empty field, which reads back as no repetitions.
        if f.len() == 1 && f[0].len() == 1 && f[0][0].len() == 1 && f[0][0][0].is_empty() {
            Vec::new()
        } else {
            f
        }
    })
}

fn segment(max_char: u32) -> impl Strategy<Value = OwnedSegment> {
    (
        "[A-Z][A-Z0-9]{2}".prop_filter("not MSH", |s| s != "MSH"),
        prop::collection::vec(field(max_char), 0..6),
    )
        .prop_map(|(id, fields)| OwnedSegment { id, fields })
}

fn message() -> impl Strategy<Value = OwnedMessage> {
    (
        encodings(),
        proptest::sample::select(vec!["", "8859/1", "UNICODE UTF-8", "ASCII"]),
    )
        .prop_flat_map(|(enc, cs)| {
            let max_char = if cs == "8859/1" { 0xFF } else { 0x10FFFF };
            (
                Just(enc),
                Just(cs),
                field(max_char),
                "[A-Z0-9]{1,6}",
                prop::collection::vec(segment(max_char), 0..5),
            )
                .prop_map(move |(enc, cs, app, ctrl, rest)| {
                    let mut msh = OwnedSegment::new("MSH");
                    msh.set(9, "ORU")
                        .set(10, &ctrl)
                        .set(12, "2.5.1")
                        .set(18, cs);
                    msh.fields[0] = vec![vec![vec![(enc.field as char).to_string()]]];
                    msh.fields[1] = vec![vec![vec![String::from_utf8(enc.msh2()).unwrap()]]];
                    msh.fields[2] = app;
                    msh.fields[8] = vec![vec![vec!["ORU".into()], vec!["R01".into()]]];
                    let mut segments = vec![msh];
                    segments.extend(rest);
                    OwnedMessage {
                        encoding: enc,
                        segments,
                    }
                })
        })
}

fn terminator() -> impl Strategy<Value = Terminator> {
    prop_oneof![
        Just(Terminator::Cr),
        Just(Terminator::Lf),
        Just(Terminator::CrLf)
    ]
}

/// Touches every accessor of a parsed message.
fn walk(m: &Message<'_>) {
    let _ = m.header();
    let _ = m.to_owned_message();
    let _ = m.to_bytes(Terminator::CrLf);
    for seg in m.segments() {
        let _ = seg.id();
        for f in seg.fields() {
            let _ = f.text();
            for r in f.repetitions() {
                for c in r.components() {
                    let _ = c.text();
                    for s in c.subcomponents() {
                        let _ = s.text();
                    }
                }
            }
        }
    }
    for p in ["MSH-9.2", "PID-3[1].4.2", "OBX(2)-5", "MSH-2", "MSH-1.1.1"] {
        let _ = m.text(p);
    }
}

proptest! {
    // Failures are turned into named unit tests rather than persisted files.
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(m) = Message::parse(&bytes) { walk(&m) }
        if let Ok(m) = Message::parse_lenient(&bytes) { walk(&m) }
        let _ = salvage_header(&bytes);
        let _ = parse_ack(&bytes);
    }

    #[test]
    fn never_panics_on_near_hl7(
        prefix in proptest::sample::select(vec![&b"MSH|^~\\&|"[..], b"\xEF\xBB\xBFMSH|^~\\&#|", b"MSH#*@!%#", b"MSH|", b""]),
        body in prop::collection::vec(proptest::sample::select(b"|^~\\&#*@!%XMSHPIDAR0123.br\r\n \xC3\xE9".to_vec()), 0..300),
    ) {
        let bytes = [prefix, &body].concat();
        if let Ok(m) = Message::parse(&bytes) { walk(&m) }
        if let Ok(m) = Message::parse_lenient(&bytes) { walk(&m) }
        if let Some(h) = salvage_header(&bytes) {
            for o in [Outcome::Accepted, Outcome::Rejected { code: 100, text: "x".into() }] {
                if let Some(a) = build_ack(Some(&h), &o, "A1", "t") {
                    prop_assert!(parse_ack(&a).is_ok());
                }
            }
        }
        let _ = parse_ack(&bytes);
    }

    #[test]
    fn escape_then_decode_is_identity(enc in encodings(), t in text(0x10FFFF)) {
        let e = escape(&t, &enc);
        prop_assert_eq!(decode_text(e.as_bytes(), &enc, Charset::Default), t.as_str());
        // The escaped form holds no delimiter, line break or framing byte.
        prop_assert!(!e.bytes().any(|b| b != enc.escape && enc.is_special(b)));
        prop_assert!(!e.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0x0b | 0x1c)));
        // And canonical escaped text is a fixed point of decode-then-escape.
        prop_assert_eq!(escape(&decode_text(e.as_bytes(), &enc, Charset::Default), &enc), e);
    }

    #[test]
    fn owned_message_round_trips(m in message(), term in terminator()) {
        let bytes = m.to_bytes(term).unwrap();
        let parsed = Message::parse(&bytes).unwrap();
        prop_assert_eq!(parsed.to_owned_message(), m.clone());
        prop_assert_eq!(parsed.segment_count(), m.segments.len());
        // The verbatim writer agrees with the escaping writer.
        prop_assert_eq!(parsed.to_bytes(term), bytes);
    }

    #[test]
    fn acks_parse_and_read_back(
        enc in encodings(),
        apps in prop::collection::vec(text(0x2FF), 4),
        control in text(0x2FF).prop_filter("non-empty", |s| !s.is_empty()),
        our_id in "[A-Z0-9]{1,10}",
        version in proptest::sample::select(vec!["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "", "junk"]),
        msh15 in proptest::sample::select(vec!["", "AL", "NE", "ER", "SU"]),
        msh16 in proptest::sample::select(vec!["", "AL", "NE"]),
        charset in proptest::sample::select(vec!["", "8859/1", "UNICODE UTF-8", "ASCII"]),
        trigger in "[A-Z0-9]{0,3}",
        outcome_kind in 0..3u8,
        code in 0u16..300,
        reason in text(0x2FF),
        with_inbound in any::<bool>(),
    ) {
        let h = HeaderSummary {
            encoding: enc,
            sending_application_raw: apps[0].clone(),
            sending_facility_raw: apps[1].clone(),
            receiving_application_raw: apps[2].clone(),
            receiving_facility_raw: apps[3].clone(),
            message_code: "ADT".into(),
            trigger_event: trigger,
            control_id: control.clone(),
            version: version.into(),
            accept_ack_type: msh15.into(),
            application_ack_type: msh16.into(),
            charset: charset.into(),
            ..HeaderSummary::default()
        };
        let outcome = match outcome_kind {
            0 => Outcome::Accepted,
            1 => Outcome::Error { code, text: reason.clone() },
            _ => Outcome::Rejected { code, text: reason.clone() },
        };
        let inbound = with_inbound.then_some(&h);
        let Some(ack) = build_ack(inbound, &outcome, &our_id, "20240101") else {
            prop_assert!(with_inbound && !msh15.is_empty() && msh15 != "AL");
            return Ok(());
        };
        prop_assert!(!ack.iter().any(|&b| b == 0x0b || b == 0x1c));
        prop_assert_eq!(ack.last(), Some(&b'\r'));
        let m = Message::parse(&ack).unwrap();
        prop_assert_eq!(m.header().control_id, our_id);
        let s = parse_ack(&ack).unwrap();
        let enhanced = with_inbound && !(msh15.is_empty() && msh16.is_empty());
        let expected_code = match (with_inbound, enhanced, outcome_kind) {
            (false, _, _) => "AR",
            (true, false, 0) => "AA",
            (true, false, 1) => "AE",
            (true, false, _) => "AR",
            (true, true, 0) => "CA",
            (true, true, 1) => "CE",
            (true, true, _) => "CR",
        };
        prop_assert_eq!(s.code.as_str(), expected_code);
        prop_assert_eq!(m.segments_named("ERR").count(), usize::from(!s.is_positive()));
        // Latin-1 cannot carry characters above U+00FF.
        let lossy = |t: &str| -> String {
            if with_inbound && charset == "8859/1" { t.chars().map(|c| if (c as u32) > 0xFF { '?' } else { c }).collect() } else { t.to_string() }
        };
        let expected_acked = if with_inbound { lossy(&control) } else { String::new() };
        prop_assert_eq!(s.acked_control_id, expected_acked);
        if outcome_kind != 0 && !reason.trim().is_empty() {
            let lossy_reason = lossy(&reason);
            prop_assert!(s.text.contains(lossy_reason.trim()), "{:?} not in {:?}", reason, s.text);
        }
    }
}
