//! Reading untrusted encoded bytes: the [`Reader`] cursor over postcard primitives,
//! and the index-based scanner that validates a value without building it.

use super::compact::{MAX_SAFE, T_ARRAY, T_F64, T_FALSE, T_INT, T_NULL, T_OBJECT, T_STR, T_TRUE};
use super::{array_index_bytes, ValueError};

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
pub(super) fn safe_int(i: i64) -> bool {
    i.unsigned_abs() <= 1 << 53
}

/// Validates one value without building it. `depth` levels of nesting remain.
///
/// Every value that reaches a store passes here, so it is written for speed: an index
/// over the bytes and a small error type that stays in registers, turned into a
/// [`ValueError`] once, at the end.
pub(super) fn skip_value(r: &mut Reader<'_>, depth: usize, max: usize) -> Result<(), ValueError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::limits::Limits;
    use crate::value::{put_ivarint, EncodedValue};

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
