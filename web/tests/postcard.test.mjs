// The browser client's postcard codec against core's own vectors
// (core/tests/vectors/postcard.json, written by core/tests/postcard_vectors.rs): the same
// value bytes, the same frames for the same messages (and frame size), the messages back
// from those frames, and every frame core refuses refused here too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { PostcardEncoder, PostcardDecoder, encodeValue, decodeValue, MeshError } from '../mesh.js';

const vectors = JSON.parse(readFileSync(new URL('../../core/tests/vectors/postcard.json', import.meta.url), 'utf8'));
const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'));

/** A vector's message as the client's codecs write and read it. */
function message(m) {
  switch (m.type) {
    case 'digest':
      return { type: 'digest', id: m.id, clock: new Map(m.clock) };
    case 'update': {
      const u = { type: 'update', key: m.key, value: JSON.parse(m.json), json: m.json, ts: m.ts, source: m.source };
      if (m.sig) u.sig = unhex(m.sig);
      return u;
    }
    default:
      return m;
  }
}

function encode(enc, m) {
  switch (m.type) {
    case 'digest': return enc.digest(m.id, m.clock);
    case 'update': return enc.update(m);
    case 'sync': return enc.control('SYNC');
    case 'ping': return enc.control('PING');
    case 'pong': return enc.control('PONG');
    case 'control': return enc.control(m.text);
    case 'history_size': return enc.historySize(m.n);
  }
  throw new Error(`no such message ${m.type}`);
}

test('values encode to core bytes and decode back to the same JSON', () => {
  assert.ok(vectors.values.length >= 30);
  for (const v of vectors.values) {
    const value = JSON.parse(v.json);
    assert.equal(hex(encodeValue(value)), v.bytes, v.json);
    const back = decodeValue(unhex(v.bytes));
    assert.equal(back.json, v.json);
  }
});

test('messages become the frames core cuts, and the frames the messages', () => {
  for (const seq of vectors.sequences) {
    const msgs = seq.messages.map(message);
    const enc = new PostcardEncoder(seq.frame_size);
    for (const m of msgs) encode(enc, m);
    const frames = [];
    for (let f = enc.poll(); f !== null; f = enc.poll()) frames.push(hex(f));
    assert.deepEqual(frames, seq.frames, seq.name);
    const dec = new PostcardDecoder();
    const got = seq.frames.flatMap((f) => dec.push(unhex(f)));
    const strip = (m) => {
      const { bytes, ...rest } = m;
      return rest;
    };
    assert.deepEqual(got.map(strip), msgs.map(strip), seq.name);
  }
});

test('every frame core refuses is refused, and the link goes on', () => {
  assert.ok(vectors.bad.length >= 14);
  for (const b of vectors.bad) {
    const dec = new PostcardDecoder();
    assert.deepEqual(dec.push(unhex('0203')), [{ type: 'sync' }, { type: 'ping' }]);
    assert.throws(() => dec.push(unhex(b.frame)), MeshError, `${b.why} (core: ${b.error})`);
    assert.deepEqual(dec.push(unhex('04')), [{ type: 'pong' }], `after ${b.why}`);
  }
});

test('random bytes never throw anything but a MeshError', () => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  for (let i = 0; i < 20000; i++) {
    const n = 1 + (rnd() % 40);
    const b = new Uint8Array(n);
    for (let j = 0; j < n; j++) b[j] = rnd() < 40 ? rnd() % 10 : rnd();
    const dec = new PostcardDecoder();
    try {
      dec.push(b);
    } catch (e) {
      assert.ok(e instanceof MeshError, `${hex(b)}: ${e}`);
    }
  }
});

test('values up to the maximum cross in fragments of full frames', () => {
  for (const size of [16 * 1024, 300000, (1 << 20) - 10]) {
    const value = 'x'.repeat(size - 2);
    const enc = new PostcardEncoder();
    enc.update({ key: 'big', value, ts: 1795713876272.5, source: 'native.0123456789abcdef' });
    enc.control('SYNC');
    const dec = new PostcardDecoder();
    const got = [];
    for (let f = enc.poll(); f !== null; f = enc.poll()) got.push(...dec.push(f));
    assert.equal(got.length, 2, `${size}`);
    assert.equal(got[0].value.length, size - 2);
    assert.equal(got[0].json, JSON.stringify(value));
  }
});
