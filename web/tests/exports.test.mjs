// The type declarations (mesh.d.ts) cover exactly what mesh.js exports: every value it
// exports is declared, and nothing is declared that it does not export. (tsc checks the
// declarations themselves: `npm run types`.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as mesh from '../mesh.js';

test('mesh.d.ts declares every export of mesh.js, and only those', () => {
  const dts = readFileSync(new URL('../mesh.d.ts', import.meta.url), 'utf8');
  const declared = [...dts.matchAll(/^export declare (?:const|function|class) ([A-Za-z_$][\w$]*)/gm)].map((m) => m[1]);
  const exported = Object.keys(mesh);
  assert.deepEqual([...new Set(declared)].sort(), exported.sort());
});

// Member's other methods are its driving (signalling, negotiation, channels), not API.
test('every public method of Member and SignalClient is declared', () => {
  const dts = readFileSync(new URL('../mesh.d.ts', import.meta.url), 'utf8');
  for (const [cls, name, internal] of [
    [mesh.Member, 'Member', /^(emit|pumpSignal|openSocket|signal|announceAttributes|sendAnnounce|handleSignal|onAnnounce|onLeave|weOffer|setPresent|newPc|sendSdp|startNegotiation|negotiate|setRemote|restartOffer|offer|onNegotiation|flushCandidates|wireChannel|linkOpen|scheduleFlush|flush|sendOn|onAnswer|checkAllSynced|dropConn|backoff|linkClosed|tick|closeChannel|connect)$/],
    [mesh.SignalClient, 'SignalClient', /^$/],
  ]) {
    const body = dts.slice(dts.indexOf(`export declare class ${name} `));
    const block = body.slice(0, body.indexOf('\n}'));
    for (const m of Object.getOwnPropertyNames(cls.prototype)) {
      if (m === 'constructor' || internal.test(m)) continue;
      assert.match(block, new RegExp(`\\n  ${m}[<(]`), `${name}.${m} is not declared`);
    }
  }
});

test('the package resolves by its name, as a bundler or Node would import it', async () => {
  const byName = await import('rtc-mesh');
  assert.equal(byName.join, mesh.join);
  assert.equal((await import('rtc-mesh/mesh.js')).Member, mesh.Member);
});
