'use strict'
// Baseline for rtc-mesh's sync benchmark: real scuttlebutt 5.6.15, two Models in one
// process, linked by in-process duplex streams (JSON-lines wrapper, no TCP).
//
//   node --max-old-space-size=4096 bench-scuttlebutt.js [N]      (N defaults to 100000)
//
// The writer ("aaaaaaaaaaaaaaaa") sets N keys `key-0000000001`.. with values {"n":i,"s":"v"+i}
// (timed: set_ms), then writer and reader ("bbbbbbbbbbbbbbbb") are connected and timed until
// the reader's stream emits 'sync' (sync_ms) and the reader holds all N keys. `bytes` counts
// every chunk the writer's stream sends to the reader (digest, N updates, "SYNC").
// Prints one JSON line:
//   {"impl":"scuttlebutt-5.6.15","keys":N,"set_ms":..,"sync_ms":..,"bytes":..,"bytes_per_update":..}

const Model = require('scuttlebutt/model')
const SB_VERSION = require('scuttlebutt/package.json').version

const arg = process.argv[2]
const N = arg === undefined ? 100000 : Number(arg)
if (!Number.isInteger(N) || N < 1) {
  process.stderr.write('usage: node bench-scuttlebutt.js [N]   (N >= 1 keys, default 100000)\n')
  process.exit(2)
}

const round = (x, d) => Number(x.toFixed(d))
const now = () => Number(process.hrtime.bigint()) / 1e6

const writer = new Model('aaaaaaaaaaaaaaaa')
const reader = new Model('bbbbbbbbbbbbbbbb')

const t0 = now()
for (let i = 1; i <= N; i++) {
  writer.set('key-' + String(i).padStart(10, '0'), { n: i, s: 'v' + i })
}
const setMs = now() - t0

let bytes = 0
const t1 = now()
const ws = writer.createStream()
const rs = reader.createStream()
ws.on('data', function (chunk) { bytes += Buffer.byteLength(chunk) })
rs.on('sync', function () {
  const syncMs = now() - t1
  const have = reader.keys().length
  if (have !== N) {
    process.stderr.write('reader has ' + have + ' keys after sync, expected ' + N + '\n')
    process.exit(1)
  }
  const last = 'key-' + String(N).padStart(10, '0')
  const v = reader.get(last)
  if (!v || v.n !== N || v.s !== 'v' + N) {
    process.stderr.write('reader has a wrong value for ' + last + ': ' + JSON.stringify(v) + '\n')
    process.exit(1)
  }
  process.stdout.write(JSON.stringify({
    impl: 'scuttlebutt-' + SB_VERSION,
    keys: N,
    set_ms: round(setMs, 1),
    sync_ms: round(syncMs, 1),
    bytes,
    bytes_per_update: round(bytes / N, 2)
  }) + '\n')
  process.exit(0)
})
ws.pipe(rs).pipe(ws)
