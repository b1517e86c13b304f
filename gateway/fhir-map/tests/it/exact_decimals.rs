//! Exact decimals: OBX-5 numbers, reference ranges and quantities are
//! written as received (after normalising `+`, leading zeros and a leading
//! `.`), never through f64. `1e3` is not an HL7 NM: it stays text. And the
//! bytes sent are the Bundle of `translate`, value for value and in the same
//! key order, over both corpora in both modes.

use crate::support::*;
use fhir_map::MapContext;
use hl7::Message;

/// The Observation of OBX-3 `code`, as written on the wire.
fn wire_observation(bytes: &[u8], code: &str) -> String {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let at = text
        .find(&format!("\"code\":\"{code}\""))
        .unwrap_or_else(|| panic!("no {code}"));
    // The entry around it: from the previous "fullUrl" to the next one.
    let start = text[..at].rfind("\"fullUrl\"").unwrap();
    let end = text[at..]
        .find("\"fullUrl\"")
        .map_or(text.len(), |e| at + e);
    text[start..end].to_string()
}

#[test]
fn numbers_are_written_as_received() {
    let raw = own("oru_r01_decimals.hl7");
    let msg = Message::parse(&raw).unwrap();
    let bytes = fhir_map::translate_to_bytes(&msg, &MapContext::new("acme")).unwrap();
    let chol = wire_observation(&bytes, "2093-3");
    assert!(chol.contains("\"value\":5.50}"), "{chol}");
    assert!(chol.contains("\"low\":{\"code\":\"mmol/L\",\"system\":\"http://unitsofmeasure.org\",\"unit\":\"mmol/L\",\"value\":3.50}"), "{chol}");
    assert!(chol.contains("\"value\":5.10}"), "{chol}");
    let tg = wire_observation(&bytes, "2571-8");
    assert!(tg.contains("\"value\":0.1}"), "{tg}");
    assert!(tg.contains("\"value\":0.5}"), ".5 gets its zero: {tg}");
    assert!(tg.contains("\"value\":1.70}"), "{tg}");
    let hdl = wire_observation(&bytes, "2085-9");
    assert!(hdl.contains("\"value\":1234567890.123456789}"), "{hdl}");
    assert!(hdl.contains("\"value\":1.00}"), "+001.00: {hdl}");
    let ratio = wire_observation(&bytes, "9830-1");
    assert!(ratio.contains("\"value\":7.10"), "+007.10: {ratio}");
    assert!(ratio.contains("\"value\":0.50}"), "<=.50: {ratio}");
    let hbs = wire_observation(&bytes, "5196-1");
    assert!(hbs.contains("\"comparator\":\"<\""), "{hbs}");
    assert!(hbs.contains("\"value\":0.50}"), "{hbs}");
    let ketones = wire_observation(&bytes, "2514-8");
    assert!(
        ketones.contains("\"value\":1.0}") && ketones.contains("\"value\":2.50}"),
        "{ketones}"
    );
    let titer = wire_observation(&bytes, "5130-0");
    assert!(
        titer.contains("\"denominator\":{\"value\":128.0}"),
        "{titer}"
    );
}

/// The decimals message's Observation of `code`, from `translate`.
fn observation(code: &str) -> serde_json::Value {
    let b = bundle(&own("oru_r01_decimals.hl7"), &MapContext::new("acme"));
    resources(&b, "Observation")
        .into_iter()
        .find(|o| o["code"]["coding"][0]["code"] == code)
        .unwrap_or_else(|| panic!("no {code}"))
        .clone()
}

#[test]
fn an_exponent_is_kept_as_text_not_as_a_number() {
    let ldl = observation("13457-7");
    assert_eq!(ldl["valueString"], "1e3");
    assert!(ldl.get("valueQuantity").is_none());
    assert_eq!(ldl["referenceRange"][0]["text"], "<1e3");
    assert!(ldl["referenceRange"][0].get("high").is_none());
}

#[test]
fn the_value_tree_holds_the_nearest_f64() {
    let chol = observation("2093-3");
    assert_eq!(chol["valueQuantity"]["value"].as_f64(), Some(5.5));
}

#[test]
fn bytes_and_value_are_the_same_bundle() {
    let mut files = own_corpus();
    files.extend(shared_corpus());
    let mut compared = 0;
    for f in &files {
        let raw = read(f);
        let Ok(msg) = Message::parse(&raw) else {
            continue;
        };
        for (mode, ctx) in contexts() {
            let name = format!("{} ({mode})", f.display());
            match (
                fhir_map::translate(&msg, &ctx),
                fhir_map::translate_to_bytes(&msg, &ctx),
                fhir_map::translate_pretty(&msg, &ctx),
            ) {
                (Ok(value), Ok(bytes), Ok(pretty)) => {
                    let parsed: serde_json::Value = serde_json::from_slice(&bytes)
                        .unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
                    assert_eq!(parsed, value, "{name}");
                    // Same keys in the same order: re-written, both agree.
                    assert_eq!(
                        serde_json::to_vec(&parsed).unwrap(),
                        serde_json::to_vec(&value).unwrap(),
                        "{name}"
                    );
                    let parsed_pretty: serde_json::Value = serde_json::from_slice(&pretty).unwrap();
                    assert_eq!(parsed_pretty, value, "{name}");
                    compared += 1;
                }
                (Err(a), Err(b), Err(c)) => {
                    assert_eq!(a, b, "{name}");
                    assert_eq!(a, c, "{name}");
                }
                (a, b, _) => panic!(
                    "{name}: translate {:?} but translate_to_bytes {:?}",
                    a.map(|_| "ok"),
                    b.map(|_| "ok")
                ),
            }
        }
    }
    assert!(compared >= 200, "bundles compared: {compared}");
}
