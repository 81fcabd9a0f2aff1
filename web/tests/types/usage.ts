// Compiled (never run) by `npm run types`: the client used as its README shows, and uses
// the declarations must refuse (each `@ts-expect-error` line has to be an error).
import { join, MeshError, SignalClient, type Json, type PeerInfo } from '../../mesh.js';

const member = join('lobby', { signal: 'ws://127.0.0.1:3000/', id: 'page-1', attributes: { name: 'ada' } });
const off = member.on('update', (u) => {
  const key: string = u.key;
  const value: Json = u.value;
  const local: boolean = u.local;
  console.log(key, value, local, u.deleted, u.ts, u.source);
});
off();
member.on('peer_leave', (p) => {
  const why: 'left' | 'timeout' | 'closed' | 'failed' | 'removed' = p.reason;
  console.log(p.peer, why);
});
member.on('synced_all', (s) => console.log(s.peers.length));
member.on('error', (e) => console.log(e.code, e.message));
try {
  member.set('greeting', { text: 'hello', n: [1, 2, null] });
} catch (e) {
  if (e instanceof MeshError) console.log(e.code);
}
member.delete('greeting');
const peers: PeerInfo[] = member.peerList();
for (const p of peers) console.log(p.id, p.state, p.codec, p.stats?.rtt);
const done: Promise<void> = member.close();
void done;

const client = new SignalClient({ seed: 7 }, 0);
for (let o = client.poll(); o.type !== 'timeout'; o = client.poll()) {
  if (o.type === 'send') console.log(o.text);
}

// @ts-expect-error: values are JSON
member.set('k', () => 1);
// @ts-expect-error: keys are strings
member.set(1, 'v');
// @ts-expect-error: no such event
member.on('peer_joined', () => {});
// @ts-expect-error: a leave's reason is a string
member.on('peer_leave', (p: { reason: number }) => p);
const jsonOnly = join('lobby', { codecs: ['json'] });
jsonOnly.peerList().forEach((p) => console.log(p.codec === 'postcard' || p.codec === 'json' || p.codec === null));

// @ts-expect-error: the room is required
join();
// @ts-expect-error: no such codec
join('lobby', { codecs: ['xml'] });
