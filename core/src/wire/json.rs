//! The json codec: scuttlebutt's JSON lines, written byte for byte as Node writes them
//! and read through serde_json, one line at a time.

use smol_str::SmolStr;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{check_ts, control_message, DecodeError, Decoder, Encoder, Message};
use crate::limits::Limits;
use crate::security::updates::{write_update_json, UpdateSig};
use crate::store::{valid_source, Clock, Update, UpdateRef};
use crate::value::{array_index, write_number, write_string, EncodedValue, SmolSeed};

impl Encoder {
    /// [`Encoder::digest`] as a JSON line.
    pub(super) fn json_digest<'a>(
        &mut self,
        id: &str,
        clock: impl Iterator<Item = (&'a str, f64)>,
    ) {
        let mut l = std::mem::take(&mut self.line);
        l.clear();
        l.push_str("{\"id\":");
        write_string(id, &mut l, false);
        l.push_str(",\"clock\":{");
        // A JavaScript object: array-index keys first, ascending, as JSON.stringify writes them.
        let mut entries: Vec<(&str, f64)> = clock.collect();
        entries.sort_by_key(|(s, _)| array_index(s).map_or(1u64 << 32, u64::from));
        for (i, (s, t)) in entries.into_iter().enumerate() {
            if i > 0 {
                l.push(',');
            }
            write_string(s, &mut l, false);
            l.push(':');
            write_number(t, &mut l);
        }
        l.push_str("}}\n");
        self.json_line(&l);
        self.line = l;
    }

    /// [`Encoder::control`] as a JSON line.
    pub(super) fn json_control(&mut self, s: &str) {
        let mut l = String::new();
        write_string(s, &mut l, false);
        l.push('\n');
        self.json_line(&l);
    }

    /// [`Encoder::update`] as a JSON line.
    pub(super) fn json_update(&mut self, u: UpdateRef<'_>) {
        let mut l = std::mem::take(&mut self.line);
        l.clear();
        write_update_json(u, &mut l);
        if let Some(sig) = u.sig {
            // scuttlebutt's signed form: the signature is the fourth element.
            l.pop();
            l.push_str(",\"");
            l.push_str(&crate::security::b64url(sig));
            l.push_str("\"]");
        }
        l.push('\n');
        self.json_line(&l);
        self.line = l;
    }

    pub(super) fn json_line(&mut self, line: &str) {
        if self.cur.len() + line.len() <= self.frame_size {
            self.cur.extend_from_slice(line.as_bytes());
            return;
        }
        self.finish_chunk();
        if line.len() <= self.frame_size {
            self.cur.extend_from_slice(line.as_bytes());
            return;
        }
        // A line longer than a chunk: split between UTF-8 sequences.
        let mut rest = line;
        while rest.len() > self.frame_size {
            let mut cut = self.frame_size;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            self.ready.push_back(rest.as_bytes()[..cut].to_vec());
            rest = &rest[cut..];
        }
        self.cur.extend_from_slice(rest.as_bytes());
    }
}

impl Decoder {
    pub(super) fn push_json(&mut self, mut bytes: &[u8]) {
        let max = self.limits.max_line_len();
        while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
            let (head, tail) = bytes.split_at(nl);
            if self.overflow {
                // The rest of a line already reported as too long.
                self.overflow = false;
            } else if self.buf.is_empty() {
                self.json_line(head);
            } else if self.buf.len() + head.len() > max {
                self.buf.clear();
                self.out.push_back(Err(DecodeError::LineTooLong(max)));
            } else {
                let mut line = std::mem::take(&mut self.buf);
                line.extend_from_slice(head);
                self.json_line(&line);
                line.clear();
                self.buf = line;
            }
            bytes = &tail[1..];
        }
        if self.overflow {
            return;
        }
        if self.buf.len() + bytes.len() > max {
            // Drop the partial line rather than hold more than the limit.
            self.buf = Vec::new();
            self.overflow = true;
            self.out.push_back(Err(DecodeError::LineTooLong(max)));
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    pub(super) fn json_line(&mut self, line: &[u8]) {
        if line.len() > self.limits.max_line_len() {
            self.out
                .push_back(Err(DecodeError::LineTooLong(self.limits.max_line_len())));
            return;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return; // scuttlebutt skips blank lines
        }
        let r = decode_json_with(line, &self.limits, &mut self.last_source);
        self.out.push_back(r);
    }
}

fn check_key(k: &str, lim: &Limits) -> Result<(), DecodeError> {
    if k.len() > lim.max_key_len {
        Err(DecodeError::KeyTooLong {
            len: k.len(),
            max: lim.max_key_len,
        })
    } else {
        Ok(())
    }
}

/// Decodes one JSON line (without its newline).
pub fn decode_json_message(line: &[u8], limits: &Limits) -> Result<Message, DecodeError> {
    decode_json_with(line, limits, &mut None)
}

/// Decodes one JSON line; `last_source` keeps the previous line's source id, so that a
/// run of updates from one source shares one allocation.
fn decode_json_with(
    line: &[u8],
    limits: &Limits,
    last_source: &mut Option<SmolStr>,
) -> Result<Message, DecodeError> {
    let mut de = serde_json::Deserializer::from_slice(line);
    let mut err = None;
    let r = MessageSeed {
        limits,
        err: &mut err,
        last_source,
    }
    .deserialize(&mut de);
    let m = match (r, err) {
        (_, Some(e)) => return Err(e),
        (Err(e), None) => return Err(DecodeError::Json(e.to_string())),
        (Ok(m), None) => m,
    };
    de.end().map_err(|e| DecodeError::Json(e.to_string()))?;
    Ok(m)
}

/// serde seed for one scuttlebutt message; typed errors land in `err`.
struct MessageSeed<'a> {
    limits: &'a Limits,
    err: &'a mut Option<DecodeError>,
    last_source: &'a mut Option<SmolStr>,
}

fn fail<E: serde::de::Error>(slot: &mut Option<DecodeError>, e: DecodeError) -> E {
    let msg = e.to_string();
    *slot = Some(e);
    E::custom(msg)
}

impl<'de> DeserializeSeed<'de> for MessageSeed<'_> {
    type Value = Message;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Message, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MessageSeed<'_> {
    type Value = Message;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scuttlebutt message")
    }
    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Message, E> {
        Ok(control_message(s))
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Message, E> {
        Err(fail(self.err, DecodeError::NotAMessage("a boolean")))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Message, E> {
        Err(fail(self.err, DecodeError::NotAMessage("a number")))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Message, E> {
        Err(fail(self.err, DecodeError::NotAMessage("a number")))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Message, E> {
        Err(fail(self.err, DecodeError::NotAMessage("a number")))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Message, E> {
        Err(fail(self.err, DecodeError::NotAMessage("null")))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Message, A::Error> {
        let lim = self.limits;
        let Some((key, value)) = seq.next_element_seed(KeyValueSeed {
            limits: lim,
            err: &mut *self.err,
        })?
        else {
            return Err(fail(self.err, DecodeError::NotAMessage("an empty array")));
        };
        let Some(ts) = seq.next_element_seed(TsSeed {
            err: &mut *self.err,
        })?
        else {
            return Err(fail(
                self.err,
                DecodeError::NotAMessage("an update without a timestamp"),
            ));
        };
        let Some(source) = seq.next_element_seed(SmolSeed)? else {
            return Err(fail(
                self.err,
                DecodeError::NotAMessage("an update without a source"),
            ));
        };
        // A signature: the fourth element, base64url of 64 bytes. Anything else there
        // (or after it) is ignored, as scuttlebutt does without a verify option; a
        // secured store refuses the update as unsigned.
        let sig = seq.next_element_seed(SigSeed)?.flatten();
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        let source = match self.last_source.as_ref() {
            Some(last) if *last == source => last.clone(),
            _ => {
                if !valid_source(&source, lim) {
                    return Err(fail(self.err, DecodeError::BadSource));
                }
                *self.last_source = Some(source.clone());
                source
            }
        };
        Ok(Message::Update(Update {
            key,
            value,
            ts,
            source,
            sig,
        }))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let lim = self.limits;
        let mut id = None;
        let mut clock = None;
        while let Some(k) = map.next_key_seed(SmolSeed)? {
            match k.as_str() {
                "id" => id = Some(map.next_value::<String>()?),
                "clock" => {
                    clock = Some(map.next_value_seed(ClockSeed {
                        limits: lim,
                        err: &mut *self.err,
                    })?)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let Some(clock) = clock else {
            return Err(fail(
                self.err,
                DecodeError::NotAMessage("an object without a clock"),
            ));
        };
        let Some(id) = id else {
            return Err(fail(
                self.err,
                DecodeError::NotAMessage("a digest without an id"),
            ));
        };
        if !valid_source(&id, lim) {
            return Err(fail(self.err, DecodeError::BadSource));
        }
        Ok(Message::Digest { id, clock })
    }
}

struct TsSeed<'a> {
    err: &'a mut Option<DecodeError>,
}

impl<'de> DeserializeSeed<'de> for TsSeed<'_> {
    type Value = f64;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TsSeed<'_> {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a timestamp")
    }
    fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<f64, E> {
        self.visit_f64(n as f64)
    }
    fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<f64, E> {
        self.visit_f64(n as f64)
    }
    fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<f64, E> {
        check_ts(n).map_err(|e| fail(self.err, e))
    }
}

struct KeyValueSeed<'a> {
    limits: &'a Limits,
    err: &'a mut Option<DecodeError>,
}

impl<'de> DeserializeSeed<'de> for KeyValueSeed<'_> {
    type Value = (SmolStr, EncodedValue);
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for KeyValueSeed<'_> {
    type Value = (SmolStr, EncodedValue);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[key, value]")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let Some(key) = seq.next_element_seed(SmolSeed)? else {
            return Err(fail(
                self.err,
                DecodeError::NotAMessage("an update without a key"),
            ));
        };
        if let Err(e) = check_key(&key, self.limits) {
            return Err(fail(self.err, e));
        }
        let Some(value) = seq.next_element_seed(EncodedSeed {
            limits: self.limits,
            err: &mut *self.err,
        })?
        else {
            return Err(fail(
                self.err,
                DecodeError::NotAMessage("an update without a value"),
            ));
        };
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok((key, value))
    }
}

/// A JSON value read straight into its encoding.
struct EncodedSeed<'a> {
    limits: &'a Limits,
    err: &'a mut Option<DecodeError>,
}

impl<'de> DeserializeSeed<'de> for EncodedSeed<'_> {
    type Value = EncodedValue;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<EncodedValue, D::Error> {
        EncodedValue::deserialize_json(d, self.limits)
            .map_err(|e| fail(self.err, DecodeError::Value(e)))
    }
}

struct ClockSeed<'a> {
    limits: &'a Limits,
    err: &'a mut Option<DecodeError>,
}

impl<'de> DeserializeSeed<'de> for ClockSeed<'_> {
    type Value = Clock;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Clock, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ClockSeed<'_> {
    type Value = Clock;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a clock object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Clock, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            let t = map.next_value_seed(TsSeed {
                err: &mut *self.err,
            })?;
            if !valid_source(&k, self.limits) {
                return Err(fail(self.err, DecodeError::BadSource));
            }
            if entries.len() >= self.limits.max_clock_entries {
                return Err(fail(
                    self.err,
                    DecodeError::ClockTooLarge(self.limits.max_clock_entries),
                ));
            }
            entries.push((k, t));
        }
        Ok(Clock::from_entries(entries))
    }
}

/// An update's fourth element: a signature when it is base64url of 64 bytes.
struct SigSeed;

impl<'de> DeserializeSeed<'de> for SigSeed {
    type Value = Option<UpdateSig>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SigSeed {
    type Value = Option<UpdateSig>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a signature")
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        if s.len() != 86 {
            return Ok(None);
        }
        Ok(crate::security::from_b64url(s).and_then(|b| b.try_into().ok()))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::upd;
    use crate::wire::{Codec, Framing};

    #[test]
    fn json_lines_are_scuttlebutt_bytes() {
        let mut e = Encoder::new(Codec::Json, Framing::Stream);
        let mut c = Clock::new();
        c.set("A", 1795713876272.0);
        e.digest("A", c.iter());
        e.update(upd("preA", "1", 1795713876272.0, "A").as_ref());
        e.sync();
        let bytes = e.poll_transmit().unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "{\"id\":\"A\",\"clock\":{\"A\":1795713876272}}\n[[\"preA\",1],1795713876272,\"A\"]\n\"SYNC\"\n"
        );
    }

    #[test]
    fn digest_clocks_are_written_in_javascript_key_order() {
        let mut e = Encoder::new(Codec::Json, Framing::Stream);
        let mut c = Clock::new();
        for (s, t) in [("b", 1.0), ("2", 2.0), ("a", 4.0), ("1", 3.0), ("01", 5.0)] {
            c.set(s, t);
        }
        e.digest("n", c.iter());
        assert_eq!(
            String::from_utf8(e.poll_transmit().unwrap()).unwrap(),
            "{\"id\":\"n\",\"clock\":{\"1\":3,\"2\":2,\"b\":1,\"a\":4,\"01\":5}}\n"
        );
    }

    #[test]
    fn json_line_spanning_messages() {
        let mut d = Decoder::new(Codec::Json, Framing::Messages, Limits::default());
        d.push(b"[[\"k\",1],17");
        assert!(d.poll_message().is_none());
        d.push(b"00,\"A\"]\n\"SYNC\"\n");
        assert_eq!(
            d.poll_message().unwrap().unwrap(),
            Message::Update(upd("k", "1", 1700.0, "A"))
        );
        assert_eq!(d.poll_message().unwrap().unwrap(), Message::Sync);
    }

    #[test]
    fn malformed_json_lines_are_typed_errors() {
        let lim = Limits::default();
        assert!(matches!(
            decode_json_message(br#"[null,5,"P"]"#, &lim),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            decode_json_message(br#"[["b",2],"notanumber","P"]"#, &lim),
            Err(DecodeError::Json(_))
        ));
        assert_eq!(
            decode_json_message(br#"[["b",2],-1,"P"]"#, &lim),
            Err(DecodeError::BadTimestamp)
        );
        assert_eq!(
            decode_json_message(br#"{"id":"x"}"#, &lim),
            Err(DecodeError::NotAMessage("an object without a clock"))
        );
        assert!(decode_json_message(b"not json", &lim).is_err());
        // The decoder keeps going after a bad line.
        let mut d = Decoder::new(Codec::Json, Framing::Stream, lim);
        d.push(b"not json\n\"SYNC\"\n");
        assert!(d.poll_message().unwrap().is_err());
        assert_eq!(d.poll_message().unwrap().unwrap(), Message::Sync);
    }

    #[test]
    fn an_overlong_json_line_is_dropped_and_the_next_one_decodes() {
        let lim = Limits {
            max_value_len: 1000,
            max_key_len: 100,
            ..Limits::default()
        };
        let max = lim.max_line_len();
        for framing in [Framing::Stream, Framing::Messages] {
            let mut d = Decoder::new(Codec::Json, framing, lim.clone());
            let long = vec![b'x'; max + 10];
            for piece in long.chunks(700) {
                d.push(piece);
            }
            d.push(b"\n\"SYNC\"\n");
            assert_eq!(d.poll_message(), Some(Err(DecodeError::LineTooLong(max))));
            assert_eq!(d.poll_message(), Some(Ok(Message::Sync)));
            assert_eq!(d.poll_message(), None);
            // Held bytes never exceed the bound.
            let mut d = Decoder::new(Codec::Json, framing, lim.clone());
            d.push(&long);
            assert!(d.buf.len() <= max);
        }
    }
}
