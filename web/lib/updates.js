// Signed updates in secured rooms: core's `security::updates`, with the same accept and
// refuse decisions (core/tests/vectors/updates.json holds the two to one list).
//
// The signing input: "rtc-mesh/v1/update" 0x00 ‖ room id (16 bytes) ‖
// UTF-8(JSON.stringify([[key, value], ts, source])). The writer is the first 43
// characters of the source (then nothing or "."). Checked on receipt, in order: the
// source names a usable key (`bad_source`), a signature is there (`unsigned`), it
// verifies under the shared Ed25519 rule (`bad_sig`), the write rules allow it
// (`not_owner`: `users/<id>` and `users/<id>/...` are member <id>'s alone, `room/` the
// admins', whom the invite names and who may write anywhere), the writer was not
// removed before the update's time (`revoked`, by an admin's `room/revoked/<id>` =
// `{"after": ts}`). WebCrypto is
// asynchronous, so a link's updates are checked ahead (`UpdateGuard.check`) and applied
// in arrival order with the result (`Store.apply` reads `u.checked`).

import { PEER_ID_LEN, PeerKey, concat } from './security.js';
import { updateText } from './codecs.js';

/** How far ahead of our clock an update may be stamped and still be applied (ms). */
export const MAX_FUTURE_MS = 60000;
/** The most updates held back for being stamped ahead. */
export const MAX_HELD = 4096;
/** Refused updates after which a link is closed, and how often one is forgiven (ms). */
export const MAX_STRIKES = 16;
export const STRIKE_FORGIVEN_MS = 4000;

const PREFIX = new TextEncoder().encode('rtc-mesh/v1/update\u0000');
const MAX_KEYS = 4096;

/** The writer's peer id in `source`, or null. */
export function writerOf(source) {
  if (typeof source !== 'string' || !/^[A-Za-z0-9_-]{43}(\.|$)/.test(source)) return null;
  return source.slice(0, PEER_ID_LEN);
}

/** Removals: `room/revoked/<peer id>` = `{"after": ts}` (core's `REVOKED_PREFIX`). */
export const REVOKED_PREFIX = 'room/revoked/';

/** The member a `room/revoked/` key removes and the time its value names, as
 * `[id, after]`, or null (core's `revocation`). The room's admins cannot be removed. */
export function revocation(key, value, admins = []) {
  if (typeof key !== 'string' || !key.startsWith(REVOKED_PREFIX)) return null;
  const id = key.slice(REVOKED_PREFIX.length);
  if (id.length !== PEER_ID_LEN || writerOf(id) !== id || admins.includes(id)) return null;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const after = value.after;
  return typeof after === 'number' && Number.isFinite(after) ? [id, after] : null;
}

/** Whether member `writer` may write or delete `key` (policy v1: the room's `admins`
 * anything; `users/<id>/` is member <id>'s, `room/` the admins'). */
export function mayWrite(key, writer, admins = []) {
  if (admins.includes(writer)) return true;
  if (key.startsWith('room/')) return false;
  if (!key.startsWith('users/')) return true;
  return key.slice(6).split('/')[0] === writer;
}

/** The signing input of update `u` in the room `roomId` (16 bytes). */
export function signingInput(roomId, u) {
  return concat(PREFIX, roomId, new TextEncoder().encode(updateText(u)));
}

/** A secured store's part: the room, our identity, and the writers' keys seen. */
export class UpdateGuard {
  constructor(roomId, identity, admins = []) {
    this.roomId = roomId;
    this.identity = identity;
    this.writer = identity.peerId;
    /** The room's admins (peer ids), who may write anywhere. */
    this.admins = [...admins];
    this.keys = new Map(); // writer -> Promise<PeerKey|null>
  }

  /** Our signature of `u` (64 bytes). */
  sign(u) {
    return this.identity.sign(signingInput(this.roomId, u));
  }

  /** The check of an update from a peer: 'ok', 'bad_source', 'unsigned', 'bad_sig' or
   * 'not_owner' (core's order). */
  async check(u) {
    const writer = writerOf(u.source);
    if (writer === null) return 'bad_source';
    if (!u.sig) return 'unsigned';
    let key = this.keys.get(writer);
    if (key === undefined) {
      if (this.keys.size >= MAX_KEYS) this.keys.clear();
      key = PeerKey.fromPeerId(writer).catch(() => null);
      this.keys.set(writer, key);
    }
    const k = await key;
    if (k === null) return 'bad_source';
    if (!(await k.verify(signingInput(this.roomId, u), u.sig))) return 'bad_sig';
    if (!mayWrite(u.key, writer, this.admins)) return 'not_owner';
    return 'ok';
  }
}
