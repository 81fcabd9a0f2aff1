// The postcard codec: core's `wire::postcard`, `wire::framing` (message links) and the
// compact value encoding of `value::compact`, byte for byte, so that a page and a native
// peer pick it with each other (held to core by core/tests/vectors/postcard.json). The
// format is specified in core/src/wire/mod.rs; in short: a frame is records, each frame
// starts a fresh source table, previous key and previous timestamp; a value too large for
// a frame goes in fragments.

import { LIMITS, MeshError, plainObject, validSource } from './values.js';

const R_DIGEST = 1;
const R_SYNC = 2;
const R_PING = 3;
const R_PONG = 4;
const R_UPDATE = 5;
const R_FRAG_START = 6;
const R_FRAG_MORE = 7;
const R_CONTROL = 8;
const R_HISTORY_SIZE = 9;
const R_SIGNED_UPDATE = 10;
const R_SIGNED_FRAG_START = 11;

const T_NULL = 0;
const T_FALSE = 1;
const T_TRUE = 2;
const T_INT = 3;
const T_F64 = 4;
const T_STR = 5;
const T_ARRAY = 6;
const T_OBJECT = 7;

/** Postcard frames on a data channel: at most this many bytes each (core's FRAME_SIZE). */
export const FRAME_SIZE = 16 * 1024;
/** The longest frame a decoder takes (core's `Limits::max_frame_len`). */
export const MAX_FRAME_LEN = 64 << 10;
const MAX_SAFE = 2 ** 53;

const utf8 = new TextEncoder();
const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const f64 = new Float64Array(1);
const f64bytes = new Uint8Array(f64.buffer);
// The f64's bits as two 32-bit halves (little-endian: [0] low, [1] high): timestamps
// are delta-encoded on their bits without BigInt.
const u32 = new Uint32Array(f64.buffer);
const TWO32 = 4294967296;

// UTF-8 in JavaScript for the short strings of every update (keys, small values): a
// TextEncoder call costs more than the encoding in some engines (Chromium).
const SHORT = 256;

/** The UTF-8 length of a checked string (no lone surrogates). */
function utf8Length(s) {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      if (c < 0x800) n += 1;
      else if (c >= 0xd800 && c <= 0xdbff) i++, (n += 2);
      else n += 2;
    }
  }
  return n;
}

/** Writes a checked string's UTF-8 at `buf[pos]` (room made by the caller); the end. */
function writeUtf8(s, buf, pos) {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) buf[pos++] = c;
    else if (c < 0x800) {
      buf[pos++] = 0xc0 | (c >> 6);
      buf[pos++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdbff) {
      c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      buf[pos++] = 0xf0 | (c >> 18);
      buf[pos++] = 0x80 | ((c >> 12) & 0x3f);
      buf[pos++] = 0x80 | ((c >> 6) & 0x3f);
      buf[pos++] = 0x80 | (c & 0x3f);
    } else {
      buf[pos++] = 0xe0 | (c >> 12);
      buf[pos++] = 0x80 | ((c >> 6) & 0x3f);
      buf[pos++] = 0x80 | (c & 0x3f);
    }
  }
  return pos;
}

/** A growable byte buffer. */
class Bytes {
  constructor(n = 64) {
    this.buf = new Uint8Array(n);
    this.len = 0;
  }

  room(n) {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }

  byte(b) {
    this.room(1);
    this.buf[this.len++] = b;
  }

  bytes(a) {
    this.room(a.length);
    this.buf.set(a, this.len);
    this.len += a.length;
  }

  /** An unsigned LEB128 varint of a Number (< 2^53) or a BigInt (< 2^64). */
  varint(n) {
    if (typeof n === 'number' && n < 0x80) {
      this.byte(n);
      return;
    }
    if (typeof n === 'number' && n <= Number.MAX_SAFE_INTEGER) {
      while (n >= 0x80) {
        this.byte((n % 0x80) | 0x80);
        n = Math.floor(n / 0x80);
      }
      this.byte(n);
      return;
    }
    let b = BigInt(n);
    while (b >= 0x80n) {
      this.byte(Number(b & 0x7fn) | 0x80);
      b >>= 7n;
    }
    this.byte(Number(b));
  }

  /** A 64-bit unsigned varint given as two 32-bit halves. */
  varint64(hi, lo) {
    if (hi < 0x200000) {
      this.varint(hi * TWO32 + lo);
      return;
    }
    this.varint((BigInt(hi) << 32n) | BigInt(lo));
  }

  str(bytes) {
    this.varint(bytes.length);
    this.bytes(bytes);
  }

  /** A string as varint(length) and UTF-8. */
  text(s) {
    if (s.length > SHORT) {
      this.str(utf8.encode(s));
      return;
    }
    const n = utf8Length(s);
    this.varint(n);
    this.room(n);
    this.len = writeUtf8(s, this.buf, this.len);
  }

  f64(x) {
    f64[0] = x;
    this.bytes(f64bytes);
  }

  take() {
    return this.buf.slice(0, this.len);
  }
}

/** Appends the compact encoding of a checked JSON value. */
function putValue(v, out) {
  if (v === null) out.byte(T_NULL);
  else if (v === false) out.byte(T_FALSE);
  else if (v === true) out.byte(T_TRUE);
  else if (typeof v === 'number') {
    if (Number.isInteger(v) && Math.abs(v) <= MAX_SAFE) {
      out.byte(T_INT);
      // Zigzag; -0 is 0, as in JSON text.
      if (Math.abs(v) < 2 ** 52) out.varint(v >= 0 ? v * 2 + 0 : -v * 2 - 1);
      else out.varint(v >= 0 ? BigInt(v) * 2n : -BigInt(v) * 2n - 1n);
    } else {
      out.byte(T_F64);
      out.f64(v);
    }
  } else if (typeof v === 'string') {
    out.byte(T_STR);
    out.text(v);
  } else if (Array.isArray(v)) {
    out.byte(T_ARRAY);
    out.varint(v.length);
    for (const x of v) putValue(x, out);
  } else {
    // Own keys in JavaScript order: array indices ascending, then insertion order, which
    // is the order the encoding requires.
    const keys = Object.keys(v);
    out.byte(T_OBJECT);
    out.varint(keys.length);
    for (const k of keys) {
      out.text(k);
      putValue(v[k], out);
    }
  }
}

/** The compact encoding of a JSON value (checked by the caller). */
export function encodeValue(v) {
  if (typeof v === 'string') {
    // The common case, without a growing buffer.
    const b = v.length > SHORT ? utf8.encode(v) : null;
    const bytes = b ? b.length : utf8Length(v);
    let n = bytes;
    let len = 1;
    while (n >= 0x80) {
      len++;
      n = Math.floor(n / 0x80);
    }
    const out = new Uint8Array(1 + len + bytes);
    out[0] = T_STR;
    n = bytes;
    for (let i = 1; i <= len; i++) {
      out[i] = i < len ? (n % 0x80) | 0x80 : n;
      n = Math.floor(n / 0x80);
    }
    if (b) out.set(b, 1 + len);
    else writeUtf8(v, out, 1 + len);
    return out;
  }
  const out = new Bytes();
  putValue(v, out);
  return out.take();
}

/** A malformed input: a MeshError `bad_frame` (or `bad_value`) with core's words. */
function bad(message, code = 'bad_frame') {
  return new MeshError(code, message);
}

/** Reads checked parts from the front of a byte array. */
class Reader {
  constructor(b, pos = 0, end = b.length) {
    this.b = b;
    this.pos = pos;
    this.end = end;
  }

  empty() {
    return this.pos >= this.end;
  }

  u8() {
    if (this.pos >= this.end) throw bad('truncated');
    return this.b[this.pos++];
  }

  /** A canonical varint: a Number when below 2^49, else a BigInt. */
  varintAny() {
    let v = 0;
    let mul = 1;
    const start = this.pos;
    for (let i = 0; i < 7; i++) {
      const x = this.u8();
      v += (x & 0x7f) * mul;
      if (x < 0x80) {
        if (x === 0 && this.pos - start > 1) throw bad('overlong varint');
        return v;
      }
      mul *= 0x80;
    }
    let big = BigInt(v);
    let shift = 49n;
    for (;;) {
      const x = this.u8();
      if (shift === 63n && x > 1) throw bad('bad varint');
      big |= BigInt(x & 0x7f) << shift;
      if (x < 0x80) {
        if (x === 0) throw bad('overlong varint');
        return big;
      }
      shift += 7n;
      if (shift > 63n) throw bad('bad varint');
    }
  }

  /** A varint as a Number (larger values become Infinity-like: they fail any bound). */
  varint() {
    const v = this.varintAny();
    return typeof v === 'bigint' ? Number(v) : v;
  }

  /** A canonical 64-bit varint as two 32-bit halves `[hi, lo]`. */
  varint64() {
    let lo = 0;
    let hi = 0;
    const start = this.pos;
    for (let i = 0; ; i++) {
      const x = this.u8();
      const bits = x & 0x7f;
      if (i < 4) lo += bits * 2 ** (7 * i);
      else if (i === 4) {
        lo += (bits & 0x0f) * 2 ** 28;
        hi += bits >>> 4;
      } else if (i < 9) hi += bits * 2 ** (7 * i - 32);
      else {
        if (x > 1) throw bad('bad varint');
        hi += bits * 2 ** 31;
      }
      if (x < 0x80) {
        if (x === 0 && this.pos - start > 1) throw bad('overlong varint');
        return [hi, lo];
      }
      if (i === 9) throw bad('bad varint');
    }
  }

  /** A count of items each at least one byte long. */
  count() {
    const n = this.varint();
    if (n > this.end - this.pos) throw bad('count exceeds input');
    return n;
  }

  bytes(n) {
    if (n > this.end - this.pos) throw bad('truncated');
    const s = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return s;
  }

  strBytes() {
    const n = this.varint();
    if (n > this.end - this.pos) throw bad('truncated');
    return this.bytes(n);
  }

  str() {
    const s = this.strBytes();
    // Short ASCII strings (keys, ids, small values) without the decoder's call.
    if (s.length <= SHORT) {
      let ascii = true;
      for (let i = 0; i < s.length; i++) {
        if (s[i] >= 0x80) {
          ascii = false;
          break;
        }
      }
      if (ascii) return String.fromCharCode.apply(null, s);
    }
    try {
      return strict.decode(s);
    } catch {
      throw bad('invalid utf-8');
    }
  }

  f64() {
    const s = this.bytes(8);
    f64bytes.set(s);
    return f64[0];
  }
}

function zigzag(z) {
  if (typeof z === 'number') return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  return (z >> 1n) ^ -(z & 1n);
}

/** Array-index keys (canonical decimal below 2^32 - 1) sort first, ascending. */
function arrayIndex(k) {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(k)) return null;
  const n = Number(k);
  return n < 4294967295 ? n : null;
}

/** Reads one value (bounded by `depth`); returns the JavaScript value. */
function readValue(r, depth) {
  const tag = r.u8();
  switch (tag) {
    case T_NULL:
      return null;
    case T_FALSE:
      return false;
    case T_TRUE:
      return true;
    case T_INT: {
      const z = r.varintAny();
      const i = zigzag(z);
      if (typeof i === 'bigint') {
        if (i > 2n ** 53n || i < -(2n ** 53n)) throw bad('integer out of range');
        return Number(i);
      }
      return i === 0 ? 0 : i;
    }
    case T_F64: {
      const n = r.f64();
      if (!Number.isFinite(n)) throw bad('numbers must be finite');
      if (Number.isInteger(n) && Math.abs(n) <= MAX_SAFE) throw bad('integer encoded as f64');
      return n;
    }
    case T_STR:
      return r.str();
    case T_ARRAY: {
      if (depth === 0) throw bad(`nesting deeper than ${LIMITS.maxDepth}`);
      const n = r.count();
      const a = new Array(n);
      for (let i = 0; i < n; i++) a[i] = readValue(r, depth - 1);
      return a;
    }
    case T_OBJECT: {
      if (depth === 0) throw bad(`nesting deeper than ${LIMITS.maxDepth}`);
      const n = r.count();
      const entries = [];
      const seen = new Set();
      let prev; // undefined: no key yet; null: a plain key; a number: an array index
      for (let i = 0; i < n; i++) {
        const k = r.str();
        const ix = arrayIndex(k);
        if (prev !== undefined && ix !== null && (prev === null || prev >= ix)) throw bad('object keys out of order');
        if (seen.has(k)) throw bad('duplicate object key');
        seen.add(k);
        prev = ix;
        entries.push([k, readValue(r, depth - 1)]);
      }
      return plainObject(entries);
    }
    default:
      throw bad('unknown value tag');
  }
}

/**
 * Decodes a value's bytes (`b[start..end]`, exactly one value): `{value, json}`. Throws
 * a MeshError for bytes core would refuse (bounds of `LIMITS` included).
 */
export function decodeValue(b, start = 0, end = b.length) {
  if (end - start > LIMITS.maxValueLen) throw bad(`value of ${end - start} bytes exceeds the limit`, 'value_too_large');
  const r = new Reader(b, start, end);
  const v = takeValue(r);
  if (!r.empty()) throw bad('trailing bytes');
  return v;
}

/** The value at the front of `r`, read and checked: `{value, json}`. */
function takeValue(r) {
  const start = r.pos;
  const value = readValue(r, LIMITS.maxDepth);
  const len = r.pos - start;
  if (len > LIMITS.maxValueLen) throw bad('value too large', 'value_too_large');
  const json = JSON.stringify(value);
  if (json.length > LIMITS.maxValueLen && utf8.encode(json).length > LIMITS.maxValueLen) {
    throw bad('value too large as JSON', 'value_too_large');
  }
  // Its bytes are not kept: a copy per update costs more than encoding it again for
  // the links it is forwarded to (valueBytes), and a view would hold the whole frame.
  return { value, json };
}

/** Bytes of `a` and `b` in common, ending on a character boundary of `b`. */
function commonPrefix(a, b) {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  while (i > 0 && i < b.length && (b[i] & 0xc0) === 0x80) i--;
  return i;
}

/** The encoding of an update's value, kept on it (it goes to every link alike). */
export function valueBytes(u) {
  if (!u.bytes) u.bytes = encodeValue(u.value);
  return u.bytes;
}

/**
 * Messages into postcard frames for a data channel, as core's `Encoder` (Messages
 * framing) cuts them: call the message methods, then `poll()` until it returns null.
 */
export class PostcardEncoder {
  constructor(frameSize = FRAME_SIZE) {
    this.codec = 'postcard';
    this.frameSize = Math.max(frameSize, 512);
    this.cur = new Bytes(1024);
    this.ready = [];
    /** Called after each message is encoded (a driver schedules its flush). */
    this.onWrite = () => {};
    this.idBytes = new Map();
    this.scratchA = new Uint8Array(3 * SHORT);
    this.scratchB = new Uint8Array(3 * SHORT);
    this.scratch = this.scratchA;
    this.resetFrame();
  }

  resetFrame() {
    this.sources = new Map();
    this.prevKey = new Uint8Array(0);
    this.prevHi = 0;
    this.prevLo = 0;
  }

  /** UTF-8 of a key, in a scratch buffer (valid until the next call but one). */
  keyBytes(k) {
    if (k.length > SHORT) return utf8.encode(k);
    this.scratch = this.scratch === this.scratchA ? this.scratchB : this.scratchA;
    const end = writeUtf8(k, this.scratch, 0);
    return this.scratch.subarray(0, end);
  }

  /** UTF-8 of a source id (a few per link, kept). */
  bytesOf(id) {
    let b = this.idBytes.get(id);
    if (!b) {
      if (this.idBytes.size >= 1024) this.idBytes.clear();
      b = utf8.encode(id);
      this.idBytes.set(id, b);
    }
    return b;
  }

  finishChunk() {
    if (this.cur.len === 0) return;
    this.ready.push(this.cur.take());
    this.cur.len = 0;
    this.resetFrame();
  }

  record(r) {
    if (this.cur.len + r.len > this.frameSize) this.finishChunk();
    this.cur.bytes(r.buf.subarray(0, r.len));
  }

  /** Whether anything is encoded and not yet taken. */
  pending() {
    return this.cur.len > 0 || this.ready.length > 0;
  }

  /** The next frame (a Uint8Array), or null. */
  poll() {
    if (this.ready.length === 0) this.finishChunk();
    return this.ready.length ? this.ready.shift() : null;
  }

  /** A digest: `clock` is a Map of source -> timestamp; large clocks go in parts. */
  digest(id, clock) {
    const entries = [...clock.entries()].map(([s, t]) => [utf8.encode(s), t]);
    const idBytes = this.bytesOf(id);
    let rest = 0;
    for (;;) {
      const r = new Bytes();
      r.byte(R_DIGEST);
      r.str(idBytes);
      const room = Math.max(0, this.frameSize - (r.len + 4));
      let size = 0;
      let n = 0;
      while (rest + n < entries.length) {
        size += 1 + 2 + entries[rest + n][0].length + 8;
        if (size > room) break;
        n++;
      }
      n = Math.min(Math.max(n, 1), entries.length - rest);
      r.varint(n);
      for (let i = rest; i < rest + n; i++) {
        r.str(entries[i][0]);
        r.f64(entries[i][1]);
      }
      rest += n;
      r.byte(rest < entries.length ? 1 : 0);
      this.record(r);
      if (rest >= entries.length) break;
    }
    this.onWrite();
  }

  /** `SYNC`, `PING`, `PONG` or any other control string. */
  control(text) {
    const r = new Bytes();
    if (text === 'SYNC') r.byte(R_SYNC);
    else if (text === 'PING') r.byte(R_PING);
    else if (text === 'PONG') r.byte(R_PONG);
    else {
      r.byte(R_CONTROL);
      r.str(utf8.encode(text));
    }
    this.record(r);
    this.onWrite();
  }

  /** The history size hint. */
  historySize(n) {
    const r = new Bytes();
    r.byte(R_HISTORY_SIZE);
    r.varint(n);
    this.record(r);
    this.onWrite();
  }

  header(tag, u, key, source, out) {
    out.byte(tag);
    const i = this.sources.get(u.source);
    if (i !== undefined) out.varint(i);
    else {
      out.varint(this.sources.size);
      out.str(source);
      this.sources.set(u.source, this.sources.size);
    }
    const p = commonPrefix(this.prevKey, key);
    out.varint(p);
    out.str(key.subarray(p));
    this.prevKey = key;
    // The difference of the timestamps' bits, zigzag-encoded, in 32-bit halves.
    f64[0] = u.ts;
    const lo = u32[0];
    const hi = u32[1];
    let dlo = lo - this.prevLo;
    let dhi = hi - this.prevHi;
    if (dlo < 0) {
      dlo += TWO32;
      dhi -= 1;
    }
    dhi >>>= 0;
    let zhi = ((dhi << 1) | (dlo >>> 31)) >>> 0;
    let zlo = (dlo * 2) % TWO32;
    if (dhi >>> 31) {
      zhi = ~zhi >>> 0;
      zlo = ~zlo >>> 0;
    }
    out.varint64(zhi, zlo);
    this.prevHi = hi;
    this.prevLo = lo;
    if (u.sig) out.bytes(u.sig);
  }

  /** An update `{key, value, ts, source}` (its value encoded once, see valueBytes). */
  update(u) {
    const value = valueBytes(u);
    const key = this.keyBytes(u.key);
    const source = this.bytesOf(u.source);
    const headerMax = 1 + 10 + 10 + source.length + 20 + key.length + 10 + 10 + (u.sig ? 64 : 0);
    if (headerMax + value.length + 10 <= this.frameSize) {
      if (this.cur.len + headerMax + value.length > this.frameSize) this.finishChunk();
      this.header(u.sig ? R_SIGNED_UPDATE : R_UPDATE, u, key, source, this.cur);
      this.cur.bytes(value);
      this.onWrite();
      return;
    }
    // Fragmented: the first piece in a frame of its own, each next piece too.
    this.finishChunk();
    const r = new Bytes(this.frameSize);
    this.header(u.sig ? R_SIGNED_FRAG_START : R_FRAG_START, u, key, source, r);
    r.varint(value.length);
    const room = Math.max(this.frameSize - (r.len + 10), 1);
    const first = Math.min(room, value.length);
    r.varint(first);
    r.bytes(value.subarray(0, first));
    this.cur.bytes(r.buf.subarray(0, r.len));
    this.finishChunk();
    let off = first;
    while (off < value.length) {
      const n = Math.min(this.frameSize - 12, value.length - off);
      const m = new Bytes(n + 12);
      m.byte(R_FRAG_MORE);
      m.varint(n);
      m.bytes(value.subarray(off, off + n));
      this.cur.bytes(m.buf.subarray(0, m.len));
      this.finishChunk();
      off += n;
    }
    this.onWrite();
  }
}

function checkSource(s) {
  if (!validSource(s)) throw bad('invalid source id');
  return s;
}

function checkTs(t) {
  if (!(Number.isFinite(t) && t > 0)) throw bad('timestamp is not a finite positive number');
  return t;
}

function controlMessage(text) {
  if (text === 'SYNC') return { type: 'sync' };
  if (text === 'PING') return { type: 'ping' };
  if (text === 'PONG') return { type: 'pong' };
  return { type: 'control', text };
}

/**
 * Postcard frames from a data channel into messages, as core's `Decoder` reads them:
 * `push(frame)` returns the frame's messages (the shapes `decodeLine` gives, plus
 * `{type: 'history_size', n}`), or throws a MeshError and yields none of them. A large
 * value's fragments may span frames; nothing else may come between them.
 */
export class PostcardDecoder {
  constructor() {
    this.frag = null;
    this.digestParts = null;
  }

  push(frame) {
    if (frame.length > MAX_FRAME_LEN) throw bad(`frame of ${frame.length} bytes exceeds the limit`);
    try {
      return this.frame(frame);
    } catch (e) {
      this.frag = null;
      this.digestParts = null;
      throw e instanceof MeshError ? e : bad(String(e && e.message));
    }
  }

  frame(frame) {
    const out = [];
    const r = new Reader(frame);
    const sources = [];
    let prevKey = new Uint8Array(0);
    let prevText = '';
    let prevAscii = true;
    let prevHi = 0;
    let prevLo = 0;
    const header = () => {
      const i = r.varint();
      let source;
      if (i < sources.length) source = sources[i];
      else if (i === sources.length) {
        source = checkSource(r.str());
        sources.push(source);
      } else throw bad('source index out of range');
      const p = r.varint();
      const suffix = r.strBytes();
      if (p > prevKey.length || (p < prevKey.length && (prevKey[p] & 0xc0) === 0x80)) throw bad('key prefix out of range');
      if (p + suffix.length > LIMITS.maxKeyLen) throw bad(`key of ${p + suffix.length} bytes exceeds the limit`);
      const key = new Uint8Array(p + suffix.length);
      key.set(prevKey.subarray(0, p));
      key.set(suffix, p);
      let suffixAscii = suffix.length <= SHORT;
      for (let i = 0; suffixAscii && i < suffix.length; i++) suffixAscii = suffix[i] < 0x80;
      let keyText;
      if (prevAscii && suffixAscii) keyText = prevText.slice(0, p) + String.fromCharCode.apply(null, suffix);
      else {
        try {
          keyText = strict.decode(key);
        } catch {
          throw bad('invalid utf-8');
        }
      }
      prevKey = key;
      prevText = keyText;
      prevAscii = keyText.length === key.length;
      // The timestamp's bits: the previous ones plus the zigzag-decoded difference.
      const [zhi, zlo] = r.varint64();
      let dlo = ((zlo >>> 1) | ((zhi & 1) << 31)) >>> 0;
      let dhi = zhi >>> 1;
      if (zlo & 1) {
        dlo = ~dlo >>> 0;
        dhi = ~dhi >>> 0;
      }
      let lo = prevLo + dlo;
      let carry = 0;
      if (lo >= TWO32) {
        lo -= TWO32;
        carry = 1;
      }
      prevHi = (prevHi + dhi + carry) >>> 0;
      prevLo = lo;
      u32[0] = prevLo;
      u32[1] = prevHi;
      const ts = checkTs(f64[0]);
      return { key: keyText, ts, source };
    };
    while (!r.empty()) {
      const tag = r.u8();
      if (this.frag && tag !== R_FRAG_MORE) throw bad('bad fragment: record between fragments');
      if (this.digestParts && tag !== R_DIGEST) {
        this.digestParts = null;
        throw bad('record between digest parts');
      }
      switch (tag) {
        case R_DIGEST: {
          const id = checkSource(r.str());
          const n = r.count();
          if (!this.digestParts) this.digestParts = { id, entries: [] };
          const parts = this.digestParts;
          if (parts.entries.length + n > LIMITS.maxClockEntries) {
            this.digestParts = null;
            throw bad('clock too large');
          }
          for (let i = 0; i < n; i++) {
            const s = checkSource(r.str());
            parts.entries.push([s, checkTs(r.f64())]);
          }
          const more = r.u8();
          if (parts.id !== id) {
            this.digestParts = null;
            throw bad('digest parts from two ids');
          }
          if (more === 0) {
            this.digestParts = null;
            out.push({ type: 'digest', id, clock: new Map(parts.entries) });
          } else if (more !== 1) throw bad('bad digest flag');
          break;
        }
        case R_SYNC:
          out.push({ type: 'sync' });
          break;
        case R_PING:
          out.push({ type: 'ping' });
          break;
        case R_PONG:
          out.push({ type: 'pong' });
          break;
        case R_CONTROL:
          out.push(controlMessage(r.str()));
          break;
        case R_HISTORY_SIZE:
          out.push({ type: 'history_size', n: r.varint() });
          break;
        case R_UPDATE:
        case R_SIGNED_UPDATE: {
          const h = header();
          const sig = tag === R_SIGNED_UPDATE ? r.bytes(64).slice() : undefined;
          const v = takeValue(r);
          const m = { type: 'update', key: h.key, value: v.value, json: v.json, ts: h.ts, source: h.source };
          if (sig) m.sig = sig;
          out.push(m);
          break;
        }
        case R_FRAG_START:
        case R_SIGNED_FRAG_START: {
          const h = header();
          if (tag === R_SIGNED_FRAG_START) h.sig = r.bytes(64).slice();
          const total = r.varint();
          const n = r.count();
          const piece = r.bytes(n);
          if (n > total) throw bad('bad fragment: piece longer than total');
          const discard = total > LIMITS.maxValueLen;
          this.frag = { ...h, total: discard ? total - n : total, parts: discard ? [] : [piece.slice()], have: discard ? 0 : n, discard };
          this.fragmentDone(out);
          break;
        }
        case R_FRAG_MORE: {
          const n = r.count();
          const piece = r.bytes(n);
          const f = this.frag;
          if (!f) throw bad('bad fragment: piece without a start');
          if (f.discard) {
            if (n > f.total) throw bad('bad fragment: piece longer than total');
            f.total -= n;
          } else {
            if (f.have + n > f.total) throw bad('bad fragment: piece longer than total');
            f.parts.push(piece.slice());
            f.have += n;
          }
          this.fragmentDone(out);
          break;
        }
        default:
          throw bad('malformed frame: unknown record');
      }
    }
    return out;
  }

  fragmentDone(out) {
    const f = this.frag;
    if (f.discard) {
      if (f.total === 0) {
        this.frag = null;
        throw bad('value too large', 'value_too_large');
      }
      return;
    }
    if (f.have < f.total) return;
    this.frag = null;
    const bytes = new Uint8Array(f.total);
    let off = 0;
    for (const p of f.parts) {
      bytes.set(p, off);
      off += p.length;
    }
    const v = decodeValue(bytes);
    const m = { type: 'update', key: f.key, value: v.value, json: v.json, bytes, ts: f.ts, source: f.source };
    if (f.sig) m.sig = f.sig;
    out.push(m);
  }
}
