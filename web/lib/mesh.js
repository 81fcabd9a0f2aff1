// The peer side of a room over abstract links: core's `mesh` (core/src/mesh/), rule for
// rule and sans-IO, so that a trace recorded from the Rust Mesh replays here
// (web/tests/replay.test.mjs). lib/member.js drives it with the browser's WebSocket and
// RTCPeerConnection.

import { MeshError, byteLength, validPeerId } from './values.js';
import { Store } from './store.js';
import { JsonEncoder, LineDecoder, decodeLine } from './codecs.js';
import { PostcardDecoder, PostcardEncoder } from './postcard.js';
import { HeldEncoder } from './persist.js';
import { Replica } from './replica.js';
import { encodeSignal, parseSignal } from './signal.js';
import { IDLE_MS, SignalClient, Xorshift } from './signal-client.js';
import { Secured } from './secured.js';
import { REVOKED_PREFIX, UpdateGuard } from './updates.js';

/** SDP or candidate messages kept per peer whose announce has not arrived. */
const MAX_EARLY = 64;
/** Peers that may have early messages waiting. */
const MAX_EARLY_PEERS = 256;
/** The longest a closing mesh waits for its links' remotes to read its `BYE`. */
export const CLOSE_FLUSH_MS = 5000;
/** Times here are float milliseconds, core's are exact instants: a deadline is met
 * within a nanosecond of it. */
const EPS = 1e-6;

const CODECS = ['postcard', 'json'];

function codecsOf(attrs) {
  const a = Array.isArray(attrs.codecs) ? attrs.codecs.filter((c) => CODECS.includes(c)) : [];
  return a.length ? a : ['json'];
}

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Attribute objects compared as core compares them (entries in order). */
function sameObject(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Runs `f` on the signalling client: at once in an open room; in a secured one behind
 * what is being sealed, so that the client sees everything in the order it was done. */
function viaClient(mesh, f) {
  if (mesh.secured) mesh.secured.client(f);
  else f();
}

/** A signalling connection opened: the client sends our announce, then what was queued.
 * On a reconnect, offers in flight may have been lost: they start again. */
function takeConnection(mesh, now) {
  const again = mesh.client.connections > 0;
  mesh.client.handleConnected(now);
  mesh.pumpSignal();
  if (again && !mesh.closed) {
    for (const id of mesh.ids()) {
      const p = mesh.peers.get(id);
      if (p.state === 'negotiating' && p.offerer) mesh.restartOffer(id, now);
    }
  }
}

/** A parsed text from the switchboard, taken by the mesh (in a secured room once it has
 * been opened: `m.checked`). */
function route(mesh, now, m) {
  if (mesh.closed) return;
  if (m.to !== null && m.to !== mesh.id) return;
  if (m.command === 'roominfo') {
    if (!mesh.online) {
      mesh.online = true;
      mesh.event('online');
    }
    return;
  }
  const from = m.sender;
  if (!from) {
    // The switchboard refused our announce (core's `MeshEvent::Refused`).
    if (m.command === 'mesh:refused') {
      const r = isObject(m.args[0]) ? m.args[0].reason : undefined;
      mesh.event('refused', { reason: typeof r === 'string' ? Array.from(r).slice(0, 64).join('') : 'unknown' });
    }
    return;
  }
  if (from === mesh.id || !validPeerId(from)) return;
  if (mesh.secured) {
    if (m.command !== 'leave' && mesh.replica.store.revoked.has(from)) {
      // Removed by an admin: no new links (its leave still drops an old one).
      mesh.stats.removedSignals++;
      return;
    }
    m = mesh.secured.checkIn(now, from, m);
    if (!m) return;
  }
  switch (m.command) {
    case 'announce': mesh.onAnnounce(now, from, m); break;
    case 'leave': mesh.onLeave(from, m); break;
    case 'mesh:sdp':
    case 'mesh:candidate':
    case 'mesh:candidates':
      if (mesh.peers.get(from)?.inRoom) mesh.onNegotiation(now, from, m);
      else if (mesh.early.size < MAX_EARLY_PEERS || mesh.early.has(from)) {
        // Before its announce: kept for then.
        mesh.stats.early++;
        const q = mesh.early.get(from) ?? [];
        if (q.length < MAX_EARLY) q.push(m);
        mesh.early.set(from, q);
      }
      break;
    default:
  }
}

/** Core's `u64::rotate_left(32) ^ 0x5167_6e61_6c6c_696e`: the signalling client's seed. */
function signallingSeed(seed) {
  const s = BigInt.asUintN(64, seed);
  return BigInt.asUintN(64, (s << 32n) | (s >> 32n)) ^ 0x5167_6e61_6c6c_696en;
}

/**
 * A peer in a room, sans-IO (core's `Mesh`): times are milliseconds on one clock, given
 * with every input. Inputs: `start`, `announce`, `set`, `close`; from the signalling
 * connection `handleSignalConnected`, `handleSignalDisconnected`, `handleSignal`; from
 * the link layer `localSdp`, `localCandidate`, `linkOpen`, `linkData`, `linkClosed`,
 * `linkLost`; and `handleTimeout`. Drain `poll()` after each until it returns
 * `{type: 'timeout', at}`. Its outputs:
 *
 * - `{type: 'signalConnect'}`: open the WebSocket, then report it opening or failing;
 *   `{type: 'signal', text}`: send it; `{type: 'signalClose'}`: close it.
 * - `{type: 'open', peer, offerer, codec}`: start a connection (the offerer creates the
 *   data channel `mesh` with protocol `codec` and an offer for `localSdp`);
 *   `{type: 'remoteSdp', peer, kind, sdp}`, `{type: 'restartSdp', peer, kind, sdp}` (an
 *   ICE restart of the open link: answered with `localRestartSdp`), `{type: 'remoteCandidate', peer,
 *   candidate}`: apply them; `{type: 'close', peer}`: tear the connection down.
 * - `{type: 'event', name, detail}`: `online`, `peer_join`, `peer_update`,
 *   `peer_leave`, `synced`, `synced_all`, `update`, `offline`, `refused` ({reason}:
 *   the switchboard refused our announce, `/mesh:refused`, or our connection,
 *   `handleSignalRefused`).
 *
 * In a secured room (`config.security`) signals are sealed and opened with WebCrypto,
 * which is asynchronous: outputs may then come after an input has returned, and
 * `onOutput` says so (see lib/secured.js).
 *
 * What goes on an open link is in its encoder (`encoderOf(peer)`: `poll()` gives each
 * channel message, `onWrite` says more came), so the link layer sends it no faster
 * than the channel takes it.
 */
export class Mesh {
  /**
   * @param {object} config `id`, `room`, `incarnation`, `codecs`, `attributes`,
   *   `agent`, `epochMs` (wall-clock ms at `start`), `seed` (BigInt), `pingMs`,
   *   `ping` (false: never PING), `deadMs`, `negotiateMs`, `retryMinMs`, `retryMaxMs`, `signalling`
   *   ({minBackoff, maxBackoff, maxQueue}), `security` (a secured room: `{key, identity,
   *   maxSignalAgeMs}`, `key` from `deriveRoomKey`, `identity` an `Identity` whose peer id
   *   is `id`; see lib/secured.js).
   * @param {number} start the clock at creation
   */
  constructor(config, start = 0) {
    if (!validPeerId(config.id)) throw new MeshError('bad_id', `invalid peer id ${JSON.stringify(config.id)}`);
    if (config.security && config.security.identity?.peerId !== config.id) {
      throw new MeshError('bad_id', `in a secured room the peer id must be the identity's key (${config.security.identity?.peerId})`);
    }
    if (typeof config.room !== 'string' || !config.room || config.room.length > 256) {
      throw new MeshError('bad_room', `invalid room name ${JSON.stringify(config.room)}`);
    }
    const codecs = config.codecs ?? ['postcard', 'json'];
    if (!Array.isArray(codecs) || !codecs.length || codecs.some((c) => !CODECS.includes(c))) {
      throw new MeshError('bad_codecs', 'codecs lists "postcard" and/or "json"');
    }
    this.id = config.id;
    this.room = config.room;
    this.incarnation = config.incarnation;
    this.codecs = codecs;
    this.attributes = config.attributes ?? {};
    this.agent = config.agent ?? 'rtc-mesh-web/0.1';
    this.pingMs = config.pingMs ?? 1000;
    // false: never PING (as a plain scuttlebutt peer; core's `MeshConfig::ping`).
    this.ping = config.ping ?? true;
    this.deadMs = config.deadMs ?? 4000;
    this.negotiateMs = config.negotiateMs ?? 10000;
    this.retryMinMs = config.retryMinMs ?? 250;
    this.retryMaxMs = config.retryMaxMs ?? 10000;
    const seed = BigInt(config.seed ?? 0n);
    const epochMs = config.epochMs ?? 0;
    this.epochMs = epochMs;
    this.startMs = start;
    // The store's clock: wall-clock ms of the input being handled.
    this.clock = start;
    // Secured rooms: every write signed, every update checked (lib/updates.js).
    const sec = config.security;
    const guard = sec ? new UpdateGuard(sec.key.roomId, sec.identity, sec.key.admins ?? []) : null;
    this.store = new Store(`${this.id}.${this.incarnation}`, { now: () => epochMs + (this.clock - start), guard });
    this.replica = new Replica(this.store);
    this.replica.onUpdate = (u, local) => {
      this.event('update', updateEvent(u, local));
      if (u.key.startsWith(REVOKED_PREFIX)) this.cutOffRemoved();
    };
    this.client = new SignalClient({ ...(config.signalling ?? {}), seed: signallingSeed(seed) }, start);
    this.clientAt = start;
    this.rng = new Xorshift(seed);
    this.peers = new Map();
    this.early = new Map();
    this.out = [];
    /** What each output waits for (`markNow` when it was made; null: nothing). */
    this.marks = [];
    this.head = 0;
    this.online = false;
    this.closed = false;
    this.closingUntil = null;
    this.lastNow = start;
    this.nextTick = start;
    this.syncDirty = false;
    this.stats = {
      early: 0, offers: 0, negotiationTimeouts: 0, linkTimeouts: 0, offersRestarted: 0, badSignals: 0,
      signalDisconnects: 0,
      // Secured rooms (core's counters of the same names).
      unsecuredSignals: 0, unsealFailures: 0, badSignatures: 0, staleSignals: 0, removedSignals: 0,
      // Key epochs taken (made or from a peer), and lines refused.
      rekeys: 0, rekeysRefused: 0,
    };
    /** Secured rooms: the sealing and opening of signals (lib/secured.js), else null. */
    this.secured = config.security ? new Secured(this, config.security) : null;
    if (this.secured) {
      this.replica.signer = (u) => this.secured.signUpdate(u);
      this.secured.epochs.begin(start);
    }
    /** Secured rooms: called when outputs are waiting that no input made (a seal or an
     * open finished): drain `poll()` then. */
    this.onOutput = null;
  }

  // -- outputs

  /**
   * The next output; drain until `{type: 'timeout'}`. A durable mesh (`persist`) gives
   * its timeout while the next output waits for changes made before it to be stored.
   */
  poll() {
    if (this.head === this.out.length) {
      this.out = [];
      this.marks = [];
      this.head = 0;
      this.reportAllSynced();
      if (!this.out.length) return { type: 'timeout', at: this.deadline() };
    }
    if (!this.released(this.marks[this.head])) return { type: 'timeout', at: this.deadline() };
    return this.out[this.head++];
  }

  /** When `handleTimeout` is next due. */
  deadline() {
    let at;
    if (this.closed) at = this.closingUntil ?? this.lastNow + IDLE_MS;
    else at = this.peers.size ? Math.min(this.nextTick, this.clientAt) : this.clientAt;
    // Held-back updates come due (secured rooms; the store's clock runs from epochMs).
    const due = this.store.nextHeldDue();
    if (due !== null && !this.closed) at = Math.min(at, due - this.epochMs + this.startMs);
    // A rotation due, the grace period's end (secured rooms).
    const epochAt = this.closed ? null : this.secured?.epochs.deadline() ?? null;
    if (epochAt !== null) at = Math.min(at, epochAt);
    return at;
  }

  // -- durability (core's `Mesh::poll_persist` and `Mesh::persisted`)

  /**
   * Makes the mesh durable: the store records its changes (`takeChanges` hands them
   * out, `persisted` takes back what the storage holds) and, with `hold` (the
   * `process` and `power` levels), each output (`poll`) and each message on a link
   * (`encoderOf`) waits until the changes made before it are stored (core's tag of
   * each output with the last record made): no event, answer or update precedes what
   * it reports, and none waits for changes made after it.
   */
  persist(hold) {
    this.store.persist().hold = hold;
  }

  /** The changes for the storage, one batch (`{seq, entries, clocks}`), or null. */
  takeChanges() {
    return this.store.journal?.take() ?? null;
  }

  /** The storage holds every batch up to `seq`. */
  persisted(seq) {
    this.store.journal?.persisted(seq);
  }

  /** Whether changes made so far are not all stored yet (some output may wait on them). */
  awaitingPersist() {
    const j = this.store.journal;
    return !!j && j.hold && j.awaiting();
  }

  /** What an output made now waits for (a durable mesh that holds), else null. */
  markNow() {
    const j = this.store.journal;
    return j && j.hold ? j.markNow() : null;
  }

  /** Whether an output marked `m` (`markNow`; null: nothing to wait for) may go. */
  released(m) {
    return m === null || this.store.journal.released(m);
  }

  push(o) {
    this.out.push(o);
    this.marks.push(this.markNow());
  }

  event(name, detail = {}) {
    this.push({ type: 'event', name, detail });
  }

  /** Whether the mesh has closed and everything it had to say has been polled. */
  isFinished() {
    return this.closed && this.closingUntil === null && this.head === this.out.length && !this.secured?.busy();
  }

  /** Resolves once no signal is being sealed or opened (at once in an open room). */
  settled() {
    return this.secured ? this.secured.settled() : Promise.resolve();
  }

  /** The room's key epoch (0 in an open room, and until the first removal). */
  epoch() {
    return this.secured ? this.secured.key.epoch : 0;
  }

  /** The current epoch's `REKEY` line, to keep and hand back on a restart (the
   * `rekey` option), or null in epoch 0. */
  rekeyLine() {
    return this.secured?.epochs.line ?? null;
  }

  /** The encoder of the open link to `peer`, or null. */
  encoderOf(peer) {
    return this.peers.get(peer)?.encoder ?? null;
  }

  /** The session of the open link to `peer`, or null. */
  sessionOf(peer) {
    const p = this.peers.get(peer);
    return p && p.link !== null ? this.replica.session(p.link) ?? null : null;
  }

  /** Peer ids in core's order (bytewise). */
  ids() {
    return [...this.peers.keys()].sort();
  }

  // -- membership (core's mesh/membership.rs)

  announceAttributes() {
    const o = { id: this.id, room: this.room, agent: this.agent, incarnation: this.incarnation, codecs: this.codecs };
    for (const [k, v] of Object.entries(this.attributes)) if (!(k in o)) o[k] = v;
    return o;
  }

  /** Announces us (at once if connected, else on connecting, and after every reconnect). */
  start(now) {
    this.lastNow = Math.max(this.lastNow, now);
    const text = encodeSignal('announce', this.id, [this.announceAttributes()]);
    if (this.secured) {
      this.secured.queue(this.secured.out, this.secured.seal(now, text), (a) => {
        if (a === null) return;
        this.client.announce(a);
        this.pumpSignal();
      });
      // The connection need not wait for the seal: the announce goes first on it anyway.
      this.pumpSignal();
      return;
    }
    this.client.announce(text);
    this.pumpSignal();
  }

  /** New user attributes, announced. */
  announce(now, attributes) {
    this.attributes = attributes;
    this.start(now);
  }

  signal(text) {
    if (this.secured) {
      this.secured.queue(this.secured.out, this.secured.seal(this.lastNow, text), (t) => {
        if (t === null) return;
        this.client.send(t);
        this.pumpSignal();
      });
      return;
    }
    this.client.send(text);
    this.pumpSignal();
  }

  pumpSignal() {
    for (;;) {
      const o = this.client.poll();
      switch (o.type) {
        case 'connect': this.push({ type: 'signalConnect' }); break;
        case 'send': this.push({ type: 'signal', text: o.text }); break;
        case 'close': this.push({ type: 'signalClose' }); break;
        case 'timeout': this.clientAt = o.at; return;
        default:
      }
    }
  }

  handleSignalConnected(now) {
    this.lastNow = Math.max(this.lastNow, now);
    const sec = this.secured;
    if (sec && sec.connects++ > 0) {
      // A fresh signature on a reconnect: the last announce would be a replay. The
      // connection is taken up once it is sealed (and it goes first).
      const text = encodeSignal('announce', this.id, [this.announceAttributes()]);
      sec.queue(sec.out, sec.seal(now, text), (a) => {
        if (a !== null) this.client.announce(a);
        takeConnection(this, now);
      });
      return;
    }
    viaClient(this, () => takeConnection(this, now));
  }

  handleSignalDisconnected(now) {
    this.lastNow = Math.max(this.lastNow, now);
    viaClient(this, () => {
      if (this.client.isConnected()) this.stats.signalDisconnects++;
      this.client.handleDisconnected(now);
      this.pumpSignal();
    });
  }

  /**
   * The switchboard refused our connection before the upgrade with this HTTP status
   * (`401 Unauthorized`, say): reported as a `refused` event (`http_401`; `http` when
   * the status is not known, as in a browser), then taken as a lost connection.
   */
  handleSignalRefused(now, status = '') {
    const code = String(status).split(' ')[0];
    this.event('refused', { reason: code ? `http_${code}` : 'http' });
    this.handleSignalDisconnected(now);
  }

  setPresent(peer, present, reason) {
    const p = this.peers.get(peer);
    if (!p || p.present === present) return;
    p.present = present;
    if (present) this.event('peer_join', { peer, attributes: p.attributes });
    else this.event('peer_leave', { peer, reason });
  }

  /** A text from the switchboard (in a secured room, taken once it has been opened). */
  handleSignal(now, text) {
    this.lastNow = Math.max(this.lastNow, now);
    const m = parseSignal(text);
    if (!m) {
      this.stats.badSignals++;
      return;
    }
    if (this.secured) this.secured.receive(m, () => route(this, now, m));
    else route(this, now, m);
  }

  onAnnounce(now, from, m) {
    const attrs = m.args[0];
    if (!isObject(attrs) || attrs.room !== this.room) return;
    const incarnation = typeof attrs.incarnation === 'string' ? attrs.incarnation : null;
    if (m.to === null) {
      // A newcomer's broadcast: answered directly, as rtc-signaller does.
      this.signal(encodeSignal('announce', this.id, [this.announceAttributes()], from));
    }
    let p = this.peers.get(from);
    const returning = p !== undefined && p.incarnation !== incarnation;
    if (returning) {
      // A new life: its old link (if any) is of no use.
      this.dropConn(from, null);
      this.setPresent(from, false, 'left');
    }
    if (!p) {
      p = {
        attributes: {}, incarnation: null, codecs: [], present: false, inRoom: true,
        state: 'idle', retryAt: null, since: 0, offerer: false,
        link: null, codec: null, encoder: null, decoder: null, lastHeard: 0, nextPing: 0,
        failures: 0, synced: false,
      };
      this.peers.set(from, p);
    }
    if (p.present && !returning && !sameObject(p.attributes, attrs)) {
      this.event('peer_update', { peer: from, attributes: attrs });
    }
    p.attributes = attrs;
    p.incarnation = incarnation;
    p.codecs = codecsOf(attrs);
    p.inRoom = true;
    if (returning) p.failures = 0;
    this.setPresent(from, true, 'left');
    if (p.state === 'idle' && this.weOffer(from)) this.offer(from, now);
    else if (p.state === 'negotiating' && p.offerer && m.to === null && !returning) {
      // It announced again by broadcast (its signalling reconnected): what went
      // between us may be lost.
      this.restartOffer(from, now);
    }
    const early = this.early.get(from);
    if (early) {
      this.early.delete(from);
      for (const e of early) this.onNegotiation(now, from, e);
    }
  }

  onLeave(from, m) {
    const o = m.args[0];
    const reason = isObject(o) && typeof o.reason === 'string' ? o.reason : null;
    this.early.delete(from);
    const p = this.peers.get(from);
    if (!p) return;
    p.inRoom = false;
    // The switchboard lost its connection: the link decides.
    if (reason !== null && p.state === 'open') return;
    this.forget(from, reason !== null ? 'closed' : 'left');
    this.syncDirty = true;
  }

  // -- negotiation (core's mesh/negotiation.rs)

  weOffer(peer) {
    return this.id > peer;
  }

  offer(peer, now) {
    if (!this.peers.has(peer)) return;
    this.stats.offers++;
    this.startNegotiation(peer, now, true);
  }

  restartOffer(peer, now) {
    this.stats.offersRestarted++;
    this.dropConn(peer, null);
    this.offer(peer, now);
  }

  startNegotiation(peer, now, offerer) {
    const p = this.peers.get(peer);
    // The first of ours that it lists (one that lists none speaks json).
    const codec = (p && this.codecs.find((c) => p.codecs.includes(c))) || 'json';
    if (p) {
      p.state = 'negotiating';
      p.since = now;
      p.offerer = offerer;
    }
    this.push({ type: 'open', peer, offerer, codec });
  }

  onNegotiation(now, from, m) {
    if (this.secured) {
      m = this.secured.checkNegotiation(now, from, m);
      if (!m) return;
    }
    const p = this.peers.get(from);
    if (m.command === 'mesh:sdp') {
      const o = m.args[0];
      if (!isObject(o) || typeof o.type !== 'string' || typeof o.sdp !== 'string') return;
      const offering = p?.state === 'negotiating' && p.offerer;
      if (o.restart === true && p?.state === 'open') {
        // An ICE restart of the open link (its path died; signalling works): the link
        // stays, as core's Mesh does.
        if (o.type === 'offer' || o.type === 'answer') {
          this.push({ type: 'restartSdp', peer: from, kind: o.type, sdp: o.sdp });
        }
        return;
      }
      if (o.type === 'offer') {
        // Both offered (it should not, by the rule): ours stands.
        if (offering) return;
        // A fresh offer replaces whatever was there. Over an open link it means the
        // remote lost that link: reported as a closed link is.
        const wasOpen = p?.state === 'open';
        this.dropConn(from, null);
        if (wasOpen) {
          this.setPresent(from, false, 'closed');
          this.syncDirty = true;
        }
        this.startNegotiation(from, now, false);
        this.push({ type: 'remoteSdp', peer: from, kind: 'offer', sdp: o.sdp });
      } else if (o.type === 'answer' && offering) {
        this.push({ type: 'remoteSdp', peer: from, kind: 'answer', sdp: o.sdp });
      }
      return;
    }
    if (!p || p.state === 'idle') return;
    for (const a of m.args) {
      if (isObject(a)) this.push({ type: 'remoteCandidate', peer: from, candidate: a });
      else if (Array.isArray(a)) {
        for (const c of a) if (isObject(c)) this.push({ type: 'remoteCandidate', peer: from, candidate: c });
      }
    }
  }

  /** The link layer made our SDP (`offer` or `answer`) for `peer`. */
  localSdp(now, peer, kind, sdp) {
    this.signal(encodeSignal('mesh:sdp', this.id, [{ type: kind, sdp, incarnation: this.incarnation }], peer));
  }

  /** The link layer made an SDP for an ICE restart of the open link to `peer`. */
  localRestartSdp(now, peer, kind, sdp) {
    this.signal(
      encodeSignal('mesh:sdp', this.id, [{ type: kind, sdp, incarnation: this.incarnation, restart: true }], peer),
    );
  }

  /** The link layer found a local candidate for `peer` (`RTCIceCandidate.toJSON()`). */
  localCandidate(now, peer, candidate) {
    this.signal(encodeSignal('mesh:candidate', this.id, [candidate], peer));
  }

  // -- links (core's mesh/links.rs)

  dropConn(peer, retryAt) {
    const p = this.peers.get(peer);
    if (!p) return;
    const old = p.state;
    p.state = 'idle';
    p.retryAt = retryAt;
    p.synced = false;
    if (old === 'open') {
      const link = p.link;
      p.link = null;
      p.encoder = null;
      p.decoder = null;
      this.replica.closeLink(link);
    }
    if (old !== 'idle') this.push({ type: 'close', peer });
  }

  /** `peer` is gone for good (it left, or was removed): its connection closes, it is
   * reported left for `reason`, and it is forgotten (core's `forget_peer`). */
  forget(peer, reason) {
    this.dropConn(peer, null);
    this.setPresent(peer, false, reason);
    this.peers.delete(peer);
    this.secured?.epochs.forget(peer);
  }

  /** Secured rooms, after a removal landed: the links to removed members close, and
   * they are forgotten; what they still send through the switchboard is ignored
   * (`stats.removedSignals`; core's `cut_off_removed`). */
  cutOffRemoved() {
    const revoked = this.replica.store.revoked;
    for (const id of [...this.peers.keys()]) {
      if (!revoked.has(id)) continue;
      this.forget(id, 'removed');
      this.early.delete(id);
    }
    this.syncDirty = true;
    // The room moves to a key the removed cannot derive (lib/rekeying.js).
    this.secured?.epochs.afterRemoval();
  }

  /** The link to `peer` is lost: it goes, the peer is reported left for `reason`, the
   * offerer retries at `retryAt`, and a peer the switchboard no longer has is forgotten. */
  loseLink(peer, retryAt, reason) {
    this.dropConn(peer, retryAt);
    this.setPresent(peer, false, reason);
    if (this.peers.get(peer)?.inRoom === false) this.peers.delete(peer);
  }

  /** The data channel to `peer` opened, speaking `codec`. */
  linkOpen(now, peer, codec) {
    this.lastNow = Math.max(this.lastNow, now);
    const p = this.peers.get(peer);
    if (!p) {
      // Not a peer we know (any more): the link layer must close it.
      if (validPeerId(peer)) this.push({ type: 'close', peer });
      return;
    }
    if (p.state === 'open') return;
    p.codec = codec;
    p.encoder = new HeldEncoder(codec === 'postcard' ? new PostcardEncoder() : new JsonEncoder(), this);
    p.decoder = codec === 'postcard' ? new PostcardDecoder() : new LineDecoder();
    p.link = this.replica.openLink(p.encoder);
    // A first PING right behind the digest: the round trip is known at once.
    if (this.ping) this.replica.session(p.link).ping(now);
    p.state = 'open';
    p.lastHeard = now;
    p.nextPing = now + this.pingMs;
    p.failures = 0;
    this.setPresent(peer, true, 'left');
    // It gets the room's current key epoch.
    this.secured?.epochs.onOpen(peer, p.link);
  }

  /** A message from the data channel to `peer` (text for json, bytes for postcard). */
  linkData(now, peer, data) {
    this.lastNow = Math.max(this.lastNow, now);
    this.clock = now;
    const p = this.peers.get(peer);
    if (!p || p.state !== 'open') return;
    p.lastHeard = now;
    const link = p.link;
    const s = this.replica.session(link);
    s.stats.bytesIn += typeof data === 'string' ? byteLength(data) : data.length;
    let msgs;
    try {
      if (p.codec === 'postcard' && typeof data === 'string') throw new MeshError('bad_frame', 'text on a postcard link');
      msgs = p.decoder.push(data);
    } catch {
      // Skipped, the store unchanged (core's non-fatal decode errors).
      s.stats.errors++;
      return;
    }
    if (p.codec === 'json') {
      // Lines, decoded here so that a secured room can check their updates first.
      const decoded = [];
      for (const line of msgs) {
        try {
          decoded.push(decodeLine(line));
        } catch {
          s.stats.errors++;
        }
      }
      msgs = decoded;
    }
    // A secured room checks updates' signatures (asynchronously) before they count.
    if (this.secured) this.secured.linkIn(now, peer, link, msgs);
    else this.handleMessages(now, peer, link, msgs);
  }

  /** Decoded messages from the data channel to `peer` on `link` (checked, in a secured
   * room). */
  handleMessages(now, peer, link, msgs) {
    // Held-back updates that came due go first: a newer update of their writer must not
    // make them look stale (core's `Replica::handle_input`).
    this.clock = now;
    this.replica.releaseHeld();
    const p = this.peers.get(peer);
    for (const m of msgs) {
      if (!p || p.state !== 'open' || p.link !== link) return;
      const r = this.replica.handleMessage(link, m, now);
      if (r) this.onAnswer(peer, p, r);
    }
  }

  onAnswer(peer, p, r) {
    if (r.misbehaved) {
      // Too many refused updates (core's `MeshEvent::PeerMisbehaved`): told why, closed,
      // retried after a backoff.
      this.replica.session(p.link)?.sendControl(`REFUSED ${r.misbehaved}`);
      this.event('peer_misbehaved', { peer, reason: r.misbehaved });
      this.loseLink(peer, this.lastNow + this.backoff(4), 'failed');
      this.syncDirty = true;
      return;
    }
    if (this.secured && typeof r.control === 'string' && r.control.startsWith('REKEY ')) {
      this.secured.epochs.onRekey(peer, p.link, r.control.slice(6));
    }
    if (typeof r.control === 'string' && r.control.startsWith('REFUSED ')) {
      this.event('refused_by_peer', { peer, reason: Array.from(r.control.slice(8)).slice(0, 64).join('') });
    }
    if (r.synced) {
      p.synced = true;
      this.event('synced', { peer });
      this.syncDirty = true;
    }
    if (r.control === 'BYE') {
      // It is leaving: as its own `/leave`.
      this.forget(peer, 'left');
      this.syncDirty = true;
      this.checkClosing();
    }
  }

  /** The connection to `peer` closed or failed. */
  linkClosed(now, peer) {
    this.lastNow = Math.max(this.lastNow, now);
    if (this.closed) {
      // We are closing: the remote read our goodbye and closed the link.
      this.dropConn(peer, null);
      this.checkClosing();
      return;
    }
    const p = this.peers.get(peer);
    if (!p) return;
    const wasOpen = p.state === 'open';
    p.failures++;
    this.loseLink(peer, now + this.backoff(p.failures), wasOpen ? 'closed' : 'failed');
    this.syncDirty = true;
  }

  /**
   * The link layer holds the open link to `peer` (an ICE restart runs, or SCTP is
   * retransmitting over a path that still answers): its silence does not count against
   * it up to `now`, which may be earlier than the last input's (the path's last datagram
   * while its data stalls), as core's `Mesh::link_alive`.
   */
  linkAlive(now, peer) {
    this.lastNow = Math.max(this.lastNow, now);
    const p = this.peers.get(peer);
    if (p && p.state === 'open') p.lastHeard = Math.max(p.lastHeard, now);
  }

  /** Whether `peer`'s link is open, it has pinged, it is in the room and signalling works:
   * what an ICE restart of the link needs (core's Node checks the same). */
  canRestart(peer) {
    const p = this.peers.get(peer);
    return !!p && p.state === 'open' && p.inRoom !== false && this.client.isConnected() &&
      (this.replica.session(p.link)?.stats.pingsIn ?? 0) > 0;
  }

  /**
   * The link layer judged the open connection to `peer` dead (a browser's ICE calling
   * it `disconnected` too long): as a silent link, reported left for `timeout`.
   */
  linkLost(now, peer) {
    this.lastNow = Math.max(this.lastNow, now);
    const p = this.peers.get(peer);
    if (this.closed || !p || p.state !== 'open') return;
    this.stats.linkTimeouts++;
    this.loseLink(peer, now + this.backoff(p.failures), 'timeout');
    this.syncDirty = true;
  }

  reportAllSynced() {
    if (!this.syncDirty) return;
    this.syncDirty = false;
    const present = this.ids().filter((id) => this.peers.get(id).present);
    if (present.length && present.every((id) => this.peers.get(id).synced)) {
      this.event('synced_all', { peers: present });
    }
  }

  // -- the store

  /** Sets `key` (null deletes); the write goes to every link. Throws MeshError. */
  set(now, key, value) {
    if (this.closed) throw new MeshError('closed', 'the member has left the room');
    this.clock = now;
    return this.replica.set(key, value);
  }

  // -- liveness (core's mesh/liveness.rs)

  /** Time passed: pings, dead links, negotiation deadlines, retries. */
  handleTimeout(now) {
    this.lastNow = Math.max(this.lastNow, now);
    if (now >= this.clientAt - EPS) {
      this.client.handleTimeout(now);
      this.pumpSignal();
    }
    if (this.closed) {
      this.checkClosing();
      return;
    }
    // Held-back updates that came due (secured rooms).
    this.clock = now;
    this.replica.releaseHeld();
    this.secured?.epochs.timeout(now);
    if (now < this.nextTick - EPS) return;
    this.nextTick = now + Math.max(this.pingMs / 4, 10);
    const toPing = [];
    const timedOut = [];
    const failed = [];
    const retry = [];
    for (const id of this.ids()) {
      const p = this.peers.get(id);
      if (p.state === 'open') {
        // DESIGN: once a remote has sent a PING, a link silent for `deadMs` is dead,
        // whatever the remote is; one that never pinged is left to ICE.
        const pings = (this.replica.session(p.link)?.stats.pingsIn ?? 0) > 0;
        if (pings && now - p.lastHeard >= this.deadMs - EPS) timedOut.push(id);
        else if (now >= p.nextPing - EPS) {
          toPing.push(p.link);
          p.nextPing = now + this.pingMs;
        }
      } else if (p.state === 'negotiating') {
        if (now - p.since >= this.negotiateMs - EPS) failed.push(id);
      } else if (p.retryAt !== null && now >= p.retryAt - EPS) {
        p.retryAt = null;
        retry.push(id);
      }
    }
    if (this.ping) for (const l of toPing) this.replica.session(l)?.ping(now);
    this.replica.reportLinks(true);
    this.stats.linkTimeouts += timedOut.length;
    this.stats.negotiationTimeouts += failed.length;
    for (const id of timedOut) this.loseLink(id, now + this.backoff(this.peers.get(id).failures), 'timeout');
    for (const id of failed) {
      const p = this.peers.get(id);
      p.failures++;
      this.loseLink(id, now + this.backoff(p.failures), 'failed');
    }
    for (const id of retry) {
      if (this.weOffer(id) && this.peers.get(id)?.inRoom) this.offer(id, now);
    }
  }

  /** The wait before retrying a link after `failures` (doubling from `retryMinMs` to
   * `retryMaxMs`, jittered into [0.5, 1) of it). */
  backoff(failures) {
    return this.rng.jitter(Math.min(this.retryMinMs * 2 ** Math.min(failures, 16), this.retryMaxMs));
  }

  // -- leaving

  /**
   * Leaves: `BYE` on every link, each kept until its remote closes it (at most
   * `CLOSE_FLUSH_MS`, so what was written before reaches it); then what is left is
   * closed, `/leave` sent, and `offline` reported.
   */
  close(now) {
    if (this.closed) return;
    this.closed = true;
    this.lastNow = Math.max(this.lastNow, now);
    for (const id of this.ids()) {
      const p = this.peers.get(id);
      if (p.link !== null) this.replica.session(p.link)?.sendControl('BYE');
    }
    for (const id of this.ids()) if (this.peers.get(id).state !== 'open') this.dropConn(id, null);
    this.closingUntil = now + CLOSE_FLUSH_MS;
    this.checkClosing();
  }

  checkClosing() {
    if (this.closingUntil === null) return;
    const open = [...this.peers.values()].some((p) => p.state === 'open');
    if (open && this.lastNow < this.closingUntil - EPS) return;
    this.closingUntil = null;
    for (const id of this.ids()) this.dropConn(id, null);
    this.signal(encodeSignal('leave', this.id, [{ id: this.id }]));
    // The leave goes out first if the connection is up; then it closes.
    viaClient(this, () => {
      this.client.close();
      this.pumpSignal();
    });
    this.event('offline');
  }
}

function updateEvent(u, local) {
  return { key: u.key, value: u.value, deleted: u.value === null, ts: u.ts, source: u.source, local };
}
