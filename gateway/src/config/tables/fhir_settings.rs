//! A `fhir` destination's mapping settings: tenant, update mode, identifier
//! systems, code maps (loaded by `resolve`), default UTC offset, the
//! Provenance switch. Part of `[[destination]]`.

use super::destination::RawDestination;
use crate::config::check::{each, maybe, Check};
use crate::config::model::FhirSettings;
use crate::config::stage::Checked;

pub(super) fn settings(
    name: &str,
    d: &RawDestination,
    cx: &mut Check<'_>,
) -> Option<FhirSettings<Checked>> {
    let tenant = match &d.tenant {
        None => Some("default".to_string()),
        Some(t) => {
            let v = t.get_ref();
            let ok = !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if ok {
                Some(v.clone())
            } else {
                cx.fail(
                    t,
                    format!("destination '{name}': tenant '{v}' must be letters, digits, '-' or '.' (it is part of every resource id)"),
                )
            }
        }
    };
    // (conditional, merge)
    let update = match &d.update {
        None => Some((false, false)),
        Some(u) => match u.get_ref().as_str() {
            "put" => Some((false, false)),
            "conditional" => Some((true, false)),
            "merge" => Some((false, true)),
            other => cx.fail(
                u,
                format!("destination '{name}': update \"{other}\" is not \"put\" (PUT Type/id), \"conditional\" (PUT Type?identifier=...) or \"merge\" (read the Patient, merge, PUT with If-Match)"),
            ),
        },
    };
    let identifier_systems = each(&d.identifier_systems, |(authority, uri)| {
        let u = uri.get_ref();
        if u.starts_with("http://") || u.starts_with("https://") || u.starts_with("urn:") {
            Some((authority.clone(), u.clone()))
        } else {
            cx.fail(
                uri,
                format!("destination '{name}': identifier system for '{authority}' must be a URI (http(s):// or urn:), got '{u}'"),
            )
        }
    });
    let code_maps_dir = d.code_maps.as_ref().map(|c| {
        let dir = cx.path(c.get_ref());
        cx.at(c, dir, format!("destination '{name}': code_maps"))
    });
    let utc_offset = maybe(d.utc_offset.as_ref(), |o| {
        let v = o.get_ref();
        let b = v.as_bytes();
        let ok = b.len() == 6
            && (b[0] == b'+' || b[0] == b'-')
            && b[3] == b':'
            && [1, 2, 4, 5].iter().all(|&i| b[i].is_ascii_digit());
        if ok {
            Some(v.clone())
        } else {
            cx.fail(
                o,
                format!("destination '{name}': utc_offset '{v}' must look like \"-05:00\""),
            )
        }
    });
    Some(FhirSettings {
        tenant: tenant?,
        conditional: update?.0,
        merge: update?.1,
        identifier_systems: identifier_systems?,
        code_maps_dir,
        utc_offset: utc_offset?,
        provenance: d.provenance.as_ref().is_none_or(|p| *p.get_ref()),
    })
}
