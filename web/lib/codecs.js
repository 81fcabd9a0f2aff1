// The json codec (scuttlebutt's JSON lines): core's `wire::json`.

import { LIMITS, MAX_LINE_LEN, MeshError, checkValue, parseJson, plainObject, toJson, trimTaken } from './values.js';
import { b64url, fromB64url } from './security.js';

/** `JSON.stringify([[key, value], ts, source])` of an update: its json line without the
 * signature, and the signed text of core's `security::updates::signing_input`. */
export function updateText(u) {
  return `[[${JSON.stringify(u.key)},${u.json}],${JSON.stringify(u.ts)},${JSON.stringify(u.source)}]`;
}

/** The line of an update: `[[key,value],ts,source]` (and, signed, the signature as a
 * fourth element, base64url) and a newline. */
export function encodeUpdate(u) {
  const t = updateText(u);
  return u.sig ? `${t.slice(0, -1)},"${b64url(u.sig)}"]\n` : `${t}\n`;
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
      // The line was checked whole; an object or array also within the value's depth.
      if (value !== null && typeof value === 'object') checkValue(value);
      const m = { type: 'update', key: kv[0], value, json: toJson(value), ts, source };
      // A signature: base64url of 64 bytes as the fourth element; anything else there is
      // ignored (a secured store refuses the update as unsigned).
      if (typeof v[3] === 'string' && v[3].length === 86) {
        const sig = fromB64url(v[3]);
        if (sig && sig.length === 64) m.sig = sig;
      }
      return m;
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

/** Text messages on a data channel carry at most this much (a longer line is split). */
export const CHUNK = 16 * 1024;

/** Splits text into pieces of at most `max` UTF-16 units, never inside a surrogate pair. */
export function chunks(text, max) {
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

/** The json codec's messages, each line handed to `send` as it is made. */
export class LineWriter {
  constructor(send) {
    this.codec = 'json';
    this.send = send;
  }

  digest(id, clock) {
    this.send(encodeDigest(id, clock));
  }

  update(u) {
    this.send(encodeUpdate(u));
  }

  control(text) {
    this.send(encodeControl(text));
  }
}

/**
 * The json codec's messages for a data channel: lines queued, then `poll()` gives text
 * messages of at most CHUNK (lines batched; one longer line in pieces) until null.
 */
export class JsonEncoder extends LineWriter {
  constructor() {
    super((line) => {
      this.lines.push(line);
      this.onWrite();
    });
    /** Called after each message is encoded (a driver schedules its flush). */
    this.onWrite = () => {};
    this.lines = [];
    this.head = 0;
    this.pieces = [];
  }

  pending() {
    return this.head < this.lines.length || this.pieces.length > 0;
  }

  poll() {
    if (this.pieces.length) return this.pieces.shift();
    const q = this.lines;
    if (this.head >= q.length) {
      q.length = 0;
      this.head = 0;
      return null;
    }
    if (q[this.head].length > CHUNK) {
      this.pieces = chunks(q[this.head++], CHUNK);
      return this.pieces.shift();
    }
    let msg = '';
    while (this.head < q.length && msg.length + q[this.head].length <= CHUNK) msg += q[this.head++];
    this.head = trimTaken(q, this.head);
    return msg;
  }
}
