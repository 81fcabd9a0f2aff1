// The browser's link layer: the sans-IO Mesh (lib/mesh.js) driven with a WebSocket to
// the switchboard and an RTCPeerConnection per peer (core's `node`, for browsers).

import { MeshError, byteLength } from './values.js';
import { Mesh } from './mesh.js';
import { IDLE_MS } from './signal-client.js';
import { Identity, b64url, deriveRoomKey, resumeRekey } from './security.js';
import { openStorage } from './storage.js';

/** The durability levels (DESIGN: core's `Durability`). */
const DURABILITIES = ['memory', 'process', 'power'];

/** Throws unless `d` is a durability level. */
function checkDurability(d) {
  if (!DURABILITIES.includes(d)) throw new MeshError('bad_durability', `durability is one of ${DURABILITIES.join(', ')}`);
}

/** Whether `join`'s options ask for a durable member. */
function wantsData(options) {
  return options.data !== undefined && options.data !== false && options.data !== null;
}

/** How long ICE may call an open connection `disconnected` before it is judged dead. */
const ICE_LOST_MS = 2000;
/** Stop writing to a channel above this many buffered bytes; resume below a quarter. */
const HIGH_WATER = 1 << 20;
/** A channel's creator speaks at once; the other side once it has heard the creator,
 * or after this long (Firefox can drop what arrives just before its own `open`). */
const QUIET_MS = 1000;
/** How often an open link's selected candidate pair is read from its stats. */
const PATH_MS = 2000;
/** How often, while no channel data comes, the pair's received bytes are read. */
const PATH_QUIET_MS = 500;
/** An open link to a pinging peer with neither channel data nor datagrams on its path
 * for this long is restarted (ICE restart over signalling), as natives do. */
const RESTART_AFTER_MS = 2000;
/** How long a restart may take once the peer's restart SDP came. */
const RESTART_TIMEOUT_MS = 4000;
/** How long a link whose path still brings datagrams is held while its channel data
 * stalls (SCTP retransmitting a lost frame: 1 + 2 + 4 s), as natives do. */
const STALL_HOLD_MS = 10000;
/** WebSocket attempts in a row that fail before opening, after which the switchboard is
 * reported as refusing us (`refused_http`): a browser is not told the HTTP status of a
 * refused upgrade (401 for a token, 429 for too many connections), nor whether there was
 * one at all (a switchboard that is down looks the same). */
const REFUSED_AFTER = 3;

/** What a refusal's reason means, for the `error` event (the CLI's wording). */
const REFUSALS = {
  http_401: 'refused our connection: a valid token is required',
  http_429: 'refused our connection: too many from our address',
  http: `did not open our WebSocket ${REFUSED_AFTER} times in a row: it refuses us (no valid token, or too ` +
    'many connections from our address; a browser is not told which) or cannot be reached',
  token_room: 'refused our announce: the token is for another room',
  token_required: 'refused our announce: a token is required',
  unproven: "refused our announce: no proof that we hold our id's key",
};

/** The `error` of a `refused` event: code `refused_<reason>`. */
function refusal(reason) {
  return new MeshError(`refused_${reason}`, `the switchboard ${REFUSALS[reason] ?? 'refused us'}; retrying`);
}

/** The switchboard URL with the admission token in its query (core's
 * `JoinOptions::connect_url`). */
function connectUrl(url, token) {
  if (token === undefined || token === null) return url;
  return `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
}

/** Whether datagrams came on `l`'s path within `within` ms while its channel data has
 * stalled for less than STALL_HOLD_MS: SCTP is retransmitting (core's `stalled`). */
function stalled(l, now, within) {
  return now - l.pathHeardAt < within && now - l.dataAt < STALL_HOLD_MS;
}

function hex(n) {
  const b = new Uint8Array(Math.ceil(n / 2));
  crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('').slice(0, n);
}

const clock = () => performance.now();

/**
 * A member of a room. Create one with {@link join}. Events (`on(name, fn)`):
 * `update` ({key, value, deleted, ts, source, local}), `peer_join` ({peer, attributes}),
 * `peer_update` ({peer, attributes}), `peer_leave` ({peer, reason: left | timeout |
 * closed | failed}), `synced` ({peer}), `synced_all` ({peers}), `online`, `offline`,
 * `ice_offered` ({urls}: the switchboard's TURN servers, used as none were given),
 * `refused` ({reason}: the switchboard refused our connection or announce; retried),
 * `rekeyed` ({epoch, by, line}: a secured room moved to a new key after a removal;
 * keep `line` and join with it as `rekey` after a restart), `error` (a MeshError; a
 * refusal is one too, code `refused_<reason>`).
 */
export class Member {
  constructor(room, options = {}) {
    this.room = room;
    this.incarnation = hex(16);
    this.signalUrl = connectUrl(options.signal || defaultSignalUrl(), options.token);
    this.iceServers = options.iceServers || [];
    // Given no TURN server, the first one the switchboard offers (`/mesh:ice`) is used.
    this.iceOffered = this.iceServers.some((s) => [].concat(s.urls || []).some((u) => /^turns?:/.test(u)));
    // 'relay': relayed candidates only (every link through a TURN server).
    this.iceTransportPolicy = options.iceTransportPolicy === 'relay' ? 'relay' : 'all';
    const start = clock();
    this.mesh = new Mesh(
      {
        // In a secured room our id is our identity's key.
        id: options.security ? options.security.identity.peerId : options.id || hex(16),
        room,
        incarnation: this.incarnation,
        codecs: options.codecs,
        attributes: options.attributes,
        agent: 'rtc-mesh-web/0.1',
        epochMs: Date.now(),
        // Core's generator, seeded per member: its retries replay.
        seed: BigInt(`0x${this.incarnation}`),
        security: options.security,
      },
      start,
    );
    if (options.security && options.id && options.id !== this.mesh.id) {
      throw new MeshError('bad_id', `in a secured room the peer id must be the identity's key (${this.mesh.id})`);
    }
    /** A durable member's storage (the `data` option: lib/storage.js), else null. */
    this.storage = options.storage ?? null;
    this.durability = this.storage ? options.durability ?? 'process' : 'memory';
    checkDurability(this.durability);
    if (this.storage) {
      if (options.records) this.mesh.store.restore(options.records);
      this.mesh.persist(this.durability !== 'memory');
    }
    /** A batch being written; `set` calls waiting for their write to be stored. */
    this.writing = false;
    this.waiters = [];
    /** Called once nothing is left to write (close). */
    this.storageIdle = null;
    /** The storage's failure, once it failed: the member stopped (never retried). */
    this.failure = null;
    // A secured room's signals are sealed and opened asynchronously: what they bring
    // out is run when they are done.
    this.mesh.onOutput = () => this.pump();
    this.id = this.mesh.id;
    this.links = new Map();
    this.listeners = new Map();
    this.ws = null;
    this.timer = null;
    this.timerAt = Infinity;
    this.pumping = false;
    this.again = false;
    this.closing = null;
    this.finish = null;
    /** WebSocket attempts in a row that failed before opening. */
    this.failedOpens = 0;
    /** ICE restarts begun (by us or the peer), and those after which data flowed again;
     * and the mesh's refusals of signals in a secured room (always 0 in an open one). */
    this.stats = { restarts: 0, restartsRecovered: 0 };
    for (const k of ['unsecuredSignals', 'unsealFailures', 'badSignatures', 'staleSignals', 'removedSignals', 'rekeys', 'rekeysRefused']) {
      Object.defineProperty(this.stats, k, { enumerable: true, get: () => this.mesh.stats[k] });
    }
    // And the store's refusals of updates (core's `StoreStats`): unsigned, forged or
    // mutated, from no member's key, into another member's space; held back for now;
    // applied late (a relay reordered their writer's updates).
    for (const [k, s] of [['updatesUnsigned', 'unsigned'], ['updatesBadSignature', 'badSignatures'],
      ['updatesBadSource', 'badSources'], ['updatesNotOwner', 'notOwner'], ['updatesHeld', 'held'],
      ['updatesLate', 'late'], ['updatesRevoked', 'revoked'], ['updatesVoided', 'voided']]) {
      Object.defineProperty(this.stats, k, { enumerable: true, get: () => this.mesh.store.stats[s] });
    }
  }

  /** Whether the room is secured (joined with a secret). */
  get secured() {
    return this.mesh.secured !== null;
  }

  /** In a secured room the name the switchboard sees (derived from the secret, and from
   * the current key epoch once its grace period is over), else null. */
  get tag() {
    return this.mesh.secured?.epochs.door() ?? null;
  }

  /** The room's key epoch (0 in an open room, and until the first removal). */
  get epoch() {
    return this.mesh.epoch();
  }

  /** The current epoch's `REKEY` line (keep it, and join with it as `rekey` after a
   * restart), or null in epoch 0. */
  get rekeyLine() {
    return this.mesh.rekeyLine();
  }

  /** The store (read it with `get`, `keys`, `snapshot`). */
  get store() {
    return this.mesh.store;
  }

  /** The store's links and their sessions. */
  get replica() {
    return this.mesh.replica;
  }

  /** Whether `close()` was called. */
  get closed() {
    return this.mesh.closed;
  }

  // -- events
  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.listeners.get(name)?.delete(fn);
  }

  /** The switchboard's TURN offer: used by every connection made from now on. */
  useOffer(json) {
    if (this.iceOffered) return;
    let offer;
    try {
      offer = JSON.parse(json);
    } catch {
      return;
    }
    const servers = (Array.isArray(offer && offer.iceServers) ? offer.iceServers : [])
      .slice(0, 8)
      .filter((s) => s && typeof s === 'object' && (typeof s.urls === 'string' || Array.isArray(s.urls)))
      .map((s) => ({
        urls: [].concat(s.urls).filter((u) => typeof u === 'string').slice(0, 8),
        username: typeof s.username === 'string' ? s.username : undefined,
        credential: typeof s.credential === 'string' ? s.credential : undefined,
      }));
    if (!servers.length) return;
    this.iceOffered = true;
    this.iceServers = this.iceServers.concat(servers);
    this.emit('ice_offered', { urls: servers.flatMap((s) => s.urls) });
  }

  emit(name, detail) {
    for (const fn of this.listeners.get(name) || []) {
      try {
        fn(detail);
      } catch (e) {
        console.error(e);
      }
    }
  }

  // -- the store
  /**
   * Sets `key` to a JSON value (`null` deletes). Throws MeshError for a bad write.
   * Returns a promise that resolves once the write is acknowledged: for a durable
   * member (`data`, at `process` or `power`) once it is in IndexedDB (and its `update`
   * event, and its sending to peers, wait for that too); else at once. It rejects with
   * the storage's failure (MeshError `storage_failed`).
   */
  set(key, value) {
    if (this.failure) throw this.failure;
    const u = this.mesh.set(clock(), key, value);
    const acked = this.acked(u);
    this.pump();
    return acked;
  }

  /** Resolves when the write `u` is stored (see `set`). */
  acked(u) {
    const j = this.mesh.store.journal;
    if (!j || !j.hold) return Promise.resolve();
    return new Promise((resolve, reject) => {
      // A secured room's write is stored once signed: its batch is known then.
      this.waiters.push({ u, seq: this.mesh.secured ? null : j.pendingSeq(), resolve, reject });
    });
  }

  /** Settles the `set` calls whose writes are stored. */
  settle() {
    const j = this.mesh.store.journal;
    this.waiters = this.waiters.filter((w) => {
      if (w.seq === null) {
        const at = j.signedAt.get(w.u);
        if (at === undefined) return true;
        if (!w.u.sig) {
          w.reject(new MeshError('sign_failed', `the write of ${JSON.stringify(w.u.key)} could not be signed`));
          return false;
        }
        w.seq = at;
      }
      if (w.seq > j.done) return true;
      w.resolve();
      return false;
    });
  }

  /** Hands the store's changes to the storage, one batch at a time: what comes while a
   * batch is written goes in the next (group commit). */
  writeChanges() {
    if (!this.storage || this.writing || this.failure) return;
    const batch = this.mesh.takeChanges();
    if (!batch) {
      this.settle();
      if (this.storageIdle && !this.mesh.store.journal.awaiting()) this.storageIdle();
      return;
    }
    this.writing = true;
    this.storage.write(batch, this.durability === 'power').then(
      () => {
        this.writing = false;
        this.mesh.persisted(batch.seq);
        this.settle();
        // What was held back goes now.
        this.pump();
        for (const l of this.links.values()) this.flush(l);
      },
      (e) => this.storageFailed(e),
    );
  }

  /** The storage failed: fatal. Nothing held back goes out, every waiting `set`
   * rejects, the links and the signalling connection are dropped (as a process that
   * exits), and `error` reports it. */
  storageFailed(e) {
    if (this.failure) return;
    this.writing = false;
    this.failure = e instanceof MeshError ? e : new MeshError('storage_failed', String(e && e.message || e));
    for (const w of this.waiters.splice(0)) w.reject(this.failure);
    clearTimeout(this.timer);
    this.timerAt = Infinity;
    for (const peer of [...this.links.keys()]) this.closeLink(peer);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.close();
    }
    this.mesh.closed = true;
    this.storage.close();
    this.emit('error', this.failure);
    this.finish?.();
    this.socketClosed?.();
  }

  delete(key) {
    return this.set(key, null);
  }

  get(key) {
    return this.store.get(key);
  }

  keys() {
    return this.store.keys();
  }

  snapshot() {
    return this.store.snapshot();
  }

  /** Present peers: id, attributes, link state, codec, counters and round trip. */
  peerList() {
    return [...this.mesh.peers.entries()]
      .filter(([, p]) => p.present)
      .map(([id, p]) => {
        const s = this.mesh.sessionOf(id);
        return {
          id,
          attributes: p.attributes,
          state: p.state,
          synced: p.synced,
          codec: p.state === 'open' ? p.codec : null,
          stats: s ? { ...s.stats } : null,
          path: p.state === 'open' ? this.links.get(id)?.path ?? null : null,
        };
      });
  }

  /** New user attributes, announced to the room. */
  announce(attributes) {
    this.mesh.announce(clock(), attributes);
    this.pump();
  }

  // -- driving the mesh
  /** Runs the mesh's outputs; once, however often it is re-entered. */
  pump() {
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    try {
      do {
        this.again = false;
        if (this.failure) return;
        this.drain();
        this.writeChanges();
      } while (this.again);
    } finally {
      this.pumping = false;
    }
  }

  drain() {
    for (;;) {
      const o = this.mesh.poll();
      switch (o.type) {
        case 'signalConnect': this.openSocket(); break;
        case 'signal':
          if (this.ws && this.ws.readyState === 1) this.ws.send(o.text);
          break;
        case 'signalClose': this.closeSocket(); break;
        case 'open': this.open(o.peer, o.offerer, o.codec); break;
        case 'remoteSdp': this.remoteSdp(o.peer, o.kind, o.sdp); break;
        case 'restartSdp': this.restartSdp(o.peer, o.kind, o.sdp); break;
        case 'remoteCandidate': this.remoteCandidate(o.peer, o.candidate); break;
        case 'close': this.closeLink(o.peer); break;
        case 'event':
          if (o.name === 'offline') this.finish?.();
          // A durable member resumes the room's key epoch after a restart.
          if (o.name === 'rekeyed' && this.storage) this.storage.setMeta('rekey', o.detail.line).catch((e) => this.storageFailed(e));
          this.emit(o.name, o.detail);
          if (o.name === 'refused') this.emit('error', refusal(o.detail.reason));
          break;
        case 'timeout':
          this.schedule(o.at);
          return;
        default:
      }
    }
  }

  /** Wakes the mesh at `at` (one timer, for the earliest wake-up asked). */
  schedule(at) {
    if (at === this.timerAt) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    const wait = at - clock();
    // Its idle horizon (an hour ahead): the mesh has nothing scheduled, no timer.
    if (wait > IDLE_MS / 2) return;
    this.timer = setTimeout(() => {
      this.timerAt = Infinity;
      this.mesh.handleTimeout(clock());
      this.checkQuiet();
      this.checkRestarts(clock());
      this.pump();
    }, Math.max(0, wait));
  }

  // -- signalling: the mesh decides, this moves WebSocket frames.
  openSocket() {
    let ws;
    try {
      ws = new WebSocket(this.signalUrl);
    } catch (e) {
      // A switchboard URL that cannot work: the member stops (it is closed).
      this.emit('error', new MeshError('bad_url', e.message));
      this.mesh.close(clock());
      this.again = true;
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      opened = true;
      this.failedOpens = 0;
      this.mesh.handleSignalConnected(clock());
      this.pump();
    };
    ws.onmessage = (e) => {
      if (this.ws !== ws || typeof e.data !== 'string') return;
      if (e.data.startsWith('/mesh:ice|')) {
        // The switchboard's own message (TURN servers with short-lived credentials),
        // not the room's: as the native Node, it never reaches the mesh.
        this.useOffer(e.data.slice('/mesh:ice|'.length));
        return;
      }
      this.mesh.handleSignal(clock(), e.data);
      this.pump();
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      // Refused before the upgrade, perhaps (once per run of failures: see REFUSED_AFTER).
      if (!opened && ++this.failedOpens === REFUSED_AFTER) this.mesh.handleSignalRefused(clock(), '');
      else this.mesh.handleSignalDisconnected(clock());
      this.pump();
    };
    ws.onerror = () => {};
  }

  closeSocket() {
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close();
    this.socketClosed?.();
  }

  // -- links: the mesh's commands carried out on RTCPeerConnections
  open(peer, offerer, codec) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers, iceTransportPolicy: this.iceTransportPolicy });
    const l = {
      peer, pc, dc: null, codec, encoder: null, offerer, held: [], sdpSent: false, pending: [], remoteSet: false,
      heard: false, openedAt: 0, iceLostAt: null, flushing: false, lost: null, path: null, pathAt: -Infinity,
      // Liveness for ICE restarts: when channel data, and a datagram on the selected
      // pair (its received bytes grew), last came; the pair and its bytes; a restart's
      // deadline.
      dataAt: 0, pathHeardAt: -Infinity, rxPair: null, rx: 0, restartUntil: null,
    };
    this.links.set(peer, l);
    // Candidates go out after our SDP (a peer drops candidates for a negotiation it
    // has not heard of): held until then.
    pc.onicecandidate = (e) => {
      if (!e.candidate || !e.candidate.candidate || this.links.get(peer) !== l) return;
      const c = e.candidate.toJSON();
      if (l.sdpSent) this.input((now) => this.mesh.localCandidate(now, peer, c));
      else l.held.push(c);
    };
    pc.onconnectionstatechange = () => {
      if (this.links.get(peer) !== l) return;
      const s = pc.connectionState;
      if (s === 'failed' || s === 'closed') this.input((now) => this.mesh.linkClosed(now, peer));
      else if (s === 'disconnected') {
        // ICE lost its path (no check answered for some seconds): the browser calls it
        // `failed` only much later (about 30 s), so `disconnected` for ICE_LOST_MS is
        // dead. This watches links whose remote never pings.
        if (l.iceLostAt === null) {
          l.iceLostAt = clock();
          l.lost = setTimeout(() => {
            // A pinging peer's link is watched by the restart rule instead.
            if (this.links.get(peer) === l && l.iceLostAt !== null && !this.mesh.canRestart(peer)) {
              this.input((now) => this.mesh.linkLost(now, peer));
            }
          }, ICE_LOST_MS);
        }
      } else {
        l.iceLostAt = null;
        clearTimeout(l.lost);
      }
    };
    if (offerer) {
      this.wireChannel(peer, l, pc.createDataChannel('mesh', { ordered: true, protocol: codec }));
      this.negotiate(peer, l, async () => {
        await pc.setLocalDescription(await pc.createOffer());
        this.sendSdp(peer, l, 'offer');
      });
    } else {
      pc.ondatachannel = (e) => {
        if (e.channel.label !== 'mesh' || this.links.get(peer) !== l) return;
        // The offerer picked from what we announced; anything else (or nothing, a
        // foreign client) is json.
        l.codec = this.mesh.codecs.includes(e.channel.protocol) ? e.channel.protocol : 'json';
        this.wireChannel(peer, l, e.channel);
      };
    }
  }

  /** Runs an input of the mesh now, then its outputs. */
  input(f) {
    f(clock());
    this.pump();
  }

  /** Runs the async steps of a negotiation; a failure closes the link. */
  negotiate(peer, l, steps) {
    steps().catch(() => {
      if (this.links.get(peer) === l) this.input((now) => this.mesh.linkClosed(now, peer));
    });
  }

  /** Routes our SDP, then the candidates found meanwhile. */
  sendSdp(peer, l, kind) {
    if (this.links.get(peer) !== l) return;
    const sdp = l.pc.localDescription.sdp;
    this.input((now) => {
      this.mesh.localSdp(now, peer, kind, sdp);
      l.sdpSent = true;
      for (const c of l.held.splice(0)) this.mesh.localCandidate(now, peer, c);
    });
  }

  remoteSdp(peer, kind, sdp) {
    const l = this.links.get(peer);
    if (!l) return;
    this.negotiate(peer, l, async () => {
      await l.pc.setRemoteDescription({ type: kind, sdp });
      l.remoteSet = true;
      await this.flushCandidates(l);
      if (kind === 'offer') {
        await l.pc.setLocalDescription(await l.pc.createAnswer());
        this.sendSdp(peer, l, 'answer');
      }
    });
  }

  /** The peer's SDP of an ICE restart of the open link: its offer, answered on the same
   * connection, or the answer to ours. The restart has its full time from now. */
  restartSdp(peer, kind, sdp) {
    const l = this.links.get(peer);
    if (!l) return;
    if (kind === 'answer' && (l.restartUntil === null || !l.offerer)) return;
    if (l.restartUntil === null) this.stats.restarts++;
    l.restartUntil = clock() + RESTART_TIMEOUT_MS;
    this.negotiate(peer, l, async () => {
      await l.pc.setRemoteDescription({ type: kind, sdp });
      if (kind === 'answer') return;
      await l.pc.setLocalDescription(await l.pc.createAnswer());
      if (this.links.get(peer) !== l) return;
      const answer = l.pc.localDescription.sdp;
      this.input((now) => this.mesh.localRestartSdp(now, peer, 'answer', answer));
    });
  }

  /** The open link went quiet while signalling works: its offerer restarts ICE (fresh
   * credentials, every pair checked again, on the same connection: DTLS, the channel
   * and the session survive); the other end waits for that offer. */
  startRestart(l, now) {
    l.restartUntil = now + RESTART_AFTER_MS;
    this.stats.restarts++;
    if (!l.offerer) return;
    const peer = l.peer;
    this.negotiate(peer, l, async () => {
      await l.pc.setLocalDescription(await l.pc.createOffer({ iceRestart: true }));
      if (this.links.get(peer) !== l) return;
      const offer = l.pc.localDescription.sdp;
      this.input((t) => this.mesh.localRestartSdp(t, peer, 'offer', offer));
    });
  }

  /** Restarts to begin, to hold and to give up; links held while SCTP retransmits. */
  checkRestarts(now) {
    for (const l of this.links.values()) {
      if (!l.encoder) continue;
      const peer = l.peer;
      if (l.restartUntil !== null) {
        // Past its time, held while the path answers and data stalls for under
        // STALL_HOLD_MS (SCTP backed its retransmissions off while the path was down,
        // so data can come seconds after ICE found it again), as natives do.
        if (now >= l.restartUntil && !stalled(l, now, RESTART_TIMEOUT_MS)) {
          // Given up: negotiated again, as natives do.
          l.restartUntil = null;
          this.mesh.linkClosed(now, peer);
          continue;
        }
        this.mesh.linkAlive(now, peer);
      } else if (now - Math.max(l.dataAt, l.pathHeardAt) >= RESTART_AFTER_MS && this.mesh.canRestart(peer)) {
        this.startRestart(l, now);
        this.mesh.linkAlive(now, peer);
      } else if (stalled(l, now, RESTART_AFTER_MS)) {
        // Alive as of the path's last datagram (core's Node does the same): once the
        // path goes quiet too, a peer that closed is reported left as without the hold.
        this.mesh.linkAlive(l.pathHeardAt, peer);
      }
      if (now - l.dataAt >= PATH_QUIET_MS && now - l.pathAt >= PATH_QUIET_MS) {
        l.pathAt = now;
        this.readPath(l);
      }
    }
  }

  remoteCandidate(peer, c) {
    const l = this.links.get(peer);
    // mDNS names (`x.local`) cannot be resolved here: dropped, as natives do.
    if (!l || typeof c.candidate !== 'string' || !c.candidate || / [^ ]+\.local /.test(c.candidate)) return;
    l.pending.push(c);
    if (l.remoteSet) this.flushCandidates(l);
  }

  async flushCandidates(l) {
    for (const c of l.pending.splice(0)) {
      try {
        await l.pc.addIceCandidate({ candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? 0 });
      } catch {
        // An unparsable candidate is ignored, as natives do.
      }
    }
  }

  wireChannel(peer, l, dc) {
    l.dc = dc;
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = HIGH_WATER / 4;
    const current = () => this.links.get(peer) === l;
    dc.onopen = () => {
      if (current()) this.channelOpen(peer, l);
    };
    dc.onmessage = (e) => {
      if (!current()) return;
      // A message can come before this side's `open` event (the remote opened first).
      if (!l.encoder) this.channelOpen(peer, l);
      l.heard = true;
      const now = clock();
      l.dataAt = now;
      if (l.restartUntil !== null) {
        l.restartUntil = null;
        this.stats.restartsRecovered++;
      }
      this.mesh.linkData(now, peer, typeof e.data === 'string' ? e.data : new Uint8Array(e.data));
      this.pump();
      this.flush(l);
    };
    dc.onbufferedamountlow = () => this.flush(l);
    dc.onclose = () => {
      if (current()) this.input((now) => this.mesh.linkClosed(now, peer));
    };
  }

  channelOpen(peer, l) {
    if (l.encoder) return;
    this.mesh.linkOpen(clock(), peer, l.codec);
    const encoder = this.mesh.encoderOf(peer);
    if (!encoder) {
      this.pump();
      return;
    }
    l.encoder = encoder;
    l.heard = l.offerer;
    l.openedAt = clock();
    l.dataAt = l.openedAt;
    encoder.onWrite = () => this.scheduleFlush(l);
    this.pump();
    this.flush(l);
    this.readPath(l);
  }

  /** The side that did not create the channel speaks once heard, or after QUIET_MS;
   * and each open link's path is read again every PATH_MS. */
  checkQuiet() {
    const now = clock();
    for (const l of this.links.values()) {
      if (l.encoder && !l.heard && now - l.openedAt >= QUIET_MS) {
        l.heard = true;
        this.flush(l);
      }
      if (l.encoder && now - l.pathAt >= PATH_MS) {
        l.pathAt = now;
        this.readPath(l);
      }
    }
  }

  /** The selected candidate pair of `l`'s connection, from its stats: each end's type
   * (`host`, `srflx`, `prflx`, `relay`) and address. */
  async readPath(l) {
    let stats;
    try {
      stats = await l.pc.getStats();
    } catch {
      return;
    }
    let pair = null;
    stats.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId) ?? pair;
    });
    // Firefox marks the pair itself.
    stats.forEach((r) => {
      if (!pair && r.type === 'candidate-pair' && (r.selected || (r.nominated && r.state === 'succeeded'))) pair = r;
    });
    const end = (id) => {
      const c = id && stats.get(id);
      if (!c) return null;
      const ip = c.address ?? c.ip;
      return { type: c.candidateType, addr: ip && ip.includes(':') ? `[${ip}]:${c.port}` : `${ip}:${c.port}` };
    };
    const local = pair && end(pair.localCandidateId);
    const remote = pair && end(pair.remoteCandidateId);
    if (local && remote) l.path = { local, remote };
    // A datagram came on the path since the last look (or it is a new pair that has had
    // some): the path is alive. Payload bytes count only DTLS and SCTP; consent checks
    // and their answers count too, as in natives.
    const rx = pair && typeof pair.bytesReceived === 'number'
      ? pair.bytesReceived + (pair.requestsReceived ?? 0) + (pair.responsesReceived ?? 0)
      : undefined;
    if (typeof rx === 'number') {
      if (rx > (pair.id === l.rxPair ? l.rx : 0)) l.pathHeardAt = clock();
      l.rxPair = pair.id;
      l.rx = rx;
    }
  }

  scheduleFlush(l) {
    if (l.flushing) return;
    l.flushing = true;
    queueMicrotask(() => {
      l.flushing = false;
      this.flush(l);
    });
  }

  /** Moves what the link's encoder holds onto the channel, while it takes more. */
  flush(l) {
    const dc = l.dc;
    if (!dc || dc.readyState !== 'open' || !l.heard || !l.encoder) return;
    // (A durable member's encoder gives only what is stored: see `Mesh.persist`.)
    const s = this.mesh.sessionOf(l.peer);
    while (dc.bufferedAmount < HIGH_WATER) {
      const msg = l.encoder.poll();
      if (msg === null) return;
      try {
        dc.send(msg);
      } catch {
        return;
      }
      if (s) s.stats.bytesOut += typeof msg === 'string' ? byteLength(msg) : msg.length;
    }
  }

  closeLink(peer) {
    const l = this.links.get(peer);
    if (!l) return;
    this.links.delete(peer);
    clearTimeout(l.lost);
    if (l.dc) {
      l.dc.onclose = null;
      l.dc.onmessage = null;
    }
    l.pc.onconnectionstatechange = null;
    try {
      l.pc.close();
    } catch {
      // closed already
    }
  }

  /**
   * Leaves the room: `BYE` on every link behind what was written to it; each link is
   * kept until its remote, having read everything, closes it (at most
   * `CLOSE_FLUSH_MS`, 5 s, as natives wait); then `/leave` to the switchboard. Resolves
   * when every link is closed and the signalling connection with it; calling it again
   * gives the same promise.
   */
  close() {
    if (this.closing) return this.closing;
    if (this.failure) return (this.closing = Promise.resolve());
    this.closing = new Promise((resolve) => {
      let offline = false;
      let socket = false;
      const done = () => {
        if (offline && socket) {
          clearTimeout(this.timer);
          if (!this.storage || this.failure) {
            resolve();
            return;
          }
          // The last changes stored, the database is let go.
          this.storageIdle = () => {
            this.storageIdle = null;
            this.storage.close();
            resolve();
          };
          this.writeChanges();
        }
      };
      this.finish = () => {
        offline = true;
        done();
      };
      this.socketClosed = () => {
        socket = true;
        done();
      };
    });
    // The mesh asks to be woken at its deadline (CLOSE_FLUSH_MS) like any other.
    this.mesh.close(clock());
    this.pump();
    for (const l of this.links.values()) this.flush(l);
    return this.closing;
  }
}

function defaultSignalUrl() {
  if (typeof location !== 'undefined' && /^https?:$/.test(location.protocol)) {
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
  }
  return 'ws://127.0.0.1:3000/';
}

/**
 * Joins `room` through the switchboard at `options.signal` (default: the page's own
 * host, or ws://127.0.0.1:3000/). Options: `id`, `attributes`, `iceServers` (STUN and
 * TURN servers, as RTCPeerConnection takes them; given no TURN server, the member uses
 * those the switchboard offers), `iceTransportPolicy` (`'relay'`: relayed candidates
 * only), `codecs`, `token` (an admission token, sent as `?token=` on the signalling URL).
 * Returns the {@link Member} at once; it announces as soon as the WebSocket opens.
 *
 * With `secret` (an invite `rm1_...` or a passphrase, or a room key `deriveRoomKey`
 * made for this room) the room is secured, and the member comes as a promise: the key
 * is derived first (a passphrase is stretched, about a second) and, unless `identity`
 * (an `Identity`) is given, a fresh identity made, whose key is our peer id. A bad
 * secret rejects with a MeshError `bad_secret`. After a removal the room moves to a new
 * key epoch (the `rekeyed` event); `rekey` (the line that event gave, or `rekeyLine`)
 * resumes it after a restart (a line not of this room rejects with `bad_rekey`).
 * `rekeyWaitMs` (default 10 s) is how long a member that is not an admin waits for
 * someone else's rotation after a removal; `rekeyGraceMs` (default 7 days) how long a
 * rotation this member makes keeps the previous epoch's tag.
 *
 * With `data` (`true`: the IndexedDB database `rtc-mesh:<room>`, in a secured room
 * `rtc-mesh:secured:<room id>`, never the open room's; or a database's name)
 * the member is durable, and comes as a promise too: its store is read back first, so
 * the room's data is there at once (with no peer at all), and the room sends only what
 * it lacks. `durability`: `process` (the default: a write is acknowledged, its `set`
 * promise resolved and its `update` event given, once IndexedDB has it; nothing goes to
 * a peer before), `power` (the same, flushed to disk: IndexedDB's `strict` durability)
 * or `memory` (stored in the background, acknowledged at once). One page holds a
 * database at a time: a second rejects with `busy`. A bad row rejects with `bad_data`
 * naming it; `repair` drops such rows (and the clocks, so the room sends everything
 * again). A failed write stops the member (`error`, and `failure`); it is never retried.
 * Writes are under a new source id at each start (`<id>.<incarnation>`), the earlier
 * ones' restored as other sources'.
 */
export function join(room, options = {}) {
  if (typeof room !== 'string' || !room) throw new MeshError('bad_room', 'a room name is required');
  const secured = options.secret !== undefined && options.secret !== null;
  if (secured || wantsData(options)) {
    return joinLater(room, options, secured);
  }
  return started(new Member(room, options));
}

function started(m) {
  m.mesh.start(clock());
  m.pump();
  return m;
}

/** `join` for a secured room (the key derived first) or a durable member (its store
 * read back first). */
async function joinLater(room, options, secured) {
  // Checked before anything is derived or opened.
  if (options.durability !== undefined) checkDurability(options.durability);
  const data = wantsData(options);
  if (data && options.data !== true && (typeof options.data !== 'string' || !options.data)) {
    throw new MeshError('bad_data', 'data is true (the database rtc-mesh:<room>) or the name of an IndexedDB database');
  }
  let key = null;
  if (secured) {
    const { secret } = options;
    key = typeof secret === 'string' ? await deriveRoomKey(room, secret) : secret;
    if (!key || !(key.roomId instanceof Uint8Array) || typeof key.tag !== 'string' || !key.key) {
      throw new MeshError('bad_secret', 'the room secret is a text (an invite or a passphrase) or a key from deriveRoomKey');
    }
  }
  let opened = null;
  if (data) {
    // A secured room's store is its own, whatever the room's name: never the open
    // room's of the same name (its data would go to that room's peers).
    const name = options.data !== true ? options.data : key ? `rtc-mesh:secured:${b64url(key.roomId)}` : `rtc-mesh:${room}`;
    opened = await openStorage(name, { repair: !!options.repair });
  }
  try {
    const more = opened ? { storage: opened.storage, records: opened.records } : {};
    if (!secured) return started(new Member(room, { ...options, ...more }));
    const identity = options.identity ?? (await Identity.generate());
    // A durable member resumes the key epoch it was in.
    const line = options.rekey ?? opened?.records.meta?.rekey ?? null;
    const rekey = line ? await resumeRekey(key, line) : null;
    const security = { key, identity, rekey, rekeyWaitMs: options.rekeyWaitMs, rekeyGraceMs: options.rekeyGraceMs };
    return started(new Member(room, { ...options, ...more, security }));
  } catch (e) {
    opened?.storage.close();
    throw e;
  }
}
