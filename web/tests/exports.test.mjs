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

// Member's other methods are its driving (signalling, negotiation, channels), Mesh's
// its rules (core's private functions): not API.
test('every public method of Member, Mesh and SignalClient is declared', () => {
  const dts = readFileSync(new URL('../mesh.d.ts', import.meta.url), 'utf8');
  for (const [cls, name, internal] of [
    [mesh.Member, 'Member', /^(emit|pump|drain|schedule|openSocket|closeSocket|open|input|negotiate|sendSdp|remoteSdp|remoteCandidate|flushCandidates|wireChannel|channelOpen|checkQuiet|readPath|scheduleFlush|flush|closeLink|useOffer|restartSdp|startRestart|checkRestarts|acked|settle|writeChanges|storageFailed)$/],
    [mesh.Mesh, 'Mesh', /^(push|event|ids|announceAttributes|signal|pumpSignal|setPresent|onAnnounce|onLeave|weOffer|offer|restartOffer|startNegotiation|onNegotiation|dropConn|loseLink|forget|cutOffRemoved|onAnswer|reportAllSynced|backoff|checkClosing)$/],
    [mesh.SignalClient, 'SignalClient', /^$/],
  ]) {
    const body = dts.slice(dts.indexOf(`export declare class ${name} `));
    const block = body.slice(0, body.indexOf('\n}'));
    for (const m of Object.getOwnPropertyNames(cls.prototype)) {
      if (m === 'constructor' || internal.test(m)) continue;
      const getter = Object.getOwnPropertyDescriptor(cls.prototype, m).get !== undefined;
      const declared = getter ? new RegExp(`\\n  readonly ${m}: `) : new RegExp(`\\n  ${m}[<(]`);
      assert.match(block, declared, `${name}.${m} is not declared`);
    }
  }
});

test('the package resolves by its name, as a bundler or Node would import it', async () => {
  const byName = await import('rtc-mesh');
  assert.equal(byName.join, mesh.join);
  assert.equal((await import('rtc-mesh/mesh.js')).Member, mesh.Member);
});
