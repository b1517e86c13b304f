//! ACK/NAK building in every mode and version layout, and reading ACKs back.

use hl7::{build_ack, parse_ack, AckSummary, HeaderSummary, Message, Outcome};

fn inbound(version: &str, msh15: &str, msh16: &str) -> HeaderSummary {
    let raw = format!("MSH|^~\\&|EPIC|HOSP^1.2^ISO|GW|CLINIC|20240102||ADT^A01^ADT_A01|CTRL1|P|{version}|||{msh15}|{msh16}\r");
    Message::parse(raw.as_bytes()).unwrap().header()
}

fn ack(h: &HeaderSummary, o: &Outcome) -> Option<String> {
    build_ack(Some(h), o, "ACK1", "20240301").map(|v| String::from_utf8(v).unwrap())
}

fn rejected(code: u16, text: &str) -> Outcome {
    Outcome::Rejected {
        code,
        text: text.into(),
    }
}

fn error(code: u16, text: &str) -> Outcome {
    Outcome::Error {
        code,
        text: text.into(),
    }
}

#[test]
fn original_mode_v251() {
    let h = inbound("2.5.1", "", "");
    assert_eq!(
        ack(&h, &Outcome::Accepted).unwrap(),
        "MSH|^~\\&|GW|CLINIC|EPIC|HOSP^1.2^ISO|20240301||ACK^A01^ACK|ACK1|P|2.5.1\rMSA|AA|CTRL1\r"
    );
    assert_eq!(
        ack(&h, &rejected(101, "PID-3.4: assigning authority is empty")).unwrap(),
        "MSH|^~\\&|GW|CLINIC|EPIC|HOSP^1.2^ISO|20240301||ACK^A01^ACK|ACK1|P|2.5.1\r\
         MSA|AR|CTRL1|PID-3.4: assigning authority is empty\r\
         ERR||PID^1^3^1^4|101^Required field missing^HL70357|E||||PID-3.4: assigning authority is empty\r"
    );
    assert_eq!(
        ack(&h, &error(207, "journal is full")).unwrap(),
        "MSH|^~\\&|GW|CLINIC|EPIC|HOSP^1.2^ISO|20240301||ACK^A01^ACK|ACK1|P|2.5.1\r\
         MSA|AE|CTRL1|journal is full\r\
         ERR|||207^Application internal error^HL70357|E||||journal is full\r"
    );
    // Locations: field only, segment occurrence, repetition.
    let a = ack(&h, &rejected(100, "MSH-9: message type is empty")).unwrap();
    assert!(a.contains("\rERR||MSH^1^9|100^"), "{a}");
    let a = ack(&h, &rejected(102, "OBX(3)-5[2]: bad value")).unwrap();
    assert!(
        a.contains("\rERR||OBX^3^5^2|102^Data type error^HL70357|E"),
        "{a}"
    );
    let a = ack(&h, &rejected(102, "PID-3.4.2: bad oid")).unwrap();
    assert!(a.contains("\rERR||PID^1^3^1^4^2|102^"), "{a}");
}

#[test]
fn original_mode_v23_and_v24_use_err1() {
    let h = inbound("2.3", "", "");
    assert_eq!(
        ack(&h, &Outcome::Accepted).unwrap(),
        "MSH|^~\\&|GW|CLINIC|EPIC|HOSP^1.2^ISO|20240301||ACK|ACK1|P|2.3\rMSA|AA|CTRL1\r"
    );
    assert_eq!(
        ack(&h, &rejected(101, "PID-3.4: assigning authority is empty")).unwrap(),
        "MSH|^~\\&|GW|CLINIC|EPIC|HOSP^1.2^ISO|20240301||ACK|ACK1|P|2.3\r\
         MSA|AR|CTRL1|PID-3.4: assigning authority is empty\r\
         ERR|PID^1^3^101&PID-3.4: assigning authority is empty&HL70357\r"
    );
    assert_eq!(
        ack(&inbound("2.3.1", "", ""), &error(207, "journal is full")).unwrap(),
        "MSH|^~\\&|GW|CLINIC|EPIC|HOSP^1.2^ISO|20240301||ACK|ACK1|P|2.3.1\r\
         MSA|AE|CTRL1|journal is full\r\
         ERR|^^^207&journal is full&HL70357\r"
    );
    // 2.4: ACK^A01^ACK, still ERR-1.
    let a = ack(&inbound("2.4", "", ""), &error(207, "journal is full")).unwrap();
    assert!(a.contains("||ACK^A01^ACK|ACK1|P|2.4\r"), "{a}");
    assert!(a.ends_with("\rERR|^^^207&journal is full&HL70357\r"), "{a}");
    // 2.5: ERR-2.., and later versions too.
    for v in ["2.5", "2.6", "2.8"] {
        let a = ack(&inbound(v, "", ""), &error(207, "x")).unwrap();
        assert!(
            a.ends_with("\rERR|||207^Application internal error^HL70357|E||||x\r"),
            "{a}"
        );
    }
}

#[test]
fn ack_message_type_without_trigger_still_names_the_structure() {
    // v2.4+: MSH-9.3 = ACK even when the trigger is unknown, so strict readers (hl7apy) resolve it.
    let raw = b"MSH|^~\\&|A||||ts||ACK|C1|P|2.5.1\r";
    let h = Message::parse(raw).unwrap().header();
    assert!(ack(&h, &Outcome::Accepted)
        .unwrap()
        .contains("|20240301||ACK^^ACK|ACK1|P|2.5.1\r"));
    // v2.3 has no MSH-9.3: plain ACK.
    let raw = b"MSH|^~\\&|A||||ts||ADT^A01|C1|P|2.3\r";
    let h = Message::parse(raw).unwrap().header();
    assert!(ack(&h, &Outcome::Accepted)
        .unwrap()
        .contains("|20240301||ACK|ACK1|P|2.3\r"));
}

#[test]
fn enhanced_mode_commit_acks() {
    let ok = Outcome::Accepted;
    let ce = error(207, "busy");
    let cr = rejected(200, "MSH-9: unsupported message type");
    // (MSH-15, MSH-16) -> which of CA / CE / CR are sent.
    let table = [
        ("AL", "NE", [true, true, true]),
        ("AL", "", [true, true, true]),
        ("", "AL", [true, true, true]), // empty MSH-15 in enhanced mode = AL
        ("NE", "AL", [false, false, false]),
        ("ER", "AL", [false, true, true]),
        ("SU", "AL", [true, false, false]),
        ("XX", "AL", [true, true, true]), // unknown: send
    ];
    for (msh15, msh16, expect) in table {
        let h = inbound("2.5.1", msh15, msh16);
        for ((outcome, code), want) in [(&ok, "CA"), (&ce, "CE"), (&cr, "CR")]
            .into_iter()
            .zip(expect)
        {
            let a = ack(&h, outcome);
            assert_eq!(
                a.is_some(),
                want,
                "MSH-15 {msh15:?} MSH-16 {msh16:?} {code}"
            );
            if let Some(a) = a {
                assert!(a.contains(&format!("\rMSA|{code}|CTRL1")), "{a}");
                assert_eq!(a.contains("\rERR|"), code != "CA", "{a}");
            }
        }
    }
    let a = ack(&inbound("2.5.1", "AL", "AL"), &cr).unwrap();
    assert!(a.ends_with("MSA|CR|CTRL1|MSH-9: unsupported message type\rERR||MSH^1^9|200^Unsupported message type^HL70357|E||||MSH-9: unsupported message type\r"), "{a}");
}

#[test]
fn no_inbound_header() {
    let out = build_ack(
        None,
        &rejected(100, "segment 1: message does not start with MSH"),
        "ACK9",
        "20240301",
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "MSH|^~\\&|CLINICGW||||20240301||ACK^^ACK|ACK9|P|2.5.1\r\
         MSA|AR||segment 1: message does not start with MSH\r\
         ERR|||100^Segment sequence error^HL70357|E||||segment 1: message does not start with MSH\r"
    );
    // Even "accepted" without a header is a rejection that says why.
    let out = String::from_utf8(build_ack(None, &Outcome::Accepted, "ACK9", "t").unwrap()).unwrap();
    assert!(
        out.contains("\rMSA|AR||message has no usable MSH segment\r"),
        "{out}"
    );
    let out =
        String::from_utf8(build_ack(None, &error(207, "disk"), "ACK9", "t").unwrap()).unwrap();
    assert!(out.contains("\rMSA|AR||disk\rERR|||207^"), "{out}");
}

#[test]
fn parse_error_outcome() {
    let raw = b"MSH|^~\\&|LAB||GW||ts||||P|2.5\r";
    let e = Message::parse(raw).unwrap_err();
    let h = hl7::salvage_header(raw).unwrap();
    let a =
        String::from_utf8(build_ack(Some(&h), &Outcome::from_parse_error(&e), "A1", "t").unwrap())
            .unwrap();
    assert_eq!(
        a,
        "MSH|^~\\&|GW||LAB||t||ACK^^ACK|A1|P|2.5\rMSA|AR||MSH-9: message type is empty\r\
         ERR||MSH^1^9|101^Required field missing^HL70357|E||||MSH-9: message type is empty\r"
    );
}

#[test]
fn odd_delimiters_escaping_and_echo() {
    let raw = b"MSH#*@!%#APP!T!X#FAC###t##ORU*R01#C!F!1#T#2.5.1\r";
    let h = Message::parse(raw).unwrap().header();
    assert_eq!(h.control_id, "C#1");
    let a =
        String::from_utf8(build_ack(Some(&h), &error(207, "a#b*c"), "K#1", "t").unwrap()).unwrap();
    assert_eq!(
        a,
        "MSH#*@!%###APP!T!X#FAC#t##ACK*R01*ACK#K!F!1#T#2.5.1\r\
         MSA#AE#C!F!1#a!F!b!S!c\r\
         ERR###207*Application internal error*HL70357#E####a!F!b!S!c\r"
    );
    let s = parse_ack(a.as_bytes()).unwrap();
    assert_eq!(
        s,
        AckSummary {
            code: "AE".into(),
            acked_control_id: "C#1".into(),
            text: "a#b*c".into()
        }
    );
}

#[test]
fn unsafe_echo_is_escaped() {
    // A header summary from the journal is data, not trusted structure.
    let mut h = inbound("2.5.1", "", "");
    h.sending_application_raw = "EV|IL\rMSH|x".into();
    h.receiving_facility_raw = "\u{1c}\u{0b}".into();
    let a = String::from_utf8(build_ack(Some(&h), &Outcome::Accepted, "A", "t").unwrap()).unwrap();
    assert!(
        a.starts_with("MSH|^~\\&|GW|\\X1C\\\\X0B\\|EV\\F\\IL\\X0D\\MSH\\F\\x|"),
        "{a}"
    );
    assert_eq!(Message::parse(a.as_bytes()).unwrap().segment_count(), 2);
    // Unusable delimiters: default ones, everything echoed as escaped text.
    let mut h = inbound("2.5.1", "", "");
    h.encoding.component = b'|';
    let a = String::from_utf8(build_ack(Some(&h), &Outcome::Accepted, "A", "t").unwrap()).unwrap();
    assert!(
        a.starts_with("MSH|^~\\&|GW|CLINIC|EPIC|HOSP\\S\\1.2\\S\\ISO|t|"),
        "{a}"
    );
}

#[test]
fn processing_id_and_charset_echo() {
    let raw = b"MSH|^~\\&|Caf\xE9||GW||t||ADT^A04|C|T|2.5||||||8859/1\r";
    let h = Message::parse(raw).unwrap().header();
    assert_eq!(h.sending_application_raw, "Café");
    let a = build_ack(Some(&h), &Outcome::Accepted, "A", "t").unwrap();
    assert_eq!(
        a,
        b"MSH|^~\\&|GW||Caf\xE9||t||ACK^A04^ACK|A|T|2.5||||||8859/1\rMSA|AA|C\r"
    );
    let mut h = inbound("2.5.1", "", "");
    h.processing_id.clear();
    assert!(ack(&h, &Outcome::Accepted)
        .unwrap()
        .contains("|ACK1|P|2.5.1\r"));
    h.version.clear();
    assert!(ack(&h, &Outcome::Accepted)
        .unwrap()
        .contains("|ACK1|P|2.5.1\r"));
}

#[test]
fn parse_ack_reads_foreign_acks() {
    // v2.3 style, text only in ERR-1.
    let a = b"MSH|^~\\&|R|F|S|F|t||ACK|9|P|2.3\rMSA|AE|C1\rERR|PID^1^3^101&Missing MRN&HL70357~PID^1^5^101&Missing name&HL70357\r";
    let s = parse_ack(a).unwrap();
    assert_eq!(
        (
            s.code.as_str(),
            s.acked_control_id.as_str(),
            s.text.as_str()
        ),
        ("AE", "C1", "Missing MRN; Missing name")
    );
    assert!(!s.is_positive());
    // v2.5 with ERR-3.2 only, and an MSA-3.
    let a = b"MSH|^~\\&|R|F|S|F|t||ACK|9|P|2.5\nMSA|AR|C2|Rejected\nERR|||200^Unsupported message type^HL70357|E\n";
    assert_eq!(
        parse_ack(a).unwrap().text,
        "Rejected; Unsupported message type"
    );
    // Positive, no text; a sloppy header (no MSH-10/12) is fine.
    let s = parse_ack(b"MSH|^~\\&\rMSA|CA|C3\r").unwrap();
    assert!(s.is_positive());
    assert_eq!(
        (
            s.code.as_str(),
            s.acked_control_id.as_str(),
            s.text.as_str()
        ),
        ("CA", "C3", "")
    );
}

#[test]
fn parse_ack_errors() {
    let e = parse_ack(b"MSH|^~\\&|||||||ACK|1|P|2.5\r").unwrap_err();
    assert_eq!(
        (e.to_string().as_str(), e.err_code),
        ("MSA: acknowledgment has no MSA segment", 100)
    );
    let e = parse_ack(b"MSH|^~\\&|||||||ACK|1|P|2.5\rMSA||C1\r").unwrap_err();
    assert_eq!(
        (e.to_string().as_str(), e.err_code),
        ("MSA-1: acknowledgment code is empty", 101)
    );
    let e = parse_ack(b"MSH|^~\\&|||||||ACK|1|P|2.5\rMSA|OK|C1\r").unwrap_err();
    assert_eq!(
        (e.to_string().as_str(), e.err_code),
        ("MSA-1: unknown acknowledgment code 'OK'", 103)
    );
    let e = parse_ack(b"not hl7").unwrap_err();
    assert_eq!(e.to_string(), "segment 1: message does not start with MSH");
}
