// The browser client's Member in Node, without a browser: a fake switchboard, WebSocket,
// RTCPeerConnection and data channel (fakes.mjs: in memory, every delivery on a later
// task) stand in for the browser, so that the mesh rules run here: who offers, which
// codec, sync both ways, what close() sends in which order, liveness, and the retry
// backoff (core's: 250 ms doubling to 10 s, jittered into [0.5, 1) by core's seeded
// generator).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Member, Xorshift } from '../mesh.js';
import { Switchboard, freshWorld, installFakes, log, next, stop, useBoard } from './fakes.mjs';

installFakes();

/** The switchboard of the running test. */
let board = useBoard(new Switchboard());

function fresh(t) {
  ({ board, made } = freshWorld(t));
}

/** A member whose peer connections are marked as its own (for the log). */
function member(id, options = {}) {
  const m = new Member('room', { id, signal: 'ws://fake/', ...options });
  const open = m.open.bind(m);
  m.open = (peer, offerer, codec) => {
    open(peer, offerer, codec);
    m.links.get(peer).pc.owner = id;
  };
  m.mesh.start(performance.now());
  m.pump();
  made.push(m);
  return m;
}

/** A text from the switchboard, as if it came over the WebSocket. */
function signal(m, text) {
  m.mesh.handleSignal(performance.now(), text);
  m.pump();
}

/** alpha and omega (omega offers), linked and synced in a fresh world. */
async function linked(t, options = {}) {
  fresh(t);
  const a = member('alpha', options.alpha);
  const b = member('omega', options.omega);
  await Promise.all([next(a, 'synced'), next(b, 'synced')]);
  return [a, b];
}

/** Waits for `m`'s next peer_leave; its reason and the ms since `t0`. */
async function leaveAfter(m, t0) {
  const left = await next(m, 'peer_leave');
  return [left.reason, Date.now() - t0];
}

/** Members made in the running test, stopped after it (passed or not). */
let made = [];

test('the higher id offers, in postcard, and writes cross both ways', { timeout: 30000 }, async (t) => {
  fresh(t);
  const lo = member('alpha');
  const hi = member('omega');
  await Promise.all([next(lo, 'synced'), next(hi, 'synced')]);
  const [p] = hi.peerList();
  assert.equal(p.id, 'alpha');
  assert.equal(p.codec, 'postcard');
  // omega made the offer: its connection created the channel.
  const offers = log.filter((e) => e.kind === 'signal' && e.text.includes('"type":"offer"'));
  assert.equal(offers.length, 1);
  assert.equal(offers[0].from, 'omega');
  const got = next(lo, 'update', (u) => u.key === 'k');
  hi.set('k', { v: [1, 'x'] });
  assert.deepEqual((await got).value, { v: [1, 'x'] });
  const back = next(hi, 'update', (u) => u.key === 'j');
  lo.set('j', 2);
  assert.equal((await back).value, 2);
  stop(lo, hi);
});

test('a member that lists only json links in json with one that prefers postcard', { timeout: 30000 }, async (t) => {
  const [a, b] = await linked(t, { alpha: { codecs: ['json'] } });
  assert.equal(a.peerList()[0].codec, 'json');
  assert.equal(b.peerList()[0].codec, 'json');
  const got = next(a, 'update', (u) => u.key === 'k');
  b.set('k', 'v');
  assert.equal((await got).value, 'v');
  stop(a, b);
});

test('close() sends every write and BYE before the /leave, and resolves', { timeout: 30000 }, async (t) => {
  const [a, b] = await linked(t);
  const left = next(a, 'peer_leave');
  for (let i = 0; i < 2000; i++) b.set(`bye${i}`, 'z'.repeat(100));
  await b.close();
  assert.equal((await left).reason, 'left');
  assert.equal(a.keys().filter((k) => k.startsWith('bye')).length, 2000);
  const leave = log.findIndex((e) => e.kind === 'signal' && e.text.startsWith('/leave|omega'));
  const lastData = log.findLastIndex((e) => e.kind === 'data' && e.from === 'omega');
  assert.ok(leave > lastData, `the /leave (at ${leave}) went after the last data (at ${lastData})`);
  stop(a);
});

test('a cut path, signalling up, is restarted over signalling: no leave, the session goes on', { timeout: 30000 }, async (t) => {
  const [a, b] = await linked(t);
  let lefts = 0;
  a.on('peer_leave', () => lefts++);
  b.on('peer_leave', () => lefts++);
  for (const dc of a.links.get('omega').pc.channels) {
    dc.cut = true;
    dc.peer.cut = true;
  }
  const t0 = Date.now();
  const got = next(b, 'update', (u) => u.key === 'after-cut');
  a.set('after-cut', 1);
  assert.equal((await got).value, 1);
  const ms = Date.now() - t0;
  // 2 s without data or datagrams, then the restart's round trip.
  assert.ok(ms >= 1900 && ms < 4000, `recovered after ${ms} ms`);
  // And back: the recovery is counted where channel data arrives.
  const back = next(a, 'update', (u) => u.key === 'back');
  b.set('back', 2);
  assert.equal((await back).value, 2);
  assert.equal(lefts, 0);
  assert.ok(a.stats.restarts >= 1 && a.stats.restartsRecovered >= 1, JSON.stringify(a.stats));
  assert.ok(b.stats.restarts >= 1 && b.stats.restartsRecovered >= 1, JSON.stringify(b.stats));
  // The offerer restarted: a restart offer and its answer crossed, marked.
  assert.ok(log.some((e) => e.kind === 'signal' && e.text.includes('"restart":true') && e.text.includes('"type":"offer"')));
  assert.ok(log.some((e) => e.kind === 'signal' && e.text.includes('"restart":true') && e.text.includes('"type":"answer"')));
  stop(a, b);
});

test('a restart whose path is back before its data (SCTP backed off) is held until the data comes', { timeout: 30000 }, async (t) => {
  const [a, b] = await linked(t);
  let lefts = 0;
  a.on('peer_leave', () => lefts++);
  b.on('peer_leave', () => lefts++);
  const pa = a.links.get('omega').pc;
  const pb = b.links.get('alpha').pc;
  pa.sctpDelay = pb.sctpDelay = 5000;
  for (const dc of pa.channels) dc.cut = dc.peer.cut = true;
  const t0 = Date.now();
  const got = next(b, 'update', (u) => u.key === 'after-cut');
  a.set('after-cut', 1);
  assert.equal((await got).value, 1);
  const ms = Date.now() - t0;
  // 2 s quiet, the restart's round trip, 5 s until SCTP sends: past the restart's 4 s.
  assert.ok(ms >= 6500 && ms < 9000, `recovered after ${ms} ms`);
  assert.equal(lefts, 0);
  assert.equal(a.links.get('omega').pc, pa, 'the same connection');
  const back = next(a, 'update', (u) => u.key === 'back');
  b.set('back', 2);
  assert.equal((await back).value, 2);
  assert.ok(a.stats.restartsRecovered >= 1 && b.stats.restartsRecovered >= 1, JSON.stringify([a.stats, b.stats]));
  stop(a, b);
});

test('a peer that pinged and went silent for good is restarted, then reported closed within 8 s', { timeout: 30000 }, async (t) => {
  const [a, b] = await linked(t);
  // The path between them is cut, and stays cut through the restart.
  for (const pc of [a.links.get('omega').pc, b.links.get('alpha').pc]) pc.stuck = true;
  for (const dc of a.links.get('omega').pc.channels) {
    dc.cut = true;
    dc.peer.cut = true;
  }
  const [reason, ms] = await leaveAfter(a, Date.now());
  assert.equal(reason, 'closed');
  // 2 s quiet, then the restart's 4 s from the peer's SDP.
  assert.ok(ms >= 5000 && ms < 8000, `reported after ${ms} ms`);
  assert.ok(a.stats.restarts >= 1 && a.stats.restartsRecovered === 0, JSON.stringify(a.stats));
  stop(a, b);
});

test('a connection ICE calls disconnected, to a peer that never pings, is closed after 2 s', { timeout: 30000 }, async (t) => {
  const [a, b] = await linked(t);
  b.mesh.ping = false;
  await new Promise((resolve) => setTimeout(resolve, 50));
  // Its first ping came at once: counted out, as if it never pinged.
  a.mesh.sessionOf('omega').stats.pingsIn = 0;
  const pc = a.links.get('omega').pc;
  const t0 = Date.now();
  pc.connectionState = 'disconnected';
  pc.onconnectionstatechange();
  const [reason, ms] = await leaveAfter(a, t0);
  assert.equal(reason, 'timeout');
  assert.ok(ms >= 2000 && ms < 3500, `reported after ${ms} ms`);
  stop(a, b);
});

test('an offer that comes before its sender\'s announce is kept until the announce', { timeout: 30000 }, async (t) => {
  fresh(t);
  board.slowAnnounces.add('alpha');
  const b = member('omega');
  await new Promise((resolve) => setTimeout(resolve, 20));
  const t0 = Date.now();
  const a = member('alpha');
  await Promise.all([next(a, 'synced'), next(b, 'synced')]);
  // At once: not after a negotiation timeout and a fresh offer (10 s).
  assert.ok(Date.now() - t0 < 2000, `linked after ${Date.now() - t0} ms`);
  const firstOffer = log.findIndex((e) => e.kind === 'delivered' && e.to === 'alpha' && e.text.includes('"type":"offer"'));
  const firstAnnounce = log.findIndex((e) => e.kind === 'delivered' && e.to === 'alpha' && e.text.includes('/announce|omega'));
  assert.ok(firstOffer >= 0 && firstOffer < firstAnnounce, `offer at ${firstOffer}, announce at ${firstAnnounce}`);
  assert.equal(a.peerList()[0].state, 'open');
  stop(a, b);
});

test("a switchboard's disconnected leave keeps a link that answers; a peer's own leave drops it", { timeout: 30000 }, async (t) => {
  const [a, b] = await linked(t);
  let lefts = 0;
  a.on('peer_leave', () => lefts++);
  signal(a, '/leave|omega|{"id":"omega","reason":"disconnected"}');
  const got = next(a, 'update', (u) => u.key === 'still');
  b.set('still', 'here');
  assert.equal((await got).value, 'here');
  assert.equal(lefts, 0);
  assert.equal(a.peerList()[0].state, 'open');
  const left = next(a, 'peer_leave');
  signal(a, '/leave|omega|{"id":"omega"}');
  assert.equal((await left).reason, 'left');
  assert.equal(a.peerList().length, 0);
  stop(a, b);
});

test("link retries back off as core's do, from a generator seeded per member", () => {
  const m = new Member('room', { id: 'a' });
  for (let failures = 0; failures <= 20; failures++) {
    const d = Math.min(250 * 2 ** failures, 10000);
    for (let i = 0; i < 50; i++) {
      const b = m.mesh.backoff(failures);
      assert.ok(b >= d / 2 && b < d, `failures ${failures}: ${b} outside [${d / 2}, ${d})`);
    }
  }
  // The same seed, the same waits.
  const a = new Xorshift(42n);
  const b = new Xorshift(42n);
  assert.deepEqual([1, 2, 3].map(() => a.jitter(1000)), [1, 2, 3].map(() => b.jitter(1000)));
  assert.throws(() => new Member('room', { id: 'a', codecs: ['xml'] }), { code: 'bad_codecs' });
});
