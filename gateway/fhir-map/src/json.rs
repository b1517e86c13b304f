//! The JSON tree the mappers build resources in: a cheaper stand-in for
//! `serde_json::Value` with the same shape and the same output.
//!
//! Why not `serde_json::Value`: profiling showed most of translation time
//! went into its allocations — every object key a `String`, every constant
//! (`"http://loinc.org"`, `"final"`) copied, every object a B-tree. Here:
//!
//! - keys are `&'static str` (every key the mappers write is a literal);
//! - strings are `Cow<'static, str>`, so constants are borrowed;
//! - an object is a small `Vec` kept sorted by key, which is also the order
//!   `serde_json::Map` (a `BTreeMap`) writes — the bytes of
//!   [`super::translate_to_bytes`] equal `serde_json::to_vec` of
//!   [`super::translate`].
//!
//! [`json!`] builds a tree with the syntax of `serde_json::json!`; a value
//! is any `Into<Value>` expression.

use std::borrow::Cow;
use std::ops::Index;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
pub use serde_json::Number;

/// A string in the tree: borrowed when constant, owned otherwise.
pub type Str = Cow<'static, str>;

#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    Number(Number),
    /// A FHIR decimal exactly as received (after normalising): `5.50`
    /// keeps its trailing zero, `1234567890.123456789` all its digits.
    Decimal(Decimal),
    String(Str),
    Array(Vec<Value>),
    Object(Map),
}

/// An exact decimal: JSON number text, written verbatim (serde_json's
/// `RawValue`). Made only by [`Decimal::new`] from validated text.
#[derive(Debug, Clone)]
pub struct Decimal(Box<serde_json::value::RawValue>);

impl Decimal {
    /// `text` must be a JSON number; `None` otherwise.
    pub fn new(text: String) -> Option<Decimal> {
        serde_json::value::RawValue::from_string(text)
            .ok()
            .filter(|raw| raw.get().parse::<Number>().is_ok())
            .map(Decimal)
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The nearest `serde_json::Number` (f64 unless an integer): what a
    /// `serde_json::Value` can hold without `arbitrary_precision`.
    pub fn to_number(&self) -> Option<Number> {
        self.as_str().parse().ok()
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Decimal) -> bool {
        self.as_str() == other.as_str()
    }
}

/// A JSON object: entries sorted by key, each key once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Map {
    entries: Vec<(&'static str, Value)>,
}

impl Map {
    pub fn new() -> Map {
        Map::default()
    }

    /// The object of `json!({..})`'s members: one allocation of the exact
    /// size (inserting one by one regrew the `Vec` at 4 and 8 members).
    /// A key given twice keeps the later value, as [`Map::insert`] does.
    pub fn from_members<const N: usize>(members: [(&'static str, Value); N]) -> Map {
        let mut map = Map {
            entries: Vec::with_capacity(N),
        };
        for (key, value) in members {
            map.insert(key, value);
        }
        map
    }

    fn position(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| (*k).cmp(key))
    }

    /// Sets `key` to `value`; returns the value it replaces.
    pub fn insert(&mut self, key: &'static str, value: Value) -> Option<Value> {
        match self.position(key) {
            Ok(i) => self
                .entries
                .get_mut(i)
                .map(|(_, v)| std::mem::replace(v, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        let i = self.position(key).ok()?;
        self.entries.get(i).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let i = self.position(key).ok()?;
        self.entries.get_mut(i).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    pub fn keys(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.entries.iter().map(|(k, _)| *k)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Value> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.entries.iter().map(|(k, v)| (*k, v))
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&'static str, &mut Value) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The same object as a `serde_json::Map`.
    pub fn into_serde(self) -> serde_json::Map<String, serde_json::Value> {
        self.entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_serde()))
            .collect()
    }
}

impl IntoIterator for Map {
    type Item = (&'static str, Value);
    type IntoIter = std::vec::IntoIter<(&'static str, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Map> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?.get(key)
    }

    /// The same tree as a `serde_json::Value`.
    pub fn into_serde(self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Number(n) => serde_json::Value::Number(n),
            Value::Decimal(d) => d
                .to_number()
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::String(s) => serde_json::Value::String(s.into_owned()),
            Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(Value::into_serde).collect())
            }
            Value::Object(o) => serde_json::Value::Object(o.into_serde()),
        }
    }
}

static NULL: Value = Value::Null;

/// `map["key"]`, as in serde_json: `Null` when absent.
impl Index<&str> for Map {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

/// `value["key"]`, as in serde_json: `Null` when absent.
impl Index<&str> for Value {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        self.get(key).unwrap_or(&NULL)
    }
}

/// `value[i]`, as in serde_json: `Null` when absent.
impl Index<usize> for Value {
    type Output = Value;
    fn index(&self, i: usize) -> &Value {
        self.as_array().and_then(|a| a.get(i)).unwrap_or(&NULL)
    }
}

impl PartialEq<&str> for Value {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl PartialEq<String> for Value {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == Some(other.as_str())
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => n.serialize(s),
            Value::Decimal(d) => d.0.serialize(s),
            Value::String(v) => s.serialize_str(v),
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for v in a {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Object(o) => o.serialize(s),
        }
    }
}

impl Serialize for Map {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

// ------------------------------------------------------------ conversions

/// A literal: borrowed, no allocation. A `&str` that is not `'static` has
/// to be made a `String` first.
impl From<&'static str> for Value {
    fn from(s: &'static str) -> Value {
        Value::String(Cow::Borrowed(s))
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(Cow::Owned(s))
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::String(Cow::Owned(s.clone()))
    }
}

impl From<Str> for Value {
    fn from(s: Str) -> Value {
        Value::String(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Value {
        Value::Number(Number::from(n))
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Number(Number::from(n))
    }
}

impl From<usize> for Value {
    fn from(n: usize) -> Value {
        Value::Number(Number::from(n))
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Value {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

impl From<Number> for Value {
    fn from(n: Number) -> Value {
        Value::Number(n)
    }
}

impl From<Decimal> for Value {
    fn from(d: Decimal) -> Value {
        Value::Decimal(d)
    }
}

impl From<Map> for Value {
    fn from(m: Map) -> Value {
        Value::Object(m)
    }
}

impl From<&Value> for Value {
    fn from(v: &Value) -> Value {
        v.clone()
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

impl<T: Into<Value>> From<Vec<T>> for Value {
    fn from(v: Vec<T>) -> Value {
        Value::Array(v.into_iter().map(Into::into).collect())
    }
}

/// `serde_json::json!` for this tree: objects (`{ "key": value, ... }`, keys
/// string literals), arrays, `null`, and any `Into<Value>` expression.
macro_rules! json {
    // Internal: array elements done so far in [..], the current one's tokens in (..).
    (@array [$($done:expr,)*] ($($cur:tt)+) , $($rest:tt)*) => {
        $crate::json::json!(@array [$($done,)* $crate::json::json!($($cur)+),] () $($rest)*)
    };
    (@array [$($done:expr,)*] ($($cur:tt)*) $next:tt $($rest:tt)*) => {
        $crate::json::json!(@array [$($done,)*] ($($cur)* $next) $($rest)*)
    };
    (@array [$($done:expr,)*] ($($cur:tt)+)) => {
        vec![$($done,)* $crate::json::json!($($cur)+)]
    };
    (@array [$($done:expr,)*] ()) => {
        vec![$($done,)*]
    };
    // Internal: object members done so far in [..] as (key, value), the
    // current value's tokens in (..); the map is made from the array at once.
    (@object [$($done:expr,)*]) => {
        [$($done,)*]
    };
    (@object [$($done:expr,)*] $key:literal : $($rest:tt)+) => {
        $crate::json::json!(@member [$($done,)*] $key () $($rest)+)
    };
    (@member [$($done:expr,)*] $key:literal ($($cur:tt)+) , $($rest:tt)*) => {
        $crate::json::json!(@object [$($done,)* ($key, $crate::json::json!($($cur)+)),] $($rest)*)
    };
    (@member [$($done:expr,)*] $key:literal ($($cur:tt)*) $next:tt $($rest:tt)*) => {
        $crate::json::json!(@member [$($done,)*] $key ($($cur)* $next) $($rest)*)
    };
    (@member [$($done:expr,)*] $key:literal ($($cur:tt)+)) => {
        [$($done,)* ($key, $crate::json::json!($($cur)+)),]
    };
    (null) => {
        $crate::json::Value::Null
    };
    ([ $($tt:tt)* ]) => {
        $crate::json::Value::Array($crate::json::json!(@array [] () $($tt)*))
    };
    ({}) => {
        $crate::json::Value::Object($crate::json::Map::new())
    };
    ({ $($tt:tt)+ }) => {
        $crate::json::Value::Object($crate::json::Map::from_members(
            $crate::json::json!(@object [] $($tt)+),
        ))
    };
    ($other:expr) => {
        $crate::json::Value::from($other)
    };
}
pub(crate) use json;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_as_serde_json() {
        let name = String::from("Doe");
        let given = vec![String::from("Jane"), String::from("Q")];
        let none: Option<String> = None;
        let ours = json!({
            "resourceType": "Patient",
            "name": [{ "family": name, "given": given, "text": none }],
            "active": true,
            "n": 5,
            "x": 2.5,
            "empty": [],
            "obj": {},
            "nil": null,
        });
        let theirs = serde_json::json!({
            "resourceType": "Patient",
            "name": [{ "family": "Doe", "given": ["Jane", "Q"], "text": null }],
            "active": true,
            "n": 5,
            "x": 2.5,
            "empty": [],
            "obj": {},
            "nil": null,
        });
        assert_eq!(
            serde_json::to_string(&ours).unwrap(),
            serde_json::to_string(&theirs).unwrap()
        );
        assert_eq!(ours.into_serde(), theirs);
    }

    #[test]
    fn insert_keeps_keys_sorted_and_unique() {
        let mut m = Map::new();
        m.insert("b", Value::from(1));
        m.insert("a", Value::from(2));
        assert_eq!(m.insert("b", Value::from(3)), Some(Value::from(1)));
        assert_eq!(m.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(m.get("b"), Some(&Value::from(3)));
        let v = Value::Object(m);
        assert_eq!(v["a"], Value::from(2));
        assert_eq!(v["zz"], Value::Null);
    }
}
