//! JSON pieces shared by several transactions: names (NM1/N1), addresses
//! (N3/N4), references (REF), dates (DTM/DTP), amounts (AMT), contacts
//! (PER), status (STC) and HL hierarchies.

use super::writer::JsonWriter;
use crate::codes;
use crate::decimal::Decimal;
use crate::reader::{first_parts, Elements, Segment};

/// Writes the fields of an NM1 (entity, name parts, id) into the open
/// object.
pub fn nm1_fields(w: &mut JsonWriter, e: &Elements<'_>) {
    w.field("entity", e.get(1));
    w.field("entity_type", e.get(2));
    if e.get(2) == b"1" {
        w.field("last_name", e.get(3));
        w.field("first_name", e.get(4));
        w.field("middle_name", e.get(5));
        w.field("suffix", e.get(7));
    } else {
        w.field("name", e.get(3));
    }
    w.field("id_qualifier", e.get(8));
    w.field("id", e.get(9));
}

/// Writes the fields of an N1 (entity, name, id) into the open object.
pub fn n1_fields(w: &mut JsonWriter, e: &Elements<'_>) {
    w.field("entity", e.get(1));
    w.field("name", e.get(2));
    w.field("id_qualifier", e.get(3));
    w.field("id", e.get(4));
}

/// Collects the segments that belong to an entity (name, address, refs,
/// contacts, demographics) and writes them as one object's fields.
#[derive(Default)]
pub struct Entity<'a> {
    /// NM1 or N1.
    pub name: Option<Segment<'a>>,
    /// N3.
    pub street: Option<Segment<'a>>,
    /// N4.
    pub city: Option<Segment<'a>>,
    /// REF segments.
    pub refs: Vec<Segment<'a>>,
    /// PER segments.
    pub contacts: Vec<Segment<'a>>,
    /// DMG.
    pub demographics: Option<Segment<'a>>,
    /// PRV.
    pub provider: Option<Segment<'a>>,
}

impl<'a> Entity<'a> {
    /// Takes `seg` when it belongs to an entity; false otherwise.
    pub fn take(&mut self, seg: Segment<'a>) -> bool {
        match seg.id() {
            b"N3" if self.street.is_none() => self.street = Some(seg),
            b"N4" if self.city.is_none() => self.city = Some(seg),
            b"REF" => self.refs.push(seg),
            b"PER" => self.contacts.push(seg),
            b"DMG" if self.demographics.is_none() => self.demographics = Some(seg),
            b"PRV" if self.provider.is_none() => self.provider = Some(seg),
            _ => return false,
        }
        true
    }

    /// Writes the entity's fields into the open object.
    pub fn write_fields(&self, w: &mut JsonWriter) {
        if let Some(n) = &self.name {
            let e = n.elements();
            if n.id() == b"N1" {
                n1_fields(w, &e);
            } else {
                nm1_fields(w, &e);
            }
        }
        if let Some(p) = &self.provider {
            let e = p.elements();
            w.field("provider_code", e.get(1));
            w.field("taxonomy", e.get(3));
        }
        if self.street.is_some() || self.city.is_some() {
            w.object_field("address");
            if let Some(s) = &self.street {
                let e = s.elements();
                w.field("line1", e.get(1));
                w.field("line2", e.get(2));
            }
            if let Some(c) = &self.city {
                let e = c.elements();
                w.field("city", e.get(1));
                w.field("state", e.get(2));
                w.field("postal_code", e.get(3));
                w.field("country", e.get(4));
            }
            w.end_object();
        }
        if let Some(d) = &self.demographics {
            let e = d.elements();
            w.field_date("birth_date", e.get(2));
            w.field("gender", e.get(3));
        }
        references(w, &self.refs);
        contacts(w, &self.contacts);
    }
}

/// `"references":[{"qualifier","value"}]` for REF segments (omitted when
/// none).
pub fn references<'s, 'a: 's>(w: &mut JsonWriter, refs: impl IntoIterator<Item = &'s Segment<'a>>) {
    let mut refs = refs.into_iter().peekable();
    if refs.peek().is_none() {
        return;
    }
    w.array_field("references");
    for r in refs {
        let e = r.elements();
        w.begin_object();
        w.field("qualifier", e.get(1));
        w.field("value", e.get(2));
        w.field("description", e.get(3));
        w.end_object();
    }
    w.end_array();
}

/// `"contacts":[{"function","name","communications":[...]}]` for PER.
pub fn contacts(w: &mut JsonWriter, pers: &[Segment<'_>]) {
    if pers.is_empty() {
        return;
    }
    w.array_field("contacts");
    for p in pers {
        let e = p.elements();
        w.begin_object();
        w.field("function", e.get(1));
        w.field("name", e.get(2));
        w.array_field("communications");
        for i in [3, 5, 7] {
            if !e.get(i).is_empty() || !e.get(i + 1).is_empty() {
                w.begin_object();
                w.field("qualifier", e.get(i));
                w.field("number", e.get(i + 1));
                w.end_object();
            }
        }
        w.end_array();
        w.end_object();
    }
    w.end_array();
}

/// `"dates":[{"qualifier","date"|"from"/"to"}]` for DTM (835: qualifier,
/// date) and DTP (qualifier, format, value) segments.
pub fn dates<'s, 'a: 's>(w: &mut JsonWriter, segs: impl IntoIterator<Item = &'s Segment<'a>>) {
    let mut segs = segs.into_iter().peekable();
    if segs.peek().is_none() {
        return;
    }
    w.array_field("dates");
    for s in segs {
        let e = s.elements();
        w.begin_object();
        w.field("qualifier", e.get(1));
        if s.id() == b"DTP" {
            date_value(w, e.get(2), e.get(3));
        } else {
            w.field_date("date", e.get(2));
            w.field("time", e.get(3));
        }
        w.end_object();
    }
    w.end_array();
}

/// A DTP-style value: `D8` → `"date"`, `RD8` → `"from"`/`"to"`, else the
/// format and the value as sent.
pub fn date_value(w: &mut JsonWriter, format: &[u8], v: &[u8]) {
    match format {
        b"D8" => w.field_date("date", v),
        b"RD8" => {
            let (from, to) = match memchr::memchr(b'-', v) {
                Some(i) => (&v[..i], &v[i + 1..]),
                None => (v, &[][..]),
            };
            w.field_date("from", from);
            w.field_date("to", to);
        }
        _ => {
            w.field("format", format);
            w.field("value", v);
        }
    }
}

/// `"amounts":[{"qualifier","amount"}]` for AMT segments.
pub fn amounts<'s, 'a: 's>(w: &mut JsonWriter, segs: impl IntoIterator<Item = &'s Segment<'a>>) {
    let mut segs = segs.into_iter().peekable();
    if segs.peek().is_none() {
        return;
    }
    w.array_field("amounts");
    for s in segs {
        let e = s.elements();
        w.begin_object();
        w.field("qualifier", e.get(1));
        w.field("amount", e.get(2));
        w.end_object();
    }
    w.end_array();
}

/// One STC segment as a status object: the category/status/entity
/// composites (STC01, STC10, STC11) with the category's meaning, the
/// effective date, action code, amounts.
pub fn status(w: &mut JsonWriter, stc: &Segment<'_>) {
    let e = stc.elements();
    w.begin_object();
    w.array_field("codes");
    for n in [1, 10, 11] {
        let category = e.component(n, 1);
        if category.is_empty() {
            continue;
        }
        w.begin_object();
        w.field("category", category);
        w.field_text("category_text", codes::claim_status_category_text(category));
        w.field("status", e.component(n, 2));
        w.field("entity", e.component(n, 3));
        w.field("code_list", e.component(n, 4));
        w.end_object();
    }
    w.end_array();
    w.field_date("effective_date", e.get(2));
    w.field("action", e.get(3));
    w.field("amount", e.get(4));
    w.field("paid_amount", e.get(5));
    w.field_date("paid_date", e.get(6));
    w.field("payment_method", e.get(7));
    w.field("check_number", e.get(9));
    w.field("message", e.get(12));
    w.end_object();
}

/// A verdict from STC categories: `rejected` when any is A3, A4, A6, A7,
/// A8 or E0-E4 (or a finalized denial F2), `accepted` when any is A0, A1,
/// A2 or A5, `finalized` for F0/F1/F3/F4, `pending` for P*, else `other`.
pub fn verdict<'s>(stcs: impl Iterator<Item = &'s Segment<'s>>) -> &'static str {
    let mut accepted = false;
    let mut finalized = false;
    let mut pending = false;
    for s in stcs {
        let e = s.elements();
        for n in [1, 10, 11] {
            match e.component(n, 1) {
                b"A3" | b"A4" | b"A6" | b"A7" | b"A8" | b"E0" | b"E1" | b"E2" | b"E3" | b"E4"
                | b"F2" => return "rejected",
                b"A0" | b"A1" | b"A2" | b"A5" => accepted = true,
                b"F0" | b"F1" | b"F3" | b"F3F" | b"F3N" | b"F4" => finalized = true,
                c if c.first() == Some(&b'P') => pending = true,
                _ => {}
            }
        }
    }
    if finalized {
        "finalized"
    } else if accepted {
        "accepted"
    } else if pending {
        "pending"
    } else {
        "other"
    }
}

/// An HL hierarchy over a set's segments: each node is an HL and the
/// segments up to the next HL.
pub struct Hierarchy<'a> {
    /// Every segment of the body.
    pub segments: Vec<Segment<'a>>,
    /// Nodes in file order.
    pub nodes: Vec<Node>,
    /// Index of the first HL (segments before it are the header).
    pub first_hl: usize,
}

/// One HL node.
pub struct Node {
    /// Index of its HL in `segments`.
    pub start: usize,
    /// One past its last segment.
    pub end: usize,
    /// Index of its parent in `nodes` (None for roots and for a parent
    /// id that does not precede it).
    pub parent: Option<usize>,
    /// Its children, in order.
    pub children: Vec<usize>,
}

impl<'a> Hierarchy<'a> {
    /// Builds the hierarchy of `segments`.
    pub fn new(segments: Vec<Segment<'a>>) -> Self {
        let mut nodes: Vec<Node> = Vec::new();
        let mut ids: Vec<&'a [u8]> = Vec::new();
        let mut first_hl = segments.len();
        for (i, s) in segments.iter().enumerate() {
            if s.id() != b"HL" {
                continue;
            }
            if let Some(last) = nodes.last_mut() {
                last.end = i;
            } else {
                first_hl = i;
            }
            let e = s.elements();
            let parent_id = e.get(2);
            let parent = if parent_id.is_empty() {
                None
            } else {
                ids.iter().rposition(|id| *id == parent_id)
            };
            let index = nodes.len();
            if let Some(p) = parent {
                nodes[p].children.push(index);
            }
            ids.push(e.get(1));
            nodes.push(Node {
                start: i,
                end: segments.len(),
                parent,
                children: Vec::new(),
            });
        }
        Hierarchy {
            segments,
            nodes,
            first_hl,
        }
    }

    /// The roots (nodes without a parent), in order.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].parent.is_none())
    }

    /// The HL level code (HL03) of a node.
    pub fn level(&self, node: usize) -> &'a [u8] {
        self.segments[self.nodes[node].start].element(3)
    }

    /// A node's own segments after its HL.
    pub fn own(&self, node: usize) -> &[Segment<'a>] {
        let n = &self.nodes[node];
        &self.segments[n.start + 1..n.end]
    }
}

/// A name for an entity identifier code (NM101/N101), for the common ones.
pub fn role_name(code: &[u8]) -> Option<&'static str> {
    Some(match code {
        b"03" => "dependent",
        b"1P" => "provider",
        b"2B" => "third_party_administrator",
        b"36" => "employer",
        b"40" => "receiver",
        b"41" => "submitter",
        b"45" => "drop_off_location",
        b"71" => "attending_provider",
        b"72" => "operating_provider",
        b"74" => "corrected_insured",
        b"77" => "service_facility",
        b"82" => "rendering_provider",
        b"85" => "billing_provider",
        b"87" => "pay_to_provider",
        b"AY" => "clearinghouse",
        b"DK" => "ordering_provider",
        b"DN" => "referring_provider",
        b"DQ" => "supervising_provider",
        b"FA" => "facility",
        b"GB" => "other_insured",
        b"GP" => "gateway_provider",
        b"IL" => "subscriber",
        b"P3" => "primary_care_provider",
        b"P5" => "plan_sponsor",
        b"PE" => "payee",
        b"PR" => "payer",
        b"PW" => "pickup_location",
        b"QC" => "patient",
        b"QD" => "responsible_party",
        b"TT" => "transfer_to",
        b"ZZ" => "other",
        _ => return None,
    })
}

/// Writes `"entities":[...]`: one object per NM1/N1 in `segs`, with the
/// N3/N4/REF/PER/DMG/PRV that follow it. Omitted when there is none.
pub fn entities(w: &mut JsonWriter, segs: &[Segment<'_>]) {
    let mut list: Vec<Entity<'_>> = Vec::new();
    let mut open = false;
    let mut pending_prv = None;
    for s in segs {
        match s.id() {
            b"NM1" | b"N1" => {
                list.push(Entity {
                    name: Some(*s),
                    provider: pending_prv.take(),
                    ..Entity::default()
                });
                open = true;
            }
            // 837 billing provider: PRV comes before its NM1.
            b"PRV" if !open => pending_prv = Some(*s),
            _ => {
                let taken = match list.last_mut() {
                    Some(e) if open => e.take(*s),
                    _ => false,
                };
                if !taken {
                    open = false;
                }
            }
        }
    }
    if list.is_empty() {
        return;
    }
    w.array_field("entities");
    for e in &list {
        w.begin_object();
        if let Some(n) = &e.name {
            w.field_text("role", role_name(n.element(1)));
        }
        e.write_fields(w);
        w.end_object();
    }
    w.end_array();
}

/// Writes one HL node's own fields: (writer, HL03 level, its segments).
pub type NodeBody<'f> = dyn FnMut(&mut JsonWriter, &[u8], &[Segment<'_>]) + 'f;

/// Writes `"hierarchy":[...]`: the HL tree, depth first, without
/// recursion (a hostile file may chain any number of levels). Each node is
/// `{"hl","parent","level","level_name", ...body..., "children":[...]}`;
/// `body` writes a node's own fields from its level (HL03) and its
/// segments after the HL.
pub fn write_tree(
    w: &mut JsonWriter,
    tree: &Hierarchy<'_>,
    level_name: fn(&[u8]) -> Option<&'static str>,
    body: &mut NodeBody<'_>,
) {
    let open = |w: &mut JsonWriter, body: &mut NodeBody<'_>, n: usize| {
        let hl = tree.segments[tree.nodes[n].start].elements();
        w.begin_object();
        w.field("hl", hl.get(1));
        w.field("parent", hl.get(2));
        w.field("level", hl.get(3));
        w.field_text("level_name", level_name(hl.get(3)));
        body(w, hl.get(3), tree.own(n));
        w.array_field("children");
    };
    w.array_field("hierarchy");
    for root in tree.roots() {
        open(w, body, root);
        let mut stack = vec![(root, 0usize)];
        while let Some(top) = stack.last_mut() {
            let (n, next) = *top;
            if let Some(&child) = tree.nodes[n].children.get(next) {
                top.1 += 1;
                open(w, body, child);
                stack.push((child, 0));
            } else {
                w.end_array();
                w.end_object();
                stack.pop();
            }
        }
    }
    w.end_array();
}

/// Splits `segs` at every segment whose id is `trigger`: the part before
/// the first one, then each part starting with one.
pub fn split_at<'s, 'a>(
    segs: &'s [Segment<'a>],
    trigger: &[u8],
) -> (&'s [Segment<'a>], Vec<&'s [Segment<'a>]>) {
    let starts: Vec<usize> = segs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.id() == trigger)
        .map(|(i, _)| i)
        .collect();
    let Some(&first) = starts.first() else {
        return (segs, Vec::new());
    };
    let mut parts = Vec::with_capacity(starts.len());
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(segs.len());
        parts.push(&segs[s..end]);
    }
    (&segs[..first], parts)
}

/// The segments of `segs` with id `id`.
pub fn pick<'a, const N: usize>(segs: &[Segment<'a>], id: &'static [u8; N]) -> Vec<Segment<'a>> {
    with_id(segs, id).copied().collect()
}

/// The segments of `segs` with id `id`, without collecting them (the id
/// is a fixed-size literal, so the comparison is inlined).
pub fn with_id<'s, 'a, const N: usize>(
    segs: &'s [Segment<'a>],
    id: &'static [u8; N],
) -> impl Iterator<Item = &'s Segment<'a>> + Clone {
    segs.iter().filter(move |s| s.has_id(id))
}

/// A composite procedure (SVC01, SV101, SV202, ...): qualifier, code,
/// modifiers (components 3-6), description (component 7).
pub fn procedure(w: &mut JsonWriter, key: &str, e: &Elements<'_>, n: usize) {
    let [qualifier, code, mods @ .., description] =
        first_parts::<7>(e.get(n), e.separators().component);
    w.object_field(key);
    w.field("qualifier", qualifier);
    w.field("code", code);
    if mods.iter().any(|m| !m.is_empty()) {
        w.array_field("modifiers");
        for m in mods.iter().filter(|m| !m.is_empty()) {
            w.string(m);
        }
        w.end_array();
    }
    w.field("description", description);
    w.end_object();
}

/// `"adjustments":[{"group","group_text","reason","amount","quantity"}]`,
/// one item per CAS reason triplet.
pub fn adjustments<'s, 'a: 's>(w: &mut JsonWriter, cas: impl IntoIterator<Item = &'s Segment<'a>>) {
    adjustments_with_totals(w, cas, |_| {});
}

/// [`adjustments`], passing each CAS segment's total (the sum of its
/// amounts that are decimals, as [`crate::reconcile::cas_total`]) to
/// `total`, so the 835 balances without reading the amounts twice.
pub fn adjustments_with_totals<'s, 'a: 's>(
    w: &mut JsonWriter,
    cas: impl IntoIterator<Item = &'s Segment<'a>>,
    mut total: impl FnMut(Decimal),
) {
    w.array_field("adjustments");
    for c in cas {
        let e = c.elements();
        let group = e.get(1);
        let group_text = codes::cas_group_text(group);
        let mut sum = Decimal::ZERO;
        let count = e.len();
        for k in 0..6 {
            let base = 2 + 3 * k;
            if base > count {
                // This triplet and the ones after it are absent.
                break;
            }
            let (reason, amount) = (e.get(base), e.get(base + 1));
            if reason.is_empty() && amount.is_empty() {
                continue;
            }
            if !amount.is_empty() {
                if let Some(s) = Decimal::parse(amount).and_then(|d| sum.checked_add(d)) {
                    sum = s;
                }
            }
            w.begin_object();
            w.field("group", group);
            w.field_text("group_text", group_text);
            w.field("reason", reason);
            w.field("amount", amount);
            w.field("quantity", e.get(base + 2));
            w.end_object();
        }
        total(sum);
    }
    w.end_array();
}
