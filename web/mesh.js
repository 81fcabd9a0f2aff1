// rtc-mesh for browsers: join a room, keep its shared key/value store in sync with every
// other peer (native rtc-mesh processes and other pages) over WebRTC data channels.
//
//   import { join } from './mesh.js';
//   const member = await join('lobby', { signal: 'ws://127.0.0.1:3000/' });
//   member.on('update', (u) => console.log(u.key, u.value));
//   member.set('greeting', 'hello');
//
// A second implementation of rtc-mesh's store and mesh, following DESIGN's Conventions
// exactly: hybrid logical clock timestamps, the larger (timestamp, source id bytewise)
// wins, `set(k, null)` is a tombstone, an update is never echoed to its link, and
// `LINKS` reports keep a healthy full mesh at N-1 messages per write. Signalling is
// rtc-signaller 6.x text over WebSocket; links speak the `json` codec (scuttlebutt's
// JSON lines) with `PING`/`PONG`, `LINKS`, `CLOCK` and `BYE` control strings.
//
// The store, codec and session parts need no browser: tests run them in Node against the
// encoding vectors the Rust implementation passes.

/** Bounds, as the native defaults (`rtc_mesh_core::Limits`). */
export const LIMITS = Object.freeze({
  maxDepth: 64,
  maxValueLen: 1 << 20,
  maxKeyLen: 4096,
  maxIdLen: 128,
  maxClockEntries: 65536,
});

/** The longest partial line a link keeps (DESIGN: maximum value size plus 4 KiB). */
export const MAX_LINE_LEN = LIMITS.maxValueLen + 6 * (LIMITS.maxKeyLen + LIMITS.maxIdLen) + 4096;

/** An error with a machine-readable `code`. */
export class MeshError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'MeshError';
    this.code = code;
  }
}

const utf8 = new TextEncoder();

/** UTF-8 length of a string, without allocating for ASCII. */
export function byteLength(s) {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      return utf8.encode(s).length;
    }
  }
  return n;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Checks a JSON value: finite numbers, no lone surrogates, depth. Throws MeshError. */
export function checkValue(v, maxDepth = LIMITS.maxDepth) {
  const walk = (x, depth) => {
    if (x === null || typeof x === 'boolean') return;
    if (typeof x === 'number') {
      if (!Number.isFinite(x)) throw new MeshError('bad_value', 'numbers must be finite');
      return;
    }
    if (typeof x === 'string') {
      if (LONE_SURROGATE.test(x)) throw new MeshError('bad_value', 'a string holds a lone surrogate');
      return;
    }
    if (depth >= maxDepth) throw new MeshError('bad_value', `nesting deeper than ${maxDepth}`);
    if (Array.isArray(x)) {
      for (const e of x) walk(e, depth + 1);
      return;
    }
    if (typeof x === 'object') {
      for (const k of Object.keys(x)) {
        if (LONE_SURROGATE.test(k)) throw new MeshError('bad_value', 'a key holds a lone surrogate');
        walk(x[k], depth + 1);
      }
      return;
    }
    throw new MeshError('bad_value', `not a JSON value: ${typeof x}`);
  };
  walk(v, 0);
}

/** Parses JSON text with the native decoder's rules (JSON.parse, then the checks). */
export function parseJson(text, maxDepth = LIMITS.maxDepth) {
  let v;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new MeshError('bad_json', e.message);
  }
  checkValue(v, maxDepth);
  return v;
}

/** JSON text as JavaScript writes it (the Conventions' canonical form). */
export function toJson(v) {
  return JSON.stringify(v);
}

/**
 * A plain object from `[key, value]` pairs, in their order (as JSON.parse would build it:
 * a key such as `__proto__` becomes an own property).
 */
function plainObject(entries) {
  const o = {};
  for (const [k, v] of entries) {
    Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return o;
}

/** Compares two strings by their UTF-8 bytes (= code point order). */
export function compareBytes(a, b) {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      // Surrogates (0xD800-0xDFFF) stand for code points above 0xFFFF, which sort after
      // 0xE000-0xFFFF in code point order but before them in UTF-16 units.
      const sx = x >= 0xd800 && x <= 0xdfff;
      const sy = y >= 0xd800 && y <= 0xdfff;
      if (sx !== sy) return sx ? 1 : -1;
      return x < y ? -1 : 1;
    }
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

const f64 = new Float64Array(1);
const u64 = new BigUint64Array(f64.buffer);

/** The next representable number above a positive finite `x` (f64::next_up). */
export function nextUp(x) {
  if (x === 0) return Number.MIN_VALUE;
  f64[0] = x;
  u64[0] += 1n;
  return f64[0];
}

/** A peer or source id is valid: non-empty, at most 128 bytes, no control characters. */
export function validSource(id) {
  return (
    typeof id === 'string' &&
    id.length > 0 &&
    byteLength(id) <= LIMITS.maxIdLen &&
    id !== '__proto__' &&
    !/[\u0000-\u001f\u007f-\u009f]/.test(id)
  );
}

/** A peer id (DESIGN: 1-64 bytes of `[A-Za-z0-9._~-]`). */
export function validPeerId(id) {
  return typeof id === 'string' && /^[A-Za-z0-9._~-]{1,64}$/.test(id);
}

// ---------------------------------------------------------------------------------------
// The store.

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
    // A copy: the caller may change its object afterwards.
    const u = { key, value: JSON.parse(json), json, ts: this.nextTs(), source: this.id };
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

// ---------------------------------------------------------------------------------------
// The json codec: scuttlebutt's JSON lines.

/** The line of an update: `[[key,value],ts,source]` and a newline. */
export function encodeUpdate(u) {
  return `[[${JSON.stringify(u.key)},${u.json}],${JSON.stringify(u.ts)},${JSON.stringify(u.source)}]\n`;
}

/** The line of a digest: `{"id":..,"clock":{..}}` and a newline. */
export function encodeDigest(id, clock) {
  return `{"id":${JSON.stringify(id)},"clock":${JSON.stringify(plainObject(clock))}}\n`;
}

/** The line of a control string (`"SYNC"`, `"PING"`, `"LINKS [..]"`, ...). */
export function encodeControl(text) {
  return `${JSON.stringify(text)}\n`;
}

/**
 * Decodes one line (without its newline). Returns `{type:'update', key, value, json, ts,
 * source}`, `{type:'digest', id, clock: Map}`, `{type:'sync'|'ping'|'pong'}` or
 * `{type:'control', text}`. Throws MeshError for a line that is not one of these.
 */
export function decodeLine(line) {
  if (line.length > MAX_LINE_LEN) throw new MeshError('line_too_long', 'line too long');
  const v = parseJson(line, LIMITS.maxDepth + 3);
  if (typeof v === 'string') {
    if (v === 'SYNC') return { type: 'sync' };
    if (v === 'PING') return { type: 'ping' };
    if (v === 'PONG') return { type: 'pong' };
    return { type: 'control', text: v };
  }
  if (Array.isArray(v)) {
    const [kv, ts, source] = v;
    if (
      v.length >= 3 &&
      Array.isArray(kv) &&
      kv.length >= 1 &&
      typeof kv[0] === 'string' &&
      typeof ts === 'number' &&
      typeof source === 'string'
    ) {
      const value = kv.length > 1 ? kv[1] : null;
      checkValue(value);
      return { type: 'update', key: kv[0], value, json: toJson(value), ts, source };
    }
    throw new MeshError('bad_update', 'not an update');
  }
  if (v && typeof v === 'object' && typeof v.id === 'string' && v.clock && typeof v.clock === 'object') {
    const clock = new Map();
    const entries = Object.entries(v.clock);
    if (entries.length > LIMITS.maxClockEntries) throw new MeshError('bad_digest', 'clock too large');
    for (const [s, t] of entries) {
      if (typeof t === 'number' && Number.isFinite(t)) clock.set(s, t);
    }
    return { type: 'digest', id: v.id, clock };
  }
  throw new MeshError('bad_line', 'not a scuttlebutt message');
}

/** Splits a received stream of text into lines; keeps the partial tail (bounded). */
export class LineDecoder {
  constructor() {
    this.tail = '';
    this.bytes = new TextDecoder('utf-8', { fatal: false });
  }

  /** Text (a string, or bytes as UTF-8) in; complete lines (no newline) out. */
  push(chunk) {
    const text = typeof chunk === 'string' ? chunk : this.bytes.decode(chunk, { stream: true });
    const parts = (this.tail + text).split('\n');
    this.tail = parts.pop();
    if (this.tail.length > MAX_LINE_LEN) {
      this.tail = '';
      throw new MeshError('line_too_long', 'a line longer than the maximum value');
    }
    return parts;
  }
}

// ---------------------------------------------------------------------------------------
// One sync conversation over one link.

/**
 * A sync session: digest, the history the remote lacks, `SYNC`, then live updates each
 * sent only if the remote lacks it. `send(text)` is called with encoded lines.
 */
export class Session {
  constructor(store, send) {
    this.store = store;
    this.send = send;
    this.remoteId = null;
    this.remoteClock = new Map();
    this.started = false;
    this.sentSync = false;
    this.recvSync = false;
    this.synced = false;
    this.pingSent = null;
    this.stats = { bytesIn: 0, bytesOut: 0, updatesIn: 0, updatesOut: 0, errors: 0, pingsIn: 0, rtt: null };
    this.emit(encodeDigest(store.id, store.clock));
  }

  emit(line) {
    this.stats.bytesOut += byteLength(line);
    this.send(line);
  }

  raise(source, ts) {
    if ((this.remoteClock.get(source) ?? 0) < ts) this.remoteClock.set(source, ts);
  }

  /** Sends what the remote lacks (after its digest, or a `CLOCK`). */
  sendHistory() {
    for (const u of this.store.history(this.remoteClock)) {
      this.raise(u.source, u.ts);
      this.stats.updatesOut++;
      this.emit(encodeUpdate(u));
    }
  }

  /**
   * Handles one decoded line. Returns what the caller must know:
   * `{digest: id}`, `{update: u, verdict}`, `{synced: true}`, `{control: text}` or null.
   */
  handle(m, nowMs) {
    switch (m.type) {
      case 'digest': {
        for (const [s, t] of m.clock) if (this.store.clock.has(s)) this.raise(s, t);
        const first = this.remoteId === null;
        if (first) this.remoteId = m.id;
        if (!this.started) {
          this.started = true;
          this.sendHistory();
          this.emit(encodeControl('SYNC'));
          this.sentSync = true;
          return { digest: m.id, synced: this.checkSynced() };
        }
        return null;
      }
      case 'update': {
        this.stats.updatesIn++;
        const verdict = this.store.apply(m);
        if (verdict !== 'rejected') this.raise(m.source, m.ts);
        return { update: m, verdict };
      }
      case 'sync':
        this.recvSync = true;
        return { synced: this.checkSynced() };
      case 'ping':
        this.stats.pingsIn++;
        this.emit(encodeControl('PONG'));
        return null;
      case 'pong':
        if (this.pingSent !== null) {
          this.stats.rtt = nowMs - this.pingSent;
          this.pingSent = null;
        }
        return null;
      case 'control':
        if (m.text.startsWith('CLOCK ')) {
          let clock;
          try {
            clock = parseJson(m.text.slice(6));
          } catch {
            this.stats.errors++;
            return null;
          }
          for (const [s, t] of Object.entries(clock || {})) {
            if (typeof t === 'number' && this.store.clock.has(s)) this.raise(s, t);
          }
          if (this.started) this.sendHistory();
          return null;
        }
        return { control: m.text };
      default:
        return null;
    }
  }

  checkSynced() {
    if (this.sentSync && this.recvSync && !this.synced) {
      this.synced = true;
      return true;
    }
    return false;
  }

  /** Offers a live update; sent only if the remote lacks it. */
  sendUpdate(u) {
    if (!this.started || u.ts <= (this.remoteClock.get(u.source) ?? 0)) return false;
    this.raise(u.source, u.ts);
    this.stats.updatesOut++;
    this.emit(encodeUpdate(u));
    return true;
  }

  ping(nowMs) {
    if (this.pingSent === null) this.pingSent = nowMs;
    this.emit(encodeControl('PING'));
  }

  sendControl(text) {
    this.emit(encodeControl(text));
  }

  sendClock() {
    this.sendControl(`CLOCK ${JSON.stringify(plainObject(this.store.clock))}`);
  }
}

// ---------------------------------------------------------------------------------------
// A store served over many links: forwarding rules and LINKS reports.

/**
 * One store, one Session per link. An update from link X goes to every other link whose
 * remote does not hear its writer directly (their `LINKS` reports say whom they hear).
 */
export class Replica {
  constructor(store) {
    this.store = store;
    this.links = new Map(); // link id -> { session, reaches: Set }
    this.nextLink = 0;
    this.reported = new Set();
    this.onUpdate = () => {};
  }

  /** Opens a link; `send(line)` carries its bytes. Returns the link id. */
  openLink(send) {
    const id = this.nextLink++;
    this.links.set(id, { session: new Session(this.store, send), reaches: new Set() });
    return id;
  }

  closeLink(id) {
    if (!this.links.delete(id)) return;
    // What that link would have brought may now have to come from the others.
    for (const l of this.links.values()) if (l.session.remoteId !== null) l.session.sendClock();
    this.reportLinks(false);
  }

  session(id) {
    return this.links.get(id)?.session;
  }

  /** A line from link `id`. Returns the session's answer (see Session.handle). */
  handleLine(id, line, nowMs) {
    const l = this.links.get(id);
    if (!l) return null;
    let m;
    try {
      m = decodeLine(line);
    } catch {
      l.session.stats.errors++;
      return null;
    }
    const r = l.session.handle(m, nowMs);
    if (!r) return null;
    if (r.update && r.verdict === 'applied') this.forward(r.update, id);
    if (r.digest !== undefined) {
      l.session.sendControl(`LINKS ${JSON.stringify([...this.reported])}`);
      this.reportLinks(false);
    }
    if (r.control !== undefined) {
      const t = r.control;
      const lists = [
        ['LINKS ', (ids) => (l.reaches = new Set(ids))],
        ['LINKS+ ', (ids) => ids.forEach((i) => l.reaches.add(i))],
        ['LINKS- ', (ids) => ids.forEach((i) => l.reaches.delete(i))],
      ];
      for (const [prefix, apply] of lists) {
        if (t.startsWith(prefix)) {
          try {
            const ids = parseJson(t.slice(prefix.length));
            if (Array.isArray(ids)) apply(ids.filter((i) => typeof i === 'string').slice(0, 4096));
          } catch {
            l.session.stats.errors++;
          }
          return null;
        }
      }
    }
    return r;
  }

  /** A local write: to every link. */
  set(key, value) {
    const u = this.store.set(key, value);
    this.forward(u, null);
    return u;
  }

  forward(u, origin) {
    for (const [id, l] of this.links) {
      if (id === origin) continue;
      if (origin !== null && (l.session.remoteId === u.source || l.reaches.has(u.source))) continue;
      l.session.sendUpdate(u);
    }
    this.onUpdate(u, origin === null);
  }

  /** Tells every link which writers we hear directly: losses at once, gains if `gains`. */
  reportLinks(gains) {
    const ids = new Set();
    for (const l of this.links.values()) if (l.session.remoteId !== null) ids.add(l.session.remoteId);
    const lost = [...this.reported].filter((r) => !ids.has(r));
    const gained = gains ? [...ids].filter((i) => !this.reported.has(i)) : [];
    if (!lost.length && !gained.length) return;
    const texts = [];
    if (lost.length) texts.push(`LINKS- ${JSON.stringify(lost)}`);
    if (gained.length) texts.push(`LINKS+ ${JSON.stringify(gained)}`);
    lost.forEach((r) => this.reported.delete(r));
    gained.forEach((g) => this.reported.add(g));
    for (const l of this.links.values()) {
      if (l.session.remoteId !== null) texts.forEach((t) => l.session.sendControl(t));
    }
  }
}

// ---------------------------------------------------------------------------------------
// rtc-signaller 6.x messages.

/** Writes a JSON value for a signalling part: `|` escaped as `\u007c`. */
function part(v) {
  return JSON.stringify(v).replace(/\|/g, '\\u007c');
}

/** Encodes `/cmd|sender|args...`, optionally wrapped as `/to|target|...`. */
export function encodeSignal(command, sender, args = [], to = null) {
  let s = to ? `/to|${to}|` : '';
  s += `/${command}`;
  if (sender !== null) s += `|${sender}`;
  for (const a of args) s += `|${typeof a === 'string' ? a : part(a)}`;
  return s;
}

/**
 * Parses a signalling text: `{to, command, sender, args}` where JSON arguments are parsed
 * (a raw `|` inside JSON from an original client is re-joined, at most 8 times). Returns
 * null for text that is not a message.
 */
export function parseSignal(text) {
  if (typeof text !== 'string' || text.length > 65536 || !text.startsWith('/')) return null;
  let parts = text.split('|');
  if (parts.length > 256) return null;
  let to = null;
  if (parts[0] === '/to') {
    if (parts.length < 3) return null;
    to = parts[1];
    parts = parts.slice(2);
  }
  if (!parts[0].startsWith('/') || parts[0].length < 2) return null;
  const command = parts[0].slice(1);
  const rest = parts.slice(1);
  // `/roominfo|{json}` has no sender.
  let sender = null;
  if (rest.length && !/^[[{]/.test(rest[0])) sender = rest.shift();
  const args = [];
  let joins = 0;
  for (let i = 0; i < rest.length; i++) {
    let p = rest[i];
    if (/^[[{"]/.test(p)) {
      let v;
      for (;;) {
        try {
          v = parseJson(p);
          break;
        } catch {
          if (i + 1 < rest.length && joins < 8) {
            p += `|${rest[++i]}`;
            joins++;
          } else {
            v = undefined;
            break;
          }
        }
      }
      args.push(v === undefined ? p : v);
    } else {
      args.push(p);
    }
  }
  return { to, command, sender, args };
}

// ---------------------------------------------------------------------------------------
// The signalling client: core's `SignalClient` (core/src/signal_client.rs), rule for
// rule, so that a trace recorded from the Rust one replays here (web/tests/replay).

/** Core's generator: xorshift64 over a seeded state (BigInt, 64 bits). */
export class Xorshift {
  constructor(seed) {
    this.state = BigInt.asUintN(64, BigInt(seed)) | 1n;
  }

  next() {
    let x = this.state;
    x = BigInt.asUintN(64, x ^ (x << 13n));
    x ^= x >> 7n;
    x = BigInt.asUintN(64, x ^ (x << 17n));
    this.state = x;
    return x;
  }

  /** `ms` scaled by a factor in [0.5, 1): the jitter of retries and backoffs (in whole
   * nanoseconds, as core's `Duration::mul_f64` gives). */
  jitter(ms) {
    return Math.round(ms * (0.5 + Number(this.next() >> 11n) / 2 ** 53 / 2) * 1e6) / 1e6;
  }
}

/** How far ahead a client with nothing scheduled asks to be woken (core's `IDLE`). */
const IDLE_MS = 3600 * 1000;

/**
 * When to (re)connect to the switchboard, what to send after a reconnect, what to queue
 * while disconnected, sans-IO: times are milliseconds on any clock. Drain `poll()` until
 * it returns `{type: 'timeout', at}`; the other outputs are `{type: 'connect'}` (open the
 * WebSocket, then report `handleConnected` or `handleDisconnected`), `{type: 'send',
 * text}`, `{type: 'close'}`, `{type: 'connected'}` and `{type: 'disconnected'}`.
 * Messages sent while down are queued (the oldest dropped past `maxQueue`) and go out
 * after the announce on the next connection; the last announce goes first after every
 * reconnect; reconnects back off from `minBackoff` doubling to `maxBackoff`, jittered,
 * and a connection that stayed up `maxBackoff` starts over.
 */
export class SignalClient {
  constructor(config = {}, now = 0) {
    this.minBackoff = config.minBackoff ?? 50;
    this.maxBackoff = config.maxBackoff ?? 5000;
    this.maxQueue = config.maxQueue ?? 4096;
    this.rng = new Xorshift(config.seed ?? 0x5eed);
    this.backoff = this.minBackoff;
    this.state = { name: 'connecting' };
    this.announceText = null;
    this.queue = [];
    this.out = [{ type: 'connect' }];
    this.dropped = 0;
    this.connections = 0;
    this.now = now;
  }

  isConnected() {
    return this.state.name === 'connected';
  }

  isClosed() {
    return this.state.name === 'closed';
  }

  send(text) {
    if (this.state.name === 'connected') this.out.push({ type: 'send', text });
    else if (this.state.name !== 'closed') {
      if (this.queue.length === this.maxQueue) {
        this.queue.shift();
        this.dropped++;
      }
      this.queue.push(text);
    }
  }

  announce(text) {
    if (this.isClosed()) return;
    if (this.isConnected()) this.out.push({ type: 'send', text });
    this.announceText = text;
  }

  handleConnected(now) {
    this.now = Math.max(this.now, now);
    if (this.isClosed()) {
      this.out.push({ type: 'close' });
      return;
    }
    this.state = { name: 'connected', since: now };
    this.connections++;
    if (this.announceText !== null) this.out.push({ type: 'send', text: this.announceText });
    for (const text of this.queue.splice(0)) this.out.push({ type: 'send', text });
    this.out.push({ type: 'connected' });
  }

  handleDisconnected(now) {
    this.now = Math.max(this.now, now);
    const st = this.state;
    if (st.name === 'closed' || st.name === 'waiting') return;
    if (st.name === 'connected' && now - st.since >= this.maxBackoff) this.backoff = this.minBackoff;
    const wasConnected = st.name === 'connected';
    const delay = this.rng.jitter(this.backoff);
    this.backoff = Math.min(this.backoff * 2, this.maxBackoff);
    this.state = { name: 'waiting', at: now + delay };
    if (wasConnected) this.out.push({ type: 'disconnected' });
  }

  handleTimeout(now) {
    this.now = Math.max(this.now, now);
    // Due, to the nanosecond (times are float milliseconds here, exact instants in core).
    if (this.state.name === 'waiting' && now >= this.state.at - 1e-6) {
      this.state = { name: 'connecting' };
      this.out.push({ type: 'connect' });
    }
  }

  close() {
    if (this.isClosed()) return;
    this.state = { name: 'closed' };
    this.queue = [];
    this.out.push({ type: 'close' });
  }

  poll() {
    if (this.out.length) return this.out.shift();
    return { type: 'timeout', at: this.state.name === 'waiting' ? this.state.at : this.now + IDLE_MS };
  }
}

// ---------------------------------------------------------------------------------------
// The mesh: membership, negotiation, links.

const PING_MS = 1000;
const DEAD_MS = 4000;
const NEGOTIATE_MS = 10000;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 10000;
/** Text messages on a data channel carry at most this much (a longer line is split). */
const CHUNK = 16 * 1024;
/** Stop writing to a channel above this many buffered bytes; resume below a quarter. */
const HIGH_WATER = 1 << 20;

function hex(n) {
  const b = new Uint8Array(Math.ceil(n / 2));
  crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('').slice(0, n);
}

/** Splits text into pieces of at most `max` UTF-16 units, never inside a surrogate pair. */
function chunks(text, max) {
  if (text.length <= max) return [text];
  const out = [];
  let i = 0;
  while (i < text.length) {
    let j = Math.min(i + max, text.length);
    const c = text.charCodeAt(j - 1);
    if (j < text.length && c >= 0xd800 && c <= 0xdbff) j--;
    out.push(text.slice(i, j));
    i = j;
  }
  return out;
}

/**
 * A member of a room. Create one with {@link join}. Events (`on(name, fn)`):
 * `update` ({key, value, deleted, ts, source, local}), `peer_join` ({peer, attributes}),
 * `peer_update` ({peer, attributes}), `peer_leave` ({peer, reason: left | timeout |
 * closed | failed}), `synced` ({peer}), `synced_all` ({peers}), `online`, `error`.
 */
export class Member {
  constructor(room, options = {}) {
    this.room = room;
    this.id = options.id || hex(16);
    if (!validPeerId(this.id)) throw new MeshError('bad_id', `invalid peer id ${JSON.stringify(this.id)}`);
    this.incarnation = hex(16);
    this.signalUrl = options.signal || defaultSignalUrl();
    this.attributes = options.attributes || {};
    this.iceServers = options.iceServers || [];
    this.store = new Store(`${this.id}.${this.incarnation}`);
    this.replica = new Replica(this.store);
    this.replica.onUpdate = (u, local) => this.emit('update', updateEvent(u, local));
    this.peers = new Map();
    this.listeners = new Map();
    this.closed = false;
    this.online = false;
    this.ws = null;
    this.signalClient = new SignalClient(
      { seed: Number.parseInt(this.incarnation.slice(0, 12), 16) },
      Date.now(),
    );
    this.signalTimer = null;
    this.early = new Map();
    this.timer = setInterval(() => this.tick(), PING_MS / 4);
  }

  // -- events
  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.listeners.get(name)?.delete(fn);
  }

  emit(name, detail) {
    for (const fn of this.listeners.get(name) || []) {
      try {
        fn(detail);
      } catch (e) {
        console.error(e);
      }
    }
  }

  // -- the store
  /** Sets `key` to a JSON value (`null` deletes). Throws MeshError for a bad write. */
  set(key, value) {
    if (this.closed) throw new MeshError('closed', 'the member has left the room');
    this.replica.set(key, value);
  }

  delete(key) {
    this.set(key, null);
  }

  get(key) {
    return this.store.get(key);
  }

  keys() {
    return this.store.keys();
  }

  snapshot() {
    return this.store.snapshot();
  }

  /** Present peers: id, attributes, link state, codec, counters and round trip. */
  peerList() {
    return [...this.peers.entries()]
      .filter(([, p]) => p.present)
      .map(([id, p]) => {
        const s = p.link !== null ? this.replica.session(p.link) : null;
        return {
          id,
          attributes: p.attributes,
          state: p.state,
          synced: p.synced,
          codec: p.state === 'open' ? 'json' : null,
          stats: s ? { ...s.stats } : null,
        };
      });
  }

  /** New user attributes, announced to the room. */
  announce(attributes) {
    this.attributes = attributes;
    this.sendAnnounce(null);
  }

  // -- signalling: the client decides, this moves WebSocket frames.
  connect() {
    // Remembered by the client, sent as soon as the WebSocket opens and after every
    // reconnect.
    this.sendAnnounce(null);
  }

  /** Carries out the signalling client's outputs. */
  pumpSignal() {
    for (;;) {
      const o = this.signalClient.poll();
      switch (o.type) {
        case 'connect':
          this.openSocket();
          break;
        case 'send':
          if (this.ws && this.ws.readyState === 1) this.ws.send(o.text);
          break;
        case 'close':
          if (this.ws) {
            const ws = this.ws;
            this.ws = null;
            ws.close();
          }
          break;
        case 'connected':
          if (this.signalClient.connections > 1) {
            // A reconnect: offers in flight may have been lost.
            for (const [peer, q] of this.peers) {
              if (q.state === 'negotiating' && q.offerer) this.restartOffer(peer);
            }
          }
          break;
        case 'disconnected':
          break;
        case 'timeout': {
          clearTimeout(this.signalTimer);
          const wait = o.at - Date.now();
          if (wait < IDLE_MS) {
            this.signalTimer = setTimeout(() => {
              this.signalClient.handleTimeout(Date.now());
              this.pumpSignal();
            }, Math.max(0, wait));
          }
          return;
        }
      }
    }
  }

  openSocket() {
    let ws;
    try {
      ws = new WebSocket(this.signalUrl);
    } catch (e) {
      this.emit('error', new MeshError('bad_url', e.message));
      this.signalClient.close();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.signalClient.handleConnected(Date.now());
      this.pumpSignal();
    };
    ws.onmessage = (e) => {
      if (this.ws === ws && typeof e.data === 'string') this.handleSignal(e.data);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.signalClient.handleDisconnected(Date.now());
      this.pumpSignal();
    };
    ws.onerror = () => {};
  }

  /** Sends a text to the switchboard now, or after the next (re)connect (bounded). */
  signal(text) {
    this.signalClient.send(text);
    this.pumpSignal();
  }

  announceAttributes() {
    return {
      ...this.attributes,
      id: this.id,
      room: this.room,
      agent: 'rtc-mesh-web/0.1',
      incarnation: this.incarnation,
      codecs: ['json'],
    };
  }

  sendAnnounce(to) {
    const a = this.announceAttributes();
    // Ours first, as natives order them.
    const ordered = { id: a.id, room: a.room, agent: a.agent, incarnation: a.incarnation, codecs: a.codecs };
    for (const [k, v] of Object.entries(this.attributes)) {
      if (!(k in ordered)) ordered[k] = v;
    }
    const text = encodeSignal('announce', this.id, [ordered], to);
    if (to === null) {
      // Ours: sent again first after every reconnect.
      this.signalClient.announce(text);
      this.pumpSignal();
    } else {
      this.signal(text);
    }
  }

  handleSignal(text) {
    if (this.closed) return;
    const m = parseSignal(text);
    if (!m || (m.to !== null && m.to !== this.id)) return;
    if (m.command === 'roominfo') {
      // A reconnect is known from the connection (see pumpSignal), not from this.
      if (!this.online) {
        this.online = true;
        this.emit('online', {});
      }
      return;
    }
    const from = m.sender;
    if (!from || from === this.id || !validPeerId(from)) return;
    const obj = m.args.find((a) => a && typeof a === 'object' && !Array.isArray(a));
    switch (m.command) {
      case 'announce':
        if (obj) this.onAnnounce(from, obj, m.to === null);
        break;
      case 'leave':
        this.onLeave(from, obj);
        break;
      case 'mesh:sdp':
      case 'mesh:candidate':
      case 'mesh:candidates': {
        const p = this.peers.get(from);
        if (p && p.inRoom) this.onNegotiation(from, m);
        else {
          if (!this.early.has(from) && this.early.size >= 64) return;
          const q = this.early.get(from) || [];
          if (q.length < 64) q.push(m);
          this.early.set(from, q);
        }
        break;
      }
      default:
    }
  }

  onAnnounce(from, attrs, broadcast) {
    if (attrs.room !== this.room) return;
    if (broadcast) this.sendAnnounce(from);
    const incarnation = typeof attrs.incarnation === 'string' ? attrs.incarnation : null;
    const codecs = Array.isArray(attrs.codecs) ? attrs.codecs : ['json'];
    let p = this.peers.get(from);
    const returning = p !== undefined && p.incarnation !== incarnation;
    if (returning) {
      this.dropConn(from, null);
      this.setPresent(from, false, 'left');
    }
    if (!p) {
      p = {
        attributes: {},
        incarnation: null,
        codecs: [],
        present: false,
        inRoom: true,
        state: 'idle',
        retryAt: null,
        since: 0,
        offerer: false,
        pc: null,
        dc: null,
        link: null,
        lastHeard: 0,
        nextPing: 0,
        failures: 0,
        synced: false,
        pending: [],
        queue: [],
        head: 0,
      };
      this.peers.set(from, p);
    }
    if (p.present && !returning && JSON.stringify(p.attributes) !== JSON.stringify(attrs)) {
      this.emit('peer_update', { peer: from, attributes: attrs });
    }
    p.attributes = attrs;
    p.incarnation = incarnation;
    p.codecs = codecs;
    p.inRoom = true;
    if (returning) p.failures = 0;
    this.setPresent(from, true, 'left');
    if (p.state === 'idle' && this.weOffer(from)) this.offer(from);
    else if (p.state === 'negotiating' && p.offerer && broadcast && !returning) {
      // It announced again by broadcast (its signalling reconnected).
      this.restartOffer(from);
    }
    const early = this.early.get(from);
    if (early) {
      this.early.delete(from);
      for (const m of early) this.onNegotiation(from, m);
    }
  }

  onLeave(from, obj) {
    this.early.delete(from);
    const p = this.peers.get(from);
    if (!p) return;
    p.inRoom = false;
    const reason = obj && typeof obj.reason === 'string' ? obj.reason : null;
    // The switchboard lost its connection: the link decides.
    if (reason !== null && p.state === 'open') return;
    this.dropConn(from, null);
    this.setPresent(from, false, reason !== null ? 'closed' : 'left');
    this.peers.delete(from);
    this.checkAllSynced();
  }

  weOffer(peer) {
    return this.id > peer;
  }

  setPresent(peer, present, reason) {
    const p = this.peers.get(peer);
    if (!p || p.present === present) return;
    p.present = present;
    if (present) this.emit('peer_join', { peer, attributes: p.attributes });
    else this.emit('peer_leave', { peer, reason });
  }

  newPc(peer) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    // Candidates go out after our SDP (a peer drops candidates for a negotiation it
    // has not heard of): held until `sdpSent`.
    pc.held = [];
    pc.sdpSent = false;
    pc.onicecandidate = (e) => {
      if (!e.candidate || !e.candidate.candidate) return;
      const text = encodeSignal('mesh:candidate', this.id, [e.candidate.toJSON()], peer);
      if (pc.sdpSent) this.signal(text);
      else pc.held.push(text);
    };
    pc.onconnectionstatechange = () => {
      const p = this.peers.get(peer);
      if (!p || p.pc !== pc) return;
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') this.linkClosed(peer);
    };
    return pc;
  }

  /** Sends our SDP, then the candidates found meanwhile. */
  sendSdp(peer, pc, type) {
    this.signal(encodeSignal('mesh:sdp', this.id, [{ type, sdp: pc.localDescription.sdp, incarnation: this.incarnation }], peer));
    pc.sdpSent = true;
    for (const t of pc.held.splice(0)) this.signal(t);
  }

  /** A new connection to `peer`, negotiating as offerer or answerer. */
  startNegotiation(peer, p, offerer) {
    p.state = 'negotiating';
    p.offerer = offerer;
    p.since = Date.now();
    p.pc = this.newPc(peer);
    p.pending = [];
    p.remoteSet = false;
    return p.pc;
  }

  /** Runs the async steps of a negotiation on `pc`; a failure closes the link. */
  negotiate(peer, p, pc, steps) {
    steps().catch(() => {
      if (p.pc === pc) this.linkClosed(peer);
    });
  }

  /** Applies the remote's SDP, then the candidates that waited for it. */
  async setRemote(p, pc, type, sdp) {
    await pc.setRemoteDescription({ type, sdp });
    p.remoteSet = true;
    await this.flushCandidates(p, pc);
  }

  /** Drops the negotiation in progress with `peer` and offers afresh. */
  restartOffer(peer) {
    this.dropConn(peer, null);
    this.offer(peer);
  }

  offer(peer) {
    const p = this.peers.get(peer);
    if (!p) return;
    const pc = this.startNegotiation(peer, p, true);
    const dc = pc.createDataChannel('mesh', { ordered: true, protocol: 'json' });
    this.wireChannel(peer, pc, dc);
    this.negotiate(peer, p, pc, async () => {
      await pc.setLocalDescription(await pc.createOffer());
      if (p.pc === pc) this.sendSdp(peer, pc, 'offer');
    });
  }

  onNegotiation(from, m) {
    const p = this.peers.get(from);
    if (!p) return;
    const obj = m.args.find((a) => a && typeof a === 'object');
    if (m.command === 'mesh:sdp') {
      if (!obj || typeof obj.type !== 'string' || typeof obj.sdp !== 'string') return;
      if (obj.type === 'offer') {
        if (p.state === 'negotiating' && p.offerer) return;
        // Over an open link a fresh offer means the remote lost it: reported as a closed
        // link is, as core does (the peer joins again when the new one opens).
        const wasOpen = p.state === 'open';
        this.dropConn(from, null);
        if (wasOpen) {
          this.setPresent(from, false, 'closed');
          this.checkAllSynced();
        }
        const pc = this.startNegotiation(from, p, false);
        pc.ondatachannel = (e) => {
          if (e.channel.label === 'mesh' && p.pc === pc) this.wireChannel(from, pc, e.channel);
        };
        this.negotiate(from, p, pc, async () => {
          await this.setRemote(p, pc, 'offer', obj.sdp);
          await pc.setLocalDescription(await pc.createAnswer());
          if (p.pc === pc) this.sendSdp(from, pc, 'answer');
        });
      } else if (obj.type === 'answer' && p.state === 'negotiating' && p.offerer && p.pc) {
        const pc = p.pc;
        this.negotiate(from, p, pc, () => this.setRemote(p, pc, 'answer', obj.sdp));
      }
      return;
    }
    // Candidates, one or a batch.
    if (p.state === 'idle' || !p.pc) return;
    const list = [];
    for (const a of m.args) {
      if (Array.isArray(a)) list.push(...a.filter((c) => c && typeof c === 'object'));
      else if (a && typeof a === 'object') list.push(a);
    }
    for (const c of list) {
      if (typeof c.candidate !== 'string' || !c.candidate || / [^ ]+\.local /.test(c.candidate)) continue;
      p.pending.push(c);
    }
    if (p.remoteSet) this.flushCandidates(p, p.pc);
  }

  async flushCandidates(p, pc) {
    const list = p.pending;
    p.pending = [];
    for (const c of list) {
      try {
        await pc.addIceCandidate({
          candidate: c.candidate,
          sdpMid: c.sdpMid ?? null,
          sdpMLineIndex: c.sdpMLineIndex ?? 0,
        });
      } catch {
        // An unparsable candidate is ignored, as natives do.
      }
    }
  }

  wireChannel(peer, pc, dc) {
    const p = this.peers.get(peer);
    p.dc = dc;
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = HIGH_WATER / 4;
    const decoder = new LineDecoder();
    dc.onopen = () => {
      if (p.pc !== pc) return;
      this.linkOpen(peer, dc);
    };
    dc.onmessage = (e) => {
      if (p.pc !== pc) return;
      p.heard = true;
      // A message can come before this side's `open` event (the remote opened first).
      if (p.link === null) this.linkOpen(peer, dc);
      if (p.link === null) return;
      p.lastHeard = Date.now();
      const s = this.replica.session(p.link);
      if (s) s.stats.bytesIn += typeof e.data === 'string' ? byteLength(e.data) : e.data.byteLength;
      let lines;
      try {
        lines = decoder.push(typeof e.data === 'string' ? e.data : new Uint8Array(e.data));
      } catch {
        this.linkClosed(peer);
        return;
      }
      for (const line of lines) {
        if (p.link === null || p.pc !== pc) return;
        this.onLine(peer, p, line);
      }
      this.flush(p);
    };
    dc.onbufferedamountlow = () => this.flush(p);
    dc.onclose = () => {
      if (p.pc === pc) this.linkClosed(peer);
    };
  }

  linkOpen(peer, dc) {
    const p = this.peers.get(peer);
    if (!p || p.state === 'open') return;
    p.queue = [];
    p.head = 0;
    // The side that did not create the channel speaks once it has heard the other:
    // Firefox can drop what arrives just before its own `open` event. (The creator
    // speaks at once; a silent creator is given 1 s.)
    p.heard = p.offerer;
    p.openedAt = Date.now();
    p.link = this.replica.openLink((line) => {
      p.queue.push(line);
      this.scheduleFlush(p);
    });
    const now = Date.now();
    this.replica.session(p.link).ping(now);
    p.state = 'open';
    p.lastHeard = now;
    p.nextPing = now + PING_MS;
    p.failures = 0;
    this.setPresent(peer, true, 'left');
    this.flush(p);
  }

  scheduleFlush(p) {
    if (p.flushing) return;
    p.flushing = true;
    queueMicrotask(() => {
      p.flushing = false;
      this.flush(p);
    });
  }

  /** Moves queued lines onto the channel, in messages of at most CHUNK. */
  flush(p) {
    const dc = p.dc;
    if (!dc || dc.readyState !== 'open' || !p.heard) return;
    // `p.queue` is consumed from `p.head` (shifting a long array costs its length).
    const q = p.queue;
    while (p.head < q.length && dc.bufferedAmount < HIGH_WATER) {
      let msg = '';
      if (q[p.head].length > CHUNK) {
        // One line longer than a message: it goes in pieces (never inside a character).
        for (const piece of chunks(q[p.head++], CHUNK)) this.sendOn(dc, piece);
        continue;
      }
      while (p.head < q.length && msg.length + q[p.head].length <= CHUNK) msg += q[p.head++];
      if (!this.sendOn(dc, msg)) return;
    }
    if (p.head === q.length) {
      q.length = 0;
      p.head = 0;
    } else if (p.head > 4096) {
      q.splice(0, p.head);
      p.head = 0;
    }
  }

  sendOn(dc, msg) {
    try {
      dc.send(msg);
      return true;
    } catch {
      return false;
    }
  }

  onLine(peer, p, line) {
    const r = this.replica.handleLine(p.link, line, Date.now());
    if (!r) return;
    if (r.synced) {
      p.synced = true;
      this.emit('synced', { peer });
      this.checkAllSynced();
    }
    if (r.control === 'BYE') {
      this.dropConn(peer, null);
      this.setPresent(peer, false, 'left');
      this.peers.delete(peer);
      this.checkAllSynced();
    }
  }

  checkAllSynced() {
    const present = [...this.peers.entries()].filter(([, p]) => p.present);
    if (present.length && present.every(([, p]) => p.synced)) {
      this.emit('synced_all', { peers: present.map(([id]) => id) });
    }
  }

  dropConn(peer, retryAt) {
    const p = this.peers.get(peer);
    if (!p) return;
    if (p.link !== null) {
      this.flush(p);
      this.replica.closeLink(p.link);
      p.link = null;
    }
    if (p.dc) {
      p.dc.onclose = null;
      p.dc.onmessage = null;
    }
    if (p.pc) {
      p.pc.onconnectionstatechange = null;
      try {
        p.pc.close();
      } catch {
        // closed already
      }
    }
    p.pc = null;
    p.dc = null;
    p.state = 'idle';
    p.retryAt = retryAt;
    p.synced = false;
    p.queue = [];
    p.head = 0;
  }

  backoff(failures) {
    const d = Math.min(RETRY_MIN_MS * 2 ** Math.min(failures, 16), RETRY_MAX_MS);
    return d * (0.5 + Math.random() / 2);
  }

  linkClosed(peer) {
    const p = this.peers.get(peer);
    if (!p) return;
    const wasOpen = p.state === 'open';
    p.failures++;
    this.dropConn(peer, Date.now() + this.backoff(p.failures));
    this.setPresent(peer, false, wasOpen ? 'closed' : 'failed');
    if (!p.inRoom) this.peers.delete(peer);
    this.checkAllSynced();
  }

  tick() {
    if (this.closed) return;
    const now = Date.now();
    for (const [id, p] of [...this.peers.entries()]) {
      if (p.state === 'open') {
        if (!p.heard && now - p.openedAt >= 1000) p.heard = true;
        // DESIGN: once the remote has sent a PING (whatever it is: ours, a page, a
        // foreign client without an incarnation), a link silent for DEAD_MS is dead.
        const pinged = (this.replica.session(p.link)?.stats.pingsIn ?? 0) > 0;
        if (pinged && now - p.lastHeard >= DEAD_MS) {
          this.dropConn(id, now + this.backoff(p.failures));
          this.setPresent(id, false, 'timeout');
          if (!p.inRoom) this.peers.delete(id);
          this.checkAllSynced();
        } else if (now >= p.nextPing) {
          this.replica.session(p.link)?.ping(now);
          p.nextPing = now + PING_MS;
        }
      } else if (p.state === 'negotiating') {
        if (now - p.since >= NEGOTIATE_MS) {
          p.failures++;
          this.dropConn(id, now + this.backoff(p.failures));
          this.setPresent(id, false, 'failed');
          if (!p.inRoom) this.peers.delete(id);
        }
      } else if (p.retryAt !== null && now >= p.retryAt) {
        p.retryAt = null;
        if (this.weOffer(id) && p.inRoom) this.offer(id);
      }
    }
    this.replica.reportLinks(true);
    for (const p of this.peers.values()) this.flush(p);
  }

  /** Leaves the room: `BYE` on every link, `/leave` to the switchboard. */
  close() {
    if (this.closed) return;
    for (const p of this.peers.values()) {
      if (p.link !== null) {
        this.replica.session(p.link)?.sendControl('BYE');
        this.flush(p);
      }
    }
    this.signal(encodeSignal('leave', this.id, [{ id: this.id }]));
    this.closed = true;
    clearInterval(this.timer);
    const peers = [...this.peers.keys()];
    // Give the goodbyes a moment to leave before the channels close.
    setTimeout(() => {
      for (const id of peers) this.dropConn(id, null);
      // The leave went first; then the client says close.
      this.signalClient.close();
      this.pumpSignal();
      clearTimeout(this.signalTimer);
    }, 200);
  }
}

function updateEvent(u, local) {
  return {
    key: u.key,
    value: u.value,
    deleted: u.value === null,
    ts: u.ts,
    source: u.source,
    local,
  };
}

function defaultSignalUrl() {
  if (typeof location !== 'undefined' && /^https?:$/.test(location.protocol)) {
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
  }
  return 'ws://127.0.0.1:3000/';
}

/**
 * Joins `room` through the switchboard at `options.signal` (default: the page's own
 * host, or ws://127.0.0.1:3000/). Options: `id`, `attributes`, `iceServers`.
 * Returns the {@link Member} at once; it announces as soon as the WebSocket opens.
 */
export function join(room, options = {}) {
  if (typeof room !== 'string' || !room) throw new MeshError('bad_room', 'a room name is required');
  const m = new Member(room, options);
  m.connect();
  return m;
}
