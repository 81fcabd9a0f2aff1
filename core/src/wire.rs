//! Sync message codecs: scuttlebutt's JSON lines and our compact postcard frames.
//!
//! A sync conversation ([`crate::session`]) exchanges four kinds of [`Message`]: the
//! digest (`{id, clock}`), updates, the `SYNC` marker and control strings (`PING`,
//! `PONG`). Links come in two [`Framing`]s: a byte **stream** (TCP), or **messages**
//! (a WebRTC data channel), where the encoder batches small messages into chunks of at
//! most [`FRAME_SIZE`] bytes, because each data-channel message has a fixed cost.
//!
//! # `json`
//!
//! scuttlebutt 5.6's wire format: each message is `JSON.stringify(msg) + "\n"`, written
//! byte for byte as Node writes it (see [`crate::value`] for numbers, strings and key
//! order): `{"id":"A","clock":{"A":1795713876272}}`, `[["k",{"x":1}],1795713876480,"A"]`,
//! `"SYNC"`, `"PING"`, `"PONG"`. A line may span several link messages; the decoder
//! keeps the partial tail, bounded by [`Limits::max_line_len`]. On message links a line
//! longer than a frame is split only between UTF-8 sequences. A malformed line is an
//! error for that line alone: the lines after it still decode.
//!
//! # `postcard`
//!
//! Binary frames. On a byte stream the first bytes are the magic `RMP1`, then each
//! frame as `varint(length) frame`; on a message link each message is one frame. A
//! frame is a sequence of records, and its state (the source table, the previous key
//! and timestamp) starts empty in every frame, so each frame decodes on its own:
//!
//! ```text
//! frame    = record*
//! record   = 0x01 str(id) varint(n) (str(source) f64le(ts))*n more  digest (part)
//!          | 0x02                                                  SYNC
//!          | 0x03 | 0x04                                           PING | PONG
//!          | 0x05 source key ts value                              update
//!          | 0x06 source key ts varint(total) bytes                first fragment of a large value
//!          | 0x07 bytes                                            next fragment
//!          | 0x08 str(text)                                        other control string
//!          | 0x09 varint(n)                                        history size hint
//! source   = varint(i)            i < table length: the i-th source of this frame
//!                                 i = table length: followed by str(id), appended to the table
//! key      = varint(p) str(s)     the first p bytes of the previous key in this frame, then s
//! ts       = zigzag-varint(d)     f64 bits of the timestamp = bits of the previous one + d
//!                                 (the previous one starts at 0 in each frame)
//! value    = the encoding of crate::value (tag byte, postcard varints, f64 little-endian)
//! more     = 0x00 | 0x01          0x01: more parts of this digest's clock follow, each in
//!                                 a 0x01 record of the same id, with nothing between
//! bytes    = varint(len) byte*len
//! str      = varint(len) utf8*len
//! varint   = postcard's LEB128 unsigned varint (at most 10 bytes)
//! ```
//!
//! The history size hint tells how many updates the sender is about to stream before
//! `SYNC`, so that the receiver can make room for them at once; it is only a hint (the
//! receiver bounds what it reserves) and the json codec does not carry it.
//!
//! A value whose update does not fit in one frame travels as a `0x06` record holding
//! its first bytes, followed by `0x07` records (each in a frame of its own) until
//! `total` bytes have arrived; no other record may come between them.
//!
//! Every decoder checks [`Limits`] before allocating, returns a [`DecodeError`] and
//! never panics. A frame or line that fails to decode yields no message at all.

use smol_str::SmolStr;
use std::collections::VecDeque;
use std::fmt;

use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::limits::Limits;
use crate::store::{valid_source, Clock, Update, UpdateRef};
use crate::value::{
    array_index, put_ivarint, put_str, put_varint, write_number, write_string, EncodedValue,
    Reader, SmolSeed, ValueError,
};

/// Largest chunk an encoder writes on a message link, and the postcard frame size.
pub const FRAME_SIZE: usize = 16 * 1024;

/// The smallest chunk size an encoder accepts: room for any one clock entry.
pub const MIN_FRAME: usize = 512;

/// The magic that opens a postcard byte stream.
pub const MAGIC: &[u8; 4] = b"RMP1";

/// Which encoding a link speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Codec {
    /// scuttlebutt's JSON lines.
    Json,
    /// Compact binary frames.
    Postcard,
}

impl Codec {
    /// The codec's name, as used in announces and the data channel's protocol field.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::Postcard => "postcard",
        }
    }
    /// Parses a codec name (`""` means json, as on a data channel).
    pub fn from_name(s: &str) -> Option<Codec> {
        match s {
            "json" | "" => Some(Codec::Json),
            "postcard" => Some(Codec::Postcard),
            _ => None,
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How bytes travel on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// An ordered byte stream (TCP): message boundaries are not kept.
    Stream,
    /// Ordered, reliable messages (a data channel): each chunk is one message.
    Messages,
}

/// One sync message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// The sender's id and clock: what it has.
    Digest {
        /// The sender's source id.
        id: String,
        /// The sender's clock.
        clock: Clock,
    },
    /// A write.
    Update(Update),
    /// The sender has sent all the history the receiver lacked.
    Sync,
    /// Liveness probe; answer with [`Message::Pong`].
    Ping,
    /// Answer to a ping.
    Pong,
    /// Another control string (ignored by the session, kept for forward compatibility).
    Control(String),
    /// The sender is about to stream this many history updates: a hint that lets the
    /// receiver make room at once. Postcard only: the json encoder writes nothing.
    HistorySize(u64),
}

/// Why bytes from a peer could not be decoded. Nothing from the failed line or frame
/// reaches the store.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The JSON text is malformed.
    #[error("invalid json: {0}")]
    Json(String),
    /// A value inside the message is invalid.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// Valid JSON, but not a scuttlebutt message (digest, update array or string).
    #[error("not a sync message: {0}")]
    NotAMessage(&'static str),
    /// A timestamp is NaN, infinite, zero or negative.
    #[error("timestamp is not a finite positive number")]
    BadTimestamp,
    /// A key is longer than the limit.
    #[error("key of {len} bytes exceeds the limit of {max}")]
    KeyTooLong {
        /// Length met.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A source id is empty, too long or has control characters.
    #[error("invalid source id")]
    BadSource,
    /// A digest has more clock entries than the limit.
    #[error("clock with more than {0} entries")]
    ClockTooLarge(usize),
    /// A JSON line is longer than the limit.
    #[error("line longer than {0} bytes")]
    LineTooLong(usize),
    /// A postcard frame is longer than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLong {
        /// Length announced.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A postcard stream did not start with `RMP1`.
    #[error("stream does not start with the RMP1 magic")]
    BadMagic,
    /// A postcard frame is malformed.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// A large value's fragments are inconsistent or exceed the limit.
    #[error("bad fragment: {0}")]
    Fragment(&'static str),
}

impl DecodeError {
    /// After a fatal error the stream cannot be resynchronised: close the link.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            DecodeError::BadMagic | DecodeError::FrameTooLong { .. }
        )
    }
}

// ---------------------------------------------------------------------------
// Encoding.

/// Writes messages in one codec and framing, batching them into chunks.
#[derive(Debug)]
pub struct Encoder {
    codec: Codec,
    framing: Framing,
    /// Completed chunks, ready to send.
    ready: VecDeque<Vec<u8>>,
    /// The chunk being filled.
    cur: Vec<u8>,
    /// Postcard frame state.
    frame: FrameState,
    magic_sent: bool,
    line: String,
    frame_size: usize,
}

#[derive(Debug, Default)]
struct FrameState {
    sources: Vec<SmolStr>,
    prev_key: String,
    prev_ts: u64,
}

impl FrameState {
    fn reset(&mut self) {
        self.sources.clear();
        self.prev_key.clear();
        self.prev_ts = 0;
    }
}

const R_DIGEST: u8 = 1;
const R_SYNC: u8 = 2;
const R_PING: u8 = 3;
const R_PONG: u8 = 4;
const R_UPDATE: u8 = 5;
const R_FRAG_START: u8 = 6;
const R_FRAG_MORE: u8 = 7;
const R_CONTROL: u8 = 8;
const R_HISTORY_SIZE: u8 = 9;

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
    /// An encoder for `codec` over `framing`.
    pub fn new(codec: Codec, framing: Framing) -> Self {
        Self::with_frame_size(codec, framing, FRAME_SIZE)
    }

    /// An encoder with another chunk size (at least 512 bytes); tests use small ones.
    pub fn with_frame_size(codec: Codec, framing: Framing, frame_size: usize) -> Self {
        Encoder {
            codec,
            framing,
            ready: VecDeque::new(),
            cur: Vec::new(),
            frame: FrameState::default(),
            magic_sent: false,
            line: String::new(),
            frame_size: frame_size.max(MIN_FRAME),
        }
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Encodes one message.
    pub fn message(&mut self, m: &Message) {
        match m {
            Message::Digest { id, clock } => self.digest(id, clock.iter()),
            Message::Update(u) => self.update(u.as_ref()),
            Message::Sync => self.sync(),
            Message::Ping => self.control("PING"),
            Message::Pong => self.control("PONG"),
            Message::Control(s) => self.control(s),
            Message::HistorySize(n) => self.history_size(*n),
        }
    }

    /// Encodes a history size hint (postcard only: scuttlebutt has no such message).
    pub fn history_size(&mut self, n: u64) {
        if self.codec == Codec::Postcard {
            let mut r = vec![R_HISTORY_SIZE];
            put_varint(n, &mut r);
            self.record(&r);
        }
    }

    /// Encodes a digest.
    pub fn digest<'a>(&mut self, id: &str, clock: impl Iterator<Item = (&'a str, f64)>) {
        match self.codec {
            Codec::Json => {
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
            Codec::Postcard => {
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
        }
    }

    /// Encodes the `SYNC` marker.
    pub fn sync(&mut self) {
        match self.codec {
            Codec::Json => self.json_line("\"SYNC\"\n"),
            Codec::Postcard => self.record(&[R_SYNC]),
        }
    }

    /// Encodes a control string (`PING`, `PONG`, …).
    pub fn control(&mut self, s: &str) {
        match self.codec {
            Codec::Json => {
                let mut l = String::new();
                write_string(s, &mut l, false);
                l.push('\n');
                self.json_line(&l);
            }
            Codec::Postcard => match s {
                "SYNC" => self.record(&[R_SYNC]),
                "PING" => self.record(&[R_PING]),
                "PONG" => self.record(&[R_PONG]),
                _ => {
                    let mut r = vec![R_CONTROL];
                    put_str(s, &mut r);
                    self.record(&r);
                }
            },
        }
    }

    /// Encodes an update.
    pub fn update(&mut self, u: UpdateRef<'_>) {
        match self.codec {
            Codec::Json => {
                let mut l = std::mem::take(&mut self.line);
                l.clear();
                l.push_str("[[");
                write_string(u.key, &mut l, false);
                l.push(',');
                u.value.write_json(&mut l, false);
                l.push_str("],");
                write_number(u.ts, &mut l);
                l.push(',');
                write_string(u.source, &mut l, false);
                l.push_str("]\n");
                self.json_line(&l);
                self.line = l;
            }
            Codec::Postcard => self.postcard_update(u),
        }
    }

    fn postcard_update(&mut self, u: UpdateRef<'_>) {
        let value = u.value.as_bytes();
        // Worst-case header: tag, source (with id), key, ts, total.
        let header_max = 1 + 10 + 10 + u.source.len() + 20 + u.key.len() + 10 + 10;
        if header_max + value.len() + 10 <= self.frame_size {
            // Fits in one frame: start a new one when it does not fit in this one.
            if self.cur_frame_len() + header_max + value.len() > self.frame_size {
                self.finish_chunk();
            }
            let mut cur = std::mem::take(&mut self.cur);
            self.update_header(R_UPDATE, u, &mut cur);
            cur.extend_from_slice(value);
            self.cur = cur;
            return;
        }
        // Fragmented: the first piece ends the current frame, each next piece has its own.
        self.finish_chunk();
        let mut r = Vec::with_capacity(self.frame_size);
        self.update_header(R_FRAG_START, u, &mut r);
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
    }

    fn cur_frame_len(&self) -> usize {
        self.cur.len()
    }

    fn record(&mut self, r: &[u8]) {
        if self.cur.len() + r.len() > self.frame_size {
            self.finish_chunk();
        }
        self.cur_push_record(r);
    }

    fn cur_push_record(&mut self, r: &[u8]) {
        self.cur.extend_from_slice(r);
    }

    fn json_line(&mut self, line: &str) {
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

    /// Closes the chunk being filled (a postcard frame ends here).
    fn finish_chunk(&mut self) {
        if self.cur.is_empty() {
            return;
        }
        let body = std::mem::take(&mut self.cur);
        let chunk = match (self.codec, self.framing) {
            (Codec::Postcard, Framing::Stream) => {
                let mut c = Vec::with_capacity(body.len() + 8);
                if !self.magic_sent {
                    c.extend_from_slice(MAGIC);
                    self.magic_sent = true;
                }
                put_varint(body.len() as u64, &mut c);
                c.extend_from_slice(&body);
                c
            }
            _ => body,
        };
        self.frame.reset();
        self.ready.push_back(chunk);
    }

    /// The next chunk to send: one link message (or stream write), at most a frame.
    /// Whatever was encoded so far is flushed, so call this after a batch of messages.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.ready.is_empty() {
            self.finish_chunk();
        }
        self.ready.pop_front()
    }

    /// Bytes encoded and not yet taken with [`Encoder::poll_transmit`].
    pub fn pending_bytes(&self) -> usize {
        self.cur.len() + self.ready.iter().map(Vec::len).sum::<usize>()
    }
}

// ---------------------------------------------------------------------------
// Decoding.

/// Reads messages in one codec and framing from untrusted bytes.
#[derive(Debug)]
pub struct Decoder {
    codec: Codec,
    framing: Framing,
    limits: Limits,
    /// JSON: the partial line. Postcard stream: the partial frame.
    buf: Vec<u8>,
    magic_seen: bool,
    failed: bool,
    /// JSON: the current line passed the limit and is being skipped.
    overflow: bool,
    frag: Option<Fragment>,
    /// A digest whose clock came in parts so far: id and entries.
    digest: Option<(String, Vec<(String, f64)>)>,
    out: VecDeque<Result<Message, DecodeError>>,
    /// JSON: the source id of the last update, reused while it repeats.
    last_source: Option<SmolStr>,
}

#[derive(Debug)]
struct Fragment {
    key: SmolStr,
    ts: f64,
    source: SmolStr,
    total: usize,
    bytes: Vec<u8>,
    /// Over the limit: the pieces are dropped as they come.
    discard: bool,
}

impl Decoder {
    /// A decoder bounded by `limits`.
    pub fn new(codec: Codec, framing: Framing, limits: Limits) -> Self {
        Decoder {
            codec,
            framing,
            limits,
            buf: Vec::new(),
            magic_seen: false,
            failed: false,
            overflow: false,
            frag: None,
            digest: None,
            out: VecDeque::new(),
            last_source: None,
        }
    }

    /// Has a fatal error stopped this decoder?
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Feeds bytes: a piece of the stream, or one whole link message.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.failed {
            return;
        }
        match self.codec {
            Codec::Json => self.push_json(bytes),
            Codec::Postcard => match self.framing {
                Framing::Messages => self.frame(bytes),
                Framing::Stream => self.push_stream(bytes),
            },
        }
    }

    /// Marks the end of input: a partial JSON line left over is decoded, as
    /// scuttlebutt does at `end`.
    pub fn finish(&mut self) {
        if self.codec == Codec::Json && !self.buf.is_empty() && !self.failed && !self.overflow {
            let line = std::mem::take(&mut self.buf);
            self.json_line(&line);
        }
    }

    /// The next decoded message or error.
    pub fn poll_message(&mut self) -> Option<Result<Message, DecodeError>> {
        self.out.pop_front()
    }

    fn fail(&mut self, e: DecodeError) {
        if e.is_fatal() {
            self.failed = true;
            self.buf = Vec::new();
        }
        self.out.push_back(Err(e));
    }

    fn push_json(&mut self, mut bytes: &[u8]) {
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

    fn json_line(&mut self, line: &[u8]) {
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

    fn push_stream(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        let mut pos = 0;
        if !self.magic_seen {
            if self.buf.len() < MAGIC.len() {
                if !MAGIC.starts_with(&self.buf) {
                    self.fail(DecodeError::BadMagic);
                }
                return;
            }
            if &self.buf[..4] != MAGIC {
                self.fail(DecodeError::BadMagic);
                return;
            }
            self.magic_seen = true;
            pos = 4;
        }
        loop {
            let rest = &self.buf[pos..];
            let (len, used) = match read_varint_prefix(rest) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(()) => {
                    self.fail(DecodeError::FrameTooLong {
                        len: u64::MAX,
                        max: self.limits.max_frame_len,
                    });
                    return;
                }
            };
            if len > self.limits.max_frame_len as u64 {
                self.fail(DecodeError::FrameTooLong {
                    len,
                    max: self.limits.max_frame_len,
                });
                return;
            }
            let len = len as usize;
            if rest.len() < used + len {
                break;
            }
            let frame = rest[used..used + len].to_vec();
            pos += used + len;
            self.frame(&frame);
        }
        self.buf.drain(..pos);
    }

    /// Decodes one whole postcard frame: all its messages, or one error.
    fn frame(&mut self, frame: &[u8]) {
        if frame.len() > self.limits.max_frame_len {
            self.out.push_back(Err(DecodeError::FrameTooLong {
                len: frame.len() as u64,
                max: self.limits.max_frame_len,
            }));
            return;
        }
        // All of the frame's messages, or none: roll back on error.
        let before = self.out.len();
        if let Err(e) = self.decode_frame(frame) {
            self.out.truncate(before);
            self.frag = None;
            self.digest = None;
            self.out.push_back(Err(e));
        }
    }

    fn decode_frame(&mut self, frame: &[u8]) -> Result<(), DecodeError> {
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
                R_UPDATE => {
                    let (source, key, ts) = read_update_header(&mut r, &mut st, lim)?;
                    let value = EncodedValue::take(&mut r, lim)?;
                    self.out.push_back(Ok(Message::Update(Update {
                        key,
                        value,
                        ts,
                        source,
                    })));
                }
                R_FRAG_START => {
                    let (source, key, ts) = read_update_header(&mut r, &mut st, lim)?;
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
        })))
    }
}

/// The message a control string stands for: the same in both codecs, so that
/// `"SYNC"` sent as a plain control string is still the `SYNC` marker.
fn control_message(s: &str) -> Message {
    match s {
        "SYNC" => Message::Sync,
        "PING" => Message::Ping,
        "PONG" => Message::Pong,
        _ => Message::Control(s.to_owned()),
    }
}

/// Reads a varint length prefix: `Ok(None)` when more bytes are needed.
fn read_varint_prefix(b: &[u8]) -> Result<Option<(u64, usize)>, ()> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((v, i + 1)));
        }
    }
    if b.len() >= 10 {
        Err(())
    } else {
        Ok(None)
    }
}

fn check_source(s: &str, lim: &Limits) -> Result<(), DecodeError> {
    if valid_source(s, lim) {
        Ok(())
    } else {
        Err(DecodeError::BadSource)
    }
}

fn check_ts(t: f64) -> Result<f64, DecodeError> {
    if t.is_finite() && t > 0.0 {
        Ok(t)
    } else {
        Err(DecodeError::BadTimestamp)
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
        // A signature or anything else after the source is ignored, as scuttlebutt does
        // without a verify option.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    fn upd(key: &str, v: &str, ts: f64, src: &str) -> Update {
        Update {
            key: key.into(),
            value: EncodedValue::from_value(&Value::from_json(v).unwrap()),
            ts,
            source: src.into(),
        }
    }

    fn roundtrip(codec: Codec, framing: Framing, msgs: &[Message], frame: usize) -> Vec<Message> {
        let mut e = Encoder::with_frame_size(codec, framing, frame);
        for m in msgs {
            e.message(m);
        }
        let mut d = Decoder::new(codec, framing, Limits::default());
        while let Some(c) = e.poll_transmit() {
            assert!(
                framing == Framing::Stream || c.len() <= frame.max(MIN_FRAME),
                "chunk {} > {frame}",
                c.len()
            );
            d.push(&c);
        }
        let mut out = Vec::new();
        while let Some(m) = d.poll_message() {
            out.push(m.unwrap());
        }
        out
    }

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
    fn both_codecs_round_trip() {
        let mut c = Clock::new();
        c.set("A", 1.5);
        c.set("B", 1795713877118.001);
        let big = format!("\"{}\"", "x".repeat(40_000));
        let msgs = vec![
            Message::Digest {
                id: "A".into(),
                clock: c,
            },
            Message::Update(upd(
                "key-0001",
                r#"{"n":1,"s":"v1"}"#,
                1795713877118.001,
                "A",
            )),
            Message::Update(upd(
                "key-0002",
                r#"{"n":2,"s":"v2"}"#,
                1795713877118.002,
                "A",
            )),
            Message::Update(upd("ключ", "null", 1795713877119.0, "Bé")),
            Message::Update(upd("big", &big, 1795713877120.0, "A")),
            Message::Sync,
            Message::Ping,
            Message::Pong,
        ];
        for codec in [Codec::Json, Codec::Postcard] {
            for framing in [Framing::Stream, Framing::Messages] {
                assert_eq!(
                    roundtrip(codec, framing, &msgs, FRAME_SIZE),
                    msgs,
                    "{codec} {framing:?}"
                );
                assert_eq!(
                    roundtrip(codec, framing, &msgs, 100),
                    msgs,
                    "{codec} {framing:?} small"
                );
            }
        }
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

    #[test]
    fn postcard_stream_rejects_bad_magic_and_huge_frames() {
        let mut d = Decoder::new(Codec::Postcard, Framing::Stream, Limits::default());
        d.push(b"XXXX");
        assert_eq!(d.poll_message(), Some(Err(DecodeError::BadMagic)));
        assert!(d.failed());
        let mut d = Decoder::new(Codec::Postcard, Framing::Stream, Limits::default());
        d.push(b"RMP1\xff\xff\xff\xff\x0f");
        assert!(matches!(
            d.poll_message(),
            Some(Err(DecodeError::FrameTooLong { .. }))
        ));
    }
}
