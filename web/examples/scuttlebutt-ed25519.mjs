// An Ed25519 sign/verify plugin for scuttlebutt 5.6: a scuttlebutt Model that signs its
// writes and checks every update as rtc-mesh's secured rooms do, so that it replicates a
// signed store both ways with `rtc-mesh replicate --secret S --room ROOM` (and, through
// such a replicator, with the room's members). Node only: scuttlebutt signs
// synchronously, so signing uses node:crypto; checking uses the browser client's own
// rule (../lib/updates.js: the same accept and refuse decisions as Rust).
//
//   import Model from 'scuttlebutt/model.js'
//   import { signedModelOptions } from 'rtc-mesh/examples/scuttlebutt-ed25519.mjs'
//   const model = new Model(await signedModelOptions({ room: 'ledger', secret: 'rm1_...' }))
//
// `seed` (32 bytes) keeps the identity across restarts; without it a fresh one is made.
// The Model's id is `<peer id>.<incarnation>`. Inherited from scuttlebutt 5.6: it moves
// a source's clock before verifying (`_update`), so a forged update with a high
// timestamp makes that source's later genuine updates look old to this Model until it
// resyncs; rtc-mesh checks first. Refused updates are emitted as `unverified_data`.

import { createPrivateKey, randomBytes, sign } from 'node:crypto';
import { Identity, b64url, deriveRoomKey, fromB64url } from '../lib/security.js';
import { UpdateGuard, signingInput } from '../lib/updates.js';
import { toJson } from '../lib/values.js';

// PKCS #8 of an Ed25519 private key: this prefix, then the 32-byte seed (RFC 8410).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** A scuttlebutt update `[[key, value], ts, source, sig?]` as our client's update. */
function fromScuttlebutt(update) {
  const [kv, ts, source, sig] = update;
  const value = Array.isArray(kv) && kv.length > 1 ? kv[1] : null;
  const u = { key: kv[0], value, json: toJson(value === undefined ? null : value), ts, source };
  if (typeof sig === 'string' && sig.length === 86) {
    const b = fromB64url(sig);
    if (b && b.length === 64) u.sig = b;
  }
  return u;
}

/**
 * The options of a signed scuttlebutt Model (`{id, sign, verify}`) for the secured room
 * `room` under `secret` (an invite `rm1_...`, or a passphrase: stretched, about a second).
 */
export async function signedModelOptions({ room, secret, seed }) {
  const key = await deriveRoomKey(room, secret);
  const s = seed ? new Uint8Array(seed) : new Uint8Array(randomBytes(32));
  const identity = await Identity.fromSeed(s);
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, Buffer.from(s)]), format: 'der', type: 'pkcs8' });
  const guard = new UpdateGuard(key.roomId, identity);
  const id = `${identity.peerId}.${randomBytes(8).toString('hex')}`;
  return {
    id,
    createId: () => id,
    sign(update) {
      return b64url(sign(null, signingInput(key.roomId, fromScuttlebutt(update)), privateKey));
    },
    verify(update, cb) {
      guard.check(fromScuttlebutt(update)).then((c) => cb(null, c === 'ok'), (e) => cb(e));
    },
  };
}
