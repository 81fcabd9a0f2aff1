// The browser client's secured-room crypto against core's vectors
// (core/tests/vectors/security.json, written by core/tests/security_vectors.rs) and the
// C2SP/CCTV Ed25519 edge cases (core/tests/vectors/cctv/): the same room ids, tags,
// sealed payloads, peer ids, signatures and signing inputs, and the same accept/reject
// decision on every edge case. The browser test runs `cctvBitmap` in Chromium and
// Firefox too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  parseSecret, deriveRoomKey, seal, open, Identity, PeerKey, signing, generateSecret, b64url, fromB64url, MeshError,
} from '../mesh.js';
import { parseRekey, rotatedRoomKey, verifyRekey } from '../lib/security.js';
import { cctvBitmap, expectedBitmap } from './cctv.mjs';

const vectors = JSON.parse(readFileSync(new URL('../../core/tests/vectors/security.json', import.meta.url), 'utf8'));
const cctv = JSON.parse(readFileSync(new URL('../../core/tests/vectors/cctv/ed25519vectors.json', import.meta.url), 'utf8'));
const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (s) => new Uint8Array(Buffer.from(s, 'hex'));

test('room ids and tags match core, for invites and passphrases', async () => {
  for (const r of vectors.rooms) {
    const k = await deriveRoomKey(r.room, r.secret);
    assert.equal(hex(k.roomId), r.room_id, r.room);
    assert.equal(k.tag, r.tag, r.room);
  }
});

test('sealed payloads match core byte for byte, and open only for their command, sender and target', async () => {
  const k = await deriveRoomKey(vectors.invite_key.room, vectors.invite_key.secret);
  for (const s of vectors.seals) {
    assert.equal(await seal(k, s.command, s.sender, s.target, s.plaintext, unhex(s.nonce)), s.sealed);
    const text = new TextDecoder().decode(await open(k, s.sealed, s.command, s.sender, s.target));
    assert.equal(text, s.plaintext);
    await assert.rejects(open(k, s.sealed, s.command, s.sender, 'x'), (e) => e instanceof MeshError && e.code === 'unseal_failed');
    await assert.rejects(open(k, s.sealed, 'other', s.sender, s.target), (e) => e.code === 'unseal_failed');
  }
  await assert.rejects(open(k, 'AAAA', 'c', 's', 't'), (e) => e.code === 'unseal_failed');
  await assert.rejects(open(k, 'A'.repeat(70000), 'c', 's', 't'), (e) => e.code === 'unseal_failed');
  // A fresh seal opens and differs from the last (random nonces).
  const a = await seal(k, 'c', 's', 't', 'x');
  assert.notEqual(a, await seal(k, 'c', 's', 't', 'x'));
  assert.equal(new TextDecoder().decode(await open(k, a, 'c', 's', 't')), 'x');
});

test('identities from the same seed have core\'s peer ids and signatures', async () => {
  for (const v of vectors.identities) {
    const me = await Identity.fromSeed(unhex(v.seed));
    assert.equal(me.peerId, v.peer_id);
    assert.equal(await me.signText(v.message), v.signature);
    const pk = await PeerKey.fromPeerId(v.peer_id);
    assert.equal(await pk.verify(v.message, v.signature), true);
    assert.equal(await pk.verify(v.message + '.', v.signature), false);
    assert.equal(await pk.verify(v.message, 'short'), false);
  }
  const fresh = await Identity.generate();
  assert.equal(fresh.peerId.length, 43);
  assert.equal(await fresh.public.verify('m', await fresh.sign('m')), true);
  await assert.rejects(PeerKey.fromPeerId('not an id'), (e) => e.code === 'bad_key');
});

test('signing inputs match core byte for byte', async () => {
  const i = vectors.inputs;
  assert.equal(hex(await signing.announce(i.announce.tag, i.announce.id, i.announce.ts, i.announce.sealed)), i.announce.input);
  assert.equal(hex(await signing.leave(i.leave.tag, i.leave.id, i.leave.incarnation, i.leave.ts)), i.leave.input);
  assert.equal(hex(await signing.sdp(unhex(i.sdp.room_id), i.sdp.sender, i.sdp.target, i.sdp.incarnation, i.sdp.ts, i.sdp.kind, i.sdp.sdp)), i.sdp.input);
});

// Key epochs (core's `Rekey`): pages do not take or make REKEY lines yet; these are the
// parts they will, held to core's bytes.
test('a REKEY line reads, checks and moves the room to the tag and key core derives', async () => {
  const v = vectors.rekey;
  const k = await deriveRoomKey(vectors.invite_key.room, vectors.invite_key.secret);
  assert.equal(k.epoch, 0);
  const r = parseRekey(v.line);
  assert.equal(r.epoch, v.epoch);
  assert.equal(hex(r.key), v.key);
  assert.equal(hex(await signing.rekey(k.roomId, r.epoch, r.key, r.prev, r.until, r.removed)), v.input);
  assert.equal(await verifyRekey(r, k), true);
  const next = await rotatedRoomKey(k, r.epoch, r.key);
  assert.equal(next.tag, v.tag);
  assert.equal(hex(next.roomId), hex(k.roomId));
  assert.equal((await rotatedRoomKey(k, r.epoch - 1, r.prev)).tag, v.previous_tag);
  assert.equal(v.previous_tag, k.tag);
  const s = v.seal;
  assert.equal(await seal(next, s.command, s.sender, s.target, s.plaintext, unhex(s.nonce)), s.sealed);
  await assert.rejects(open(k, s.sealed, s.command, s.sender, s.target), (e) => e.code === 'unseal_failed');
  // Rewritten, or another room's: the signature fails.
  const later = parseRekey(v.line.replace(`"until":${r.until}`, `"until":${r.until + 1}`));
  assert.equal(await verifyRekey(later, k), false);
  assert.equal(await verifyRekey(r, await deriveRoomKey('team-2', vectors.invite_key.secret)), false);
  for (const bad of ['[]', '{', v.line.replace('"epoch":1', '"epoch":0'), v.line.replace('"key":"', '"key":"A'),
    v.line.replace('"removed":[', '"removed":[1,'), v.line.replace('"sig":"', '"sig":"AA')]) {
    assert.throws(() => parseRekey(bad), (e) => e instanceof MeshError && e.code === 'bad_rekey', bad.slice(0, 30));
  }
});

test('secrets parse as core\'s do', () => {
  const s = generateSecret();
  assert.match(s, /^rm1_[A-Za-z0-9_-]{43}$/);
  assert.equal(parseSecret(s).kind, 'invite');
  assert.equal(parseSecret('correct horse').kind, 'passphrase');
  for (const bad of ['', 'rm1_short', s.slice(0, -1) + 'B', 'x'.repeat(1025)]) {
    assert.throws(() => parseSecret(bad), (e) => e instanceof MeshError && e.code === 'bad_secret', bad.slice(0, 20));
  }
  assert.equal(b64url(fromB64url('AQID')), 'AQID');
  assert.equal(fromB64url('AQI='), null);
  assert.equal(fromB64url('AQJ'), null);
});

test('every C2SP/CCTV Ed25519 edge case gets core\'s decision', async () => {
  const got = await cctvBitmap(cctv, { PeerKey });
  const want = expectedBitmap(cctv);
  const diff = [];
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) diff.push(`${i} ${JSON.stringify(cctv[i].flags)}: got ${got[i]}`);
  assert.deepEqual(diff, []);
});
