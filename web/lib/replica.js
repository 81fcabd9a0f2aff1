// A store served over many links: core's `replica`.

import { parseJson } from './values.js';
import { decodeLine } from './codecs.js';
import { Session } from './session.js';

/**
 * One store, one Session per link. An update from link X goes to every other link whose
 * remote does not hear its writer directly (their `LINKS` reports say whom they hear).
 */
export class Replica {
  constructor(store) {
    this.store = store;
    this.links = new Map(); // link id -> { session, reaches: Set }
    this.nextLink = 0;
    this.reported = new Set();
    this.onUpdate = () => {};
    /** A secured room's signer: called with each local write, it signs it and then
     * forwards it (in order); null in an open room. */
    this.signer = null;
  }

  /**
   * Opens a link; `out` is its encoder, or a function `send(line)` for json lines (see
   * Session). Returns the link id.
   */
  openLink(out) {
    const id = this.nextLink++;
    this.links.set(id, { session: new Session(this.store, out), reaches: new Set() });
    return id;
  }

  closeLink(id) {
    if (!this.links.delete(id)) return;
    // What that link would have brought may now have to come from the others.
    for (const l of this.links.values()) if (l.session.remoteId !== null) l.session.sendClock();
    this.reportLinks(false);
  }

  session(id) {
    return this.links.get(id)?.session;
  }

  /** A json line from link `id`. Returns the session's answer (see Session.handle). */
  handleLine(id, line, nowMs) {
    const l = this.links.get(id);
    if (!l) return null;
    let m;
    try {
      m = decodeLine(line);
    } catch {
      l.session.stats.errors++;
      return null;
    }
    return this.handleMessage(id, m, nowMs);
  }

  /** A decoded message (of either codec) from link `id`; as handleLine. */
  handleMessage(id, m, nowMs) {
    const l = this.links.get(id);
    if (!l) return null;
    const r = l.session.handle(m, nowMs);
    if (r?.update && r.verdict === 'applied') this.forward(r.update, id);
    this.voided();
    if (!r) return null;
    if (r.digest !== undefined) {
      l.session.sendControl(`LINKS ${JSON.stringify([...this.reported])}`);
      this.reportLinks(false);
    }
    if (r.control !== undefined) {
      const t = r.control;
      const lists = [
        ['LINKS ', (ids) => (l.reaches = new Set(ids))],
        ['LINKS+ ', (ids) => ids.forEach((i) => l.reaches.add(i))],
        ['LINKS- ', (ids) => ids.forEach((i) => l.reaches.delete(i))],
      ];
      for (const [prefix, apply] of lists) {
        if (t.startsWith(prefix)) {
          try {
            const ids = parseJson(t.slice(prefix.length));
            if (Array.isArray(ids)) apply(ids.filter((i) => typeof i === 'string').slice(0, 4096));
          } catch {
            l.session.stats.errors++;
          }
          return null;
        }
      }
    }
    return r;
  }

  /** A local write: to every link (once signed, in a secured room). */
  set(key, value) {
    const u = this.store.set(key, value);
    if (this.signer) this.signer(u);
    else this.forward(u, null);
    this.voided();
    return u;
  }

  /** Writes a removal voided (core's `take_voided`): reported, never sent, and the
   * links are asked for those keys (`WANT`), so that they get back what the voided
   * writes had superseded. */
  voided() {
    const v = this.store.takeVoided();
    if (!v.length) return;
    for (const u of v) this.onUpdate(u, false);
    const keys = v.map((u) => u.key);
    for (const l of this.links.values()) l.session.sendWant(keys);
  }

  /** Time passed: held-back updates that came due are applied and forwarded. */
  releaseHeld() {
    for (const u of this.store.releaseHeld()) this.forward(u, null);
    this.voided();
  }

  forward(u, origin) {
    this.send(u, origin);
    this.onUpdate(u, origin === null);
  }

  /** Offers `u` to every link but `origin` (and those whose remote hears its writer). */
  send(u, origin) {
    // Below its writer's clock: it came after a later one of the same writer, so the
    // links' clocks cannot tell who lacks it.
    const late = origin !== null && this.store.isLate(u);
    for (const [id, l] of this.links) {
      if (id === origin) continue;
      if (origin !== null && (l.session.remoteId === u.source || l.reaches.has(u.source))) continue;
      if (late) l.session.sendLate(u);
      else l.session.sendUpdate(u);
    }
  }

  /** Tells every link which writers we hear directly: losses at once, gains if `gains`. */
  reportLinks(gains) {
    const ids = new Set();
    for (const l of this.links.values()) if (l.session.remoteId !== null) ids.add(l.session.remoteId);
    const lost = [...this.reported].filter((r) => !ids.has(r));
    const gained = gains ? [...ids].filter((i) => !this.reported.has(i)) : [];
    if (!lost.length && !gained.length) return;
    const texts = [];
    if (lost.length) texts.push(`LINKS- ${JSON.stringify(lost)}`);
    if (gained.length) texts.push(`LINKS+ ${JSON.stringify(gained)}`);
    lost.forEach((r) => this.reported.delete(r));
    gained.forEach((g) => this.reported.add(g));
    for (const l of this.links.values()) {
      if (l.session.remoteId !== null) texts.forEach((t) => l.session.sendControl(t));
    }
  }
}
