//! The compact (postcard) encoding: [`EncodedValue`], [`PostcardValue`], encoding a
//! value (from a [`Value`] or straight from JSON text) and decoding checked bytes.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::json::{write_number, write_string, SmolSeed};
use super::scan::{safe_int, skip_value, Reader};
use super::{array_index, Object, Value, ValueError};
use crate::limits::Limits;

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

pub(super) const T_NULL: u8 = 0;
pub(super) const T_FALSE: u8 = 1;
pub(super) const T_TRUE: u8 = 2;
pub(super) const T_INT: u8 = 3;
pub(super) const T_F64: u8 = 4;
pub(super) const T_STR: u8 = 5;
pub(super) const T_ARRAY: u8 = 6;
pub(super) const T_OBJECT: u8 = 7;

/// Largest integer magnitude encoded as a varint.
pub(super) const MAX_SAFE: f64 = 9_007_199_254_740_992.0;

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

/// Bytes a varint of `v` takes.
fn varint_len(v: u64) -> usize {
    (64 - v.leading_zeros() as usize).div_ceil(7).max(1)
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
}
