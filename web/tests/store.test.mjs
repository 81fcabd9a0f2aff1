// The browser client's store, codec and sessions, in Node: the same encoding vectors the
// Rust implementation passes (core/tests/vectors/json.json), and the Conventions' rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  Store, Replica, parseJson, toJson, decodeLine, encodeUpdate, encodeDigest, nextUp,
  compareBytes, parseSignal, encodeSignal, LineDecoder, MeshError, LIMITS,
} from '../mesh.js';

const vectors = JSON.parse(
  readFileSync(fileURLToPath(new URL('../../core/tests/vectors/json.json', import.meta.url)), 'utf8'),
);

const withNewline = (l) => (l.endsWith('\n') ? l : `${l}\n`);

test('values are written as JSON.stringify writes them', () => {
  assert.ok(vectors.values.length >= 20);
  for (const c of vectors.values) assert.equal(toJson(parseJson(c.input)), c.output, c.input);
});

test('invalid JSON, non-finite numbers and lone surrogates are rejected', () => {
  for (const c of vectors.errors) {
    assert.throws(() => parseJson(c.input), MeshError, JSON.stringify(c.input));
  }
});

test('numbers parse to the same bits and are written as JavaScript writes them', () => {
  assert.ok(vectors.numbers.length >= 300);
  const f = new Float64Array(1);
  const u = new BigUint64Array(f.buffer);
  for (const c of vectors.numbers) {
    const n = parseJson(c.input);
    assert.equal(typeof n, 'number');
    if (c.bits) {
      f[0] = n;
      assert.equal(u[0].toString(16).padStart(16, '0'), c.bits, c.input);
    }
    assert.equal(toJson(n), c.stringify, c.input);
  }
});

test('updates decode and re-encode byte for byte', () => {
  for (const c of vectors.updates) {
    const line = withNewline(c.line);
    const m = decodeLine(line.slice(0, -1));
    assert.equal(m.type, 'update');
    assert.equal(m.key, c.key);
    assert.equal(m.source, c.source);
    assert.equal(m.ts, c.ts);
    assert.deepEqual(m.value, c.value);
    assert.equal(encodeUpdate(m), line);
  }
});

test('digests decode and re-encode byte for byte', () => {
  for (const c of vectors.digests) {
    const line = withNewline(c.line);
    const m = decodeLine(line.slice(0, -1));
    assert.equal(m.type, 'digest');
    assert.equal(m.id, c.id);
    assert.deepEqual(Object.fromEntries(m.clock), c.clock);
    assert.equal(encodeDigest(m.id, m.clock), line);
  }
  for (const c of vectors.digests_meta) assert.equal(decodeLine(c.line.trimEnd()).id, c.id);
});

test('a captured scuttlebutt transcript re-encodes byte for byte', () => {
  for (const c of vectors.transcript) {
    const lines = c.chunk.split('\n').filter((l) => l);
    const again = lines
      .map((l) => {
        const m = decodeLine(l);
        if (m.type === 'update') return encodeUpdate(m);
        if (m.type === 'digest') return encodeDigest(m.id, m.clock);
        return `${JSON.stringify(m.type === 'control' ? m.text : m.type.toUpperCase())}\n`;
      })
      .join('');
    assert.equal(again, c.chunk);
  }
});

test('local timestamps: wall clock, never backwards, next_up on ties', () => {
  let wall = 1000.7;
  const s = new Store('a', { now: () => wall });
  assert.equal(s.set('k', 1).ts, 1000);
  assert.equal(s.set('k', 2).ts, nextUp(1000));
  wall = 900;
  assert.ok(s.set('k', 3).ts > nextUp(1000));
  // A remote ts seen moves the clock forward (within the allowed skew).
  s.apply({ key: 'x', value: 1, json: '1', ts: 5000, source: 'b' });
  assert.equal(s.set('k', 4).ts, 5000);
  assert.equal(s.set('k', 5).ts, nextUp(5000));
  // Far in the future: applied, but the local clock does not jump.
  assert.equal(s.apply({ key: 'y', value: 1, json: '1', ts: 1e12, source: 'c' }), 'applied');
  assert.equal(s.stats.skewed, 1);
  assert.ok(s.set('k', 6).ts < 6000);
});

test('the larger (ts, source bytewise) wins; stale and invalid updates are refused', () => {
  const s = new Store('me', { now: () => 1 });
  const u = (key, json, ts, source) => ({ key, value: JSON.parse(json), json, ts, source });
  assert.equal(s.apply(u('k', '"b"', 10, 'b')), 'applied');
  assert.equal(s.apply(u('k', '"a"', 10, 'a')), 'superseded');
  assert.equal(s.apply(u('k', '"c"', 10, 'c')), 'applied');
  assert.equal(s.get('k'), 'c');
  assert.equal(s.apply(u('z', '1', 10, 'c')), 'stale', 'not above its source clock');
  assert.equal(s.apply(u('k', '1', 0, 'd')), 'rejected');
  assert.equal(s.apply(u('__proto__', '1', 11, 'd')), 'rejected');
  // Bytewise: U+FFFD sorts before U+1F600 in UTF-8, not in UTF-16 units.
  assert.ok(compareBytes('\uFFFD', '\u{1F600}') < 0);
  // Tombstones: left out of keys and snapshots, and they win like any write.
  assert.equal(s.apply(u('k', 'null', 11, 'e')), 'applied');
  assert.equal(s.get('k'), undefined);
  assert.deepEqual(s.keys(), []);
});

test('bad writes are clear errors and change nothing', () => {
  const s = new Store('me');
  assert.throws(() => s.set('k', 'x'.repeat(LIMITS.maxValueLen)), { code: 'value_too_large' });
  assert.throws(() => s.set('x'.repeat(5000), 1), { code: 'key_too_long' });
  assert.throws(() => s.set('k', NaN), { code: 'bad_value' });
  assert.throws(() => s.set('k', '\ud800'), { code: 'bad_value' });
  assert.deepEqual(s.keys(), []);
});

/** Links two replicas in memory; returns a pump that moves lines until quiet. */
function link(a, b, counts) {
  const qa = [];
  const qb = [];
  const la = a.openLink((l) => qa.push(l));
  const lb = b.openLink((l) => qb.push(l));
  return () => {
    let moved = false;
    while (qa.length || qb.length) {
      moved = true;
      for (const l of qa.splice(0)) {
        if (l.startsWith('[[')) counts.set(a, (counts.get(a) || 0) + 1);
        b.handleLine(lb, l.trimEnd(), 0);
      }
      for (const l of qb.splice(0)) {
        if (l.startsWith('[[')) counts.set(b, (counts.get(b) || 0) + 1);
        a.handleLine(la, l.trimEnd(), 0);
      }
    }
    return moved;
  };
}

test('a full mesh of replicas converges at N-1 messages per write, with no echo', () => {
  const n = 5;
  const reps = Array.from({ length: n }, (_, i) => new Replica(new Store(`p${i}`)));
  const counts = new Map();
  const pumps = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) pumps.push(link(reps[i], reps[j], counts));
  const settle = () => {
    while (pumps.map((p) => p()).some((x) => x));
  };
  settle();
  reps.forEach((r) => r.reportLinks(true));
  settle();
  counts.clear();
  reps.forEach((r, i) => r.set(`k${i}`, { i }));
  settle();
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  assert.equal(total, n * (n - 1));
  for (const r of reps) assert.deepEqual(r.store.snapshot(), reps[0].store.snapshot());
  assert.equal(reps[0].store.keys().length, n);
});

test('signalling messages parse and encode as rtc-signaller 6.x', () => {
  const t = encodeSignal('mesh:sdp', 'a', [{ type: 'offer', sdp: 'x|y' }], 'b');
  assert.equal(t, '/to|b|/mesh:sdp|a|{"type":"offer","sdp":"x\\u007cy"}');
  const m = parseSignal(t);
  assert.deepEqual(m, { to: 'b', command: 'mesh:sdp', sender: 'a', args: [{ type: 'offer', sdp: 'x|y' }] });
  assert.deepEqual(parseSignal('/roominfo|{"memberCount":2}').args, [{ memberCount: 2 }]);
  // An original client's raw pipe inside JSON is re-joined.
  assert.deepEqual(parseSignal('/chat|a|{"t":"x|y"}').args, [{ t: 'x|y' }]);
  assert.equal(parseSignal('no slash'), null);
});

test('lines may span messages; the partial tail is bounded', () => {
  const d = new LineDecoder();
  assert.deepEqual(d.push('"PI'), []);
  assert.deepEqual(d.push('NG"\n"SY'), ['"PING"']);
  assert.deepEqual(d.push(new TextEncoder().encode('NC"\n')), ['"SYNC"']);
  assert.throws(() => d.push('x'.repeat(LIMITS.maxValueLen + 70000)), { code: 'line_too_long' });
});
