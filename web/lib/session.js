// One sync conversation over one link: core's `session`.

import { parseJson, plainObject } from './values.js';
import { LineWriter } from './codecs.js';
import { MAX_STRIKES, STRIKE_FORGIVEN_MS } from './updates.js';
import { b64url, fromB64url } from './security.js';
import { SUM_LANES } from './store.js';

/** A store's sums as a `SUMS` line (core's `Control::Sums`). */
export function sumsLine(sums) {
  const o = {};
  for (const { source, ts, count, lanes } of sums) {
    const bytes = new Uint8Array(SUM_LANES * 4);
    const v = new DataView(bytes.buffer);
    lanes.forEach((l, i) => v.setUint32(i * 4, l, true));
    o[source] = [ts, count, b64url(bytes)];
  }
  return `SUMS ${JSON.stringify(plainObject(Object.entries(o)))}`;
}

/** A `SUMS` line's entries (odd ones left out), or null when it is not an object. */
export function parseSums(text) {
  const o = controlJson(text, 'SUMS ');
  if (!o || typeof o !== 'object' || Array.isArray(o)) return null;
  const out = [];
  for (const [source, e] of Object.entries(o)) {
    if (!Array.isArray(e) || e.length !== 3) continue;
    const [ts, count, sum] = e;
    const bytes = fromB64url(sum);
    if (typeof ts !== 'number' || !Number.isInteger(count) || count < 0 || !bytes || bytes.length !== SUM_LANES * 4) continue;
    const v = new DataView(bytes.buffer);
    const lanes = new Uint32Array(SUM_LANES);
    for (let i = 0; i < SUM_LANES; i++) lanes[i] = v.getUint32(i * 4, true);
    out.push({ source, ts, count, lanes });
  }
  return out;
}

/** The JSON after a control line's `prefix` (`CLOCK `, `WANT `, `SUMS `), or undefined
 * if it does not parse. */
function controlJson(text, prefix) {
  try {
    return parseJson(text.slice(prefix.length));
  } catch {
    return undefined;
  }
}

/**
 * A sync session: digest, the history the remote lacks, `SYNC`, then live updates each
 * sent only if the remote lacks it. `out` is the link's encoder (`digest(id, clock)`,
 * `update(u)`, `control(text)`: a `JsonEncoder` or a `PostcardEncoder`), or a function
 * called with each json line as it is made.
 */
export class Session {
  constructor(store, out) {
    this.store = store;
    this.out = typeof out === 'function' ? new LineWriter(out) : out;
    this.remoteId = null;
    this.remoteClock = new Map();
    this.started = false;
    this.sentSync = false;
    this.recvSync = false;
    this.synced = false;
    this.pingSent = null;
    this.stats = {
      bytesIn: 0, bytesOut: 0, updatesIn: 0, updatesOut: 0, errors: 0, pingsIn: 0, rtt: null, refused: 0,
      repairs: 0, repaired: 0,
    };

    /** Strikes for refused updates as of `strikeAt` (one forgiven per STRIKE_FORGIVEN_MS). */
    this.strikes = 0;
    this.strikeAt = null;
    this.misbehaved = false;
    this.out.digest(store.id, store.clock);
  }

  raise(source, ts) {
    if ((this.remoteClock.get(source) ?? 0) < ts) this.remoteClock.set(source, ts);
  }

  /** Sends what the remote lacks (after its digest, or a `CLOCK`). */
  sendHistory() {
    for (const u of this.store.history(this.remoteClock)) {
      this.raise(u.source, u.ts);
      this.stats.updatesOut++;
      this.out.update(u);
    }
  }

  /**
   * Handles one decoded line. Returns what the caller must know:
   * `{digest: id}`, `{update: u, verdict}`, `{synced: true}`, `{control: text}` or null.
   */
  handle(m, nowMs) {
    switch (m.type) {
      case 'digest': {
        for (const [s, t] of m.clock) if (this.store.clock.has(s)) this.raise(s, t);
        const first = this.remoteId === null;
        if (first) this.remoteId = m.id;
        if (!this.started) {
          this.started = true;
          this.sendHistory();
          this.out.control('SYNC');
          this.sentSync = true;
          return { digest: m.id, synced: this.checkSynced() };
        }
        return null;
      }
      case 'update': {
        this.stats.updatesIn++;
        // Closing for misbehaviour: nothing more of its is applied.
        if (this.misbehaved) return null;
        const verdict = this.store.apply(m);
        if (verdict !== 'rejected' && verdict !== 'refused') this.raise(m.source, m.ts);
        // A removed member's late writes are no one's fault (core: no strike).
        if (verdict === 'refused' && m.checked !== 'revoked' && this.strike(nowMs)) {
          return { update: m, verdict, misbehaved: m.checked };
        }
        return { update: m, verdict };
      }
      case 'sync':
        this.recvSync = true;
        return { synced: this.checkSynced() };
      case 'ping':
        this.stats.pingsIn++;
        this.out.control('PONG');
        return null;
      case 'pong':
        if (this.pingSent !== null) {
          this.stats.rtt = nowMs - this.pingSent;
          this.pingSent = null;
        }
        return null;
      case 'control':
        if (m.text.startsWith('CLOCK ')) {
          const clock = controlJson(m.text, 'CLOCK ');
          if (clock === undefined) {
            this.stats.errors++;
            return null;
          }
          for (const [s, t] of Object.entries(clock || {})) {
            if (typeof t === 'number' && this.store.clock.has(s)) this.raise(s, t);
          }
          if (this.started) this.sendHistory();
          return null;
        }
        if (m.text.startsWith('WANT ')) {
          const keys = controlJson(m.text, 'WANT ');
          if (!Array.isArray(keys)) this.stats.errors++;
          else this.answerWant(keys);
          return null;
        }
        if (m.text.startsWith('SUMS ')) {
          const sums = parseSums(m.text);
          if (sums === null) this.stats.errors++;
          else this.repair(sums);
          return null;
        }
        return { control: m.text };
      default:
        return null;
    }
  }

  /** A refused update: true when it makes MAX_STRIKES (core's `Session::strike`). */
  strike(nowMs) {
    this.stats.refused++;
    const at = this.strikeAt ?? nowMs;
    this.strikes = Math.max(0, this.strikes - Math.max(0, nowMs - at) / STRIKE_FORGIVEN_MS) + 1;
    this.strikeAt = nowMs;
    if (this.strikes >= MAX_STRIKES && !this.misbehaved) {
      this.misbehaved = true;
      return true;
    }
    return false;
  }

  /**
   * The remote's `SUMS` (core's `Session::repair`): every source whose sums differ from
   * ours while the remote's clock covers every write of it we hold and ours covers the
   * remote's (our latest write of it <= its clock <= ours) is sent whole.
   */
  repair(theirs) {
    // Not while one is being sent (core's rule; sends here are immediate).
    if (!this.store.guard) return;
    const ours = new Map(this.store.sums().map((s) => [s.source, s]));
    const latest = this.store.latestWrites();
    const flagged = new Set();
    for (const t of theirs) {
      const o = ours.get(t.source);
      if (!o || !((latest.get(t.source) ?? 0) <= t.ts && t.ts <= o.ts)) continue;
      if (o.count !== t.count || o.lanes.some((l, i) => l !== t.lanes[i])) {
        flagged.add(t.source);
        this.stats.repairs++;
      }
    }
    if (!flagged.size) return;
    for (const u of this.store.historyOf(flagged)) {
      this.stats.updatesOut++;
      this.stats.repaired++;
      this.out.update(u);
    }
  }

  /** Secured rooms, the remote's `WANT`: keys a removal voided there. What we hold of
   * them goes out whatever the clocks say (core's `Control::Want`). */
  answerWant(keys) {
    if (!this.store.guard) return;
    for (const k of keys) {
      const e = typeof k === 'string' ? this.store.entries.get(k) : undefined;
      if (e && e.ts > 0 && e.sig) {
        this.stats.updatesOut++;
        this.stats.repaired++;
        this.out.update(e);
      }
    }
  }

  /** Secured rooms: asks the remote for keys a removal voided here (`WANT`). */
  sendWant(keys) {
    if (!this.store.guard || !this.started) return;
    for (let i = 0; i < keys.length; i += 1024) this.sendControl(`WANT ${JSON.stringify(keys.slice(i, i + 1024))}`);
  }

  /** Secured rooms, once synced: what we hold per source, so that a source whose
   * writes differ though the clocks cover them is repaired (see repair). */
  sendSums() {
    if (this.store.guard && this.synced) this.sendControl(sumsLine(this.store.sums()));
  }

  checkSynced() {
    if (this.sentSync && this.recvSync && !this.synced) {
      this.synced = true;
      this.sendSums();
      return true;
    }
    return false;
  }

  /** Offers a live update; sent only if the remote lacks it. */
  sendUpdate(u) {
    if (!this.started || u.ts <= (this.remoteClock.get(u.source) ?? 0)) return false;
    this.raise(u.source, u.ts);
    this.stats.updatesOut++;
    this.out.update(u);
    return true;
  }

  /** Sends an update applied late (below its writer's clock): the remote's clock cannot
   * tell whether it lacks it (core's `Session::send_late`). */
  sendLate(u) {
    if (!this.started) return false;
    this.stats.updatesOut++;
    this.out.update(u);
    return true;
  }

  ping(nowMs) {
    if (this.pingSent === null) this.pingSent = nowMs;
    this.out.control('PING');
  }

  sendControl(text) {
    this.out.control(text);
  }

  sendClock() {
    this.sendControl(`CLOCK ${JSON.stringify(plainObject(this.store.clock))}`);
  }
}
