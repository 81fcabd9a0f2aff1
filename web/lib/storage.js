// IndexedDB under a durable page (the `data` option of `join`; lib/persist.js says what
// is stored and why a crash leaves a state the store was in). One database per store:
// object stores `entries` (one row per key), `clocks` (one per source) and `meta` (the
// format, and in a secured room the key epoch's REKEY line). One page holds a database
// at a time (Web Locks); a second is refused with a MeshError `busy` naming it.

import { MeshError } from './values.js';
import { checkRecords } from './persist.js';

/** The format of the rows (`meta.format`); a database of a later one is refused. */
export const FORMAT = 1;

/**
 * Opens (creating it if need be) the database `name`, holds it for this page, and reads
 * it back: `{storage, records}`, `records` checked by `checkRecords` (with `repair`, bad
 * rows are dropped, see there) plus `meta` (`{rekey}`). Rejects with a MeshError: `busy`
 * (another page holds it), `bad_data` (a bad row, or a later format), `storage_failed`
 * (IndexedDB refused, as a private window may).
 */
export async function openStorage(name, { repair = false } = {}) {
  const release = await hold(name);
  try {
    const db = await openDb(name);
    const storage = new IdbStorage(db, name, release);
    const raw = await storage.readAll();
    const where = `IndexedDB database ${JSON.stringify(name)}`;
    if (raw.format !== undefined && raw.format !== FORMAT) {
      throw new MeshError('bad_data', `${where}: format ${JSON.stringify(raw.format)}, this client reads format ${FORMAT}`);
    }
    const records = checkRecords(raw, where, repair);
    records.meta = { rekey: typeof raw.rekey === 'string' ? raw.rekey : null };
    if (raw.format === undefined) await storage.setMeta('format', FORMAT);
    return { storage, records };
  } catch (e) {
    release();
    throw e;
  }
}

/** Holds the lock of database `name` (Web Locks); resolves to its release. */
function hold(name) {
  const locks = globalThis.navigator?.locks;
  if (!locks) {
    // Web Locks are for secure contexts (https, localhost) only: elsewhere two pages
    // could open the same store.
    console.warn(`rtc-mesh: no Web Locks here, so ${JSON.stringify(name)} is not kept for this page alone`);
    return Promise.resolve(() => {});
  }
  return new Promise((resolve, reject) => {
    locks
      .request(`rtc-mesh ${name}`, { ifAvailable: true }, (lock) => {
        if (!lock) {
          reject(new MeshError('busy', `the IndexedDB database ${JSON.stringify(name)} is held by another page (one member per store)`));
          return undefined;
        }
        return new Promise((release) => resolve(release));
      })
      .catch((e) => reject(failed(name, e)));
  });
}

function failed(name, e) {
  return new MeshError('storage_failed', `IndexedDB database ${JSON.stringify(name)}: ${(e && (e.message || e.name)) || e}`);
}

function openDb(name) {
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = indexedDB.open(name, 1);
    } catch (e) {
      reject(failed(name, e));
      return;
    }
    req.onupgradeneeded = () => {
      const db = req.result;
      db.createObjectStore('entries', { keyPath: 'key' });
      db.createObjectStore('clocks', { keyPath: 'source' });
      db.createObjectStore('meta');
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(failed(name, req.error));
    req.onblocked = () => reject(failed(name, new Error('blocked by an older version open elsewhere')));
  });
}

function done(tx, name) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(failed(name, tx.error));
    tx.onabort = () => reject(failed(name, tx.error ?? new Error('the transaction was aborted')));
  });
}

/** An open, held database: `write` stores a batch, `close` lets it go. */
export class IdbStorage {
  constructor(db, name, release) {
    this.db = db;
    this.name = name;
    this.release = release;
    // The browser may close it (the user cleared the site's data): every later write fails.
    db.onclose = () => {
      this.db = null;
    };
  }

  /** Every row: `{entries, clocks, format, rekey}`. */
  async readAll() {
    const tx = this.db.transaction(['entries', 'clocks', 'meta'], 'readonly');
    const get = (req) => new Promise((resolve) => {
      req.onsuccess = () => resolve(req.result);
    });
    const out = {};
    const all = [
      get(tx.objectStore('entries').getAll()).then((v) => { out.entries = v; }),
      get(tx.objectStore('clocks').getAll()).then((v) => { out.clocks = v; }),
      get(tx.objectStore('meta').get('format')).then((v) => { out.format = v; }),
      get(tx.objectStore('meta').get('rekey')).then((v) => { out.rekey = v; }),
    ];
    await done(tx, this.name);
    await Promise.all(all);
    return out;
  }

  /**
   * Stores a batch (`Journal.take`'s) in one transaction; `strict` (the `power` level):
   * the browser flushes it to disk before it completes, else (`process`) it may keep it
   * in the operating system's cache. Rejects with a MeshError `storage_failed`.
   */
  write(batch, strict) {
    if (!this.db) return Promise.reject(failed(this.name, new Error('the database was closed')));
    let tx;
    try {
      tx = this.db.transaction(['entries', 'clocks'], 'readwrite', { durability: strict ? 'strict' : 'relaxed' });
      const entries = tx.objectStore('entries');
      for (const e of batch.entries) entries.put(e);
      const clocks = tx.objectStore('clocks');
      for (const c of batch.clocks) clocks.put(c);
    } catch (e) {
      return Promise.reject(failed(this.name, e));
    }
    return done(tx, this.name);
  }

  /** Stores a `meta` row (`format`, `rekey`). */
  setMeta(key, value) {
    if (!this.db) return Promise.reject(failed(this.name, new Error('the database was closed')));
    const tx = this.db.transaction(['meta'], 'readwrite', { durability: 'strict' });
    tx.objectStore('meta').put(value, key);
    return done(tx, this.name);
  }

  /** Closes the database and lets another page have it. */
  close() {
    this.db?.close();
    this.db = null;
    this.release();
  }
}
