// The store: core's `store`.

import { LIMITS, MeshError, byteLength, checkValue, compareBytes, nextUp, plainObject, toJson, validSource } from './values.js';

/**
 * The replicated map: key -> { value, json, ts, source }. Local writes take the next
 * hybrid-logical-clock timestamp; remote updates win by (ts, source bytewise); a source's
 * update not above its clock entry is stale.
 */
export class Store {
  /**
   * @param {string} id our source id
   * @param {{ now?: () => number, maxSkewMs?: number }} [options] `now` gives wall-clock
   *   milliseconds (default Date.now)
   */
  constructor(id, options = {}) {
    if (!validSource(id)) throw new MeshError('bad_id', `invalid source id ${JSON.stringify(id)}`);
    this.id = id;
    this.now = options.now || (() => Date.now());
    this.maxSkewMs = options.maxSkewMs ?? 60000;
    this.entries = new Map();
    this.clock = new Map();
    this.lastLocal = 0;
    this.maxSeen = 0;
    this.stats = { applied: 0, stale: 0, superseded: 0, rejected: 0, skewed: 0 };
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
    return u;
  }

  /**
   * Applies a remote update `{key, value, json, ts, source}`.
   * @returns {'applied'|'superseded'|'stale'|'rejected'}
   */
  apply(u) {
    if (!(Number.isFinite(u.ts) && u.ts > 0)) return this.reject();
    if (typeof u.key !== 'string' || byteLength(u.key) > LIMITS.maxKeyLen || u.key === '__proto__') {
      return this.reject();
    }
    const known = this.clock.get(u.source);
    if (known === undefined && !validSource(u.source)) return this.reject();
    if (byteLength(u.json) > LIMITS.maxValueLen) return this.reject();
    if (known !== undefined && u.ts <= known) {
      this.stats.stale++;
      return 'stale';
    }
    this.clock.set(u.source, u.ts);
    if (u.ts > Math.floor(this.now()) + this.maxSkewMs) this.stats.skewed++;
    else this.maxSeen = Math.max(this.maxSeen, u.ts);
    if (u.source === this.id) this.lastLocal = Math.max(this.lastLocal, u.ts);
    const old = this.entries.get(u.key);
    if (old && !(old.ts < u.ts || (old.ts === u.ts && compareBytes(old.source, u.source) < 0))) {
      this.stats.superseded++;
      return 'superseded';
    }
    this.entries.set(u.key, u);
    this.stats.applied++;
    return 'applied';
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
      if (e.ts > (remote.get(e.source) ?? 0)) out.push(e);
    }
    out.sort((a, b) => a.ts - b.ts || compareBytes(a.source, b.source));
    return out;
  }
}
