//! Durable members, the format: the records a member's log is made of, and reading a
//! log back. Sans-IO: bytes in, records out; the runtime owns the files.
//!
//! A log is a sequence of segments; a segment is a sequence of records, each framed as
//!
//! ```text
//! len: u32 LE | crc: u32 LE | kind: u8 | payload: len bytes
//! ```
//!
//! where `crc` is CRC-32C (Castagnoli) of `kind` and the payload, and the payload is
//! postcard. The first record of every segment is its [`SegmentHeader`] (kind 1: the
//! format version, the store's source id, the sequence number of its first update);
//! then come [`LogUpdate`]s (kind 2), one per update the store applied, in the order it
//! applied them, each with its sequence number (strictly increasing) and, in a secured
//! room, its writer's signature.
//!
//! **The prefix property.** A replica's digest says "everything from source X up to T";
//! a replica that kept X@5 but lost X@3 would say X:5 and never be sent X@3 again. A
//! source's applied updates are strictly increasing in timestamp (anything at or below
//! its clock is stale), and the log is in apply order, so cutting it anywhere leaves a
//! prefix of every source: a log read back up to any record is a state the store was
//! in. That is why a damaged record ends what is read, and why nothing after it may be
//! taken.
//!
//! **Reading back** ([`read_segment`]) checks every frame (length bounded, checksum,
//! payload decoded within [`Limits`], sequence increasing). What a bad frame means
//! depends on where it is ([`Tail`]):
//!
//! - in the **last** segment, a frame cut short or failing its checksum with no valid
//!   frame anywhere after it (the bytes end inside it, or only zeros a file system had
//!   allocated follow, or it is the final frame, written in part) is a *torn tail*: the
//!   last write was cut short by a crash. It is cut off and reported
//!   ([`Segment::torn_at`]); everything before it is intact;
//! - anywhere else (a **sealed** segment, a bad frame followed by more data, or a whole
//!   frame that does not decode or whose number does not increase) it is *damage*:
//!   [`LogError::Damaged`] names the offset, and nothing is guessed;
//! - with **repair** (`--repair`) damage is cut off like a torn tail: the valid prefix is
//!   kept, and what came after it is refetched from the room.
//!
//! **Snapshots.** The log would only grow; a snapshot replaces the log before it. It
//! is a file of the same frames: a [`SnapshotHeader`] (kind 3, naming `from_seq`, the
//! log record it began at), the store's entries (kind 4, tombstones and signatures
//! included), every source's clock (kind 5), and an end record (kind 6: the counts, and
//! `last_seq`, the last log record made before the snapshot was finished). The store
//! takes it in pieces while it goes on changing ([`crate::Store::poll_snapshot`]), so
//! it is not the state at any one moment; restored, then followed by the log from
//! `from_seq` on, it is: every change after the snapshot began is in that log, and last
//! writer wins whichever of the two a key's entry was taken from. The log must reach
//! `last_seq` ([`Damage::Behind`]); the runtime syncs it before it puts a snapshot in
//! place. A snapshot is written beside the log and renamed into place whole, so any
//! fault in it is damage; `--repair` sets a damaged snapshot aside with the log after
//! it (a part of a snapshot is no prefix of anything): the room sends it all again.
//!
//! Every length is checked before anything is allocated: untrusted bytes (a damaged
//! file) never panic and never allocate more than the frame they claim, itself bounded
//! by the limits.

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

use crate::limits::Limits;
use crate::security::updates::{UpdateSig, SIG_LEN};
use crate::store::{Update, UpdateRef};
use crate::value::EncodedValue;

/// What an acknowledged write survives (a durable member's `--durability`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Nothing: the store lives in memory only.
    Memory,
    /// The process being killed: a write's record is handed to the operating system
    /// before the write is acknowledged (and before it goes to any peer).
    Process,
    /// Power loss too: a write's record is synced to disk before the write is
    /// acknowledged (and before it goes to any peer).
    Power,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "memory" => Ok(Durability::Memory),
            "process" => Ok(Durability::Process),
            "power" => Ok(Durability::Power),
            _ => Err(format!("durability is memory, process or power, not {s:?}")),
        }
    }
}

/// The format version this code writes and reads.
pub const FORMAT: u32 = 1;

/// Bytes before a record's payload: length, checksum, kind.
pub const FRAME_HEADER: usize = 9;

const KIND_HEADER: u8 = 1;
const KIND_UPDATE: u8 = 2;
const KIND_SNAP_HEADER: u8 = 3;
const KIND_SNAP_ENTRY: u8 = 4;
const KIND_SNAP_CLOCK: u8 = 5;
const KIND_SNAP_END: u8 = 6;

/// The first record of a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// The format version ([`FORMAT`]).
    pub format: u32,
    /// The store's source id when the segment was started.
    pub store_id: String,
    /// The sequence number of the segment's first update (the ones after are higher).
    pub first_seq: u64,
}

/// An update as the log keeps it: the store's sequence number and the update (its
/// signature included).
#[derive(Clone, Debug, PartialEq)]
pub struct LogUpdate {
    /// Strictly increasing within a log.
    pub seq: u64,
    /// What was applied.
    pub update: Update,
}

/// A segment read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Its header.
    pub header: SegmentHeader,
    /// Its updates, in log order.
    pub updates: Vec<LogUpdate>,
    /// How many of its bytes are valid records (the file is cut there if it is longer).
    pub valid_len: usize,
    /// Where a torn tail (or, with [`Tail::Repair`], damage) was cut off, and why.
    pub torn_at: Option<(usize, Damage)>,
}

/// Where a segment is in its log, which decides what a bad frame means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tail {
    /// A segment with a later one after it: every byte must be a valid record.
    Sealed,
    /// The log's last segment: a crash may have cut its last write short.
    Last,
    /// `--repair`: any damage ends the segment, and what came before it is kept.
    Repair,
}

/// What is wrong with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Damage {
    /// Fewer bytes than a frame's header, or than the length it gives.
    #[error("a record is cut short")]
    Short,
    /// A length past what any record can need.
    #[error("a record's length is out of bounds")]
    Length,
    /// The checksum does not match.
    #[error("a record's checksum does not match")]
    Checksum,
    /// The checksum matched but the payload is not a record of its kind (or the
    /// kind is unknown, or a header came where an update should).
    #[error("a record does not decode")]
    Decode,
    /// A value, key or source outside the limits, or a signature of the wrong length.
    #[error("a record holds a value, key or id outside the limits")]
    Bounds,
    /// A sequence number other than the one after the record before it (records are
    /// numbered without gaps, across segments too: a gap is a lost segment).
    #[error("a record's sequence number does not follow the one before it")]
    Sequence,
    /// A snapshot without its end record, or whose end record does not match what
    /// came before it.
    #[error("the snapshot is incomplete")]
    Unfinished,
    /// The log ends before the point its snapshot was finished at: records the
    /// snapshot depends on are missing.
    #[error("the log ends before its snapshot does")]
    Behind,
}

/// Why a segment could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// Damage at `offset` (bytes from the segment's start).
    #[error("damaged at byte {offset}: {damage}")]
    Damaged {
        /// Where the bad record starts.
        offset: usize,
        /// What is wrong with it.
        damage: Damage,
    },
    /// A format this code does not read.
    #[error("log format {0} is not supported (this build reads format {FORMAT})")]
    Format(u32),
}

#[derive(Serialize, Deserialize)]
struct HeaderWire<'a> {
    format: u32,
    #[serde(borrow)]
    store_id: &'a str,
    first_seq: u64,
}

#[derive(Serialize, Deserialize)]
struct UpdateWire<'a> {
    seq: u64,
    #[serde(borrow)]
    key: &'a str,
    #[serde(borrow, serialize_with = "bytes")]
    value: &'a [u8],
    ts: f64,
    #[serde(borrow)]
    source: &'a str,
    #[serde(borrow, serialize_with = "maybe_bytes")]
    sig: Option<&'a [u8]>,
}

/// A byte field written as bytes (one copy) rather than as a sequence of `u8`s (one
/// call per byte): the same postcard encoding, a length and the bytes.
fn bytes<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(b)
}

/// An optional byte field written as [`bytes`].
fn maybe_bytes<S: serde::Serializer>(b: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
    struct Bytes<'a>(&'a [u8]);
    impl Serialize for Bytes<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    match b {
        Some(b) => s.serialize_some(&Bytes(b)),
        None => s.serialize_none(),
    }
}

/// The longest payload a record of `limits` can need: the largest value, key and id,
/// a signature and postcard's varints, with room to spare.
pub fn max_record_len(limits: &Limits) -> usize {
    limits.max_value_len + limits.max_key_len + 2 * limits.max_id_len + SIG_LEN + 64
}

/// Appends a segment's header record to `out`.
pub fn encode_header(h: &SegmentHeader, out: &mut Vec<u8>) {
    let w = HeaderWire {
        format: h.format,
        store_id: &h.store_id,
        first_seq: h.first_seq,
    };
    frame(KIND_HEADER, &w, out);
}

/// Appends the record of update `u`, number `seq`, to `out`.
pub fn encode_update(seq: u64, u: UpdateRef<'_>, out: &mut Vec<u8>) {
    let w = UpdateWire {
        seq,
        key: u.key,
        value: u.value.as_bytes(),
        ts: u.ts,
        source: u.source,
        sig: u.sig.map(|s| &s[..]),
    };
    frame(KIND_UPDATE, &w, out);
}

/// The most bytes a record's payload can take in postcard: its fields' lengths plus
/// the most each length prefix, number and tag can take.
trait MaxLen {
    fn max_len(&self) -> usize;
}

/// The most a postcard varint of a `u64` (or `usize`) takes.
const VARINT_MAX: usize = 10;

impl MaxLen for HeaderWire<'_> {
    fn max_len(&self) -> usize {
        3 * VARINT_MAX + self.store_id.len()
    }
}

impl MaxLen for UpdateWire<'_> {
    fn max_len(&self) -> usize {
        let sig = self.sig.map_or(0, |s| VARINT_MAX + s.len());
        4 * VARINT_MAX + 8 + 1 + self.key.len() + self.value.len() + self.source.len() + sig
    }
}

impl MaxLen for ClockWire<'_> {
    fn max_len(&self) -> usize {
        VARINT_MAX + 8 + self.source.len()
    }
}

impl MaxLen for EndWire {
    fn max_len(&self) -> usize {
        3 * VARINT_MAX
    }
}

/// Appends a record of `kind` holding `w`, encoded straight into `out` (every record
/// is made here; on the path of every change, so with no allocation of its own, and
/// into room made at once for the most it can take, which postcard fills with copies
/// rather than byte by byte).
fn frame<T: Serialize + MaxLen>(kind: u8, w: &T, out: &mut Vec<u8>) {
    let start = out.len();
    let at = start + FRAME_HEADER;
    out.resize(at + w.max_len(), 0);
    let written = postcard::to_slice(w, &mut out[at..])
        .expect("a record's payload fits its bound")
        .len();
    out.truncate(at + written);
    let payload = &out[at..];
    let len = u32::try_from(payload.len()).expect("a record is far below 4 GiB");
    let crc = checksum(kind, payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out[start + 8] = kind;
}

/// A frame's CRC-32C (Castagnoli), of its kind and payload (with the processor's
/// CRC instructions where it has them).
fn checksum(kind: u8, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload)
}

/// How many whole frames (their checksums holding) `bytes` starts with (its header
/// among them): the room to make before decoding them, so that a million records are not moved again and
/// again as their vector grows. Only frames that were written count, so damaged or
/// hostile bytes make it reserve no more than their valid records need.
fn count_frames(bytes: &[u8], limits: &Limits) -> usize {
    let (mut at, mut n) = (0usize, 0usize);
    while let Ok((_, _, len)) = next_frame(&bytes[at..], limits) {
        at += len;
        n += 1;
    }
    n
}

/// One frame at the front of `bytes`: its kind, payload and total length.
fn next_frame<'a>(bytes: &'a [u8], limits: &Limits) -> Result<(u8, &'a [u8], usize), Damage> {
    if bytes.len() < FRAME_HEADER {
        return Err(Damage::Short);
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if len > max_record_len(limits) {
        return Err(Damage::Length);
    }
    let end = FRAME_HEADER + len;
    if bytes.len() < end {
        return Err(Damage::Short);
    }
    let kind = bytes[8];
    let payload = &bytes[FRAME_HEADER..end];
    if checksum(kind, payload) != crc {
        return Err(Damage::Checksum);
    }
    Ok((kind, payload, end))
}

fn decode_update(payload: &[u8], limits: &Limits) -> Result<LogUpdate, Damage> {
    let w: UpdateWire<'_> = postcard::from_bytes(payload).map_err(|_| Damage::Decode)?;
    if w.key.len() > limits.max_key_len
        || w.source.is_empty()
        || w.source.len() > limits.max_id_len
        || !(w.ts.is_finite() && w.ts > 0.0)
    {
        return Err(Damage::Bounds);
    }
    let sig = match w.sig {
        None => None,
        Some(s) => Some(UpdateSig::try_from(s).map_err(|_| Damage::Bounds)?),
    };
    let value = EncodedValue::from_bytes(w.value, limits).map_err(|_| Damage::Bounds)?;
    Ok(LogUpdate {
        seq: w.seq,
        update: Update {
            key: SmolStr::new(w.key),
            value,
            ts: w.ts,
            source: SmolStr::new(w.source),
            sig,
        },
    })
}

/// Reads a segment back (see the module docs for what a bad frame means where).
/// `after` is the sequence number the segment's updates must be above (that of the
/// previous segment's last update; 0 for the first).
pub fn read_segment(
    bytes: &[u8],
    tail: Tail,
    after: u64,
    limits: &Limits,
) -> Result<Segment, LogError> {
    let mut updates = Vec::with_capacity(count_frames(bytes, limits));
    let mut seg = read_segment_with(bytes, tail, after, limits, |u| updates.push(u))?;
    seg.updates = updates;
    Ok(seg)
}

/// [`read_segment`], each update handed to `update` as it is read (the segment returned
/// has none of its own), as [`read_snapshot_with`] hands on entries. On damage some
/// updates may have been handed on already: with [`LogError::Damaged`] none of them
/// count.
fn read_segment_with(
    bytes: &[u8],
    tail: Tail,
    after: u64,
    limits: &Limits,
    mut update: impl FnMut(LogUpdate),
) -> Result<Segment, LogError> {
    // The header: without it nothing in the segment can be trusted (a torn first write
    // of a new segment is an empty segment).
    let header = match next_frame(bytes, limits) {
        Ok((KIND_HEADER, payload, _)) => match postcard::from_bytes::<HeaderWire<'_>>(payload) {
            Ok(h) if h.store_id.len() <= limits.max_id_len => SegmentHeader {
                format: h.format,
                store_id: h.store_id.to_owned(),
                first_seq: h.first_seq,
            },
            _ => return cut_or_fail(bytes, 0, Damage::Decode, tail, torn(), limits),
        },
        Ok(_) => return cut_or_fail(bytes, 0, Damage::Decode, tail, torn(), limits),
        Err(d) => return cut_or_fail(bytes, 0, d, tail, torn(), limits),
    };
    if header.format != FORMAT {
        return Err(LogError::Format(header.format));
    }
    let (_, _, mut at) = next_frame(bytes, limits).expect("checked above");
    let mut seg = Segment {
        header,
        updates: Vec::new(),
        valid_len: at,
        torn_at: None,
    };
    let mut last = after;
    while at < bytes.len() {
        let read = next_frame(&bytes[at..], limits).and_then(|(kind, payload, len)| {
            if kind != KIND_UPDATE {
                return Err(Damage::Decode);
            }
            let u = decode_update(payload, limits)?;
            if u.seq != last + 1 {
                return Err(Damage::Sequence);
            }
            Ok((u, len))
        });
        match read {
            Ok((u, len)) => {
                last = u.seq;
                update(u);
                at += len;
                seg.valid_len = at;
            }
            Err(d) => return cut_or_fail(bytes, at, d, tail, seg, limits),
        }
    }
    Ok(seg)
}

/// A bad frame at `offset`: cut there (a torn tail, or repair) or fail.
fn cut_or_fail(
    bytes: &[u8],
    offset: usize,
    damage: Damage,
    tail: Tail,
    mut seg: Segment,
    limits: &Limits,
) -> Result<Segment, LogError> {
    let torn = match tail {
        Tail::Sealed => false,
        Tail::Repair => true,
        // A crash tears only the last write: nothing valid can follow a torn frame.
        // (Zeros a file system allocated hold no valid frame: CRC-32C of a zero kind
        // is not zero.) A valid frame after it means the bad one is damage.
        // A frame whose checksum holds was written whole: what is wrong with it is
        // damage, wherever it is.
        Tail::Last => {
            matches!(damage, Damage::Short | Damage::Length | Damage::Checksum)
                && !valid_frame_after(bytes, offset + 1, limits)
        }
    };
    if !torn {
        return Err(LogError::Damaged { offset, damage });
    }
    seg.valid_len = offset;
    seg.torn_at = Some((offset, damage));
    Ok(seg)
}

/// A segment whose header was torn: it holds nothing.
fn torn() -> Segment {
    Segment {
        header: SegmentHeader {
            format: FORMAT,
            store_id: String::new(),
            first_seq: 0,
        },
        updates: Vec::new(),
        valid_len: 0,
        torn_at: None,
    }
}

/// Whether a frame with a valid checksum starts anywhere from `from` on. Each candidate
/// costs a length check, and a checksum only over a length within bounds and within
/// the bytes; this runs only where a frame was bad, in the last segment.
fn valid_frame_after(bytes: &[u8], from: usize, limits: &Limits) -> bool {
    (from..bytes.len()).any(|o| next_frame(&bytes[o..], limits).is_ok())
}

/// The file name of the segment whose first update is `first_seq`: `log-` and 20
/// digits, so that names sort as their numbers do.
pub fn segment_name(first_seq: u64) -> String {
    format!("log-{first_seq:020}.seg")
}

/// The first sequence number a segment's file name gives (see [`segment_name`]).
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("log-")?.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The file name of the snapshot the log goes on from at `from_seq`: `snap-` and 20
/// digits, so that names sort as their numbers do.
pub fn snapshot_name(from_seq: u64) -> String {
    format!("snap-{from_seq:020}.snap")
}

/// The sequence number a snapshot's file name gives (see [`snapshot_name`]).
pub fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The first record of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotHeader {
    /// The format version ([`FORMAT`]).
    pub format: u32,
    /// The store's source id when the snapshot began.
    pub store_id: String,
    /// The log record the snapshot began at: the records from it on are replayed
    /// after the snapshot (they may be in it too; replaying them changes nothing).
    pub from_seq: u64,
}

/// A snapshot read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Its header.
    pub header: SnapshotHeader,
    /// The store's entries (tombstones included), each as it was when the snapshot
    /// reached it.
    pub entries: Vec<Update>,
    /// Every source's clock when the snapshot was finished.
    pub clocks: Vec<(SmolStr, f64)>,
    /// The last log record made before the snapshot was finished: the log must reach
    /// it (see [`Damage::Behind`]).
    pub last_seq: u64,
}

/// When a durable store begins a snapshot ([`crate::Store::poll_snapshot`]): once the
/// records that later ones replaced (the log's and the last snapshot's *garbage*) add
/// up to at least `min_log` bytes and half the live data. A snapshot drops the
/// garbage, so the directory stays within about one and a half times the live data
/// (two and a half while a snapshot is being written beside the old one), or `min_log`
/// above it for a small store. Garbage is the only reason for one: a start reads the
/// snapshot and the log after it alike (a record of the log costs it what an entry of
/// the snapshot does), so a log of live records is as good as a snapshot of them, and
/// a store that only gains keys never copies them again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Log bytes written since the last snapshot began (at a start: what the log after
    /// the snapshot holds, [`Recovered::log_bytes`]).
    pub log_bytes: u64,
    /// The last snapshot's size in bytes (0: none).
    pub snapshot_bytes: u64,
    /// Bytes of the records in the snapshot and log that later records replaced
    /// (counted by the store as it applies and restores changes).
    pub garbage_bytes: u64,
    /// The least garbage before a snapshot (default 64 KiB).
    pub min_log: u64,
    /// Entries a snapshot takes per [`crate::Store::poll_snapshot`] (default 4096:
    /// well under a millisecond of the event loop).
    pub entries_per_step: usize,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            log_bytes: 0,
            snapshot_bytes: 0,
            garbage_bytes: 0,
            min_log: 64 << 10,
            entries_per_step: 4096,
        }
    }
}

impl SnapshotPolicy {
    /// The live data: what the snapshot and log hold, less their garbage.
    pub fn live_bytes(&self) -> u64 {
        (self.snapshot_bytes + self.log_bytes).saturating_sub(self.garbage_bytes)
    }

    /// Whether a snapshot is due: the garbage is at least half the live data and at
    /// least `min_log`.
    pub fn due(&self) -> bool {
        self.garbage_bytes >= self.min_log.max(self.live_bytes() / 2)
    }
}

/// About how many bytes the record of an entry takes (for [`SnapshotPolicy`]).
pub fn record_len(key: usize, value: usize, source: usize, signed: bool) -> u64 {
    (FRAME_HEADER + key + value + source + if signed { SIG_LEN + 1 } else { 1 } + 14) as u64
}

#[derive(Serialize, Deserialize)]
struct ClockWire<'a> {
    #[serde(borrow)]
    source: &'a str,
    ts: f64,
}

#[derive(Serialize, Deserialize)]
struct EndWire {
    entries: u64,
    clocks: u64,
    last_seq: u64,
}

/// Appends a snapshot's header record to `out`.
pub fn encode_snapshot_header(h: &SnapshotHeader, out: &mut Vec<u8>) {
    let w = HeaderWire {
        format: h.format,
        store_id: &h.store_id,
        first_seq: h.from_seq,
    };
    frame(KIND_SNAP_HEADER, &w, out);
}

/// Appends a snapshot's record of entry `u` to `out`.
pub fn encode_snapshot_entry(u: UpdateRef<'_>, out: &mut Vec<u8>) {
    let w = UpdateWire {
        seq: 0,
        key: u.key,
        value: u.value.as_bytes(),
        ts: u.ts,
        source: u.source,
        sig: u.sig.map(|s| &s[..]),
    };
    frame(KIND_SNAP_ENTRY, &w, out);
}

/// Appends a snapshot's record of `source`'s clock to `out`.
pub fn encode_snapshot_clock(source: &str, ts: f64, out: &mut Vec<u8>) {
    frame(KIND_SNAP_CLOCK, &ClockWire { source, ts }, out);
}

/// Appends a snapshot's end record to `out`: how many entries and clocks came before
/// it, and the last log record made before it.
pub fn encode_snapshot_end(entries: u64, clocks: u64, last_seq: u64, out: &mut Vec<u8>) {
    let w = EndWire {
        entries,
        clocks,
        last_seq,
    };
    frame(KIND_SNAP_END, &w, out);
}

/// Reads a snapshot back. A snapshot is written beside the log and put in place only
/// once it is whole (and synced), so nothing in it is a torn write: any bad frame, and
/// a missing or mismatched end record, is damage, named by offset.
pub fn read_snapshot(bytes: &[u8], limits: &Limits) -> Result<Snapshot, LogError> {
    // (Its header, clocks and end record are counted too: a few more than its entries.)
    let mut entries = Vec::with_capacity(count_frames(bytes, limits));
    let mut snap = read_snapshot_with(bytes, limits, |u| entries.push(u))?;
    snap.entries = entries;
    Ok(snap)
}

/// [`read_snapshot`], each entry handed to `entry` as it is read (the snapshot returned
/// has none of its own): into the vector of a whole log's updates, never moved again.
fn read_snapshot_with(
    bytes: &[u8],
    limits: &Limits,
    mut entry: impl FnMut(Update),
) -> Result<Snapshot, LogError> {
    let damaged = |offset: usize, damage: Damage| LogError::Damaged { offset, damage };
    let header = match next_frame(bytes, limits) {
        Ok((KIND_SNAP_HEADER, payload, _)) => {
            match postcard::from_bytes::<HeaderWire<'_>>(payload) {
                Ok(h) if h.store_id.len() <= limits.max_id_len => SnapshotHeader {
                    format: h.format,
                    store_id: h.store_id.to_owned(),
                    from_seq: h.first_seq,
                },
                _ => return Err(damaged(0, Damage::Decode)),
            }
        }
        Ok(_) => return Err(damaged(0, Damage::Decode)),
        Err(d) => return Err(damaged(0, d)),
    };
    if header.format != FORMAT {
        return Err(LogError::Format(header.format));
    }
    let (_, _, mut at) = next_frame(bytes, limits).expect("checked above");
    let mut snap = Snapshot {
        header,
        entries: Vec::new(),
        clocks: Vec::new(),
        last_seq: 0,
    };
    let mut entries = 0u64;
    loop {
        let (kind, payload, len) = next_frame(&bytes[at..], limits).map_err(|d| {
            // Bytes ending where a record should start: the end record is missing.
            damaged(
                at,
                if at == bytes.len() {
                    Damage::Unfinished
                } else {
                    d
                },
            )
        })?;
        match kind {
            KIND_SNAP_ENTRY if snap.clocks.is_empty() => {
                let u = decode_update(payload, limits).map_err(|d| damaged(at, d))?;
                entry(u.update);
                entries += 1;
            }
            KIND_SNAP_CLOCK => {
                let w: ClockWire<'_> =
                    postcard::from_bytes(payload).map_err(|_| damaged(at, Damage::Decode))?;
                if !valid_clock(w.source, w.ts, limits) {
                    return Err(damaged(at, Damage::Bounds));
                }
                snap.clocks.push((SmolStr::new(w.source), w.ts));
            }
            KIND_SNAP_END => {
                let w: EndWire =
                    postcard::from_bytes(payload).map_err(|_| damaged(at, Damage::Decode))?;
                let whole = w.entries == entries
                    && w.clocks == snap.clocks.len() as u64
                    && w.last_seq.saturating_add(1) >= snap.header.from_seq
                    && at + len == bytes.len();
                if !whole {
                    return Err(damaged(at, Damage::Unfinished));
                }
                snap.last_seq = w.last_seq;
                return Ok(snap);
            }
            _ => return Err(damaged(at, Damage::Decode)),
        }
        at += len;
    }
}

fn valid_clock(source: &str, ts: f64, limits: &Limits) -> bool {
    !source.is_empty() && source.len() <= limits.max_id_len && ts.is_finite() && ts > 0.0
}

/// A log read back: its snapshot and the updates of its valid prefix, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovered {
    /// Every update kept: the snapshot's entries first (numbered 0), then the log's
    /// updates in log order. Restore them in this order
    /// ([`crate::Store::restore`]).
    pub updates: Vec<LogUpdate>,
    /// The snapshot's clocks ([`crate::Store::restore_clock`]).
    pub clocks: Vec<(SmolStr, f64)>,
    /// The sequence number the next change gets.
    pub next_seq: u64,
    /// Per segment kept: how many of its bytes are valid (the file is cut to that).
    pub valid_lens: Vec<usize>,
    /// Segments after the cut (repair only): their files go.
    pub dropped: usize,
    /// Where a torn tail (or, with repair, damage) was cut: segment, offset, why.
    pub cut: Option<(usize, usize, Damage)>,
    /// Repair only: the snapshot was damaged (at this offset, for this reason) and is
    /// set aside, with every segment after it (a log without its snapshot is not a
    /// prefix of anything): the store starts empty and the room sends it all.
    pub snapshot_cut: Option<(usize, Damage)>,
    /// The snapshot's size in bytes (0: none).
    pub snapshot_bytes: u64,
    /// The valid bytes of the segments kept.
    pub log_bytes: u64,
}

impl Recovered {
    /// A log with nothing in it.
    pub fn empty() -> Self {
        Recovered {
            updates: Vec::new(),
            clocks: Vec::new(),
            next_seq: 1,
            valid_lens: Vec::new(),
            dropped: 0,
            cut: None,
            snapshot_cut: None,
            snapshot_bytes: 0,
            log_bytes: 0,
        }
    }
}

/// Why a log could not be read back: which segment (by index in the list given), and
/// where in it, or the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoverError {
    /// A segment is damaged (see [`LogError::Damaged`]).
    #[error("segment {segment} is damaged at byte {offset}: {damage}")]
    Damaged {
        /// Its index.
        segment: usize,
        /// Where the bad record starts.
        offset: usize,
        /// What is wrong.
        damage: Damage,
    },
    /// A segment of another format.
    #[error("segment {segment} is of log format {format} (this build reads format {FORMAT})")]
    Format {
        /// Its index.
        segment: usize,
        /// Its format.
        format: u32,
    },
    /// The snapshot is damaged, or the log does not reach it ([`Damage::Behind`]).
    #[error("the snapshot is damaged at byte {offset}: {damage}")]
    Snapshot {
        /// Where the bad record starts.
        offset: usize,
        /// What is wrong.
        damage: Damage,
    },
    /// A snapshot of another format.
    #[error("the snapshot is of format {0} (this build reads format {FORMAT})")]
    SnapshotFormat(u32),
    /// [`Recovery::finish`] was called before this segment (by index) and the ones
    /// after it were read: the reader stopped early.
    #[error("segment {0} was not read")]
    Unread(usize),
}

/// Reads a log back: its snapshot, if it has one, then its segments from the
/// snapshot's `from_seq` on, in order (the runtime leaves out the segments before
/// that, which the snapshot replaces). The last segment may end in a torn tail;
/// damage anywhere else fails, naming the segment and offset, unless `repair`: then
/// the log is cut at the first damage, and the segments after it are dropped (a prefix
/// is all that may be kept). A damaged snapshot fails too; with `repair` it is set
/// aside with the whole log after it (see [`Recovered::snapshot_cut`]). Records are
/// numbered without gaps across segments as within them.
///
/// [`Recovery`] reads the same files one at a time, handing updates on as it reads
/// them.
pub fn recover(
    snapshot: Option<&[u8]>,
    segments: &[&[u8]],
    repair: bool,
    limits: &Limits,
) -> Result<Recovered, RecoverError> {
    // Room for every record at once (see `count_frames`), in the one vector every
    // file's reader pushes onto.
    let room = snapshot.map_or(0, |b| count_frames(b, limits))
        + segments
            .iter()
            .map(|b| count_frames(b, limits))
            .sum::<usize>();
    let mut updates = Vec::with_capacity(room);
    let mut r = Recovery::new(segments.len(), repair, limits);
    if let Some(bytes) = snapshot {
        r.snapshot(bytes, |u| updates.push(u))?;
    }
    for bytes in segments {
        if !r.wants_segment() {
            break;
        }
        r.segment(bytes, |u| updates.push(u))?;
    }
    let mut out = r.finish()?;
    if out.snapshot_cut.is_none() {
        out.updates = updates;
    }
    Ok(out)
}

/// Where a durable store's log comes from as the store is built
/// ([`crate::Store::from_log`], [`crate::mesh::Mesh::with_log`]): the whole log read back
/// ([`Recovered`] is one: it hands nothing on, its `updates` are restored from it), or
/// a reader that hands each update on as it reads it, so that the store restores them
/// meanwhile (a runtime reading its files on a thread of its own with [`Recovery`]).
pub trait LogSource {
    /// Why the log could not be read back.
    type Error;
    /// Hands every update kept to `update`, in order; then returns what was read back.
    /// Updates the [`Recovered`] still holds are restored after those handed on; none
    /// handed on count if it has [`Recovered::snapshot_cut`] set.
    fn read(&mut self, update: &mut dyn FnMut(LogUpdate)) -> Result<Recovered, Self::Error>;
}

impl LogSource for Recovered {
    type Error = std::convert::Infallible;
    fn read(&mut self, _: &mut dyn FnMut(LogUpdate)) -> Result<Recovered, Self::Error> {
        Ok(std::mem::replace(self, Recovered::empty()))
    }
}

/// [`recover`] a file at a time, for a reader that holds only one file's bytes at once
/// and hands the updates on as it reads them (a runtime's reader thread, feeding a
/// store that restores them meanwhile: [`LogSource`]). Give it the snapshot (if there
/// is one), then the segments in order while [`Recovery::wants_segment`]; then
/// [`Recovery::finish`] says what was read back.
///
/// Each update kept is handed on once, in order: the snapshot's entries (numbered 0),
/// then the log's. Some handed on may not count after all: none do when a call fails,
/// nor when the [`Recovered`] that `finish` gives has [`Recovered::snapshot_cut`] set
/// (the store starts empty).
#[derive(Debug)]
pub struct Recovery {
    limits: Limits,
    repair: bool,
    /// How many segments the log has, and how many were read.
    segments: usize,
    read: usize,
    /// The last sequence number read, and the snapshot's `last_seq`.
    after: u64,
    snap_last: u64,
    /// A cut or a snapshot set aside: nothing more is read.
    done: bool,
    out: Recovered,
}

impl Recovery {
    /// A log of `segments` segments (the last may end torn), read as [`recover`] reads.
    pub fn new(segments: usize, repair: bool, limits: &Limits) -> Self {
        Recovery {
            limits: limits.clone(),
            repair,
            segments,
            read: 0,
            after: 0,
            snap_last: 0,
            done: false,
            out: Recovered::empty(),
        }
    }

    /// Reads the snapshot, before any segment, handing its entries to `update`.
    pub fn snapshot(
        &mut self,
        bytes: &[u8],
        mut update: impl FnMut(LogUpdate),
    ) -> Result<(), RecoverError> {
        debug_assert!(self.read == 0, "the snapshot comes before the segments");
        match read_snapshot_with(bytes, &self.limits, |update_| {
            update(LogUpdate {
                seq: 0,
                update: update_,
            })
        }) {
            Ok(snap) => {
                self.after = snap.header.from_seq.saturating_sub(1);
                self.snap_last = snap.last_seq;
                self.out.snapshot_bytes = bytes.len() as u64;
                self.out.clocks = snap.clocks;
                Ok(())
            }
            Err(LogError::Format(f)) => Err(RecoverError::SnapshotFormat(f)),
            Err(LogError::Damaged { offset, damage }) => self.set_aside(offset, damage),
        }
    }

    /// Whether the next segment is to be read: not once the log was cut (the segments
    /// after the cut go), nor when the snapshot was set aside, nor past the last.
    pub fn wants_segment(&self) -> bool {
        !self.done && self.read < self.segments
    }

    /// Reads the next segment, handing its updates to `update`; a call that
    /// [`Recovery::wants_segment`] says is not wanted reads nothing.
    pub fn segment(
        &mut self,
        bytes: &[u8],
        mut update: impl FnMut(LogUpdate),
    ) -> Result<(), RecoverError> {
        if !self.wants_segment() {
            return Ok(());
        }
        let i = self.read;
        self.read += 1;
        let tail = if self.repair {
            Tail::Repair
        } else if i + 1 == self.segments {
            Tail::Last
        } else {
            Tail::Sealed
        };
        let mut last = self.after;
        let seg = read_segment_with(bytes, tail, self.after, &self.limits, |u| {
            last = u.seq;
            update(u)
        })
        .map_err(|e| match e {
            LogError::Damaged { offset, damage } => RecoverError::Damaged {
                segment: i,
                offset,
                damage,
            },
            LogError::Format(format) => RecoverError::Format { segment: i, format },
        })?;
        self.after = last;
        self.out.valid_lens.push(seg.valid_len);
        self.out.log_bytes += seg.valid_len as u64;
        if let Some((offset, damage)) = seg.torn_at {
            self.out.cut = Some((i, offset, damage));
            self.out.dropped = self.segments - i - 1;
            self.done = true;
        }
        Ok(())
    }

    /// What was read back (its `updates` empty: they were handed on). Fails if a
    /// segment that was wanted was not read ([`RecoverError::Unread`]), or the log does not reach the
    /// snapshot (then with repair the store starts empty: [`Damage::Behind`]).
    pub fn finish(mut self) -> Result<Recovered, RecoverError> {
        if self.out.snapshot_cut.is_some() {
            return Ok(self.out);
        }
        if !self.done && self.read < self.segments {
            return Err(RecoverError::Unread(self.read));
        }
        if self.after < self.snap_last {
            // The snapshot holds changes the log lost: keeping both would break the
            // prefix property (see the module docs).
            self.out = Recovered::empty();
            self.set_aside(0, Damage::Behind)?;
            return Ok(self.out);
        }
        self.out.next_seq = self.after + 1;
        Ok(self.out)
    }

    /// A damaged snapshot: an error, or with repair an empty store.
    fn set_aside(&mut self, offset: usize, damage: Damage) -> Result<(), RecoverError> {
        if !self.repair {
            return Err(RecoverError::Snapshot { offset, damage });
        }
        self.out.clocks.clear();
        self.out.snapshot_cut = Some((offset, damage));
        self.out.dropped = self.segments;
        self.done = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Value;

    #[test]
    fn the_checksum_is_crc32c() {
        // The check value of CRC-32C (Castagnoli) over "123456789".
        assert_eq!(checksum(b'1', b"23456789"), 0xE306_9283);
    }

    /// A record's payload is the plain postcard encoding of its fields (byte fields
    /// written as bytes encode as a sequence of `u8`s would), and its bound holds at
    /// the extremes.
    #[test]
    fn records_are_plain_postcard_within_their_bounds() {
        #[derive(Serialize)]
        struct Plain<'a> {
            seq: u64,
            key: &'a str,
            value: &'a [u8],
            ts: f64,
            source: &'a str,
            sig: Option<&'a [u8]>,
        }
        let long = "k".repeat(70_000);
        let value = vec![7u8; 200_000];
        for (seq, key, sig) in [
            (u64::MAX, "", None),
            (0, "k", Some(&[9u8; SIG_LEN][..])),
            (300, long.as_str(), Some(&[1u8; SIG_LEN][..])),
        ] {
            let w = UpdateWire {
                seq,
                key,
                value: &value,
                ts: f64::MAX,
                source: "alice.0000000000000001",
                sig,
            };
            let mut out = vec![1, 2, 3];
            frame(KIND_UPDATE, &w, &mut out);
            let plain = postcard::to_allocvec(&Plain {
                seq,
                key,
                value: &value,
                ts: f64::MAX,
                source: "alice.0000000000000001",
                sig,
            })
            .unwrap();
            assert_eq!(&out[3 + FRAME_HEADER..], &plain[..]);
            assert!(plain.len() <= w.max_len());
        }
        let h = HeaderWire {
            format: u32::MAX,
            store_id: "s",
            first_seq: u64::MAX,
        };
        assert!(postcard::to_allocvec(&h).unwrap().len() <= h.max_len());
        let e = EndWire {
            entries: u64::MAX,
            clocks: u64::MAX,
            last_seq: u64::MAX,
        };
        assert!(postcard::to_allocvec(&e).unwrap().len() <= e.max_len());
    }

    fn update(i: u32, signed: bool) -> Update {
        Update {
            key: format!("k{i}").into(),
            value: EncodedValue::from_value(&Value::from(f64::from(i))),
            ts: 1_795_713_876_272.0 + f64::from(i),
            source: "alice.0000000000000001".into(),
            sig: signed.then_some([i as u8; SIG_LEN]),
        }
    }

    fn segment(n: u32) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        encode_header(
            &SegmentHeader {
                format: FORMAT,
                store_id: "alice.0000000000000001".into(),
                first_seq: 1,
            },
            &mut out,
        );
        let mut ends = vec![out.len()];
        for i in 1..=n {
            encode_update(u64::from(i), update(i, i % 2 == 0).as_ref(), &mut out);
            ends.push(out.len());
        }
        (out, ends)
    }

    #[test]
    fn a_segment_reads_back_whole() {
        let (bytes, _) = segment(5);
        let s = read_segment(&bytes, Tail::Sealed, 0, &Limits::default()).unwrap();
        assert_eq!(s.header.store_id, "alice.0000000000000001");
        assert_eq!(s.updates.len(), 5);
        assert_eq!(s.updates[1].update, update(2, true));
        assert_eq!((s.valid_len, s.torn_at), (bytes.len(), None));
    }

    #[test]
    fn a_cut_anywhere_in_the_last_segment_is_a_torn_tail_before_it() {
        let (bytes, ends) = segment(4);
        let limits = Limits::default();
        for cut in 0..bytes.len() {
            let s = read_segment(&bytes[..cut], Tail::Last, 0, &limits).unwrap();
            // Every record that ends at or before the cut is kept.
            let whole = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(s.updates.len(), whole.saturating_sub(1), "cut at {cut}");
            assert_eq!(
                s.valid_len,
                ends.iter()
                    .copied()
                    .filter(|&e| e <= cut)
                    .max()
                    .unwrap_or(0)
            );
            assert_eq!(
                s.torn_at.is_some(),
                s.valid_len < cut || cut == 0,
                "cut at {cut}"
            );
            // In a sealed segment the same cut is damage.
            if s.torn_at.is_some() {
                assert!(matches!(
                    read_segment(&bytes[..cut], Tail::Sealed, 0, &limits),
                    Err(LogError::Damaged { offset, .. }) if offset == s.valid_len
                ));
            }
        }
    }

    #[test]
    fn a_bad_record_followed_by_good_ones_is_damage_and_repair_keeps_the_prefix() {
        let (mut bytes, ends) = segment(4);
        // A bit flipped inside the second update's payload.
        bytes[ends[1] + FRAME_HEADER + 2] ^= 0x40;
        let limits = Limits::default();
        let e = read_segment(&bytes, Tail::Last, 0, &limits).unwrap_err();
        assert_eq!(
            e,
            LogError::Damaged {
                offset: ends[1],
                damage: Damage::Checksum
            }
        );
        assert_eq!(
            e.to_string(),
            format!(
                "damaged at byte {}: a record's checksum does not match",
                ends[1]
            )
        );
        let s = read_segment(&bytes, Tail::Repair, 0, &limits).unwrap();
        assert_eq!((s.updates.len(), s.valid_len), (1, ends[1]));
        assert_eq!(s.torn_at, Some((ends[1], Damage::Checksum)));
    }

    #[test]
    fn zeros_after_the_last_record_are_a_torn_tail() {
        let (mut bytes, ends) = segment(3);
        bytes.extend_from_slice(&[0; 4096]);
        let s = read_segment(&bytes, Tail::Last, 0, &Limits::default()).unwrap();
        assert_eq!((s.updates.len(), s.valid_len), (3, ends[3]));
        // A torn final record: its length says it ends where the bytes do.
        let (mut bytes, ends) = segment(3);
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        let s = read_segment(&bytes, Tail::Last, 0, &Limits::default()).unwrap();
        assert_eq!(
            (s.updates.len(), s.torn_at),
            (2, Some((ends[2], Damage::Checksum)))
        );
    }

    #[test]
    fn sequence_numbers_must_increase_across_segments_too() {
        let (bytes, ends) = segment(3);
        let limits = Limits::default();
        assert_eq!(
            read_segment(&bytes, Tail::Sealed, 2, &limits),
            Err(LogError::Damaged {
                offset: ends[0],
                damage: Damage::Sequence
            })
        );
    }

    #[test]
    fn lengths_are_bounded_before_anything_is_read() {
        let (mut bytes, ends) = segment(1);
        bytes[ends[0]..ends[0] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[1; 64]);
        assert_eq!(
            read_segment(&bytes, Tail::Sealed, 0, &Limits::default()),
            Err(LogError::Damaged {
                offset: ends[0],
                damage: Damage::Length
            })
        );
    }

    #[test]
    fn a_log_of_segments_recovers_in_order_and_names_the_damaged_one() {
        let limits = Limits::default();
        let (first, _) = segment(3);
        let mut second = Vec::new();
        encode_header(
            &SegmentHeader {
                format: FORMAT,
                store_id: "alice.0000000000000001".into(),
                first_seq: 4,
            },
            &mut second,
        );
        let mut ends = vec![second.len()];
        for i in 4..=6 {
            encode_update(u64::from(i), update(i, false).as_ref(), &mut second);
            ends.push(second.len());
        }
        let r = recover(None, &[&first, &second], false, &limits).unwrap();
        assert_eq!((r.updates.len(), r.next_seq, r.cut), (6, 7, None));
        // Torn in the last: cut, reported.
        let r = recover(None, &[&first, &second[..ends[2] + 5]], false, &limits).unwrap();
        assert_eq!((r.updates.len(), r.next_seq), (5, 6));
        assert_eq!(r.cut, Some((1, ends[2], Damage::Short)));
        assert_eq!(r.valid_lens, vec![first.len(), ends[2]]);
        // Cut short in the first: damage, named; repair keeps the prefix and drops the
        // rest.
        let short = &first[..first.len() - 2];
        let e = recover(None, &[short, &second], false, &limits).unwrap_err();
        assert!(
            matches!(
                e,
                RecoverError::Damaged {
                    segment: 0,
                    damage: Damage::Short,
                    ..
                }
            ),
            "{e:?}"
        );
        let r = recover(None, &[short, &second], true, &limits).unwrap();
        assert_eq!((r.updates.len(), r.dropped, r.next_seq), (2, 1, 3));
        // A log that does not begin at 1 (a segment lost before it): damage.
        let e = recover(None, &[&second, &first], false, &limits).unwrap_err();
        assert!(
            matches!(
                e,
                RecoverError::Damaged {
                    segment: 0,
                    damage: Damage::Sequence,
                    ..
                }
            ),
            "{e:?}"
        );
        // Segments out of order, or a gap between them: damage even in the last
        // segment, and even as its last record (a whole frame is not a torn write).
        let (one, _) = segment(1);
        for log in [[&first[..], &one[..]], [&one[..], &second[..]]] {
            let e = recover(None, &log, false, &limits).unwrap_err();
            assert!(
                matches!(
                    e,
                    RecoverError::Damaged {
                        segment: 1,
                        damage: Damage::Sequence,
                        ..
                    }
                ),
                "{e:?}"
            );
        }
    }

    #[test]
    fn segment_names_sort_as_their_numbers() {
        assert_eq!(segment_name(42), "log-00000000000000000042.seg");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        for bad in [
            "log-42.seg",
            "log-0000000000000000004x.seg",
            "snap-00000000000000000042",
            "log-00000000000000000042.seg.tmp",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
        let mut names: Vec<String> = [10, 9, 100].iter().map(|&n| segment_name(n)).collect();
        names.sort();
        assert_eq!(
            names
                .iter()
                .map(|n| parse_segment_name(n).unwrap())
                .collect::<Vec<_>>(),
            [9, 10, 100]
        );
    }

    #[test]
    fn another_format_is_refused_by_name() {
        let mut out = Vec::new();
        encode_header(
            &SegmentHeader {
                format: 9,
                store_id: "a".into(),
                first_seq: 1,
            },
            &mut out,
        );
        let e = read_segment(&out, Tail::Last, 0, &Limits::default()).unwrap_err();
        assert_eq!(e, LogError::Format(9));
        assert!(e.to_string().contains("format 9 is not supported"));
    }
}
