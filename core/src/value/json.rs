//! JSON text in and out, as `JSON.parse` reads it and `JSON.stringify` writes it.

use std::fmt;

use smol_str::SmolStr;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};

use super::compact::MAX_SAFE;
use super::{Object, Value, ValueError};
use crate::limits::Limits;

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
}
