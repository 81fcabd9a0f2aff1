'use strict'
// Self-test of browsers.js (npm run test:browsers): serves one page from 127.0.0.1, opens it
// in headless Chromium (playwright-core) and Firefox ESR (puppeteer-core, WebDriver BiDi),
// checks evaluate, waitForFunction, console capture and a screenshot in each, then connects
// a WebRTC data channel Chromium <-> Firefox whose offer, answer and ICE candidates are
// relayed by this script (only UDP host candidates on 127.0.0.1 are relayed, none may be an
// mDNS .local name) and sends a message each way. Both browsers are closed and no browser
// process may be left behind. Prints timings; exits 1 on failure or after 120 s.
// As root it re-runs itself in a network namespace with only a loopback interface (see
// isolateNetwork in browsers.js), where the connection must use 127.0.0.1 at both ends;
// --host (or BROWSERS_NETNS=0) stays in the host namespace, where Chromium may settle on
// another local address of this host for its own end.
// -v prints the browsers' console output and all gathered candidates; -k keeps the
// screenshots' temporary directory.

const http = require('http')
const fs = require('fs')
const os = require('os')
const path = require('path')
const { launch, isolateNetwork } = require('./browsers')

const verbose = process.argv.includes('-v')
const keep = process.argv.includes('-k')
const ENGINES = ['chromium', 'firefox']
const browsers = []
let ours = new Set()
let passed = 0

function check (cond, what) {
  if (!cond) throw new Error('check failed: ' + what)
  passed++
  if (verbose) console.log('ok', what)
}

function ms (t0) { return (Date.now() - t0) + ' ms' }

const sleep = function (n) { return new Promise(function (resolve) { setTimeout(resolve, n) }) }

const PAGE = '<!doctype html><html><head><meta charset="utf-8"><title>browsers selftest</title>' +
  '<style>body{font:20px sans-serif;background:#fff}#box{width:200px;height:120px;background:#2a6}</style>' +
  '</head><body><h1>browsers selftest</h1><div id="box"></div>' +
  '<script>window.answer = 42; setTimeout(function () { window.later = "done" }, 300)</script>' +
  '</body></html>'

// PIDs of this process's descendants (the browsers and their helpers), plus Firefox's
// crashhelper, which reparents itself to init but names its browser's PID.
function descendants () {
  const kids = new Map()
  const helpers = []
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    let stat, cmd
    try {
      stat = fs.readFileSync('/proc/' + d + '/stat', 'utf8')
      cmd = fs.readFileSync('/proc/' + d + '/cmdline', 'utf8').split('\0')
    } catch (e) { continue }
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
    if (!kids.has(ppid)) kids.set(ppid, [])
    kids.get(ppid).push(Number(d))
    if (/crashhelper$/.test(cmd[0])) helpers.push({ pid: Number(d), of: Number(cmd[1]) })
  }
  const out = new Set()
  const todo = [process.pid]
  while (todo.length) {
    for (const k of kids.get(todo.pop()) || []) { out.add(k); todo.push(k) }
  }
  for (const h of helpers) if (out.has(h.of)) out.add(h.pid)
  return out
}

function alive (pid) {
  try { process.kill(pid, 0); return true } catch (e) { return false }
}

// --- functions run inside the pages -------------------------------------------------------

async function rtcSetup (offerer) {
  const pc = new RTCPeerConnection({ iceServers: [] })
  const st = window.rtc = { pc: pc, cands: [], gathered: false, msgs: [], open: false, dc: null }
  pc.onicecandidate = function (e) {
    if (e.candidate && e.candidate.candidate) st.cands.push(e.candidate.toJSON())
    else if (!e.candidate) st.gathered = true
  }
  function wire (dc) {
    st.dc = dc
    dc.onopen = function () { st.open = true }
    dc.onmessage = function (e) { st.msgs.push(String(e.data)) }
    if (dc.readyState === 'open') st.open = true
  }
  if (!offerer) {
    pc.ondatachannel = function (e) { wire(e.channel) }
    return null
  }
  wire(pc.createDataChannel('selftest'))
  const offer = await pc.createOffer()
  await pc.setLocalDescription(offer)
  return { type: offer.type, sdp: offer.sdp }
}

async function rtcAnswer (offer) {
  const pc = window.rtc.pc
  await pc.setRemoteDescription(offer)
  const answer = await pc.createAnswer()
  await pc.setLocalDescription(answer)
  return { type: answer.type, sdp: answer.sdp }
}

async function rtcAddCandidates (list) {
  for (const c of list) await window.rtc.pc.addIceCandidate(c)
  return list.length
}

async function rtcSelectedPair () {
  const stats = await window.rtc.pc.getStats()
  let pair = null
  stats.forEach(function (r) {
    if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId)
  })
  if (!pair) {
    stats.forEach(function (r) {
      if (r.type === 'candidate-pair' && r.selected && r.state === 'succeeded') pair = r
    })
  }
  if (!pair) return null
  const addr = function (c) { return c ? (c.address || c.ip) + ':' + c.port + '/' + c.protocol : '?' }
  return { local: addr(stats.get(pair.localCandidateId)), remote: addr(stats.get(pair.remoteCandidateId)) }
}

// ------------------------------------------------------------------------------------------

function parseCandidate (c) {
  // candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type> ...
  const f = c.candidate.replace(/^candidate:/, '').split(' ')
  return { transport: (f[2] || '').toLowerCase(), address: f[4], port: f[5], type: f[7] }
}

async function main () {
  const isolated = process.argv.includes('--host') ? false : await isolateNetwork()
  console.log('network: ' + (isolated ? 'own namespace, loopback only' : 'host namespace'))
  if (isolated) check(Object.keys(os.networkInterfaces()).join() === 'lo', 'only a loopback interface')
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'browsers-selftest-'))
  const server = http.createServer(function (req, res) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
    res.end(PAGE)
  })
  await new Promise(function (resolve) { server.listen(0, '127.0.0.1', resolve) })
  const url = 'http://127.0.0.1:' + server.address().port + '/'
  const pages = {}
  const logs = {}

  try {
    for (const engine of ENGINES) {
      let t0 = Date.now()
      const b = await launch(engine)
      browsers.push(b)
      console.log(engine + ' ' + b.version + ': launch ' + ms(t0))
      check(b.engine === engine, engine + ' engine name')

      t0 = Date.now()
      const page = await b.newPage()
      logs[engine] = []
      page.onConsole(function (m) {
        logs[engine].push(m)
        if (verbose) console.log('[' + engine + ' console.' + m.type + '] ' + m.text)
      })
      await page.goto(url)
      pages[engine] = page
      console.log(engine + ': newPage + goto ' + ms(t0))

      t0 = Date.now()
      check(await page.evaluate('document.title') === 'browsers selftest', engine + ' evaluate(string)')
      check(await page.evaluate(function () { return window.answer + 1 }) === 43, engine + ' evaluate(fn)')
      check(await page.evaluate(function (a, b) { return a + b.x }, 2, { x: 3 }) === 5, engine + ' evaluate(fn, a, b)')
      check(await page.evaluate(async function (n) {
        await new Promise(function (resolve) { setTimeout(resolve, 10) })
        return [n, typeof RTCPeerConnection]
      }, 7).then(JSON.stringify) === '[7,"function"]', engine + ' evaluate(async fn)')
      check(await page.waitForFunction('window.later', { timeout: 5000 }) === 'done', engine + ' waitForFunction(string)')
      check(await page.waitForFunction(function (v) { return window.answer === v && 'yes' }, { timeout: 5000 }, 42) === 'yes',
        engine + ' waitForFunction(fn, opts, arg)')
      let timedOut = false
      try { await page.waitForFunction('window.never', { timeout: 300 }) } catch (e) { timedOut = true }
      check(timedOut, engine + ' waitForFunction times out')
      await page.evaluate(function (tag) { console.log('selftest-console ' + tag); console.warn('selftest-warn') }, engine)
      for (let i = 0; i < 50 && !logs[engine].some(function (m) { return m.text === 'selftest-warn' }); i++) await sleep(50)
      check(logs[engine].some(function (m) { return m.type === 'log' && m.text === 'selftest-console ' + engine }), engine + ' console.log captured')
      check(logs[engine].some(function (m) { return m.type === 'warn' && m.text === 'selftest-warn' }), engine + ' console.warn captured')
      console.log(engine + ': evaluate/waitForFunction/console checks ' + ms(t0))

      t0 = Date.now()
      const shot = path.join(tmp, engine + '.png')
      await page.screenshot(shot)
      const png = fs.readFileSync(shot)
      check(png.length > 1000 && png.slice(1, 4).toString() === 'PNG', engine + ' screenshot is a PNG')
      console.log(engine + ': screenshot ' + png.length + ' bytes ' + ms(t0))
    }

    // WebRTC data channel, Chromium offers, Firefox answers; the script is the signalling.
    const A = pages.chromium
    const B = pages.firefox
    let t0 = Date.now()
    const offer = await A.evaluate(rtcSetup, true)
    await B.evaluate(rtcSetup, false)
    const answer = await B.evaluate(rtcAnswer, offer)
    await A.evaluate(async function (d) { await window.rtc.pc.setRemoteDescription(d) }, answer)
    for (const sdp of [offer.sdp, answer.sdp]) {
      check(!/^a=candidate:/m.test(sdp) && !/\.local\b/.test(sdp), 'relayed SDP carries no candidates and no .local name')
    }
    const relay = {}
    for (const engine of ENGINES) {
      const p = pages[engine]
      await p.waitForFunction(function () { return window.rtc.gathered || window.rtc.pc.iceGatheringState === 'complete' }, { timeout: 15000 })
      const all = await p.evaluate(function () { return window.rtc.cands })
      if (verbose) all.forEach(function (c) { console.log(engine + ' gathered: ' + c.candidate) })
      check(all.every(function (c) { return !/\.local\b/.test(c.candidate) }), engine + ' gathered no mDNS .local candidate')
      relay[engine] = all.filter(function (c) {
        const p = parseCandidate(c)
        return p.transport === 'udp' && p.address === '127.0.0.1' && p.type === 'host'
      })
      check(relay[engine].length > 0, engine + ' gathered a UDP host candidate on 127.0.0.1 (of ' + all.length + ')')
      console.log(engine + ' relays: ' + relay[engine].map(function (c) { return c.candidate }).join(' | '))
    }
    check(await B.evaluate(rtcAddCandidates, relay.chromium) === relay.chromium.length, 'firefox took chromium candidates')
    check(await A.evaluate(rtcAddCandidates, relay.firefox) === relay.firefox.length, 'chromium took firefox candidates')
    for (const engine of ENGINES) {
      await pages[engine].waitForFunction(function () { return window.rtc.open }, { timeout: 20000 })
    }
    console.log('webrtc: data channel open both ends ' + ms(t0))
    t0 = Date.now()
    await A.evaluate(function (m) { window.rtc.dc.send(m) }, 'hello from chromium')
    await B.evaluate(function (m) { window.rtc.dc.send(m) }, 'hello from firefox')
    check(await B.waitForFunction(function (m) { return window.rtc.msgs.indexOf(m) >= 0 }, { timeout: 10000 }, 'hello from chromium'),
      'firefox received the message from chromium')
    check(await A.waitForFunction(function (m) { return window.rtc.msgs.indexOf(m) >= 0 }, { timeout: 10000 }, 'hello from firefox'),
      'chromium received the message from firefox')
    console.log('webrtc: message each way ' + ms(t0))
    for (const engine of ENGINES) {
      const pair = await pages[engine].evaluate(rtcSelectedPair)
      console.log(engine + ' selected pair: ' + JSON.stringify(pair))
      check(pair, engine + ' has a selected candidate pair')
      if (isolated) {
        check(/^127\.0\.0\.1:/.test(pair.local) && /^127\.0\.0\.1:/.test(pair.remote), engine + ' selected pair is 127.0.0.1 <-> 127.0.0.1')
      } else {
        const mine = [].concat(...Object.values(os.networkInterfaces())).map(function (i) { return i.address })
        const ip = function (a) { return a.replace(/:\d+\/\w+$/, '') }
        check(mine.includes(ip(pair.local)) && mine.includes(ip(pair.remote)), engine + ' selected pair is between addresses of this host')
      }
    }
    for (const engine of ENGINES) {
      check(!logs[engine].some(function (m) { return m.type === 'pageerror' }), engine + ' had no page error')
      await pages[engine].evaluate(function () { window.rtc.pc.close() })
      await pages[engine].close()
    }
  } finally {
    ours = descendants()
    while (browsers.length) {
      const b = browsers.shift()
      const t0 = Date.now()
      await b.close()
      console.log(b.engine + ': close ' + ms(t0))
    }
    server.close()
    if (!keep) fs.rmSync(tmp, { recursive: true, force: true })
    else console.log('screenshots kept in ' + tmp)
  }

  let left = []
  for (let i = 0; i < 100; i++) {
    left = [...ours].filter(alive)
    if (!left.length) break
    await sleep(100)
  }
  check(ours.size > 0 && left.length === 0, 'no browser process left behind (' + ours.size + ' seen, left: ' + left.join(' ') + ')')
}

const started = Date.now()
const deadline = setTimeout(function () {
  console.error('FAIL: browsers-selftest timed out after 120 s')
  process.exit(1)
}, 120000)

main().then(function () {
  clearTimeout(deadline)
  console.log('browsers-selftest: total ' + ms(started))
  console.log('browsers-selftest: ' + passed + ' passed, 0 failed')
}, async function (err) {
  console.error('FAIL: ' + (err && err.stack || err))
  for (const b of browsers) { try { await b.close() } catch (e) {} }
  console.log('browsers-selftest: ' + passed + ' passed, 1 failed')
  process.exit(1)
})
