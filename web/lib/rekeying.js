// Key epochs in the page's mesh (secured rooms): core's `mesh/rekeying.rs`, rule for
// rule. When a removal lands, the room moves to a key the removed member cannot
// derive, and every remaining member takes it over its links.
//
// - Rotating. A removal lands (`room/revoked/<id>`) that the current epoch's line does
//   not list: an admin rotates at once; any other member that is not removed waits
//   `rekeyWaitMs` (jittered, up to twice that) for someone else's line, then rotates
//   itself. The new line lists every removal in the store.
// - Handing over. The line goes on every open link to a peer that is not removed, and
//   on every link that opens later. A member takes a line that passes core's checks and
//   beats its epoch, then relays it; a line that lists a removal it has not seen is held
//   until the removal arrives; a line that loses to ours is answered with ours.
// - The grace period. Until the line's `until`, the room stays on the previous epoch's
//   tag (the door), and a member that comes in with the previous key is answered under
//   it (it is "behind"). Then every member announces on the new tag.
//
// WebCrypto is asynchronous: a line's signature and its epoch's keys are worked out in
// a queue of their own (in arrival order), and what depends on the mesh's state (the
// removals, the epoch, who is behind) is decided when the queue hands the line on, as
// core decides it when the line arrives. A rotation is made the same way: signed and
// its keys derived in the queue, then taken if it still beats the room's epoch.

import {
  MAX_REMOVED, checkRekey, parseRekey, rekeyBeats, rekeyJson, rekeyOutranks, rotateRekey, rotatedRoomKey, verifyRekey,
} from './security.js';

/** Core's `Security::DEFAULT_REKEY_WAIT`: how long a member that is not an admin waits
 * for someone else's line after a removal. */
export const DEFAULT_REKEY_WAIT_MS = 10000;
/** Core's `Security::DEFAULT_REKEY_GRACE`: how long the previous epoch's tag is kept. */
export const DEFAULT_REKEY_GRACE_MS = 7 * 86400000;
/** The most members marked behind that are not (yet) peers (core's `MAX_FRESH`). */
const MAX_BEHIND = 4096;
/** Lines being checked at once: past this a line is refused (a flood of them). */
const MAX_PENDING = 64;

/** A line with its epoch's keys, ready to take: `{r, key, previous, line}`. */
async function ready(base, r) {
  return {
    r,
    key: await rotatedRoomKey(base, r.epoch, r.key),
    previous: await rotatedRoomKey(base, r.epoch - 1, r.prev),
    line: `REKEY ${rekeyJson(r)}`,
  };
}

/**
 * The key epochs of a {@link Secured} member: the current line, the previous epoch's
 * keys in the grace period, who is behind, a line held for its removal, and the timers.
 */
export class Epochs {
  /** `security.rekey`: what `resumeRekey` made of a kept line (or null). */
  constructor(secured, security) {
    this.s = secured;
    this.waitMs = security.rekeyWaitMs ?? DEFAULT_REKEY_WAIT_MS;
    this.graceMs = security.rekeyGraceMs ?? DEFAULT_REKEY_GRACE_MS;
    /** The current epoch's line (null in epoch 0), and as text. */
    this.rekey = null;
    this.line = null;
    /** The previous epoch's keys, in the grace period. */
    this.previous = null;
    /** Peers still in the previous epoch: what goes to them is sealed under its key. */
    this.behind = new Set();
    /** A line that lists a removal not in the store yet (the best one). */
    this.held = null;
    /** Mesh clock of a rotation due (a member that is not an admin), and of the grace
     * period's end. */
    this.rotateAt = null;
    this.graceUntil = null;
    this.rotating = false;
    this.queue = { tail: Promise.resolve(), pending: 0 };
    const resumed = security.rekey;
    if (resumed) {
      secured.key = resumed.key;
      this.rekey = resumed.rekey;
      this.line = `REKEY ${rekeyJson(resumed.rekey)}`;
      this.previous = resumed.previous;
    }
  }

  get mesh() {
    return this.s.mesh;
  }

  /** The mesh started at `start`: a kept grace period runs to its end, or is over. */
  begin(start) {
    if (!this.previous) return;
    const wall = this.s.wallMs(start);
    if (this.rekey.until > wall) this.graceUntil = start + (this.rekey.until - wall);
    else this.previous = null;
  }

  /** The tag we announce on: the previous epoch's in its grace period. */
  door() {
    return (this.previous ?? this.s.key).tag;
  }

  /** The keys that seal for `target` (the previous epoch's for a peer that is behind). */
  sealing(target) {
    return this.previous && target && this.behind.has(target) ? this.previous : this.s.key;
  }

  /** The keys a sealed payload may open under: the current, then the previous epoch's. */
  opening() {
    return this.previous ? [this.s.key, this.previous] : [this.s.key];
  }

  /** What `from` sealed opened under the previous key only (`true`), or the current one. */
  markBehind(from, behind) {
    if (!behind) this.behind.delete(from);
    else if (this.mesh.peers.has(from) || this.behind.size < MAX_BEHIND) this.behind.add(from);
  }

  /** Whether `peer` may be handed a line that lists `removed`. */
  mayHold(peer, removed) {
    return !removed.includes(peer) && !this.mesh.replica.store.revoked.has(peer);
  }

  isRemoved = (id) => this.mesh.replica.store.revoked.has(id);

  check(r) {
    return checkRekey(r, this.s.key, this.s.wallMs(this.mesh.lastNow), this.isRemoved);
  }

  // -- lines from peers

  /** A `REKEY` line's JSON from `peer` (core's `on_rekey`). */
  onRekey(peer, link, json) {
    const stats = this.mesh.stats;
    let r;
    try {
      r = parseRekey(json);
    } catch {
      stats.rekeysRefused++;
      return;
    }
    if (this.queue.pending >= MAX_PENDING) {
      stats.rekeysRefused++;
      return;
    }
    const base = this.s.key;
    const p = verifyRekey(r, base).then((ok) => (ok ? ready(base, r) : null));
    this.s.queue(this.queue, p, (e) => {
      if (!e) {
        stats.rekeysRefused++;
        return;
      }
      this.fromPeer(peer, link, e);
    });
  }

  fromPeer(peer, link, e) {
    const why = this.check(e.r);
    if (why === 'unknown_removal') {
      // Its removal is on the way: kept (the best one) until it lands.
      if (!this.held || rekeyOutranks(e.r, this.held.r)) this.held = e;
      return;
    }
    if (why) {
      this.mesh.stats.rekeysRefused++;
      return;
    }
    if (rekeyBeats(e.r, this.s.key)) this.adopt(e, peer);
    else if (this.line !== null && this.line !== e.line) {
      // It is behind us, or lost a race to ours: it gets ours.
      const p = this.mesh.peers.get(peer);
      if (p && p.link === link && p.state === 'open') this.mesh.replica.session(link)?.sendControl(this.line);
    } else {
      // It has our epoch.
      this.behind.delete(peer);
    }
  }

  /** Takes `e`'s epoch (it passed the checks and beats ours), hands it on to every open
   * link but `origin`'s, and reports it (core's `adopt`). */
  adopt(e, origin) {
    const mesh = this.mesh;
    const now = mesh.lastNow;
    const wall = this.s.wallMs(now);
    const inGrace = e.r.until > wall;
    const door = this.door();
    this.previous = inGrace ? e.previous : null;
    this.s.key = e.key;
    this.rekey = e.r;
    this.line = e.line;
    this.graceUntil = inGrace ? now + (e.r.until - wall) : null;
    mesh.stats.rekeys++;
    // Every peer but the line's sender is in the epoch we leave until it shows it has
    // the new key: in the grace period, what goes to it is sealed under the previous key.
    this.behind = inGrace ? new Set([...mesh.peers.keys()].filter((p) => p !== origin)) : new Set();
    if (this.held && !rekeyBeats(this.held.r, this.s.key)) this.held = null;
    for (const [id, p] of mesh.peers) {
      if (id === origin || p.state !== 'open' || p.link === null || !this.mayHold(id, e.r.removed)) continue;
      mesh.replica.session(p.link)?.sendControl(e.line);
    }
    mesh.event('rekeyed', { epoch: e.r.epoch, by: e.r.by, line: e.line });
    if (door !== this.door()) mesh.start(now);
  }

  /** A link to `peer` opened: it gets the current epoch's line. */
  onOpen(peer, link) {
    if (this.line !== null && this.mayHold(peer, this.rekey.removed)) this.mesh.replica.session(link)?.sendControl(this.line);
  }

  // -- rotating

  /** A removal landed: a line held for it may be taken now, and an epoch that does not
   * list it is rotated (at once by an admin, after the wait by anyone else). */
  afterRemoval() {
    const h = this.held;
    if (h) {
      this.held = null;
      const why = this.check(h.r);
      if (why === null && rekeyBeats(h.r, this.s.key)) this.adopt(h, null);
      else if (why === 'unknown_removal') this.held = h;
    }
    if (!this.needsRotation()) return;
    if (this.s.key.admins.includes(this.mesh.id)) this.rotate();
    else if (this.rotateAt === null) this.rotateAt = this.mesh.lastNow + this.mesh.rng.jitter(this.waitMs * 2);
  }

  /** Whether the store holds a removal the current epoch does not list (and we are not
   * removed ourselves, and the line can still list more). */
  needsRotation() {
    const revoked = this.mesh.replica.store.revoked;
    if (revoked.has(this.mesh.id)) return false;
    const listed = this.rekey?.removed ?? [];
    if (listed.length >= MAX_REMOVED) return false;
    for (const id of revoked.keys()) if (!listed.includes(id)) return true;
    return false;
  }

  /** Makes the next epoch, listing every removal in the store; taken once signed if it
   * still beats the room's epoch and is still needed. */
  rotate() {
    this.rotateAt = null;
    if (this.rotating || !this.needsRotation()) return;
    this.rotating = true;
    const wall = this.s.wallMs(this.mesh.lastNow);
    const removed = [...this.mesh.replica.store.revoked.keys()];
    const base = this.s.key;
    const p = rotateRekey(base, removed, wall + this.graceMs, this.s.identity).then((r) => (r ? ready(base, r) : null));
    this.s.queue(this.queue, p.finally(() => { this.rotating = false; }), (e) => {
      if (e && this.needsRotation() && rekeyBeats(e.r, this.s.key)) this.adopt(e, null);
    });
  }

  // -- time

  /** When `timeout` next has work (mesh clock), or null. */
  deadline() {
    const ts = [this.rotateAt, this.graceUntil].filter((t) => t !== null);
    return ts.length ? Math.min(...ts) : null;
  }

  /** Time passed: a rotation that came due, a grace period that ended. */
  timeout(now) {
    if (this.rotateAt !== null && now >= this.rotateAt) this.rotate();
    if (this.graceUntil !== null && now >= this.graceUntil) {
      this.graceUntil = null;
      if (this.previous) {
        // The room moves to the current tag.
        this.previous = null;
        this.behind.clear();
        this.mesh.start(now);
      }
    }
  }

  /** `peer` is gone for good. */
  forget(peer) {
    this.behind.delete(peer);
  }
}

