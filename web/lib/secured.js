// Secured rooms in the mesh: core's `mesh/secured.rs`, rule for rule. Every signal goes
// to the switchboard sealed (announces, leaves and SDP signed too), and every signal from
// it is opened and checked before any rule of the mesh sees it; the rules then run on the
// opened messages exactly as in an open room.
//
// On the wire (any part not shown is as in an open room):
//
//   /announce|<pk43>|{"id":"<pk43>","room":"<tag>","sec":1,"ts":<ms>,"sig":"<b64url>","v":1,"sealed":"<b64url>"}
//         sealed => {"agent":"..","incarnation":"..","codecs":[..],"attrs":{..user attributes}}
//   /to|<peer>|/mesh:sdp|<me>|{"v":1,"sealed":"<b64url>"}
//         sealed => deflate-raw of {"type":"offer"|"answer","sdp":"..","incarnation":"..","ts":<ms>,"sig":"<b64url>"[,"restart":true]}
//   /to|<peer>|/mesh:candidate|<me>|{"v":1,"sealed":"<b64url>"}     sealed => [the candidate objects]
//   /leave|<pk43>|{"id":"<pk43>","incarnation":"..","ts":<ms>,"sig":"<b64url>"}
//
// WebCrypto is asynchronous and core is not, so the order is kept by two queues: what
// goes out is sealed and signed in the order it was sent, and reaches the signalling
// client in that order (with whatever else touches the client: a connection taken up
// or lost, the close); what comes in is opened and its signature checked in arrival
// order, and handed to the mesh in that order. The mesh itself stays synchronous. The
// work is split as core's checks allow: the cryptography (opening, the signature) only
// depends on the message, so it runs in the queue; what depends on the mesh's state (the
// incarnation the member announced, the freshness of timestamps) and the counters run
// when the mesh takes the message, in core's order, so that exactly the counter core
// would count is counted: `unsecuredSignals` (unsealed or unsigned on a secured tag),
// `unsealFailures` (does not open for its command, sender and target), `badSignatures`,
// `staleSignals` (older than the last of its kind from that member, further than
// `maxSignalAgeMs` from our clock, or of another incarnation). A leave without a valid
// signature is taken as the switchboard's `disconnected`: the link, if open, decides.
//
// The SDP is compressed (raw DEFLATE, RFC 1951) before it is sealed, as core does:
// sealed and base64url'd, a signed SDP would be 1.6 times its open size. (Compressing
// before encrypting leaks the compressed length, which matters where an attacker puts
// chosen text beside a secret in one payload; no part of an SDP is chosen by anyone but
// its author.) The browser's CompressionStream makes other bytes than core's encoder, as
// any two DEFLATE encoders do; each side inflates whatever the other wrote. An opened
// SDP payload inflates to at most MAX_SDP_PLAIN bytes, or it does not open.

import { MeshError, compareBytes, parseJson, plainObject, toJson, validPeerId } from './values.js';
import { encodeSignal, parseSignal } from './signal.js';
import { PeerKey, concat, open, seal, signing } from './security.js';
import { Epochs } from './rekeying.js';

/** How far a signed announce, leave or SDP may be from our clock (core's
 * `Security::DEFAULT_MAX_SIGNAL_AGE`, 5 min). */
export const DEFAULT_MAX_SIGNAL_AGE_MS = 300000;
/** The shortest time between two announces made again for announces that did not
 * open (core's `REANNOUNCE_GAP`). */
const REANNOUNCE_GAP_MS = 5000;
/** The most members whose last signed timestamps are kept (core's `MAX_FRESH`). */
const MAX_FRESH = 4096;
/** Data-channel messages (frames or lines) waiting for their updates' checks: past
 * this the link is dropped (it sends faster than we can verify). */
const MAX_INBOX = 4096;
/** Kinds of signed signals for the freshness rule, in core's order (`Signed`). */
const KIND_ORDER = { announce: 0, leave: 1, sdp: 2 };
/** The announce attributes the mesh sets itself (core's `reserved_attribute`). */
const RESERVED = new Set(['id', 'room', 'agent', 'incarnation', 'codecs']);
const NEGOTIATION = new Set(['mesh:sdp', 'mesh:candidate', 'mesh:candidates']);
/** The most bytes an opened SDP payload inflates to (core's `MAX_SDP_PLAIN`). */
export const MAX_SDP_PLAIN = 64 << 10;
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Core's `f64 as u64` (saturating, truncating), as a BigInt: what signing inputs take. */
function asU64(x) {
  if (!(x > 0)) return 0n;
  if (x >= 18446744073709551616) return 18446744073709551615n;
  return BigInt(Math.trunc(x));
}

/** `text` compressed: raw DEFLATE. */
async function deflate(text) {
  const s = new Blob([text]).stream().pipeThrough(new CompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

/** Raw DEFLATE `bytes` inflated; throws if they are not, or inflate past `max` bytes
 * (read a chunk at a time, so that a small payload cannot make a large allocation). */
async function inflate(bytes, max) {
  const reader = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate-raw')).getReader();
  const parts = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > max) {
      reader.cancel().catch(() => {});
      throw new RangeError(`inflates past ${max} bytes`);
    }
    parts.push(value);
  }
  return concat(...parts);
}

/** Opened bytes as a JSON value (core's `Value::from_json_with`); throws if they are not. */
function decode(bytes) {
  return parseJson(utf8.decode(bytes));
}

/** Hands an error of our own code to the host (it is a bug, not a refusal). */
function rethrow(e) {
  queueMicrotask(() => {
    throw e;
  });
}

/**
 * A member's part in a secured room, held by its {@link Mesh} (`config.security`:
 * `{key, identity, maxSignalAgeMs}`, `key` from `deriveRoomKey`, `identity` an
 * `Identity` whose peer id is the mesh's id).
 */
export class Secured {
  constructor(mesh, security) {
    this.mesh = mesh;
    this.key = security.key;
    this.identity = security.identity;
    this.maxSignalAgeMs = security.maxSignalAgeMs ?? DEFAULT_MAX_SIGNAL_AGE_MS;
    /** The timestamp of our last signature. */
    this.sigTs = 0;
    /** The last accepted signed timestamp per member and kind: key -> {from, kind, ts}. */
    this.freshTs = new Map();
    /** Members' public keys, imported once each. */
    this.keys = new Map();
    /** Connections taken up so far (core's `SignalClient::connections`, as the mesh
     * saw them: the client's own count lags behind the queue). */
    this.connects = 0;
    this.out = { tail: Promise.resolve(), pending: 0 };
    this.in = { tail: Promise.resolve(), pending: 0 };
    /** Our writes being signed, and links' updates being checked (lib/updates.js). */
    this.signing = { tail: Promise.resolve(), pending: 0 };
    /** Per link: its data-channel messages waiting for their checks. */
    this.inboxes = new Map();
    /** When we last announced again for an announce that did not open. */
    this.reannouncedAt = null;
    /** The key epochs: `this.key` is the current epoch's keys (lib/rekeying.js). */
    this.epochs = new Epochs(this, security);
  }

  // -- signed updates

  /** A local write: reported at once (as core does), sent once signed, in the order
   * written. A signature WebCrypto refuses is an `error` event (`sign_failed`): the write
   * stays local. */
  signUpdate(u) {
    const replica = this.mesh.replica;
    replica.onUpdate(u, true);
    const signed = this.mesh.store.guard.sign(u).catch((e) => {
      this.mesh.event('error', new MeshError('sign_failed', `the write of ${JSON.stringify(u.key)} could not be signed: ${e && e.message}`));
      return null;
    });
    this.queue(this.signing, signed, (sig) => {
      if (sig) u.sig = sig;
      // A durable store records it now (and holds everything back until then).
      this.mesh.store.signed(u);
      if (sig) replica.send(u, null);
    });
  }

  /** Decoded messages from `peer`'s link: its updates checked (all at once), then the
   * messages handled in arrival order. An update its source's clock already covers, and
   * that does not win its key, is not checked (it is stale whatever it says). */
  linkIn(now, peer, link, msgs) {
    const mesh = this.mesh;
    // One queue per link: arrival order holds within a link, and a flood on one link
    // neither delays nor drops the others.
    let inbox = this.inboxes.get(link);
    if (!inbox) {
      inbox = { tail: Promise.resolve(), pending: 0 };
      this.inboxes.set(link, inbox);
    }
    if (inbox.pending >= MAX_INBOX) {
      this.inboxes.delete(link);
      mesh.loseLink(peer, mesh.lastNow + mesh.backoff(4), 'failed');
      mesh.syncDirty = true;
      return;
    }
    const store = mesh.store;
    const session = mesh.replica.session(link);
    const checks = [];
    for (const m of msgs) {
      if (m.type !== 'update' || !session || session.misbehaved) continue;
      // Stale now stays stale (a key's winner only grows): no need to check it.
      const known = store.clock.get(m.source);
      if (known !== undefined && m.ts <= known && !store.wins(m)) continue;
      checks.push(store.guard.check(m).then((c) => { m.checked = c; }));
    }
    this.queue(inbox, Promise.all(checks), () => mesh.handleMessages(now, peer, link, msgs));
    inbox.tail = inbox.tail.finally(() => {
      if (inbox.pending === 0 && this.inboxes.get(link) === inbox) this.inboxes.delete(link);
    });
  }

  // -- the queues

  /** Runs `f` with what `p` gives once it has and everything queued on `side` before it
   * has run; then tells the mesh's driver that outputs may be waiting. */
  queue(side, p, f) {
    side.pending++;
    side.tail = side.tail
      .then(() => p)
      .then(
        (v) => {
          try {
            f(v);
          } catch (e) {
            rethrow(e);
          }
        },
        // WebCrypto refused (it does not for keys it made): nothing to hand on.
        () => {},
      )
      .finally(() => {
        side.pending--;
        if (typeof this.mesh.onOutput === 'function') this.mesh.onOutput();
      });
  }

  /** Runs `f` on the signalling client behind what is being sealed (at once when
   * nothing is). */
  client(f) {
    if (this.out.pending === 0) f();
    else this.queue(this.out, null, f);
  }

  /** Whether anything is being sealed, opened, signed or checked. */
  busy() {
    if (this.out.pending > 0 || this.in.pending > 0 || this.signing.pending > 0 || this.epochs.queue.pending > 0) return true;
    for (const inbox of this.inboxes.values()) if (inbox.pending > 0) return true;
    return false;
  }

  /** Resolves once nothing is being sealed, opened, signed or checked. */
  async settled() {
    while (this.busy()) {
      await Promise.all([this.out.tail, this.in.tail, this.signing.tail, this.epochs.queue.tail, ...[...this.inboxes.values()].map((i) => i.tail)]);
    }
  }

  // -- what goes out (core's `secure_out`)

  /** Wall-clock milliseconds at `now` (the store's clock, as core's `wall_ms`). */
  wallMs(now) {
    return Math.max(0, Math.floor(this.mesh.epochMs + (now - this.mesh.startMs)));
  }

  /** A timestamp for our next signature: wall time, strictly after the last one. */
  nextSigTs(now) {
    const ts = Math.max(this.wallMs(now), this.sigTs + 1);
    this.sigTs = ts;
    return ts;
  }

  /** `text` (one of ours) as it goes to the switchboard: a promise of the sealed and
   * signed text, or null if it cannot be sent sealed (it is then not sent at all). The
   * timestamp is taken now, so timestamps follow the order of sending. */
  seal(now, text) {
    const m = parseSignal(text);
    if (!m) return Promise.resolve(null);
    const signed = m.command === 'announce' || m.command === 'leave' || m.command === 'mesh:sdp';
    return this.sealed(m, signed ? this.nextSigTs(now) : 0, text);
  }

  async sealed(m, ts, text) {
    const me = this.mesh.id;
    const inc = this.mesh.incarnation;
    const target = m.to ?? '';
    // The keys as they are now (a line taken while this is sealed does not change them):
    // a peer that came in under the previous epoch's key is answered under it, and
    // announces and leaves are signed on the door.
    const k = this.epochs.sealing(target);
    const door = this.epochs.door();
    const wrapped = (sealed) => encodeSignal(m.command, me, [{ v: 1, sealed }], m.to);
    switch (m.command) {
      case 'announce': {
        const inner = [];
        const user = [];
        for (const [a, v] of Object.entries(isObject(m.args[0]) ? m.args[0] : {})) {
          if (a === 'incarnation' || a === 'codecs' || a === 'agent') inner.push([a, v]);
          else if (!RESERVED.has(a)) user.push([a, v]);
        }
        inner.push(['attrs', plainObject(user)]);
        const sealed = await seal(k, 'announce', me, target, toJson(plainObject(inner)));
        const sig = await this.identity.signText(await signing.announce(door, me, ts, sealed));
        return encodeSignal('announce', me, [{ id: me, room: door, sec: 1, ts, sig, v: 1, sealed }], m.to);
      }
      case 'leave': {
        const sig = await this.identity.signText(await signing.leave(door, me, inc, ts));
        return encodeSignal('leave', me, [{ id: me, incarnation: inc, ts, sig }], m.to);
      }
      case 'mesh:sdp': {
        const inner = new Map(Object.entries(isObject(m.args[0]) ? m.args[0] : {}));
        const text = (a) => (typeof inner.get(a) === 'string' ? inner.get(a) : '');
        const input = await signing.sdp(k.roomId, me, target, inc, ts, text('type'), text('sdp'));
        inner.set('incarnation', inc);
        inner.set('ts', ts);
        inner.set('sig', await this.identity.signText(input));
        return wrapped(await seal(k, 'mesh:sdp', me, target, await deflate(toJson(plainObject(inner)))));
      }
      case 'mesh:candidate':
      case 'mesh:candidates':
        return wrapped(await seal(k, m.command, me, target, toJson(m.args)));
      default:
        return text;
    }
  }

  // -- what comes in: the cryptography, in the queue

  /** Takes a parsed signal from the switchboard: opened and its signature checked in
   * the queue, then `deliver()` with the result on `m.checked`, in arrival order. */
  receive(m, deliver) {
    if (!this.needsOpening(m) && this.in.pending === 0) {
      deliver();
      return;
    }
    const p = this.needsOpening(m) ? this.prepare(m).catch(() => ({ fail: 'unseal' })) : null;
    this.queue(this.in, p, (checked) => {
      if (checked) m.checked = checked;
      deliver();
    });
  }

  /** Whether the mesh would check `m` (a member's announce, leave or negotiation for us). */
  needsOpening(m) {
    const from = m.sender;
    if (!from || from === this.mesh.id || !validPeerId(from)) return false;
    if (m.to !== null && m.to !== this.mesh.id) return false;
    return m.command === 'announce' || m.command === 'leave' || NEGOTIATION.has(m.command);
  }

  /** Whether `sig` is `from`'s signature of `input` (false if `from` is no key). */
  async signedBy(from, input, sig) {
    let key = this.keys.get(from);
    if (!key) {
      if (this.keys.size >= MAX_FRESH) this.keys.clear();
      key = PeerKey.fromPeerId(from).catch(() => null);
      this.keys.set(from, key);
    }
    const k = await key;
    return k !== null && (await k.verify(input, sig));
  }

  /** What the checks of core's `open_announce`, `check_leave` and `open_negotiation`
   * that depend on the message alone decide: `{fail}` with the counter to count, or
   * what was opened. */
  async prepare(m) {
    const from = m.sender;
    const o = isObject(m.args[0]) ? m.args[0] : null;
    // The keys as they are when it arrives: the current epoch's, and the previous one's
    // in the grace period (what opens only under those: its sender is behind).
    const keys = this.epochs.opening();
    const door = this.epochs.door();
    const tag = keys[0].tag;
    const openAny = async (sealed, command, target) => {
      for (let i = 0; i < keys.length; i++) {
        try {
          return { plain: await open(keys[i], sealed, command, from, target), behind: i > 0 };
        } catch {
          // the next key
        }
      }
      return null;
    };
    if (m.command === 'announce') {
      if (!o) return { drop: true };
      if (typeof o.sealed !== 'string' || typeof o.sig !== 'string' || typeof o.ts !== 'number') return { fail: 'unsecured' };
      // Our door, or the current tag (a member whose grace period ended first).
      if ((o.room !== door && o.room !== tag) || o.v !== 1) return { fail: 'unsecured' };
      const ts = asU64(o.ts);
      const opened = await openAny(o.sealed, 'announce', m.to ?? '');
      if (!opened) return { fail: 'unseal', unopened: true };
      const { plain, behind } = opened;
      if (!(await this.signedBy(from, await signing.announce(o.room, from, ts, o.sealed), o.sig))) return { fail: 'bad_sig' };
      let inner;
      try {
        inner = decode(plain);
      } catch {
        return { fail: 'unseal' };
      }
      if (!isObject(inner)) return { fail: 'unseal' };
      return { ts: Number(ts), inner, behind };
    }
    if (m.command === 'leave') {
      if (!o) return { unsigned: true };
      if (Object.hasOwn(o, 'reason')) return { pass: true };
      if (typeof o.incarnation !== 'string' || typeof o.sig !== 'string' || typeof o.ts !== 'number') return { fail: 'unsecured' };
      const ts = asU64(o.ts);
      // Signed on our door, or on the current tag (a member whose grace period ended first).
      let signed = await this.signedBy(from, await signing.leave(door, from, o.incarnation, ts), o.sig);
      if (!signed && door !== tag) signed = await this.signedBy(from, await signing.leave(tag, from, o.incarnation, ts), o.sig);
      if (!signed) return { fail: 'bad_sig' };
      return { ts: Number(ts), incarnation: o.incarnation };
    }
    if (typeof o?.sealed !== 'string') return { fail: 'unsecured' };
    const opened = await openAny(o.sealed, m.command, this.mesh.id);
    if (!opened) return { fail: 'unseal' };
    const { behind } = opened;
    const k = keys[0];
    let v;
    try {
      v = decode(m.command === 'mesh:sdp' ? await inflate(opened.plain, MAX_SDP_PLAIN) : opened.plain);
    } catch {
      return { fail: 'unseal', behind };
    }
    if (m.command === 'mesh:sdp' && isObject(v)) {
      const { type, sdp, incarnation, sig, ts } = v;
      if (typeof type !== 'string' || typeof sdp !== 'string' || typeof incarnation !== 'string' ||
        typeof sig !== 'string' || typeof ts !== 'number') return { fail: 'unsecured', behind };
      const t = asU64(ts);
      const input = await signing.sdp(k.roomId, from, this.mesh.id, incarnation, t, type, sdp);
      if (!(await this.signedBy(from, input, sig))) return { fail: 'bad_sig', behind };
      const args = plainObject(['type', 'sdp', 'restart'].filter((a) => Object.hasOwn(v, a)).map((a) => [a, v[a]]));
      return { ts: Number(t), incarnation, args: [args], behind };
    }
    if (m.command !== 'mesh:sdp' && Array.isArray(v)) return { args: v, behind };
    return { fail: 'unsecured', behind };
  }

  // -- what comes in: the checks on the mesh's state, when the mesh takes it

  count(fail) {
    const s = this.mesh.stats;
    if (fail === 'unsecured') s.unsecuredSignals++;
    else if (fail === 'unseal') s.unsealFailures++;
    else if (fail === 'bad_sig') s.badSignatures++;
  }

  /** Whether `incarnation` is the one `from` announced (counted stale if not). */
  isCurrent(from, incarnation) {
    const ok = this.mesh.peers.get(from)?.incarnation === incarnation;
    if (!ok) this.mesh.stats.staleSignals++;
    return ok;
  }

  /** The freshness rule: within `maxSignalAgeMs` of our clock and after the last
   * accepted one of its kind from `from` (then recorded). Counts what fails it. */
  fresh(now, from, kind, ts) {
    const wall = this.wallMs(now);
    const key = `${from}\u0000${kind}`;
    const last = this.freshTs.get(key);
    if (Math.abs(wall - ts) > this.maxSignalAgeMs || (last !== undefined && !(ts > last.ts))) {
      this.mesh.stats.staleSignals++;
      return false;
    }
    if (this.freshTs.size >= MAX_FRESH && last === undefined) {
      // The oldest goes; among equals the first in core's order (member, then kind).
      let oldest = null;
      for (const [k, e] of this.freshTs) {
        const b = oldest?.[1];
        if (!b || e.ts < b.ts || (e.ts === b.ts && (compareBytes(e.from, b.from) || KIND_ORDER[e.kind] - KIND_ORDER[b.kind]) < 0)) {
          oldest = [k, e];
        }
      }
      this.freshTs.delete(oldest[0]);
    }
    this.freshTs.set(key, { from, kind, ts });
    return true;
  }

  /** A member's announce to the room that does not open (core's `answer_unopened`): it
   * may be of a later epoch than ours, so it cannot see us either until we announce
   * again; we do, at most once per REANNOUNCE_GAP_MS. */
  answerUnopened(now) {
    if (this.reannouncedAt !== null && now - this.reannouncedAt < REANNOUNCE_GAP_MS) return;
    this.reannouncedAt = now;
    this.mesh.start(now);
  }

  /** An announce or leave, checked (core's `secure_in`): the opened announce, the leave
   * as it counts, or null (refused, and counted). Anything else passes as it is. */
  checkIn(now, from, m) {
    const c = m.checked ?? {};
    if (m.command === 'announce') {
      if (c.drop) return null;
      if (!c.inner) {
        this.count(c.fail);
        if (c.unopened && m.to === null) this.answerUnopened(now);
        return null;
      }
      if (!this.fresh(now, from, 'announce', c.ts)) return null;
      this.epochs.markBehind(from, c.behind);
      const attrs = [['id', from], ['room', this.mesh.room]];
      for (const a of ['agent', 'incarnation', 'codecs']) if (Object.hasOwn(c.inner, a)) attrs.push([a, c.inner[a]]);
      if (isObject(c.inner.attrs)) {
        for (const [a, v] of Object.entries(c.inner.attrs)) if (!RESERVED.has(a)) attrs.push([a, v]);
      }
      return { to: m.to, command: m.command, sender: m.sender, args: [plainObject(attrs)] };
    }
    if (m.command === 'leave') {
      // The member's own, signed and fresh, drops its links at once; any other is the
      // switchboard's `disconnected` (core's `Signal::leave(from, Some("unsigned"))`).
      const unsigned = { to: null, command: 'leave', sender: from, args: [{ id: from, reason: 'unsigned' }] };
      if (c.pass) return m;
      if (c.unsigned) return unsigned;
      if (c.fail) {
        this.count(c.fail);
        return unsigned;
      }
      if (c.incarnation === undefined || !this.isCurrent(from, c.incarnation) || !this.fresh(now, from, 'leave', c.ts)) {
        return unsigned;
      }
      return { to: null, command: 'leave', sender: from, args: [{ id: from }] };
    }
    return m;
  }

  /** An SDP or candidates message from a member whose announce we have, checked (core's
   * `open_negotiation`): the opened message, or null (refused, and counted). */
  checkNegotiation(now, from, m) {
    const c = m.checked ?? { fail: 'unseal' };
    if (c.behind !== undefined) this.epochs.markBehind(from, c.behind);
    if (c.fail) {
      this.count(c.fail);
      return null;
    }
    if (m.command === 'mesh:sdp' && (!this.isCurrent(from, c.incarnation) || !this.fresh(now, from, 'sdp', c.ts))) return null;
    return { to: m.to, command: m.command, sender: m.sender, args: c.args };
  }
}
