//! Zero-copy views of a field and its parts: [`Field`] → [`Repetition`] →
//! [`Component`] → [`Subcomponent`], plus [`Value`] (any level, from a path).
//!
//! A view is a byte range of the input and a copy of the message's
//! delimiters and charset (a few bytes): creating one allocates nothing and
//! splitting scans only that value. Positions are 1-based as in HL7; asking
//! for a position that is not there (or 0) gives an empty view, so chains
//! like `seg.field(3).repetition(1).component(4).subcomponent(1)` never fail.
//!
//! `raw()` is the bytes as on the wire (still escaped); `text()` decodes
//! escape sequences and the charset, borrowing when there is nothing to do.
//! `text()` of a composite level (a field with components, say) decodes the
//! whole value with its delimiters left in place; use the leaf level for
//! exact values. MSH-1 and MSH-2 are literal: they are never split or
//! unescaped.

use std::borrow::Cow;
use std::fmt;

use super::charset::Charset;
use super::escape::decode_text;
use super::header::EncodingChars;

/// What every view carries besides its bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ctx {
    pub enc: EncodingChars,
    pub charset: Charset,
    /// MSH-1 / MSH-2: not split, not unescaped.
    pub literal: bool,
}

/// Splits on one delimiter, like `slice::split`, keeping the lifetime.
/// With no delimiter (a literal value) the whole is one part.
#[derive(Clone)]
struct Parts<'a> {
    rest: Option<&'a [u8]>,
    delim: Option<u8>,
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match self.delim.and_then(|d| rest.iter().position(|&b| b == d)) {
            Some(i) => {
                self.rest = rest.get(i + 1..);
                rest.get(..i)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// The `n`th (1-based) part of `bytes` split on `delim`; empty when absent.
fn nth_part(bytes: &[u8], delim: Option<u8>, n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    Parts {
        rest: Some(bytes),
        delim,
    }
    .nth(n - 1)
    .unwrap_or_default()
}

fn count_parts(bytes: &[u8], delim: Option<u8>) -> usize {
    match delim {
        Some(d) => bytes.iter().filter(|&&b| b == d).count() + 1,
        None => 1,
    }
}

macro_rules! view {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq)]
        pub struct $name<'a> {
            bytes: &'a [u8],
            ctx: Ctx,
        }

        impl<'a> $name<'a> {
            #[allow(dead_code)] // not every level is built directly
            pub(crate) fn new(bytes: &'a [u8], ctx: Ctx) -> Self {
                $name { bytes, ctx }
            }

            /// The bytes as on the wire, still escaped.
            pub fn raw(&self) -> &'a [u8] {
                self.bytes
            }

            /// Decoded text: escape sequences and the message charset.
            pub fn text(&self) -> Cow<'a, str> {
                if self.ctx.literal {
                    self.ctx.charset.decode(self.bytes)
                } else {
                    decode_text(self.bytes, &self.ctx.enc, self.ctx.charset)
                }
            }

            /// True when not valued (absent or empty).
            pub fn is_empty(&self) -> bool {
                self.bytes.is_empty()
            }

            /// True for the HL7 explicit null `""` (delete the value).
            pub fn is_null(&self) -> bool {
                self.bytes == b"\"\""
            }

            /// The message's delimiters.
            pub fn encoding(&self) -> &EncodingChars {
                &self.ctx.enc
            }

            /// The same bytes as a level-less [`Value`].
            pub fn as_value(&self) -> Value<'a> {
                Value { bytes: self.bytes, ctx: self.ctx }
            }
        }

        impl fmt::Debug for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), String::from_utf8_lossy(self.bytes))
            }
        }
    };
}

view!(
    /// One field: its repetitions, separated by the repetition character.
    Field
);
view!(
    /// One repetition of a field: components, separated by the component character.
    Repetition
);
view!(
    /// One component: subcomponents, separated by the subcomponent character.
    Component
);
view!(
    /// One subcomponent: a leaf value.
    Subcomponent
);
view!(
    /// A value at any level, as returned by a path lookup.
    Value
);

macro_rules! children {
    ($(#[$doc:meta])* $iter:ident, $child:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $iter<'a> {
            parts: Parts<'a>,
            ctx: Ctx,
        }

        impl<'a> Iterator for $iter<'a> {
            type Item = $child<'a>;
            fn next(&mut self) -> Option<$child<'a>> {
                self.parts.next().map(|b| $child::new(b, self.ctx))
            }
        }
    };
}

children!(
    /// Iterator over a field's repetitions.
    Repetitions, Repetition
);
children!(
    /// Iterator over a repetition's components.
    Components, Component
);
children!(
    /// Iterator over a component's subcomponents.
    Subcomponents, Subcomponent
);

impl<'a> Field<'a> {
    fn split(&self, delim: u8) -> Parts<'a> {
        // An empty field has no repetitions; a literal one is a single piece.
        let rest = if self.bytes.is_empty() {
            None
        } else {
            Some(self.bytes)
        };
        Parts {
            rest,
            delim: if self.ctx.literal { None } else { Some(delim) },
        }
    }

    /// The repetitions; none when the field is empty.
    pub fn repetitions(&self) -> Repetitions<'a> {
        Repetitions {
            parts: self.split(self.ctx.enc.repetition),
            ctx: self.ctx,
        }
    }

    /// How many repetitions (0 when empty).
    pub fn repetition_count(&self) -> usize {
        if self.bytes.is_empty() {
            0
        } else {
            count_parts(
                self.bytes,
                (!self.ctx.literal).then_some(self.ctx.enc.repetition),
            )
        }
    }

    /// The `n`th repetition (1-based).
    pub fn repetition(&self, n: usize) -> Repetition<'a> {
        Repetition::new(
            self.repetitions()
                .nth(n.wrapping_sub(1))
                .map_or(&[], |r| r.bytes),
            self.ctx,
        )
    }

    /// Component `n` of the first repetition (the usual case: `PID-5.1`).
    pub fn component(&self, n: usize) -> Component<'a> {
        self.repetition(1).component(n)
    }
}

impl<'a> Repetition<'a> {
    fn delim(&self) -> Option<u8> {
        (!self.ctx.literal).then_some(self.ctx.enc.component)
    }

    /// The components (at least one, possibly empty).
    pub fn components(&self) -> Components<'a> {
        Components {
            parts: Parts {
                rest: Some(self.bytes),
                delim: self.delim(),
            },
            ctx: self.ctx,
        }
    }

    /// How many components (at least 1).
    pub fn component_count(&self) -> usize {
        count_parts(self.bytes, self.delim())
    }

    /// The `n`th component (1-based).
    pub fn component(&self, n: usize) -> Component<'a> {
        Component::new(nth_part(self.bytes, self.delim(), n), self.ctx)
    }
}

impl<'a> Component<'a> {
    fn delim(&self) -> Option<u8> {
        (!self.ctx.literal).then_some(self.ctx.enc.subcomponent)
    }

    /// The subcomponents (at least one, possibly empty).
    pub fn subcomponents(&self) -> Subcomponents<'a> {
        Subcomponents {
            parts: Parts {
                rest: Some(self.bytes),
                delim: self.delim(),
            },
            ctx: self.ctx,
        }
    }

    /// How many subcomponents (at least 1).
    pub fn subcomponent_count(&self) -> usize {
        count_parts(self.bytes, self.delim())
    }

    /// The `n`th subcomponent (1-based).
    pub fn subcomponent(&self, n: usize) -> Subcomponent<'a> {
        Subcomponent::new(nth_part(self.bytes, self.delim(), n), self.ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Ctx {
        Ctx {
            enc: EncodingChars::default(),
            charset: Charset::Default,
            literal: false,
        }
    }

    #[test]
    fn splitting() {
        let f = Field::new(b"a^b&c~d^e\\S\\f", ctx());
        assert_eq!(f.repetition_count(), 2);
        let reps: Vec<_> = f.repetitions().map(|r| r.raw()).collect();
        assert_eq!(reps, [&b"a^b&c"[..], b"d^e\\S\\f"]);
        assert_eq!(f.component(2).subcomponent(2).text(), "c");
        assert_eq!(f.repetition(2).component(2).text(), "e^f");
        assert_eq!(f.repetition(2).component(2).raw(), b"e\\S\\f");
        assert_eq!(f.repetition(1).component_count(), 2);
        assert_eq!(f.component(2).subcomponent_count(), 2);
        assert!(f.repetition(3).is_empty());
        assert!(f.repetition(0).is_empty());
        assert!(f.component(0).is_empty());
        assert!(f.component(9).subcomponent(9).is_empty());
    }

    #[test]
    fn empty_field_has_no_repetitions() {
        let f = Field::new(b"", ctx());
        assert_eq!(f.repetitions().count(), 0);
        assert_eq!(f.repetition_count(), 0);
        assert!(f.component(1).is_empty());
        let r = Repetition::new(b"", ctx());
        assert_eq!(r.components().count(), 1);
    }

    #[test]
    fn literal_is_not_split() {
        let f = Field::new(
            b"^~\\&",
            Ctx {
                literal: true,
                ..ctx()
            },
        );
        let sep = Field::new(
            b"|",
            Ctx {
                literal: true,
                ..ctx()
            },
        );
        assert_eq!(sep.repetitions().count(), 1);
        assert_eq!(sep.component(1).text(), "|");
        assert_eq!(f.repetition_count(), 1);
        assert_eq!(f.component(1).subcomponent(1).raw(), b"^~\\&");
        assert_eq!(f.text(), "^~\\&");
        assert!(f.component(2).is_empty());
    }

    #[test]
    fn null_value() {
        assert!(Field::new(b"\"\"", ctx()).is_null());
        assert!(!Field::new(b"", ctx()).is_null());
    }
}
