//! OUL^R22 (specimen-oriented results), R23 (specimen/container) and R24
//! (order-oriented) → the same resources as an ORU (see [`super::oru`]):
//! per OBR a DiagnosticReport, an Observation per OBX, the Specimens, and
//! the order's ServiceRequest. The V2-to-FHIR IG has no OUL message map;
//! the segment maps are ORU's.
//!
//! The groups differ from ORU's: in R22/R23 the SPM (and its OBX, SAC,
//! INV) comes before the OBR it was taken for, and in every OUL the ORC
//! follows its OBR. So: an ORC right after an OBR belongs to it; an SPM
//! belongs to the current order when it has none yet (R24), else it waits
//! for the next OBR (R22/R23), as do OBX that come before any OBR (patient
//! and specimen observations: kept, as results of that order).

use super::encounter::map_encounter;
use super::oru::{add_note, map_order_group, OrderGroup};
use super::{MapError, Mapper};
use hl7::Segment;

pub fn map(m: &mut Mapper<'_, '_, '_>) -> Result<(), MapError> {
    m.require_patient()?;
    map_encounter(m, "R22")?;
    let msg = m.msg;
    let segments: Vec<Segment<'_, '_>> = msg.segments().collect();
    let groups = oul_groups(&segments);
    if groups.is_empty() {
        return Err(MapError::new(
            "OBR",
            "is missing: an OUL needs at least one order",
        ));
    }
    for g in &groups {
        map_order_group(m, g)?;
    }
    Ok(())
}

fn oul_groups<'m, 'a>(segments: &[Segment<'m, 'a>]) -> Vec<OrderGroup<'m, 'a>> {
    let mut groups: Vec<OrderGroup<'m, 'a>> = Vec::new();
    let mut pending_specimens = Vec::new();
    let mut pending_results = Vec::new();
    let mut previous = "";
    let mut obr_count = 0;
    let mut obx_count = 0;
    for seg in segments {
        match seg.id() {
            "OBR" => {
                obr_count += 1;
                groups.push(OrderGroup {
                    orc: None,
                    obr: Some(*seg),
                    obr_number: obr_count,
                    notes: Vec::new(),
                    results: std::mem::take(&mut pending_results),
                    specimens: std::mem::take(&mut pending_specimens),
                    diagnoses: Vec::new(),
                });
            }
            "ORC" => {
                if let Some(g) = groups.last_mut().filter(|g| g.orc.is_none()) {
                    g.orc = Some(*seg);
                }
            }
            "SPM" => match groups.last_mut() {
                Some(g) if g.specimens.is_empty() && previous != "SPM" => g.specimens.push(*seg),
                _ => pending_specimens.push(*seg),
            },
            "OBX" => {
                obx_count += 1;
                // OBX after an SPM that waits for its OBR wait with it.
                let waiting = !pending_specimens.is_empty();
                match groups.last_mut() {
                    Some(g) if !waiting => g.results.push((*seg, obx_count, Vec::new())),
                    _ => pending_results.push((*seg, obx_count, Vec::new())),
                }
            }
            "NTE" => add_note(groups.last_mut(), seg),
            _ => {}
        }
        previous = seg.id();
    }
    // Results after the last order's specimen: that order's.
    if let Some(g) = groups.last_mut() {
        g.results.append(&mut pending_results);
        g.specimens.append(&mut pending_specimens);
    }
    groups
}
