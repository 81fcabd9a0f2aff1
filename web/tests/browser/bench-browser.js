'use strict'
// The browser benchmark: how fast our client moves updates between a page and a native
// `rtc-mesh join` peer, both ways, in Debian's Chromium and Firefox ESR (headless), beside
// page <-> page through our client (two pages of one engine) and native <-> native, all
// in one run, on 127.0.0.1 through an `rtc-mesh serve` switchboard started here.
//
//   node bench-browser.js --rtc-mesh PATH [--small N] [--large M] [--repeat R]
//                         [--engines chromium,firefox] [--codecs postcard,json]
//
// Two loads, each written on one side in a burst and timed until the other side has
// the last of it (the writer writes faster than the link carries, so this is the link's
// rate): `--small` N updates of 100-byte values (default 50,000) and `--large` M values
// of 300 KB (default 40, 12 MB), `--repeat` R times each way (default 3; the median is
// printed, with the first burst's rate and the range). Page <-> native runs once per
// codec of `--codecs` (the page lists only that one). Pages run the client alone (a
// blank page importing /mesh.js), so no drawing is measured. Natives are written
// through their stdin and watched on their stdout, as a program embedding `rtc-mesh
// join` would. Each line also says which codec the link spoke, the bytes the writer put
// on the link per update, and how many UDP datagrams the kernel dropped meanwhile for a
// full receive buffer, at the natives' sockets and at the browsers'. As root it runs in
// a network namespace of its own. Not a test: it prints figures and exits 0, or 1 when
// a transfer does not complete.

const fs = require('fs')
const { launch, isolateNetwork } = require('./browsers')
const { option, setRtcMesh, sleep, Native, openClient, meshedOn, serve } = require('./harness')
const opt = option(process.argv.slice(2))

const RTC_MESH = opt('--rtc-mesh')
const SMALL = Number(opt('--small', '50000'))
const LARGE = Number(opt('--large', '40'))
const ENGINES = opt('--engines', 'chromium,firefox').split(',')
const CODECS = opt('--codecs', 'postcard,json').split(',')
const REPEAT = Number(opt('--repeat', '3'))
if (!RTC_MESH || !(SMALL > 0) || !(LARGE > 0) || !(REPEAT >= 1)) {
  console.error('usage: node bench-browser.js --rtc-mesh PATH [--small N] [--large M] [--repeat R] [--engines chromium,firefox] [--codecs postcard,json]')
  process.exit(2)
}
setRtcMesh(RTC_MESH)

const SMALL_VALUE = 'v'.repeat(98) // 100 bytes as JSON
const LARGE_BYTES = 300 * 1000
const LIMIT_MS = 120000

// UDP datagrams the kernel dropped for full receive buffers, per local port, in this
// network namespace (the last column of /proc/net/udp), for sockets open now.
function udpDrops () {
  const drops = new Map()
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text = ''
    try { text = fs.readFileSync(file, 'utf8') } catch (_) { continue }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 13) continue
      const port = parseInt(f[1].split(':')[1], 16)
      drops.set(port, (drops.get(port) || 0) + Number(f[f.length - 1]))
    }
  }
  return drops
}

// Drops between two readings: at the ports in `natives`, and everywhere else (browsers).
function dropsBetween (before, after, natives) {
  let native = 0
  let other = 0
  for (const [port, n] of after) {
    const d = n - (before.get(port) || 0)
    if (natives.has(port)) native += d
    else other += d
  }
  return `${native}/${other}`
}
const NATIVE_PORTS = new Set()

// One side of a pair: something that writes a burst and something that waits for its
// last key. A page's member, or a native process.
function pageSide (page, name) {
  return {
    name,
    // Resolves (to Date.now()) once `key` has arrived; armed before the writer starts.
    async arm (key) {
      await page.evaluate(function (key) {
        window.benchArrived = new Promise(function (resolve) {
          const off = window.member.on('update', function (u) {
            if (u.key === key) { off(); resolve(Date.now()) }
          })
        })
      }, key)
      return () => page.evaluate(function () { return window.benchArrived })
    },
    write (prefix, n, size) {
      return page.evaluate(function (a) {
        const v = a.size ? 'x'.repeat(a.size - 2) : a.small
        for (let i = 0; i < a.n; i++) window.member.set(a.prefix + i, v)
      }, { prefix, n, size, small: SMALL_VALUE })
    },
    async codec () {
      return page.evaluate(function () {
        const l = window.member.peerList()
        return l.length ? l[0].codec : null
      })
    },
    // Bytes this side has sent on its link so far.
    async bytesOut () {
      return page.evaluate(function () {
        const l = window.member.peerList()
        return l.length && l[0].stats ? l[0].stats.bytesOut : 0
      })
    }
  }
}

function nativeSide (native, name) {
  return {
    name,
    async arm (key) {
      const seen = native.seen(JSON.stringify(key))
      return () => seen
    },
    write (prefix, n, size) {
      const v = size ? 'x'.repeat(size - 2) : SMALL_VALUE
      const cmds = []
      for (let i = 0; i < n; i++) cmds.push({ op: 'set', key: prefix + i, value: v })
      native.sendAll(cmds)
    },
    async codec () {
      const peers = await native.peers()
      return peers.length ? peers[0].codec : null
    },
    async bytesOut () {
      const peers = await native.peers()
      return peers.length ? peers[0].bytes_out : 0
    }
  }
}

let runs = 0
// Writes a burst on `from`, times it until `to` has the last key.
async function transfer (from, to, kind) {
  const n = kind === 'small' ? SMALL : LARGE
  const size = kind === 'small' ? 0 : LARGE_BYTES
  const prefix = `${kind}${runs++}-`
  const last = prefix + (n - 1)
  const arrived = await to.arm(last)
  const sent = await from.bytesOut()
  const before = udpDrops()
  const t0 = Date.now()
  await from.write(prefix, n, size)
  const wrote = Date.now()
  const t1 = await Promise.race([arrived(), sleep(LIMIT_MS).then(() => null)])
  if (t1 === null) throw new Error(`${from.name} -> ${to.name}: ${last} did not arrive in ${LIMIT_MS} ms`)
  const secs = (t1 - t0) / 1000
  const rate = kind === 'small' ? n / secs : n * LARGE_BYTES / 1e6 / secs
  const perUpdate = Math.round((await from.bytesOut() - sent) / n)
  return { rate, perUpdate, writeSecs: (wrote - t0) / 1000, drops: dropsBetween(before, udpDrops(), NATIVE_PORTS) }
}

// REPEAT bursts one way: the median rate, the first burst's and the range.
async function repeated (from, to, kind) {
  const bursts = []
  for (let i = 0; i < REPEAT; i++) bursts.push(await transfer(from, to, kind))
  const rates = bursts.map((r) => r.rate).sort((a, b) => a - b)
  const fmt = kind === 'small' ? (x) => `${Math.round(x).toLocaleString('en')}` : (x) => x.toFixed(1)
  const unit = kind === 'small' ? 'updates/s' : 'MB/s'
  const median = rates[Math.floor(rates.length / 2)]
  return {
    line: `${from.name} -> ${to.name}`,
    what: kind === 'small' ? `${SMALL} x 100 B` : `${LARGE} x 300 KB`,
    rate: `${fmt(median)} ${unit}`,
    spread: REPEAT > 1 ? `(first ${fmt(bursts[0].rate)}, ${fmt(rates[0])}-${fmt(rates[rates.length - 1])})` : '',
    perUpdate: bursts[bursts.length - 1].perUpdate,
    writeSecs: bursts.reduce((a, r) => a + r.writeSecs, 0) / bursts.length,
    drops: bursts.map((r) => r.drops).join('; ')
  }
}

const results = []
function report (r, codec) {
  const row = `${r.line.padEnd(40)} ${r.what.padEnd(13)} ${r.rate.padStart(17)} ${r.spread.padEnd(30)} ${(codec || '?').padEnd(8)} ${String(r.perUpdate).padStart(6)} B/update  writes ${r.writeSecs.toFixed(2)} s  udp drops (native/browsers) ${r.drops}`
  results.push(row)
  console.log(row)
}

async function pair (a, b) {
  const codec = await a.codec()
  for (const kind of ['small', 'large']) {
    report(await repeated(a, b, kind), codec)
    report(await repeated(b, a, kind), codec)
  }
}

// Waits for a native's `ready`, and notes its UDP port.
async function ready (native) {
  const e = await native.wait('ready', (e) => e.event === 'ready', 10000)
  NATIVE_PORTS.add(Number(String(e.addr).split(':').pop()))
}

async function pageNative (browser, codec) {
  const room = `bench-pn-${browser.engine}-${codec}`
  const native = new Native(room, 'native', [], null, { quietUpdates: true })
  await ready(native)
  const page = await openClient(browser, room, 'page', { codecs: [codec] })
  await meshedOn(page, 1, 20000)
  await native.wait('synced', (e) => e.event === 'synced' && e.peer === 'page', 20000)
  const engine = `${browser.engine} ${browser.version || ''}`.trim()
  await pair(pageSide(page, `${engine} page`), nativeSide(native, 'native'))
  await page.close()
  await native.close()
}

async function pagePage (browser) {
  const room = `bench-pp-${browser.engine}`
  const p1 = await openClient(browser, room, 'page1')
  const p2 = await openClient(browser, room, 'page2')
  await meshedOn(p1, 1, 20000)
  await meshedOn(p2, 1, 20000)
  await pair(pageSide(p1, `${browser.engine} page1`), pageSide(p2, `${browser.engine} page2`))
  await p1.close()
  await p2.close()
}

async function nativeNative () {
  const room = 'bench-nn'
  const n1 = new Native(room, 'native1', [], null, { quietUpdates: true })
  const n2 = new Native(room, 'native2', [], null, { quietUpdates: true })
  await ready(n1)
  await ready(n2)
  await n1.wait('synced', (e) => e.event === 'synced', 20000)
  await n2.wait('synced', (e) => e.event === 'synced', 20000)
  await pair(nativeSide(n1, 'native1'), nativeSide(n2, 'native2'))
  await n1.close()
  await n2.close()
}

async function main () {
  const isolated = await isolateNetwork()
  console.log(`bench-browser: ${SMALL} updates of 100 B and ${LARGE} values of 300 KB each way, ` +
    (isolated ? 'in a network namespace of its own (loopback only)' : 'in the host network namespace'))
  const server = await serve()
  try {
    for (const engine of ENGINES) {
      const browser = await launch(engine)
      try {
        for (const codec of CODECS) await pageNative(browser, codec)
        await pagePage(browser)
      } finally {
        await browser.close()
      }
    }
    await nativeNative()
  } finally {
    server.kill()
  }
  console.log('\nsummary:')
  for (const r of results) console.log(r)
}

main().then(function () {
  process.exit(0)
}, function (e) {
  console.error('FAILED: ' + (e && e.stack || e))
  process.exit(1)
})
