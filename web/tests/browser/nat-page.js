'use strict'
// One page of our client in a headless browser, for the NAT test bed (cli/tests/nat.rs
// runs it inside a peer's network namespace, behind its router):
//
//   node nat-page.js --engine chromium|firefox --base http://HOST:PORT/ --room R --id ID
//                    --peers N [--policy relay]
//
// It joins R through the switchboard at --base (which serves the client), taking the
// TURN servers the switchboard offers, and writes JSON lines on stdout:
//   {"event":"ready"}, {"event":"ice_offered","urls":[..]},
//   {"event":"synced","peers":[{id,path}..]} once N peers have open, synced links,
//   {"event":"update","key":..,"value":..} for each update from another peer.
// It reads JSON lines on stdin: {"op":"set","key":..,"value":..}; {"op":"close"} or the
// end of input closes the member and the browser, then says {"event":"closed"}.

const readline = require('readline')
const h = require('./harness')
const { launch } = require('./browsers')

const opt = h.option(process.argv.slice(2))

function out (o) {
  process.stdout.write(JSON.stringify(o) + '\n')
}

async function main () {
  h.env.base = opt('--base')
  h.env.signal = h.env.base.replace(/^http/, 'ws')
  const peers = Number(opt('--peers', '1'))
  const options = opt('--policy') === 'relay' ? { iceTransportPolicy: 'relay' } : {}
  const browser = await launch(opt('--engine', 'chromium'))
  const page = await h.openClient(browser, opt('--room'), opt('--id'), options)
  // Events reach this process by polling the page (the same in both engines' drivers).
  await page.evaluate(function () {
    window.natLog = []
    // (The offer may have come already: it follows the announce at once.)
    const m = window.member
    if (m.iceOffered) {
      window.natLog.push({ event: 'ice_offered', urls: m.iceServers.flatMap(function (s) { return s.urls }) })
    } else {
      m.on('ice_offered', function (d) { window.natLog.push({ event: 'ice_offered', urls: d.urls }) })
    }
    m.on('update', function (u) {
      if (!u.local) window.natLog.push({ event: 'update', key: u.key, value: u.value })
    })
  })
  out({ event: 'ready' })
  let closed = false
  const rl = readline.createInterface({ input: process.stdin })
  rl.on('line', function (line) {
    const c = JSON.parse(line)
    if (c.op === 'set') page.evaluate(function (c) { window.member.set(c.key, c.value) }, c)
    if (c.op === 'close') closed = true
  })
  rl.on('close', function () { closed = true })
  let synced = false
  while (!closed) {
    const state = await page.evaluate(function (n) {
      const log = window.natLog.splice(0)
      const l = window.member.peerList()
      const done = l.length === n && l.every(function (p) { return p.state === 'open' && p.synced && p.path })
      return { log, done, peers: l.map(function (p) { return { id: p.id, path: p.path } }) }
    }, peers)
    for (const e of state.log) out(e)
    if (state.done && !synced) {
      synced = true
      out({ event: 'synced', peers: state.peers })
    }
    await h.sleep(100)
  }
  await page.evaluate(function () { return window.member.close() }).catch(function () {})
  await browser.close()
  out({ event: 'closed' })
  process.exit(0)
}

main().catch(function (e) {
  out({ event: 'error', message: String(e && e.stack || e) })
  process.exit(1)
})
