// The mesh (membership, negotiation, links) and its WebRTC driving: core's `mesh`
// and `node`, over the browser's RTCPeerConnection.

import { MeshError, byteLength, validPeerId } from './values.js';
import { Store } from './store.js';
import { JsonEncoder, LineDecoder } from './codecs.js';
import { PostcardDecoder, PostcardEncoder } from './postcard.js';
import { Replica } from './replica.js';
import { encodeSignal, parseSignal } from './signal.js';
import { IDLE_MS, SignalClient, Xorshift } from './signal-client.js';

const PING_MS = 1000;
const DEAD_MS = 4000;
const NEGOTIATE_MS = 10000;
/** How long ICE may call an open connection `disconnected` before it is closed. */
const ICE_LOST_MS = 2000;
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 10000;
/** Stop writing to a channel above this many buffered bytes; resume below a quarter. */
const HIGH_WATER = 1 << 20;
/** The longest `close()` waits for written data to leave (core's `STREAM_FLUSH`). */
const CLOSE_FLUSH_MS = 5000;

function hex(n) {
  const b = new Uint8Array(Math.ceil(n / 2));
  crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('').slice(0, n);
}

/**
 * A member of a room. Create one with {@link join}. Events (`on(name, fn)`):
 * `update` ({key, value, deleted, ts, source, local}), `peer_join` ({peer, attributes}),
 * `peer_update` ({peer, attributes}), `peer_leave` ({peer, reason: left | timeout |
 * closed | failed}), `synced` ({peer}), `synced_all` ({peers}), `online`, `error`.
 */
export class Member {
  constructor(room, options = {}) {
    this.room = room;
    this.id = options.id || hex(16);
    if (!validPeerId(this.id)) throw new MeshError('bad_id', `invalid peer id ${JSON.stringify(this.id)}`);
    this.incarnation = hex(16);
    this.signalUrl = options.signal || defaultSignalUrl();
    this.attributes = options.attributes || {};
    this.iceServers = options.iceServers || [];
    this.codecs = options.codecs || ['postcard', 'json'];
    if (!Array.isArray(this.codecs) || !this.codecs.length || this.codecs.some((c) => c !== 'postcard' && c !== 'json')) {
      throw new MeshError('bad_codecs', 'codecs lists "postcard" and/or "json"');
    }
    this.store = new Store(`${this.id}.${this.incarnation}`);
    this.replica = new Replica(this.store);
    this.replica.onUpdate = (u, local) => this.emit('update', updateEvent(u, local));
    this.peers = new Map();
    this.listeners = new Map();
    this.closed = false;
    this.closing = null;
    this.online = false;
    this.ws = null;
    // Core's generator for link retries, seeded from the incarnation (as the signalling
    // client's), so a member's retries replay.
    this.rng = new Xorshift(BigInt('0x' + this.incarnation) ^ 0x6d657368n);
    this.signalClient = new SignalClient(
      { seed: Number.parseInt(this.incarnation.slice(0, 12), 16) },
      Date.now(),
    );
    this.signalTimer = null;
    this.early = new Map();
    this.timer = setInterval(() => this.tick(), PING_MS / 4);
  }

  // -- events
  on(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, new Set());
    this.listeners.get(name).add(fn);
    return () => this.listeners.get(name)?.delete(fn);
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
  /** Sets `key` to a JSON value (`null` deletes). Throws MeshError for a bad write. */
  set(key, value) {
    if (this.closed) throw new MeshError('closed', 'the member has left the room');
    this.replica.set(key, value);
  }

  delete(key) {
    this.set(key, null);
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
    return [...this.peers.entries()]
      .filter(([, p]) => p.present)
      .map(([id, p]) => {
        const s = p.link !== null ? this.replica.session(p.link) : null;
        return {
          id,
          attributes: p.attributes,
          state: p.state,
          synced: p.synced,
          codec: p.state === 'open' ? p.codec : null,
          stats: s ? { ...s.stats } : null,
        };
      });
  }

  /** New user attributes, announced to the room. */
  announce(attributes) {
    this.attributes = attributes;
    this.sendAnnounce(null);
  }

  // -- signalling: the client decides, this moves WebSocket frames.
  connect() {
    // Remembered by the client, sent as soon as the WebSocket opens and after every
    // reconnect.
    this.sendAnnounce(null);
  }

  /** Carries out the signalling client's outputs. */
  pumpSignal() {
    for (;;) {
      const o = this.signalClient.poll();
      switch (o.type) {
        case 'connect':
          this.openSocket();
          break;
        case 'send':
          if (this.ws && this.ws.readyState === 1) this.ws.send(o.text);
          break;
        case 'close':
          if (this.ws) {
            const ws = this.ws;
            this.ws = null;
            ws.close();
          }
          break;
        case 'connected':
          if (this.signalClient.connections > 1) {
            // A reconnect: offers in flight may have been lost.
            for (const [peer, q] of this.peers) {
              if (q.state === 'negotiating' && q.offerer) this.restartOffer(peer);
            }
          }
          break;
        case 'disconnected':
          break;
        case 'timeout': {
          clearTimeout(this.signalTimer);
          const wait = o.at - Date.now();
          if (wait < IDLE_MS) {
            this.signalTimer = setTimeout(() => {
              this.signalClient.handleTimeout(Date.now());
              this.pumpSignal();
            }, Math.max(0, wait));
          }
          return;
        }
      }
    }
  }

  openSocket() {
    let ws;
    try {
      ws = new WebSocket(this.signalUrl);
    } catch (e) {
      this.emit('error', new MeshError('bad_url', e.message));
      this.signalClient.close();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.signalClient.handleConnected(Date.now());
      this.pumpSignal();
    };
    ws.onmessage = (e) => {
      if (this.ws === ws && typeof e.data === 'string') this.handleSignal(e.data);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.signalClient.handleDisconnected(Date.now());
      this.pumpSignal();
    };
    ws.onerror = () => {};
  }

  /** Sends a text to the switchboard now, or after the next (re)connect (bounded). */
  signal(text) {
    this.signalClient.send(text);
    this.pumpSignal();
  }

  announceAttributes() {
    return {
      ...this.attributes,
      id: this.id,
      room: this.room,
      agent: 'rtc-mesh-web/0.1',
      incarnation: this.incarnation,
      codecs: this.codecs,
    };
  }

  sendAnnounce(to) {
    const a = this.announceAttributes();
    // Ours first, as natives order them.
    const ordered = { id: a.id, room: a.room, agent: a.agent, incarnation: a.incarnation, codecs: a.codecs };
    for (const [k, v] of Object.entries(this.attributes)) {
      if (!(k in ordered)) ordered[k] = v;
    }
    const text = encodeSignal('announce', this.id, [ordered], to);
    if (to === null) {
      // Ours: sent again first after every reconnect.
      this.signalClient.announce(text);
      this.pumpSignal();
    } else {
      this.signal(text);
    }
  }

  handleSignal(text) {
    if (this.closed) return;
    const m = parseSignal(text);
    if (!m || (m.to !== null && m.to !== this.id)) return;
    if (m.command === 'roominfo') {
      // A reconnect is known from the connection (see pumpSignal), not from this.
      if (!this.online) {
        this.online = true;
        this.emit('online', {});
      }
      return;
    }
    const from = m.sender;
    if (!from || from === this.id || !validPeerId(from)) return;
    const obj = m.args.find((a) => a && typeof a === 'object' && !Array.isArray(a));
    switch (m.command) {
      case 'announce':
        if (obj) this.onAnnounce(from, obj, m.to === null);
        break;
      case 'leave':
        this.onLeave(from, obj);
        break;
      case 'mesh:sdp':
      case 'mesh:candidate':
      case 'mesh:candidates': {
        const p = this.peers.get(from);
        if (p && p.inRoom) this.onNegotiation(from, m);
        else {
          if (!this.early.has(from) && this.early.size >= 64) return;
          const q = this.early.get(from) || [];
          if (q.length < 64) q.push(m);
          this.early.set(from, q);
        }
        break;
      }
      default:
    }
  }

  onAnnounce(from, attrs, broadcast) {
    if (attrs.room !== this.room) return;
    if (broadcast) this.sendAnnounce(from);
    const incarnation = typeof attrs.incarnation === 'string' ? attrs.incarnation : null;
    const codecs = Array.isArray(attrs.codecs) ? attrs.codecs : ['json'];
    let p = this.peers.get(from);
    const returning = p !== undefined && p.incarnation !== incarnation;
    if (returning) {
      this.dropConn(from, null);
      this.setPresent(from, false, 'left');
    }
    if (!p) {
      p = {
        attributes: {},
        incarnation: null,
        codecs: [],
        present: false,
        inRoom: true,
        state: 'idle',
        retryAt: null,
        since: 0,
        offerer: false,
        pc: null,
        dc: null,
        link: null,
        lastHeard: 0,
        nextPing: 0,
        failures: 0,
        synced: false,
        pending: [],
        queue: [],
        head: 0,
      };
      this.peers.set(from, p);
    }
    if (p.present && !returning && JSON.stringify(p.attributes) !== JSON.stringify(attrs)) {
      this.emit('peer_update', { peer: from, attributes: attrs });
    }
    p.attributes = attrs;
    p.incarnation = incarnation;
    p.codecs = codecs;
    p.inRoom = true;
    if (returning) p.failures = 0;
    this.setPresent(from, true, 'left');
    if (p.state === 'idle' && this.weOffer(from)) this.offer(from);
    else if (p.state === 'negotiating' && p.offerer && broadcast && !returning) {
      // It announced again by broadcast (its signalling reconnected).
      this.restartOffer(from);
    }
    const early = this.early.get(from);
    if (early) {
      this.early.delete(from);
      for (const m of early) this.onNegotiation(from, m);
    }
  }

  onLeave(from, obj) {
    this.early.delete(from);
    const p = this.peers.get(from);
    if (!p) return;
    p.inRoom = false;
    const reason = obj && typeof obj.reason === 'string' ? obj.reason : null;
    // The switchboard lost its connection: the link decides.
    if (reason !== null && p.state === 'open') return;
    this.dropConn(from, null);
    this.setPresent(from, false, reason !== null ? 'closed' : 'left');
    this.peers.delete(from);
    this.checkAllSynced();
  }

  weOffer(peer) {
    return this.id > peer;
  }

  setPresent(peer, present, reason) {
    const p = this.peers.get(peer);
    if (!p || p.present === present) return;
    p.present = present;
    if (present) this.emit('peer_join', { peer, attributes: p.attributes });
    else this.emit('peer_leave', { peer, reason });
  }

  newPc(peer) {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    // Candidates go out after our SDP (a peer drops candidates for a negotiation it
    // has not heard of): held until `sdpSent`.
    pc.held = [];
    pc.sdpSent = false;
    pc.onicecandidate = (e) => {
      if (!e.candidate || !e.candidate.candidate) return;
      const text = encodeSignal('mesh:candidate', this.id, [e.candidate.toJSON()], peer);
      if (pc.sdpSent) this.signal(text);
      else pc.held.push(text);
    };
    pc.onconnectionstatechange = () => {
      const p = this.peers.get(peer);
      if (!p || p.pc !== pc) return;
      if (pc.connectionState === 'failed' || pc.connectionState === 'closed') this.linkClosed(peer);
      // ICE lost its path (no check answered for some seconds): watched by `tick`.
      else if (pc.connectionState === 'disconnected') p.iceLostAt ??= Date.now();
      else p.iceLostAt = null;
    };
    return pc;
  }

  /** Sends our SDP, then the candidates found meanwhile. */
  sendSdp(peer, pc, type) {
    this.signal(encodeSignal('mesh:sdp', this.id, [{ type, sdp: pc.localDescription.sdp, incarnation: this.incarnation }], peer));
    pc.sdpSent = true;
    for (const t of pc.held.splice(0)) this.signal(t);
  }

  /** A new connection to `peer`, negotiating as offerer or answerer. */
  startNegotiation(peer, p, offerer) {
    p.state = 'negotiating';
    p.offerer = offerer;
    p.since = Date.now();
    p.pc = this.newPc(peer);
    p.pending = [];
    p.remoteSet = false;
    return p.pc;
  }

  /** Runs the async steps of a negotiation on `pc`; a failure closes the link. */
  negotiate(peer, p, pc, steps) {
    steps().catch(() => {
      if (p.pc === pc) this.linkClosed(peer);
    });
  }

  /** Applies the remote's SDP, then the candidates that waited for it. */
  async setRemote(p, pc, type, sdp) {
    await pc.setRemoteDescription({ type, sdp });
    p.remoteSet = true;
    await this.flushCandidates(p, pc);
  }

  /** Drops the negotiation in progress with `peer` and offers afresh. */
  restartOffer(peer) {
    this.dropConn(peer, null);
    this.offer(peer);
  }

  offer(peer) {
    const p = this.peers.get(peer);
    if (!p) return;
    const pc = this.startNegotiation(peer, p, true);
    // The best codec both list (ours in order of preference; a peer that lists none
    // speaks json).
    const codec = this.codecs.find((c) => p.codecs.includes(c)) || 'json';
    const dc = pc.createDataChannel('mesh', { ordered: true, protocol: codec });
    this.wireChannel(peer, pc, dc, codec);
    this.negotiate(peer, p, pc, async () => {
      await pc.setLocalDescription(await pc.createOffer());
      if (p.pc === pc) this.sendSdp(peer, pc, 'offer');
    });
  }

  onNegotiation(from, m) {
    const p = this.peers.get(from);
    if (!p) return;
    const obj = m.args.find((a) => a && typeof a === 'object');
    if (m.command === 'mesh:sdp') {
      if (!obj || typeof obj.type !== 'string' || typeof obj.sdp !== 'string') return;
      if (obj.type === 'offer') {
        if (p.state === 'negotiating' && p.offerer) return;
        // Over an open link a fresh offer means the remote lost it: reported as a closed
        // link is, as core does (the peer joins again when the new one opens).
        const wasOpen = p.state === 'open';
        this.dropConn(from, null);
        if (wasOpen) {
          this.setPresent(from, false, 'closed');
          this.checkAllSynced();
        }
        const pc = this.startNegotiation(from, p, false);
        pc.ondatachannel = (e) => {
          if (e.channel.label !== 'mesh' || p.pc !== pc) return;
          // The offerer picked from what we announced; anything else (or nothing, a
          // foreign client) is json.
          const codec = this.codecs.includes(e.channel.protocol) ? e.channel.protocol : 'json';
          this.wireChannel(from, pc, e.channel, codec);
        };
        this.negotiate(from, p, pc, async () => {
          await this.setRemote(p, pc, 'offer', obj.sdp);
          await pc.setLocalDescription(await pc.createAnswer());
          if (p.pc === pc) this.sendSdp(from, pc, 'answer');
        });
      } else if (obj.type === 'answer' && p.state === 'negotiating' && p.offerer && p.pc) {
        const pc = p.pc;
        this.negotiate(from, p, pc, () => this.setRemote(p, pc, 'answer', obj.sdp));
      }
      return;
    }
    // Candidates, one or a batch.
    if (p.state === 'idle' || !p.pc) return;
    const list = [];
    for (const a of m.args) {
      if (Array.isArray(a)) list.push(...a.filter((c) => c && typeof c === 'object'));
      else if (a && typeof a === 'object') list.push(a);
    }
    for (const c of list) {
      if (typeof c.candidate !== 'string' || !c.candidate || / [^ ]+\.local /.test(c.candidate)) continue;
      p.pending.push(c);
    }
    if (p.remoteSet) this.flushCandidates(p, p.pc);
  }

  async flushCandidates(p, pc) {
    const list = p.pending;
    p.pending = [];
    for (const c of list) {
      try {
        await pc.addIceCandidate({
          candidate: c.candidate,
          sdpMid: c.sdpMid ?? null,
          sdpMLineIndex: c.sdpMLineIndex ?? 0,
        });
      } catch {
        // An unparsable candidate is ignored, as natives do.
      }
    }
  }

  /** Wires a data channel to `peer` speaking `codec` (its `protocol`). */
  wireChannel(peer, pc, dc, codec) {
    const p = this.peers.get(peer);
    p.dc = dc;
    p.codec = codec;
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = HIGH_WATER / 4;
    const lines = codec === 'json' ? new LineDecoder() : null;
    const frames = codec === 'postcard' ? new PostcardDecoder() : null;
    dc.onopen = () => {
      if (p.pc !== pc) return;
      this.linkOpen(peer, dc);
    };
    dc.onmessage = (e) => {
      if (p.pc !== pc) return;
      p.heard = true;
      // A message can come before this side's `open` event (the remote opened first).
      if (p.link === null) this.linkOpen(peer, dc);
      if (p.link === null) return;
      p.lastHeard = Date.now();
      const s = this.replica.session(p.link);
      const text = typeof e.data === 'string';
      if (s) s.stats.bytesIn += text ? byteLength(e.data) : e.data.byteLength;
      if (frames) {
        // A postcard frame: all of its messages, or an error that drops only it.
        let msgs;
        try {
          if (text) throw new MeshError('bad_frame', 'text on a postcard link');
          msgs = frames.push(new Uint8Array(e.data));
        } catch {
          if (s) s.stats.errors++;
          msgs = [];
        }
        for (const m of msgs) {
          if (p.link === null || p.pc !== pc) return;
          this.onAnswer(peer, p, this.replica.handleMessage(p.link, m, Date.now()));
        }
      } else {
        let got;
        try {
          got = lines.push(text ? e.data : new Uint8Array(e.data));
        } catch {
          this.linkClosed(peer);
          return;
        }
        for (const line of got) {
          if (p.link === null || p.pc !== pc) return;
          this.onAnswer(peer, p, this.replica.handleLine(p.link, line, Date.now()));
        }
      }
      this.flush(p);
    };
    dc.onbufferedamountlow = () => this.flush(p);
    dc.onclose = () => {
      if (p.pc === pc) this.linkClosed(peer);
    };
  }

  linkOpen(peer, dc) {
    const p = this.peers.get(peer);
    if (!p || p.state === 'open') return;
    // The side that did not create the channel speaks once it has heard the other:
    // Firefox can drop what arrives just before its own `open` event. (The creator
    // speaks at once; a silent creator is given 1 s.)
    p.heard = p.offerer;
    p.openedAt = Date.now();
    p.encoder = p.codec === 'postcard' ? new PostcardEncoder() : new JsonEncoder();
    p.encoder.onWrite = () => this.scheduleFlush(p);
    p.link = this.replica.openLink(p.encoder);
    const now = Date.now();
    this.replica.session(p.link).ping(now);
    p.state = 'open';
    p.lastHeard = now;
    p.nextPing = now + PING_MS;
    p.failures = 0;
    this.setPresent(peer, true, 'left');
    this.flush(p);
  }

  scheduleFlush(p) {
    if (p.flushing) return;
    p.flushing = true;
    queueMicrotask(() => {
      p.flushing = false;
      this.flush(p);
    });
  }

  /** Moves what the link's encoder holds onto the channel, while it takes more. */
  flush(p) {
    const dc = p.dc;
    if (!dc || dc.readyState !== 'open' || !p.heard || !p.encoder) return;
    const s = p.link !== null ? this.replica.session(p.link) : null;
    while (dc.bufferedAmount < HIGH_WATER) {
      const msg = p.encoder.poll();
      if (msg === null) return;
      if (!this.sendOn(dc, msg)) return;
      if (s) s.stats.bytesOut += typeof msg === 'string' ? byteLength(msg) : msg.length;
    }
  }

  sendOn(dc, msg) {
    try {
      dc.send(msg);
      return true;
    } catch {
      return false;
    }
  }

  /** What the replica answered to a message from `peer`. */
  onAnswer(peer, p, r) {
    if (!r) return;
    if (r.synced) {
      p.synced = true;
      this.emit('synced', { peer });
      this.checkAllSynced();
    }
    if (r.control === 'BYE') {
      this.dropConn(peer, null);
      this.setPresent(peer, false, 'left');
      this.peers.delete(peer);
      this.checkAllSynced();
    }
  }

  checkAllSynced() {
    const present = [...this.peers.entries()].filter(([, p]) => p.present);
    if (present.length && present.every(([, p]) => p.synced)) {
      this.emit('synced_all', { peers: present.map(([id]) => id) });
    }
  }

  dropConn(peer, retryAt) {
    const p = this.peers.get(peer);
    if (!p) return;
    if (p.link !== null) {
      this.flush(p);
      this.replica.closeLink(p.link);
      p.link = null;
    }
    if (p.dc) {
      p.dc.onclose = null;
      p.dc.onmessage = null;
    }
    if (p.pc) {
      p.pc.onconnectionstatechange = null;
      try {
        p.pc.close();
      } catch {
        // closed already
      }
    }
    p.pc = null;
    p.iceLostAt = null;
    p.dc = null;
    p.state = 'idle';
    p.retryAt = retryAt;
    p.synced = false;
    p.encoder = null;
  }

  /** The wait before retrying a link after `failures`: core's rule (250 ms doubling
   * to 10 s, jittered into [0.5, 1) of it by core's generator, seeded per member). */
  backoff(failures) {
    const d = Math.min(RETRY_MIN_MS * 2 ** Math.min(failures, 16), RETRY_MAX_MS);
    return this.rng.jitter(d);
  }

  linkClosed(peer) {
    const p = this.peers.get(peer);
    // A closing member closes its links itself (see close).
    if (!p || this.closed) return;
    const wasOpen = p.state === 'open';
    p.failures++;
    this.dropConn(peer, Date.now() + this.backoff(p.failures));
    this.setPresent(peer, false, wasOpen ? 'closed' : 'failed');
    if (!p.inRoom) this.peers.delete(peer);
    this.checkAllSynced();
  }

  tick() {
    if (this.closed) return;
    const now = Date.now();
    for (const [id, p] of [...this.peers.entries()]) {
      if (p.state === 'open') {
        if (!p.heard && now - p.openedAt >= 1000) p.heard = true;
        // DESIGN: once the remote has sent a PING (whatever it is: ours, a page, a
        // foreign client without an incarnation), a link silent for DEAD_MS is dead.
        const pinged = (this.replica.session(p.link)?.stats.pingsIn ?? 0) > 0;
        // A peer that never pings is watched by ICE: the browser calls a connection
        // `disconnected` once its checks go unanswered (Chromium after about 5-7 s,
        // Firefox after about 9-10 s) and `failed` only much later (about 30 s), so a
        // connection `disconnected` for ICE_LOST_MS is dead too.
        const iceLost = p.iceLostAt != null && now - p.iceLostAt >= ICE_LOST_MS;
        if ((pinged && now - p.lastHeard >= DEAD_MS) || iceLost) {
          this.dropConn(id, now + this.backoff(p.failures));
          this.setPresent(id, false, 'timeout');
          if (!p.inRoom) this.peers.delete(id);
          this.checkAllSynced();
        } else if (now >= p.nextPing) {
          this.replica.session(p.link)?.ping(now);
          p.nextPing = now + PING_MS;
        }
      } else if (p.state === 'negotiating') {
        if (now - p.since >= NEGOTIATE_MS) {
          p.failures++;
          this.dropConn(id, now + this.backoff(p.failures));
          this.setPresent(id, false, 'failed');
          if (!p.inRoom) this.peers.delete(id);
        }
      } else if (p.retryAt !== null && now >= p.retryAt) {
        p.retryAt = null;
        if (this.weOffer(id) && p.inRoom) this.offer(id);
      }
    }
    this.replica.reportLinks(true);
    for (const p of this.peers.values()) this.flush(p);
  }

  /**
   * Leaves the room: `BYE` on every link; each data channel is closed once what was
   * written to it has gone (the channel's own orderly close, which sends what it
   * buffered first), at most `CLOSE_FLUSH_MS` (5 s, as natives wait for their
   * streams); then `/leave` to the switchboard. Resolves when every link is closed
   * and the signalling connection with it; calling it again gives the same promise.
   */
  close() {
    if (this.closing) return this.closing;
    for (const p of this.peers.values()) {
      if (p.link !== null) {
        this.replica.session(p.link)?.sendControl('BYE');
        this.flush(p);
      }
    }
    this.closed = true;
    clearInterval(this.timer);
    const channels = [...this.peers.values()].filter((p) => p.dc && p.dc.readyState === 'open');
    const drained = channels.map((p) => this.closeChannel(p));
    let cap;
    const limit = new Promise((resolve) => {
      cap = setTimeout(resolve, CLOSE_FLUSH_MS);
    });
    this.closing = Promise.race([Promise.all(drained), limit]).then(() => {
      clearTimeout(cap);
      for (const id of [...this.peers.keys()]) this.dropConn(id, null);
      // The leave only now: a peer that hears it drops its link to us at once, and
      // must not do so while our last writes are still on the way.
      this.signal(encodeSignal('leave', this.id, [{ id: this.id }]));
      this.signalClient.close();
      this.pumpSignal();
      clearTimeout(this.signalTimer);
    });
    return this.closing;
  }

  /** Closes `p`'s channel once its queue and buffer are empty; resolves when closed. */
  closeChannel(p) {
    const dc = p.dc;
    return new Promise((resolve) => {
      dc.addEventListener('close', () => resolve());
      const done = () => {
        this.flush(p);
        if ((p.encoder && p.encoder.pending()) || dc.bufferedAmount > 0) return false;
        dc.close();
        return true;
      };
      if (!done()) {
        dc.bufferedAmountLowThreshold = 0;
        dc.addEventListener('bufferedamountlow', done);
      }
    });
  }
}

function updateEvent(u, local) {
  return {
    key: u.key,
    value: u.value,
    deleted: u.value === null,
    ts: u.ts,
    source: u.source,
    local,
  };
}

function defaultSignalUrl() {
  if (typeof location !== 'undefined' && /^https?:$/.test(location.protocol)) {
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
  }
  return 'ws://127.0.0.1:3000/';
}

/**
 * Joins `room` through the switchboard at `options.signal` (default: the page's own
 * host, or ws://127.0.0.1:3000/). Options: `id`, `attributes`, `iceServers`.
 * Returns the {@link Member} at once; it announces as soon as the WebSocket opens.
 */
export function join(room, options = {}) {
  if (typeof room !== 'string' || !room) throw new MeshError('bad_room', 'a room name is required');
  const m = new Member(room, options);
  m.connect();
  return m;
}
