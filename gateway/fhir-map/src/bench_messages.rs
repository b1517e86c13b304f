//! The messages translation speed is measured with, shared by
//! `cargo bench -p fhir-map --bench fhir_translate` and
//! `gateway bench translate` so both report the same work: an ORU^R01 from
//! a reference lab with `obx_count` numeric OBX (the issue-15 case is 10),
//! and a full ADT^A08 (PID, PD1, NK1, PV1, AL1, DG1, IN1). Synthetic
//! patients only.

/// An ORU^R01: one order (ORC/OBR, an NTE with an escape) and `obx_count`
/// numeric results, each naming the ordering doctor and the lab.
pub fn oru_r01(obx_count: usize) -> Vec<u8> {
    let mut s = String::from(
        "MSH|^~\\&|LAB|REFLAB^2.16.840.1.113883.3.1^ISO|ECW|CLINIC|20240102030405-0500||ORU^R01^ORU_R01|MSG000123|P|2.5.1|||AL|NE||UNICODE UTF-8\r\
         PID|1||123456^^^CLINIC&2.16.840.1.113883.3.2&ISO^MR||Doe^Jane^Q^^^^L||19800101|F|||1 Main St^^Town^ST^12345^USA^H||^PRN^PH^^1^555^1234567\r\
         PV1|1|O|CLINIC^EXAM1^^MAIN||||1234^Smith^John^^^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI||||||||||||V100^^^CLINIC^VN\r\
         ORC|RE|ORD1^ECW|FILL1^LAB||CM\r\
         OBR|1|ORD1^ECW|FILL1^LAB|24331-1^Lipid panel^LN|||20240101080000-0500|||||||||1234^Smith^John^^^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI||||||20240102030000-0500||CH|F\r\
         NTE|1||Fasting specimen\\.br\\Reviewed\r",
    );
    for i in 1..=obx_count {
        s.push_str(&format!(
            "OBX|{i}|NM|{}^Analyte {i}^LN||{}.5|mg/dL^milligram per deciliter^UCUM|70-{}|N|||F|||20240101080000-0500||1234^Smith^John|||||||Reference Lab^L^^^^CLIA&2.16.840.1.113883.4.7&ISO^XX^^^05D0000000\r",
            2000 + i,
            150 + i,
            200 + i
        ));
    }
    s.into_bytes()
}

/// An ADT^A08 with every segment the ADT mapper reads.
pub fn adt_a08() -> Vec<u8> {
    b"MSH|^~\\&|ECW|CLINIC|GW|CLOUD|20240312093000-0500||ADT^A08^ADT_A01|A08X|P|2.5.1\r\
EVN|A08|20240312093000-0500\r\
PID|1||MRN1001^^^ECW^MR~999-00-1111^^^SSA^SS||Testperson^Alpha^Q^^^^L||19800115|F||2106-3^White^CDCREC|100 Example Ave^Unit 2^Springfield^IL^62701^USA^H||^PRN^PH^^1^555^0100001|^WPN^PH^^1^555^0100099|eng^English^ISO639|M||||||N^Not Hispanic or Latino^HL70189\r\
PD1|||Main Clinic^^ORG77|1234567890^Doctor^Primary^A^^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI\r\
NK1|1|Testrelative^Sam|SPO^Spouse^HL70063|1 Other Rd^^Springfield^IL^62702^USA|^PRN^PH^^1^555^0100123\r\
PV1|1|O|CLINIC^EXAM1^^MAINCLINIC|R|||1234567890^Doctor^Primary^A^^Dr^MD^^NPI&2.16.840.1.113883.4.6&ISO^^^^NPI|||MED||||1|||||V1000^^^ECW^VN|||||||||||||||||||||||||20240312090000-0500\r\
AL1|1|DA|70618^Penicillin^RXNORM|SV|Hives\r\
DG1|1|I10|E11.9^Type 2 diabetes mellitus without complications^I10|Diabetes|20240312|F\r\
IN1|1|GOLD^Gold Plan|INS01^^^PAYERS|Example Health Plan|||||||||20240101|20241231||||SEL^Self|||||||||||||||||||POL-1\r"
        .to_vec()
}
