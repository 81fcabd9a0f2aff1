// Secured rooms in the browser client, over WebCrypto only: the twin of core's
// `security` module (core/src/security/), held to the same vectors
// (core/tests/vectors/security.json and the C2SP/CCTV Ed25519 edge cases).
//
// - The room secret: an invite (`rm1_` + 43 base64url characters, used as it is) or a
//   passphrase (PBKDF2-HMAC-SHA256, 600,000 iterations, salted with the room name).
// - The room key: HKDF-SHA256 to a room id, a switchboard tag and an AES-256-GCM key
//   that seals signalling payloads, binding command, sender and target.
// - Identities: Ed25519 keys whose public half (base64url, 43 characters) is the peer
//   id, and the one validity rule for signatures (key and R canonical and not of small
//   order, S < L, then the browser's cofactorless verify).

import { MeshError } from './values.js';

export const INVITE_PREFIX = 'rm1_';
export const PBKDF2_ROUNDS = 600000;
export const PEER_ID_LEN = 43;
const MAX_PASSPHRASE = 1024;
/** The most admins an invite names (core's `MAX_ADMINS`). */
export const MAX_ADMINS = 16;

/** The creator's signing input of an invite's admins (core's `Admins`). */
function adminsInput(secret, body) {
  return concat(bytes('rtc-mesh/v1/admins'), ZERO, secret, bytes(body));
}

/**
 * `invite` (an `rm1_...` text without admins) naming `creator` (an Identity) and the
 * peer ids `others` as the room's admins, signed by the creator (core's
 * `RoomSecret::with_admins`).
 */
export async function inviteWithAdmins(invite, creator, others = []) {
  const s = parseSecret(invite);
  if (s.kind !== 'invite') throw new MeshError('bad_secret', "the invite's admins do not check: a passphrase cannot name admins");
  const ids = [creator.peerId];
  for (const o of others) {
    try {
      await PeerKey.fromPeerId(o);
    } catch {
      throw new MeshError('bad_secret', `the invite's admins do not check: ${JSON.stringify(o)} is not a member's key`);
    }
    if (!ids.includes(o)) ids.push(o);
  }
  if (ids.length > MAX_ADMINS) throw new MeshError('bad_secret', "the invite's admins do not check: more than 16 admins");
  const body = ids.join('.');
  const sig = await creator.sign(adminsInput(s.bytes, body));
  return `${INVITE_PREFIX}${b64url(s.bytes)}.${b64url(sig)}.${body}`;
}
const MAX_SEALED = 64 << 10;

const subtle = globalThis.crypto.subtle;
const utf8 = new TextEncoder();

/** base64url without padding. */
export function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** Decodes base64url without padding, canonical only (as core's decoder); null else. */
export function fromB64url(text) {
  if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  let bin;
  try {
    bin = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  } catch {
    return null;
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  // Trailing bits must be zero: the text is the one encoding of these bytes.
  return b64url(out) === text ? out : null;
}

/** The bytes of `parts`, one after another. */
export function concat(...parts) {
  const n = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(n);
  let i = 0;
  for (const p of parts) {
    out.set(p, i);
    i += p.length;
  }
  return out;
}

const bytes = (s) => utf8.encode(s);
const ZERO = new Uint8Array([0]);

/**
 * Reads a room secret: `{ kind: 'invite', bytes }` for `rm1_...`, else
 * `{ kind: 'passphrase', text }`. Throws a MeshError `bad_secret`.
 */
export function parseSecret(text) {
  if (typeof text !== 'string' || text === '') throw new MeshError('bad_secret', 'the room secret is empty');
  if (text.startsWith(INVITE_PREFIX)) {
    if (text.length > MAX_PASSPHRASE) throw new MeshError('bad_secret', `the room secret is ${text.length} bytes; the maximum is 1024`);
    const [secret, sig, ...ids] = text.slice(INVITE_PREFIX.length).split('.');
    const b = fromB64url(secret);
    if (!b || b.length !== 32) {
      throw new MeshError('bad_secret', 'the room secret starts with rm1_ but is not an invite: 43 base64url characters must follow');
    }
    if (sig === undefined) return { kind: 'invite', bytes: b, admins: null };
    // Admins (core's `Admins`): checked by deriveRoomKey, where the signature is.
    const bad = (why) => new MeshError('bad_secret', `the invite's admins do not check: ${why}`);
    const sigBytes = fromB64url(sig);
    if (!sigBytes || sigBytes.length !== 64) throw bad('the signature is not 86 base64url characters');
    if (!ids.length) throw bad('no admins after the signature');
    if (ids.length > MAX_ADMINS) throw bad('more than 16 admins');
    return { kind: 'invite', bytes: b, admins: { ids, sig: sigBytes, body: ids.join('.') } };
  }
  const n = bytes(text).length;
  if (n > MAX_PASSPHRASE) throw new MeshError('bad_secret', `the room secret is ${n} bytes; the maximum is 1024`);
  return { kind: 'passphrase', text };
}

/** A fresh invite secret (`rm1_...`). */
export function generateSecret() {
  return INVITE_PREFIX + b64url(crypto.getRandomValues(new Uint8Array(32)));
}

async function hkdf(ikm, salt, info, n) {
  const k = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  return new Uint8Array(await subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info: bytes(info) }, k, n * 8));
}

/**
 * The keys of `room` under `secret` (text): `{ roomId, tag, tagRaw, key }`, the AES key
 * non-extractable. A passphrase is stretched here (PBKDF2, about a second).
 */
export async function deriveRoomKey(room, secret) {
  const s = parseSecret(secret);
  let master;
  let admins = [];
  if (s.kind === 'invite') {
    master = s.bytes;
    if (s.admins) {
      const bad = (why) => new MeshError('bad_secret', `the invite's admins do not check: ${why}`);
      for (const id of s.admins.ids) {
        try {
          await PeerKey.fromPeerId(id);
        } catch {
          throw bad("an admin is not a member's key");
        }
      }
      const creator = await PeerKey.fromPeerId(s.admins.ids[0]);
      if (!(await creator.verify(adminsInput(s.bytes, s.admins.body), s.admins.sig))) {
        throw bad("the creator's signature does not check");
      }
      admins = s.admins.ids;
      // The admins follow the secret in the derivation: other admins, another room.
      master = concat(master, bytes(s.admins.body));
    }
  } else {
    const pw = await subtle.importKey('raw', bytes(s.text), 'PBKDF2', false, ['deriveBits']);
    const salt = concat(bytes('rtc-mesh/v1/password/'), bytes(room));
    master = new Uint8Array(await subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt, iterations: PBKDF2_ROUNDS }, pw, 256));
  }
  const salt = concat(bytes('rtc-mesh/v1/room/'), bytes(room));
  const roomId = await hkdf(master, salt, 'rtc-mesh/v1/room-id', 16);
  const k0 = await hkdf(master, salt, 'rtc-mesh/v1/epoch-0', 32);
  const tagRaw = await hkdf(k0, roomId, 'rtc-mesh/v1/tag', 16);
  const seal = await hkdf(k0, roomId, 'rtc-mesh/v1/signal', 32);
  return epochKeys(roomId, admins, 0, k0);
}

/** The keys of one epoch of a room: the tag and the sealing key from its key `k`
 * (core's `RoomKey::of_epoch`). `epochKey` is secret: it is what a `REKEY` line hands on. */
async function epochKeys(roomId, admins, epoch, k) {
  const tagRaw = await hkdf(k, roomId, 'rtc-mesh/v1/tag', 16);
  const seal = await hkdf(k, roomId, 'rtc-mesh/v1/signal', 32);
  const key = await subtle.importKey('raw', seal, 'AES-GCM', false, ['encrypt', 'decrypt']);
  seal.fill(0);
  return Object.freeze({ roomId, tag: b64url(tagRaw), tagRaw, key, admins: Object.freeze([...admins]), epoch, epochKey: k });
}

/** `rk`'s room in epoch `epoch`, whose key is the 32 bytes `k` (from a `REKEY` line):
 * core's `RoomKey::rotated`. The room id and the admins stay. */
export async function rotatedRoomKey(rk, epoch, k) {
  if (!(k instanceof Uint8Array) || k.length !== 32) throw new MeshError('bad_rekey', 'an epoch key is 32 bytes');
  return epochKeys(rk.roomId, rk.admins, epoch, new Uint8Array(k));
}

/** The most removed members one `REKEY` line lists (core's `MAX_REMOVED`). */
export const MAX_REMOVED = 512;

/**
 * Reads the JSON of a `REKEY` line (after `REKEY `) as core's `Rekey::parse`: `{epoch,
 * key, prev, until, removed, by, sig}` (keys as bytes). Only the form is checked;
 * throws a MeshError `bad_rekey`.
 */
export function parseRekey(json) {
  const bad = (why) => new MeshError('bad_rekey', `bad REKEY line: ${why}`);
  let o;
  try {
    o = JSON.parse(json);
  } catch {
    throw bad('not JSON');
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) throw bad('not an object');
  const whole = (n, lo, hi) => typeof n === 'number' && Number.isInteger(n) && n >= lo && n <= hi;
  if (!whole(o.epoch, 1, 4294967295)) throw bad('epoch is not a whole number from 1 to 2^32-1');
  const key32 = (name) => {
    const b = fromB64url(o[name]);
    if (!b || b.length !== 32) throw bad(`${name} is not 43 base64url characters`);
    return b;
  };
  const key = key32('key');
  const prev = key32('prev');
  if (!whole(o.until, 0, 9.007e15)) throw bad('until is not a whole number of milliseconds');
  const sig = fromB64url(o.sig);
  if (!sig || sig.length !== 64) throw bad('sig is not 86 base64url characters');
  if (typeof o.by !== 'string' || o.by.length !== PEER_ID_LEN || fromB64url(o.by)?.length !== 32) throw bad("by is not a member's key");
  if (!Array.isArray(o.removed)) throw bad('removed is not an array');
  if (o.removed.length > MAX_REMOVED) throw bad(`removed lists more than ${MAX_REMOVED} members`);
  for (let i = 0; i < o.removed.length; i++) {
    const r = o.removed[i];
    if (typeof r !== 'string' || (i > 0 && !(compareUtf8(o.removed[i - 1], r) < 0))) throw bad('removed is not a sorted list of distinct ids');
  }
  return Object.freeze({ epoch: o.epoch, key, prev, until: o.until, removed: Object.freeze([...o.removed]), by: o.by, sig });
}

/** Byte order of two texts' UTF-8 (core's `str` order). */
function compareUtf8(a, b) {
  const x = bytes(a);
  const y = bytes(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

/** Whether the line `r` (from `parseRekey`) is signed by its `by` for `rk`'s room (core's
 * `Rekey::verify`). */
export async function verifyRekey(r, rk) {
  const input = await signing.rekey(rk.roomId, r.epoch, r.key, r.prev, r.until, r.removed);
  try {
    return await (await PeerKey.fromPeerId(r.by)).verify(input, r.sig);
  } catch {
    return false;
  }
}

/** The most epochs one line may move a room ahead (core's `MAX_EPOCH_JUMP`). */
export const MAX_EPOCH_JUMP = 1024;
/** The longest grace period a line may give, from the taker's clock (core's `MAX_GRACE_MS`). */
export const MAX_GRACE_MS = 30 * 86400000;

/** The JSON of a `REKEY` line (after `REKEY `), as core's `Rekey::to_json` writes it. */
export function rekeyJson(r) {
  return JSON.stringify({ epoch: r.epoch, key: b64url(r.key), prev: b64url(r.prev), until: r.until, removed: r.removed, by: r.by, sig: b64url(r.sig) });
}

/**
 * A rotation of `rk`'s room by `identity` (core's `Rekey::rotate`): the next epoch with a
 * fresh key, a grace period ending at `until` (wall-clock ms), listing `removed` (sorted
 * and cut to MAX_REMOVED here); null once the epochs are spent.
 */
export async function rotateRekey(rk, removed, until, identity) {
  if (rk.epoch >= 4294967295) return null;
  const epoch = rk.epoch + 1;
  const key = crypto.getRandomValues(new Uint8Array(32));
  const prev = new Uint8Array(rk.epochKey);
  const list = [...new Set(removed)].sort(compareUtf8).slice(0, MAX_REMOVED);
  const sig = await identity.sign(await signing.rekey(rk.roomId, epoch, key, prev, until, list));
  return Object.freeze({ epoch, key, prev, until, removed: Object.freeze(list), by: identity.peerId, sig });
}

/** Whether line `r`'s epoch wins over `rk`'s: a higher epoch, or the same one with a
 * smaller key (core's `Rekey::beats`). */
export function rekeyBeats(r, rk) {
  return r.epoch > rk.epoch || (r.epoch === rk.epoch && compareKeys(r.key, rk.epochKey) < 0);
}

/** Whether line `a` wins over line `b` (core's `Rekey::outranks`). */
export function rekeyOutranks(a, b) {
  return a.epoch > b.epoch || (a.epoch === b.epoch && compareKeys(a.key, b.key) < 0);
}

function compareKeys(a, b) {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}

/**
 * What core's `Rekey::check` decides of a line whose signature checked, for a member at
 * `rk` whose clock reads `wallMs`, given who is removed (`isRemoved(id)`): null (it may
 * be taken), or why not: `grace_too_long`, `not_allowed`, `too_far_ahead` or
 * `unknown_removal` (it lists a removal not seen yet: keep it until it lands).
 */
export function checkRekey(r, rk, wallMs, isRemoved) {
  if (r.until > wallMs + MAX_GRACE_MS) return 'grace_too_long';
  if (isRemoved(r.by) || (!rk.admins.includes(r.by) && r.removed.length === 0)) return 'not_allowed';
  if (r.epoch > rk.epoch + MAX_EPOCH_JUMP) return 'too_far_ahead';
  if (!r.removed.every((id) => isRemoved(id))) return 'unknown_removal';
  return null;
}

/**
 * A line kept across a restart (`REKEY {..}`, as a `rekeyed` event gave it) made ready
 * for a mesh of `rk`'s room: `{rekey, key, previous}` (the line, its epoch's keys and the
 * epoch's before it, for the grace period), or null if it does not beat `rk` (core's
 * `Security::resume`). Throws a MeshError `bad_rekey` if it is not a line of this room.
 */
export async function resumeRekey(rk, line) {
  const text = String(line).trim();
  const r = parseRekey(text.startsWith('REKEY ') ? text.slice(6) : text);
  if (!(await verifyRekey(r, rk))) throw new MeshError('bad_rekey', 'the REKEY line is not signed for this room');
  if (!rekeyBeats(r, rk)) return null;
  return { rekey: r, key: await rotatedRoomKey(rk, r.epoch, r.key), previous: await rotatedRoomKey(rk, r.epoch - 1, r.prev) };
}

function aad(rk, command, sender, target) {
  return concat(bytes('rtc-mesh/v1/signal'), ZERO, rk.tagRaw, bytes(command), ZERO, bytes(sender), ZERO, bytes(target));
}

/** Seals `plaintext` (bytes or text) as core's `RoomKey::seal`; `nonce` for vectors only. */
export async function seal(rk, command, sender, target, plaintext, nonce) {
  const iv = nonce ?? crypto.getRandomValues(new Uint8Array(12));
  const msg = typeof plaintext === 'string' ? bytes(plaintext) : plaintext;
  const ct = new Uint8Array(await subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad(rk, command, sender, target), tagLength: 128 }, rk.key, msg));
  return b64url(concat(iv, ct));
}

/** Opens a sealed payload; throws a MeshError `unseal_failed` (nothing of the contents in it). */
export async function open(rk, sealed, command, sender, target) {
  if (typeof sealed !== 'string' || sealed.length > MAX_SEALED) throw new MeshError('unseal_failed', 'sealed payload too long');
  const b = fromB64url(sealed);
  if (!b || b.length < 28) throw new MeshError('unseal_failed', 'the sealed payload is not a base64url nonce, ciphertext and tag');
  try {
    return new Uint8Array(await subtle.decrypt({ name: 'AES-GCM', iv: b.subarray(0, 12), additionalData: aad(rk, command, sender, target), tagLength: 128 }, rk.key, b.subarray(12)));
  } catch {
    throw new MeshError('unseal_failed', 'the sealed payload does not open with this room\'s key for this command, sender and target');
  }
}

// The encodings of the points of small order that are canonical in y (C2SP/CCTV),
// including those with the sign bit set on x = 0: core's `SMALL_ORDER`.
const SMALL_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000080',
  '0100000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000080',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
];
const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/** 'fine', 'non_canonical' (y ≥ p) or 'small_order', as core's `check_point`. */
function checkPoint(b) {
  let atLeastP = (b[31] & 0x7f) === 0x7f && b[0] >= 0xed;
  for (let i = 1; i < 31 && atLeastP; i++) atLeastP = b[i] === 0xff;
  if (atLeastP) return 'non_canonical';
  return SMALL_ORDER.includes(hex(b)) ? 'small_order' : 'fine';
}

// L, little-endian.
const ORDER = new Uint8Array([0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);

function belowOrder(s) {
  for (let i = 31; i >= 0; i--) if (s[i] !== ORDER[i]) return s[i] < ORDER[i];
  return false;
}

/** A member's public key, checked. Build with `PeerKey.fromPeerId` or `fromBytes`. */
export class PeerKey {
  constructor(raw, key) {
    this.raw = raw;
    this.key = key;
    this.peerId = b64url(raw);
  }

  /** The key a key-derived peer id names; throws a MeshError `bad_key`. */
  static async fromPeerId(id) {
    const b = typeof id === 'string' && id.length === PEER_ID_LEN ? fromB64url(id) : null;
    if (!b || b.length !== 32) throw new MeshError('bad_key', 'not a key-derived peer id: 43 base64url characters of an Ed25519 public key');
    return PeerKey.fromBytes(b);
  }

  /** The key of these 32 bytes, if canonical and not of small order. */
  static async fromBytes(b) {
    const c = checkPoint(b);
    if (c === 'non_canonical') throw new MeshError('bad_key', 'the public key is a non-canonical point encoding');
    if (c === 'small_order') throw new MeshError('bad_key', 'the public key is a point of small order');
    let key;
    try {
      key = await subtle.importKey('raw', b, { name: 'Ed25519' }, true, ['verify']);
    } catch {
      throw new MeshError('bad_key', 'the public key is not a point of the curve');
    }
    return new PeerKey(new Uint8Array(b), key);
  }

  /** Whether `sig` (64 bytes, or 86 base64url characters) is this key's signature of
   * `msg` under the shared rule. */
  async verify(msg, sig) {
    const s = typeof sig === 'string' ? (sig.length === 86 ? fromB64url(sig) : null) : sig;
    if (!s || s.length !== 64) return false;
    if (checkPoint(s.subarray(0, 32)) !== 'fine' || !belowOrder(s.subarray(32))) return false;
    try {
      return await subtle.verify({ name: 'Ed25519' }, this.key, s, typeof msg === 'string' ? bytes(msg) : msg);
    } catch {
      return false;
    }
  }
}

// PKCS #8 of an Ed25519 private key: this prefix, then the 32-byte seed (RFC 8410).
const PKCS8_PREFIX = new Uint8Array([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20]);

/** A member's own Ed25519 key; `peerId` is its public half. */
export class Identity {
  constructor(privateKey, publicKey, raw) {
    this.privateKey = privateKey;
    this.public = publicKey;
    this.peerId = b64url(raw);
  }

  /** The identity of a 32-byte seed (core's `Identity::from_seed`); the private key
   * non-extractable unless `extractable`. */
  static async fromSeed(seed, extractable = false) {
    const privateKey = await subtle.importKey('pkcs8', concat(PKCS8_PREFIX, seed), { name: 'Ed25519' }, extractable, ['sign']);
    // The public half: from a JWK of the same seed (WebCrypto derives it there).
    const jwk = await subtle.exportKey('jwk', await subtle.importKey('pkcs8', concat(PKCS8_PREFIX, seed), { name: 'Ed25519' }, true, ['sign']));
    const raw = fromB64url(jwk.x);
    return new Identity(privateKey, await PeerKey.fromBytes(raw), raw);
  }

  /** A new identity (its key non-extractable: keep the object, in IndexedDB say). */
  static async generate() {
    const pair = await subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
    const raw = new Uint8Array(await subtle.exportKey('raw', pair.publicKey));
    return new Identity(pair.privateKey, await PeerKey.fromBytes(raw), raw);
  }

  /** The Ed25519 signature of `msg` (bytes or text), 64 bytes. */
  async sign(msg) {
    return new Uint8Array(await subtle.sign({ name: 'Ed25519' }, this.privateKey, typeof msg === 'string' ? bytes(msg) : msg));
  }

  /** `sign` as base64url text (86 characters). */
  async signText(msg) {
    return b64url(await this.sign(msg));
  }
}

const sha256 = async (s) => new Uint8Array(await subtle.digest('SHA-256', typeof s === 'string' ? bytes(s) : s));

function be32(n) {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

function be64(ts) {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(ts));
  return b;
}

/** The signing inputs of core's `security::signing`, byte for byte. */
export const signing = Object.freeze({
  async announce(tag, id, ts, sealed) {
    return concat(bytes('rtc-mesh/v1/announce'), ZERO, bytes(tag), ZERO, bytes(id), ZERO, be64(ts), await sha256(sealed));
  },
  async leave(tag, id, incarnation, ts) {
    return concat(bytes('rtc-mesh/v1/leave'), ZERO, bytes(tag), ZERO, bytes(id), ZERO, bytes(incarnation), ZERO, be64(ts));
  },
  async sdp(roomId, sender, target, incarnation, ts, kind, sdp) {
    return concat(bytes('rtc-mesh/v1/sdp'), ZERO, roomId, bytes(sender), ZERO, bytes(target), ZERO, bytes(incarnation), ZERO,
      be64(ts), bytes(kind), ZERO, await sha256(sdp));
  },
  async rekey(roomId, epoch, key, prev, until, removed) {
    return concat(bytes('rtc-mesh/v1/rekey'), ZERO, roomId, be32(epoch), await sha256(key), await sha256(prev), be64(until),
      ...removed.flatMap((id) => [bytes(id), ZERO]));
  },
});
