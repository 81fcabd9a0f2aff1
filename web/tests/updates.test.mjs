// Signed updates in the browser client against core's decisions
// (core/tests/vectors/updates.json, written by core/tests/signed.rs): the same signing
// inputs and signatures, and the same verdict for every update, forged, unsigned,
// mutated, from no member's key, into another member's space, far ahead, or genuine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  Identity, JsonEncoder, LineDecoder, Replica, Store, UpdateGuard, decodeLine, deriveRoomKey, inviteWithAdmins,
  mayWrite, parseSums, signingInput, sumsLine, writerOf,
} from '../mesh.js';

const vectors = JSON.parse(readFileSync(new URL('../../core/tests/vectors/updates.json', import.meta.url), 'utf8'));
const adminVectors = JSON.parse(readFileSync(new URL('../../core/tests/vectors/admins.json', import.meta.url), 'utf8'));
const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'));

function update(c) {
  const u = { key: c.key, value: JSON.parse(c.json), json: c.json, ts: c.ts, source: c.source };
  if (c.sig) u.sig = unhex(c.sig);
  return u;
}

test('every update gets the verdict core gives it, with the same signing input', async () => {
  const roomId = unhex(vectors.room_id);
  const me = await Identity.fromSeed(unhex(vectors.store_seed));
  const guard = new UpdateGuard(roomId, me);
  const store = new Store(vectors.store_source, { now: () => vectors.epoch_ms, guard });
  for (const c of vectors.cases) {
    const u = update(c);
    assert.equal(hex(signingInput(roomId, u)), c.input, c.name);
    // As a link's input: checked unless it is stale (its writer's clock covers it and
    // it does not win its key).
    const known = store.clock.get(u.source);
    if (!(known !== undefined && u.ts <= known && !store.wins(u))) u.checked = await guard.check(u);
    const v = store.apply(u);
    assert.equal(v === 'refused' ? u.checked : v, c.verdict, c.name);
  }
  const s = store.stats;
  assert.deepEqual(
    { unsigned: s.unsigned, bad_signatures: s.badSignatures, bad_sources: s.badSources, not_owner: s.notOwner, held: s.held, late: s.late },
    vectors.stats,
  );
  const snap = Object.fromEntries(Object.entries(store.snapshot()).map(([k, v]) => [k, JSON.stringify(v)]));
  assert.deepEqual(snap, vectors.snapshot);
  // The SUMS line this store sends once synced is core's, byte for byte.
  assert.equal(sumsLine(store.sums()), vectors.sums);
  assert.deepEqual(parseSums(vectors.sums), store.sums());
});

/** A secured replica of member `seed` in the vectors' room. */
async function securedReplica(seed) {
  const me = await Identity.fromSeed(new Uint8Array(32).fill(seed));
  const guard = new UpdateGuard(unhex(vectors.room_id), me);
  const store = new Store(`${me.peerId}.000000000000000${seed}`, { now: () => vectors.epoch_ms, guard });
  return new Replica(store);
}

/** Links two secured replicas in memory; the pump checks each update, as a page's
 * inbox does, and moves lines until quiet. */
function securedLink(a, b) {
  const q = [[], []];
  const ends = [a, b];
  const ids = [a.openLink((l) => q[0].push(l)), b.openLink((l) => q[1].push(l))];
  const pump = async () => {
    while (q[0].length || q[1].length) {
      for (const side of [0, 1]) {
        const to = ends[1 - side];
        for (const l of q[side].splice(0)) {
          const m = decodeLine(l.trimEnd());
          if (m.type === 'update') m.checked = await to.store.guard.check(m);
          to.handleMessage(ids[1 - side], m, 0);
        }
      }
    }
  };
  return { ids, pump };
}

/** `updates` as a relay's link into `r`: checked, then handled in this order. */
async function relay(r, updates) {
  const id = r.openLink(() => {});
  for (const u of updates) {
    const m = { type: 'update', ...u };
    m.checked = await r.store.guard.check(m);
    r.handleMessage(id, m, 0);
  }
}

test('a relay that reorders a writer\'s updates cannot hide the earlier ones (as core)', async () => {
  const w = await securedReplica(1);
  const u1 = w.store.set('a', 1);
  u1.sig = await w.store.guard.sign(u1);
  const u2 = w.store.set('b', 2);
  u2.sig = await w.store.guard.sign(u2);
  // Live: the later one first; the earlier one lands late and is passed on.
  const h = await securedReplica(2);
  const x = await securedReplica(3);
  const hx = securedLink(h, x);
  await hx.pump();
  await relay(h, [u2]);
  await hx.pump();
  await relay(h, [u1]);
  await hx.pump();
  for (const r of [h, x]) {
    assert.deepEqual(r.store.snapshot(), { a: 1, b: 2 });
    assert.equal(r.store.stats.late, 1);
  }
  assert.equal(h.session(hx.ids[0]).stats.repairs, 0);
  // Only the later one reached h2; x2 has both: the SUMS exchange repairs h2.
  const h2 = await securedReplica(2);
  await relay(h2, [u2]);
  const x2 = await securedReplica(3);
  await relay(x2, [u1, u2]);
  const l = securedLink(h2, x2);
  await l.pump();
  assert.deepEqual(h2.store.snapshot(), { a: 1, b: 2 });
  assert.equal(h2.store.stats.late, 1);
  assert.equal(h2.session(l.ids[0]).stats.repairs, 1);
  assert.equal(x2.session(l.ids[1]).stats.repaired, 2);
  assert.equal(h2.session(l.ids[0]).stats.repaired, 1);
});

test('SUMS repair a source whose clocks stay apart: a write overwritten before it arrived (as core)', async () => {
  const w = await securedReplica(1);
  const z = await securedReplica(4);
  const write = async (r, key, value, dt) => {
    const u = { key, value, json: JSON.stringify(value), ts: vectors.epoch_ms + dt, source: r.store.id };
    u.sig = await r.store.guard.sign(u);
    return u;
  };
  const [a, b, c] = [await write(w, 'a', 1, 10), await write(w, 'b', 2, 20), await write(w, 'c', 3, 30)];
  const [zb, zc] = [await write(z, 'b', 4, 40), await write(z, 'c', 5, 50)];
  // h: w's b only (its a withheld), then z overwrites it; x: a and c, then z's two.
  const h = await securedReplica(2);
  await relay(h, [b, zb]);
  const x = await securedReplica(3);
  await relay(x, [a, c, zb, zc]);
  assert.deepEqual([h.store.clock.get(w.store.id), x.store.clock.get(w.store.id)], [b.ts, c.ts]);
  const l = securedLink(h, x);
  await l.pump();
  assert.deepEqual(h.store.snapshot(), x.store.snapshot());
  assert.equal(h.store.get('a'), 1);
  assert.equal(x.session(l.ids[1]).stats.repaired, 1, 'x sent its one write of w');
  assert.equal(h.session(l.ids[0]).stats.repairs, 0, 'h, behind on w, sent nothing for it');
});

test('a removal voids what the member wrote after it, and WANT brings back what that superseded (as core)', async () => {
  const seeded = (seed) => Identity.fromSeed(new Uint8Array(32).fill(seed));
  const admin = await seeded(1);
  const admins = [admin.peerId];
  const replica = async (id, seed) => {
    const guard = new UpdateGuard(unhex(vectors.room_id), id, admins);
    return new Replica(new Store(`${id.peerId}.000000000000000${seed}`, { now: () => vectors.epoch_ms, guard }));
  };
  const signed = async (r, k, v) => {
    const u = r.store.set(k, v);
    u.sig = await r.store.guard.sign(u);
    return u;
  };
  const [ra, rh, rx, rr] = [await replica(admin, 1), await replica(await seeded(2), 2), await replica(await seeded(3), 3), await replica(await seeded(4), 4)];
  const hx = securedLink(rh, rx);
  await signed(rx, 'k', 'x');
  await hx.pump();
  // r writes once before its removal, then over x's k and a key of its own.
  const early = await signed(rr, 'early', 1);
  const late = [await signed(rr, 'k', 'r'), await signed(rr, 'only-r', 'r')];
  const removal = await signed(ra, `room/revoked/${rr.store.guard.writer}`, { after: early.ts });
  await relay(rh, [early, ...late]);
  assert.equal(rh.store.get('k'), 'r');
  await relay(rx, [removal]);
  await hx.pump();
  for (const r of [rh, rx]) {
    assert.deepEqual(r.store.snapshot(), { early: 1, k: 'x', [`room/revoked/${rr.store.guard.writer}`]: { after: early.ts } });
  }
  assert.equal(rh.store.stats.voided, 2);
  assert.equal(rx.session(hx.ids[1]).stats.repaired, 1, 'x answered WANT with k');
});

test('our signatures are core\'s (Ed25519 is deterministic)', async () => {
  const roomId = unhex(vectors.room_id);
  const signers = await Promise.all(vectors.signers.map((s) => Identity.fromSeed(unhex(s))));
  let checked = 0;
  for (const c of vectors.cases) {
    if (!c.sig || c.verdict !== 'applied') continue;
    const by = signers.find((i) => writerOf(c.source) === i.peerId);
    assert.equal(hex(await new UpdateGuard(roomId, by).sign(update(c))), c.sig, c.name);
    checked++;
  }
  assert.ok(checked >= 3);
});

test('a signed update crosses the json codec whole, and -0 for 0 changes nothing', async () => {
  const me = await Identity.fromSeed(new Uint8Array(32).fill(1));
  const roomId = new Uint8Array(16).fill(9);
  const guard = new UpdateGuard(roomId, me);
  const u = { key: 'z', value: 0, json: '0', ts: 1795713876300, source: `${me.peerId}.0123456789abcdef` };
  u.sig = await guard.sign(u);
  const lines = [];
  const enc = new JsonEncoder();
  enc.update(u);
  for (let f = enc.poll(); f !== null; f = enc.poll()) lines.push(...new LineDecoder().push(f));
  assert.equal(lines.length, 1);
  assert.ok(lines[0].endsWith(`"${Buffer.from(u.sig).toString('base64url')}"]`));
  const flipped = decodeLine(lines[0].replace(',0],', ',-0],'));
  assert.ok(Object.is(flipped.value, -0));
  assert.equal(await guard.check(flipped), 'ok');
  assert.equal(flipped.json, '0');
});

test('the write rules', () => {
  const id = 'A'.repeat(43);
  assert.equal(writerOf(`${id}.0123`), id);
  assert.equal(writerOf(`${id}x`), null);
  assert.ok(mayWrite('shared', id));
  assert.ok(mayWrite(`users/${id}`, id));
  assert.ok(mayWrite(`users/${id}/p`, id));
  assert.ok(!mayWrite(`users/${id}x/p`, id));
  assert.ok(!mayWrite('users/', id));
  assert.ok(!mayWrite('room/name', id));
  assert.ok(mayWrite('rooms/x', id));
});

test('a secured store refuses local writes into another member\'s space', async () => {
  const me = await Identity.fromSeed(new Uint8Array(32).fill(6));
  const store = new Store(`${me.peerId}.0123456789abcdef`, { guard: new UpdateGuard(new Uint8Array(16), me) });
  assert.throws(() => store.set(`users/${'A'.repeat(43)}/p`, 1), { code: 'not_owner' });
  assert.equal(store.set(`users/${me.peerId}/p`, 1).key, `users/${me.peerId}/p`);
  assert.throws(() => new Store('someone.0123', { guard: new UpdateGuard(new Uint8Array(16), me) }), { code: 'bad_id' });
});

test('an invite naming admins, and removals, decide as core (admins.json)', async () => {
  const av = adminVectors;
  // The same invite from the same creator (Ed25519 is deterministic), and the same room.
  const creator = await Identity.fromSeed(unhex(av.creator_seed));
  const others = av.admins.slice(1);
  assert.equal(await inviteWithAdmins(av.plain, creator, others), av.invite);
  const key = await deriveRoomKey(av.room, av.invite);
  assert.equal(hex(key.roomId), av.room_id);
  assert.equal(key.tag, av.tag);
  assert.deepEqual([...key.admins], av.admins);
  assert.equal((await deriveRoomKey(av.room, av.plain)).tag, av.plain_tag);
  for (const bad of av.bad_invites) {
    await assert.rejects(deriveRoomKey(av.room, bad), { code: 'bad_secret' }, bad);
  }
  const me = await Identity.fromSeed(unhex(av.store_seed));
  const guard = new UpdateGuard(key.roomId, me, key.admins);
  const store = new Store(av.store_source, { now: () => av.epoch_ms, guard });
  for (const c of av.cases) {
    const u = update(c);
    const known = store.clock.get(u.source);
    if (!(known !== undefined && u.ts <= known && !store.wins(u))) u.checked = await guard.check(u);
    const v = store.apply(u);
    assert.equal(v === 'refused' ? u.checked : v, c.verdict, c.name);
  }
  const s = store.stats;
  assert.deepEqual({ not_owner: s.notOwner, revoked: s.revoked, voided: s.voided }, av.stats);
  assert.deepEqual([...store.revoked], av.removed);
  const snap = Object.fromEntries(Object.entries(store.snapshot()).map(([k, v]) => [k, JSON.stringify(v)]));
  assert.deepEqual(snap, av.snapshot);
  // The removed member's own store, once it has the removal, refuses its writes.
  assert.equal(store.takeVoided().length, 1);
});
