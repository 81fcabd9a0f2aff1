// The mesh's own rules that run without a browser: the link retry backoff is core's
// (250 ms doubling to 10 s, jittered into [0.5, 1) by core's seeded generator).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Member, Xorshift } from '../mesh.js';

test("link retries back off as core's do, from a generator seeded per member", () => {
  const m = new Member('room', { id: 'a' });
  clearInterval(m.timer);
  for (let failures = 0; failures <= 20; failures++) {
    const d = Math.min(250 * 2 ** failures, 10000);
    for (let i = 0; i < 50; i++) {
      const b = m.backoff(failures);
      assert.ok(b >= d / 2 && b < d, `failures ${failures}: ${b} outside [${d / 2}, ${d})`);
    }
  }
  // The same seed, the same waits.
  const a = new Xorshift(42n);
  const b = new Xorshift(42n);
  assert.deepEqual([1, 2, 3].map(() => a.jitter(1000)), [1, 2, 3].map(() => b.jitter(1000)));
  assert.throws(() => new Member('room', { id: 'a', codecs: ['xml'] }), { code: 'bad_codecs' });
});
