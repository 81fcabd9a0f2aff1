//! JSON values with JavaScript semantics, and their compact binary encoding.
//!
//! Browser and JavaScript peers must see exactly the data native peers see, so a
//! [`Value`] follows what `JSON.parse` / `JSON.stringify` do (DESIGN, Conventions):
//!
//! - numbers are `f64`; JSON text is written the way `Number.prototype.toString`
//!   writes a number (`1795713892493`, `1e+21`, `5e-324`); `-0` is written `0`;
//! - objects keep JavaScript key order: array-index keys (`"0"`, `"1"`, … up to
//!   `4294967294`) ascending, then the other keys in insertion order; a duplicate key
//!   keeps the last value at the position of the first;
//! - a lone surrogate (`"\ud800"`) is a decode error, as are NaN and infinities.
//!
//! The store keeps values encoded ([`EncodedValue`]): a few bytes per value instead of
//! a tree of allocations. The encoding is the postcard (serde) form of the enum
//!
//! ```text
//! value  = 0x00                       null
//!        | 0x01 | 0x02                false | true
//!        | 0x03 zigzag-varint(i64)    a number that is an integer of magnitude <= 2^53 (not -0)
//!        | 0x04 f64-little-endian     any other finite number
//!        | 0x05 varint(len) utf8      string
//!        | 0x06 varint(n) value*n     array
//!        | 0x07 varint(n) (varint(len) utf8 value)*n   object, in JavaScript key order
//! ```
//!
//! so `postcard::to_allocvec(&PostcardValue(&value))` and
//! [`EncodedValue::from_value`] produce the same bytes ([`PostcardValue`] serializes a
//! value as that enum; `Value`'s own `Serialize` is the natural JSON shape, for
//! serde_json and the like). Decoders are bounded by [`Limits`]: nesting depth, string
//! and total length; they never panic.
//!
//! [`Limits`]: crate::limits::Limits

mod compact;
mod json;
mod scan;

use std::collections::HashMap;
use std::fmt;

pub use compact::{EncodedValue, PostcardValue};
pub use json::{write_json, write_number, write_string};

pub(crate) use compact::{put_ivarint, put_str, put_varint};
pub(crate) use json::SmolSeed;
pub(crate) use scan::Reader;

/// A JSON value with JavaScript semantics (see the module docs).
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Value {
    /// `null`. Setting a key to null deletes it.
    #[default]
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A finite number.
    Number(f64),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object, in JavaScript key order.
    Object(Object),
}

/// A JSON object that keeps JavaScript's key order.
///
/// Array-index keys (canonical decimal integers below 2^32 - 1) come first, ascending,
/// then every other key in insertion order. Inserting an existing key replaces its value
/// in place.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Object {
    entries: Vec<(String, Value)>,
    /// How many of the leading entries are array-index keys.
    index_keys: usize,
}

/// Why a value could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// The JSON text is malformed (including lone surrogates and numbers out of range).
    #[error("invalid json: {0}")]
    Json(String),
    /// Arrays and objects are nested deeper than the limit.
    #[error("value nested deeper than {0} levels")]
    TooDeep(usize),
    /// The encoded value is larger than the limit.
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The size met.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A number is NaN or infinite.
    #[error("number is not finite")]
    NotFinite,
    /// The binary encoding is malformed.
    #[error("malformed encoded value: {0}")]
    Malformed(&'static str),
}

impl Value {
    /// Is this `null`?
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Checks what a peer's decoder checks: numbers are finite and nesting is at most
    /// `max_depth` levels.
    pub fn check(&self, max_depth: usize) -> Result<(), ValueError> {
        fn walk(v: &Value, left: usize, max: usize) -> Result<(), ValueError> {
            match v {
                Value::Number(n) if !n.is_finite() => Err(ValueError::NotFinite),
                Value::Array(_) | Value::Object(_) if left == 0 => Err(ValueError::TooDeep(max)),
                Value::Array(a) => a.iter().try_for_each(|x| walk(x, left - 1, max)),
                Value::Object(o) => o.iter().try_for_each(|(_, x)| walk(x, left - 1, max)),
                _ => Ok(()),
            }
        }
        walk(self, max_depth, max_depth)
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Number(n as f64)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}
impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::Object(o)
    }
}

/// Is `key` an array index in JavaScript's sense (canonical decimal below 2^32 - 1)?
pub(crate) fn array_index(key: &str) -> Option<u32> {
    array_index_bytes(key.as_bytes())
}

/// [`array_index`] of a key's bytes.
fn array_index_bytes(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b[0].is_ascii_digit() || b.len() > 10 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = b.iter().fold(0u64, |n, d| n * 10 + (d - b'0') as u64);
    if n < u32::MAX as u64 {
        Some(n as u32)
    } else {
        None
    }
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts `key` (replacing the value of an existing key in place).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        if let Some(slot) = self.entries.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
            return;
        }
        self.push_new(key, value);
    }

    /// Inserts a key known not to be present.
    fn push_new(&mut self, key: String, value: Value) {
        if let Some(ix) = array_index(&key) {
            let pos = self.entries[..self.index_keys]
                .partition_point(|(k, _)| array_index(k).is_some_and(|o| o < ix));
            self.entries.insert(pos, (key, value));
            self.index_keys += 1;
        } else {
            self.entries.push((key, value));
        }
    }

    /// Builds an object from entries in source order, with `JSON.parse` semantics:
    /// a duplicate key keeps the last value at the position of the first.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, Value)>) -> Self {
        const LINEAR: usize = 16;
        let mut out: Vec<(String, Value)> = Vec::new();
        // Past a few keys, a hash index keeps duplicate detection linear in time.
        let mut index: HashMap<String, usize> = HashMap::new();
        for (k, v) in entries {
            let found = if out.len() < LINEAR {
                out.iter().position(|(x, _)| *x == k)
            } else {
                if index.is_empty() {
                    index.extend(out.iter().enumerate().map(|(i, (x, _))| (x.clone(), i)));
                }
                index.get(&k).copied()
            };
            match found {
                Some(i) => out[i].1 = v,
                None => {
                    if out.len() >= LINEAR {
                        index.insert(k.clone(), out.len());
                    }
                    out.push((k, v));
                }
            }
        }
        let (mut entries, other): (Vec<_>, Vec<_>) =
            out.into_iter().partition(|(k, _)| array_index(k).is_some());
        entries.sort_by_key(|(k, _)| array_index(k));
        let index_keys = entries.len();
        entries.extend(other);
        Object {
            entries,
            index_keys,
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Entries in JavaScript order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Has no keys?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<(String, Value)> for Object {
    fn from_iter<T: IntoIterator<Item = (String, Value)>>(iter: T) -> Self {
        Object::from_entries(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_order_like_javascript() {
        let v = Value::from_json(r#"{"b":1,"a":2,"1":3,"0":4,"01":5,"a":6}"#).unwrap();
        assert_eq!(v.to_json(), r#"{"0":4,"1":3,"b":1,"a":6,"01":5}"#);
    }
}
