//! File names for uploaded messages (`name_template` of an sftp
//! destination), because clearinghouses have naming rules. Pure.
//!
//! A name depends only on the stored message (its journal id, control id,
//! type and receive time), never on when it is sent, so a retry after a
//! crash computes the same name and finds its own earlier upload.
//!
//! Placeholders: `{id}` (the journal id), `{id:0N}` (zero-padded to N
//! digits), `{control_id}` and `{type}` (characters other than
//! `A-Z a-z 0-9 . _ -` become `_`), `{date}` (`YYYYMMDD`, UTC, received)
//! and `{time}` (`HHMMSS`, UTC). `{id` must appear: it is what makes names
//! unique. Literal text may use `A-Z a-z 0-9 . _ - + ~ =` only (no `/`), and
//! may not start with `.` (the gateway's temporary names do).

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Id { width: usize },
    ControlId,
    Type,
    Date,
    Time,
}

/// A parsed `name_template`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTemplate {
    parts: Vec<Part>,
    source: String,
}

/// What a name is made of.
#[derive(Debug, Clone, Copy)]
pub struct NameFacts<'a> {
    pub id: u64,
    pub control_id: &'a str,
    pub message_type: &'a str,
    pub received_at_ms: u64,
}

/// The default: the journal id, zero-padded, as an X12 file.
pub const DEFAULT_TEMPLATE: &str = "{id:010}.x12";

fn literal_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-+~=".contains(c)
}

impl NameTemplate {
    pub fn parse(text: &str) -> Result<NameTemplate, String> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if c == '{' {
                let Some(end) = rest.find('}') else {
                    return Err(format!("'{text}': a '{{' is never closed"));
                };
                let name = &rest[1..end];
                let part = match name {
                    "id" => Part::Id { width: 0 },
                    "control_id" => Part::ControlId,
                    "type" => Part::Type,
                    "date" => Part::Date,
                    "time" => Part::Time,
                    other => match other.strip_prefix("id:0").map(str::parse::<usize>) {
                        Some(Ok(w)) if (1..=20).contains(&w) => Part::Id { width: w },
                        _ => {
                            return Err(format!(
                                "'{text}': unknown placeholder {{{other}}}; use {{id}}, {{id:010}}, {{control_id}}, {{type}}, {{date}} or {{time}}"
                            ))
                        }
                    },
                };
                if !lit.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut lit)));
                }
                parts.push(part);
                rest = &rest[end + 1..];
            } else {
                if !literal_ok(c) {
                    return Err(format!(
                        "'{text}': '{c}' is not allowed in a file name template (letters, digits and . _ - + ~ = only)"
                    ));
                }
                lit.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        if !parts.iter().any(|p| matches!(p, Part::Id { .. })) {
            return Err(format!(
                "'{text}' has no {{id}}: names must carry the journal id so no two messages share one"
            ));
        }
        if matches!(parts.first(), Some(Part::Text(t)) if t.starts_with('.')) {
            return Err(format!(
                "'{text}' starts with '.': names starting with a dot are the gateway's temporary files"
            ));
        }
        Ok(NameTemplate {
            parts,
            source: text.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn render(&self, f: &NameFacts<'_>) -> String {
        let stamp = crate::ops::clock::hl7_timestamp(f.received_at_ms);
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Id { width } => out.push_str(&format!("{:0width$}", f.id, width = *width)),
                Part::ControlId => out.push_str(&sanitize(f.control_id)),
                Part::Type => out.push_str(&sanitize(f.message_type)),
                Part::Date => out.push_str(&stamp[..8]),
                Part::Time => out.push_str(&stamp[8..14]),
            }
        }
        out
    }
}

fn sanitize(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() {
        "_".into()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NameFacts<'static> {
        NameFacts {
            id: 42,
            control_id: "000000905",
            message_type: "ORU^R01",
            // 2024-03-05T06:07:08Z
            received_at_ms: 1_709_618_828_000,
        }
    }

    #[test]
    fn placeholders_render_from_the_message_alone() {
        let t = NameTemplate::parse("CLM_{date}_{time}_{id:08}_{control_id}.{type}.837").unwrap();
        assert_eq!(
            t.render(&facts()),
            "CLM_20240305_060708_00000042_000000905.ORU_R01.837"
        );
        assert_eq!(
            NameTemplate::parse(DEFAULT_TEMPLATE)
                .unwrap()
                .render(&facts()),
            "0000000042.x12"
        );
        assert_eq!(NameTemplate::parse("{id}").unwrap().render(&facts()), "42");
    }

    #[test]
    fn bad_templates_say_why() {
        for (t, why) in [
            ("claims.837", "has no {id}"),
            ("{id}/x", "'/' is not allowed"),
            (".{id}", "starts with '.'"),
            ("{id", "never closed"),
            ("{ident}", "unknown placeholder {ident}"),
            ("{id:0}", "unknown placeholder"),
        ] {
            let e = NameTemplate::parse(t).unwrap_err();
            assert!(e.contains(why), "{t}: {e}");
        }
    }
}
