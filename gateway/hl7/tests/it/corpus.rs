//! Every HL7 v2 sample in the shared corpus parses, yields a usable header,
//! round-trips through the serializer, and gets an ACK we can read back.

use hl7::{build_ack, parse_ack, Message, Outcome, OwnedMessage, Terminator};

fn corpus() -> Vec<(String, Vec<u8>)> {
    test_support::paths::hl7_corpus_files()
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).expect("read"),
            )
        })
        .collect()
}

/// Files whose name does not start with their MSH-9.1.
const EXCEPTIONS: &[(&str, &str)] = &[
    ("ADT01-23.hl7", "ADT"),
    ("ADT01-28.hl7", "ADT"),
    ("ADT04-23.hl7", "ADT"),
    ("ADT04-251.hl7", "ADT"),
    ("ADT04-28.hl7", "ADT"),
    ("IZ_1_1.1_Admin_Child_Max_Message.hl7", "VXU"),
    ("LAB-ORM-1.hl7", "ORM"),
    ("LAB-ORU-1.hl7", "ORU"),
    ("LAB-ORU-2.hl7", "ORU"),
    ("LRI_2.0-NG_CBC_Typ_Message.hl7", "ORU"),
    ("MDHHS-OML-O21-1.hl7", "OML"),
    ("MDHHS-OML-O21-2.hl7", "OML"),
    ("MDM_01.hl7", "ADT"),
    ("OML-O21-02.hl7", "ORM"),
    ("PC1-Problem-Add-v2.3.1.hl7", "PPR"),
    ("PC1-Problem-Delete-v2.3.1.hl7", "PPR"),
    ("PC1-Problem-Update-v2.3.1.hl7", "PPR"),
    ("SIU_12.hl7", "ADT"),
];

#[test]
fn every_corpus_file_parses() {
    let files = corpus();
    assert_eq!(files.len(), 139, "the corpus README says 139 files");
    let mut parsed = 0;
    let mut with_bom = 0;
    for (name, bytes) in &files {
        with_bom += usize::from(bytes.starts_with(b"\xEF\xBB\xBF"));
        let msg = Message::parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let h = msg.header();
        assert!(!h.control_id.is_empty(), "{name}: empty control id");
        assert!(!h.message_code.is_empty(), "{name}: empty message code");
        assert!(!h.version.is_empty(), "{name}: empty version");
        assert!(
            msg.segment_count() > 1,
            "{name}: only {} segment(s)",
            msg.segment_count()
        );
        // The file name starts with the message code (ADT-A01-01, VXU.hl7),
        // except for these files, whose MSH-9.1 we check explicitly.
        let expected = match EXCEPTIONS.iter().find(|(f, _)| f == name) {
            Some((_, code)) => code,
            None => name.split(['-', '_', '.']).next().unwrap(),
        };
        assert_eq!(h.message_code, expected, "{name}");
        parsed += 1;
    }
    assert_eq!(parsed, files.len(), "no file may be skipped");
    assert_eq!(with_bom, 27, "the corpus README says 27 files carry a BOM");
}

#[test]
fn corpus_round_trips() {
    for (name, bytes) in corpus() {
        let msg = Message::parse(&bytes).unwrap();
        // Verbatim, with every terminator.
        for t in [Terminator::Cr, Terminator::Lf, Terminator::CrLf] {
            let again = msg.to_bytes(t);
            let m2 = Message::parse(&again).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                m2.to_bytes(Terminator::Cr),
                msg.to_bytes(Terminator::Cr),
                "{name}"
            );
            assert_eq!(m2.header(), msg.header(), "{name}");
        }
        // Decoded and re-escaped.
        let owned: OwnedMessage = msg.to_owned_message();
        let written = owned
            .to_bytes(Terminator::Cr)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let m3 = Message::parse(&written).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m3.to_owned_message(), owned, "{name}");
    }
}

#[test]
fn corpus_acks_read_back() {
    for (name, bytes) in corpus() {
        let h = Message::parse(&bytes).unwrap().header();
        for outcome in [
            Outcome::Accepted,
            Outcome::Rejected {
                code: 207,
                text: "journal full".into(),
            },
        ] {
            let Some(ack) = build_ack(Some(&h), &outcome, "GW1", "20240101120000") else {
                continue; // enhanced mode asked for no ACK here
            };
            let m = Message::parse(&ack).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(m.header().version, h.version, "{name}");
            let s = parse_ack(&ack).unwrap();
            assert_eq!(s.acked_control_id, h.control_id, "{name}");
        }
    }
}

#[test]
fn corpus_patient_ids() {
    // Every corpus message with a PID-3 yields a patient id.
    let mut n = 0;
    for (name, bytes) in corpus() {
        let msg = Message::parse(&bytes).unwrap();
        if let Some(pid3) = msg.get("PID-3[1].1") {
            let p = msg.header().patient_id.unwrap_or_else(|| panic!("{name}"));
            assert_eq!(p.id, pid3.text(), "{name}");
            n += 1;
        }
    }
    assert!(n > 100, "only {n} messages with PID-3");
}
