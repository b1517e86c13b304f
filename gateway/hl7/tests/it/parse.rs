//! Parser behaviour: delimiters, terminators, BOM, charsets, field access,
//! paths, the header summary, salvage, and every error with its location.

use hl7::{salvage_header, Charset, Message, ParseError, Path};

const ADT: &str = "MSH|^~\\&|EPIC|HOSP^1.2^ISO|GW|CLINIC|20240102030405||ADT^A01^ADT_A01|CTRL1|P^T|2.5.1|||AL|NE||UNICODE UTF-8\r\
EVN|A01|20240102\r\
PID|1||MRN1^^^HOSP&1.2.3&ISO~SSN9^^^SSA||Doe^Jane^Q||19800101|F\r\
OBX|1|TX|code^name||first\\.br\\second||\r\
OBX|2|NM|code2||42\r";

fn err(raw: &[u8]) -> ParseError {
    Message::parse(raw).unwrap_err()
}

#[test]
fn field_numbering_and_access() {
    let m = Message::parse(ADT.as_bytes()).unwrap();
    let msh = m.msh();
    assert_eq!(msh.id(), "MSH");
    assert_eq!(msh.field(1).raw(), b"|");
    assert_eq!(msh.field(2).raw(), b"^~\\&");
    assert_eq!(msh.field(2).text(), "^~\\&"); // literal, not unescaped
    assert_eq!(msh.field(2).repetition_count(), 1);
    assert_eq!(msh.field(3).text(), "EPIC");
    assert_eq!(msh.field(4).component(2).text(), "1.2");
    assert_eq!(msh.field(9).component(3).text(), "ADT_A01");
    assert_eq!(msh.field(18).text(), "UNICODE UTF-8");
    assert_eq!(msh.field_count(), 18);
    assert_eq!(msh.fields().count(), 18);

    let pid = m.segment("PID").unwrap();
    assert_eq!(pid.field(3).repetition_count(), 2);
    let ids: Vec<String> = pid
        .field(3)
        .repetitions()
        .map(|r| r.component(1).text().into_owned())
        .collect();
    assert_eq!(ids, ["MRN1", "SSN9"]);
    assert_eq!(
        pid.field(3)
            .repetition(1)
            .component(4)
            .subcomponent(2)
            .text(),
        "1.2.3"
    );
    assert_eq!(pid.field(5).component(2).text(), "Jane");
    assert!(pid.field(2).is_empty());
    assert!(pid.field(99).is_empty());
    assert!(pid.field(0).is_empty());

    let obx: Vec<_> = m.segments_named("OBX").collect();
    assert_eq!(obx.len(), 2);
    assert_eq!(obx[0].field(5).text(), "first\nsecond");
    assert_eq!(obx[0].field_count(), 7); // trailing empty fields count
    assert_eq!(obx[1].field(5).text(), "42");
    assert_eq!(
        m.segments().map(|s| s.id()).collect::<Vec<_>>(),
        ["MSH", "EVN", "PID", "OBX", "OBX"]
    );
    assert_eq!(m.segment_at(2).unwrap().id(), "PID");
    assert!(m.segment_at(5).is_none());
    assert!(m.segment("ZZZ").is_none());
}

#[test]
fn paths() {
    let m = Message::parse(ADT.as_bytes()).unwrap();
    assert_eq!(m.text("PID-3[1].4.1").unwrap(), "HOSP");
    assert_eq!(m.text("PID-3[2].1").unwrap(), "SSN9");
    assert_eq!(m.text("PID-3.1").unwrap(), "MRN1");
    assert_eq!(
        m.get("PID-3").unwrap().raw(),
        b"MRN1^^^HOSP&1.2.3&ISO~SSN9^^^SSA"
    );
    assert_eq!(m.get("PID-3[2]").unwrap().raw(), b"SSN9^^^SSA");
    assert_eq!(m.text("OBX(2)-5").unwrap(), "42");
    assert_eq!(m.text("MSH-9.2").unwrap(), "A01");
    assert_eq!(m.text("MSH-1").unwrap(), "|");
    assert_eq!(m.value("PID", 3, 1, 4, 2).unwrap().text(), "1.2.3");
    assert!(m.value("PID", 3, 1, 4, 0).is_none());
    assert!(m.get("PID-2").is_none()); // empty
    assert!(m.get("OBX(3)-5").is_none()); // no third OBX
    assert!(m.get("ZZZ-1").is_none());
    assert!(m.get("not a path").is_none());
    let p = Path::parse("OBX(1)-3.2").unwrap();
    assert_eq!(m.get_path(&p).unwrap().text(), "name");
    assert_eq!(m.segment("PID").unwrap().get("5.2").unwrap().text(), "Jane");
}

#[test]
fn header_summary() {
    let h = Message::parse(ADT.as_bytes()).unwrap().header();
    assert_eq!(h.sending_application_raw, "EPIC");
    assert_eq!(h.sending_facility_raw, "HOSP^1.2^ISO");
    assert_eq!(h.receiving_application_raw, "GW");
    assert_eq!(h.receiving_facility_raw, "CLINIC");
    assert_eq!(h.timestamp, "20240102030405");
    assert_eq!(
        (
            h.message_code.as_str(),
            h.trigger_event.as_str(),
            h.message_structure.as_str()
        ),
        ("ADT", "A01", "ADT_A01")
    );
    assert_eq!(h.message_type(), "ADT^A01");
    assert_eq!(h.control_id, "CTRL1");
    assert_eq!(h.processing_id, "P");
    assert_eq!(h.version, "2.5.1");
    assert_eq!(h.accept_ack_type, "AL");
    assert_eq!(h.application_ack_type, "NE");
    assert_eq!(h.charset, "UNICODE UTF-8");
    let p = h.patient_id.unwrap();
    assert_eq!(
        (p.id.as_str(), p.assigning_authority.as_str()),
        ("MRN1", "HOSP")
    );
}

#[test]
fn raw_header_fields_stay_escaped() {
    let m = Message::parse(b"MSH|^~\\&|A\\T\\B|F\\S\\1|||ts||ORU^R01|X\\F\\1|P|2.4\r").unwrap();
    let h = m.header();
    assert_eq!(h.sending_application_raw, "A\\T\\B");
    assert_eq!(h.sending_facility_raw, "F\\S\\1");
    assert_eq!(h.control_id, "X|1"); // decoded
    assert_eq!(h.patient_id, None);
}

#[test]
fn assigning_authority_falls_back_to_universal_id() {
    let raw = b"MSH|^~\\&|||||||ADT^A04|1|P|2.3\rPID|1||77^^^&2.16.840.1&ISO\r";
    let p = Message::parse(raw).unwrap().header().patient_id.unwrap();
    assert_eq!(
        (p.id.as_str(), p.assigning_authority.as_str()),
        ("77", "2.16.840.1")
    );
    let raw = b"MSH|^~\\&|||||||ADT^A04|1|P|2.3\rPID|1||\r";
    assert_eq!(Message::parse(raw).unwrap().header().patient_id, None);
}

#[test]
fn odd_encoding_characters() {
    let raw =
        b"MSH#*@!%#APP#FAC###20240101##ADT*A08#C9#P#2.3\rPID#1##A*B*C*D%E@X*Y#!F!!S!!T!!R!!E!\r";
    let m = Message::parse(raw).unwrap();
    let e = m.encoding();
    assert_eq!(
        (
            e.field,
            e.component,
            e.repetition,
            e.escape,
            e.subcomponent,
            e.truncation
        ),
        (b'#', b'*', b'@', b'!', b'%', None)
    );
    let h = m.header();
    assert_eq!(
        (
            h.message_code.as_str(),
            h.trigger_event.as_str(),
            h.control_id.as_str()
        ),
        ("ADT", "A08", "C9")
    );
    let pid = m.segment("PID").unwrap();
    assert_eq!(pid.field(3).repetition_count(), 2);
    assert_eq!(pid.field(3).component(4).subcomponent(2).text(), "E");
    assert_eq!(pid.field(3).repetition(2).component(2).text(), "Y");
    assert_eq!(pid.field(4).text(), "#*%@!");
    assert_eq!(h.patient_id.unwrap().assigning_authority, "D");
    assert_eq!(m.msh().field(2).text(), "*@!%");
}

#[test]
fn truncation_character() {
    let m = Message::parse(b"MSH|^~\\&#|A||||||ADT^A01|1|P|2.7\rNTE|1||cut\\P\\here\r").unwrap();
    assert_eq!(m.encoding().truncation, Some(b'#'));
    assert_eq!(m.text("NTE-3").unwrap(), "cut#here");
    assert_eq!(m.header().version, "2.7"); // other versions parse
}

#[test]
fn terminators_bom_and_blank_lines() {
    let cr = ADT.as_bytes().to_vec();
    let lf = ADT.replace('\r', "\n").into_bytes();
    let crlf = ADT.replace('\r', "\r\n").into_bytes();
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(&crlf);
    let blank = ADT.replace('\r', "\r\n\r\n  \r\n").into_bytes();
    let lead = [b"\r\n".as_slice(), &cr].concat();
    let base = Message::parse(&cr).unwrap();
    for raw in [&lf, &crlf, &bom, &blank, &lead] {
        let m = Message::parse(raw).unwrap();
        assert_eq!(m.segment_count(), 5);
        assert_eq!(m.header(), base.header());
        assert_eq!(m.to_owned_message(), base.to_owned_message());
        assert_eq!(
            m.segment("OBX").unwrap().raw(),
            b"OBX|1|TX|code^name||first\\.br\\second||"
        );
    }
    // A BOM in the middle is not a BOM.
    let mid = [b"\n".as_slice(), b"\xEF\xBB\xBF", &cr].concat();
    assert_eq!(err(&mid).location, "segment 1");
    // No terminator at all after the last segment.
    assert_eq!(
        Message::parse(b"MSH|^~\\&|||||||ADT^A01|1|P|2.5")
            .unwrap()
            .segment_count(),
        1
    );
}

#[test]
fn charsets() {
    let latin = b"MSH|^~\\&|||||||ADT^A01|1|P|2.5||||||8859/1\rPID|1||1||Jos\xE9^M\\XFC\\ller\r";
    let m = Message::parse(latin).unwrap();
    assert_eq!(m.charset(), Charset::Latin1);
    assert_eq!(m.text("PID-5.1").unwrap(), "José");
    assert_eq!(m.text("PID-5.2").unwrap(), "Müller");
    assert_eq!(m.get("PID-5.1").unwrap().raw(), b"Jos\xE9");

    let utf8 = "MSH|^~\\&|||||||ADT^A01|1|P|2.5||||||UNICODE UTF-8\rPID|1||1||Zoë^\\XC3B1\\\r";
    let m = Message::parse(utf8.as_bytes()).unwrap();
    assert_eq!(m.charset(), Charset::Utf8);
    assert_eq!(m.text("PID-5.1").unwrap(), "Zoë");
    assert_eq!(m.text("PID-5.2").unwrap(), "ñ");

    // No MSH-18: UTF-8 when valid, else Latin-1 for that value; nothing lost.
    let mixed =
        [b"MSH|^~\\&|||||||ADT^A01|1|P|2.5\rPID|1||1||Zo\xC3\xAB^Jos\xE9\r".as_slice()].concat();
    let m = Message::parse(&mixed).unwrap();
    assert_eq!(m.charset(), Charset::Default);
    assert_eq!(m.text("PID-5.1").unwrap(), "Zoë");
    assert_eq!(m.text("PID-5.2").unwrap(), "José");

    let ascii = b"MSH|^~\\&|||||||ADT^A01|1|P|2.5||||||ASCII\rPID|1||1||Plain\r";
    assert_eq!(Message::parse(ascii).unwrap().charset(), Charset::Ascii);

    // Garbage bytes are not an error by themselves.
    let junk = b"MSH|^~\\&|\xFF\xFE||||||ADT^A01|1|P|2.5\rNTE|1||\x00\x01\xC0\r";
    let m = Message::parse(junk).unwrap();
    assert_eq!(m.header().sending_application_raw, "\u{FF}\u{FE}");
    assert_eq!(m.text("NTE-3").unwrap(), "\u{0}\u{1}\u{C0}");
}

#[test]
fn versions_are_not_judged() {
    for v in [
        "2.2", "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8", "9",
    ] {
        let raw = format!("MSH|^~\\&|||||||ADT^A01|1|P|{v}\r");
        assert_eq!(Message::parse(raw.as_bytes()).unwrap().version(), v);
    }
    let raw = b"MSH|^~\\&|||||||ADT^A01|1|P|2.3.1^USA\r";
    assert_eq!(Message::parse(raw).unwrap().header().version, "2.3.1");
}

fn check(raw: &[u8], display: &str, code: u16) {
    let e = err(raw);
    assert_eq!(e.to_string(), display, "{:?}", String::from_utf8_lossy(raw));
    assert_eq!(e.err_code, code, "{display}");
    assert_eq!(format!("{}: {}", e.location, e.reason), display);
}

#[test]
fn every_error_with_its_location() {
    check(b"", "segment 1: message does not start with MSH", 100);
    check(
        b"\r\n\r\n",
        "segment 1: message does not start with MSH",
        100,
    );
    check(
        b"PID|1\rMSH|^~\\&|||||||ADT^A01|1|P|2.5\r",
        "segment 1: message does not start with MSH",
        100,
    );
    check(
        b"\x0bMSH|^~\\&|||||||ADT^A01|1|P|2.5\r",
        "segment 1: message does not start with MSH",
        100,
    );
    check(b"MSH", "MSH-1: field separator is missing", 101);
    check(b"MSH\rPID|1", "MSH-1: field separator is missing", 101);
    check(
        b"MSHA^~\\&",
        "MSH-1: field separator 'A' is not a valid delimiter",
        102,
    );
    check(
        b"MSH ^~\\&",
        "MSH-1: field separator ' ' is not a valid delimiter",
        102,
    );
    check(b"MSH|", "MSH-2: encoding characters are missing", 101);
    check(b"MSH||A|B", "MSH-2: encoding characters are missing", 101);
    check(
        b"MSH|^~\\|A",
        "MSH-2: expected 4 or 5 encoding characters, found 3",
        102,
    );
    check(
        b"MSH|^~\\&#!|A",
        "MSH-2: expected 4 or 5 encoding characters, found 6",
        102,
    );
    check(b"MSH|^~^&|A", "MSH-2: delimiter '^' is declared twice", 102);
    check(
        b"MSH|^~a&|A",
        "MSH-2: encoding character 'a' is not a valid delimiter",
        102,
    );
    check(
        b"MSH|^~\\&|A|B|C|D|ts||",
        "MSH-9: message type is empty",
        101,
    );
    check(b"MSH|^~\\&|A|B|C|D|ts", "MSH-9: message type is empty", 101);
    check(
        b"MSH|^~\\&|A|B|C|D|ts||^A01|1|P|2.5",
        "MSH-9.1: message code is empty",
        101,
    );
    check(
        b"MSH|^~\\&|A|B|C|D|ts||ADT^A01||P|2.5",
        "MSH-10: message control id is empty",
        101,
    );
    check(
        b"MSH|^~\\&|A|B|C|D|ts||ADT^A01|1|P",
        "MSH-12: version is empty",
        101,
    );
    check(
        b"MSH|^~\\&|A|B|C|D|ts||ADT^A01|1|P|",
        "MSH-12: version is empty",
        101,
    );
    check(
        b"MSH|^~\\&|A|B|C|D|ts||ADT^A01|1|P|^x",
        "MSH-12: version is empty",
        101,
    );
    let ok = "MSH|^~\\&|A|B|C|D|ts||ADT^A01|1|P|2.5\r";
    check(
        format!("{ok}EVN|1\rP D|1\r").as_bytes(),
        "segment 3: segment id 'P D' is not 3 alphanumeric characters",
        100,
    );
    check(
        format!("{ok}PI|1\r").as_bytes(),
        "segment 2: segment id 'PI' is not 3 alphanumeric characters",
        100,
    );
    check(
        format!("{ok}PIDX|1\r").as_bytes(),
        "segment 2: segment id 'PIDX' is not 3 alphanumeric characters",
        100,
    );
    check(
        format!("{ok}|1\r").as_bytes(),
        "segment 2: segment id '' is not 3 alphanumeric characters",
        100,
    );
    check(
        format!("{ok}P\x01D|1\r").as_bytes(),
        "segment 2: segment id 'P\\x01D' is not 3 alphanumeric characters",
        100,
    );
    // A bare LF inside free text splits a segment: the tail is reported
    // without echoing more than a few characters of it.
    check(
        format!("{ok}NTE|1||line one\nsecret patient text\r").as_bytes(),
        "segment 3: segment id 'secret p...' is not 3 alphanumeric characters",
        100,
    );
}

#[test]
fn salvage() {
    // Missing control id: the strict parser rejects, salvage reads the rest.
    let raw = b"MSH|^~\\&|APP|FAC|GW|GWF|ts||ADT^A01||P|2.4\rPID|1||M1\r";
    assert_eq!(err(raw).location, "MSH-10");
    let h = salvage_header(raw).unwrap();
    assert_eq!(
        (
            h.sending_application_raw.as_str(),
            h.version.as_str(),
            h.control_id.as_str()
        ),
        ("APP", "2.4", "")
    );
    assert_eq!(h.patient_id.unwrap().id, "M1");

    // Bad segment later on: header still complete.
    let raw = b"\xEF\xBB\xBFMSH|^~\\&|APP||||ts||ORU^R01|C77|P|2.5.1\rP D|x\rPID|1||M2\r";
    assert_eq!(err(raw).location, "segment 2");
    let h = salvage_header(raw).unwrap();
    assert_eq!(h.control_id, "C77");
    assert_eq!(h.patient_id.unwrap().id, "M2");

    // Garbage before the MSH line.
    let h = salvage_header(b"garbage\nMSH|^~\\&|APP||||ts||ORU^R01|C78|P|2.5.1\r").unwrap();
    assert_eq!(h.control_id, "C78");

    // Broken MSH-2: default delimiters.
    let h = salvage_header(b"MSH|^~|APP||||ts||ORU^R01|C79|P|2.5.1\r").unwrap();
    assert_eq!(h.encoding, hl7::EncodingChars::default());
    assert_eq!(
        (h.control_id.as_str(), h.trigger_event.as_str()),
        ("C79", "R01")
    );

    for hopeless in [
        &b""[..],
        b"hello",
        b"MSH",
        b"MSHA^~\\&|",
        b"\x0b\x1c\r",
        b"MSH^^~\\&",
    ] {
        assert_eq!(
            salvage_header(hopeless),
            None,
            "{:?}",
            String::from_utf8_lossy(hopeless)
        );
    }
}

#[test]
fn repeated_msh_uses_msh_numbering() {
    let m = Message::parse(b"MSH|^~\\&|A||||||ADT^A01|1|P|2.5\rMSH|^~\\&|B\r").unwrap();
    let second = m.segment_at(1).unwrap();
    assert_eq!(second.field(2).raw(), b"^~\\&");
    assert_eq!(second.field(3).text(), "B");
}
