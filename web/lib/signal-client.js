// The signalling client: core's `SignalClient` (core/src/signal_client.rs), rule for
// rule, so that a trace recorded from the Rust one replays here (web/tests/replay).

/** Core's generator: xorshift64 over a seeded state (BigInt, 64 bits). */
export class Xorshift {
  constructor(seed) {
    this.state = BigInt.asUintN(64, BigInt(seed)) | 1n;
  }

  next() {
    let x = this.state;
    x = BigInt.asUintN(64, x ^ (x << 13n));
    x ^= x >> 7n;
    x = BigInt.asUintN(64, x ^ (x << 17n));
    this.state = x;
    return x;
  }

  /** `ms` scaled by a factor in [0.5, 1): the jitter of retries and backoffs (in whole
   * nanoseconds, as core's `Duration::mul_f64` gives). */
  jitter(ms) {
    return Math.round(ms * (0.5 + Number(this.next() >> 11n) / 2 ** 53 / 2) * 1e6) / 1e6;
  }
}

/** How far ahead a client with nothing scheduled asks to be woken (core's `IDLE`). */
export const IDLE_MS = 3600 * 1000;

/**
 * When to (re)connect to the switchboard, what to send after a reconnect, what to queue
 * while disconnected, sans-IO: times are milliseconds on any clock. Drain `poll()` until
 * it returns `{type: 'timeout', at}`; the other outputs are `{type: 'connect'}` (open the
 * WebSocket, then report `handleConnected` or `handleDisconnected`), `{type: 'send',
 * text}`, `{type: 'close'}`, `{type: 'connected'}` and `{type: 'disconnected'}`.
 * Messages sent while down are queued (the oldest dropped past `maxQueue`) and go out
 * after the announce on the next connection; the last announce goes first after every
 * reconnect; reconnects back off from `minBackoff` doubling to `maxBackoff`, jittered,
 * and a connection that stayed up `maxBackoff` starts over.
 */
export class SignalClient {
  constructor(config = {}, now = 0) {
    this.minBackoff = config.minBackoff ?? 50;
    this.maxBackoff = config.maxBackoff ?? 5000;
    this.maxQueue = config.maxQueue ?? 4096;
    this.rng = new Xorshift(config.seed ?? 0x5eed);
    this.backoff = this.minBackoff;
    this.state = { name: 'connecting' };
    this.announceText = null;
    this.queue = [];
    this.out = [{ type: 'connect' }];
    this.dropped = 0;
    this.connections = 0;
    this.now = now;
  }

  isConnected() {
    return this.state.name === 'connected';
  }

  isClosed() {
    return this.state.name === 'closed';
  }

  send(text) {
    if (this.state.name === 'connected') this.out.push({ type: 'send', text });
    else if (this.state.name !== 'closed') {
      if (this.queue.length === this.maxQueue) {
        this.queue.shift();
        this.dropped++;
      }
      this.queue.push(text);
    }
  }

  announce(text) {
    if (this.isClosed()) return;
    if (this.isConnected()) this.out.push({ type: 'send', text });
    this.announceText = text;
  }

  handleConnected(now) {
    this.now = Math.max(this.now, now);
    if (this.isClosed()) {
      this.out.push({ type: 'close' });
      return;
    }
    this.state = { name: 'connected', since: now };
    this.connections++;
    if (this.announceText !== null) this.out.push({ type: 'send', text: this.announceText });
    for (const text of this.queue.splice(0)) this.out.push({ type: 'send', text });
    this.out.push({ type: 'connected' });
  }

  handleDisconnected(now) {
    this.now = Math.max(this.now, now);
    const st = this.state;
    if (st.name === 'closed' || st.name === 'waiting') return;
    if (st.name === 'connected' && now - st.since >= this.maxBackoff) this.backoff = this.minBackoff;
    const wasConnected = st.name === 'connected';
    const delay = this.rng.jitter(this.backoff);
    this.backoff = Math.min(this.backoff * 2, this.maxBackoff);
    this.state = { name: 'waiting', at: now + delay };
    if (wasConnected) this.out.push({ type: 'disconnected' });
  }

  handleTimeout(now) {
    this.now = Math.max(this.now, now);
    // Due, to the nanosecond (times are float milliseconds here, exact instants in core).
    if (this.state.name === 'waiting' && now >= this.state.at - 1e-6) {
      this.state = { name: 'connecting' };
      this.out.push({ type: 'connect' });
    }
  }

  close() {
    if (this.isClosed()) return;
    this.state = { name: 'closed' };
    this.queue = [];
    this.out.push({ type: 'close' });
  }

  poll() {
    if (this.out.length) return this.out.shift();
    return { type: 'timeout', at: this.state.name === 'waiting' ? this.state.at : this.now + IDLE_MS };
  }
}
