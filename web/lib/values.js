// Values and their rules: bounds, errors, JSON text as the Conventions write it,
// byte order, ids. Mirrors core's `value` and `limits`.

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
export function plainObject(entries) {
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

/**
 * A queue consumed from `head` (shifting a long array costs its length): emptied once
 * all is taken, or its taken front dropped once that is long. Returns the new head.
 */
export function trimTaken(q, head) {
  if (head === q.length) {
    q.length = 0;
    return 0;
  }
  if (head > 4096) {
    q.splice(0, head);
    return 0;
  }
  return head;
}
