// Durable pages without a browser: the records a durable store hands its storage
// (lib/persist.js), read back into a store equal to it after every batch, checked
// (bounded, bad rows named, repair); and a durable Member over a storage in memory that
// stands in for IndexedDB (the browser test runs the real one), in the fake world of
// fakes.mjs: nothing goes out before its change is stored, a write's promise resolves
// only then, a restarted member has its data at once and is sent only what it lacks,
// and a failed write stops the member with nothing acknowledged lost.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Identity, Journal, Member, Store, Xorshift, b64url, checkRecords, deriveRoomKey, generateSecret, join } from '../mesh.js';
import { Switchboard, freshWorld, installFakes, next, useBoard } from './fakes.mjs';

installFakes();

/** A storage in memory with IndexedDB's semantics: one row per key and per source, a
 * batch all or nothing. With `manual`, each write waits for `release()`. */
class MemoryStorage {
  constructor(manual = false) {
    this.entries = new Map();
    this.clocks = new Map();
    this.meta = new Map();
    this.manual = manual;
    this.waiting = [];
    this.writes = 0;
    this.fail = null;
    this.closed = false;
  }

  write(batch) {
    return new Promise((resolve, reject) => {
      const commit = () => {
        if (this.fail) {
          reject(this.fail);
          return;
        }
        for (const e of batch.entries) this.entries.set(e.key, structuredClone(e));
        for (const c of batch.clocks) this.clocks.set(c.source, c.ts);
        this.writes++;
        resolve();
      };
      if (this.manual) this.waiting.push(commit);
      else setTimeout(commit, 0);
    });
  }

  /** Commits the writes waiting. */
  release() {
    for (const c of this.waiting.splice(0)) c();
  }

  setMeta(key, value) {
    this.meta.set(key, value);
    return Promise.resolve();
  }

  close() {
    this.closed = true;
  }

  /** What IndexedDB would read back. */
  rows() {
    return {
      entries: [...this.entries.values()].map((e) => structuredClone(e)),
      clocks: [...this.clocks].map(([source, ts]) => ({ source, ts })),
    };
  }
}

function sameStore(a, b) {
  const strip = (s) => [...s.entries.values()].map((e) => [e.key, e.json, e.ts, e.source]).sort();
  assert.deepEqual(strip(a), strip(b));
  const clocks = (s) => [...s.clock].sort();
  assert.deepEqual(clocks(a), clocks(b));
}

test('a durable store read back after any batch is the store as it was then', () => {
  const x = new Xorshift(7n);
  const rng = { below: (n) => Number(x.next() % BigInt(n)) };
  let t = 1000;
  const store = new Store('w.1', { now: () => t });
  store.persist();
  const db = new MemoryStorage();
  const others = ['a.1', 'b.2', 'c.3'];
  const clocks = new Map();
  for (let round = 0; round < 60; round++) {
    for (let i = 0; i < 1 + rng.below(8); i++) {
      t += rng.below(3);
      const key = `k${rng.below(20)}`;
      if (rng.below(3) === 0) {
        store.set(key, rng.below(4) === 0 ? null : { round, i });
      } else {
        const source = others[rng.below(others.length)];
        const ts = (clocks.get(source) ?? 900) + 1 + rng.below(60);
        clocks.set(source, ts);
        // Some lose to what the key holds (superseded), and still move the clock.
        store.apply({ key, value: round, json: String(round), ts, source });
      }
    }
    const batch = store.journal.take();
    if (!batch) continue;
    for (const e of batch.entries) db.entries.set(e.key, e);
    for (const c of batch.clocks) db.clocks.set(c.source, c.ts);
    const back = new Store('w.2', { now: () => t });
    back.restore(checkRecords(db.rows(), 'test'));
    // Our own earlier writes are another source's now (w.2 writes anew).
    sameStore(store, back);
    assert.deepEqual(back.snapshot(), store.snapshot());
    // New writes go on above everything restored.
    assert.ok(back.nextTs() > Math.max(...[...store.clock.values()]) - 1);
  }
});

test('rows read back are checked: a bad one is named, repair drops it and the clocks', () => {
  const good = { key: 'a', json: '{"x":1}', ts: 5, source: 's.1' };
  const rows = (entries, clocks = [{ source: 's.1', ts: 5 }]) => ({ entries, clocks });
  const ok = checkRecords(rows([good]), 'db');
  assert.deepEqual(ok.entries[0].value, { x: 1 });
  assert.equal(ok.clocks.get('s.1'), 5);
  // A removal's voided entry: ts 0, no value.
  assert.equal(checkRecords(rows([{ key: 'v', json: 'null', ts: 0, source: 's.1' }]), 'db').entries.length, 1);
  const bad = [
    [{ ...good, key: 7 }, /entries row 1: not a key/],
    [{ ...good, key: 'x'.repeat(5000) }, /not a key/],
    [{ ...good, json: '{"x":' }, /its value/],
    [{ ...good, json: '['.repeat(200) + ']'.repeat(200) }, /its value/],
    [{ ...good, ts: Number.NaN }, /not a timestamp/],
    [{ ...good, ts: 0 }, /voided entry with a value/],
    [{ ...good, source: '' }, /not a source id/],
    [{ ...good, sig: new Uint8Array(3) }, /not a signature/],
    [null, /not a record/],
  ];
  for (const [row, why] of bad) {
    assert.throws(() => checkRecords(rows([good, row]), 'IndexedDB database "x"'), (e) => {
      assert.equal(e.code, 'bad_data');
      assert.match(e.message, /^IndexedDB database "x": /);
      assert.match(e.message, why);
      return true;
    });
    const r = checkRecords(rows([good, row]), 'db', true);
    assert.equal(r.dropped, 1);
    assert.equal(r.entries.length, 1);
    // The room sends everything again: no clock claims what was lost.
    assert.equal(r.clocks.size, 0);
  }
  assert.throws(() => checkRecords(rows([good], [{ source: 's.1', ts: -1 }]), 'db'), /clocks row 0/);
  assert.throws(() => checkRecords(rows([{ ...good, ts: 9 }]), 'db'), /later than its source's clock/);
});

test('a batch holds the latest change of each key once; sequence numbers and awaiting', () => {
  const j = new Journal();
  assert.equal(j.take(), null);
  assert.equal(j.awaiting(), false);
  j.entry({ key: 'a', json: '1', ts: 1, source: 's' });
  j.entry({ key: 'a', json: '2', ts: 2, source: 's' });
  j.clock('s', 2);
  assert.equal(j.pendingSeq(), 1);
  const b = j.take();
  assert.deepEqual(b, { seq: 1, entries: [{ key: 'a', json: '2', ts: 2, source: 's' }], clocks: [{ source: 's', ts: 2 }] });
  assert.equal(j.awaiting(), true, 'taken, not yet stored');
  j.persisted(1);
  assert.equal(j.awaiting(), false);
});

test('an output waits for the batches made before it, and for the writes being signed then', () => {
  const j = new Journal();
  assert.deepEqual(j.markNow(), { seq: 0, signed: 0 });
  assert.ok(j.released(j.markNow()), 'nothing made: nothing to wait for');
  j.entry({ key: 'a', json: '1', ts: 1, source: 's' });
  const first = j.markNow();
  assert.equal(first.seq, 1, 'the change waiting goes in batch 1');
  assert.equal(j.take().seq, 1);
  assert.equal(j.markNow().seq, 1, 'taken, not yet stored');
  j.entry({ key: 'b', json: '2', ts: 2, source: 's' });
  const second = j.markNow();
  assert.equal(second.seq, 2);
  j.persisted(1);
  assert.ok(j.released(first), 'its batch is stored');
  assert.ok(!j.released(second), 'batch 2 is not');
  // A write being signed: recorded once signed, in the batch waiting then.
  j.signStarted();
  const signing = j.markNow();
  assert.deepEqual(signing, { seq: 2, signed: 1 });
  assert.equal(j.take().seq, 2);
  j.persisted(2);
  assert.ok(!j.released(signing), 'the write is not signed yet');
  j.entry({ key: 'c', json: '3', ts: 3, source: 's' });
  j.signFinished();
  assert.equal(j.signing, 0);
  assert.ok(!j.released(signing), 'signed into batch 3, not stored');
  assert.equal(j.take().seq, 3);
  j.persisted(3);
  assert.ok(j.released(signing));
});

/** The switchboard of the running test. */
let board = useBoard(new Switchboard());
let made = [];

function fresh(t) {
  ({ board, made } = freshWorld(t));
}

function member(id, options = {}) {
  const m = new Member('room', { id, signal: 'ws://fake/', ...options });
  m.mesh.start(performance.now());
  m.pump();
  made.push(m);
  return m;
}

/** A durable member over `storage`, restored from what it holds. */
function durable(id, storage, options = {}) {
  return member(id, { storage, records: checkRecords(storage.rows(), 'memory'), ...options });
}

async function until(what, f) {
  for (let i = 0; i < 2000 && !f(); i++) await new Promise((r) => setTimeout(r, 1));
  assert.ok(f(), what);
}

/** A durable member over a storage whose writes wait for `release()`, linked to a
 * plain one; and the keys of the durable one's `update` events, as they come. */
async function durablePair(t) {
  fresh(t);
  const disk = new MemoryStorage(true);
  const a = durable('alpha', disk);
  const b = member('omega');
  // The announce and the link wait for nothing: no change is waiting.
  await Promise.all([next(a, 'synced'), next(b, 'synced')]);
  const local = [];
  a.on('update', (u) => local.push(u.key));
  return { disk, a, b, local };
}

test('a durable member sends nothing, and reports nothing, before its write is stored', async (t) => {
  const { disk, a, b, local } = await durablePair(t);
  let acked = false;
  const p = a.set('k', 'v').then(() => {
    acked = true;
  });
  // Deliveries in the fake world are on later tasks: give them many.
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 1));
  assert.equal(b.get('k'), undefined, 'the peer has a write the storage lacks');
  assert.deepEqual(local, [], 'the update event came before the write was stored');
  assert.equal(acked, false);
  assert.equal(disk.waiting.length, 1);
  disk.release();
  await p;
  assert.deepEqual(local, ['k']);
  assert.equal(disk.entries.get('k').json, '"v"');
  await until('the peer has the write', () => b.get('k') === 'v');
  // Writes made while one is stored go together in the next batch (group commit).
  const writes = disk.writes;
  const all = [];
  for (let i = 0; i < 50; i++) all.push(a.set(`g${i}`, i));
  await until('a write waits', () => disk.waiting.length === 1);
  disk.release();
  await until('the second batch waits', () => disk.waiting.length === 1);
  disk.release();
  await Promise.all(all);
  assert.ok(disk.writes - writes <= 2, `${disk.writes - writes} writes for 50 sets`);
  await until('the peer has them all', () => b.get('g49') === 49);
});

test('writes that keep coming hold back nothing longer than its own batch takes', async (t) => {
  const { disk, a, b, local } = await durablePair(t);
  // Each write is made while the one before is being stored: the storage is never idle.
  let acked = a.set('k0', 0);
  for (let i = 1; i <= 5; i++) {
    await until(`batch ${i} waits`, () => disk.waiting.length === 1);
    const p = a.set(`k${i}`, i);
    disk.release();
    await acked;
    await until(`the peer has k${i - 1} while k${i} is being stored`, () => b.get(`k${i - 1}`) === i - 1);
    assert.equal(b.get(`k${i}`), undefined, `k${i} went out before it was stored`);
    assert.deepEqual(local, Array.from({ length: i }, (_, n) => `k${n}`));
    acked = p;
  }
  await until('the last batch waits', () => disk.waiting.length === 1);
  disk.release();
  await acked;
  await until('the peer has the last', () => b.get('k5') === 5);
});

test('a restarted durable member has its data at once and is sent only what it lacks', async (t) => {
  fresh(t);
  const disk = new MemoryStorage();
  const a = durable('alpha', disk);
  const b = member('omega');
  await Promise.all([next(a, 'synced'), next(b, 'synced')]);
  const writes = [];
  for (let i = 0; i < 200; i++) writes.push(a.set(`a${i}`, { i, pad: 'x'.repeat(50) }));
  for (let i = 0; i < 200; i++) b.set(`b${i}`, { i, pad: 'y'.repeat(50) });
  await Promise.all(writes);
  await until('both have 400 keys', () => a.keys().length === 400 && b.keys().length === 400);
  await until('all stored', () => !a.mesh.store.journal.awaiting());
  const full = a.mesh.sessionOf('omega').stats.bytesIn;
  const before = a.snapshot();
  await a.close();
  assert.ok(disk.closed, 'the database is let go on close');
  // While it is away, 2 of omega's keys change.
  b.set('b1', 'changed');
  b.set('b2', 'changed');
  const a2 = durable('alpha', disk);
  // At once, before any peer: the room's data.
  assert.deepEqual(a2.snapshot(), before);
  assert.notEqual(a2.mesh.store.id, a.mesh.store.id, 'a new source id at each start');
  await next(a2, 'synced');
  await until('the change arrived', () => a2.get('b2') === 'changed');
  const s = a2.mesh.sessionOf('omega').stats;
  assert.equal(s.updatesIn, 2, 'only what changed is sent');
  assert.ok(s.bytesIn < full / 20, `rejoin ${s.bytesIn} bytes, full ${full}`);
  assert.equal(b.mesh.sessionOf('alpha').stats.updatesIn, 0, 'omega is sent nothing it holds');
  // A write after the restart wins over the restored one of the same key.
  await a2.set('a1', 'new');
  await until('omega has it', () => b.get('a1') === 'new');
});

test('a failed write stops the member: nothing unstored goes out, the write rejects', async (t) => {
  fresh(t);
  const disk = new MemoryStorage(true);
  const a = durable('alpha', disk);
  const b = member('omega');
  await Promise.all([next(a, 'synced'), next(b, 'synced')]);
  const p1 = a.set('ok', 1);
  disk.release();
  await p1;
  const errors = [];
  a.on('error', (e) => errors.push(e));
  const p2 = a.set('lost', 2);
  disk.fail = new Error('QuotaExceededError');
  disk.release();
  await assert.rejects(p2, (e) => e.message.includes('QuotaExceededError'));
  assert.equal(errors.length, 1);
  assert.equal(a.failure, errors[0]);
  assert.throws(() => a.set('after', 3), (e) => e === a.failure);
  assert.ok(disk.closed);
  await a.close();
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 1));
  assert.equal(b.get('ok'), 1, 'the stored write was sent');
  assert.equal(b.get('lost'), undefined, 'the unstored one never went out');
});

test('memory durability stores in the background and acknowledges at once', async (t) => {
  fresh(t);
  const disk = new MemoryStorage(true);
  const a = durable('alpha', disk, { durability: 'memory' });
  let acked = false;
  a.set('k', 1).then(() => {
    acked = true;
  });
  await new Promise((r) => setTimeout(r, 1));
  assert.equal(acked, true);
  disk.release();
  assert.equal(disk.entries.get('k').json, '1');
  assert.throws(() => member('beta', { storage: disk, durability: 'disk' }), /durability is one of/);
});

test('a durable member of a secured room stores its writes signed, and restarts with them', async (t) => {
  fresh(t);
  const key = await deriveRoomKey('room', generateSecret());
  const [ia, ib] = [await Identity.generate(), await Identity.generate()];
  const secured = (identity, more = {}) => member(identity.peerId, { security: { key, identity }, ...more });
  const disk = new MemoryStorage(true);
  const a = secured(ia, { storage: disk, records: checkRecords(disk.rows(), 'memory') });
  const b = secured(ib);
  await Promise.all([next(a, 'synced'), next(b, 'synced')]);
  const own = `users/${ia.peerId}/note`;
  let acked = false;
  const p = a.set(own, 'signed').then(() => {
    acked = true;
  });
  // Signed first (WebCrypto), then stored; nothing goes out before.
  await until('the signed write waits for the storage', () => disk.waiting.length === 1 && a.mesh.store.entries.get(own).sig);
  await until('the signed write is stored', () => {
    disk.release();
    return !!disk.entries.get(own)?.sig;
  });
  await p;
  assert.ok(acked);
  assert.equal(disk.entries.get(own).sig.length, 64);
  await until('the peer has it', () => b.get(own) === 'signed');
  await a.close();
  const a2 = secured(ia, { storage: disk, records: checkRecords(disk.rows(), 'memory') });
  assert.equal(a2.get(own), 'signed');
  const synced = next(a2, 'synced');
  disk.manual = false;
  disk.release();
  await synced;
  await until('a quiet rejoin', () => a2.mesh.sessionOf(ib.peerId)?.stats);
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 1));
  assert.equal(a2.mesh.sessionOf(ib.peerId).stats.updatesIn, 0, 'the peer sends nothing the restored store holds');
  assert.equal(b.stats.updatesBadSignature + b.stats.updatesUnsigned, 0);
  assert.equal(b.mesh.sessionOf(ia.peerId).stats.refused, 0);
});

test("join with data opens the room's database; a secured room's is its own, never the open room's", async () => {
  // Node has no IndexedDB: the refusal names the database join chose.
  const named = async (options) => {
    try {
      await join('team', { signal: 'ws://fake/', ...options });
    } catch (e) {
      assert.equal(e.code, 'storage_failed');
      return /IndexedDB database "([^"]+)"/.exec(e.message)[1];
    }
    assert.fail('opened an IndexedDB in Node');
  };
  const warn = console.warn;
  console.warn = () => {};
  try {
    assert.equal(await named({ data: true }), 'rtc-mesh:team');
    assert.equal(await named({ data: 'mine' }), 'mine');
    const secret = generateSecret();
    const key = await deriveRoomKey('team', secret);
    assert.equal(await named({ data: true, secret }), `rtc-mesh:secured:${b64url(key.roomId)}`);
  } finally {
    console.warn = warn;
  }
  await assert.rejects(join('team', { data: 5 }), { code: 'bad_data' });
  await assert.rejects(join('team', { data: true, durability: 'disk' }), { code: 'bad_durability' });
});
