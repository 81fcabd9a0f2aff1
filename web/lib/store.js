// The store: core's `store`.

import { LIMITS, MeshError, byteLength, checkValue, compareBytes, nextUp, plainObject, toJson, validSource } from './values.js';
import { MAX_FUTURE_MS, MAX_HELD, REVOKED_PREFIX, mayWrite, revocation, writerOf } from './updates.js';
import { Journal } from './persist.js';

/** Lanes of a source's sums (core's `control::SUM_LANES`). */
export const SUM_LANES = 16;

/**
 * The replicated map: key -> { value, json, ts, source }. Local writes take the next
 * hybrid-logical-clock timestamp; remote updates win by (ts, source bytewise); a source's
 * update not above its clock entry is stale, except in a secured room when it wins its
 * key (`late`: a relay reordered the writer's updates; see core's `StoreStats::late`).
 */
export class Store {
  /**
   * @param {string} id our source id
   * @param {{ now?: () => number, maxSkewMs?: number, guard?: import('./updates.js').UpdateGuard }} [options]
   *   `now` gives wall-clock milliseconds (default Date.now); `guard` makes it a secured
   *   room's store (core's `StoreConfig::guard`): remote updates must come checked
   *   (`u.checked`, from `guard.check`), our writes are signed by whoever sends them
   */
  constructor(id, options = {}) {
    if (!validSource(id)) throw new MeshError('bad_id', `invalid source id ${JSON.stringify(id)}`);
    this.guard = options.guard ?? null;
    if (this.guard && writerOf(id) !== this.guard.writer) {
      throw new MeshError('bad_id', `the source id ${JSON.stringify(id)} does not start with the identity's peer id`);
    }
    /** Held back (stamped too far ahead): `${ts} ${source}` -> update. */
    this.held = new Map();
    this.id = id;
    this.now = options.now || (() => Date.now());
    this.maxSkewMs = options.maxSkewMs ?? 60000;
    this.entries = new Map();
    this.clock = new Map();
    this.lastLocal = 0;
    this.maxSeen = 0;
    this.stats = {
      applied: 0, stale: 0, superseded: 0, rejected: 0, skewed: 0,
      unsigned: 0, badSignatures: 0, badSources: 0, notOwner: 0, held: 0, late: 0, revoked: 0, voided: 0,
    };
    /** Removed members (secured): peer id -> the time after which their updates are
     * refused (core's `Store::revoked`). */
    this.revoked = new Map();
    /** Entries voided by a removal since `takeVoided` (core's `take_voided`). */
    this.voided = [];
    /** A durable store's changes for its storage (`persist`), else null. */
    this.journal = null;
  }

  /**
   * Makes the store durable (core's `StoreConfig::persist_from`): from now on every
   * change it makes is recorded in `this.journal` (lib/persist.js) for the storage.
   */
  persist() {
    this.journal = new Journal();
    return this.journal;
  }

  /**
   * Takes back what a storage held (`checkRecords`'s result; core's
   * `Store::restore_recovered`): the entries and clocks as they were, neither checked,
   * reported nor recorded again; the removals among them in force. Our own source id is
   * new at each start (DESIGN: a page's writes are under `<id>.<incarnation>`), so the
   * restored writes are other sources'; the clock goes on from the latest of them.
   */
  restore({ entries, clocks }) {
    for (const e of entries) this.entries.set(e.key, e);
    const wall = Math.floor(this.now()) + this.maxSkewMs;
    for (const [source, ts] of clocks) {
      if (source === this.id) continue;
      this.clock.set(source, ts);
      if (ts <= wall) this.maxSeen = Math.max(this.maxSeen, ts);
    }
    if (this.guard) {
      for (const e of entries) {
        if (e.key.startsWith(REVOKED_PREFIX)) this.revocationsChanged(e.key);
      }
      this.voided = [];
    }
  }

  /** A local write of a secured room was signed (or failed to be: no `u.sig`): a
   * durable store records it, with its signature. */
  signed(u) {
    const j = this.journal;
    if (!j) return;
    j.signedAt.set(u, j.pendingSeq());
    if (u.sig && this.entries.get(u.key) === u) j.entry(u);
    j.signFinished();
  }

  nextTs() {
    let t = Math.max(Math.floor(this.now()), this.lastLocal, this.maxSeen);
    if (t <= this.lastLocal) t = nextUp(this.lastLocal);
    this.lastLocal = t;
    return t;
  }

  /** Sets `key` (`null` deletes). Returns the update to send. Throws MeshError. */
  set(key, value) {
    if (typeof key !== 'string') throw new MeshError('bad_key', 'keys are strings');
    if (byteLength(key) > LIMITS.maxKeyLen) {
      throw new MeshError('key_too_long', `key of ${byteLength(key)} bytes; the maximum is ${LIMITS.maxKeyLen}`);
    }
    if (key === '__proto__') throw new MeshError('bad_key', '"__proto__" cannot be a key');
    if (this.guard && !mayWrite(key, this.guard.writer, this.guard.admins)) {
      throw new MeshError('not_owner', `the key ${JSON.stringify(key)} is another member's (users/<id>/ keys are their member's alone)`);
    }
    if (this.guard && this.revoked.has(this.guard.writer)) {
      throw new MeshError('revoked', 'this member was removed from the room');
    }
    if (value === undefined) value = null;
    checkValue(value);
    const json = toJson(value);
    const len = byteLength(json);
    if (len > LIMITS.maxValueLen) {
      throw new MeshError('value_too_large', `value of ${len} bytes; the maximum is ${LIMITS.maxValueLen}`);
    }
    // A copy of an object or array: the caller may change it afterwards.
    const copy = value !== null && typeof value === 'object' ? JSON.parse(json) : value;
    const u = { key, value: copy, json, ts: this.nextTs(), source: this.id };
    this.clock.set(this.id, u.ts);
    this.entries.set(key, u);
    if (this.journal) {
      this.journal.clock(this.id, u.ts);
      // A secured room's write is stored once signed (`signed`), and nothing goes out
      // before it is.
      if (this.guard) this.journal.signStarted();
      else this.journal.entry(u);
    }
    this.revocationsChanged(key);
    return u;
  }

  /**
   * Applies a remote update `{key, value, json, ts, source[, sig, checked]}`.
   * @returns {'applied'|'superseded'|'stale'|'rejected'|'refused'|'held'} `refused`: a
   *   secured store's refusal (`u.checked` not 'ok'); `held`: stamped more than
   *   MAX_FUTURE_MS ahead, applied by `releaseHeld` when its time comes
   */
  apply(u) {
    if (!(Number.isFinite(u.ts) && u.ts > 0)) return this.reject();
    if (typeof u.key !== 'string' || byteLength(u.key) > LIMITS.maxKeyLen || u.key === '__proto__') {
      return this.reject();
    }
    const known = this.clock.get(u.source);
    if (known === undefined && !validSource(u.source)) return this.reject();
    if (byteLength(u.json) > LIMITS.maxValueLen) return this.reject();
    let late = false;
    if (known !== undefined && u.ts <= known) {
      if (!this.guard || !this.wins(u)) {
        this.stats.stale++;
        return 'stale';
      }
      late = true;
    }
    if (this.guard) {
      let c = u.checked ?? 'unsigned';
      if (c === 'ok') {
        const after = this.revoked.get(writerOf(u.source));
        if (after !== undefined && u.ts > after) c = u.checked = 'revoked';
      }
      if (c !== 'ok') {
        const counter = { unsigned: 'unsigned', bad_sig: 'badSignatures', bad_source: 'badSources', revoked: 'revoked' }[c] ?? 'notOwner';
        this.stats[counter]++;
        this.stats.rejected++;
        return 'refused';
      }
      if (u.ts > Math.floor(this.now()) + MAX_FUTURE_MS) {
        this.stats.held++;
        const slot = `${u.ts} ${u.source}`;
        if (!this.held.has(slot)) {
          if (this.held.size >= MAX_HELD) {
            // Full: the latest goes, so the earliest are kept to come due first.
            const last = this.heldOrder().pop();
            if (!(last && (u.ts < last.ts || (u.ts === last.ts && compareBytes(u.source, last.source) < 0)))) return 'held';
            this.held.delete(`${last.ts} ${last.source}`);
          }
          this.held.set(slot, u);
        }
        return 'held';
      }
    }
    if (late) this.stats.late++;
    else {
      this.clock.set(u.source, u.ts);
      this.journal?.clock(u.source, u.ts);
    }
    if (u.ts > Math.floor(this.now()) + this.maxSkewMs) this.stats.skewed++;
    else this.maxSeen = Math.max(this.maxSeen, u.ts);
    if (u.source === this.id) this.lastLocal = Math.max(this.lastLocal, u.ts);
    if (!this.wins(u)) {
      this.stats.superseded++;
      return 'superseded';
    }
    this.entries.set(u.key, u);
    this.journal?.entry(u);
    this.stats.applied++;
    this.revocationsChanged(u.key);
    return 'applied';
  }

  /**
   * A `room/revoked/<id>` entry changed (core's `revocations_changed`): the removal it
   * names is in force, and the member's writes stamped after it are voided: kept with
   * ts 0 and no value, so that any other write of the key wins over them; they are
   * listed for `takeVoided`.
   */
  revocationsChanged(key) {
    if (!this.guard || !key.startsWith(REVOKED_PREFIX)) return;
    const e = this.entries.get(key);
    const r = e ? revocation(key, e.value, this.guard.admins) : null;
    const id = key.slice(REVOKED_PREFIX.length);
    if (!r) {
      this.revoked.delete(id);
      return;
    }
    const after = r[1];
    this.revoked.set(id, after);
    for (const [k, w] of this.entries) {
      if (w.ts > after && writerOf(w.source) === id) {
        const v = { key: k, value: null, json: 'null', ts: 0, source: w.source };
        this.entries.set(k, v);
        this.journal?.entry(v);
        this.stats.voided++;
        this.voided.push(v);
      }
    }
  }

  /** The entries voided by removals since the last call (core's `take_voided`). */
  takeVoided() {
    return this.voided.splice(0);
  }

  /** Does `u` win its key (last writer wins: larger ts, then larger source)? */
  wins(u) {
    const old = this.entries.get(u.key);
    return !old || old.ts < u.ts || (old.ts === u.ts && compareBytes(old.source, u.source) < 0);
  }

  /** Is `u` below its writer's clock (applied late, see the class docs)? */
  isLate(u) {
    return u.ts < (this.clock.get(u.source) ?? 0);
  }

  /**
   * Per source with a clock: `{source, ts, count, lanes}`, the keys its writes hold and
   * the lane-wise sums (mod 2^32) of their signatures' 16 little-endian words (core's
   * `Store::sums`, for `SUMS`).
   */
  sums() {
    const acc = new Map();
    for (const e of this.entries.values()) {
      if (!(e.ts > 0)) continue;
      let a = acc.get(e.source);
      if (!a) acc.set(e.source, (a = { count: 0, lanes: new Uint32Array(SUM_LANES) }));
      a.count++;
      if (e.sig) {
        const words = new DataView(e.sig.buffer, e.sig.byteOffset, e.sig.byteLength);
        for (let i = 0; i < SUM_LANES; i++) a.lanes[i] = (a.lanes[i] + words.getUint32(i * 4, true)) >>> 0;
      }
    }
    const out = [];
    for (const [source, t] of this.clock) {
      if (!(t > 0)) continue;
      const a = acc.get(source) ?? { count: 0, lanes: new Uint32Array(SUM_LANES) };
      // A removed member's clock is taken as its removal's time (core's `sums`).
      const after = this.revoked.get(writerOf(source));
      const ts = after === undefined ? t : Math.min(t, after);
      out.push({ source, ts, count: a.count, lanes: a.lanes });
    }
    return out;
  }

  /** Per source: the ts of its latest write that still holds a key here (core's
   * `Store::latest_writes`; a source's clock can stay ahead of it for good). */
  latestWrites() {
    const latest = new Map();
    for (const e of this.entries.values()) {
      if (e.ts > 0 && !(latest.get(e.source) >= e.ts)) latest.set(e.source, e.ts);
    }
    return latest;
  }

  /** Every write of the sources in `sources` (a Set), whatever its ts, in ts order. */
  historyOf(sources) {
    const out = [...this.entries.values()].filter((e) => e.ts > 0 && sources.has(e.source) && (!this.guard || e.sig));
    out.sort((a, b) => a.ts - b.ts || compareBytes(a.source, b.source));
    return out;
  }

  /** The held-back updates in (timestamp, source) order. */
  heldOrder() {
    return [...this.held.values()].sort((a, b) => a.ts - b.ts || compareBytes(a.source, b.source));
  }

  /** The store-clock time (ms) the first held-back update comes due, or null. */
  nextHeldDue() {
    if (!this.held.size) return null;
    let first = Infinity;
    for (const u of this.held.values()) first = Math.min(first, u.ts);
    return Math.ceil(first - MAX_FUTURE_MS);
  }

  /** Applies the held-back updates now within MAX_FUTURE_MS of the clock, in timestamp
   * order; returns those applied (to forward). */
  releaseHeld() {
    const out = [];
    if (!this.held.size) return out;
    const wall = Math.floor(this.now()) + MAX_FUTURE_MS;
    for (const u of this.heldOrder()) {
      if (u.ts > wall) break;
      this.held.delete(`${u.ts} ${u.source}`);
      if (this.apply(u) === 'applied') out.push(u);
    }
    return out;
  }

  reject() {
    this.stats.rejected++;
    return 'rejected';
  }

  /** The value of `key` (undefined when absent or deleted). */
  get(key) {
    const e = this.entries.get(key);
    return e && e.value !== null ? JSON.parse(e.json) : undefined;
  }

  /** Live keys, in byte order. */
  keys() {
    return [...this.entries.values()]
      .filter((e) => e.value !== null)
      .map((e) => e.key)
      .sort(compareBytes);
  }

  /** Every live key and value, keys in byte order. */
  snapshot() {
    return plainObject(this.keys().map((k) => [k, this.get(k)]));
  }

  /** What a peer whose clock is `remote` (Map source -> ts) lacks, in timestamp order. */
  history(remote) {
    const out = [];
    for (const e of this.entries.values()) {
      // A write of ours still being signed goes out when it is.
      if (this.guard && !e.sig) continue;
      if (e.ts > (remote.get(e.source) ?? 0)) out.push(e);
    }
    out.sort((a, b) => a.ts - b.ts || compareBytes(a.source, b.source));
    return out;
  }
}
