'use strict'
// What the browser test (browser-mesh.js) and the browser benchmark (bench-browser.js)
// share: an `rtc-mesh serve` switchboard, native `rtc-mesh join` peers read event by
// event, pages running our client, and waiting for a page to be meshed.
//
//   const h = require('./harness')
//   h.setRtcMesh(path); await h.serve()      // then h.env.base, h.env.signal
//   const n = new h.Native(room, id); await n.wait('ready', (e) => e.event === 'ready', ms)
//   const page = await h.openPage(browser, room, id)          // the demo page
//   const page = await h.openClient(browser, room, id)        // the client alone

const { spawn } = require('child_process')
const readline = require('readline')

/** Where things are: the `rtc-mesh` binary, and the switchboard once `serve` ran. */
const env = { rtcMesh: null, base: null, signal: null }

// `opt(name, dflt)` over `args`: the word after `name`, or `dflt`.
function option (args) {
  return function (name, dflt) {
    const i = args.indexOf(name)
    return i >= 0 ? args[i + 1] : dflt
  }
}

function setRtcMesh (path) {
  env.rtcMesh = path
}

function fail (msg) {
  throw new Error(msg)
}

function sleep (ms) {
  return new Promise(function (resolve) { setTimeout(resolve, ms) })
}

// A native peer: `rtc-mesh join ROOM --json [extra args]`, its events read line by
// line; or, given `command`, any program speaking the same line protocol. With
// `quietUpdates`, `update` events are not parsed or kept (a benchmark's flood); their
// keys are only matched against `watchKey`.
class Native {
  constructor (room, id, extra, command, opts) {
    this.id = id
    this.events = []
    this.waiters = []
    this.quiet = !!(opts && opts.quietUpdates)
    this.keySeen = new Map()
    const [cmd, args] = command || [env.rtcMesh, ['join', room, '--signal', env.signal, '--id', id, '--json', '--bind', '127.0.0.1:0'].concat(extra || [])]
    this.proc = spawn(cmd, args, {
      stdio: ['pipe', 'pipe', 'inherit']
    })
    this.exited = new Promise((resolve) => this.proc.on('exit', resolve))
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      if (this.quiet && line.startsWith('{"event":"update"')) {
        for (const [key, resolve] of this.keySeen) {
          if (line.includes(key)) {
            this.keySeen.delete(key)
            resolve(Date.now())
          }
        }
        return
      }
      let e
      try { e = JSON.parse(line) } catch (_) { return }
      e.at = Date.now()
      this.events.push(e)
      for (const w of this.waiters.slice()) w()
    })
  }

  // With `quietUpdates`: resolves to the time (Date.now) of the first `update` line
  // holding `needle` (a key in its JSON form, quotes included).
  seen (needle) {
    return new Promise((resolve) => this.keySeen.set(needle, resolve))
  }

  send (cmd) {
    this.proc.stdin.write(JSON.stringify(cmd) + '\n')
  }

  // Writes many commands at once (one write).
  sendAll (cmds) {
    this.proc.stdin.write(cmds.map((c) => JSON.stringify(c)).join('\n') + '\n')
  }

  // Waits for an event (seen already, or to come) matching `pred`.
  wait (what, pred, ms) {
    return new Promise((resolve, reject) => {
      let from = 0
      const check = () => {
        for (; from < this.events.length; from++) {
          if (pred(this.events[from])) {
            done()
            resolve(this.events[from])
            return true
          }
        }
        return false
      }
      const timer = setTimeout(() => { done(); reject(new Error(`native ${this.id}: no ${what} in ${ms} ms`)) }, ms)
      const done = () => { clearTimeout(timer); this.waiters = this.waiters.filter((w) => w !== check) }
      if (!check()) this.waiters.push(check)
    })
  }

  async dump () {
    const n = this.events.length
    this.send({ op: 'dump' })
    const e = await this.wait('dump', (e) => e.event === 'dump' && this.events.indexOf(e) >= n, 10000)
    return e.data
  }

  // Its `peers` report.
  async peers () {
    const n = this.events.length
    this.send({ op: 'peers' })
    const e = await this.wait('peers', (e) => e.event === 'peers' && this.events.indexOf(e) >= n, 10000)
    return e.peers
  }

  // Asks `check` (async) again after each answer until it holds, at most `ms`.
  async until (what, check, ms) {
    const end = Date.now() + ms
    while (!(await check())) {
      if (Date.now() > end) fail(`native ${this.id}: not ${what} in ${ms} ms`)
      await sleep(100)
    }
  }

  async close () {
    this.send({ op: 'close' })
    this.proc.stdin.end()
    await Promise.race([this.exited, sleep(5000).then(() => this.proc.kill('SIGKILL'))])
  }
}

function logConsole (browser, id, page) {
  page.onConsole(function (m) {
    if (m.type === 'error' || m.type === 'pageerror') console.error(`[${browser.engine} ${id}] ${m.text}`)
  })
}

// The demo page in room `room` as peer `id` (`query`: more of its URL's query).
async function openPage (browser, room, id, query) {
  const page = await browser.newPage()
  logConsole(browser, id, page)
  await page.goto(`${env.base}?room=${room}&id=${id}${query ? '&' + query : ''}`)
  return page
}

// Our client alone (no demo page drawing anything): a blank page of the switchboard
// that imports /mesh.js and joins `room` as `id` (with more join `options`); the member
// is `window.member`.
async function openClient (browser, room, id, options) {
  const page = await browser.newPage()
  logConsole(browser, id, page)
  await page.goto(`${env.base}health`)
  await page.evaluate(async function (cfg) {
    const m = await import(cfg.base + 'mesh.js')
    window.rtcMesh = m
    window.member = m.join(cfg.room, Object.assign({ signal: cfg.signal, id: cfg.id }, cfg.options))
  }, { base: env.base, signal: env.signal, room, id, options: options || {} })
  return page
}

// Every page sees `n` peers, each with an open, synced link. On a timeout, says how far
// each connection got.
async function meshedOn (page, n, ms) {
  try {
    return await page.waitForFunction(function (n) {
      const l = window.member && window.member.peerList()
      return !!l && l.length === n && l.every(function (p) { return p.state === 'open' && p.synced })
    }, { timeout: ms }, n)
  } catch (e) {
    const state = await page.evaluate(function () {
      const m = window.member
      if (!m) return 'no member'
      return JSON.stringify(Array.from(m.peers.entries()).map(function (kv) {
        const p = kv[1]
        return {
          peer: kv[0], present: p.present, state: p.state, offerer: p.offerer, failures: p.failures,
          pc: p.pc && [p.pc.signalingState, p.pc.iceConnectionState, p.pc.connectionState],
          dc: p.dc && p.dc.readyState, pending: p.pending && p.pending.length, ws: m.ws && m.ws.readyState,
          queued: p.queue && p.queue.length - p.head, buffered: p.dc && p.dc.bufferedAmount,
          session: p.link !== null && (function (x) {
            return x && { remote: x.remoteId, sent: x.sentSync, recv: x.recvSync, stats: x.stats }
          })(m.replica.session(p.link))
        }
      }))
    }).catch(function (e2) { return String(e2) })
    fail(`${e.message}; the page's peers: ${state}`)
  }
}


// `rtc-mesh serve` on a free loopback port; resolves to the process once it listens.
function serve () {
  return new Promise(function (resolve, reject) {
    const proc = spawn(env.rtcMesh, ['serve', '--listen', '127.0.0.1:0', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] })
    // Never outlives this program (it shares its stderr: left running, it would keep
    // whoever reads that waiting).
    process.once('exit', function () { proc.kill() })
    proc.on('error', reject)
    proc.on('exit', function (code) { reject(new Error(`rtc-mesh serve exited with ${code}`)) })
    readline.createInterface({ input: proc.stdout }).once('line', function (line) {
      const addr = JSON.parse(line).addr
      env.base = `http://${addr}/`
      env.signal = `ws://${addr}/`
      resolve(proc)
    })
  })
}

module.exports = { env, option, setRtcMesh, fail, sleep, Native, openPage, openClient, meshedOn, serve }
