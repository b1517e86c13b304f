//! Resources many segments point at: Practitioner (XCN), Organization
//! (XON, or a name and an id), Location (PL). Each becomes one entry per
//! bundle whatever the number of segments that name it (the bundle merges
//! entries with the same id), and is written create-only in conditional
//! mode: the server may know more about a doctor than one message does.

use super::json::{json, Map, Value};

use super::bundle::Write;
use super::datatypes::{
    authority_key, concept, hd, identifier_pair, put, sub, text, text_cow, xcn_name,
};
use super::Mapper;
use hl7::{Field, Repetition};

pub const US_CORE_PRACTITIONER: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-practitioner";
pub const US_CORE_ORGANIZATION: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-organization";
pub const US_CORE_LOCATION: &str =
    "http://hl7.org/fhir/us/core/StructureDefinition/us-core-location";
pub const NPI_SYSTEM: &str = "http://hl7.org/fhir/sid/us-npi";

/// `meta.profile` with one profile.
pub fn meta(profile: &'static str) -> Value {
    json!({ "profile": [profile] })
}

/// XCN → a Practitioner entry; returns a Reference to it (`None` when the
/// XCN has neither an id nor a name).
pub fn practitioner(m: &mut Mapper<'_, '_, '_>, xcn: &Repetition<'_>) -> Option<Value> {
    let id_value = text(&xcn.component(1));
    let authority = xcn.component(9);
    let id_type = text(&xcn.component(13));
    // The id first: a doctor named in every OBX is built once.
    let rid = if id_value.is_empty() {
        let family = sub(&xcn.component(2), 1);
        let given = text_cow(&xcn.component(3));
        let middle = text_cow(&xcn.component(4));
        if family.is_empty() && given.is_empty() && middle.is_empty() {
            // No id and no name (what `xcn_name` needs): nobody.
            return None;
        }
        m.bundle
            .shared_rid("Practitioner", &["name", &family, &given, &middle])
    } else {
        let auth = authority_key(&authority);
        m.bundle
            .shared_rid("Practitioner", &["id", &auth, &id_type, &id_value])
    };
    let reference = m.bundle.reference(&rid);
    if m.bundle.contains(&rid) {
        return Some(reference);
    }
    let name = xcn_name(xcn);
    let (namespace, universal, utype) = hd(&authority);
    let identifier = (!id_value.is_empty()).then(|| {
        let system = if id_type.eq_ignore_ascii_case("NPI") || namespace.eq_ignore_ascii_case("NPI")
        {
            NPI_SYSTEM.to_string()
        } else {
            m.ctx
                .identifier_systems
                .system_for(&m.ctx.tenant, &namespace, &universal, &utype)
        };
        let mut id = Map::new();
        id.insert("system", Value::from(system));
        id.insert("value", Value::from(&id_value));
        id
    });
    let mut resource = Map::new();
    if identifier.is_some() && name.is_some() {
        resource.insert("meta", meta(US_CORE_PRACTITIONER));
    }
    let match_id = identifier.as_ref().and_then(identifier_pair);
    put(
        &mut resource,
        "identifier",
        identifier
            .map(|i| vec![Value::Object(i)])
            .unwrap_or_default(),
    );
    put(
        &mut resource,
        "name",
        name.map(|n| vec![n]).unwrap_or_default(),
    );
    m.bundle.insert(rid, resource, match_id, Write::CreateOnly);
    Some(reference)
}

/// Every repetition of an XCN field as Practitioner references.
pub fn practitioners(m: &mut Mapper<'_, '_, '_>, field: &Field<'_>) -> Vec<Value> {
    field
        .repetitions()
        .filter_map(|r| practitioner(m, &r))
        .collect()
}

/// An Organization from a name and an optional identifier (system,
/// value); returns a Reference. Keyed by the identifier, else the name.
pub fn organization(
    m: &mut Mapper<'_, '_, '_>,
    name: &str,
    identifier: Option<(String, String)>,
) -> Option<Value> {
    let name = name.trim();
    let identifier = identifier.filter(|(_, v)| !v.trim().is_empty());
    let rid = match &identifier {
        Some((system, value)) => m.bundle.shared_rid("Organization", &["id", system, value]),
        None if name.is_empty() => return None,
        None => m.bundle.shared_rid("Organization", &["name", name]),
    };
    let reference = m.bundle.reference(&rid);
    if m.bundle.contains(&rid) {
        return Some(reference);
    }
    let mut resource = Map::new();
    if let Some((system, value)) = &identifier {
        resource.insert("identifier", json!([{ "system": system, "value": value }]));
    }
    if !name.is_empty() {
        resource.insert("meta", meta(US_CORE_ORGANIZATION));
        resource.insert("active", Value::Bool(true));
        resource.insert("name", Value::from(name.to_string()));
    }
    m.bundle
        .insert(rid, resource, identifier, Write::CreateOnly);
    Some(reference)
}

/// An Organization identified within an HD authority (namespace,
/// universal id, type), e.g. an insurer's IN1-3 id.
pub fn organization_in(
    m: &mut Mapper<'_, '_, '_>,
    name: &str,
    id_value: &str,
    authority: (&str, &str, &str),
) -> Option<Value> {
    let identifier = (!id_value.trim().is_empty()).then(|| {
        (
            m.ctx.identifier_systems.system_for(
                &m.ctx.tenant,
                authority.0,
                authority.1,
                authority.2,
            ),
            id_value.trim().to_string(),
        )
    });
    organization(m, name, identifier)
}

/// XON (name ^ type ^ id (v2.3) ^ ... ^ authority (6) ^ ... ^ identifier (10)).
pub fn organization_from_xon(m: &mut Mapper<'_, '_, '_>, xon: &Repetition<'_>) -> Option<Value> {
    let name = text(&xon.component(1));
    let mut id_value = text(&xon.component(10));
    if id_value.is_empty() {
        id_value = text(&xon.component(3));
    }
    let (ns, uid, utype) = hd(&xon.component(6));
    organization_in(m, &name, &id_value, (&ns, &uid, &utype))
}

/// PL (point of care ^ room ^ bed ^ facility ^ status ^ type ^ building ^
/// floor ^ description) → a Location named by its parts, most general
/// first; returns a Reference.
pub fn location(m: &mut Mapper<'_, '_, '_>, pl: &Repetition<'_>) -> Option<Value> {
    let facility = {
        let (ns, uid, _) = hd(&pl.component(4));
        if ns.is_empty() {
            uid
        } else {
            ns
        }
    };
    let point_of_care = sub(&pl.component(1), 1);
    let room = sub(&pl.component(2), 1);
    let bed = sub(&pl.component(3), 1);
    let building = sub(&pl.component(7), 1);
    let floor = sub(&pl.component(8), 1);
    let parts = [
        facility.as_str(),
        building.as_str(),
        floor.as_str(),
        point_of_care.as_str(),
        room.as_str(),
        bed.as_str(),
    ];
    if parts.iter().all(|p| p.is_empty()) {
        return None;
    }
    let rid = m.bundle.shared_rid("Location", &parts);
    let reference = m.bundle.reference(&rid);
    if m.bundle.contains(&rid) {
        return Some(reference);
    }
    let name = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" / ");
    let physical = if !bed.is_empty() {
        Some(("bd", "Bed"))
    } else if !room.is_empty() {
        Some(("ro", "Room"))
    } else if !point_of_care.is_empty() {
        Some(("wa", "Ward"))
    } else if !floor.is_empty() {
        Some(("lvl", "Level"))
    } else if !building.is_empty() {
        Some(("bu", "Building"))
    } else {
        Some(("si", "Site"))
    };
    let mut resource = Map::new();
    resource.insert("meta", meta(US_CORE_LOCATION));
    resource.insert("name", Value::from(name));
    resource.insert("mode", Value::from("instance"));
    put(&mut resource, "description", text(&pl.component(9)));
    if let Some((code, display)) = physical {
        resource.insert(
            "physicalType",
            concept(
                "http://terminology.hl7.org/CodeSystem/location-physical-type",
                code,
                display,
            ),
        );
    }
    m.bundle.insert(rid, resource, None, Write::CreateOnly);
    Some(reference)
}
