'use strict'
// Smoke test of scuttlebutt-peer.js against itself (npm test): a listener and two
// connecting peers on 127.0.0.1 write keys, a delete and a conflicting write, and must end
// with equal dumps; then all close and exit 0. Exits 1 on failure or after 20 s.

const { spawn } = require('child_process')
const path = require('path')
const readline = require('readline')
const assert = require('assert')

const PEER = path.join(__dirname, 'scuttlebutt-peer.js')
const verbose = process.argv.includes('-v')
const procs = []

function start (name, args) {
  const p = spawn(process.execPath, [PEER, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  procs.push(p)
  p.lines = []
  p.waiters = []
  readline.createInterface({ input: p.stdout }).on('line', function (l) {
    if (verbose) console.log(name, l)
    const o = JSON.parse(l)
    assert.strictEqual(typeof o.event, 'string')
    p.lines.push(o)
    p.waiters = p.waiters.filter(function (w) { return !(w.f(o) && (w.r(o), true)) })
  })
  p.exited = new Promise(function (resolve) { p.on('exit', resolve) })
  p.wait = function (f) {
    return new Promise(function (resolve) {
      const o = p.lines.find(f)
      if (o) resolve(o)
      else p.waiters.push({ f, r: resolve })
    })
  }
  p.next = function (event) {
    const seen = p.lines.length
    return new Promise(function (resolve) {
      p.waiters.push({ f: function (o) { return o.event === event && p.lines.indexOf(o) >= seen }, r: resolve })
    })
  }
  p.cmd = function (o) { p.stdin.write(JSON.stringify(o) + '\n') }
  return p
}
const sleep = function (ms) { return new Promise(function (resolve) { setTimeout(resolve, ms) }) }
const sorted = function (o) {
  const r = {}
  for (const k of Object.keys(o).sort()) r[k] = o[k]
  return r
}

async function main () {
  const L = start('L', ['--listen', '127.0.0.1:0', '--id', 'L'])
  const ready = await L.wait(function (o) { return o.event === 'ready' })
  assert.strictEqual(ready.id, 'L')
  assert.match(ready.addr, /^127\.0\.0\.1:\d+$/)
  assert.notStrictEqual(ready.addr, '127.0.0.1:0')
  L.cmd({ op: 'set', key: 'before', value: { nested: [1, 'x'] } })
  const A = start('A', ['--connect', ready.addr, '--id', 'A'])
  const B = start('B', ['--connect', ready.addr])
  const sa = await A.wait(function (o) { return o.event === 'synced' })
  assert.strictEqual(sa.peer, 'L')
  const rb = await B.wait(function (o) { return o.event === 'ready' })
  await B.wait(function (o) { return o.event === 'synced' })
  await L.wait(function (o) { return o.event === 'synced' && o.peer === rb.id })
  A.cmd({ op: 'set', key: 'a', value: 1 })
  B.cmd({ op: 'set', key: 'b', value: 'two' })
  A.cmd({ op: 'set', key: 'gone', value: true })
  A.cmd({ op: 'delete', key: 'gone' })
  await sleep(20)
  B.cmd({ op: 'set', key: 'a', value: 'later' })
  A.cmd({ op: 'bogus' })
  const err = await A.wait(function (o) { return o.event === 'error' })
  assert.strictEqual(err.code, 'unknown_op')
  await sleep(300)
  const dumps = []
  for (const p of [L, A, B]) {
    const d = p.next('dump')
    p.cmd({ op: 'dump' })
    dumps.push(sorted((await d).data))
  }
  const want = { a: 'later', b: 'two', before: { nested: [1, 'x'] } }
  for (const d of dumps) assert.deepStrictEqual(d, want)
  const del = L.lines.find(function (o) { return o.event === 'update' && o.key === 'gone' && o.deleted })
  assert.ok(del && del.value === null && del.source === 'A' && del.local === false)
  const v = A.next('value')
  A.cmd({ op: 'get', key: 'gone' })
  assert.deepStrictEqual(await v, { event: 'value', key: 'gone', value: null })
  A.cmd({ op: 'close' })
  B.stdin.end()
  L.cmd({ op: 'close' })
  for (const p of [L, A, B]) assert.strictEqual(await p.exited, 0)
  for (const p of [L, A, B]) assert.strictEqual(p.lines[p.lines.length - 1].event, 'closed')
  console.log('ok: scuttlebutt-peer.js converged (' + JSON.stringify(want) + ') and closed')
}

const timer = setTimeout(function () {
  console.error('timed out')
  for (const p of procs) p.kill()
  process.exit(1)
}, 20000)
main().then(function () { clearTimeout(timer) }, function (e) {
  console.error(e)
  for (const p of procs) p.kill()
  process.exit(1)
})
