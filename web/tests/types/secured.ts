// Compiled (never run) by `npm run types`: secured rooms as the README shows them, and
// uses the declarations must refuse (each `@ts-expect-error` line has to be an error).
import { join, deriveRoomKey, Identity, Mesh, resumeRekey, parseRekey } from '../../mesh.js';

async function secured(): Promise<void> {
  // A secured join is a promise of the member.
  const m = await join('team', { secret: 'rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8', token: 'jwt' });
  const tag: string | null = m.tag;
  const n: number = m.stats.unsecuredSignals + m.stats.unsealFailures + m.stats.badSignatures + m.stats.staleSignals;
  console.log(m.secured, tag, n, m.stats.restarts);
  m.on('refused', (r) => console.log(r.reason));
  m.on('error', (e) => console.log(e.code === 'refused_http_401'));
  // A derived key and a kept identity: the same peer id on every join.
  const key = await deriveRoomKey('team', 'correct horse battery staple');
  const identity = await Identity.generate();
  const again: typeof m = await join('team', { secret: key, identity });
  console.log(again.id === identity.peerId);
  // The sans-IO mesh, secured.
  const mesh = new Mesh({ id: identity.peerId, room: 'team', incarnation: '0011223344556677', security: { key, identity } }, 0);
  mesh.onOutput = () => console.log(mesh.poll());
  mesh.handleSignalRefused(0, '401 Unauthorized');
  await mesh.settled();
  console.log(mesh.stats.staleSignals);
  // Key epochs: the line a rotation gives, kept and handed back on the next join.
  m.on('rekeyed', (e) => console.log(e.epoch, e.by, e.line.length));
  const line: string | null = m.rekeyLine;
  const epoch: number = m.epoch + mesh.epoch() + m.stats.rekeys + m.stats.rekeysRefused;
  if (line !== null) {
    const resumed = await join('team', { secret: key, identity, rekey: line, rekeyWaitMs: 5000, rekeyGraceMs: 86400000 });
    const r = await resumeRekey(key, line);
    console.log(resumed.epoch === epoch, r?.key.epoch, parseRekey(line.slice(6)).removed.length);
  }

  // @ts-expect-error: a secured join is a promise
  join('team', { secret: 'pw' }).set('k', 1);
  // @ts-expect-error: counters are read-only
  m.stats.badSignatures = 0;
  // @ts-expect-error: the identity is an Identity
  await join('team', { secret: 'pw', identity: 'me' });
}
void secured;
