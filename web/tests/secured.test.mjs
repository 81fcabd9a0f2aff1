// Secured rooms in the browser client, in Node: the sans-IO Mesh (lib/mesh.js with
// lib/secured.js) held to core's `mesh/secured.rs` signal by signal (what each side
// sends, what it accepts, which counter a refusal lands in), and two Members meeting in
// a secured room through an in-memory switchboard, WebSocket and RTCPeerConnection.
// The hostile cases are core's own tests (`secured.rs`: only sealed, signed, fresh
// announces of the room are taken; SDP opens only for its target and with its
// signature) and rows H1, H9, H10, H11, H12, H13 and H21 of
// shared/reference/room-security.md §8.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  Identity, Member, Mesh, deriveRoomKey, inviteWithAdmins, join, rekeyJson, resumeRekey, rotateRekey, seal, signing,
} from '../mesh.js';
import { Switchboard, installFakes, next, stopAfter, useBoard } from './fakes.mjs';

/** Raw DEFLATE, as core compresses a secured SDP before sealing it. */
async function deflate(text) {
  return new Uint8Array(await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream('deflate-raw'))).arrayBuffer());
}

/** Raw DEFLATE in stored blocks (no compression), written by hand: an encoder that is
 * not the browser's, as core's is not. */
function stored(text) {
  const data = new TextEncoder().encode(text);
  const out = [];
  for (let i = 0; i === 0 || i < data.length; i += 65535) {
    const part = data.subarray(i, i + 65535);
    const last = i + 65535 >= data.length ? 1 : 0;
    out.push(last, part.length & 0xff, part.length >> 8, ~part.length & 0xff, (~part.length >> 8) & 0xff, ...part);
  }
  return new Uint8Array(out);
}

const vectors = JSON.parse(readFileSync(new URL('../../core/tests/vectors/security.json', import.meta.url), 'utf8'));

/** Core's test epoch (`secured.rs`): wall-clock ms at clock 0. */
const EPOCH = 1795713876272;
/** Core's test secret (`secured.rs`). */
const SECRET = 'rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8';

const roomKeys = new Map();
function roomKey(room, secret) {
  const k = `${room}\u0000${secret}`;
  if (!roomKeys.has(k)) roomKeys.set(k, deriveRoomKey(room, secret));
  return roomKeys.get(k);
}

/** A secured mesh of room `team` whose identity is seeded with `seed` (as core's
 * `member`), connected and announced. */
async function member(seed, secret = SECRET, config = {}) {
  const identity = await Identity.fromSeed(new Uint8Array(32).fill(seed));
  const key = await roomKey('team', secret);
  const m = new Mesh({
    id: identity.peerId, room: 'team', incarnation: seed.toString(16).padStart(16, '0'), epochMs: EPOCH,
    security: { key, identity }, ...config,
  }, 0);
  m.handleSignalConnected(0);
  m.start(0);
  return m;
}

/** Everything `m` has output once its sealing and opening are done. */
async function drain(m) {
  await m.settled();
  const out = [];
  for (let o = m.poll(); o.type !== 'timeout'; o = m.poll()) out.push(o);
  return out;
}

/** The signalling texts `m` sends. */
async function sent(m) {
  return (await drain(m)).filter((o) => o.type === 'signal').map((o) => o.text);
}

/** `text` from the switchboard into `m`; its outputs. */
async function feed(m, now, text) {
  m.handleSignal(now, text);
  return drain(m);
}

const present = (m) => [...m.peers.entries()].filter(([, p]) => p.present).map(([id]) => id);
const body = (text) => JSON.parse(text.slice(text.indexOf('{')));
const counters = (m) => {
  const s = m.stats;
  return { unsecured: s.unsecuredSignals, unseal: s.unsealFailures, badSig: s.badSignatures, stale: s.staleSignals };
};

test('announces carry only id, tag, sec, ts, sig, v and the sealed rest', async () => {
  const a = await member(1, SECRET, { attributes: { name: 'ada' } });
  const [announce] = await sent(a);
  const key = await roomKey('team', SECRET);
  assert.ok(announce.startsWith(`/announce|${a.id}|{`), announce);
  const o = body(announce);
  assert.deepEqual(Object.keys(o), ['id', 'room', 'sec', 'ts', 'sig', 'v', 'sealed']);
  assert.equal(o.id, a.id);
  assert.equal(o.room, key.tag);
  assert.equal(o.sec, 1);
  assert.equal(o.v, 1);
  assert.equal(o.ts, EPOCH);
  assert.match(o.sig, /^[A-Za-z0-9_-]{86}$/);
  // Nothing of the room, the incarnation, the agent or the user's attributes in the clear.
  for (const clear of ['team', '0000000000000001', 'rtc-mesh-web', 'ada', 'codecs']) assert.ok(!announce.includes(clear), clear);
  assert.equal(a.id.length, 43);
});

test('only sealed, signed, fresh announces of the room are taken (core\'s test)', async () => {
  const a = await member(1);
  const b = await member(2);
  const other = await member(3, 'another secret');
  await sent(a);
  const bAnnounce = (await sent(b))[0];
  const tag = (await roomKey('team', SECRET)).tag;
  const otherTag = (await roomKey('team', 'another secret')).tag;
  assert.notEqual(tag, otherTag, 'another secret, another switchboard room');
  // Unsealed, on the room's tag (H21): ignored.
  await feed(a, 0, `/announce|${b.id}|{"id":"${b.id}","room":"${tag}"}`);
  // Sealed under another secret, its tag swapped in (H1): does not open.
  const o = (await sent(other))[0];
  await feed(a, 0, o.replace(otherTag, tag));
  // B's announce with its sender rewritten (H9): does not open for that sender.
  await feed(a, 0, bAnnounce.replace(`|${b.id}|`, `|${other.id}|`));
  assert.deepEqual(present(a), []);
  assert.deepEqual(counters(a), { unsecured: 1, unseal: 2, badSig: 0, stale: 0 });
  // The real one: B joins, with its attributes opened.
  const out = await feed(a, 0, bAnnounce);
  const joined = out.find((e) => e.type === 'event' && e.name === 'peer_join');
  assert.deepEqual(joined.detail, {
    peer: b.id,
    attributes: { id: b.id, room: 'team', agent: 'rtc-mesh-web/0.1', incarnation: '0000000000000002', codecs: ['postcard', 'json'] },
  });
  // Replayed (H13): stale, ignored.
  await feed(a, 0, bAnnounce);
  assert.equal(a.stats.staleSignals, 1);
  // A's answer to B went out sealed: nothing of A in the clear.
  const texts = out.filter((e) => e.type === 'signal').map((e) => e.text);
  assert.ok(texts.length > 0 && texts.every((t) => !t.includes('0000000000000001')), JSON.stringify(texts));
  assert.ok(texts.some((t) => t.startsWith(`/to|${b.id}|/announce|${a.id}|`)));
  // A forged leave (a signature that does not check) is the switchboard's
  // `disconnected`; B's own signed leave counts.
  b.close(0);
  const bLeave = (await sent(b)).find((t) => t.startsWith('/leave|'));
  assert.deepEqual(Object.keys(body(bLeave)), ['id', 'incarnation', 'ts', 'sig']);
  await feed(a, 0, `/leave|${b.id}|{"id":"${b.id}","incarnation":"0000000000000002","ts":1,"sig":"x"}`);
  assert.equal(a.stats.badSignatures, 1, "taken as the switchboard's disconnected");
  await feed(a, 0, bLeave);
  assert.deepEqual(present(a), []);
});

test("a forged leave keeps an open link (the switchboard's disconnected); the member's own signed leave drops it", async () => {
  const a = await member(1);
  const b = await member(2);
  const [aAnnounce] = await sent(a);
  const [bAnnounce] = await sent(b);
  await feed(a, 0, bAnnounce);
  await feed(b, 0, aAnnounce);
  a.linkOpen(10, b.id, 'json');
  await drain(a);
  const tag = (await roomKey('team', SECRET)).tag;
  const leaves = async (text) => (await feed(a, 20, text)).filter((o) => o.type === 'close' || o.name === 'peer_leave');
  // No signature at all (H12): unsecured; the link stays.
  assert.deepEqual(await leaves(`/leave|${b.id}|{"id":"${b.id}"}`), []);
  // A signature that does not check: bad; the link stays.
  assert.deepEqual(await leaves(`/leave|${b.id}|{"id":"${b.id}","incarnation":"0000000000000002","ts":${EPOCH},"sig":"${'A'.repeat(86)}"}`), []);
  // B's signature, but for another incarnation: stale; the link stays.
  const bIdentity = await Identity.fromSeed(new Uint8Array(32).fill(2));
  const sig = await bIdentity.signText(await signing.leave(tag, b.id, 'ffffffffffffffff', EPOCH + 5));
  assert.deepEqual(await leaves(`/leave|${b.id}|{"id":"${b.id}","incarnation":"ffffffffffffffff","ts":${EPOCH + 5},"sig":"${sig}"}`), []);
  assert.deepEqual(counters(a), { unsecured: 1, unseal: 0, badSig: 1, stale: 1 });
  assert.deepEqual(present(a), [b.id]);
  assert.equal(a.peers.get(b.id).state, 'open');
  // The switchboard's own `disconnected` passes as it is: the link decides.
  assert.deepEqual(await leaves(`/leave|${b.id}|{"id":"${b.id}","reason":"disconnected"}`), []);
  // B's own leave: the link goes at once, B left.
  b.close(30);
  const bLeave = (await sent(b)).find((t) => t.startsWith('/leave|'));
  const gone = await leaves(bLeave);
  assert.deepEqual(gone.map((o) => o.type === 'close' ? 'close' : o.detail.reason), ['close', 'left']);
});

test("an announce that does not open is answered with ours again, at most once per 5 s (core's test)", async () => {
  const admin = await Identity.fromSeed(new Uint8Array(32).fill(9));
  const key = await roomKey('team', SECRET);
  const r = await rotateRekey(key, ['gone'], EPOCH + 3600000, admin);
  const rekey = await resumeRekey(key, `REKEY ${rekeyJson(r)}`);
  // a: in epoch 1's grace period; b: in epoch 0.
  const identity = await Identity.fromSeed(new Uint8Array(32).fill(1));
  const a = new Mesh({ id: identity.peerId, room: 'team', incarnation: '01', epochMs: EPOCH, security: { key, identity, rekey } }, 0);
  a.handleSignalConnected(0);
  a.start(0);
  assert.equal(a.epoch(), 1);
  const b = await member(2);
  await sent(b);
  const [aAnnounce] = await sent(a);
  const again = (await feed(b, 0, aAnnounce)).filter((o) => o.type === 'signal').map((o) => o.text);
  assert.deepEqual([present(b).length, b.stats.unsealFailures, again.length], [0, 1, 1]);
  assert.ok(again[0].startsWith('/announce|'));
  assert.deepEqual(await feed(b, 1000, aAnnounce), [], 'not again within the gap');
  // a takes it under the previous key and answers b under it: b meets a.
  const reply = (await feed(a, 0, again[0])).filter((o) => o.type === 'signal' && o.text.startsWith('/to|'));
  assert.equal(present(a).length, 1);
  assert.ok(reply.length > 0);
  for (const o of reply) await feed(b, 0, o.text);
  assert.deepEqual(present(b), [a.id]);
  assert.equal((await feed(b, 5000, aAnnounce)).filter((o) => o.type === 'signal').length, 1, 'after the gap, again');
});

test('SDP opens only for its target and with its signature (core\'s test)', async () => {
  const a = await member(1);
  const b = await member(2);
  const ba = (await sent(b))[0];
  const aa = (await sent(a))[0];
  await feed(a, 0, ba);
  await feed(b, 0, aa);
  // The higher id offers.
  const [off, ans, offAnnounce] = a.id > b.id ? [a, b, aa] : [b, a, ba];
  await drain(off);
  off.localSdp(0, ans.id, 'offer', 'v=0\r\na=fingerprint:sha-256 AA\r\n');
  const offer = (await sent(off)).find((t) => t.includes('mesh:sdp'));
  assert.ok(offer.startsWith(`/to|${ans.id}|/mesh:sdp|${off.id}|{"v":1,"sealed":"`), offer);
  assert.deepEqual(Object.keys(body(offer)), ['v', 'sealed']);
  assert.ok(!offer.includes('fingerprint'), 'sealed');
  await drain(ans);
  // Re-targeted by the switchboard to another member (H9): it does not open there.
  const c = await member(4);
  await feed(c, 0, offAnnounce);
  await feed(c, 0, offer.replace(`/to|${ans.id}|`, `/to|${c.id}|`));
  assert.equal(c.stats.unsealFailures, 1);
  const remote = (out) => out.filter((o) => o.type === 'remoteSdp');
  const opened = remote(await feed(ans, 0, offer));
  assert.equal(opened.length, 1, 'the genuine offer opens');
  assert.equal(opened[0].sdp, 'v=0\r\na=fingerprint:sha-256 AA\r\n');
  assert.equal(opened[0].kind, 'offer');
  // Replayed (H11): stale.
  assert.deepEqual(remote(await feed(ans, 0, offer)), []);
  assert.equal(ans.stats.staleSignals, 1);
  // A relay that knows the room key re-seals the SDP with its own fingerprint (H10a): the
  // signature inside no longer matches.
  const key = await roomKey('team', SECRET);
  const plain = JSON.stringify({
    type: 'offer', sdp: 'v=0\r\na=fingerprint:sha-256 EVIL\r\n', incarnation: off.incarnation, ts: EPOCH + 10000, sig: 'A'.repeat(86),
  });
  const evil = await seal(key, 'mesh:sdp', off.id, ans.id, await deflate(plain));
  assert.deepEqual(remote(await feed(ans, 0, `/to|${ans.id}|/mesh:sdp|${off.id}|{"v":1,"sealed":"${evil}"}`)), []);
  assert.equal(ans.stats.badSignatures, 1);
  // Sealed but not compressed (as core does), or inflating past 64 KiB: it does not open.
  const loose = async (bytes) => `/to|${ans.id}|/mesh:sdp|${off.id}|{"v":1,"sealed":"${await seal(key, 'mesh:sdp', off.id, ans.id, bytes)}"}`;
  assert.deepEqual(remote(await feed(ans, 0, await loose(plain))), []);
  assert.deepEqual(remote(await feed(ans, 0, await loose(await deflate(' '.repeat(64 << 10) + plain)))), []);
  assert.equal(ans.stats.unsealFailures, 2);
  // An unsealed SDP on the secured tag (H21): refused.
  assert.deepEqual(remote(await feed(ans, 0, `/to|${ans.id}|/mesh:sdp|${off.id}|{"type":"offer","sdp":"v=0\\r\\n"}`)), []);
  assert.equal(ans.stats.unsecuredSignals, 1);
  // Candidates travel sealed (unsigned) and open as they were.
  const cand = { candidate: 'candidate:1 1 udp 2130706431 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0, usernameFragment: null };
  off.localCandidate(0, ans.id, cand);
  const ct = (await sent(off)).find((t) => t.includes('/mesh:candidate|'));
  assert.ok(!ct.includes('127.0.0.1') && ct.startsWith(`/to|${ans.id}|/mesh:candidate|${off.id}|{"v":1,"sealed":"`), ct);
  const got = (await feed(ans, 0, ct)).filter((o) => o.type === 'remoteCandidate');
  assert.deepEqual(got.map((o) => o.candidate), [cand]);
  assert.deepEqual(counters(ans), { unsecured: 1, unseal: 2, badSig: 1, stale: 1 });
});

test("a signed SDP compressed by another encoder than the browser's opens; ours is compressed too", async () => {
  const a = await member(1);
  const b = await member(2);
  const [off, ans] = a.id > b.id ? [a, b] : [b, a];
  await feed(ans, 0, (await sent(off))[0]);
  await feed(off, 0, (await sent(ans))[0]);
  await drain(ans);
  const key = await roomKey('team', SECRET);
  const me = await Identity.fromSeed(new Uint8Array(32).fill(off === a ? 1 : 2));
  const sdp = `v=0\r\n${'a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n'.repeat(40)}`;
  const ts = EPOCH + 1;
  const sig = await me.signText(await signing.sdp(key.roomId, off.id, ans.id, off.incarnation, ts, 'offer', sdp));
  const plain = JSON.stringify({ type: 'offer', sdp, incarnation: off.incarnation, ts, sig });
  const sealed = await seal(key, 'mesh:sdp', off.id, ans.id, stored(plain));
  const out = await feed(ans, 0, `/to|${ans.id}|/mesh:sdp|${off.id}|{"v":1,"sealed":"${sealed}"}`);
  assert.deepEqual(out.filter((o) => o.type === 'remoteSdp').map((o) => o.sdp), [sdp]);
  // Ours: compressed, so smaller sealed than the SDP is open.
  off.localSdp(0, ans.id, 'offer', sdp);
  const offer = (await sent(off)).find((t) => t.includes('mesh:sdp'));
  assert.ok(offer.length < sdp.length, `${offer.length} characters sealed for ${sdp.length} open`);
});

test('an offer that comes before its sender\'s announce is kept sealed and opened with the announce', async () => {
  const a = await member(1);
  const b = await member(2);
  const [off, ans] = a.id > b.id ? [a, b] : [b, a];
  const offAnnounce = (await sent(off))[0];
  const ansAnnounce = (await sent(ans))[0];
  await feed(off, 0, ansAnnounce);
  off.localSdp(0, ans.id, 'offer', 'v=0\r\n');
  const offer = (await sent(off)).find((t) => t.includes('mesh:sdp'));
  assert.deepEqual((await feed(ans, 0, offer)).filter((o) => o.type === 'remoteSdp'), []);
  assert.equal(ans.stats.early, 1);
  const out = await feed(ans, 1, offAnnounce);
  assert.deepEqual(out.filter((o) => o.type === 'remoteSdp').map((o) => o.sdp), ['v=0\r\n']);
  assert.deepEqual(counters(ans), { unsecured: 0, unseal: 0, badSig: 0, stale: 0 });
});

test('a reconnect re-signs the announce (a later timestamp), and it goes before what was queued', async () => {
  const a = await member(1);
  const b = await member(2);
  const [first] = await sent(a);
  await feed(b, 0, first);
  a.handleSignalDisconnected(100);
  a.localCandidate(200, b.id, { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 });
  assert.deepEqual(await sent(a), [], 'queued while down');
  a.handleSignalConnected(300);
  const again = await sent(a);
  assert.equal(again.length, 2);
  assert.ok(again[0].startsWith(`/announce|${a.id}|`), again[0]);
  assert.ok(again[1].includes('/mesh:candidate|'), again[1]);
  assert.ok(body(again[0]).ts > body(first).ts, 'a later timestamp: the switchboard and peers take it');
  await feed(b, 300, again[0]);
  await feed(b, 300, first);
  assert.deepEqual(counters(b), { unsecured: 0, unseal: 0, badSig: 0, stale: 1 }, 'only the old one is stale');
});

test('freshness: within 5 minutes of our clock, after the last of its kind, at most 4096 members remembered', async () => {
  const a = await member(1);
  const s = a.secured;
  const wall = EPOCH + 1000;
  assert.equal(s.fresh(1000, 'x', 'announce', wall - 300000), true);
  assert.equal(s.fresh(1000, 'x', 'announce', wall - 300000), false, 'not after the last');
  assert.equal(s.fresh(1000, 'x', 'sdp', wall - 300000), true, 'each kind on its own');
  assert.equal(s.fresh(1000, 'y', 'announce', wall - 300001), false, 'too old');
  assert.equal(s.fresh(1000, 'y', 'announce', wall + 300001), false, 'too far ahead');
  assert.equal(s.fresh(1000, 'y', 'announce', wall + 300000), true);
  assert.equal(a.stats.staleSignals, 3);
  for (let i = s.freshTs.size; i < 4096; i++) assert.equal(s.fresh(1000, `m${i}`, 'leave', wall), true);
  assert.equal(s.freshTs.size, 4096);
  // One more: the oldest (x's announce, then x's sdp: core's order among equals) goes.
  assert.equal(s.fresh(1000, 'new', 'leave', wall), true);
  assert.equal(s.freshTs.size, 4096);
  assert.ok(!s.freshTs.has('x\u0000announce') && s.freshTs.has('x\u0000sdp'));
});

test('a payload Rust sealed opens in the mesh; an announce in Rust\'s form, sealed and signed with its seeds, is taken', async () => {
  const ik = vectors.invite_key;
  const key = await roomKey(ik.room, ik.secret);
  const me = await Identity.fromSeed(new Uint8Array(32).fill(1));
  const ts = vectors.inputs.announce.ts;
  const mesh = (config = {}) => {
    const m = new Mesh({ id: me.peerId, room: ik.room, incarnation: '0000000000000001', epochMs: ts, security: { key, identity: me }, ...config }, 0);
    m.handleSignalConnected(0);
    return m;
  };
  // Core's sealed announce payload (vectors: `seals`, command `announce`, sender alice):
  // it opens here for alice, and is refused only at the signature (alice is no key);
  // for another sender it does not open.
  const v = vectors.seals.find((s) => s.command === 'announce');
  const m = mesh();
  const announce = (from) => `/announce|${from}|{"id":"${from}","room":"${key.tag}","sec":1,"ts":${ts},"sig":"${'A'.repeat(86)}","v":1,"sealed":"${v.sealed}"}`;
  await feed(m, 0, announce(v.sender));
  assert.deepEqual(counters(m), { unsecured: 0, unseal: 0, badSig: 1, stale: 0 });
  await feed(m, 0, announce('bob'));
  assert.deepEqual(counters(m), { unsecured: 0, unseal: 1, badSig: 1, stale: 0 });
  // An announce as core's `secure_out` writes it (the sealed attributes in core's order:
  // agent, incarnation, codecs, attrs), from the identity of seed 07 (vectors:
  // `identities`), at the vectors' announce timestamp, sealed with the nonce 02 x 12.
  // Written with WebCrypto, whose seals and signatures are core's byte for byte (the
  // vectors say so); a native's own nonce is synthetic, so its bytes differ there only.
  const FIXTURE = '/announce|6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw|{"id":"6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw",' +
    '"room":"pdDZXeYVt3Ms6Xn0wGuPdA","sec":1,"ts":1795713876272,"sig":"f62lFB1NPVHl_m9jCoighz0bsAzOgPZYPuG_6JAqGkhsrYFN86pN' +
    'V2_VcZ6LBnqt-JJzNuPeZdVMYbqhjbqyDw","v":1,"sealed":"AgICAgICAgICAgICmVBB46nnKAMX2O1TJVH3gGWt0bFInIRfNDkf-JAOhqa53QA4HtF' +
    'Jt5btxJ0zAO_1tPAsLyFBuEqsn0LOI3oES4kgQq25XueSm-bTAw0Y9A9XCvm8i1KEx382eI4OhIacaPv4ODNYStndJOnUxVRWUWGUKGvjRZIi4hVc1dF2_A"}';
  const joined = (await feed(m, 0, FIXTURE)).find((o) => o.name === 'peer_join');
  assert.deepEqual(joined.detail, {
    peer: '6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw',
    attributes: {
      id: '6kpsY-KcUgq-9VB7Ey7F-ZVHdq6-vnuSQh7qaRRG0iw', room: 'team', agent: 'rtc-mesh/0.1.0',
      incarnation: '0123456789abcdef', codecs: ['postcard', 'json'], name: 'ada',
    },
  });
  // And the mesh writes exactly those bytes, given that nonce.
  const seven = await Identity.fromSeed(new Uint8Array(32).fill(7));
  const w = new Mesh({
    id: seven.peerId, room: 'team', incarnation: '0123456789abcdef', agent: 'rtc-mesh/0.1.0', attributes: { name: 'ada' },
    epochMs: ts, security: { key, identity: seven },
  }, 0);
  w.handleSignalConnected(0);
  const draw = crypto.getRandomValues;
  crypto.getRandomValues = (b) => b.fill(2);
  try {
    w.start(0);
  } finally {
    crypto.getRandomValues = draw;
  }
  assert.deepEqual(await sent(w), [FIXTURE]);
});

test("the switchboard's refusals are events: /mesh:refused, and a refused upgrade", async () => {
  for (const m of [await member(1), new Mesh({ id: 'open', room: 'lobby', incarnation: '0000000000000001' }, 0)]) {
    m.handleSignalConnected(0);
    await drain(m);
    const refused = async (f) => (await (f(), drain(m))).filter((o) => o.name === 'refused').map((o) => o.detail.reason);
    assert.deepEqual(await refused(() => m.handleSignal(1, '/mesh:refused|{"reason":"unproven"}')), ['unproven']);
    assert.deepEqual(await refused(() => m.handleSignal(1, '/mesh:refused|{}')), ['unknown']);
    assert.deepEqual(await refused(() => m.handleSignalRefused(2, '401 Unauthorized')), ['http_401']);
    assert.deepEqual(await refused(() => m.handleSignalRefused(3, '')), ['http']);
    assert.equal(m.client.isConnected(), false, 'then taken as a lost connection');
  }
});

test('a secured mesh must have its identity\'s id', async () => {
  const identity = await Identity.fromSeed(new Uint8Array(32).fill(1));
  const key = await roomKey('team', SECRET);
  assert.throws(() => new Mesh({ id: 'someone', room: 'team', incarnation: '01', security: { key, identity } }), { code: 'bad_id' });
});

// -- Members, through the in-memory switchboard of fakes.mjs keeping rooms apart by the
// announce's `room` (as ours does), a WebSocket and an RTCPeerConnection with a data channel.

installFakes();

/** The switchboard of the running test. */
let board = useBoard(new Switchboard({ rooms: true }));

test('two pages meet in a secured room and sync; a page with another secret meets nobody', { timeout: 30000 }, async (t) => {
  board = useBoard(new Switchboard({ rooms: true }));
  const given = await Identity.generate();
  const a = await join('team', { signal: 'ws://fake/', secret: SECRET, token: 'h.p.s', identity: given });
  // Listening before anything else is awaited: on a busy machine they come early.
  const joined = next(a, 'peer_join');
  const aSynced = next(a, 'synced');
  const b = await join('team', { signal: 'ws://fake/?v=1', secret: SECRET, attributes: { name: 'bea' } });
  const bSynced = next(b, 'synced');
  const stranger = await join('team', { signal: 'ws://fake/', secret: 'rm1_mBkfRuWDAhZEVDaXiANpel46thseiVHU_prme6thSl8' });
  stopAfter(t, a, b, stranger);
  assert.ok(a instanceof Member && a.secured && a.tag === (await roomKey('team', SECRET)).tag);
  assert.equal(a.id, given.peerId, 'the given identity is our id');
  assert.equal(b.id.length, 43, 'a fresh identity, its key our id');
  assert.deepEqual(board.urls, ['ws://fake/?token=h.p.s', 'ws://fake/?v=1', 'ws://fake/']);
  await Promise.all([aSynced, bSynced]);
  assert.equal((await joined).attributes.name, 'bea', 'user attributes arrive, opened');
  const got = next(b, 'update', (u) => u.key === 'k');
  a.set('k', { v: 1 });
  assert.deepEqual((await got).value, { v: 1 });
  assert.deepEqual(a.peerList().map((p) => p.id), [b.id]);
  assert.deepEqual(stranger.peerList(), []);
  // Everything on the switchboard was sealed: no room name, attribute, SDP or candidate.
  for (const text of board.texts) {
    for (const clear of ['"team"', 'bea', 'fake-sdp', '127.0.0.1', 'incarnation":"']) {
      if (!text.startsWith('/leave|')) assert.ok(!text.includes(clear), `${clear} in ${text}`);
    }
  }
  assert.deepEqual({ ...a.stats, restarts: 0, restartsRecovered: 0 }, {
    restarts: 0, restartsRecovered: 0, unsecuredSignals: 0, unsealFailures: 0, badSignatures: 0, staleSignals: 0, removedSignals: 0, rekeys: 0, rekeysRefused: 0,
    updatesUnsigned: 0, updatesBadSignature: 0, updatesBadSource: 0, updatesNotOwner: 0, updatesHeld: 0, updatesLate: 0, updatesRevoked: 0, updatesVoided: 0,
  });
  const left = next(a, 'peer_leave');
  await b.close();
  assert.equal((await left).reason, 'left', "b's signed leave drops the link at once");
  await a.close();
  await stranger.close();
});

test('a member an admin removes is cut off: its links close, its signals are ignored (core\'s cut_off_removed)', { timeout: 30000 }, async (t) => {
  board = useBoard(new Switchboard({ rooms: true }));
  const admin = await Identity.fromSeed(new Uint8Array(32).fill(1));
  const invite = await inviteWithAdmins(SECRET, admin, []);
  const a = await join('team', { signal: 'ws://fake/', secret: invite, identity: admin });
  const h = await join('team', { signal: 'ws://fake/', secret: invite });
  const r = await join('team', { signal: 'ws://fake/', secret: invite });
  stopAfter(t, a, h, r);
  const all = (m, n) => new Promise((done) => {
    const check = () => (m.peerList().length === n ? done() : setTimeout(check, 5));
    check();
  });
  await Promise.all([all(a, 2), all(h, 2), all(r, 2)]);
  const gone = [a, h].map((m) => next(m, 'peer_leave', (e) => e.peer === r.id));
  a.set(`room/revoked/${r.id}`, { after: 0 });
  for (const e of await Promise.all(gone)) assert.equal(e.reason, 'removed');
  assert.deepEqual(a.peerList().map((p) => p.id), [h.id]);
  assert.deepEqual(h.peerList().map((p) => p.id), [a.id]);
  // What it still sends through the switchboard (its announce again) is ignored.
  r.mesh.handleSignalConnected(Date.now());
  await new Promise((done) => {
    const check = () => (h.stats.removedSignals > 0 ? done() : setTimeout(check, 5));
    check();
  });
  assert.deepEqual(h.peerList().map((p) => p.id), [a.id]);
});

/** Resolves once `f()` holds, checked after every macrotask (what the fakes deliver). */
const until = (f) => new Promise((done) => {
  const check = () => (f() ? done() : setTimeout(check, 5));
  check();
});

test('a removal moves the room to a new key epoch: the admin rotates, every member takes its line, the old tag stays through the grace period; a kept line resumes', { timeout: 30000 }, async (t) => {
  board = useBoard(new Switchboard({ rooms: true }));
  const admin = await Identity.fromSeed(new Uint8Array(32).fill(1));
  const invite = await inviteWithAdmins(SECRET, admin, []);
  const key0 = await deriveRoomKey('team', invite);
  const a = await join('team', { signal: 'ws://fake/', secret: invite, identity: admin, rekeyGraceMs: 1500 });
  const h = await join('team', { signal: 'ws://fake/', secret: invite });
  const r = await join('team', { signal: 'ws://fake/', secret: invite });
  stopAfter(t, a, h, r);
  await until(() => [a, h, r].every((m) => m.peerList().length === 2));
  assert.deepEqual([a.epoch, a.rekeyLine, a.tag], [0, null, key0.tag]);
  const rekeyed = [a, h, r].map((m) => next(m, 'rekeyed'));
  a.set(`room/revoked/${r.id}`, { after: 0 });
  const [ea, eh] = await Promise.all(rekeyed.slice(0, 2));
  assert.deepEqual([ea.epoch, ea.by], [1, a.id], 'the admin rotates at once');
  assert.equal(eh.line, ea.line, 'the other member takes the same line');
  assert.ok(ea.line.startsWith('REKEY {"epoch":1,') && ea.line.includes(`"removed":["${r.id}"]`));
  const next1 = (await resumeRekey(key0, ea.line)).key;
  assert.deepEqual([a.epoch, h.epoch, r.epoch, a.rekeyLine, a.stats.rekeys, h.stats.rekeys], [1, 1, 0, ea.line, 1, 1]);
  assert.equal(a.tag, key0.tag, 'the grace period keeps the old tag (the door)');
  // The grace period ends: the room announces on the new epoch's tag, where the
  // removed member cannot follow.
  await until(() => a.tag === next1.tag && h.tag === next1.tag);
  assert.notEqual(next1.tag, key0.tag);
  r.mesh.handleSignalConnected(Date.now());
  const rooms = () => [a, h, r].map((m) => [...board.sockets].find((s) => s.id === m.id && s.readyState === 1)?.room);
  await until(() => rooms().every((x) => x !== undefined) && rooms()[0] === next1.tag && rooms()[1] === next1.tag);
  assert.deepEqual(rooms(), [next1.tag, next1.tag, key0.tag]);
  assert.deepEqual(a.peerList().map((p) => p.id), [h.id], 'a and h keep their link across the move');
  // A member that kept the line comes back straight into the new epoch.
  const n = await join('team', { signal: 'ws://fake/', secret: invite, rekey: ea.line });
  stopAfter(t, n);
  assert.deepEqual([n.epoch, n.tag, n.rekeyLine], [1, next1.tag, ea.line]);
  await until(() => n.peerList().length === 2);
  assert.deepEqual(n.peerList().map((p) => p.id).sort(), [a.id, h.id].sort());
  assert.equal(r.epoch, 0, 'the removed member never had the line');
  // A line that is not this room's (here: its epoch changed) does not resume.
  const forged = ea.line.replace('"epoch":1,', '"epoch":2,');
  await assert.rejects(join('team', { secret: invite, rekey: forged }), { code: 'bad_rekey' });
  await assert.rejects(join('team', { secret: invite, rekey: 'REKEY {' }), { code: 'bad_rekey' });
});

test("with no admin's line after a removal another member rotates once its wait is over; forged and unallowed lines are refused", { timeout: 30000 }, async (t) => {
  board = useBoard(new Switchboard({ rooms: true }));
  const admin = await Identity.fromSeed(new Uint8Array(32).fill(1));
  const hid = await Identity.fromSeed(new Uint8Array(32).fill(2));
  const invite = await inviteWithAdmins(SECRET, admin, []);
  const key0 = await deriveRoomKey('team', invite);
  const a = await join('team', { signal: 'ws://fake/', secret: invite, identity: admin });
  const h = await join('team', { signal: 'ws://fake/', secret: invite, identity: hid, rekeyWaitMs: 50 });
  const r = await join('team', { signal: 'ws://fake/', secret: invite });
  stopAfter(t, a, h, r);
  await until(() => [a, h, r].every((m) => m.peerList().length === 2 && m.peerList().every((p) => p.state === 'open')));
  // Lines a does not take: not JSON; a member that is not an admin rotating with no
  // removal; a signature that does not check.
  const toA = (line) => h.mesh.sessionOf(a.id).sendControl(line);
  const unallowed = await rotateRekey(key0, [], Date.now() + 60000, hid);
  toA('REKEY {');
  toA(`REKEY ${rekeyJson(unallowed)}`);
  toA(`REKEY ${rekeyJson({ ...unallowed, until: unallowed.until + 1 })}`);
  h.pump();
  await until(() => a.stats.rekeysRefused === 3);
  assert.deepEqual([a.epoch, a.stats.rekeys], [0, 0]);
  // The admin's rotation does not come (an admin that is away, or an older version).
  a.mesh.secured.epochs.rotate = () => {};
  const rekeyed = [a, h].map((m) => next(m, 'rekeyed'));
  a.set(`room/revoked/${r.id}`, { after: 0 });
  const [ea, eh] = await Promise.all(rekeyed);
  assert.deepEqual([eh.epoch, eh.by, ea.line], [1, h.id, eh.line], 'h rotated after its wait, and a took its line');
  assert.ok(eh.line.includes(`"removed":["${r.id}"]`));
  assert.deepEqual([a.stats.rekeysRefused, h.stats.rekeysRefused], [3, 0]);
});

test("a secured join's bad secret rejects; a given id must be the identity's", async () => {
  await assert.rejects(join('team', { secret: 'rm1_short' }), { code: 'bad_secret' });
  await assert.rejects(join('team', { secret: SECRET, id: 'me' }), { code: 'bad_id' });
});

test('refusals are error events: refused_<reason> from /mesh:refused, refused_http after failed upgrades', { timeout: 30000 }, async (t) => {
  board = useBoard(new Switchboard({ rooms: true }));
  board.refuse = true;
  const m = await join('team', { signal: 'ws://fake/', secret: SECRET });
  stopAfter(t, m);
  const errors = [];
  m.on('error', (e) => errors.push(e.code));
  const refused = next(m, 'refused');
  assert.deepEqual(await refused, { reason: 'http' });
  assert.deepEqual(errors, ['refused_http']);
  assert.ok(board.urls.length >= 3, `${board.urls.length} attempts`);
  board.refuse = false;
  await next(m, 'online');
  const ws = [...board.sockets][0];
  const unproven = next(m, 'error', (e) => e.code === 'refused_unproven');
  ws.receive('/mesh:refused|{"reason":"unproven"}');
  assert.match((await unproven).message, /no proof that we hold our id's key/);
  await m.close();
});
