//! DFT^P03 (post detail financial transactions) — the V2-to-FHIR IG has no
//! DFT map, so this follows what a US Core consumer expects:
//!
//! - a **ChargeItem** per FT1: code FT1-25 procedure (CPT/HCPCS), else FT1-7
//!   transaction code; CPT/HCPCS modifiers FT1-26 in the
//!   `urn:clinic-gateway:fhir:chargeitem-modifier` extension (R4 ChargeItem
//!   has no modifier element); quantity FT1-10; price FT1-11 (extended
//!   amount); occurrence FT1-4; entered FT1-5; performer FT1-20; enterer
//!   FT1-21 (ordered by); status from FT1-6 (CG → billable, CD/CR →
//!   aborted, PY/AJ → billed); the encounter (PV1) as `context`; diagnoses
//!   FT1-19 as `reason`, and the DG1 Conditions with the same codes as
//!   `supportingInformation`;
//! - an **Account** from PID-18 (patient account number), with the
//!   Coverages; each ChargeItem names it;
//! - **Coverage** per IN1, **Condition** per DG1 (shared with ADT).
//!
//! Key of a ChargeItem: FT1-2 transaction id, else FT1-1 set id + visit
//! number (PV1-19) + FT1-4 date.

use super::json::{json, Map, Value};

use super::adt::{map_conditions, map_coverages};
use super::bundle::Write;
use super::datatypes::{
    authority_key, codeable_concept, codeable_concepts, date_time, decimal, identifier,
    identifier_pair, put, sub, text, text_cow,
};
use super::encounter::map_encounter;
use super::shared::practitioner;
use super::tables::charge_item_status;
use super::{MapError, Mapper};
use hl7::Segment;

pub const MODIFIER_EXTENSION: &str = "urn:clinic-gateway:fhir:chargeitem-modifier";

/// PID-18 patient account number → an Account (`status`) of the patient
/// of `pid` naming `coverages`; a Reference to it. Shared with BAR.
pub fn map_account(
    m: &mut Mapper<'_, '_, '_>,
    pid: &Segment<'_, '_>,
    coverages: &[super::Rid],
    status: &'static str,
) -> Option<Value> {
    let patient = m.patient.clone()?;
    let acct = pid.field(18).repetition(1);
    let value = text(&acct.component(1));
    if value.is_empty() {
        return None;
    }
    let rid = m
        .bundle
        .shared_rid("Account", &[&authority_key(&acct.component(4)), &value]);
    let mut account = Map::new();
    account.insert("status", Value::from(status));
    account.insert("subject", json!([m.bundle.reference(&patient)]));
    let id = identifier(&acct, m.ctx);
    let match_id = id.as_ref().and_then(identifier_pair);
    put(
        &mut account,
        "identifier",
        id.map(|i| vec![Value::Object(i)]).unwrap_or_default(),
    );
    let coverage_refs: Vec<Value> = coverages
        .iter()
        .enumerate()
        .map(|(i, c)| json!({ "coverage": m.bundle.reference(c), "priority": i + 1 }))
        .collect();
    put(&mut account, "coverage", coverage_refs);
    let reference = m.bundle.reference(&rid);
    m.bundle.insert(rid, account, match_id, Write::Upsert);
    Some(reference)
}

pub fn map(m: &mut Mapper<'_, '_, '_>) -> Result<(), MapError> {
    let patient = m.require_patient()?;
    map_encounter(m, "P03")?;
    let conditions = map_conditions(m);
    let coverages = map_coverages(m);
    let msg = m.msg;
    let account = msg
        .segment("PID")
        .and_then(|pid| map_account(m, &pid, &coverages, "active"));
    let visit = msg
        .segment("PV1")
        .map(|pv1| text(&pv1.field(19).component(1)))
        .unwrap_or_default();
    let ft1s: Vec<Segment<'_, '_>> = msg.segments_named("FT1").collect();
    if ft1s.is_empty() {
        return Err(MapError::new(
            "FT1",
            "is missing: a DFT needs at least one transaction",
        ));
    }
    for (n, ft1) in ft1s.iter().enumerate() {
        let number = n + 1;
        let transaction_id = text(&ft1.field(2).component(1));
        let set_id = text(&ft1.field(1).component(1));
        let date = text(&ft1.field(4).component(1));
        let rid = if transaction_id.is_empty() {
            m.bundle
                .new_rid("ChargeItem", &["set", &patient.id, &visit, &set_id, &date])
        } else {
            m.bundle
                .new_rid("ChargeItem", &["transaction", &transaction_id])
        };
        let code = codeable_concept(&ft1.field(25).repetition(1), m.ctx)
            .or_else(|| codeable_concept(&ft1.field(7).repetition(1), m.ctx));
        let Some(code) = code else {
            return Err(MapError::new(
                format!("FT1({number})-7"),
                "is empty and so is FT1-25: cannot name the charge",
            ));
        };
        let mut charge = Map::new();
        charge.insert(
            "status",
            Value::from(charge_item_status(&text_cow(&ft1.field(6).component(1)))),
        );
        charge.insert("code", code);
        charge.insert("subject", m.bundle.reference(&patient));
        put(&mut charge, "context", m.encounter_ref());
        if !transaction_id.is_empty() {
            let system = format!(
                "{}:{}:ft1-transaction-id",
                super::systems::GATEWAY_URN,
                super::systems::urn_segment(&m.ctx.tenant)
            );
            charge.insert(
                "identifier",
                json!([{ "system": system, "value": transaction_id }]),
            );
        }
        put(&mut charge, "occurrenceDateTime", date_time(&date, m.ctx));
        put(
            &mut charge,
            "enteredDate",
            date_time(&text_cow(&ft1.field(5).component(1)), m.ctx),
        );
        if let Some(q) = decimal(&text_cow(&ft1.field(10).component(1))) {
            charge.insert("quantity", json!({ "value": q }));
        }
        // FT1-11 extended amount: CP = price (MO: quantity & denomination).
        let price = ft1.field(11).component(1);
        if let Some(value) = decimal(&sub(&price, 1)) {
            let currency = sub(&price, 2).to_ascii_uppercase();
            let currency = (currency.len() == 3
                && currency.bytes().all(|b| b.is_ascii_uppercase()))
            .then_some(currency);
            charge.insert(
                "priceOverride",
                json!({ "value": value, "currency": currency }),
            );
        }
        let modifiers: Vec<Value> = codeable_concepts(&ft1.field(26), m.ctx)
            .into_iter()
            .map(|c| json!({ "url": MODIFIER_EXTENSION, "valueCodeableConcept": c }))
            .collect();
        put(&mut charge, "extension", modifiers);
        if let Some(actor) = practitioner(m, &ft1.field(20).repetition(1)) {
            charge.insert("performer", json!([{ "actor": actor }]));
        }
        put(
            &mut charge,
            "enterer",
            practitioner(m, &ft1.field(21).repetition(1)),
        );
        let reasons = codeable_concepts(&ft1.field(19), m.ctx);
        let codes: Vec<String> = ft1
            .field(19)
            .repetitions()
            .map(|r| super::datatypes::fhir_code(&text_cow(&r.component(1))))
            .filter(|c| !c.is_empty())
            .collect();
        let supporting: Vec<Value> = conditions
            .iter()
            .filter(|c| codes.contains(&c.code))
            .map(|c| c.reference.clone())
            .collect();
        put(&mut charge, "reason", reasons);
        put(&mut charge, "supportingInformation", supporting);
        if let Some(a) = &account {
            charge.insert("account", json!([a]));
        }
        m.bundle.insert(rid, charge, None, Write::Upsert);
    }
    Ok(())
}
