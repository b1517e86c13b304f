//! HL7 v2 data types → FHIR data types, after the V2-to-FHIR IG's data type
//! maps: TS/DTM/DT → dateTime/date/instant, CX → Identifier, XPN →
//! HumanName, XAD → Address, XTN → ContactPoint, CWE/CE/CNE → CodeableConcept,
//! ED/RP → Attachment, NM → decimal. Resource-making types (XCN →
//! Practitioner, PL → Location, XON → Organization) are in
//! [`super::shared`], because they add entries to the bundle.
//!
//! Every function is total: a malformed value gives `None` (or is left out),
//! never a panic and never invalid FHIR.

use std::borrow::Cow;

use super::json::{json, Decimal, Map, Number, Value};

use super::systems::{coding_system_uri, local_code_system};
use super::MapContext;
use hl7::{Component, Field, Repetition};

/// Decoded, trimmed text of a component.
pub fn text(c: &Component<'_>) -> String {
    text_cow(c).into_owned()
}

/// [`text`] without a copy when the component needs no decoding (most
/// do): for values that are only looked at, not kept.
pub fn text_cow<'a>(c: &Component<'a>) -> Cow<'a, str> {
    match c.text() {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) if s.trim().len() == s.len() => Cow::Owned(s),
        Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
    }
}

/// Decoded, trimmed text of subcomponent `n` of a component.
pub fn sub(c: &Component<'_>, n: usize) -> String {
    c.subcomponent(n).text().trim().to_string()
}

/// A FHIR `code`: no leading/trailing whitespace, single inner spaces.
pub fn fhir_code(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Inserts `value` under `key` unless it is empty.
pub fn put(map: &mut Map, key: &'static str, value: impl Into<Value>) {
    let value = value.into();
    if !super::bundle::is_empty_value(&value) {
        map.insert(key, value);
    }
}

// ---------------------------------------------------------------- dates

/// The parts of an HL7 TS/DTM: `YYYY[MM[DD[HH[MM[SS[.S{1,4}]]]]]][+/-ZZZZ]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Timestamp<'s> {
    digits: &'s str,
    fraction: &'s str,
    /// "+hh:mm" / "-hh:mm".
    offset: Option<String>,
}

fn parse_ts(raw: &str) -> Option<Timestamp<'_>> {
    let raw = raw.trim();
    let (body, offset) = match raw.find(['+', '-']) {
        Some(i) => (raw.get(..i)?, Some(raw.get(i..)?)),
        None => (raw, None),
    };
    let (digits, fraction) = match body.split_once('.') {
        Some((d, f)) => (d, f),
        None => (body, ""),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || !matches!(digits.len(), 4 | 6 | 8 | 10 | 12 | 14)
        || (!fraction.is_empty() && (digits.len() != 14 || fraction.len() > 9))
        || (body.contains('.') && fraction.is_empty())
    {
        return None;
    }
    let num = |a: usize, b: usize| digits.get(a..b).and_then(|s| s.parse::<u32>().ok());
    let year = num(0, 4)?;
    if year == 0 {
        return None;
    }
    if digits.len() >= 6 && !(1..=12).contains(&num(4, 6)?) {
        return None;
    }
    if digits.len() >= 8 {
        let day = num(6, 8)?;
        if day == 0 || day > days_in_month(year, num(4, 6)?) {
            return None;
        }
    }
    if digits.len() >= 10 && num(8, 10)? > 23 {
        return None;
    }
    if digits.len() >= 12 && num(10, 12)? > 59 {
        return None;
    }
    if digits.len() >= 14 && num(12, 14)? > 59 {
        return None;
    }
    let offset = match offset {
        None => None,
        Some(o) => Some(parse_offset(o)?),
    };
    Some(Timestamp {
        digits,
        fraction,
        offset,
    })
}

/// Days in a month of the Gregorian calendar.
pub fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `+hhmm` → `+hh:mm`, within FHIR's range (-14:00..+14:00).
fn parse_offset(o: &str) -> Option<String> {
    let sign = o.get(..1)?;
    let rest = o.get(1..)?;
    if rest.len() != 4 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: u32 = rest.get(..2)?.parse().ok()?;
    let minutes: u32 = rest.get(2..)?.parse().ok()?;
    if minutes > 59 || hours > 14 || (hours == 14 && minutes > 0) {
        return None;
    }
    Some(format!("{sign}{:02}:{:02}", hours, minutes))
}

/// A validated `+hh:mm` offset from configuration.
pub fn valid_offset(o: &str) -> bool {
    let compact: String = o.chars().filter(|c| *c != ':').collect();
    parse_offset(&compact).is_some()
}

/// HL7 TS → FHIR `dateTime`, keeping the precision sent. A time needs an
/// offset in FHIR: the message's, else `ctx.default_utc_offset`, else the
/// value is cut to its date (the time cannot be placed on the time line).
pub fn date_time(raw: &str, ctx: &MapContext) -> Option<String> {
    let ts = parse_ts(raw)?;
    let d = ts.digits;
    let part = |a: usize, b: usize| d.get(a..b).unwrap_or("00");
    // Built in one buffer, precision by precision: this runs for every date.
    let mut out = String::with_capacity(32);
    out.push_str(part(0, 4));
    for (len, start) in [(4, 4), (6, 6)] {
        if d.len() == len {
            return Some(out);
        }
        out.push('-');
        out.push_str(part(start, start + 2));
    }
    if d.len() == 8 {
        return Some(out);
    }
    let offset = ts.offset.or_else(|| {
        ctx.default_utc_offset
            .as_deref()
            .map(|o| o.chars().filter(|c| *c != ':').collect::<String>())
            .and_then(|o| parse_offset(&o))
    });
    let Some(offset) = offset else {
        return Some(out);
    };
    let minutes = if d.len() >= 12 { part(10, 12) } else { "00" };
    let seconds = if d.len() >= 14 { part(12, 14) } else { "00" };
    for (separator, value) in [("T", part(8, 10)), (":", minutes), (":", seconds)] {
        out.push_str(separator);
        out.push_str(value);
    }
    if !ts.fraction.is_empty() {
        out.push('.');
        out.push_str(ts.fraction);
    }
    out.push_str(&offset);
    Some(out)
}

/// HL7 TS/DT → FHIR `date` (the date part, at the precision sent).
pub fn date(raw: &str) -> Option<String> {
    let ts = parse_ts(raw)?;
    let d = ts.digits;
    let part = |a: usize, b: usize| d.get(a..b).unwrap_or("00");
    Some(match d.len() {
        4 => d.to_string(),
        6 => format!("{}-{}", part(0, 4), part(4, 6)),
        _ => format!("{}-{}-{}", part(0, 4), part(4, 6), part(6, 8)),
    })
}

/// HL7 TS → FHIR `instant`: only when the value is precise to the second
/// and placed on the time line (offset sent or configured).
pub fn instant(raw: &str, ctx: &MapContext) -> Option<String> {
    let ts = parse_ts(raw)?;
    if ts.digits.len() < 14 {
        return None;
    }
    date_time(raw, ctx).filter(|s| s.contains('T'))
}

/// A Period from two TS values.
pub fn period(start: &str, end: &str, ctx: &MapContext) -> Value {
    json!({ "start": date_time(start, ctx), "end": date_time(end, ctx) })
}

// ---------------------------------------------------------------- numbers

/// HL7 NM → a FHIR decimal written exactly as received, never through
/// f64: `5.50` stays `5.50`, `1234567890.123456789` keeps every digit.
/// Normalised as JSON requires: a leading `+` and leading zeros go (`+007.10`
/// → `7.10`), a leading `.` gets its zero (`.5` → `0.5`, `-.5` → `-0.5`),
/// a trailing `.` goes (`5.` → `5`). `None` when not an NM: letters,
/// exponents (`1e3`: HL7's NM has none; the caller keeps the text, e.g. as
/// valueString), two points, no digit.
pub fn decimal(raw: &str) -> Option<Value> {
    let s = raw.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if !digits(int)
        || !frac.is_none_or(digits)
        || (int.is_empty() && frac.is_none_or(str::is_empty))
    {
        return None;
    }
    let trimmed = int.trim_start_matches('0');
    let normal = !s.starts_with('+')
        && (trimmed.len() == int.len() || int == "0")
        && !int.is_empty()
        && frac != Some("");
    // Already as JSON writes it (most values): no copy.
    let text: Cow<'_, str> = if normal {
        Cow::Borrowed(s)
    } else {
        let mut out = String::with_capacity(s.len() + 2);
        if negative {
            out.push('-');
        }
        out.push_str(if trimmed.is_empty() { "0" } else { trimmed });
        if let Some(f) = frac.filter(|f| !f.is_empty()) {
            out.push('.');
            out.push_str(f);
        }
        Cow::Owned(out)
    };
    if frac.is_none() && text.len() <= 18 && text != "-0" {
        // An integer: a plain JSON integer (the same bytes either way).
        if let Ok(i) = text.parse::<i64>() {
            return Some(Value::Number(Number::from(i)));
        }
    }
    // A number an f64 writes back as the same text (`5.5`, `0.1`, `12.0`)
    // needs no copy either; `5.50`, `1234567890.123456789` are kept as text.
    if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
        if writes_as(&n, &text) {
            return Some(Value::Number(n));
        }
    }
    Decimal::new(text.into_owned()).map(Value::Decimal)
}

/// Whether `n` is written (by serde_json, ryu's shortest form) as `text`:
/// compared in a stack buffer.
fn writes_as(n: &Number, text: &str) -> bool {
    use std::fmt::Write;
    struct Buf {
        bytes: [u8; 40],
        len: usize,
    }
    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let end = self.len + s.len();
            let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
            slot.copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
    let mut buf = Buf {
        bytes: [0; 40],
        len: 0,
    };
    write!(buf, "{n}").is_ok() && buf.bytes.get(..buf.len) == Some(text.as_bytes())
}

// ---------------------------------------------------------------- CX

/// The assigning authority of an HD component: (namespace, universal id, type).
pub fn hd(c: &Component<'_>) -> (String, String, String) {
    (sub(c, 1), sub(c, 2), sub(c, 3))
}

/// A raw authority key for ids: namespace, else universal id.
pub fn authority_key(c: &Component<'_>) -> String {
    let (namespace, universal, _) = hd(c);
    if namespace.is_empty() {
        universal
    } else {
        namespace
    }
}

/// CX → Identifier (value, system from CX-4 via the tenant table, type
/// from CX-5 in v2-0203). `None` when CX-1 is empty.
pub fn identifier(cx: &Repetition<'_>, ctx: &MapContext) -> Option<Map> {
    let value = text(&cx.component(1));
    if value.is_empty() {
        return None;
    }
    let (namespace, universal, utype) = hd(&cx.component(4));
    let system = ctx
        .identifier_systems
        .system_for(&ctx.tenant, &namespace, &universal, &utype);
    let mut id = Map::new();
    id.insert("value", Value::from(value));
    id.insert("system", Value::from(system));
    let type_code = fhir_code(&text_cow(&cx.component(5)));
    if !type_code.is_empty() {
        id.insert("type", v2_0203(type_code));
    }
    Some(id)
}

/// An identifier type from table 0203 (MR, SS, VN, PLAC, FILL, NPI ...).
pub fn v2_0203(code: impl Into<Value>) -> Value {
    json!({ "coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
        "code": code.into(),
    }]})
}

/// EI (entity identifier: id ^ namespace ^ universal id ^ type) →
/// Identifier with an optional type code (PLAC, FILL ...).
pub fn entity_identifier(
    ei: &Repetition<'_>,
    type_code: &'static str,
    ctx: &MapContext,
) -> Option<Map> {
    let value = text(&ei.component(1));
    if value.is_empty() {
        return None;
    }
    let system = ctx.identifier_systems.system_for(
        &ctx.tenant,
        &text_cow(&ei.component(2)),
        &text_cow(&ei.component(3)),
        &text_cow(&ei.component(4)),
    );
    let mut id = Map::new();
    id.insert("value", Value::from(value));
    id.insert("system", Value::from(system));
    if !type_code.is_empty() {
        id.insert("type", v2_0203(type_code));
    }
    Some(id)
}

/// The (system, value) pair of an Identifier map, for conditional requests.
pub fn identifier_pair(id: &Map) -> Option<(String, String)> {
    Some((
        id.get("system")?.as_str()?.to_string(),
        id.get("value")?.as_str()?.to_string(),
    ))
}

// ---------------------------------------------------------------- XPN

/// XPN → HumanName. `None` when it has no family or given name.
pub fn human_name(xpn: &Repetition<'_>) -> Option<Value> {
    let family = sub(&xpn.component(1), 1);
    let given: Vec<String> = [text(&xpn.component(2)), text(&xpn.component(3))]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    if family.is_empty() && given.is_empty() {
        return None;
    }
    let suffix: Vec<String> = [text(&xpn.component(4)), text(&xpn.component(6))]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let name_use = match text(&xpn.component(7)).as_str() {
        "L" => "official",
        "D" | "A" => "usual",
        "M" => "maiden",
        "N" => "nickname",
        "S" => "anonymous",
        "T" => "temp",
        "BAD" => "old",
        _ => "",
    };
    Some(json!({
        "use": name_use,
        "family": family,
        "given": given,
        "prefix": [text(&xpn.component(5))],
        "suffix": suffix,
    }))
}

/// XCN name parts (components 2..7) → HumanName.
pub fn xcn_name(xcn: &Repetition<'_>) -> Option<Value> {
    let family = sub(&xcn.component(2), 1);
    let given: Vec<String> = [text(&xcn.component(3)), text(&xcn.component(4))]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    if family.is_empty() && given.is_empty() {
        return None;
    }
    Some(json!({
        "family": family,
        "given": given,
        "prefix": [text(&xcn.component(6))],
        "suffix": [text(&xcn.component(5)), text(&xcn.component(7))],
    }))
}

// ---------------------------------------------------------------- XAD

/// XAD → Address. `None` when empty.
pub fn address(xad: &Repetition<'_>) -> Option<Value> {
    let line: Vec<String> = [sub(&xad.component(1), 1), text(&xad.component(2))]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let (use_, type_) = match text(&xad.component(7)).as_str() {
        "H" | "P" => ("home", ""),
        "B" | "O" => ("work", ""),
        "C" => ("temp", ""),
        "BA" | "BDL" => ("old", ""),
        "M" => ("", "postal"),
        "SH" => ("", "physical"),
        _ => ("", ""),
    };
    let mut a = Map::new();
    put(&mut a, "use", use_);
    put(&mut a, "type", type_);
    put(&mut a, "line", line);
    put(&mut a, "city", text(&xad.component(3)));
    put(&mut a, "state", text(&xad.component(4)));
    put(&mut a, "postalCode", text(&xad.component(5)));
    put(&mut a, "country", text(&xad.component(6)));
    put(&mut a, "district", text(&xad.component(9)));
    if a.keys().all(|k| k == "use" || k == "type") {
        return None;
    }
    Some(Value::Object(a))
}

// ---------------------------------------------------------------- XTN

/// XTN → ContactPoint. `None` when it carries no number or address.
pub fn contact_point(xtn: &Repetition<'_>) -> Option<Value> {
    let equipment = text(&xtn.component(3)).to_ascii_uppercase();
    let email = text(&xtn.component(4));
    let is_email = equipment == "INTERNET" || equipment == "X.400" || email.contains('@');
    let value = if is_email && !email.is_empty() {
        email
    } else {
        let built: String = [
            text(&xtn.component(5)).map_prefix("+"),
            text(&xtn.component(6)).map_wrap("(", ") "),
            text(&xtn.component(7)),
            text(&xtn.component(8)).map_prefix(" ext. "),
        ]
        .concat();
        if built.trim().is_empty() {
            text(&xtn.component(1))
        } else {
            built.trim().to_string()
        }
    };
    if value.is_empty() {
        return None;
    }
    let system = match equipment.as_str() {
        _ if is_email => "email",
        "FX" => "fax",
        "BP" => "pager",
        "TDD" | "TTY" | "PH" | "CP" | "SAT" | "MD" => "phone",
        _ => "phone",
    };
    let use_ = match (text(&xtn.component(2)).as_str(), equipment.as_str()) {
        (_, "CP") => "mobile",
        ("PRN" | "ORN" | "VHN", _) => "home",
        ("WPN" | "BPN", _) => "work",
        _ => "",
    };
    Some(json!({ "system": system, "value": value, "use": use_ }))
}

trait Affix {
    fn map_prefix(self, p: &str) -> String;
    fn map_wrap(self, a: &str, b: &str) -> String;
}

impl Affix for String {
    fn map_prefix(self, p: &str) -> String {
        if self.is_empty() {
            self
        } else {
            format!("{p}{self}")
        }
    }
    fn map_wrap(self, a: &str, b: &str) -> String {
        if self.is_empty() {
            self
        } else {
            format!("{a}{self}{b}")
        }
    }
}

// ---------------------------------------------------------------- CWE

/// One Coding from a code, display and v2 system name; counts and maps
/// local codes. Pushes the original coding and, when mapped, the standard
/// codings beside it.
pub fn push_codings(
    codings: &mut Vec<Value>,
    code: &str,
    display: &str,
    system_name: &str,
    ctx: &MapContext,
) {
    let code = fhir_code(code);
    if code.is_empty() {
        return;
    }
    let standard = coding_system_uri(system_name);
    let system = match &standard {
        Some(uri) => uri.to_string(),
        None if system_name.contains(':') && !system_name.contains(char::is_whitespace) => {
            system_name.trim().to_string()
        }
        None => local_code_system(&ctx.tenant, system_name),
    };
    let mapped = ctx.code_maps.lookup(system_name, &code);
    if mapped.is_empty() && standard.is_none() {
        ctx.unmapped.record(system_name.trim(), &code);
    }
    let mut coding = Map::new();
    coding.insert("system", Value::from(system));
    put(&mut coding, "display", display.trim().to_string());
    coding.insert("code", Value::from(code));
    codings.push(Value::Object(coding));
    for m in mapped {
        codings.push(json!({ "system": &m.system, "code": &m.code, "display": &m.display }));
    }
}

/// CWE/CE/CNE → CodeableConcept (primary and alternate codings, mapped
/// codings, and the original text). `None` when entirely empty.
pub fn codeable_concept(cwe: &Repetition<'_>, ctx: &MapContext) -> Option<Value> {
    let mut codings = Vec::with_capacity(2);
    let display = text(&cwe.component(2));
    let alt_display = text(&cwe.component(5));
    push_codings(
        &mut codings,
        &text_cow(&cwe.component(1)),
        &display,
        &text_cow(&cwe.component(3)),
        ctx,
    );
    push_codings(
        &mut codings,
        &text_cow(&cwe.component(4)),
        &alt_display,
        &text_cow(&cwe.component(6)),
        ctx,
    );
    let original = text(&cwe.component(9));
    let text_value = if !original.is_empty() {
        original
    } else if !display.is_empty() {
        display
    } else {
        alt_display
    };
    if codings.is_empty() && text_value.is_empty() {
        return None;
    }
    Some(object([
        ("coding", Value::Array(codings)),
        ("text", Value::from(text_value)),
    ]))
}

/// An object from (key, value) pairs, moving the values in (`json!` would
/// deep-copy any `Value` it is given) and leaving out empty ones.
pub fn object<const N: usize>(pairs: [(&'static str, Value); N]) -> Value {
    let mut map = Map::new();
    for (key, value) in pairs {
        if !super::bundle::is_empty_value(&value) {
            map.insert(key, value);
        }
    }
    Value::Object(map)
}

/// Every repetition of a CWE field as CodeableConcepts.
pub fn codeable_concepts(field: &Field<'_>, ctx: &MapContext) -> Vec<Value> {
    field
        .repetitions()
        .filter_map(|r| codeable_concept(&r, ctx))
        .collect()
}

/// A coded field bound to HL7 table `table` (e.g. "0007"): when the sender
/// names no system, the code is taken as from that v2 table; otherwise as
/// any CWE.
pub fn table_concept(cwe: &Repetition<'_>, table: &str, ctx: &MapContext) -> Option<Value> {
    if !text(&cwe.component(3)).is_empty() {
        return codeable_concept(cwe, ctx);
    }
    let code = fhir_code(&text_cow(&cwe.component(1)));
    if code.is_empty() {
        return codeable_concept(cwe, ctx);
    }
    let display = text(&cwe.component(2));
    Some(json!({
        "coding": [{
            "system": format!("http://terminology.hl7.org/CodeSystem/v2-{table}"),
            "code": code,
            "display": &display,
        }],
        "text": display,
    }))
}

/// A CodeableConcept with one coding from a fixed system.
pub fn concept(system: &'static str, code: &'static str, display: &'static str) -> Value {
    json!({ "coding": [{ "system": system, "code": code, "display": display }] })
}

// ---------------------------------------------------------------- ED / RP

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = u32::from(b0) << 16 | u32::from(b1) << 8 | u32::from(b2);
        let sextet = |shift: u32| char::from(BASE64[((n >> shift) & 0x3F) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// Standard base64 decoding (whitespace ignored); `None` when invalid.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let clean: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if clean.is_empty() || clean.len() % 4 != 0 {
        return None;
    }
    let value = |b: u8| BASE64.iter().position(|&c| c == b).map(|p| p as u32);
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    let chunks = clean.chunks(4);
    let last = chunks.len().saturating_sub(1);
    for (i, chunk) in clean.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && i != last) {
            return None;
        }
        let mut n = 0u32;
        for &b in chunk.iter().take(4 - pad) {
            n = n << 6 | value(b)?;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(bytes.get(..3 - pad)?);
    }
    Some(out)
}

/// ED (source ^ type ^ subtype ^ encoding ^ data) → Attachment. The data
/// is base64 in FHIR: Base64 data is checked and kept, Hex is decoded, A
/// (ASCII) or no encoding is encoded. Data that claims Base64 but is not is
/// kept as text (encoded), so nothing is lost.
pub fn attachment_from_ed(ed: &Repetition<'_>) -> Option<Value> {
    let kind = text(&ed.component(2)).to_ascii_lowercase();
    let subtype = text(&ed.component(3)).to_ascii_lowercase();
    let encoding = text(&ed.component(4)).to_ascii_uppercase();
    let raw = ed.component(5).text();
    let data = raw.trim();
    let content_type = mime_type(&kind, &subtype);
    let bytes = match encoding.as_str() {
        "BASE64" => match base64_decode(data) {
            Some(_) => None,
            None => Some(data.as_bytes().to_vec()),
        },
        "HEX" => Some(hex_decode(data).unwrap_or_else(|| data.as_bytes().to_vec())),
        _ => Some(data.as_bytes().to_vec()),
    };
    let encoded = match bytes {
        None => data.split_whitespace().collect::<String>(),
        Some(b) if b.is_empty() => String::new(),
        Some(b) => base64_encode(&b),
    };
    if encoded.is_empty() && content_type.is_empty() {
        return None;
    }
    Some(json!({ "contentType": content_type, "data": encoded }))
}

fn mime_type(kind: &str, subtype: &str) -> String {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-+.".contains(&b))
    };
    match (kind, subtype) {
        ("text", "" | "plain") | ("tx" | "ft" | "st", _) => "text/plain".into(),
        (_, "pdf") => "application/pdf".into(),
        (_, "rtf") => "application/rtf".into(),
        (_, "html") => "text/html".into(),
        (_, "xml") => "application/xml".into(),
        (_, "jpeg" | "jpg") => "image/jpeg".into(),
        (_, "png") => "image/png".into(),
        (_, "tiff") => "image/tiff".into(),
        ("application" | "image" | "audio" | "video" | "text" | "multipart", s) if token(s) => {
            format!("{kind}/{s}")
        }
        (_, "octet-stream") => "application/octet-stream".into(),
        ("application" | "image" | "audio" | "video" | "multipart", "") => {
            "application/octet-stream".into()
        }
        _ => String::new(),
    }
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    let clean: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if clean.len() % 2 != 0 {
        return None;
    }
    clean
        .chunks(2)
        .map(|p| {
            let h = char::from(*p.first()?).to_digit(16)?;
            let l = char::from(*p.get(1)?).to_digit(16)?;
            u8::try_from(h << 4 | l).ok()
        })
        .collect()
}

/// RP (pointer ^ application ^ type ^ subtype) → Attachment with a URL
/// when the pointer is a URI.
pub fn attachment_from_rp(rp: &Repetition<'_>) -> Option<Value> {
    let pointer = text(&rp.component(1));
    if pointer.is_empty() || pointer.contains(char::is_whitespace) {
        return None;
    }
    let content_type = mime_type(
        &text_cow(&rp.component(3)).to_ascii_lowercase(),
        &text_cow(&rp.component(4)).to_ascii_lowercase(),
    );
    Some(json!({ "url": pointer, "contentType": content_type }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hl7::Message;

    fn ctx() -> MapContext {
        MapContext::new("t")
    }

    #[test]
    fn dates() {
        let c = ctx();
        assert_eq!(date_time("2024", &c).as_deref(), Some("2024"));
        assert_eq!(date_time("202402", &c).as_deref(), Some("2024-02"));
        assert_eq!(date_time("20240229", &c).as_deref(), Some("2024-02-29"));
        assert_eq!(date_time("20230229", &c), None);
        assert_eq!(
            date_time("202401021304-0500", &c).as_deref(),
            Some("2024-01-02T13:04:00-05:00")
        );
        assert_eq!(
            date_time("20240102130405.123+0215", &c).as_deref(),
            Some("2024-01-02T13:04:05.123+02:15")
        );
        // No offset and none configured: the date only.
        assert_eq!(
            date_time("20240102130405", &c).as_deref(),
            Some("2024-01-02")
        );
        let mut with_tz = ctx();
        with_tz.default_utc_offset = Some("-06:00".into());
        assert_eq!(
            date_time("2024010213", &with_tz).as_deref(),
            Some("2024-01-02T13:00:00-06:00")
        );
        assert_eq!(date_time("2024013", &c), None);
        assert_eq!(date_time("20241301", &c), None);
        assert_eq!(date_time("20240101+2500", &c), None);
        assert_eq!(date_time("", &c), None);
        assert_eq!(date("198808181126+0215").as_deref(), Some("1988-08-18"));
        assert_eq!(instant("202401021304-0500", &c), None);
        assert_eq!(
            instant("20240102130400-0500", &c).as_deref(),
            Some("2024-01-02T13:04:00-05:00")
        );
    }

    #[test]
    fn decimals() {
        let exact = |raw: &str| decimal(raw).map(|v| serde_json::to_string(&v).unwrap());
        assert_eq!(decimal("5"), Some(json!(5)));
        assert_eq!(exact("5").as_deref(), Some("5"));
        assert_eq!(exact("+5.5").as_deref(), Some("5.5"));
        assert_eq!(exact(".5").as_deref(), Some("0.5"));
        assert_eq!(exact("-.5").as_deref(), Some("-0.5"));
        assert_eq!(exact("-0.25").as_deref(), Some("-0.25"));
        assert_eq!(exact("5.50").as_deref(), Some("5.50"));
        assert_eq!(exact("0.1").as_deref(), Some("0.1"));
        assert_eq!(exact("+007.10").as_deref(), Some("7.10"));
        assert_eq!(exact("000").as_deref(), Some("0"));
        assert_eq!(exact("5.").as_deref(), Some("5"));
        assert_eq!(
            exact("1234567890.123456789").as_deref(),
            Some("1234567890.123456789")
        );
        // Past i64: still exact, as a decimal.
        assert_eq!(
            exact("123456789012345678901234").as_deref(),
            Some("123456789012345678901234")
        );
        for bad in [
            "5..1", "abc", ".", "", "-", "+", "1e5", "1e3", "1.5e2", "0x10", "5-", "1 000",
        ] {
            assert_eq!(decimal(bad), None, "{bad}");
        }
    }

    #[test]
    fn base64_round_trip() {
        for s in ["", "a", "ab", "abc", "abcd", "Hello, world!\n"] {
            let e = base64_encode(s.as_bytes());
            if !s.is_empty() {
                assert_eq!(base64_decode(&e).unwrap(), s.as_bytes());
            }
        }
        assert_eq!(base64_encode(b"Man"), "TWFu");
        assert_eq!(base64_decode("TWE="), Some(b"Ma".to_vec()));
        assert_eq!(base64_decode("T=Fu"), None);
        assert_eq!(base64_decode("abc"), None);
    }

    #[test]
    fn composite_types() {
        let raw = b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1\rPID|1||123^^^CLINIC&1.2.3&ISO^MR||Doe&van^Jane^Q^Jr^Dr^^L||||||1 Main St^Apt 2^Town^ST^12345^USA^H||^PRN^PH^^1^555^1234567~^NET^Internet^j@example.org\r";
        let m = Message::parse(raw).unwrap();
        let pid = m.segment("PID").unwrap();
        let c = ctx();
        let id = identifier(&pid.field(3).repetition(1), &c).unwrap();
        assert_eq!(id["system"], "urn:oid:1.2.3");
        assert_eq!(id["type"]["coding"][0]["code"], "MR");
        let name = human_name(&pid.field(5).repetition(1)).unwrap();
        assert_eq!(
            name,
            json!({"use": "official", "family": "Doe", "given": ["Jane", "Q"], "prefix": ["Dr"], "suffix": ["Jr"]})
        );
        let addr = address(&pid.field(11).repetition(1)).unwrap();
        assert_eq!(addr["line"], json!(["1 Main St", "Apt 2"]));
        assert_eq!(addr["use"], "home");
        let phone = contact_point(&pid.field(13).repetition(1)).unwrap();
        assert_eq!(phone["value"], "+1(555) 1234567");
        let email = contact_point(&pid.field(13).repetition(2)).unwrap();
        assert_eq!(email["system"], "email");
    }
}
