//! The replicated key/value store: last-writer-wins per key, per-source clocks,
//! hybrid-logical-clock timestamps, tombstones.
//!
//! An [`Update`] is (key, value, timestamp, source). For each key the winner is the
//! larger `(timestamp, source id bytewise)`, on every replica, whatever order updates
//! arrive in (scuttlebutt lets equal timestamps diverge; we do not). Per source, an
//! update whose timestamp is not above that source's clock entry is stale. Whether an
//! update is accepted depends only on the update and the store ([`Store::apply`]).
//!
//! Timestamps are milliseconds since the Unix epoch as `f64` (scuttlebutt's form). The
//! next local timestamp is `max(wall, last local, largest seen)`, bumped to the next
//! representable `f64` above the last local one when it would not be greater. Wall time
//! is `epoch + (now - start)`, from [`StoreConfig`]: the store never reads a clock.
//! A received timestamp more than `max_skew` ahead of the wall clock is applied (so
//! replicas stay equal) but does not move the local clock; it is counted.
//!
//! Every change, local or remote, is reported as a [`StoreEvent`] drained with
//! [`Store::poll_event`].

use std::collections::{BTreeMap, HashMap, VecDeque};

use std::hash::BuildHasher;

use foldhash::fast::FixedState;
use smol_str::SmolStr;
use std::time::{Duration, Instant};

use crate::key_index::KeyIndex;
use crate::limits::Limits;
use crate::security::updates::{UpdateGuard, UpdateRefusal, UpdateSig, MAX_FUTURE};
use crate::value::{EncodedValue, Object, Value, ValueError};

/// The most updates a secured store holds back for being stamped ahead of its clock.
const MAX_HELD: usize = 4096;

/// Index of a source id in a store's interning table. Stable for the store's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceIx(pub(crate) u32);

/// A write of the history a session is sending: where the entry is in the store and
/// its timestamp then (see [`Store::history_slots`]). Entries are never removed, so
/// the position stays valid; a changed timestamp means the entry was overwritten.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HistoryItem {
    pub(crate) slot: u32,
    pub(crate) ts: f64,
}

/// One write: key, value (`null` = delete), timestamp, source id.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    /// The key.
    pub key: SmolStr,
    /// The encoded value; `null` is a delete (tombstone).
    pub value: EncodedValue,
    /// Milliseconds since the Unix epoch; finite and positive.
    pub ts: f64,
    /// The writer's source id.
    pub source: SmolStr,
    /// The writer's signature (secured rooms; see [`crate::security::updates`]).
    pub sig: Option<UpdateSig>,
}

/// A borrowed view of an update, as held by a store or about to be encoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateRef<'a> {
    /// The key.
    pub key: &'a str,
    /// The encoded value; `null` is a delete.
    pub value: &'a EncodedValue,
    /// Timestamp.
    pub ts: f64,
    /// Source id.
    pub source: &'a str,
    /// The writer's signature, if any.
    pub sig: Option<&'a UpdateSig>,
}

impl Update {
    /// Borrows this update.
    pub fn as_ref(&self) -> UpdateRef<'_> {
        UpdateRef {
            key: &self.key,
            value: &self.value,
            ts: self.ts,
            source: &self.source,
            sig: self.sig.as_ref(),
        }
    }
}

impl UpdateRef<'_> {
    /// Copies into an owned update.
    pub fn to_owned(&self) -> Update {
        Update {
            key: self.key.into(),
            value: self.value.clone(),
            ts: self.ts,
            source: self.source.into(),
            sig: self.sig.copied(),
        }
    }
}

/// What [`Store::apply`] did with an update.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Verdict {
    /// The update won its key and changed the store.
    Applied,
    /// The source's clock advanced, but the key already holds a newer write
    /// (larger timestamp, or equal timestamp and larger source id).
    Superseded,
    /// The source's clock is already at or past this timestamp: nothing changed.
    Stale,
    /// The update is invalid: nothing changed.
    Rejected(Rejection),
    /// A secured store holds the update back: it is stamped more than
    /// [`MAX_FUTURE`] ahead of the store's clock. It is applied (and reported) when
    /// its time comes ([`Store::release_held`]); until then nothing changed.
    Held,
}

/// Why an update was rejected.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The timestamp is NaN, infinite, zero or negative.
    #[error("timestamp is not a finite positive number")]
    BadTimestamp,
    /// The key is longer than the limit or is `__proto__`.
    #[error("invalid key")]
    BadKey,
    /// The source id is empty, too long or has control characters.
    #[error("invalid source id")]
    BadSource,
    /// The value is larger than the limit.
    #[error("value too large")]
    ValueTooLarge,
    /// A secured store refused it: unsigned, a bad signature, or a write the room's
    /// rules do not allow.
    #[error(transparent)]
    Refused(#[from] UpdateRefusal),
}

/// A misuse of the local store API.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key is longer than [`Limits::max_key_len`].
    #[error("key of {len} bytes exceeds the limit of {max} bytes")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `__proto__` cannot be a key: JavaScript peers cannot hold it.
    #[error("the key \"__proto__\" is not allowed")]
    ProtoKey,
    /// The encoded value is larger than [`Limits::max_value_len`].
    #[error("value of {len} bytes exceeds the maximum value size of {max} bytes")]
    ValueTooLarge {
        /// The encoded size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is not valid.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// The source id given in the configuration is invalid.
    #[error("invalid source id {0:?}: 1 to 128 bytes without control characters")]
    BadSourceId(String),
    /// In a secured room, the key belongs to another member (`users/<id>/...`).
    #[error("the key {0:?} is another member's (users/<id>/ keys are their member's alone)")]
    NotOwner(String),
    /// A secured store's member was removed from the room (`room/revoked/<id>`).
    #[error("this member was removed from the room")]
    Revoked,
    /// A secured store's source id must start with its identity's peer id.
    #[error("the source id {0:?} does not start with the identity's peer id")]
    NotTheIdentity(String),
}

/// A change to the store, local or remote.
#[derive(Clone, Debug, PartialEq)]
pub struct StoreEvent {
    /// The key.
    pub key: SmolStr,
    /// The new value (`null` when deleted).
    pub value: EncodedValue,
    /// Whether the key was deleted.
    pub deleted: bool,
    /// The writer's source id.
    pub source: SmolStr,
    /// The update's timestamp.
    pub ts: f64,
    /// Whether this replica made the change.
    pub local: bool,
    /// The writer's signature (secured rooms).
    pub sig: Option<UpdateSig>,
}

/// A vector clock: the latest timestamp seen per source, in first-seen order.
/// Two clocks are equal when they hold the same entries, in any order.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    entries: Vec<(String, f64)>,
}

impl PartialEq for Clock {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(s, t)| other.get(s) == Some(t))
    }
}

impl Clock {
    /// An empty clock.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `source`'s entry (appending a new source at the end).
    pub fn set(&mut self, source: &str, ts: f64) {
        match self.entries.iter_mut().find(|(s, _)| s == source) {
            Some(e) => e.1 = ts,
            None => self.entries.push((source.to_owned(), ts)),
        }
    }
    /// The entry of `source`.
    pub fn get(&self, source: &str) -> Option<f64> {
        self.entries.iter().find(|(s, _)| s == source).map(|e| e.1)
    }
    /// Entries in first-seen order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, f64)> {
        self.entries.iter().map(|(s, t)| (s.as_str(), *t))
    }
    /// Number of sources.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// No sources?
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Builds a clock from entries; a repeated source keeps its last value, at its first position.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, f64)>) -> Self {
        let mut c = Clock::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (s, t) in entries {
            match index.get(&s) {
                Some(&i) => c.entries[i].1 = t,
                None => {
                    index.insert(s.clone(), c.entries.len());
                    c.entries.push((s, t));
                }
            }
        }
        c
    }
}

/// Why [`Store::from_log`] could not build a store.
#[derive(Debug, thiserror::Error)]
pub enum FromLogError<E> {
    /// The configuration was refused ([`Store::new`]).
    #[error(transparent)]
    Store(StoreError),
    /// The log could not be read back.
    #[error("the log could not be read back: {0}")]
    Log(E),
}

/// Store configuration.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// This replica's source id: `<peer id>.<incarnation>` in a mesh.
    pub id: String,
    /// Wall-clock milliseconds since the Unix epoch at `start`.
    pub epoch_ms: f64,
    /// The instant that corresponds to `epoch_ms`.
    pub start: Instant,
    /// How far ahead of the wall clock a received timestamp may be and still move the
    /// local clock (default 60 s).
    pub max_skew: Duration,
    /// Bounds on keys, values and ids.
    pub limits: Limits,
    /// Seed of the hash that indexes keys. Runtimes draw it at random, so that a peer
    /// cannot choose keys that collide; simulations fix it. Default 0.
    pub hash_seed: u64,
    /// A secured room's store: our writes are signed, and updates from peers are checked
    /// before they touch anything (see [`crate::security::updates`]). Default `None`.
    pub guard: Option<UpdateGuard>,
    /// A durable member's store: every change is also recorded for its log (see
    /// [`Store::poll_persist`]), numbered from this sequence number on (one past the
    /// last one the log holds). Default `None` (nothing recorded).
    pub persist_from: Option<u64>,
    /// A durable member's store: when it snapshots itself (see
    /// [`Store::poll_snapshot`]).
    pub snapshots: crate::persist::SnapshotPolicy,
}

impl StoreConfig {
    /// A configuration with default skew and limits.
    pub fn new(id: impl Into<String>, epoch_ms: f64, start: Instant) -> Self {
        StoreConfig {
            id: id.into(),
            epoch_ms,
            start,
            max_skew: Duration::from_secs(60),
            limits: Limits::default(),
            hash_seed: 0,
            guard: None,
            persist_from: None,
            snapshots: crate::persist::SnapshotPolicy::default(),
        }
    }
}

/// Counters of what the store has seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Remote updates applied.
    pub applied: u64,
    /// Remote updates that lost to a newer write of their key.
    pub superseded: u64,
    /// Remote updates already covered by their source's clock.
    pub stale: u64,
    /// Remote updates rejected as invalid.
    pub rejected: u64,
    /// Remote updates stamped more than `max_skew` ahead of our wall clock.
    pub skewed: u64,
    /// Local writes.
    pub local: u64,
    /// Secured stores: remote updates without a signature.
    pub unsigned: u64,
    /// Secured stores: remote updates whose signature did not check.
    pub bad_signatures: u64,
    /// Secured stores: remote updates whose source is not a member's key.
    pub bad_sources: u64,
    /// Secured stores: remote updates into another member's `users/` space.
    pub not_owner: u64,
    /// Secured stores: remote updates held back for being stamped more than
    /// [`MAX_FUTURE`] ahead (each time one arrives).
    pub held: u64,
    /// Secured stores: remote updates that arrived below their source's clock (after a
    /// later update of the same writer) and still won their key: a relay reordered
    /// them. Applied like any other.
    pub late: u64,
    /// Secured stores: remote updates of a removed member stamped after its removal.
    pub revoked: u64,
    /// Secured stores: writes of a removed member stamped after its removal that had
    /// been applied before the removal arrived, voided when it did.
    pub voided: u64,
}

#[derive(Clone, Debug)]
struct Entry {
    value: EncodedValue,
    ts: f64,
    source: SourceIx,
    /// Index of its signature in [`Store::sigs`], or [`NO_SIG`] (it fits the entry's
    /// padding: an open store pays nothing for signatures).
    sig: u32,
}

/// Last writer wins: does a write at `ts` by `source` beat entry `e`? The larger
/// timestamp, and on a tie the larger source id.
fn beats(names: &[SmolStr], ts: f64, source: SourceIx, e: &Entry) -> bool {
    e.ts < ts
        || (e.ts == ts
            && (cfg!(feature = "bug-tie-by-arrival")
                || names[e.source.0 as usize].as_bytes() < names[source.0 as usize].as_bytes()))
}

/// [`Entry::sig`] of an unsigned write.
const NO_SIG: u32 = u32::MAX;

/// Source ids interned to small indices, with the per-source clock.
#[derive(Debug, Default)]
struct Sources {
    names: Vec<SmolStr>,
    index: HashMap<SmolStr, u32>,
    clock: Vec<f64>,
    /// The source looked up last: updates come in runs from one source.
    last: std::cell::Cell<u32>,
}

impl Sources {
    fn intern(&mut self, name: &str) -> SourceIx {
        if let Some(ix) = self.get(name) {
            return ix;
        }
        let i = self.names.len() as u32;
        let name: SmolStr = name.into();
        self.names.push(name.clone());
        self.index.insert(name, i);
        self.clock.push(0.0);
        self.last.set(i);
        SourceIx(i)
    }
    fn get(&self, name: &str) -> Option<SourceIx> {
        let last = self.last.get();
        if self.names.get(last as usize).is_some_and(|n| &**n == name) {
            return Some(SourceIx(last));
        }
        let i = *self.index.get(name)?;
        self.last.set(i);
        Some(SourceIx(i))
    }
}

/// Is `id` an acceptable source id (1..=max bytes, no control characters)?
pub(crate) fn valid_source(id: &str, limits: &Limits) -> bool {
    !id.is_empty()
        && id.len() <= limits.max_id_len
        && id != "__proto__"
        && !id.chars().any(char::is_control)
}

/// The replicated map. See the module docs.
#[derive(Debug)]
pub struct Store {
    id: SmolStr,
    local: SourceIx,
    sources: Sources,
    /// Keyed by a seeded hash: iteration order never reaches an output (every listing
    /// is sorted), so replicas and simulations stay deterministic.
    entries: KeyTable,
    live: usize,
    last_local: f64,
    max_seen: f64,
    epoch_ms: f64,
    start: Instant,
    max_skew_ms: f64,
    limits: Limits,
    events: VecDeque<StoreEvent>,
    stats: StoreStats,
    wall_cache: (Option<Instant>, f64),
    guard: Option<UpdateGuard>,
    /// The signatures of the entries (secured stores), 64 bytes each, in one block.
    sigs: Vec<UpdateSig>,
    /// Slots of `sigs` no entry uses (an unsigned write replaced a signed one).
    free_sigs: Vec<u32>,
    /// Held back (secured stores), by (timestamp bits, source).
    held: BTreeMap<(u64, SmolStr), Update>,
    /// Removed members (secured stores): peer id -> the time after which its updates
    /// are refused, from the `room/revoked/<id>` entries.
    revoked: HashMap<SmolStr, f64>,
    /// Keys voided since [`Store::take_voided`] was last called.
    voided_since: Vec<SmolStr>,
    /// A durable member's store: the changes not yet taken by the log.
    persist: Option<PersistQueue>,
    /// Restoring ([`Store::restore`]): changes are not recorded again.
    replaying: bool,
}

/// The most a new batch of log records reserves at once (see [`Store::poll_persist`]).
const MAX_BATCH_ROOM: usize = 1 << 20;

/// What the log has yet to take: the records of the changes since it last polled.
#[derive(Debug)]
struct PersistQueue {
    /// The sequence number of the next change.
    next: u64,
    /// The first sequence number in `bytes`.
    first: u64,
    /// The last record the runtime reported durable ([`Store::persisted`]).
    durable: u64,
    bytes: Vec<u8>,
    /// When the next snapshot is due.
    policy: crate::persist::SnapshotPolicy,
    /// The snapshot being taken, if one is.
    snap: Option<SnapCursor>,
}

/// How far a snapshot has got.
#[derive(Debug)]
struct SnapCursor {
    from_seq: u64,
    /// The next slot of the key table to take.
    slot: usize,
    entries: u64,
    /// Bytes handed out so far.
    len: u64,
}

/// A piece of a snapshot ([`Store::poll_snapshot`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPart {
    /// The log record the snapshot begins at ([`crate::persist::SnapshotHeader`]).
    pub from_seq: u64,
    /// The snapshot's first piece: the log goes on in a new segment from `from_seq`
    /// (nothing numbered `from_seq` or later has been handed out yet), and a new
    /// snapshot file begins with these bytes.
    pub first: bool,
    /// The snapshot's bytes, to append to its file.
    pub bytes: Vec<u8>,
    /// The last piece: the snapshot is whole, and depends on the log records up to
    /// this one (all handed out already). Once the snapshot's file and those records
    /// are durable, the snapshot replaces every segment before `from_seq` and every
    /// older snapshot.
    pub last_seq: Option<u64>,
}

/// Records for a durable member's log ([`Store::poll_persist`]): the changes numbered
/// `first_seq..=last_seq`, in the order the store made them, as
/// [`crate::persist`] records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PersistBatch {
    /// The sequence number of the first record.
    pub first_seq: u64,
    /// The sequence number of the last record.
    pub last_seq: u64,
    /// The records, framed.
    pub bytes: Vec<u8>,
}

impl StoreStats {
    /// Every counter with its field's name, in declaration order (for reports).
    pub fn counters(&self) -> [(&'static str, u64); 14] {
        [
            ("applied", self.applied),
            ("superseded", self.superseded),
            ("stale", self.stale),
            ("rejected", self.rejected),
            ("skewed", self.skewed),
            ("local", self.local),
            ("unsigned", self.unsigned),
            ("bad_signatures", self.bad_signatures),
            ("bad_sources", self.bad_sources),
            ("not_owner", self.not_owner),
            ("held", self.held),
            ("late", self.late),
            ("revoked", self.revoked),
            ("voided", self.voided),
        ]
    }
}

impl Store {
    /// A new, empty store.
    pub fn new(config: StoreConfig) -> Result<Self, StoreError> {
        if !valid_source(&config.id, &config.limits) {
            return Err(StoreError::BadSourceId(config.id));
        }
        if let Some(g) = &config.guard {
            if crate::security::updates::writer_of(&config.id) != Some(g.writer()) {
                return Err(StoreError::NotTheIdentity(config.id));
            }
        }
        let mut sources = Sources::default();
        let local = sources.intern(&config.id);
        Ok(Store {
            id: sources.names[0].clone(),
            local,
            sources,
            entries: KeyTable::new(config.hash_seed),
            live: 0,
            last_local: 0.0,
            max_seen: 0.0,
            epoch_ms: config.epoch_ms,
            start: config.start,
            max_skew_ms: config.max_skew.as_secs_f64() * 1000.0,
            limits: config.limits,
            events: VecDeque::new(),
            stats: StoreStats::default(),
            wall_cache: (None, 0.0),
            guard: config.guard,
            sigs: Vec::new(),
            free_sigs: Vec::new(),
            held: BTreeMap::new(),
            revoked: HashMap::new(),
            voided_since: Vec::new(),
            persist: config.persist_from.map(|n| PersistQueue {
                next: n.max(1),
                first: n.max(1),
                durable: n.max(1) - 1,
                bytes: Vec::new(),
                policy: config.snapshots.clone(),
                snap: None,
            }),
            replaying: false,
        })
    }

    /// A durable member's store: the changes made since the last call, as log records
    /// (`None` if there are none, or the store records nothing). Each change, local or
    /// remote, is one record, in the order the store made it, so that any prefix of the
    /// log is a state the store was in (see [`crate::persist`]).
    pub fn poll_persist(&mut self) -> Option<PersistBatch> {
        let q = self.persist.as_mut()?;
        if q.bytes.is_empty() {
            return None;
        }
        // The next batch starts with room for as much as this one and a quarter more (a
        // batch grown from nothing moves its bytes a dozen times; one made in exactly
        // the room of the last moves them all once more at its last record, which
        // needs room for the most it can take).
        let room = (q.bytes.len() + q.bytes.len() / 4).min(MAX_BATCH_ROOM);
        let batch = PersistBatch {
            first_seq: q.first,
            last_seq: q.next - 1,
            bytes: std::mem::replace(&mut q.bytes, Vec::with_capacity(room)),
        };
        q.first = q.next;
        Some(batch)
    }

    /// A durable member's store: the runtime has made the records up to `seq` durable
    /// at its level (written, and at `power` synced). What a change makes known (its
    /// event, an update to a peer, an answer) waits for this: see
    /// [`Store::awaiting_persist`].
    pub fn persisted(&mut self, seq: u64) {
        if let Some(q) = self.persist.as_mut() {
            q.durable = q.durable.max(seq.min(q.next - 1));
        }
    }

    /// A durable member's store: the number of the last record it made, and of the
    /// last one the runtime reported durable ([`Store::persisted`]); `None` if it
    /// records nothing.
    pub fn persist_seqs(&self) -> Option<(u64, u64)> {
        self.persist.as_ref().map(|q| (q.next - 1, q.durable))
    }

    /// Whether changes wait to be made durable: records not yet taken by
    /// [`Store::poll_persist`], or taken and not yet reported by [`Store::persisted`].
    /// A [`crate::mesh::Mesh`] holds back each output made meanwhile until the records
    /// before it are durable (see [`Store::persist_seqs`]).
    pub fn awaiting_persist(&self) -> bool {
        self.persist_seqs()
            .is_some_and(|(made, durable)| durable < made)
    }

    /// A durable member's store: the next piece of a snapshot, when one is due or
    /// under way ([`crate::persist::SnapshotPolicy`]). `None` while the log has records
    /// waiting ([`Store::poll_persist`] first), when no snapshot is due, or when the
    /// store records nothing.
    ///
    /// A snapshot is taken a few thousand entries per call
    /// ([`crate::persist::SnapshotPolicy::entries_per_step`]) while the store goes on
    /// changing: each entry is taken as it is when the snapshot reaches it. Restored,
    /// then followed by the log from `from_seq` on, it gives back the store exactly:
    /// a key changed after the snapshot began has its change in that log, and the
    /// later write wins, whichever of the two was taken. The clocks are taken at the
    /// end, when the last piece is made.
    pub fn poll_snapshot(&mut self) -> Option<SnapshotPart> {
        let q = self.persist.as_mut()?;
        if !q.bytes.is_empty() {
            return None;
        }
        let mut bytes = Vec::new();
        let first = q.snap.is_none();
        if first {
            if !q.policy.due() {
                return None;
            }
            q.policy.log_bytes = 0;
            q.policy.garbage_bytes = 0;
            q.snap = Some(SnapCursor {
                from_seq: q.next,
                slot: 0,
                entries: 0,
                len: 0,
            });
            crate::persist::encode_snapshot_header(
                &crate::persist::SnapshotHeader {
                    format: crate::persist::FORMAT,
                    store_id: self.id.to_string(),
                    from_seq: q.next,
                },
                &mut bytes,
            );
        }
        let cur = q.snap.as_mut().expect("begun above");
        let slots = &self.entries.slots;
        let names = &self.sources.names;
        let end = cur
            .slot
            .saturating_add(q.policy.entries_per_step.max(1))
            .min(slots.len());
        for (key, e) in &slots[cur.slot..end] {
            // A voided write (timestamp 0) is as good as none.
            if e.ts > 0.0 {
                let u = UpdateRef {
                    key,
                    value: &e.value,
                    ts: e.ts,
                    source: &names[e.source.0 as usize],
                    sig: (e.sig != NO_SIG).then(|| &self.sigs[e.sig as usize]),
                };
                crate::persist::encode_snapshot_entry(u, &mut bytes);
                cur.entries += 1;
            }
        }
        cur.slot = end;
        let from_seq = cur.from_seq;
        let mut last_seq = None;
        if end == slots.len() {
            let mut clocks = 0;
            for (n, &t) in names.iter().zip(&self.sources.clock) {
                if t > 0.0 {
                    crate::persist::encode_snapshot_clock(n, t, &mut bytes);
                    clocks += 1;
                }
            }
            crate::persist::encode_snapshot_end(cur.entries, clocks, q.next - 1, &mut bytes);
            q.policy.snapshot_bytes = cur.len + bytes.len() as u64;
            q.snap = None;
            last_seq = Some(q.next - 1);
        } else {
            cur.len += bytes.len() as u64;
        }
        Some(SnapshotPart {
            from_seq,
            first,
            bytes,
            last_seq,
        })
    }

    /// Whether a snapshot is under way ([`Store::poll_snapshot`] has more to give).
    pub fn snapshotting(&self) -> bool {
        self.persist.as_ref().is_some_and(|q| q.snap.is_some())
    }

    /// A durable store built from its log as the log is read back: made with `config`
    /// (its [`StoreConfig::persist_from`] replaced by the number after the log's last
    /// record, and its snapshot policy counting the log's bytes), then each update
    /// `log` hands on restored at [`StoreConfig::start`] ([`Store::restore`]), then what
    /// `log` returns ([`Store::restore_recovered`]). A log whose snapshot was set aside
    /// ([`crate::persist::Recovered::snapshot_cut`]) gives a store with nothing
    /// restored.
    pub fn from_log<S: crate::persist::LogSource>(
        config: StoreConfig,
        log: &mut S,
    ) -> Result<Store, FromLogError<S::Error>> {
        let now = config.start;
        // Numbered from 1 until the log says where it ends; the garbage its records
        // hold is counted as they are restored.
        let mut c = config.clone();
        c.persist_from = Some(1);
        let mut store = Store::new(c.clone()).map_err(FromLogError::Store)?;
        let r = log
            .read(&mut |u| {
                store.restore(now, u.update.as_ref());
            })
            .map_err(FromLogError::Log)?;
        if r.snapshot_cut.is_some() {
            store = Store::new(c).map_err(FromLogError::Store)?;
        }
        store.restore_recovered(now, &r);
        if let Some(q) = store.persist.as_mut() {
            let n = r.next_seq.max(1);
            (q.next, q.first, q.durable) = (n, n, n - 1);
            q.policy.log_bytes = r.log_bytes;
            q.policy.snapshot_bytes = r.snapshot_bytes;
        }
        Ok(store)
    }

    /// Restores what a durable store's directory read back
    /// ([`crate::persist::recover`]): its updates ([`Store::restore`]), then its
    /// snapshot's clocks ([`Store::restore_clock`]). (The store's records are numbered
    /// on from its [`StoreConfig::persist_from`]; [`Store::from_log`] sets that too.)
    pub fn restore_recovered(&mut self, now: Instant, r: &crate::persist::Recovered) {
        self.reserve(r.updates.len());
        for u in &r.updates {
            self.restore(now, u.update.as_ref());
        }
        for (source, ts) in &r.clocks {
            self.restore_clock(now, source, *ts);
        }
    }

    /// Restores a source's clock read back from a snapshot (see [`Store::restore`]):
    /// it only ever moves forward.
    pub fn restore_clock(&mut self, now: Instant, source: &str, ts: f64) {
        if !(ts.is_finite() && ts > 0.0 && valid_source(source, &self.limits)) {
            return;
        }
        let ix = self.sources.intern(source);
        let clock = &mut self.sources.clock[ix.0 as usize];
        *clock = clock.max(ts);
        if ts <= self.wall_ms_cached(now) + self.max_skew_ms {
            self.max_seen = self.max_seen.max(ts);
        }
        if ix == self.local {
            self.last_local = self.last_local.max(ts);
        }
    }

    /// The bytes of records waiting for [`Store::poll_persist`].
    pub fn persist_pending(&self) -> usize {
        self.persist.as_ref().map_or(0, |q| q.bytes.len())
    }

    /// Restores an update read back from this member's log: applied as it was when it
    /// was logged, without checking it again (the log's checksums vouch for its bytes;
    /// it passed every check when it first came). The source's clock and our hybrid
    /// clock move as they did then; nothing is recorded for the log again. Returns
    /// whether it changed the key (a record written twice, say across a snapshot, does
    /// not).
    pub fn restore(&mut self, now: Instant, u: UpdateRef<'_>) -> bool {
        if !(u.ts.is_finite() && u.ts > 0.0 && valid_source(u.source, &self.limits)) {
            return false;
        }
        let ix = self.sources.intern(u.source);
        let clock = &mut self.sources.clock[ix.0 as usize];
        *clock = clock.max(u.ts);
        if u.ts <= self.wall_ms_cached(now) + self.max_skew_ms {
            self.max_seen = self.max_seen.max(u.ts);
        }
        if ix == self.local {
            self.last_local = self.last_local.max(u.ts);
        }
        self.replaying = true;
        let (events, voided) = (self.events.len(), self.voided_since.len());
        let changed = self
            .put(
                self.entries.locate(u.key),
                u.key,
                None,
                u.value.clone(),
                u.ts,
                ix,
                u.sig.copied(),
                false,
                true,
            )
            .is_some();
        // A removed member's write stamped after its removal is void however the
        // removal and the write come back (a snapshot holds them in any order, and the
        // log after it may bring the write again).
        let removed = crate::security::updates::writer_of(u.source)
            .and_then(|w| self.revoked.get(w))
            .is_some_and(|&after| u.ts > after);
        if changed && removed {
            if let Some(slot) = self.entries.locate(u.key).slot {
                self.void_slot(slot);
            }
        }
        self.replaying = false;
        // Restored, not news: nothing to report to the links, and what a removal voided
        // was asked for again in the life that logged it.
        self.events.truncate(events);
        self.voided_since.truncate(voided);
        changed
    }

    /// The instant the store's clock starts at ([`StoreConfig::start`]).
    pub fn start(&self) -> Instant {
        self.start
    }

    /// This replica's source id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counters.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    /// Wall-clock milliseconds at `now`, whole milliseconds as `Date.now()` gives.
    pub fn wall_ms(&self, now: Instant) -> f64 {
        (self.epoch_ms + now.saturating_duration_since(self.start).as_secs_f64() * 1000.0).floor()
    }

    /// [`Store::wall_ms`], computed once per distinct `now` (a frame's updates share it).
    fn wall_ms_cached(&mut self, now: Instant) -> f64 {
        if self.wall_cache.0 != Some(now) {
            self.wall_cache = (Some(now), self.wall_ms(now));
        }
        self.wall_cache.1
    }

    /// The next local timestamp (the hybrid logical clock of the Conventions).
    fn next_ts(&mut self, now: Instant) -> f64 {
        let mut t = self
            .wall_ms_cached(now)
            .max(self.last_local)
            .max(self.max_seen);
        if t <= self.last_local {
            t = self.last_local.next_up();
        }
        self.last_local = t;
        t
    }

    fn check_key(&self, key: &str) -> Result<(), StoreError> {
        if key.len() > self.limits.max_key_len {
            return Err(StoreError::KeyTooLong {
                len: key.len(),
                max: self.limits.max_key_len,
            });
        }
        if key == "__proto__" {
            return Err(StoreError::ProtoKey);
        }
        Ok(())
    }

    /// Sets `key` to `value` (`null` deletes). Returns the update made, to be sent.
    pub fn set(&mut self, now: Instant, key: &str, value: &Value) -> Result<Update, StoreError> {
        // Refuse what peers would refuse (non-finite numbers, too deep) before encoding.
        value.check(self.limits.max_depth)?;
        self.write(now, key, EncodedValue::from_value(value))
    }

    /// Deletes `key` (writes a tombstone).
    pub fn delete(&mut self, now: Instant, key: &str) -> Result<Update, StoreError> {
        self.set_encoded(now, key, EncodedValue::null())
    }

    /// Sets `key` to an encoded value.
    pub fn set_encoded(
        &mut self,
        now: Instant,
        key: &str,
        value: EncodedValue,
    ) -> Result<Update, StoreError> {
        // Checked as a peer's value would be: size (binary and JSON text), depth, form.
        let value =
            EncodedValue::from_bytes(value.as_bytes(), &self.limits).map_err(|e| match e {
                ValueError::TooLarge { len, max } => StoreError::ValueTooLarge { len, max },
                e => StoreError::Value(e),
            })?;
        self.write(now, key, value)
    }

    /// A local write of a value whose form is checked (its size is checked here).
    fn write(
        &mut self,
        now: Instant,
        key: &str,
        value: EncodedValue,
    ) -> Result<Update, StoreError> {
        self.check_key(key)?;
        if let Some(g) = &self.guard {
            if !g.may_write(key) {
                return Err(StoreError::NotOwner(key.to_owned()));
            }
            if self.revoked.contains_key(g.writer()) {
                return Err(StoreError::Revoked);
            }
        }
        if !value.fits(&self.limits) {
            return Err(StoreError::ValueTooLarge {
                len: value.len().max(value.to_json().len()),
                max: self.limits.max_value_len,
            });
        }
        let mut ts = self.next_ts(now);
        // The write must win its key on every replica: above the key's current write
        // even when that one came stamped ahead of our clock (skewed or tied).
        let at = self.entries.locate(key);
        if let Some(e) = at
            .slot
            .and_then(|s| self.entries.get_index(s))
            .map(|(_, e)| e)
        {
            if e.ts >= ts {
                ts = e.ts.next_up();
                self.last_local = ts;
            }
        }
        self.sources.clock[self.local.0 as usize] = ts;
        self.stats.local += 1;
        let sig = self.guard.as_ref().map(|g| {
            g.sign(UpdateRef {
                key,
                value: &value,
                ts,
                source: &self.id,
                sig: None,
            })
        });
        let key = self
            .put(
                at,
                key,
                None,
                value.clone(),
                ts,
                self.local,
                sig,
                true,
                false,
            )
            .expect("a write that need not win is always stored");
        Ok(Update {
            key,
            value,
            ts,
            source: self.id.clone(),
            sig,
        })
    }

    /// Would a write of `key` at `ts` by `source` win over the key's current entry?
    fn would_win(&self, key: &str, ts: f64, source: SourceIx) -> bool {
        self.entries
            .get(key)
            .is_none_or(|e| beats(&self.sources.names, ts, source, e))
    }

    /// Stores a write of `key` (`owned`, when given, is the same key, ready to keep) and
    /// reports it, in one walk of the map. With `must_win`, a write that loses to the
    /// key's current one (larger timestamp, or equal and larger source) is not stored
    /// and `None` is returned. Returns the key as held by the map.
    /// `at` is where the key is ([`KeyTable::locate`], the table unchanged since).
    #[allow(clippy::too_many_arguments)]
    fn put(
        &mut self,
        at: At,
        key: &str,
        owned: Option<SmolStr>,
        value: EncodedValue,
        ts: f64,
        source: SourceIx,
        sig: Option<UpdateSig>,
        local: bool,
        must_win: bool,
    ) -> Option<SmolStr> {
        let names = &self.sources.names;
        let wins = |e: &Entry| !must_win || beats(names, ts, source, e);
        let deleted = value.is_null();
        let mut new = Entry {
            value: value.clone(),
            ts,
            source,
            sig: NO_SIG,
        };
        let (sigs, free) = (&mut self.sigs, &mut self.free_sigs);
        // The entry's signature slot: the one it had, else a free one, else a new one.
        let mut keep_sig = |old: u32| match sig {
            Some(s) if old != NO_SIG => {
                sigs[old as usize] = s;
                old
            }
            Some(s) => match free.pop() {
                Some(slot) => {
                    sigs[slot as usize] = s;
                    slot
                }
                None if sigs.len() < NO_SIG as usize => {
                    sigs.push(s);
                    (sigs.len() - 1) as u32
                }
                None => NO_SIG,
            },
            None => {
                if old != NO_SIG {
                    free.push(old);
                }
                NO_SIG
            }
        };
        // (the key as stored, whether the key held a live value before)
        let (key, was_live) = match at.slot {
            Some(slot) => {
                let (k, e) = self.entries.slot_mut(slot);
                if !wins(e) {
                    return None;
                }
                // The record of the write replaced is garbage in the log now.
                if let Some(q) = self.persist.as_mut() {
                    q.policy.garbage_bytes += crate::persist::record_len(
                        k.len(),
                        e.value.len(),
                        names[e.source.0 as usize].len(),
                        e.sig != NO_SIG,
                    );
                }
                let was = !e.value.is_null();
                new.sig = keep_sig(e.sig);
                *e = new;
                (k.clone(), was)
            }
            None => {
                let k = owned.unwrap_or_else(|| key.into());
                new.sig = keep_sig(NO_SIG);
                self.entries.push(at.hash, k.clone(), new);
                (k, false)
            }
        };
        match (was_live, deleted) {
            (false, false) => self.live += 1,
            (true, true) => self.live -= 1,
            _ => {}
        }
        if let Some(q) = self.persist.as_mut().filter(|_| !self.replaying) {
            let u = UpdateRef {
                key: &key,
                value: &value,
                ts,
                source: &self.sources.names[source.0 as usize],
                sig: sig.as_ref(),
            };
            let before = q.bytes.len();
            crate::persist::encode_update(q.next, u, &mut q.bytes);
            q.policy.log_bytes += (q.bytes.len() - before) as u64;
            q.next += 1;
        }
        self.events.push_back(StoreEvent {
            key: key.clone(),
            value,
            deleted,
            source: self.sources.names[source.0 as usize].clone(),
            ts,
            local,
            sig,
        });
        if self.guard.is_some() && key.starts_with(crate::security::updates::REVOKED_PREFIX) {
            self.revocations_changed(&key);
        }
        Some(key)
    }

    /// A `room/revoked/<id>` entry changed: the removal it names (if any) is in force,
    /// and the member's writes stamped after it are voided: the entry stays with
    /// timestamp 0 and no value, so that any other write of the key wins over it (see
    /// [`Store::take_voided`]), and its change is reported as a delete with timestamp 0.
    fn revocations_changed(&mut self, key: &str) {
        let Some(g) = &self.guard else { return };
        let Some(id) = key.strip_prefix(crate::security::updates::REVOKED_PREFIX) else {
            return;
        };
        let value = self.entries.get(key).map(|e| e.value.clone());
        let removal = value
            .as_ref()
            .and_then(|v| crate::security::updates::revocation(key, v, g.admins()));
        let Some((_, after)) = removal else {
            self.revoked.remove(id);
            return;
        };
        self.revoked.insert(id.into(), after);
        let names = &self.sources.names;
        let doomed: Vec<u32> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, (_, e))| {
                e.ts > after
                    && crate::security::updates::writer_of(&names[e.source.0 as usize]) == Some(id)
            })
            .map(|(i, _)| i as u32)
            .collect();
        for slot in doomed {
            self.void_slot(slot);
        }
    }

    /// Voids the write in `slot` (see [`Store::revocations_changed`]).
    fn void_slot(&mut self, slot: u32) {
        let (k, e) = self.entries.slot_mut(slot);
        let k = k.clone();
        if !e.value.is_null() {
            self.live -= 1;
        }
        if e.sig != NO_SIG {
            self.free_sigs.push(e.sig);
            e.sig = NO_SIG;
        }
        e.value = EncodedValue::null();
        e.ts = 0.0;
        let source = self.sources.names[e.source.0 as usize].clone();
        self.stats.voided += 1;
        self.voided_since.push(k.clone());
        self.events.push_back(StoreEvent {
            key: k,
            value: EncodedValue::null(),
            deleted: true,
            source,
            ts: 0.0,
            local: false,
            sig: None,
        });
    }

    /// The keys whose writes a removal voided since the last call. The replica asks
    /// its links for them (`WANT`), so that they get back the writes the voided ones
    /// had superseded.
    pub fn take_voided(&mut self) -> Vec<SmolStr> {
        std::mem::take(&mut self.voided_since)
    }

    /// The slot of `key`'s write, for a session to send (not a voided one).
    pub(crate) fn item_of(&self, key: &str) -> Option<HistoryItem> {
        let slot = self.entries.locate(key).slot?;
        let ts = self.entries.slots[slot as usize].1.ts;
        (ts > 0.0).then_some(HistoryItem { slot, ts })
    }

    /// Whether an admin removed member `id` (secured rooms: `room/revoked/<id>` holds).
    pub fn is_removed(&self, id: &str) -> bool {
        self.revoked.contains_key(id)
    }

    /// The members removed from the room, with the time after which their updates are
    /// refused.
    pub fn revoked(&self) -> impl Iterator<Item = (&str, f64)> {
        self.revoked.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Applies a remote update. The verdict depends only on the update and the store;
    /// `now` only decides whether the timestamp may move the local clock.
    pub fn apply(&mut self, now: Instant, u: Update) -> Verdict {
        let key = u.key.clone();
        self.apply_inner(now, u.as_ref(), Some(key)).0
    }

    /// Applies a borrowed remote update (see [`Store::apply`]).
    pub fn apply_ref(&mut self, now: Instant, u: UpdateRef<'_>) -> Verdict {
        self.apply_inner(now, u, None).0
    }

    /// Applies an update; also returns its source's index unless it was rejected.
    pub(crate) fn apply_inner(
        &mut self,
        now: Instant,
        u: UpdateRef<'_>,
        owned_key: Option<SmolStr>,
    ) -> (Verdict, Option<SourceIx>) {
        // A source already interned was checked when it was first seen.
        let known = self.sources.get(u.source);
        let rejection = if !(u.ts.is_finite() && u.ts > 0.0) {
            Some(Rejection::BadTimestamp)
        } else if u.key.len() > self.limits.max_key_len || u.key == "__proto__" {
            Some(Rejection::BadKey)
        } else if known.is_none() && !valid_source(u.source, &self.limits) {
            Some(Rejection::BadSource)
        } else if !u.value.fits(&self.limits) {
            Some(Rejection::ValueTooLarge)
        } else {
            None
        };
        if let Some(r) = rejection {
            self.stats.rejected += 1;
            return (Verdict::Rejected(r), None);
        }
        // Below its source's clock: stale, as in scuttlebutt. Except in a secured room,
        // where a relay may deliver a writer's later update ahead of its earlier ones
        // (each signed, so genuine): there an earlier one still lands when it wins its
        // key, so that reordering cannot make an honest write look stale. A copy of the
        // key's winner, or anything older, is stale all the same.
        let mut late = false;
        if let Some(ix) = known {
            if u.ts <= self.sources.clock[ix.0 as usize] {
                if self.guard.is_none()
                    || cfg!(feature = "bug-trust-source-clock")
                    || !self.would_win(u.key, u.ts, ix)
                {
                    self.stats.stale += 1;
                    return (Verdict::Stale, Some(ix));
                }
                late = true;
            }
        }
        if let Some(g) = self
            .guard
            .as_mut()
            .filter(|_| !cfg!(feature = "bug-skip-update-check"))
        {
            let removed = || {
                let writer = crate::security::updates::writer_of(u.source)?;
                self.revoked.get(writer).filter(|after| u.ts > **after)
            };
            let verdict = g.check(u).and_then(|()| match removed() {
                Some(_) => Err(UpdateRefusal::Revoked),
                None => Ok(()),
            });
            if let Err(r) = verdict {
                let n = match r {
                    UpdateRefusal::Revoked => &mut self.stats.revoked,
                    UpdateRefusal::Unsigned => &mut self.stats.unsigned,
                    UpdateRefusal::BadSignature => &mut self.stats.bad_signatures,
                    UpdateRefusal::BadSource => &mut self.stats.bad_sources,
                    _ => &mut self.stats.not_owner,
                };
                *n += 1;
                self.stats.rejected += 1;
                return (Verdict::Rejected(Rejection::Refused(r)), None);
            }
            let wall = self.wall_ms_cached(now);
            if u.ts > wall + MAX_FUTURE.as_millis() as f64 {
                self.stats.held += 1;
                let slot = (u.ts.to_bits(), SmolStr::from(u.source));
                if self.held.len() < MAX_HELD || self.held.contains_key(&slot) {
                    self.held.entry(slot).or_insert_with(|| u.to_owned());
                } else if let Some(last) = self.held.last_key_value().map(|(k, _)| k.clone()) {
                    // Full: the latest goes, so the earliest are kept to come due first.
                    if slot < last {
                        self.held.remove(&last);
                        self.held.insert(slot, u.to_owned());
                    }
                }
                // The sender has it: the link need not send it back.
                return (Verdict::Held, Some(self.sources.intern(u.source)));
            }
        }
        let ix = match known {
            Some(ix) => ix,
            None => self.sources.intern(u.source),
        };
        if late {
            self.stats.late += 1;
        } else {
            self.sources.clock[ix.0 as usize] = u.ts;
        }
        if u.ts > self.wall_ms_cached(now) + self.max_skew_ms {
            self.stats.skewed += 1;
        } else {
            self.max_seen = self.max_seen.max(u.ts);
        }
        if ix == self.local {
            // A write of ours from an earlier life: our next writes must be newer.
            self.last_local = self.last_local.max(u.ts);
        }
        if self
            .put(
                self.entries.locate(u.key),
                u.key,
                owned_key,
                u.value.clone(),
                u.ts,
                ix,
                u.sig.copied(),
                false,
                true,
            )
            .is_none()
        {
            self.stats.superseded += 1;
            return (Verdict::Superseded, Some(ix));
        }
        self.stats.applied += 1;
        (Verdict::Applied, Some(ix))
    }

    /// The value of `key`, if present and not deleted.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.get_encoded(key).and_then(|v| v.to_value().ok())
    }

    /// The encoded value of `key`, if present and not deleted.
    pub fn get_encoded(&self, key: &str) -> Option<&EncodedValue> {
        self.entries
            .get(key)
            .map(|e| &e.value)
            .filter(|v| !v.is_null())
    }

    /// Makes room for `additional` more keys, so that a large sync does not grow the
    /// tables step by step.
    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve(additional);
    }

    /// The winning update of `key`, including a tombstone.
    pub fn entry(&self, key: &str) -> Option<UpdateRef<'_>> {
        self.entries
            .get_key_value(key)
            .map(|(k, e)| self.view(k, e))
    }

    fn view<'a>(&'a self, k: &'a str, e: &'a Entry) -> UpdateRef<'a> {
        UpdateRef {
            key: k,
            value: &e.value,
            ts: e.ts,
            source: &self.sources.names[e.source.0 as usize],
            sig: self.sigs.get(e.sig as usize),
        }
    }

    /// Live (not deleted) keys, in byte order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    /// Live entries, in key byte order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &EncodedValue)> {
        let mut live: Vec<(&str, &EncodedValue)> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.value.is_null())
            .map(|(k, e)| (&**k, &e.value))
            .collect();
        live.sort_unstable_by_key(|(k, _)| *k);
        live.into_iter()
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.live
    }

    /// No live keys?
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Live keys and values as one object (deleted keys left out).
    pub fn dump(&self) -> Object {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.to_value().unwrap_or(Value::Null)))
            .collect()
    }

    /// Does this store check signatures and write rules (a secured room)?
    pub fn is_secured(&self) -> bool {
        self.guard.is_some()
    }

    /// Is `ts` below `source`'s clock? (An update applied late: see [`StoreStats::late`].)
    pub(crate) fn is_late(&self, source: &str, ts: f64) -> bool {
        self.sources
            .get(source)
            .is_some_and(|ix| ts < self.sources.clock[ix.0 as usize])
    }

    /// The per-source clock, in first-seen order.
    pub fn clock(&self) -> Clock {
        Clock {
            entries: self
                .sources
                .names
                .iter()
                .zip(&self.sources.clock)
                .filter(|(_, t)| **t > 0.0)
                .map(|(n, t)| (n.to_string(), *t))
                .collect(),
        }
    }

    /// The updates a replica with clock `since` lacks, in (timestamp, source) order.
    /// Only each key's winning write is kept, as in scuttlebutt.
    pub fn history(&self, since: &Clock) -> Vec<UpdateRef<'_>> {
        let mut floor = vec![0.0; self.sources.names.len()];
        for (s, t) in since.iter() {
            if let Some(ix) = self.sources.get(s) {
                floor[ix.0 as usize] = t;
            }
        }
        self.history_refs(&floor)
            .into_iter()
            .map(|(k, e)| self.view(k, e))
            .collect()
    }

    /// The history after `floor` (a clock indexed by [`SourceIx`], missing entries 0) as
    /// store slots with their timestamps, in (timestamp, source) order: what a session
    /// streams.
    pub(crate) fn history_slots(&self, floor: &[f64]) -> Vec<HistoryItem> {
        self.items(self.history_order(floor))
    }

    /// Every winning write of the flagged sources (indexed by [`SourceIx`]), whatever
    /// its timestamp, in (timestamp, source) order: a repair (see [`Store::sums`]).
    pub(crate) fn history_of(&self, sources: &[bool]) -> Vec<HistoryItem> {
        let of =
            |e: &Entry| e.ts > 0.0 && sources.get(e.source.0 as usize).copied().unwrap_or(false);
        self.items(self.order_where(of))
    }

    /// Per source (by index): the timestamp of its latest write that still holds a key
    /// here (0 for none). A source's clock can be ahead of it for good: a write another
    /// overwrote is not sent on, so a replica that saw the later write keeps the higher
    /// clock while one that did not never hears of it.
    pub(crate) fn latest_writes(&self) -> Vec<f64> {
        let mut latest = vec![0.0f64; self.sources.names.len()];
        for (_, e) in self.entries.iter().filter(|(_, e)| e.ts > 0.0) {
            let l = &mut latest[e.source.0 as usize];
            *l = l.max(e.ts);
        }
        latest
    }

    /// Per source with a clock: how many keys it holds and the sums of their
    /// signatures, which two replicas compare to find a source whose earlier writes one
    /// of them lacks though its clock covers them (see [`crate::control::SourceSum`]).
    pub fn sums(&self) -> Vec<crate::control::SourceSum> {
        let mut acc = vec![(0u64, [0u32; crate::control::SUM_LANES]); self.sources.names.len()];
        for (_, e) in self.entries.iter().filter(|(_, e)| e.ts > 0.0) {
            let (count, lanes) = &mut acc[e.source.0 as usize];
            *count += 1;
            if let Some(sig) = self.sigs.get(e.sig as usize) {
                for (lane, word) in lanes.iter_mut().zip(sig.chunks_exact(4)) {
                    let w = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                    *lane = lane.wrapping_add(w);
                }
            }
        }
        // A removed member's clock is taken as its removal's time: what it wrote after
        // is refused, so replicas that heard of the removal at different points still
        // compare its sources.
        let clock = |i: usize| {
            let t = self.sources.clock[i];
            crate::security::updates::writer_of(&self.sources.names[i])
                .and_then(|w| self.revoked.get(w))
                .map_or(t, |after| t.min(*after))
        };
        acc.into_iter()
            .enumerate()
            .filter(|(i, _)| self.sources.clock[*i] > 0.0)
            .map(|(i, (count, lanes))| crate::control::SourceSum {
                source: self.sources.names[i].to_string(),
                ts: clock(i),
                count,
                lanes,
            })
            .collect()
    }

    fn items(&self, slots: Vec<u32>) -> Vec<HistoryItem> {
        slots
            .into_iter()
            .map(|slot| HistoryItem {
                slot,
                ts: self.entries.slots[slot as usize].1.ts,
            })
            .collect()
    }

    /// The write held in `slot` (see [`HistoryItem`]), with its source's index.
    pub(crate) fn slot(&self, slot: u32) -> Option<(SourceIx, UpdateRef<'_>)> {
        let (k, e) = self.entries.get_index(slot)?;
        Some((e.source, self.view(k, e)))
    }

    /// The slots of the winning writes newer than `floor`, in (timestamp, source id) order.
    fn history_order(&self, floor: &[f64]) -> Vec<u32> {
        self.order_where(|e| e.ts > floor.get(e.source.0 as usize).copied().unwrap_or(0.0))
    }

    /// The slots of the winning writes that pass `keep`, in (timestamp, source id) order.
    fn order_where(&self, keep: impl Fn(&Entry) -> bool) -> Vec<u32> {
        let rank = self.source_ranks();
        // One integer per write: timestamp bits (positive timestamps sort as their
        // bits do), source rank, slot. Sorting these is much cheaper than sorting the
        // writes, and the store's insertion order is nearly timestamp order already.
        let mut order: Vec<u128> = self
            .entries
            .iter()
            .map(|(_, e)| e)
            .enumerate()
            .filter(|(_, e)| keep(e))
            .map(|(i, e)| {
                ((e.ts.to_bits() as u128) << 64)
                    | ((rank[e.source.0 as usize] as u128) << 32)
                    | i as u128
            })
            .collect();
        order.sort_unstable();
        order.into_iter().map(|o| o as u32).collect()
    }

    fn history_refs(&self, floor: &[f64]) -> Vec<(&SmolStr, &Entry)> {
        self.history_order(floor)
            .into_iter()
            .filter_map(|slot| self.entries.get_index(slot))
            .collect()
    }

    /// Each source's position in byte order of the source ids.
    fn source_ranks(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.sources.names.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            self.sources.names[a as usize]
                .as_bytes()
                .cmp(self.sources.names[b as usize].as_bytes())
        });
        let mut rank = vec![0u32; order.len()];
        for (r, &ix) in order.iter().enumerate() {
            rank[ix as usize] = r as u32;
        }
        rank
    }

    /// Applies the held-back updates (see [`Verdict::Held`]) that are within
    /// [`MAX_FUTURE`] of the clock at `now`, in timestamp order; their changes come out
    /// of [`Store::poll_event`] as any other. Returns how many were due.
    pub fn release_held(&mut self, now: Instant) -> usize {
        // Called before every input: nothing to work out when nothing is held.
        if self.held.is_empty() {
            return 0;
        }
        let wall = self.wall_ms(now) + MAX_FUTURE.as_millis() as f64;
        let mut n = 0;
        while let Some(entry) = self.held.first_entry() {
            if f64::from_bits(entry.key().0) > wall {
                break;
            }
            let u = entry.remove();
            n += 1;
            let key = u.key.clone();
            self.apply_inner(now, u.as_ref(), Some(key));
        }
        n
    }

    /// When the first held-back update comes due, if any.
    pub fn next_held_due(&self) -> Option<Instant> {
        let (ts, _) = self.held.first_key_value()?.0;
        // Due once the whole-millisecond wall clock (see `wall_ms`) reaches ts - bound:
        // rounded up, so that a wake-up is never early (and never spins).
        let due_ms = (f64::from_bits(*ts) - MAX_FUTURE.as_millis() as f64).ceil() - self.epoch_ms;
        let due = Duration::from_secs_f64((due_ms.max(0.0) / 1000.0).min(1e9));
        Some(self.start + due + Duration::from_micros(1))
    }

    /// How many updates are held back.
    pub fn held_len(&self) -> usize {
        self.held.len()
    }

    /// The next change event, if any.
    pub fn poll_event(&mut self) -> Option<StoreEvent> {
        self.events.pop_front()
    }

    pub(crate) fn source_ix(&self, name: &str) -> Option<SourceIx> {
        self.sources.get(name)
    }
}

/// The store's keys and their winning writes, in insertion order.
///
/// Append-only: keys are never removed (a delete is a tombstone), so a key keeps its
/// slot for the store's life. Slots are found through a hash index of 32-bit slot
/// numbers and hashes whose lookups read one cache line ([`KeyIndex`]). A store holds
/// fewer than `u32::MAX` keys (history slots are 32-bit too).
#[derive(Debug)]
struct KeyTable {
    /// Each key's slot, with 32 bits of its hash: growing the index rehashes from
    /// those, never touching (or hashing again) the keys in the slots, and a lookup
    /// compares them before it reads a slot.
    index: KeyIndex,
    slots: Vec<(SmolStr, Entry)>,
    /// Seeded: the hash never reaches an output (listings are sorted), and a fixed
    /// seed keeps simulations deterministic.
    hasher: FixedState,
}

/// A key looked up in a [`KeyTable`] ([`KeyTable::locate`]).
#[derive(Debug, Clone, Copy)]
struct At {
    hash: u32,
    slot: Option<u32>,
}

impl KeyTable {
    fn new(seed: u64) -> Self {
        KeyTable {
            index: KeyIndex::default(),
            slots: Vec::new(),
            hasher: FixedState::with_seed(seed),
        }
    }

    /// A key's hash: 64 bits folded to the 32 the index keeps.
    fn hash(&self, key: &str) -> u32 {
        let h = self.hasher.hash_one(key);
        (h ^ (h >> 32)) as u32
    }

    /// Where `key` is: its hash, and its slot if it is in the table.
    fn locate(&self, key: &str) -> At {
        let hash = self.hash(key);
        At {
            hash,
            slot: self
                .index
                .find(hash, |slot| &*self.slots[slot as usize].0 == key),
        }
    }

    fn get_key_value(&self, key: &str) -> Option<(&SmolStr, &Entry)> {
        self.get_index(self.locate(key).slot?)
    }

    fn get(&self, key: &str) -> Option<&Entry> {
        self.get_key_value(key).map(|(_, e)| e)
    }

    fn get_index(&self, slot: u32) -> Option<(&SmolStr, &Entry)> {
        self.slots.get(slot as usize).map(|(k, e)| (k, e))
    }

    fn slot_mut(&mut self, slot: u32) -> (&SmolStr, &mut Entry) {
        let (k, e) = &mut self.slots[slot as usize];
        (k, e)
    }

    /// Adds a key that is not in the table (`hash` is its hash).
    fn push(&mut self, hash: u32, key: SmolStr, e: Entry) {
        let slot = self.slots.len() as u32;
        self.slots.push((key, e));
        self.index.insert(hash, slot);
    }

    /// Room for `additional` more keys. The slots get as many as the index holds, so
    /// that a later small reserve does not move every slot.
    fn reserve(&mut self, additional: usize) {
        self.index.reserve(additional);
        let want = self.index.capacity().max(self.slots.len() + additional);
        self.slots.reserve_exact(want - self.slots.len());
    }

    fn iter(&self) -> impl Iterator<Item = (&SmolStr, &Entry)> {
        self.slots.iter().map(|(k, e)| (k, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(id: &str, t0: Instant) -> Store {
        Store::new(StoreConfig::new(id, 1_700_000_000_000.0, t0)).unwrap()
    }

    #[test]
    fn local_timestamps_strictly_increase() {
        let t0 = Instant::now();
        let mut s = store("a", t0);
        let a = s.set(t0, "k", &Value::from(1.0)).unwrap().ts;
        let b = s.set(t0, "k", &Value::from(2.0)).unwrap().ts;
        assert!(b > a);
        assert_eq!(b, a.next_up());
        assert_eq!(s.get("k"), Some(Value::from(2.0)));
    }

    #[test]
    fn equal_timestamps_break_ties_by_source() {
        let t0 = Instant::now();
        let mut x = store("x", t0);
        let mut y = store("y", t0);
        let ux = x.set(t0, "k", &"fromX".into()).unwrap();
        let uy = y.set(t0, "k", &"fromY".into()).unwrap();
        assert_eq!(ux.ts, uy.ts);
        assert_eq!(x.apply(t0, uy.clone()), Verdict::Applied);
        assert_eq!(y.apply(t0, ux.clone()), Verdict::Superseded);
        assert_eq!(x.get("k"), y.get("k"));
        assert_eq!(x.apply(t0, uy), Verdict::Stale);
    }

    #[test]
    fn rejects_bad_updates_without_change() {
        let t0 = Instant::now();
        let mut s = store("a", t0);
        let mut u = Update {
            key: "k".into(),
            value: EncodedValue::from_value(&1.0.into()),
            ts: f64::NAN,
            source: "b".into(),
            sig: None,
        };
        assert_eq!(
            s.apply(t0, u.clone()),
            Verdict::Rejected(Rejection::BadTimestamp)
        );
        u.ts = 5.0;
        u.key = "__proto__".into();
        assert_eq!(s.apply(t0, u), Verdict::Rejected(Rejection::BadKey));
        assert!(s.clock().get("b").is_none());
        assert!(s.poll_event().is_none());
    }

    #[test]
    fn deletes_are_tombstones() {
        let t0 = Instant::now();
        let mut s = store("a", t0);
        s.set(t0, "k", &1.0.into()).unwrap();
        s.delete(t0, "k").unwrap();
        assert_eq!(s.len(), 0);
        assert!(s.get("k").is_none());
        assert!(s.entry("k").unwrap().value.is_null());
        assert_eq!(s.history(&Clock::new()).len(), 1);
    }

    #[test]
    fn a_local_write_wins_its_key_everywhere_even_after_a_write_from_the_future() {
        // Found in review: a tie or a skewed remote write must not let the two replicas
        // keep different winners.
        let t0 = Instant::now();
        for ahead in [500.0, 3_600_000.0] {
            let mut a = store("a", t0);
            let mut z = store("z", t0);
            let uz = Update {
                key: "k".into(),
                value: EncodedValue::from_value(&"fromZ".into()),
                ts: 1_700_000_000_000.0 + ahead,
                source: "z".into(),
                sig: None,
            };
            z.apply(t0, uz.clone());
            a.apply(t0, uz);
            let ua = a.set(t0, "k", &"fromA".into()).unwrap();
            assert_eq!(z.apply(t0, ua), Verdict::Applied);
            assert_eq!(a.get("k"), z.get("k"));
        }
    }

    #[test]
    fn set_refuses_what_peers_would_refuse() {
        let t0 = Instant::now();
        let mut s = store("a", t0);
        assert_eq!(
            s.set(t0, "k", &Value::Number(f64::NAN)),
            Err(StoreError::Value(ValueError::NotFinite))
        );
        let mut deep = Value::Null;
        for _ in 0..100 {
            deep = Value::Array(vec![deep]);
        }
        assert!(matches!(
            s.set(t0, "k", &deep),
            Err(StoreError::Value(ValueError::TooDeep(_)))
        ));
        // Small encoded, but six times larger as JSON text.
        let ctl = Value::String("\u{1}".repeat(600_000));
        assert!(matches!(
            s.set(t0, "k", &ctl),
            Err(StoreError::ValueTooLarge { .. })
        ));
        assert!(s.is_empty());
        assert!(s.poll_event().is_none());
    }

    #[test]
    fn skewed_timestamps_do_not_move_the_clock() {
        let t0 = Instant::now();
        let mut s = store("a", t0);
        let far = 1_700_000_000_000.0 + 3_600_000.0;
        let u = Update {
            key: "k".into(),
            value: EncodedValue::null(),
            ts: far,
            source: "b".into(),
            sig: None,
        };
        assert_eq!(s.apply(t0, u), Verdict::Applied);
        assert_eq!(s.stats().skewed, 1);
        let mine = s.set(t0, "j", &1.0.into()).unwrap();
        assert!(mine.ts < far);
    }
}
