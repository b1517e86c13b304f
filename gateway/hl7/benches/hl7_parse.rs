//! Parser throughput. Run with:
//!
//! ```text
//! cargo bench -p hl7 --bench hl7_parse
//! ```
//!
//! The FHIR mapper needs >= 50k ORU messages/s per core; this parses an ORU
//! with 40 OBX segments and reads what a mapper reads from each segment.

use std::hint::black_box;
use std::time::Instant;

use hl7::{Message, Path};

fn oru(obx_count: usize) -> Vec<u8> {
    let mut s = String::from(
        "MSH|^~\\&|LAB|REFLAB^2.16.840.1.113883.3.1^ISO|ECW|CLINIC|20240102030405-0500||ORU^R01^ORU_R01|MSG000123|P|2.5.1|||AL|NE||UNICODE UTF-8\r\
         PID|1||123456^^^CLINIC&2.16.840.1.113883.3.2&ISO^MR~987-65-4321^^^SSA^SS||Doe^Jane^Q^^^^L||19800101|F|||1 Main St^^Town^ST^12345^USA||555-1234\r\
         ORC|RE|ORD1|FILL1||CM\r\
         OBR|1|ORD1|FILL1|24331-1^Lipid panel^LN|||20240101080000|||||||||1234^Smith^John|||||||20240102030000||CH|F\r",
    );
    for i in 1..=obx_count {
        s.push_str(&format!(
            "OBX|{i}|NM|2093-3^Cholesterol \\T\\ HDL^LN||{}.5|mg/dL^milligram per deciliter^UCUM|<200|N|||F|||20240101080000|LAB^Reference Lab\r",
            150 + i
        ));
    }
    s.push_str("NTE|1||Fasting specimen\\.br\\Reviewed\r");
    s.into_bytes()
}

fn main() {
    let raw = oru(40);
    let code_path = Path::parse("OBX-3.1").unwrap();
    let iterations = 20_000;
    let start = Instant::now();
    let mut total = 0usize;
    for _ in 0..iterations {
        let m = Message::parse(black_box(&raw)).unwrap();
        let h = m.header();
        total += h.control_id.len();
        total += m.get_path(&code_path).map_or(0, |v| v.raw().len());
        for obx in m.segments_named("OBX") {
            let code = obx.field(3);
            total += code.component(1).text().len()
                + code.component(2).text().len()
                + code.component(3).text().len();
            total += obx.field(5).text().len() + obx.field(6).component(1).text().len();
            total +=
                obx.field(7).text().len() + obx.field(8).text().len() + obx.field(11).text().len();
            total += obx.field(14).text().len();
        }
    }
    let elapsed = start.elapsed();
    let per_sec = f64::from(iterations) / elapsed.as_secs_f64();
    println!(
        "{} bytes, {} segments: {:.1} us/message, {:.0} messages/s ({total})",
        raw.len(),
        Message::parse(&raw).unwrap().segment_count(),
        elapsed.as_secs_f64() * 1e6 / f64::from(iterations),
        per_sec
    );
}
