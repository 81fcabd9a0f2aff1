'use strict'
// Smoke test of signaller-client.js against switchboard-server.js (npm run test:signal):
// the real rtc-switchboard 3.2.0 on 127.0.0.1 and real rtc-signaller 6.3.0 clients in one
// room exchange announces, a /to and a broadcast; C leaves with /leave, B drops its socket
// (3.2.0 tells nobody), D joins (memberCount shows both are gone); every client's stdout
// must match exactly. Exits 1 on a mismatch or after 20 s. -v prints every line.

const { spawn } = require('child_process')
const path = require('path')
const readline = require('readline')
const assert = require('assert')

const verbose = process.argv.includes('-v')
const procs = []
const ROOM = 'selftest'

function start (name, script, args) {
  const p = spawn(process.execPath, [path.join(__dirname, script), ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
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
  p.event = function (event, id) {
    return p.wait(function (o) { return o.event === event && (id === undefined || o.id === id) })
  }
  p.cmd = function (o) { p.stdin.write(JSON.stringify(o) + '\n') }
  return p
}
const sleep = function (ms) { return new Promise(function (resolve) { setTimeout(resolve, ms) }) }
const attrs = function (id) {
  return { browser: 'node', browserVersion: process.versions.node, agent: 'signaller@6.3.0', id, room: ROOM }
}
const announce = function (id) { return { event: 'announce', id, attributes: attrs(id) } }
// the order of the two /to announce replies C gets is up to the network
const byAnnounceId = function (lines) {
  const isAnnounce = function (o) { return o.event === 'announce' }
  return lines.filter(function (o) { return !isAnnounce(o) }).concat(
    lines.filter(isAnnounce).sort(function (a, b) { return a.id < b.id ? -1 : 1 }))
}

async function main () {
  const S = start('S', 'switchboard-server.js', [])
  const ready = await S.event('ready')
  assert.ok(Number.isInteger(ready.port) && ready.port > 0)
  const url = 'http://127.0.0.1:' + ready.port + '/'
  const client = function (id) { return start(id.slice(-1), 'signaller-client.js', [url, id, ROOM]) }

  const A = client('peerA')
  await A.event('roominfo')
  const B = client('peerB')
  await B.event('announce', 'peerA')
  await A.event('announce', 'peerB')

  A.cmd({ op: 'to', target: 'peerB', command: 'hello', args: [{ x: 1 }, 'text'] })
  await B.event('message')
  // the string "12" arrives as the number 12 (every part goes through cog/jsonparse)
  B.cmd({ op: 'send', command: 'hello', args: [{ y: 2 }, '12'] })
  await A.event('message')
  A.cmd({ op: 'bogus' })
  await A.event('error')

  const C = client('peerC')
  await C.event('announce', 'peerA')
  await C.event('announce', 'peerB')
  await A.event('announce', 'peerC')
  await B.event('announce', 'peerC')
  C.cmd({ op: 'leave' })
  await A.event('leave', 'peerC')
  await B.event('leave', 'peerC')
  C.stdin.end()

  B.cmd({ op: 'drop' })
  await B.event('dropped')
  assert.strictEqual(await B.exited, 0)
  await sleep(300) // rtc-switchboard 3.2.0 sends no /leave on disconnect: A must see nothing

  const D = client('peerD')
  await D.event('announce', 'peerA')
  await A.event('announce', 'peerD')
  D.cmd({ op: 'exit' })
  A.stdin.end()
  for (const p of [A, C, D]) assert.strictEqual(await p.exited, 0)
  S.stdin.end()
  assert.strictEqual(await S.exited, 0)

  assert.deepStrictEqual(S.lines, [{ event: 'ready', port: ready.port }])
  assert.deepStrictEqual(A.lines, [
    { event: 'roominfo', memberCount: 1 },
    announce('peerB'),
    { event: 'message', command: 'hello', sender: 'peerB', args: [{ y: 2 }, 12] },
    { event: 'error', message: 'unknown op: bogus' },
    announce('peerC'),
    { event: 'leave', id: 'peerC', reason: null },
    announce('peerD')
  ])
  assert.deepStrictEqual(B.lines, [
    { event: 'roominfo', memberCount: 2 },
    announce('peerA'),
    { event: 'message', command: 'hello', sender: 'peerA', args: [{ x: 1 }, 'text'] },
    announce('peerC'),
    { event: 'leave', id: 'peerC', reason: null },
    { event: 'dropped' }
  ])
  assert.deepStrictEqual(byAnnounceId(C.lines), [
    { event: 'roominfo', memberCount: 3 },
    announce('peerA'),
    announce('peerB')
  ])
  // B dropped and C left: only A and D are in the room
  assert.deepStrictEqual(D.lines, [
    { event: 'roominfo', memberCount: 2 },
    announce('peerA')
  ])
  console.log('ok: signaller-client.js x4 via switchboard-server.js: announce, to, send, leave, drop')
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
