'use strict'
// Baseline for rtc-mesh's sync benchmark: real scuttlebutt 5.6.15, two Models in one
// process, linked by in-process duplex streams (JSON-lines wrapper, no TCP).
//
//   node --max-old-space-size=4096 bench-scuttlebutt.js [N] [RUNS]   (N defaults to 100000, RUNS to 1)
//
// With RUNS > 1 the sync is repeated into a fresh reader each time; sync_ms is the first
// (cold) run and sync_ms_warm the median of the others.
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
const RUNS = process.argv[3] === undefined ? 1 : Number(process.argv[3])
if (!Number.isInteger(N) || N < 1 || !Number.isInteger(RUNS) || RUNS < 1) {
  process.stderr.write('usage: node bench-scuttlebutt.js [N] [RUNS]   (N >= 1 keys, default 100000; RUNS >= 1)\n')
  process.exit(2)
}

const round = (x, d) => Number(x.toFixed(d))
const now = () => Number(process.hrtime.bigint()) / 1e6

const writer = new Model('aaaaaaaaaaaaaaaa')

const t0 = now()
for (let i = 1; i <= N; i++) {
  writer.set('key-' + String(i).padStart(10, '0'), { n: i, s: 'v' + i })
}
const setMs = now() - t0

const times = []
let firstBytes = 0

function run () {
  const reader = new Model('bbbbbbbbbbbbbbbb')
  let bytes = 0
  const t1 = now()
  const ws = writer.createStream()
  const rs = reader.createStream()
  ws.on('data', function (chunk) { bytes += Buffer.byteLength(chunk) })
  rs.once('sync', function () {
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
    times.push(syncMs)
    if (times.length === 1) firstBytes = bytes
    ws.end()
    rs.end()
    if (times.length < RUNS) {
      setImmediate(run)
      return
    }
    const warm = times.slice(1).sort((a, b) => a - b)
    const out = {
      impl: 'scuttlebutt-' + SB_VERSION,
      keys: N,
      set_ms: round(setMs, 1),
      sync_ms: round(times[0], 1),
      bytes: firstBytes,
      bytes_per_update: round(firstBytes / N, 2)
    }
    if (warm.length > 0) out.sync_ms_warm = round(warm[Math.floor(warm.length / 2)], 1)
    process.stdout.write(JSON.stringify(out) + '\n')
    process.exit(0)
  })
  ws.pipe(rs).pipe(ws)
}

run()
