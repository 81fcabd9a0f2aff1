// In-memory stand-ins for the browser, shared by the Node tests that run the Member
// (member.test.mjs, secured.test.mjs): a switchboard, a WebSocket, an RTCPeerConnection
// and its data channels, every delivery on a later task. Not a test file itself (its
// name does not match `node --test`'s patterns).
//
// - `Switchboard`: relays texts between the sockets open on it (`/to|id|` only to that
//   id). Options: `rooms` keeps rooms apart by the announce's `room` (as ours does:
//   a secured room's tag). Fields a test may set or read: `refuse` (upgrades refused:
//   sockets close without opening), `slowAnnounces` (ids whose direct announces are held
//   back 50 ms, so that their SDP can come first), `urls` (every socket's URL, in order),
//   `texts` (every text sent, in order).
// - `useBoard(b)`: the switchboard that sockets made from now on join; one made for an
//   earlier test never reaches a later one's.
// - `log`: everything sent, in order, across switchboards (`clearLog()` empties it):
//   signalling texts (`signal`), `/to` texts as delivered (`delivered`) and data-channel
//   messages as they leave (`data`, from the connection's `owner`).
// - Data channels: `cut` on a channel (or its peer) holds what was sent, as SCTP does
//   until a path is back; a connection's `stuck` keeps an ICE restart from healing it,
//   `sctpDelay` (ms) heals it only that long after ICE is back.

/** Runs `fn` on a later task. */
export const later = (fn) => setTimeout(fn, 0);

/** Everything sent, in order: signalling texts and data-channel messages. */
export const log = [];

export function clearLog() {
  log.length = 0;
}

export class Switchboard {
  constructor({ rooms = false } = {}) {
    this.sockets = new Set();
    /** Keeps rooms apart by the announce's `room`. */
    this.rooms = rooms;
    /** Ids whose direct announces are held back 50 ms (so their SDP can come first). */
    this.slowAnnounces = new Set();
    /** Upgrades refused: sockets close without opening. */
    this.refuse = false;
    /** Every socket's URL, in order. */
    this.urls = [];
    /** Every text sent, in order. */
    this.texts = [];
  }

  deliver(from, text) {
    this.texts.push(text);
    log.push({ kind: 'signal', from: from.id, text });
    const held = /^\/to\|([^|]+)\|\/announce\|/.exec(text);
    if (held && this.slowAnnounces.has(held[1])) {
      setTimeout(() => this.relay(from, text), 50);
      return;
    }
    this.relay(from, text);
  }

  relay(from, text) {
    const a = /^\/announce\|([^|]+)\|/.exec(text);
    if (a) {
      from.id = a[1];
      if (this.rooms) from.room = JSON.parse(text.slice(a[0].length)).room;
      later(() => from.receive(`/roominfo|{"memberCount":${this.sockets.size}}`));
    }
    const to = /^\/to\|([^|]+)\|/.exec(text);
    for (const s of this.sockets) {
      if (s === from || s.readyState !== 1) continue;
      if (this.rooms && s.room !== from.room) continue;
      if (to && s.id !== to[1]) continue;
      later(() => {
        if (to) log.push({ kind: 'delivered', to: s.id, text });
        s.receive(text);
      });
    }
  }
}

let board = new Switchboard();

/** Sockets made from now on join `b`; returns it. */
export function useBoard(b) {
  board = b;
  return b;
}

export class FakeWebSocket {
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.id = null;
    // Its own switchboard: one made for an earlier test never reaches a later one's.
    this.board = board;
    board.urls.push(url);
    board.sockets.add(this);
    later(() => {
      if (this.board.refuse) {
        this.readyState = 3;
        this.board.sockets.delete(this);
        this.onclose?.();
        return;
      }
      this.readyState = 1;
      this.onopen?.();
    });
  }

  send(text) {
    this.board.deliver(this, text);
  }

  receive(text) {
    if (this.readyState === 1) this.onmessage?.({ data: text });
  }

  close() {
    this.readyState = 3;
    this.board.sockets.delete(this);
    later(() => this.onclose?.());
  }
}

const pcs = new Map(); // sdp text -> pc
let nextPc = 0;

export class FakeChannel {
  constructor(pc, label, protocol) {
    this.pc = pc;
    this.label = label;
    this.protocol = protocol;
    this.readyState = 'connecting';
    this.bufferedAmount = 0;
    this.listeners = new Map();
    this.peer = null;
  }

  addEventListener(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, []);
    this.listeners.get(name).push(fn);
  }

  fire(name, e) {
    this[`on${name}`]?.(e);
    for (const fn of this.listeners.get(name) || []) fn(e);
  }

  open() {
    this.readyState = 'open';
    this.fire('open', {});
  }

  send(data) {
    if (this.readyState !== 'open') throw new Error('InvalidStateError');
    const copy = typeof data === 'string' ? data : data.slice().buffer;
    const size = typeof data === 'string' ? data.length : data.length;
    this.queue ??= [];
    this.queue.push([copy, size]);
    this.bufferedAmount += size;
    this.pump();
  }

  /** Like a real channel, what was sent leaves a few messages per task. */
  pump() {
    if (this.pumping) return;
    this.pumping = true;
    later(() => {
      this.pumping = false;
      const before = this.bufferedAmount;
      // A cut path: what was sent waits (SCTP retransmits it once a path is back).
      if (this.cut || this.peer?.cut) return;
      for (let i = 0; i < 4 && this.queue.length; i++) {
        const [copy, size] = this.queue.shift();
        this.bufferedAmount -= size;
        log.push({ kind: 'data', from: this.pc.owner, size });
        const peer = this.peer;
        if (peer.readyState === 'open') peer.fire('message', { data: copy });
      }
      const low = this.bufferedAmountLowThreshold ?? 0;
      if (before > low && this.bufferedAmount <= low) this.fire('bufferedamountlow', {});
      if (this.queue.length) this.pump();
      else if (this.readyState === 'closing') this.finishClose();
    });
  }

  close() {
    if (this.readyState === 'closed' || this.readyState === 'closing') return;
    // An orderly close: what was sent goes first.
    this.readyState = 'closing';
    if (!this.queue || !this.queue.length) later(() => this.finishClose());
  }

  finishClose() {
    this.readyState = 'closed';
    this.fire('close', {});
    // Across a cut path the other side hears nothing of it.
    if (this.peer && this.peer.readyState !== 'closed' && !this.cut) {
      this.peer.readyState = 'closed';
      this.peer.fire('close', {});
    }
  }
}

export class FakePeerConnection {
  constructor() {
    this.id = nextPc++;
    /** Whose connection it is, for the log (a test sets it). */
    this.owner = null;
    this.localDescription = null;
    this.remote = null;
    this.connectionState = 'new';
    this.channels = [];
  }

  createDataChannel(label, opts) {
    const dc = new FakeChannel(this, label, opts.protocol || '');
    this.channels.push(dc);
    return dc;
  }

  async createOffer(opts) {
    // An ICE restart's offer: new text, the same connection.
    if (opts?.iceRestart) this.restarts = (this.restarts ?? 0) + 1;
    return { type: 'offer', sdp: `fake-sdp-${this.id}${this.restarts ? `-r${this.restarts}` : ''}` };
  }

  async createAnswer() {
    return { type: 'answer', sdp: `fake-sdp-${this.id}` };
  }

  async setLocalDescription(d) {
    this.localDescription = d;
    pcs.set(d.sdp, this);
    later(() => this.onicecandidate?.({
      candidate: {
        candidate: 'candidate:1 1 udp 2130706431 127.0.0.1 9 typ host',
        toJSON: () => ({ candidate: 'candidate:1 1 udp 2130706431 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 }),
      },
    }));
  }

  async setRemoteDescription(d) {
    if (this.channels.some((dc) => dc.peer)) {
      // An ICE restart of a connected pair: it finds a path again (unless `stuck`),
      // and data flows at once, or (`sctpDelay` ms) once SCTP's backed-off
      // retransmission timer fires, ICE's checks answered meanwhile.
      if (!this.stuck) {
        const heal = () => {
          for (const dc of this.channels) {
            dc.cut = dc.peer.cut = false;
            if (dc.queue?.length) dc.pump();
            if (dc.peer.queue?.length) dc.peer.pump();
          }
        };
        if (this.sctpDelay) {
          this.iceUp = true;
          for (const dc of this.channels) dc.peer.pc.iceUp = true;
          setTimeout(heal, this.sctpDelay);
        } else heal();
      }
      return;
    }
    this.remote = pcs.get(d.sdp);
    if (d.type === 'answer') later(() => this.connect());
  }

  async addIceCandidate() {}

  /** The selected pair: its counters grow while a datagram could come on it (no
   * channel cut, or ICE found the path again). */
  async getStats() {
    if (this.iceUp || !this.channels.some((dc) => dc.cut || dc.peer?.cut)) this.heard = (this.heard ?? 0) + 1;
    return new Map([
      ['T', { type: 'transport', selectedCandidatePairId: 'P' }],
      ['P', { type: 'candidate-pair', id: 'P', bytesReceived: 0, requestsReceived: this.heard ?? 0, localCandidateId: 'L', remoteCandidateId: 'R' }],
      ['L', { type: 'local-candidate', candidateType: 'host', address: '127.0.0.1', port: 9 }],
      ['R', { type: 'remote-candidate', candidateType: 'host', address: '127.0.0.1', port: 9 }],
    ]);
  }

  /** The offerer's side: its channels appear on the answerer, then both open. */
  connect() {
    const other = this.remote;
    for (const dc of this.channels) {
      const theirs = new FakeChannel(other, dc.label, dc.protocol);
      dc.peer = theirs;
      theirs.peer = dc;
      other.channels.push(theirs);
      other.ondatachannel?.({ channel: theirs });
      dc.open();
      theirs.open();
    }
    for (const pc of [this, other]) {
      pc.connectionState = 'connected';
      pc.onconnectionstatechange?.();
    }
  }

  close() {
    this.connectionState = 'closed';
    for (const dc of this.channels) dc.close();
  }
}

/** The fakes as the browser's `WebSocket` and `RTCPeerConnection`. */
export function installFakes() {
  globalThis.WebSocket = FakeWebSocket;
  globalThis.RTCPeerConnection = FakePeerConnection;
}

/** `m`'s next `name` event for which `pred` holds. */
export function next(m, name, pred = () => true) {
  return new Promise((resolve) => {
    const off = m.on(name, (e) => {
      if (pred(e)) {
        off();
        resolve(e);
      }
    });
  });
}

/** Stops members: nothing more runs (no outputs, no timer), their links and WebSocket
 * closed. */
export function stop(...ms) {
  for (const m of ms) {
    m.pump = () => {};
    clearTimeout(m.timer);
    for (const id of [...m.links.keys()]) m.closeLink(id);
    m.ws?.close();
  }
}

/**
 * A fresh world for test `t`: the log cleared, a new switchboard in use, and a list of
 * members (`made`: push each one made) stopped however the test ends, so that no
 * timer keeps the process alive.
 */
export function freshWorld(t) {
  clearLog();
  const world = { board: useBoard(new Switchboard()), made: [] };
  t.after(() => stop(...world.made));
  return world;
}

/** Stops members however test `t` ends: no timer keeps the process alive. */
export function stopAfter(t, ...ms) {
  t.after(() => stop(...ms));
}
