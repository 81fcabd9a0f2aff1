// Core's Mesh, replayed against the browser client's sans-IO Mesh (lib/mesh.js) in
// Node: each trace (core/tests/vectors/mesh.json, written from the Rust Mesh by
// core/tests/traces.rs) gives a peer's inputs with their times and what core did after
// each: signalling, link commands, events, and the liveness messages (PING, PONG, BYE)
// it wrote to each link. The JavaScript Mesh must do the same, output for output (times
// within a microsecond; what goes to different links is compared link by link). Planted
// drifts (the old client's rules) must fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LineDecoder, Mesh, PostcardDecoder, decodeLine } from '../mesh.js';

const doc = JSON.parse(
  readFileSync(fileURLToPath(new URL('../../core/tests/vectors/mesh.json', import.meta.url)), 'utf8'),
);

function hexBytes(h) {
  const b = new Uint8Array(h.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = Number.parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return b;
}

/** Deep equality where objects' key order does not matter (core's JSON reader sorts). */
function same(a, b) {
  if (typeof a === 'number' && typeof b === 'number') return Math.abs(a - b) < 1e-3;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a && typeof a === 'object') {
    if (!b || typeof b !== 'object' || Array.isArray(b)) return false;
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    return same(ka, kb) && ka.every((k) => same(a[k], b[k]));
  }
  return a === b;
}

/** The liveness messages among what an encoder holds. */
function named(link) {
  const names = [];
  for (let m = link.encoder.poll(); m !== null; m = link.encoder.poll()) {
    const msgs = link.codec === 'postcard' ? link.decoder.push(m) : link.decoder.push(m).map(decodeLine);
    for (const x of msgs) {
      if (x.type === 'ping') names.push('PING');
      else if (x.type === 'pong') names.push('PONG');
      else if (x.type === 'control' && x.text === 'BYE') names.push('BYE');
    }
  }
  return names;
}

function configOf(t) {
  const c = t.config;
  return {
    id: c.id,
    room: c.room,
    incarnation: c.incarnation,
    agent: c.agent,
    codecs: c.codecs,
    seed: BigInt(c.seed),
    epochMs: 0,
    pingMs: c.ping_ms,
    deadMs: c.dead_ms,
    negotiateMs: c.negotiate_ms,
    retryMinMs: c.retry_min_ms,
    retryMaxMs: c.retry_max_ms,
    signalling: {
      minBackoff: c.signalling.min_backoff_ms,
      maxBackoff: c.signalling.max_backoff_ms,
      maxQueue: c.signalling.max_queue,
    },
  };
}

/** Replays one trace; the first difference, or null. */
export function replay(t, MeshClass = Mesh) {
  let mesh = null;
  const links = new Map(); // peer -> { encoder, decoder, codec }
  for (const [i, step] of t.steps.entries()) {
    const [op, a, b] = step.input;
    const at = step.at;
    switch (op) {
      case 'start': mesh = new MeshClass(configOf(t), 0); mesh.start(at); break;
      case 'signal_connected': mesh.handleSignalConnected(at); break;
      case 'signal_disconnected': mesh.handleSignalDisconnected(at); break;
      case 'signal': mesh.handleSignal(at, a); break;
      case 'local_sdp': mesh.localSdp(at, a, b, step.input[3]); break;
      case 'local_candidate': mesh.localCandidate(at, a, JSON.parse(b)); break;
      case 'link_open': {
        mesh.linkOpen(at, a, b);
        const encoder = mesh.encoderOf(a);
        if (encoder && !links.has(a)) {
          links.set(a, { encoder, codec: b, decoder: b === 'postcard' ? new PostcardDecoder() : new LineDecoder() });
        }
        break;
      }
      case 'link_data': {
        const codec = links.get(a)?.codec ?? 'json';
        mesh.linkData(at, a, codec === 'postcard' ? hexBytes(b) : b);
        break;
      }
      case 'link_closed': mesh.linkClosed(at, a); break;
      case 'set': mesh.set(at, a, b); break;
      case 'announce': mesh.announce(at, a); break;
      case 'close': mesh.close(at); break;
      case 'timeout': mesh.handleTimeout(at); break;
      default: throw new Error(`unknown input ${op}`);
    }
    const got = [];
    const closed = new Set();
    for (;;) {
      const o = mesh.poll();
      if (o.type === 'timeout') {
        got.push(['timeout', o.at]);
        break;
      }
      switch (o.type) {
        case 'signalConnect': got.push(['signal_connect']); break;
        case 'signal': got.push(['signal', o.text]); break;
        case 'signalClose': got.push(['signal_close']); break;
        case 'open': got.push(['open', o.peer, o.offerer, o.codec]); break;
        case 'remoteSdp': got.push(['remote_sdp', o.peer, o.kind, o.sdp]); break;
        case 'remoteCandidate': got.push(['remote_candidate', o.peer, o.candidate]); break;
        case 'close': got.push(['close', o.peer]); closed.add(o.peer); break;
        case 'event': {
          const d = o.detail;
          if (o.name === 'update') break;
          if (o.name === 'peer_join' || o.name === 'peer_update') got.push(['event', o.name, d.peer, d.attributes]);
          else if (o.name === 'peer_leave') got.push(['event', o.name, d.peer, d.reason]);
          else if (o.name === 'synced') got.push(['event', o.name, d.peer]);
          else if (o.name === 'synced_all') got.push(['event', o.name, d.peers]);
          else got.push(['event', o.name]);
          break;
        }
        default: throw new Error(`unknown output ${o.type}`);
      }
    }
    // Per link, what it was given during this input (core drops what a link closed in
    // the same input still held; so does the comparison).
    const sent = new Map();
    for (const [peer, link] of links) {
      const names = named(link);
      if (closed.has(peer) || mesh.encoderOf(peer) !== link.encoder) {
        links.delete(peer);
        continue;
      }
      sent.set(peer, names);
    }
    const want = step.out.filter((o) => o[0] !== 'tx');
    const wantSent = new Map();
    for (const o of step.out) if (o[0] === 'tx') wantSent.set(o[1], [...(wantSent.get(o[1]) ?? []), o[2]]);
    const gotSent = new Map([...sent].filter(([, v]) => v.length));
    if (!same(got, want) || !same([...gotSent].sort(), [...wantSent].sort())) {
      return `seed ${t.seed}, step ${i} (${JSON.stringify(step.input)} at ${at} ms): ` +
        `core gave ${JSON.stringify(step.out)}, the client ${JSON.stringify(got)} and sent ${JSON.stringify([...gotSent])}`;
    }
  }
  return null;
}

test('the mesh does what core does, output for output', () => {
  assert.ok(doc.traces.length >= 5);
  let steps = 0;
  const seen = new Set();
  for (const t of doc.traces) {
    assert.equal(replay(t), null);
    steps += t.steps.length;
    for (const s of t.steps) {
      for (const o of s.out) {
        seen.add(o[0] === 'event' ? `${o[1]}${o[1] === 'peer_leave' ? `:${o[3]}` : ''}` : o[0] === 'tx' ? o[2] : o[0]);
      }
    }
  }
  assert.ok(steps > 3000, `${steps} steps`);
  // The traces exercise every output, and every reason a peer leaves.
  for (const kind of [
    'signal_connect', 'signal', 'signal_close', 'open', 'remote_sdp', 'remote_candidate', 'close', 'timeout',
    'online', 'offline', 'peer_join', 'peer_update', 'peer_leave:left', 'peer_leave:closed', 'peer_leave:timeout',
    'peer_leave:failed', 'synced', 'synced_all', 'PING', 'PONG', 'BYE',
  ]) {
    assert.ok(seen.has(kind), kind);
  }
});

test('planted drifts from core are caught', () => {
  const drifts = {
    // The old client's retries: no jitter.
    'retries without jitter': class extends Mesh {
      constructor(c, s) {
        super(c, s);
        this.rng.jitter = (ms) => ms;
      }
    },
    // The issue's finding: silence judged only for peers with an incarnation.
    'liveness only for peers with an incarnation': class extends Mesh {
      handleTimeout(now) {
        const saved = [];
        for (const p of this.peers.values()) {
          if (p.incarnation === null && p.link !== null) {
            const s = this.replica.session(p.link);
            saved.push([s, s.stats.pingsIn]);
            s.stats.pingsIn = 0;
          }
        }
        super.handleTimeout(now);
        for (const [s, n] of saved) s.stats.pingsIn = n;
      }
    },
    'early SDP dropped': class extends Mesh {
      handleSignal(now, text) {
        if (/^\/to\|m\|\/mesh:/.test(text)) {
          const from = text.split('|')[3];
          if (!this.peers.get(from)?.inRoom) return;
        }
        super.handleSignal(now, text);
      }
    },
    "a switchboard's disconnected leave drops the link": class extends Mesh {
      onLeave(from, m) {
        super.onLeave(from, { ...m, args: [{ id: from }] });
      }
    },
    'the lower id offers': class extends Mesh {
      weOffer(peer) {
        return this.id < peer;
      }
    },
    'offers not restarted after a reconnect': class extends Mesh {
      restartOffer() {}
    },
    "the old client's signalling backoff (250 ms to 10 s)": class extends Mesh {
      constructor(c, s) {
        super({ ...c, signalling: { ...c.signalling, minBackoff: 250, maxBackoff: 10000 } }, s);
      }
    },
    'no PONG to a PING': class extends Mesh {
      linkData(now, peer, data) {
        const s = this.sessionOf(peer);
        if (s && !s.quiet) {
          s.quiet = true;
          const send = s.out.control.bind(s.out);
          s.out.control = (t) => t !== 'PONG' && send(t);
        }
        super.linkData(now, peer, data);
      }
    },
  };
  for (const [name, Drift] of Object.entries(drifts)) {
    const caught = doc.traces.filter((t) => replay(t, Drift) !== null).length;
    assert.ok(caught > 0, `${name}: not caught`);
    if (process.env.RTC_MESH_SHOW) console.log(`${name}: caught by ${caught} of ${doc.traces.length} traces`);
  }
});
