// Durable pages: what the store hands its storage, and what it takes back (core's
// `persist`, in the shape IndexedDB suits). Pure: lib/storage.js moves the records to and
// from IndexedDB; the mesh (lib/mesh.js) holds each output back until the changes made
// before it are there.
//
// The records are core's: every change the store makes, in the order it made it, as the
// entry it leaves (key, value's JSON, timestamp, source and, in a secured room, the
// writer's signature) and the source clocks it moves. IndexedDB keeps one row per key and
// per source, so a later change of a key replaces the row of the earlier one (the
// compaction a snapshot does in core's log), and a batch is one transaction: what a
// crash leaves is every batch up to some point, a state the store was in, as in core
// (a log cut anywhere is a prefix of every source's updates).

import { LIMITS, MeshError, byteLength, parseJson, trimTaken, validSource } from './values.js';

/** The bytes of a signature (Ed25519). */
const SIG_LEN = 64;

/**
 * The changes of a durable store not yet handed out, and the sequence numbers of the
 * batches in flight (core's `Store::poll_persist` and `Store::persisted`).
 */
export class Journal {
  constructor() {
    /** key -> the entry (the latest change of each key in this batch). */
    this.entries = new Map();
    /** source -> ts. */
    this.clocks = new Map();
    /** The number the next batch takes, and the highest one stored. */
    this.next = 1;
    this.done = 0;
    /** Local writes of a secured room sent to be signed, and those signed since (they
     * finish in that order): each is recorded once signed, in the batch `signedAt`
     * gives (write -> sequence number). */
    this.signIssued = 0;
    this.signDone = 0;
    this.signedAt = new WeakMap();
    /** `mark()` as the last signing finished: its write is in that batch or before. */
    this.signedMark = 0;
    /** Whether outputs wait for the storage (the `process` and `power` levels). */
    this.hold = false;
  }

  entry(e) {
    this.entries.set(e.key, e);
  }

  clock(source, ts) {
    this.clocks.set(source, ts);
  }

  /** The sequence number of the batch the changes made now will be in. */
  pendingSeq() {
    return this.next;
  }

  /** Local writes being signed. */
  get signing() {
    return this.signIssued - this.signDone;
  }

  /** A local write goes to be signed. */
  signStarted() {
    this.signIssued++;
  }

  /** The oldest signing finished (its write recorded, if it is to be). */
  signFinished() {
    this.signDone++;
    this.signedMark = this.mark();
  }

  /** The last batch that holds, or is to hold, every change recorded so far (0: none). */
  mark() {
    return this.entries.size || this.clocks.size ? this.next : this.next - 1;
  }

  /**
   * What an output made now waits for (core's tag of each output with the last record
   * made): the batch holding every change recorded so far, and the writes being signed
   * then (recorded once signed). See `released`.
   */
  markNow() {
    return { seq: this.mark(), signed: this.signing > 0 ? this.signIssued : 0 };
  }

  /** Whether what an output marked `m` could tell of is stored: it may go. */
  released(m) {
    if (m.signed) {
      if (this.signDone < m.signed) return false;
      // Those writes are recorded: in the batch marked as the last of them finished, at
      // the latest.
      m.seq = Math.max(m.seq, this.signedMark);
      m.signed = 0;
    }
    return this.done >= m.seq;
  }

  /**
   * The changes since the last call as one batch `{seq, entries, clocks}` (entries as
   * they are to be stored: `{key, json, ts, source[, sig]}`; clocks `{source, ts}`), or
   * null if there are none.
   */
  take() {
    if (!this.entries.size && !this.clocks.size) return null;
    const entries = [];
    for (const e of this.entries.values()) {
      const r = { key: e.key, json: e.json, ts: e.ts, source: e.source };
      if (e.sig) r.sig = e.sig;
      entries.push(r);
    }
    const clocks = [];
    for (const [source, ts] of this.clocks) clocks.push({ source, ts });
    this.entries = new Map();
    this.clocks = new Map();
    return { seq: this.next++, entries, clocks };
  }

  /** The storage holds every batch up to `seq`. */
  persisted(seq) {
    if (seq > this.done) this.done = seq;
  }

  /** Whether a change is not yet stored (taken or not), or a local write not yet signed
   * (a closing member waits until none is; each output waits only for its `markNow`). */
  awaiting() {
    return this.done < this.mark() || this.signing > 0;
  }
}

/**
 * A link's encoder behind which what a durable mesh writes waits until the changes it
 * could tell of are stored (core tags each output with the last record made then): a
 * message written while changes wait (`mark()`) is kept, with its mark, and encoded once
 * that mark is `released`, in the order written. So a message waits for the batches
 * made before it, never for those made after: writes that keep coming hold nothing back
 * for longer than their own batch takes. `poll`, `pending` and `onWrite` are the inner
 * encoder's (see `Mesh.encoderOf`).
 */
export class HeldEncoder {
  /**
   * @param inner the link's encoder (`JsonEncoder` or `PostcardEncoder`)
   * @param marks `{markNow(), released(m)}`: the mesh's (a null mark: nothing to wait for)
   */
  constructor(inner, marks) {
    this.inner = inner;
    this.codec = inner.codec;
    this.marks = marks;
    /** `{m, method, args}` not yet handed to `inner`, from `head` on. */
    this.held = [];
    this.head = 0;
  }

  get onWrite() {
    return this.inner.onWrite;
  }

  set onWrite(f) {
    this.inner.onWrite = f;
  }

  write(method, args) {
    const m = this.marks.markNow();
    if (this.head === this.held.length && this.marks.released(m)) {
      this.inner[method](...args);
      return;
    }
    this.held.push({ m, method, args });
  }

  digest(id, clock) {
    // The clock as it is now (the store's own goes on changing while this waits).
    this.write('digest', [id, new Map(clock)]);
  }

  update(u) {
    this.write('update', [u]);
  }

  control(text) {
    this.write('control', [text]);
  }

  /** Hands `inner` what may go now. */
  release() {
    const q = this.held;
    while (this.head < q.length && this.marks.released(q[this.head].m)) {
      const { method, args } = q[this.head];
      q[this.head++] = null;
      this.inner[method](...args);
    }
    this.head = trimTaken(q, this.head);
  }

  pending() {
    this.release();
    return this.inner.pending();
  }

  poll() {
    this.release();
    return this.inner.poll();
  }
}

/**
 * Checks records read back from storage (`{entries, clocks}`, arrays of what `take`
 * gave), bounded as every decoder is: each row a plain record within the store's limits
 * (key and value sizes, JSON depth, source ids, finite positive timestamps; a removal's
 * voided entry has ts 0 and no value), clocks no lower than the entries of their source.
 * Returns `{entries, clocks, dropped}` (entries with their parsed `value`). A bad row is
 * a MeshError `bad_data` naming `where` and the row; with `repair` it is dropped instead,
 * and then every clock is dropped too: the room sends again whatever was lost (the
 * entries kept are merged with it as any update is).
 */
export function checkRecords(records, where, repair = false) {
  const entries = [];
  const clocks = new Map();
  let dropped = 0;
  const bad = (what, i, why) => {
    if (!repair) throw new MeshError('bad_data', `${where}: ${what} row ${i}: ${why} (run with repair to keep the valid rows)`);
    dropped++;
  };
  const rows = Array.isArray(records?.entries) ? records.entries : [];
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    const why = entryFault(r);
    if (why) {
      bad('entries', i, why);
      continue;
    }
    let value;
    try {
      value = parseJson(r.json);
    } catch (e) {
      bad('entries', i, `its value: ${e.message}`);
      continue;
    }
    const e = { key: r.key, value, json: r.json, ts: r.ts, source: r.source };
    if (r.sig !== undefined) e.sig = r.sig;
    entries.push(e);
  }
  const cs = Array.isArray(records?.clocks) ? records.clocks : [];
  for (let i = 0; i < cs.length; i++) {
    const c = cs[i];
    if (!c || typeof c !== 'object' || !validSource(c.source) || !(Number.isFinite(c.ts) && c.ts > 0)) {
      bad('clocks', i, 'not a source id and a positive timestamp');
      continue;
    }
    clocks.set(c.source, c.ts);
  }
  if (!repair) {
    for (const e of entries) {
      if (e.ts > (clocks.get(e.source) ?? 0)) {
        throw new MeshError('bad_data', `${where}: the entry of ${JSON.stringify(e.key)} is later than its source's clock (run with repair to keep the valid rows)`);
      }
    }
  }
  if (dropped) clocks.clear();
  return { entries, clocks, dropped };
}

/** Why `r` is not a stored entry, or null. */
function entryFault(r) {
  if (!r || typeof r !== 'object') return 'not a record';
  if (typeof r.key !== 'string' || byteLength(r.key) > LIMITS.maxKeyLen || r.key === '__proto__') return 'not a key';
  if (typeof r.json !== 'string' || byteLength(r.json) > LIMITS.maxValueLen) return 'not a value';
  if (!validSource(r.source)) return 'not a source id';
  if (!Number.isFinite(r.ts) || r.ts < 0) return 'not a timestamp';
  if (r.ts === 0 && r.json !== 'null') return 'a voided entry with a value';
  if (r.sig !== undefined && !(r.sig instanceof Uint8Array && r.sig.length === SIG_LEN)) return 'not a signature';
  return null;
}
