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

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use smol_str::SmolStr;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};

use crate::limits::Limits;

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
    /// Parses JSON text with the default [`Limits`].
    pub fn from_json(text: &str) -> Result<Value, ValueError> {
        Self::from_json_with(text.as_bytes(), &Limits::default())
    }

    /// Parses JSON text (bytes must be UTF-8) within `limits` (nesting depth).
    pub fn from_json_with(text: &[u8], limits: &Limits) -> Result<Value, ValueError> {
        let mut de = serde_json::Deserializer::from_slice(text);
        let mut err = None;
        let v = ValueSeed {
            depth: limits.max_depth,
            max_depth: limits.max_depth,
            err: &mut err,
        }
        .deserialize(&mut de);
        let v = match (v, err) {
            (_, Some(e)) => return Err(e),
            (Err(e), None) => return Err(ValueError::Json(e.to_string())),
            (Ok(v), None) => v,
        };
        de.end().map_err(|e| ValueError::Json(e.to_string()))?;
        Ok(v)
    }

    /// Writes this value as `JSON.stringify` would.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        write_json(self, &mut s, false);
        s
    }

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

// ---------------------------------------------------------------------------
// JSON text out, as JSON.stringify writes it.

/// Appends `n` as JavaScript's `Number.prototype.toString` writes it (finite only).
pub fn write_number(n: f64, out: &mut String) {
    if n == 0.0 || !n.is_finite() {
        // -0 is written "0"; non-finite numbers cannot occur in a Value (JSON.stringify: null).
        out.push_str(if n == 0.0 { "0" } else { "null" });
        return;
    }
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE {
        out.push_str(itoa::Buffer::new().format(n as i64));
        return;
    }
    if n < 0.0 {
        out.push('-');
    }
    // The shortest round-trip digits (ryu), laid out by ECMAScript's Number::toString.
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(n.abs());
    // ryu writes plain decimals between 1e-5 and 1e16, where JavaScript does too; an
    // integral value ends in ".0", which JavaScript leaves out.
    if !text.contains('e') && !text.ends_with(".0") {
        out.push_str(text);
        return;
    }
    let (mant, exp) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int_part, frac_part) = mant.split_once('.').unwrap_or((mant, ""));
    let mut digits = [0u8; 40];
    let mut k = 0usize;
    // Position of the decimal point relative to the first digit kept.
    let mut point = int_part.len() as i32 + exp;
    let mut leading = true;
    for &d in int_part.as_bytes().iter().chain(frac_part.as_bytes()) {
        if leading && d == b'0' {
            point -= 1;
            continue;
        }
        leading = false;
        if k < digits.len() {
            digits[k] = d;
            k += 1;
        }
    }
    while k > 1 && digits[k - 1] == b'0' {
        k -= 1;
    }
    let digits = std::str::from_utf8(&digits[..k]).unwrap_or("0");
    let k = k as i32;
    let n_ = point; // value = 0.digits * 10^n_
    if k <= n_ && n_ <= 21 {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (n_ - k) as usize));
    } else if 0 < n_ && n_ <= 21 {
        out.push_str(&digits[..n_ as usize]);
        out.push('.');
        out.push_str(&digits[n_ as usize..]);
    } else if -6 < n_ && n_ <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n_) as usize));
        out.push_str(digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if n_ > 0 { '+' } else { '-' });
        out.push_str(itoa::Buffer::new().format((n_ - 1).abs()));
    }
}

/// Appends `s` as a JSON string literal, escaped as `JSON.stringify` escapes it.
/// With `escape_pipe`, `|` is written `\u007c` (signalling messages hold no raw `|`).
pub fn write_string(s: &str, out: &mut String, escape_pipe: bool) {
    out.push('"');
    let bytes = s.as_bytes();
    let plain = |b: &u8| *b >= 0x20 && *b != b'"' && *b != b'\\' && !(escape_pipe && *b == b'|');
    if bytes.iter().all(plain) {
        out.push_str(s);
        out.push('"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            b'|' if escape_pipe => "\\u007c",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Appends `v` as JSON text, as `JSON.stringify(v)` writes it.
pub fn write_json(v: &Value, out: &mut String, escape_pipe: bool) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(*n, out),
        Value::String(s) => write_string(s, out, escape_pipe),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(x, out, escape_pipe);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out, escape_pipe);
                out.push(':');
                write_json(x, out, escape_pipe);
            }
            out.push('}');
        }
    }
}

// ---------------------------------------------------------------------------
// JSON text in, through serde_json, bounded in depth.

/// Deserializes a [`Value`] from any serde data format, counting nesting depth.
/// Errors of our own (depth, non-finite numbers) land in `err`, so the caller
/// reports them typed rather than as the format's message.
pub(crate) struct ValueSeed<'e> {
    pub(crate) depth: usize,
    pub(crate) max_depth: usize,
    pub(crate) err: &'e mut Option<ValueError>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl ValueSeed<'_> {
    fn fail<E: serde::de::Error>(self, e: ValueError) -> E {
        let msg = e.to_string();
        *self.err = Some(e);
        E::custom(msg)
    }
    fn number<E: serde::de::Error>(self, n: f64) -> Result<Value, E> {
        if n.is_finite() {
            Ok(Value::Number(n))
        } else {
            Err(self.fail(ValueError::NotFinite))
        }
    }
    fn child(&mut self) -> ValueSeed<'_> {
        ValueSeed {
            depth: self.depth - 1,
            max_depth: self.max_depth,
            err: self.err,
        }
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Value, E> {
        self.number(n as f64)
    }
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Value, E> {
        self.number(n as f64)
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Value, E> {
        self.number(n)
    }
    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Value, A::Error> {
        if self.depth == 0 {
            let max = self.max_depth;
            return Err(self.fail(ValueError::TooDeep(max)));
        }
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self.child())? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Value, A::Error> {
        if self.depth == 0 {
            let max = self.max_depth;
            return Err(self.fail(ValueError::TooDeep(max)));
        }
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(self.child())?;
            entries.push((k, v));
        }
        Ok(Value::Object(Object::from_entries(entries)))
    }
}

impl serde::Serialize for Value {
    /// Serializes as JSON data (with serde_json, the same text as [`Value::to_json`]
    /// except for number formatting; use `to_json` for JavaScript-exact text).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => s.serialize_f64(*n),
            Value::String(x) => s.serialize_str(x),
            Value::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for x in a {
                    seq.serialize_element(x)?;
                }
                seq.end()
            }
            Value::Object(o) => {
                let mut m = s.serialize_map(Some(o.len()))?;
                for (k, x) in o.iter() {
                    m.serialize_entry(k, x)?;
                }
                m.end()
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Value {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut err = None;
        let max = Limits::default().max_depth;
        ValueSeed {
            depth: max,
            max_depth: max,
            err: &mut err,
        }
        .deserialize(d)
    }
}

/// Serializes a [`Value`] as the enum of the binary encoding (see the module docs), so
/// that postcard writes exactly the bytes of [`EncodedValue::from_value`].
#[derive(Clone, Copy, Debug)]
pub struct PostcardValue<'a>(pub &'a Value);

impl serde::Serialize for PostcardValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        const NAME: &str = "Value";
        match self.0 {
            Value::Null => s.serialize_unit_variant(NAME, T_NULL as u32, "Null"),
            Value::Bool(false) => s.serialize_unit_variant(NAME, T_FALSE as u32, "False"),
            Value::Bool(true) => s.serialize_unit_variant(NAME, T_TRUE as u32, "True"),
            Value::Number(n) if n.fract() == 0.0 && n.abs() <= MAX_SAFE => {
                s.serialize_newtype_variant(NAME, T_INT as u32, "Int", &(*n as i64))
            }
            Value::Number(n) => s.serialize_newtype_variant(NAME, T_F64 as u32, "F64", n),
            Value::String(x) => s.serialize_newtype_variant(NAME, T_STR as u32, "Str", x),
            Value::Array(a) => {
                let items: Vec<PostcardValue<'_>> = a.iter().map(PostcardValue).collect();
                s.serialize_newtype_variant(NAME, T_ARRAY as u32, "Array", &items)
            }
            Value::Object(o) => {
                let entries: Vec<(&str, PostcardValue<'_>)> =
                    o.iter().map(|(k, v)| (k, PostcardValue(v))).collect();
                s.serialize_newtype_variant(NAME, T_OBJECT as u32, "Object", &entries)
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The binary encoding.

const T_NULL: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_INT: u8 = 3;
const T_F64: u8 = 4;
const T_STR: u8 = 5;
const T_ARRAY: u8 = 6;
const T_OBJECT: u8 = 7;

/// Largest integer magnitude encoded as a varint.
const MAX_SAFE: f64 = 9_007_199_254_740_992.0;

/// A value in its binary encoding (see the module docs). `null` is the single byte 0.
/// Cloning is cheap: small encodings are held inline, larger ones are shared.
#[derive(Clone)]
pub struct EncodedValue(Repr);

/// Encodings up to this size are held inline, without an allocation.
const INLINE: usize = 22;

#[derive(Clone)]
enum Repr {
    Inline(u8, [u8; INLINE]),
    Shared(Arc<[u8]>),
}

impl PartialEq for EncodedValue {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl Eq for EncodedValue {}
impl std::hash::Hash for EncodedValue {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_bytes().hash(h)
    }
}

impl fmt::Debug for EncodedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_value() {
            Ok(v) => write!(f, "EncodedValue({})", v.to_json()),
            Err(_) => write!(f, "EncodedValue(<malformed {:?}>)", self.as_bytes()),
        }
    }
}

impl EncodedValue {
    /// The encoding of `null`.
    pub fn null() -> Self {
        EncodedValue(Repr::Inline(1, [T_NULL; INLINE]))
    }

    /// Holds checked bytes.
    fn from_checked(b: &[u8]) -> Self {
        if b.len() <= INLINE {
            let mut a = [0u8; INLINE];
            a[..b.len()].copy_from_slice(b);
            EncodedValue(Repr::Inline(b.len() as u8, a))
        } else {
            EncodedValue(Repr::Shared(Arc::from(b)))
        }
    }

    /// Encodes `v`.
    pub fn from_value(v: &Value) -> Self {
        if v.is_null() {
            return Self::null();
        }
        SCRATCH.with(|cell| {
            let mut out = cell.take();
            out.clear();
            encode_value(v, &mut out);
            let e = EncodedValue::from_checked(&out);
            cell.set(out);
            e
        })
    }

    /// Parses JSON text straight to the encoding (without building a [`Value`] when
    /// the text is already in JavaScript key order, as `JSON.stringify` writes it).
    pub fn from_json(text: &str, limits: &Limits) -> Result<Self, ValueError> {
        Self::from_json_bytes(text.as_bytes(), limits)
    }

    /// Like [`EncodedValue::from_json`], from UTF-8 bytes.
    pub fn from_json_bytes(text: &[u8], limits: &Limits) -> Result<Self, ValueError> {
        let mut de = serde_json::Deserializer::from_slice(text);
        let v = Self::deserialize_json(&mut de, limits)?;
        de.end().map_err(|e| ValueError::Json(e.to_string()))?;
        Ok(v)
    }

    /// Reads one JSON value from any serde data format, encoding it as it goes.
    pub(crate) fn deserialize_json<'de, D: serde::Deserializer<'de>>(
        d: D,
        limits: &Limits,
    ) -> Result<Self, ValueError> {
        SCRATCH.with(|cell| {
            let mut out = cell.take();
            out.clear();
            let mut err = None;
            let r = EncodeSeed {
                out: &mut out,
                depth: limits.max_depth,
                max_depth: limits.max_depth,
                err: &mut err,
            }
            .deserialize(d);
            let result = match (r, err) {
                (_, Some(e)) => Err(e),
                (Err(e), None) => Err(ValueError::Json(e.to_string())),
                (Ok(canonical), None) => {
                    if out.len() > limits.max_value_len {
                        Err(ValueError::TooLarge {
                            len: out.len(),
                            max: limits.max_value_len,
                        })
                    } else if canonical {
                        Ok(EncodedValue::from_checked(&out))
                    } else {
                        // An object had array-index or repeated keys: normalise through a tree.
                        decode_value(&mut Reader::new(&out), usize::MAX)
                            .map(|v| EncodedValue::from_value(&v))
                    }
                }
            };
            cell.set(out);
            result
        })
    }

    /// Checks untrusted bytes (exactly one value, within `limits`) and takes them.
    pub fn from_bytes(bytes: &[u8], limits: &Limits) -> Result<Self, ValueError> {
        if bytes.len() > limits.max_value_len {
            return Err(ValueError::TooLarge {
                len: bytes.len(),
                max: limits.max_value_len,
            });
        }
        let mut r = Reader::new(bytes);
        skip_value(&mut r, limits.max_depth, limits.max_depth)?;
        if !r.is_empty() {
            return Err(ValueError::Malformed("trailing bytes"));
        }
        let v = EncodedValue::from_checked(bytes);
        if !v.fits(limits) {
            return Err(ValueError::TooLarge {
                len: v.to_json().len(),
                max: limits.max_value_len,
            });
        }
        Ok(v)
    }

    /// Is this value within the maximum value size both as encoded and as JSON text
    /// (which can be up to about six times longer), so that JSON peers take it too?
    pub fn fits(&self, limits: &Limits) -> bool {
        let n = self.len();
        if n > limits.max_value_len {
            return false;
        }
        // JSON text is at most 6 bytes per encoded byte, plus a little.
        n.saturating_mul(6).saturating_add(32) <= limits.max_value_len
            || self.to_json().len() <= limits.max_value_len
    }

    /// Reads one value from the front of `r` (bounded by `limits`), keeping its bytes.
    pub(crate) fn take(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, ValueError> {
        let start = r.rest();
        skip_value(r, limits.max_depth, limits.max_depth)?;
        let len = start.len() - r.rest().len();
        if len > limits.max_value_len {
            return Err(ValueError::TooLarge {
                len,
                max: limits.max_value_len,
            });
        }
        Ok(EncodedValue::from_checked(&start[..len]))
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(n, a) => &a[..*n as usize],
            Repr::Shared(b) => b,
        }
    }

    /// Size of the encoding in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Never true: an encoding has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    /// Is this `null` (a delete)?
    pub fn is_null(&self) -> bool {
        self.as_bytes().first() == Some(&T_NULL)
    }

    /// Decodes to a [`Value`].
    pub fn to_value(&self) -> Result<Value, ValueError> {
        let mut r = Reader::new(self.as_bytes());
        let v = decode_value(&mut r, usize::MAX)?;
        Ok(v)
    }

    /// Appends the value as JSON text (as `JSON.stringify`).
    pub fn write_json(&self, out: &mut String, escape_pipe: bool) {
        let mut r = Reader::new(self.as_bytes());
        // The bytes were checked when this value was made; a failure cannot happen.
        if json_from_encoded(&mut r, out, escape_pipe).is_err() {
            out.push_str("null");
        }
    }

    /// The value as JSON text.
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        self.write_json(&mut s, false);
        s
    }
}

impl From<&Value> for EncodedValue {
    fn from(v: &Value) -> Self {
        EncodedValue::from_value(v)
    }
}
impl From<Value> for EncodedValue {
    fn from(v: Value) -> Self {
        EncodedValue::from_value(&v)
    }
}

/// Appends a varint in postcard's form (LEB128: 7 bits a byte, low bits first).
pub(crate) fn put_varint(mut n: u64, out: &mut Vec<u8>) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends a zigzag varint.
pub(crate) fn put_ivarint(n: i64, out: &mut Vec<u8>) {
    put_varint(((n << 1) ^ (n >> 63)) as u64, out);
}

/// Appends a varint length and the bytes of `s`.
pub(crate) fn put_str(s: &str, out: &mut Vec<u8>) {
    put_varint(s.len() as u64, out);
    out.extend_from_slice(s.as_bytes());
}

fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(T_NULL),
        Value::Bool(false) => out.push(T_FALSE),
        Value::Bool(true) => out.push(T_TRUE),
        Value::Number(n) => {
            if n.fract() == 0.0 && n.abs() <= MAX_SAFE {
                // -0 becomes 0, as it does in JSON text.
                out.push(T_INT);
                put_ivarint(*n as i64, out);
            } else {
                out.push(T_F64);
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        Value::String(s) => {
            out.push(T_STR);
            put_str(s, out);
        }
        Value::Array(a) => {
            out.push(T_ARRAY);
            put_varint(a.len() as u64, out);
            for x in a {
                encode_value(x, out);
            }
        }
        Value::Object(o) => {
            out.push(T_OBJECT);
            put_varint(o.len() as u64, out);
            for (k, x) in o.iter() {
                put_str(k, out);
                encode_value(x, out);
            }
        }
    }
}

thread_local! {
    /// A reused buffer for encoding, so making a value costs one allocation.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Encodes a JSON value from a serde data format straight into `out`. Returns whether
/// the result is canonical: false when an object had an array-index or repeated key,
/// which the caller then normalises to JavaScript order.
struct EncodeSeed<'o, 'e> {
    out: &'o mut Vec<u8>,
    depth: usize,
    max_depth: usize,
    err: &'e mut Option<ValueError>,
}

impl EncodeSeed<'_, '_> {
    fn fail<E: serde::de::Error>(self, e: ValueError) -> E {
        let msg = e.to_string();
        *self.err = Some(e);
        E::custom(msg)
    }
    fn child(&mut self) -> Result<EncodeSeed<'_, '_>, ValueError> {
        if self.depth == 0 {
            return Err(ValueError::TooDeep(self.max_depth));
        }
        Ok(EncodeSeed {
            out: self.out,
            depth: self.depth - 1,
            max_depth: self.max_depth,
            err: self.err,
        })
    }
    fn number<E: serde::de::Error>(self, n: f64) -> Result<bool, E> {
        if !n.is_finite() {
            return Err(self.fail(ValueError::NotFinite));
        }
        encode_value(&Value::Number(n), self.out);
        Ok(true)
    }
    /// Reserves room for a count; `finish_count` writes it and closes the gap.
    fn count_at(out: &mut Vec<u8>) -> usize {
        out.extend_from_slice(&[0; 10]);
        out.len() - 10
    }
    fn finish_count(out: &mut Vec<u8>, at: usize, mut n: u64) {
        let mut i = at;
        while n >= 0x80 {
            out[i] = (n as u8) | 0x80;
            n >>= 7;
            i += 1;
        }
        out[i] = n as u8;
        out.drain(i + 1..at + 10);
    }
}

impl<'de> DeserializeSeed<'de> for EncodeSeed<'_, '_> {
    type Value = bool;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EncodeSeed<'_, '_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        self.out.push(T_NULL);
        Ok(true)
    }
    fn visit_none<E>(self) -> Result<bool, E> {
        self.out.push(T_NULL);
        Ok(true)
    }
    fn visit_bool<E>(self, b: bool) -> Result<bool, E> {
        self.out.push(if b { T_TRUE } else { T_FALSE });
        Ok(true)
    }
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<bool, E> {
        self.number(n as f64)
    }
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<bool, E> {
        self.number(n as f64)
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<bool, E> {
        self.number(n)
    }
    fn visit_str<E>(self, s: &str) -> Result<bool, E> {
        self.out.push(T_STR);
        put_str(s, self.out);
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<bool, A::Error> {
        self.out.push(T_ARRAY);
        let at = Self::count_at(self.out);
        let mut n = 0u64;
        let mut canonical = true;
        loop {
            let child = match self.child() {
                Ok(c) => c,
                Err(e) => return Err(self.fail(e)),
            };
            match seq.next_element_seed(child)? {
                Some(c) => canonical &= c,
                None => break,
            }
            n += 1;
        }
        Self::finish_count(self.out, at, n);
        Ok(canonical)
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<bool, A::Error> {
        self.out.push(T_OBJECT);
        let at = Self::count_at(self.out);
        let mut n = 0u64;
        let mut canonical = true;
        // Where each key's bytes are, to spot repeats (few keys: linear scan; past
        // 32 keys the slow path checks).
        const FAST: usize = 32;
        let mut keys = [(0usize, 0usize); FAST];
        while let Some(k) = map.next_key_seed(SmolSeed)? {
            let i = n as usize;
            if array_index(&k).is_some() || i >= FAST {
                canonical = false;
            } else {
                let kb = k.as_bytes();
                if keys[..i].iter().any(|&(s, l)| &self.out[s..s + l] == kb) {
                    canonical = false;
                }
                keys[i] = (self.out.len() + varint_len(kb.len() as u64), kb.len());
            }
            put_str(&k, self.out);
            let child = match self.child() {
                Ok(c) => c,
                Err(e) => return Err(self.fail(e)),
            };
            canonical &= map.next_value_seed(child)?;
            n += 1;
        }
        Self::finish_count(self.out, at, n);
        Ok(canonical)
    }
}

/// Deserializes a string as a [`SmolStr`]: short strings (most keys and ids) need no
/// allocation, escaped or not.
pub(crate) struct SmolSeed;

impl<'de> DeserializeSeed<'de> for SmolSeed {
    type Value = SmolStr;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<SmolStr, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for SmolSeed {
    type Value = SmolStr;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E>(self, s: &str) -> Result<SmolStr, E> {
        Ok(SmolStr::new(s))
    }
}

/// Bytes a varint of `v` takes.
fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(7).max(1)
}

/// A cursor over untrusted bytes, reading postcard primitives.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }
    /// Skips `n` bytes already checked (at most what is left).
    pub(crate) fn advance(&mut self, n: usize) {
        self.buf = &self.buf[n.min(self.buf.len())..];
    }
    pub(crate) fn u8(&mut self) -> Result<u8, ValueError> {
        let (&b, rest) = self
            .buf
            .split_first()
            .ok_or(ValueError::Malformed("truncated"))?;
        self.buf = rest;
        Ok(b)
    }
    /// An unsigned varint, in its shortest form only (so an encoding is canonical).
    pub(crate) fn varint(&mut self) -> Result<u64, ValueError> {
        let (v, next) = scan_varint(self.buf, 0).map_err(ValueError::Malformed)?;
        self.buf = &self.buf[next..];
        Ok(v)
    }
    /// A zigzag varint, in its shortest form only.
    pub(crate) fn ivarint(&mut self) -> Result<i64, ValueError> {
        Ok(zigzag(self.varint()?))
    }
    pub(crate) fn f64(&mut self) -> Result<f64, ValueError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_le_bytes(a))
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], ValueError> {
        if n > self.buf.len() {
            return Err(ValueError::Malformed("truncated"));
        }
        let (b, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(b)
    }
    /// A string: canonical varint length, then UTF-8.
    pub(crate) fn str(&mut self) -> Result<&'a str, ValueError> {
        let n = self.varint()?;
        if n > self.buf.len() as u64 {
            return Err(ValueError::Malformed("truncated"));
        }
        let b = self.bytes(n as usize)?;
        std::str::from_utf8(b).map_err(|_| ValueError::Malformed("invalid utf-8"))
    }

    /// A count of items each at least one byte long: never more than the bytes left.
    pub(crate) fn count(&mut self) -> Result<usize, ValueError> {
        let (n, next) = scan_count(self.buf, 0).map_err(ValueError::Malformed)?;
        self.buf = &self.buf[next..];
        Ok(n)
    }
}

/// A zigzag-encoded integer's value.
fn zigzag(z: u64) -> i64 {
    (z >> 1) as i64 ^ -((z & 1) as i64)
}

/// Is `i` within JavaScript's exact integers (|i| <= 2^53)?
fn safe_int(i: i64) -> bool {
    i.unsigned_abs() <= 1 << 53
}

fn finite(n: f64) -> Result<f64, ValueError> {
    if n.is_finite() {
        Ok(n)
    } else {
        Err(ValueError::NotFinite)
    }
}

fn int_ok(i: i64) -> Result<i64, ValueError> {
    if safe_int(i) {
        Ok(i)
    } else {
        Err(ValueError::Malformed("integer out of range"))
    }
}

/// Validates one value without building it. `depth` levels of nesting remain.
///
/// Every value that reaches a store passes here, so it is written for speed: an index
/// over the bytes and a small error type that stays in registers, turned into a
/// [`ValueError`] once, at the end.
fn skip_value(r: &mut Reader<'_>, depth: usize, max: usize) -> Result<(), ValueError> {
    let b = r.rest();
    match scan_value(b, 0, depth) {
        Ok(end) => {
            r.advance(end);
            Ok(())
        }
        Err(Bad::Malformed(m)) => Err(ValueError::Malformed(m)),
        Err(Bad::TooDeep) => Err(ValueError::TooDeep(max)),
        Err(Bad::NotFinite) => Err(ValueError::NotFinite),
    }
}

/// Why [`scan_value`] refused a value.
#[derive(Clone, Copy)]
enum Bad {
    Malformed(&'static str),
    TooDeep,
    NotFinite,
}

impl From<&'static str> for Bad {
    fn from(m: &'static str) -> Self {
        Bad::Malformed(m)
    }
}

const TRUNCATED: &str = "truncated";

/// A canonical unsigned varint at `b[i..]`: (value, next index). The one varint reader:
/// [`Reader::varint`] uses it too.
#[inline(always)]
fn scan_varint(b: &[u8], i: usize) -> Result<(u64, usize), &'static str> {
    // One or two bytes are the common cases. (A zero second byte is overlong: the loop
    // below rejects it.)
    match b.get(i..) {
        Some(&[b0, ..]) if b0 < 0x80 => return Ok((b0 as u64, i + 1)),
        Some(&[b0, b1, ..]) if b1 < 0x80 && b1 != 0 => {
            return Ok(((b0 & 0x7f) as u64 | (b1 as u64) << 7, i + 2))
        }
        _ => {}
    }
    let mut v = 0u64;
    let mut shift = 0;
    let mut j = i;
    loop {
        let Some(&x) = b.get(j) else {
            return Err(TRUNCATED);
        };
        j += 1;
        if shift == 63 && x > 1 {
            return Err("bad varint");
        }
        v |= ((x & 0x7f) as u64) << shift;
        if x < 0x80 {
            // The shortest form only: a last byte of zero (after the first) is overlong.
            if x == 0 && j - i > 1 {
                return Err("overlong varint");
            }
            return Ok((v, j));
        }
        shift += 7;
        if shift > 63 {
            return Err("bad varint");
        }
    }
}

/// A string at `b[i..]` (length, then UTF-8): the index after it.
#[inline(always)]
fn scan_str(b: &[u8], i: usize) -> Result<(&[u8], usize), Bad> {
    let (n, i) = scan_varint(b, i)?;
    if n > (b.len() - i) as u64 {
        return Err(TRUNCATED.into());
    }
    let s = &b[i..i + n as usize];
    if !s.is_ascii() && std::str::from_utf8(s).is_err() {
        return Err("invalid utf-8".into());
    }
    Ok((s, i + n as usize))
}

/// A count of items each at least one byte long: never more than the bytes left.
#[inline(always)]
fn scan_count(b: &[u8], i: usize) -> Result<(usize, usize), &'static str> {
    let (n, i) = scan_varint(b, i)?;
    if n > (b.len() - i) as u64 {
        return Err("count exceeds input");
    }
    Ok((n as usize, i))
}

/// Checks the value at `b[i..]`; returns the index after it.
fn scan_value(b: &[u8], i: usize, depth: usize) -> Result<usize, Bad> {
    let Some(&tag) = b.get(i) else {
        return Err(TRUNCATED.into());
    };
    let i = i + 1;
    match tag {
        T_NULL | T_FALSE | T_TRUE => Ok(i),
        T_INT => {
            let (z, i) = scan_varint(b, i)?;
            if !safe_int(zigzag(z)) {
                return Err("integer out of range".into());
            }
            Ok(i)
        }
        T_F64 => {
            let Some(bytes) = b.get(i..i + 8) else {
                return Err(TRUNCATED.into());
            };
            let mut a = [0u8; 8];
            a.copy_from_slice(bytes);
            let n = f64::from_le_bytes(a);
            if !n.is_finite() {
                return Err(Bad::NotFinite);
            }
            if n.fract() == 0.0 && n.abs() <= MAX_SAFE {
                return Err(Bad::Malformed("integer encoded as f64"));
            }
            Ok(i + 8)
        }
        T_STR => Ok(scan_str(b, i)?.1),
        T_ARRAY => {
            if depth == 0 {
                return Err(Bad::TooDeep);
            }
            let (n, mut i) = scan_count(b, i)?;
            for _ in 0..n {
                i = scan_value(b, i, depth - 1)?;
            }
            Ok(i)
        }
        T_OBJECT => {
            if depth == 0 {
                return Err(Bad::TooDeep);
            }
            scan_object(b, i, depth)
        }
        _ => Err(Bad::Malformed("unknown value tag")),
    }
}

/// The entries of an object (after its tag). Keys must be unique and in JavaScript
/// order, so that a value has exactly one encoding (decode then encode gives the same
/// bytes).
fn scan_object(b: &[u8], i: usize, depth: usize) -> Result<usize, Bad> {
    let (n, mut i) = scan_count(b, i)?;
    const SMALL: usize = 16;
    let mut small: [&[u8]; SMALL] = [b""; SMALL];
    // Only objects of more than SMALL keys build a set (and its hasher).
    let mut big: Option<std::collections::HashSet<&[u8]>> = None;
    // Some(array index) of the previous key, or None for a plain key.
    let mut prev: Option<Option<u32>> = None;
    for k_ix in 0..n {
        let (k, next) = scan_str(b, i)?;
        i = next;
        let ix = array_index_bytes(k);
        let ordered = match (prev, ix) {
            (None, _) => true,
            (Some(Some(a)), Some(b)) => a < b,
            (Some(_), None) => true,
            (Some(None), Some(_)) => false,
        };
        if !ordered {
            return Err(Bad::Malformed("object keys out of order"));
        }
        let dup = if k_ix < SMALL {
            let d = small[..k_ix].contains(&k);
            small[k_ix] = k;
            d
        } else {
            !big.get_or_insert_with(|| small.iter().copied().collect())
                .insert(k)
        };
        if dup {
            return Err(Bad::Malformed("duplicate object key"));
        }
        prev = Some(ix);
        i = scan_value(b, i, depth - 1)?;
    }
    Ok(i)
}

fn decode_value(r: &mut Reader<'_>, depth: usize) -> Result<Value, ValueError> {
    Ok(match r.u8()? {
        T_NULL => Value::Null,
        T_FALSE => Value::Bool(false),
        T_TRUE => Value::Bool(true),
        T_INT => Value::Number(int_ok(r.ivarint()?)? as f64),
        T_F64 => Value::Number(finite(r.f64()?)?),
        T_STR => Value::String(r.str()?.to_owned()),
        T_ARRAY => {
            let depth = depth.checked_sub(1).ok_or(ValueError::TooDeep(0))?;
            let n = r.count()?;
            let mut a = Vec::with_capacity(n);
            for _ in 0..n {
                a.push(decode_value(r, depth)?);
            }
            Value::Array(a)
        }
        T_OBJECT => {
            let depth = depth.checked_sub(1).ok_or(ValueError::TooDeep(0))?;
            let n = r.count()?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let k = r.str()?.to_owned();
                entries.push((k, decode_value(r, depth)?));
            }
            Value::Object(Object::from_entries(entries))
        }
        _ => return Err(ValueError::Malformed("unknown value tag")),
    })
}

fn json_from_encoded(r: &mut Reader<'_>, out: &mut String, pipe: bool) -> Result<(), ValueError> {
    match r.u8()? {
        T_NULL => out.push_str("null"),
        T_FALSE => out.push_str("false"),
        T_TRUE => out.push_str("true"),
        T_INT => out.push_str(itoa::Buffer::new().format(r.ivarint()?)),
        T_F64 => write_number(r.f64()?, out),
        T_STR => write_string(r.str()?, out, pipe),
        T_ARRAY => {
            out.push('[');
            for i in 0..r.count()? {
                if i > 0 {
                    out.push(',');
                }
                json_from_encoded(r, out, pipe)?;
            }
            out.push(']');
        }
        T_OBJECT => {
            out.push('{');
            for i in 0..r.count()? {
                if i > 0 {
                    out.push(',');
                }
                write_string(r.str()?, out, pipe);
                out.push(':');
                json_from_encoded(r, out, pipe)?;
            }
            out.push('}');
        }
        _ => return Err(ValueError::Malformed("unknown value tag")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(n: f64) -> String {
        let mut s = String::new();
        write_number(n, &mut s);
        s
    }

    #[test]
    fn numbers_like_javascript() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(-0.0), "0");
        assert_eq!(num(1795713892493.0), "1795713892493");
        assert_eq!(num(1795713892493.001), "1795713892493.001");
        assert_eq!(num(1e21), "1e+21");
        assert_eq!(num(1e20), "100000000000000000000");
        assert_eq!(num(1.5e-7), "1.5e-7");
        assert_eq!(num(1e-6), "0.000001");
        assert_eq!(num(5e-324), "5e-324");
        assert_eq!(num(-1.25), "-1.25");
        assert_eq!(num(1.7976931348623157e308), "1.7976931348623157e+308");
        assert_eq!(num(0.1 + 0.2), "0.30000000000000004");
    }

    /// An object encoding with `keys` (each `null`), as the encoder never writes it
    /// when a key repeats.
    fn raw_object(keys: &[String]) -> Vec<u8> {
        let mut b = vec![T_OBJECT, keys.len() as u8];
        for k in keys {
            b.push(k.len() as u8);
            b.extend_from_slice(k.as_bytes());
            b.push(T_NULL);
        }
        b
    }

    #[test]
    fn duplicate_object_keys_are_malformed_in_small_and_large_objects() {
        let lim = Limits::default();
        let take = |b: &[u8]| EncodedValue::take(&mut Reader::new(b), &lim);
        let keys = |n: usize| (0..n).map(|i| format!("k{i:02}")).collect::<Vec<_>>();
        assert!(take(&raw_object(&keys(3))).is_ok());
        assert!(take(&raw_object(&keys(40))).is_ok());
        for n in [2, 16, 17, 40] {
            let mut k = keys(n);
            k.push(k[n / 2].clone());
            assert_eq!(
                take(&raw_object(&k)).err(),
                Some(ValueError::Malformed("duplicate object key")),
                "{n} keys and a repeat"
            );
        }
    }

    #[test]
    fn object_order_like_javascript() {
        let v = Value::from_json(r#"{"b":1,"a":2,"1":3,"0":4,"01":5,"a":6}"#).unwrap();
        assert_eq!(v.to_json(), r#"{"0":4,"1":3,"b":1,"a":6,"01":5}"#);
    }

    #[test]
    fn lone_surrogates_and_depth_rejected() {
        assert!(Value::from_json(r#""\ud800""#).is_err());
        assert!(Value::from_json(r#""\ud83d\ude00""#).is_ok());
        let deep = "[".repeat(100) + &"]".repeat(100);
        let lim = Limits {
            max_depth: 10,
            ..Limits::default()
        };
        assert_eq!(
            Value::from_json_with(deep.as_bytes(), &lim),
            Err(ValueError::TooDeep(10))
        );
    }

    #[test]
    fn encoding_round_trip_and_compact() {
        let v =
            Value::from_json(r#"{"n":12345,"s":"v12345","f":1.5,"a":[null,true,false]}"#).unwrap();
        let e = EncodedValue::from_value(&v);
        assert_eq!(e.to_value().unwrap(), v);
        assert_eq!(e.to_json(), v.to_json());
        let small =
            EncodedValue::from_value(&Value::from_json(r#"{"n":12345,"s":"v12345"}"#).unwrap());
        assert_eq!(small.len(), 18);
        EncodedValue::from_bytes(e.as_bytes(), &Limits::default()).unwrap();
    }

    #[test]
    fn postcard_writes_the_same_bytes() {
        let v = Value::from_json(
            r#"{"n":12345,"s":"v12345","f":-1.5,"a":[null,true,false,-7,9007199254740993],"o":{}}"#,
        )
        .unwrap();
        let by_postcard = postcard::to_allocvec(&PostcardValue(&v)).unwrap();
        assert_eq!(by_postcard, EncodedValue::from_value(&v).as_bytes());
    }

    #[test]
    fn overlong_varints_are_rejected() {
        let lim = Limits::default();
        assert!(EncodedValue::from_bytes(&[3, 121], &lim).is_ok());
        assert_eq!(
            EncodedValue::from_bytes(&[3, 249, 0], &lim),
            Err(ValueError::Malformed("overlong varint"))
        );
        assert!(EncodedValue::from_bytes(&[5, 0x80, 0x00], &lim).is_err());
        // 2^53 + 1 is not a safe integer (found in review).
        let mut b = vec![3];
        put_ivarint((1i64 << 53) + 1, &mut b);
        assert!(EncodedValue::from_bytes(&b, &lim).is_err());
    }
}
