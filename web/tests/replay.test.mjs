// Core's state machines, replayed against the browser client's modules in Node: each
// trace (core/tests/vectors/signal-client.json, written from the Rust SignalClient by
// core/tests/traces.rs) gives inputs with their times and the outputs core produced
// after each; the JavaScript SignalClient must produce the same, output for output
// (times within a microsecond). A planted drift (backoff without jitter) must fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { SignalClient } from '../mesh.js';

const doc = JSON.parse(
  readFileSync(fileURLToPath(new URL('../../core/tests/vectors/signal-client.json', import.meta.url)), 'utf8'),
);

function drain(c) {
  const out = [];
  for (;;) {
    const o = c.poll();
    if (o.type === 'send') out.push(['send', o.text]);
    else if (o.type === 'timeout') {
      out.push(['timeout', o.at]);
      return out;
    } else out.push([o.type]);
  }
}

/** Replays one trace; the first difference, or null. */
export function replay(trace, makeClient = (cfg, now) => new SignalClient(cfg, now)) {
  const cfg = {
    minBackoff: trace.config.min_backoff_ms,
    maxBackoff: trace.config.max_backoff_ms,
    maxQueue: trace.config.max_queue,
    seed: BigInt(trace.config.seed),
  };
  let c = null;
  for (const [i, step] of trace.steps.entries()) {
    const [op, text] = step.input;
    const at = step.at;
    switch (op) {
      case 'new': c = makeClient(cfg, at); break;
      case 'connected': c.handleConnected(at); break;
      case 'disconnected': c.handleDisconnected(at); break;
      case 'timeout': c.handleTimeout(at); break;
      case 'send': c.send(text); break;
      case 'announce': c.announce(text); break;
      case 'close': c.close(); break;
      default: throw new Error(`unknown input ${op}`);
    }
    const got = drain(c);
    const want = step.out;
    const same = got.length === want.length && got.every((g, k) => {
      const w = want[k];
      if (g[0] !== w[0]) return false;
      if (g[0] === 'timeout') return Math.abs(g[1] - w[1]) < 1e-3;
      return g[1] === w[1];
    });
    if (!same) {
      return `seed ${trace.seed}, step ${i} (${JSON.stringify(step.input)} at ${at} ms): ` +
        `core gave ${JSON.stringify(want)}, the client ${JSON.stringify(got)}`;
    }
  }
  return null;
}

test('the signalling client does what core does, output for output', () => {
  assert.ok(doc.traces.length >= 5);
  let steps = 0;
  const seen = new Set();
  for (const t of doc.traces) {
    assert.equal(replay(t), null);
    steps += t.steps.length;
    for (const s of t.steps) for (const o of s.out) seen.add(o[0]);
  }
  assert.ok(steps > 1000, `${steps} steps`);
  // The traces exercise every output.
  for (const kind of ['connect', 'send', 'close', 'connected', 'disconnected', 'timeout']) {
    assert.ok(seen.has(kind), kind);
  }
});

test('a planted drift is caught: reconnect backoff without jitter', () => {
  class NoJitter extends SignalClient {
    constructor(cfg, now) {
      super(cfg, now);
      this.rng.jitter = (ms) => ms;
    }
  }
  const diffs = doc.traces.map((t) => replay(t, (cfg, now) => new NoJitter(cfg, now)));
  assert.ok(diffs.every((d) => d !== null), 'every trace tells the drift');
});

test('planted drifts of the old client are caught: its backoff, and dropping while down', () => {
  class OldBackoff extends SignalClient {
    constructor(cfg, now) {
      super({ ...cfg, minBackoff: 250, maxBackoff: 10000 }, now);
    }
  }
  class DropsWhileDown extends SignalClient {
    send(text) {
      if (this.isConnected()) super.send(text);
    }
  }
  for (const Drift of [OldBackoff, DropsWhileDown]) {
    const diffs = doc.traces.map((t) => replay(t, (cfg, now) => new Drift(cfg, now)));
    assert.ok(diffs.some((d) => d !== null), Drift.name);
  }
});
