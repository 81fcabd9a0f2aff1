//! The postcard codec: binary records in frames whose state (the source table, the
//! previous key and timestamp) starts empty in each frame; large values in fragments.

use smol_str::SmolStr;

use super::{check_source, check_ts, control_message, DecodeError, Decoder, Encoder, Message};
use crate::limits::Limits;
use crate::security::updates::{UpdateSig, SIG_LEN};
use crate::store::{Clock, Update, UpdateRef};
use crate::value::{put_ivarint, put_str, put_varint, EncodedValue, Reader, ValueError};

#[derive(Debug, Default)]
pub(super) struct FrameState {
    sources: Vec<SmolStr>,
    prev_key: String,
    prev_ts: u64,
}

impl FrameState {
    pub(super) fn reset(&mut self) {
        self.sources.clear();
        self.prev_key.clear();
        self.prev_ts = 0;
    }
}

const R_DIGEST: u8 = 1;
pub(super) const R_SYNC: u8 = 2;
const R_PING: u8 = 3;
const R_PONG: u8 = 4;
const R_UPDATE: u8 = 5;
const R_FRAG_START: u8 = 6;
const R_FRAG_MORE: u8 = 7;
const R_CONTROL: u8 = 8;
pub(super) const R_HISTORY_SIZE: u8 = 9;
const R_SIGNED_UPDATE: u8 = 10;
const R_SIGNED_FRAG_START: u8 = 11;

fn common_prefix(a: &str, b: &str) -> usize {
    let n = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    // Keep the suffix valid UTF-8 on its own.
    let mut n = n;
    while !b.is_char_boundary(n) {
        n -= 1;
    }
    n
}

impl Encoder {
    /// [`Encoder::digest`] as postcard records.
    pub(super) fn postcard_digest<'a>(
        &mut self,
        id: &str,
        clock: impl Iterator<Item = (&'a str, f64)>,
    ) {
        // A clock too large for one frame goes in parts, each a record of its own.
        let entries: Vec<(&str, f64)> = clock.collect();
        let mut rest = &entries[..];
        loop {
            let mut r = vec![R_DIGEST];
            put_str(id, &mut r);
            let room = self.frame_size.saturating_sub(r.len() + 4);
            let mut size = 0;
            let n = rest
                .iter()
                .take_while(|(s, _)| {
                    size += 1 + 2 + s.len() + 8;
                    size <= room
                })
                .count()
                .max(1)
                .min(rest.len());
            put_varint(n as u64, &mut r);
            for (s, t) in &rest[..n] {
                put_str(s, &mut r);
                r.extend_from_slice(&t.to_le_bytes());
            }
            rest = &rest[n..];
            r.push(u8::from(!rest.is_empty()));
            self.record(&r);
            if rest.is_empty() {
                break;
            }
        }
    }

    /// [`Encoder::control`] as a postcard record.
    pub(super) fn postcard_control(&mut self, s: &str) {
        match s {
            "SYNC" => self.record(&[R_SYNC]),
            "PING" => self.record(&[R_PING]),
            "PONG" => self.record(&[R_PONG]),
            _ => {
                let mut r = vec![R_CONTROL];
                put_str(s, &mut r);
                self.record(&r);
            }
        }
    }

    pub(super) fn postcard_update(&mut self, u: UpdateRef<'_>) {
        let value = u.value.as_bytes();
        // Worst-case header: tag, source (with id), key, ts, signature, total.
        let sig_len = if u.sig.is_some() { SIG_LEN } else { 0 };
        let header_max = 1 + 10 + 10 + u.source.len() + 20 + u.key.len() + 10 + 10 + sig_len;
        if header_max + value.len() + 10 <= self.frame_size {
            // Fits in one frame: start a new one when it does not fit in this one.
            if self.cur_frame_len() + header_max + value.len() > self.frame_size {
                self.finish_chunk();
            }
            let mut cur = std::mem::take(&mut self.cur);
            let tag = if u.sig.is_some() {
                R_SIGNED_UPDATE
            } else {
                R_UPDATE
            };
            self.update_header(tag, u, &mut cur);
            cur.extend_from_slice(value);
            self.cur = cur;
            return;
        }
        // Fragmented: the first piece ends the current frame, each next piece has its own.
        self.finish_chunk();
        let mut r = Vec::with_capacity(self.frame_size);
        let tag = if u.sig.is_some() {
            R_SIGNED_FRAG_START
        } else {
            R_FRAG_START
        };
        self.update_header(tag, u, &mut r);
        put_varint(value.len() as u64, &mut r);
        let room = self.frame_size.saturating_sub(r.len() + 10).max(1);
        let first = room.min(value.len());
        put_varint(first as u64, &mut r);
        r.extend_from_slice(&value[..first]);
        self.cur_push_record(&r);
        self.finish_chunk();
        let mut off = first;
        while off < value.len() {
            let n = (self.frame_size - 12).min(value.len() - off);
            let mut r = Vec::with_capacity(n + 12);
            r.push(R_FRAG_MORE);
            put_varint(n as u64, &mut r);
            r.extend_from_slice(&value[off..off + n]);
            self.cur_push_record(&r);
            self.finish_chunk();
            off += n;
        }
    }

    fn update_header(&mut self, tag: u8, u: UpdateRef<'_>, r: &mut Vec<u8>) {
        r.push(tag);
        let f = &mut self.frame;
        match f.sources.iter().position(|s| &**s == u.source) {
            Some(i) => put_varint(i as u64, r),
            None => {
                put_varint(f.sources.len() as u64, r);
                put_str(u.source, r);
                f.sources.push(u.source.into());
            }
        }
        let p = common_prefix(&f.prev_key, u.key);
        put_varint(p as u64, r);
        put_str(&u.key[p..], r);
        f.prev_key.clear();
        f.prev_key.push_str(u.key);
        let bits = u.ts.to_bits();
        put_ivarint(bits.wrapping_sub(f.prev_ts) as i64, r);
        f.prev_ts = bits;
        if let Some(sig) = u.sig {
            r.extend_from_slice(sig);
        }
    }

    fn cur_frame_len(&self) -> usize {
        self.cur.len()
    }

    pub(super) fn record(&mut self, r: &[u8]) {
        if self.cur.len() + r.len() > self.frame_size {
            self.finish_chunk();
        }
        self.cur_push_record(r);
    }

    fn cur_push_record(&mut self, r: &[u8]) {
        self.cur.extend_from_slice(r);
    }
}

#[derive(Debug)]
pub(super) struct Fragment {
    key: SmolStr,
    ts: f64,
    source: SmolStr,
    sig: Option<UpdateSig>,
    total: usize,
    bytes: Vec<u8>,
    /// Over the limit: the pieces are dropped as they come.
    discard: bool,
}

impl Decoder {
    pub(super) fn decode_frame(&mut self, frame: &[u8]) -> Result<(), DecodeError> {
        let lim = &self.limits.clone();
        let mut r = Reader::new(frame);
        let mut st = FrameState::default();
        while !r.is_empty() {
            let tag = r.u8()?;
            if self.frag.is_some() && tag != R_FRAG_MORE {
                return Err(DecodeError::Fragment("record between fragments"));
            }
            if self.digest.is_some() && tag != R_DIGEST {
                self.digest = None;
                return Err(DecodeError::Malformed("record between digest parts"));
            }
            match tag {
                R_DIGEST => {
                    let id = r.str()?;
                    check_source(id, lim)?;
                    let n = r.count()?;
                    let (_, entries) = self
                        .digest
                        .get_or_insert_with(|| (id.to_owned(), Vec::new()));
                    if entries.len() + n > lim.max_clock_entries {
                        self.digest = None;
                        return Err(DecodeError::ClockTooLarge(lim.max_clock_entries));
                    }
                    for _ in 0..n {
                        let s = r.str()?;
                        check_source(s, lim)?;
                        let t = check_ts(r.f64()?)?;
                        entries.push((s.to_owned(), t));
                    }
                    let more = r.u8()?;
                    if self.digest.as_ref().is_some_and(|(first, _)| first != id) {
                        self.digest = None;
                        return Err(DecodeError::Malformed("digest parts from two ids"));
                    }
                    match more {
                        0 => {
                            if let Some((id, entries)) = self.digest.take() {
                                self.out.push_back(Ok(Message::Digest {
                                    id,
                                    clock: Clock::from_entries(entries),
                                }));
                            }
                        }
                        1 => {}
                        _ => return Err(DecodeError::Malformed("bad digest flag")),
                    }
                }
                R_SYNC => self.out.push_back(Ok(Message::Sync)),
                R_PING => self.out.push_back(Ok(Message::Ping)),
                R_PONG => self.out.push_back(Ok(Message::Pong)),
                R_CONTROL => {
                    let m = control_message(r.str()?);
                    self.out.push_back(Ok(m));
                }
                R_HISTORY_SIZE => {
                    let n = r.varint()?;
                    self.out.push_back(Ok(Message::HistorySize(n)));
                }
                R_UPDATE | R_SIGNED_UPDATE => {
                    let (source, key, ts) = read_update_header(&mut r, &mut st, lim)?;
                    let sig = read_sig(&mut r, tag == R_SIGNED_UPDATE)?;
                    let value = EncodedValue::take(&mut r, lim)?;
                    self.out.push_back(Ok(Message::Update(Update {
                        key,
                        value,
                        ts,
                        source,
                        sig,
                    })));
                }
                R_FRAG_START | R_SIGNED_FRAG_START => {
                    let (source, key, ts) = read_update_header(&mut r, &mut st, lim)?;
                    let sig = read_sig(&mut r, tag == R_SIGNED_FRAG_START)?;
                    let total = r.varint()?;
                    let n = r.count()?;
                    let piece = r.bytes(n)?;
                    let discard = total > lim.max_value_len as u64;
                    if n as u64 > total {
                        return Err(DecodeError::Fragment("piece longer than total"));
                    }
                    let mut f = Fragment {
                        key,
                        ts,
                        source,
                        sig,
                        total: total as usize,
                        bytes: Vec::new(),
                        discard,
                    };
                    if discard {
                        f.bytes.clear();
                        f.total -= n;
                    } else {
                        f.bytes.extend_from_slice(piece);
                    }
                    self.frag = Some(f);
                    if let Some(m) = self.fragment_done()? {
                        self.out.push_back(Ok(m));
                    }
                }
                R_FRAG_MORE => {
                    let n = r.count()?;
                    let piece = r.bytes(n)?;
                    let Some(f) = self.frag.as_mut() else {
                        return Err(DecodeError::Fragment("piece without a start"));
                    };
                    if f.discard {
                        if n > f.total {
                            return Err(DecodeError::Fragment("piece longer than total"));
                        }
                        f.total -= n;
                    } else {
                        if f.bytes.len() + n > f.total {
                            return Err(DecodeError::Fragment("piece longer than total"));
                        }
                        f.bytes.extend_from_slice(piece);
                    }
                    if let Some(m) = self.fragment_done()? {
                        self.out.push_back(Ok(m));
                    }
                }
                _ => return Err(DecodeError::Malformed("unknown record")),
            }
        }
        Ok(())
    }

    /// A message when the fragment in progress is complete.
    fn fragment_done(&mut self) -> Result<Option<Message>, DecodeError> {
        let Some(f) = self.frag.as_ref() else {
            return Ok(None);
        };
        if f.discard {
            if f.total == 0 {
                self.frag = None;
                return Err(ValueError::TooLarge {
                    len: self.limits.max_value_len + 1,
                    max: self.limits.max_value_len,
                }
                .into());
            }
            return Ok(None);
        }
        if f.bytes.len() < f.total {
            return Ok(None);
        }
        let f = self.frag.take().expect("checked above");
        let value = EncodedValue::from_bytes(&f.bytes, &self.limits)?;
        Ok(Some(Message::Update(Update {
            key: f.key,
            value,
            ts: f.ts,
            source: f.source,
            sig: f.sig,
        })))
    }
}

/// A signed record's 64 signature bytes (after the header).
fn read_sig(r: &mut Reader<'_>, signed: bool) -> Result<Option<UpdateSig>, DecodeError> {
    if !signed {
        return Ok(None);
    }
    let b = r.bytes(SIG_LEN)?;
    Ok(Some(b.try_into().expect("SIG_LEN bytes")))
}

fn read_update_header(
    r: &mut Reader<'_>,
    st: &mut FrameState,
    lim: &Limits,
) -> Result<(SmolStr, SmolStr, f64), DecodeError> {
    let i = r.varint()?;
    let source = if (i as usize) < st.sources.len() && i < u32::MAX as u64 {
        st.sources[i as usize].clone()
    } else if i == st.sources.len() as u64 {
        let s = r.str()?;
        check_source(s, lim)?;
        let s: SmolStr = s.into();
        st.sources.push(s.clone());
        s
    } else {
        return Err(DecodeError::Malformed("source index out of range"));
    };
    let p = r.varint()?;
    let suffix = r.str()?;
    if p > st.prev_key.len() as u64 || !st.prev_key.is_char_boundary(p as usize) {
        return Err(DecodeError::Malformed("key prefix out of range"));
    }
    let p = p as usize;
    if p + suffix.len() > lim.max_key_len {
        return Err(DecodeError::KeyTooLong {
            len: p + suffix.len(),
            max: lim.max_key_len,
        });
    }
    st.prev_key.truncate(p);
    st.prev_key.push_str(suffix);
    let d = r.ivarint()?;
    let bits = st.prev_ts.wrapping_add(d as u64);
    st.prev_ts = bits;
    let ts = check_ts(f64::from_bits(bits))?;
    Ok((source, st.prev_key.as_str().into(), ts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::{roundtrip, upd};
    use crate::wire::{Codec, Framing, FRAME_SIZE};

    #[test]
    fn the_history_size_hint_is_postcard_only() {
        let mut e = Encoder::new(Codec::Postcard, Framing::Messages);
        e.history_size(300);
        let bytes = e.poll_transmit().unwrap();
        assert_eq!(bytes, [R_HISTORY_SIZE, 0xac, 0x02]);
        let mut d = Decoder::new(Codec::Postcard, Framing::Messages, Limits::default());
        d.push(&bytes);
        assert_eq!(d.poll_message(), Some(Ok(Message::HistorySize(300))));
        let mut j = Encoder::new(Codec::Json, Framing::Messages);
        j.history_size(300);
        assert_eq!(j.poll_transmit(), None);
    }

    #[test]
    fn a_control_string_naming_a_marker_is_that_marker() {
        // Found by fuzzing: "SYNC" sent as a plain control string must not decode to
        // something that re-encodes differently.
        let mut d = Decoder::new(Codec::Postcard, Framing::Messages, Limits::default());
        d.push(&[R_CONTROL, 4, b'S', b'Y', b'N', b'C', R_CONTROL, 1, b'x']);
        assert_eq!(d.poll_message(), Some(Ok(Message::Sync)));
        assert_eq!(d.poll_message(), Some(Ok(Message::Control("x".into()))));
    }

    #[test]
    fn a_large_clock_goes_in_parts_that_fit_frames() {
        let mut c = Clock::new();
        for i in 0..3000 {
            c.set(&format!("peer-{i:05}.0123456789abcdef"), 1e12 + i as f64);
        }
        let msgs = vec![
            Message::Digest {
                id: "me".into(),
                clock: c,
            },
            Message::Sync,
        ];
        assert_eq!(
            roundtrip(Codec::Postcard, Framing::Messages, &msgs, FRAME_SIZE),
            msgs
        );
        assert_eq!(
            roundtrip(Codec::Postcard, Framing::Stream, &msgs, FRAME_SIZE),
            msgs
        );
        // A record between the parts is an error, and nothing is reported.
        let mut e = Encoder::new(Codec::Postcard, Framing::Messages);
        e.message(&msgs[0]);
        let first = e.poll_transmit().unwrap();
        let mut d = Decoder::new(Codec::Postcard, Framing::Messages, Limits::default());
        d.push(&first);
        d.push(&[R_SYNC]);
        assert!(matches!(
            d.poll_message(),
            Some(Err(DecodeError::Malformed(_)))
        ));
        assert_eq!(d.poll_message(), None);
    }

    #[test]
    fn postcard_is_compact() {
        let mut e = Encoder::new(Codec::Postcard, Framing::Messages);
        for i in 1..=1000u32 {
            let key = format!("key-{i:010}");
            let v = format!(r#"{{"n":{i},"s":"v{i}"}}"#);
            e.update(
                upd(
                    &key,
                    &v,
                    1795713877118.0 + i as f64 * 0.001,
                    "aaaaaaaaaaaaaaaa",
                )
                .as_ref(),
            );
        }
        let mut total = 0;
        while let Some(c) = e.poll_transmit() {
            total += c.len();
        }
        assert!(total / 1000 <= 34, "{} bytes per update", total / 1000);
    }
}
