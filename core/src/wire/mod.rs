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
//! `"SYNC"`, `"PING"`, `"PONG"`; a signed update (secured rooms) has its signature as a
//! fourth element, base64url, as scuttlebutt's own signed updates do:
//! `[["k",1],1795713876480,"<pk>.<inc>","<86 characters>"]`. A line may span several link messages; the decoder
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
//!          | 0x0a source key ts sig value                          signed update
//!          | 0x0b source key ts sig varint(total) bytes            first fragment, signed
//! source   = varint(i)            i < table length: the i-th source of this frame
//!                                 i = table length: followed by str(id), appended to the table
//! key      = varint(p) str(s)     the first p bytes of the previous key in this frame, then s
//! ts       = zigzag-varint(d)     f64 bits of the timestamp = bits of the previous one + d
//!                                 (the previous one starts at 0 in each frame)
//! value    = the encoding of crate::value (tag byte, postcard varints, f64 little-endian)
//! more     = 0x00 | 0x01          0x01: more parts of this digest's clock follow, each in
//!                                 a 0x01 record of the same id, with nothing between
//! bytes    = varint(len) byte*len
//! sig      = 64 bytes                the writer's Ed25519 signature (secured rooms)
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

mod framing;
mod json;
mod postcard;

use smol_str::SmolStr;
use std::collections::VecDeque;
use std::fmt;

use self::postcard::{Fragment, FrameState, R_HISTORY_SIZE, R_SYNC};
use crate::limits::Limits;
use crate::store::{valid_source, Clock, Update, UpdateRef};
use crate::value::{put_varint, ValueError};

pub use framing::{FRAME_SIZE, MAGIC, MIN_FRAME};
pub use json::decode_json_message;

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
            Codec::Json => self.json_digest(id, clock),
            Codec::Postcard => self.postcard_digest(id, clock),
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
            Codec::Json => self.json_control(s),
            Codec::Postcard => self.postcard_control(s),
        }
    }

    /// Encodes an update.
    pub fn update(&mut self, u: UpdateRef<'_>) {
        match self.codec {
            Codec::Json => self.json_update(u),
            Codec::Postcard => self.postcard_update(u),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{EncodedValue, Value};

    pub(super) fn upd(key: &str, v: &str, ts: f64, src: &str) -> Update {
        Update {
            key: key.into(),
            value: EncodedValue::from_value(&Value::from_json(v).unwrap()),
            ts,
            source: src.into(),
            sig: None,
        }
    }

    pub(super) fn roundtrip(
        codec: Codec,
        framing: Framing,
        msgs: &[Message],
        frame: usize,
    ) -> Vec<Message> {
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
}
