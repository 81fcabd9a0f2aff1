'use strict'
// Browser pages (Debian's Chromium and Firefox ESR, headless) and native `rtc-mesh join`
// processes in one room, through an `rtc-mesh serve` switchboard (started here) that also
// serves the demo page. Run by cli/tests/browser.rs; by hand:
//
//   node browser-mesh.js --rtc-mesh PATH [--shots DIR] [--only mitm]
//
// As root it runs in a network namespace of its own with only loopback up (browsers
// otherwise gather and may use the machine's other addresses), so everything, the
// switchboard and native peers included, talks over 127.0.0.1.
//
// It proves: the secured-room crypto is core's in both engines; a secured room meets,
// and other secrets meet nobody; a hostile switchboard (hostile.js) that shows the
// attacker in a member's place makes a native, a Chromium and a Firefox victim link to
// the attacker in an open room, and in a secured room gets each forged announce and SDP
// refused by its signature (exact counts), no link and no data, the victim linking to the
// real member once the attack stops; REKEY lines made by a native admin and by a page are
// taken by both engines and natives, and the room moves to the new tag after the grace
// period; a native peer, a Chromium page and a Firefox page converge on
// writes made on all three (a large value among them, fragmented); a value past the
// maximum is a clear error on the page; a late native peer receives everything, and a
// JavaScript scuttlebutt Model attached to it over TCP syncs with the pages; a page
// closing is reported as left by the native peer and the other page within 6 s, so is
// a foreign-style page (it pings, no incarnation) closing without a goodbye, and one that
// never pings within 15 s, and a
// native process killed by the remaining page within 6 s, and a native peer whose
// network path is cut (nftables, as root) by every other peer and it by them; a
// Chromium page and a Firefox page alone sync through each other; a screenshot of the
// demo page with three peers, its table checked through the DOM. Exit code 0 on
// success, 1 with a message otherwise. (Speed is bench-browser.js's.)

const fs = require('fs')
const os = require('os')
const path = require('path')
const { launch, isolateNetwork } = require('./browsers')
const { env, option, setRtcMesh, fail, sleep, Native, openPage, meshedOn, serve } = require('./harness')
const { Hostile } = require('./hostile')
const opt = option(process.argv.slice(2))

const RTC_MESH = opt('--rtc-mesh')
const SHOTS = opt('--shots', fs.mkdtempSync(path.join(os.tmpdir(), 'rtc-mesh-shots-')))
if (!RTC_MESH) {
  console.error('usage: node browser-mesh.js --rtc-mesh PATH [--shots DIR]')
  process.exit(2)
}
setRtcMesh(RTC_MESH)

// Key order aside (pages and natives both list keys in byte order), deep equality.
function same (a, b) {
  return JSON.stringify(a) === JSON.stringify(b)
}

// A foreign-style client in a page, as another WebRTC client's page would be: raw
// RTCPeerConnection, scuttlebutt JSON lines, a PING each second on every channel, and an
// announce without `incarnation` or `codecs`. It answers the offers of the room's peers
// (each has a higher id) and, when closed, says no goodbye.
async function openForeignPage (browser, room, id, opts) {
  const ping = !(opts && opts.ping === false)
  const page = await browser.newPage()
  page.onConsole(function (m) {
    if (m.type === 'error' || m.type === 'pageerror') console.error(`[${browser.engine} ${id}] ${m.text}`)
  })
  await page.goto(`${env.base}health`)
  await page.evaluate(function (cfg) {
    const enc = function (v) { return JSON.stringify(v).replace(/\|/g, '\\u007c') }
    const pcs = new Map()
    const ws = new WebSocket(cfg.signal)
    window.foreign = { linked: [] }
    ws.onopen = function () {
      ws.send(`/announce|${cfg.id}|` + enc({ id: cfg.id, room: cfg.room, agent: 'foreign/1' }))
    }
    ws.onmessage = async function (e) {
      let parts = String(e.data).split('|')
      if (parts[0] === '/to') {
        if (parts[1] !== cfg.id) return
        parts = parts.slice(2)
      }
      const cmd = parts[0]
      const from = parts[1]
      const arg = parts[2]
      if (cmd === '/mesh:sdp') {
        const d = JSON.parse(arg)
        if (d.type !== 'offer') return
        const pc = new RTCPeerConnection()
        pcs.set(from, pc)
        pc.onicecandidate = function (c) {
          if (c.candidate) ws.send(`/to|${from}|/mesh:candidate|${cfg.id}|` + enc(c.candidate.toJSON()))
        }
        pc.ondatachannel = function (ev) {
          const dc = ev.channel
          dc.onopen = function () {
            dc.send(JSON.stringify({ id: cfg.id, clock: {} }) + '\n')
            dc.send('"SYNC"\n')
            window.foreign.linked.push(from)
            if (cfg.ping) setInterval(function () { if (dc.readyState === 'open') dc.send('"PING"\n') }, 1000)
          }
          dc.onmessage = function (m) {
            if (typeof m.data === 'string' && m.data.includes('"PING"')) dc.send('"PONG"\n')
          }
        }
        await pc.setRemoteDescription({ type: 'offer', sdp: d.sdp })
        await pc.setLocalDescription(await pc.createAnswer())
        ws.send(`/to|${from}|/mesh:sdp|${cfg.id}|` + enc({ type: 'answer', sdp: pc.localDescription.sdp }))
      } else if (cmd === '/mesh:candidate' && pcs.has(from)) {
        try { await pcs.get(from).addIceCandidate(JSON.parse(arg)) } catch (_) {}
      }
    }
  }, { signal: env.signal, room, id, ping })
  return page
}

async function converge (natives, pages, nKeys, ms) {
  const deadline = Date.now() + ms
  let last = ''
  while (Date.now() < deadline) {
    const snaps = []
    for (const n of natives) snaps.push(await n.dump())
    for (const p of pages) snaps.push(await p.evaluate(function () { return window.member.snapshot() }))
    if (Object.keys(snaps[0]).length === nKeys && snaps.every(function (s) { return same(s, snaps[0]) })) return snaps[0]
    last = snaps.map(function (s) { return Object.keys(s).join(',') }).join(' | ')
    await sleep(100)
  }
  fail(`no convergence on ${nKeys} keys in ${ms} ms: ${last}`)
}

// The secured-room crypto in a page of `browser`'s engine: core's vectors
// (core/tests/vectors/security.json) byte for byte, and every C2SP/CCTV Ed25519 edge
// case with the decision core makes (accepted exactly when the only flags are low-order
// components). Returns the passphrase stretch's time in the page.
async function securityInPage (browser) {
  const root = path.join(__dirname, '..', '..', '..', 'core', 'tests', 'vectors')
  const vectors = JSON.parse(fs.readFileSync(path.join(root, 'security.json'), 'utf8'))
  const cctv = JSON.parse(fs.readFileSync(path.join(root, 'cctv', 'ed25519vectors.json'), 'utf8'))
  // The bitmap and the rule's decision, as the Node test computes them.
  const cctvSrc = fs.readFileSync(path.join(__dirname, '..', 'cctv.mjs'), 'utf8')
  const page = await browser.newPage()
  await page.goto(`${env.base}health`)
  const r = await page.evaluate(async function (arg) {
    const m = await import(arg.base + 'mesh.js')
    const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')
    const unhex = (s) => new Uint8Array(s.match(/../g).map((h) => parseInt(h, 16)))
    const bad = []
    let stretchMs = null
    for (const room of arg.vectors.rooms) {
      const t0 = performance.now()
      const k = await m.deriveRoomKey(room.room, room.secret)
      if (m.parseSecret(room.secret).kind === 'passphrase') stretchMs = Math.max(stretchMs || 0, performance.now() - t0)
      if (hex(k.roomId) !== room.room_id || k.tag !== room.tag) bad.push('room ' + room.room)
    }
    const k = await m.deriveRoomKey(arg.vectors.invite_key.room, arg.vectors.invite_key.secret)
    for (const v of arg.vectors.seals) {
      if (await m.seal(k, v.command, v.sender, v.target, v.plaintext, unhex(v.nonce)) !== v.sealed) bad.push('seal ' + v.command)
      if (new TextDecoder().decode(await m.open(k, v.sealed, v.command, v.sender, v.target)) !== v.plaintext) bad.push('open ' + v.command)
    }
    for (const v of arg.vectors.identities) {
      const me = await m.Identity.fromSeed(unhex(v.seed))
      if (me.peerId !== v.peer_id || await me.signText(v.message) !== v.signature) bad.push('identity ' + v.peer_id)
    }
    const i = arg.vectors.inputs
    if (hex(await m.signing.sdp(unhex(i.sdp.room_id), i.sdp.sender, i.sdp.target, i.sdp.incarnation, i.sdp.ts, i.sdp.kind, i.sdp.sdp)) !== i.sdp.input) bad.push('sdp input')
    const c = await import(URL.createObjectURL(new Blob([arg.cctvSrc], { type: 'text/javascript' })))
    const got = await c.cctvBitmap(arg.cctv, m)
    const want = c.expectedBitmap(arg.cctv)
    got.forEach(function (ok, i) {
      if (ok !== want[i]) bad.push(`cctv ${i} ${JSON.stringify(arg.cctv[i].flags)}: ${ok}`)
    })
    return { bad, stretchMs, accepted: got.filter(Boolean).length }
  }, { base: env.base, vectors, cctv, cctvSrc })
  await page.close()
  if (r.bad.length) fail(`${browser.engine}: the secured-room crypto differs from core's: ${r.bad.slice(0, 10).join('; ')}`)
  return r
}

// A fresh room secret, as `rtc-mesh invite` prints it.
function invite (room) {
  const r = require('child_process').spawnSync(env.rtcMesh, ['invite', room, '--json'], { encoding: 'utf8' })
  if (r.status !== 0) fail(`rtc-mesh invite: ${r.stderr}`)
  return JSON.parse(r.stdout).secret
}

// Our client in a blank page of the switchboard, joined to `room` with `secret`.
async function securedClient (browser, room, secret, name) {
  const page = await browser.newPage()
  page.onConsole(function (m) {
    if (m.type === 'error' || m.type === 'pageerror') console.error(`[${browser.engine} ${name}] ${m.text}`)
  })
  await page.goto(`${env.base}health`)
  await page.evaluate(async function (cfg) {
    const m = await import(cfg.base + 'mesh.js')
    window.member = await m.join(cfg.room, { signal: cfg.signal, secret: cfg.secret })
  }, { base: env.base, signal: env.signal, room, secret })
  return page
}

async function securedRoom (chromium, firefox) {
  const secret = invite('vault')
  // One wrong secret each (two pages sharing one would be a room of their own).
  const wrong = [invite('vault'), invite('vault')]
  const native = new Native('vault', 'snative', null,
    [env.rtcMesh, ['join', 'vault', '--signal', env.signal, '--secret', secret, '--json', '--bind', '127.0.0.1:0']])
  const ready = await native.wait('ready', (e) => e.event === 'ready', 10000)
  // The wrong secrets first: had they met anyone, the room would show it below.
  const wc = await securedClient(chromium, 'vault', wrong[0], 'wrong-chromium')
  const wf = await securedClient(firefox, 'vault', wrong[1], 'wrong-firefox')
  const pc = await chromium.newPage()
  await pc.goto(`${env.base}?room=vault#secret=${secret}`)
  const pf = await securedClient(firefox, 'vault', secret, 'sfirefox')
  await meshedOn(pc, 2, 20000)
  await meshedOn(pf, 2, 20000)
  await native.wait('synced_all with both pages', (e) => e.event === 'synced_all' && e.peers.length === 2, 20000)
  const ids = [ready.id]
  for (const p of [pc, pf]) ids.push(await p.evaluate(function () { return window.member.id }))
  if (!ids.every(function (id) { return /^[A-Za-z0-9_-]{43}$/.test(id) })) fail(`secured ids are not keys: ${ids}`)
  const shown = await pc.evaluate(function () { return document.getElementById('secured').textContent })
  if (!shown.includes('secured room')) fail(`the demo page does not say the room is secured: ${shown}`)
  native.send({ op: 'set', key: 's-native', value: 1 })
  await pc.evaluate(function () { window.member.set('s-chromium', 2) })
  await pf.evaluate(function () { window.member.set('s-firefox', 3) })
  await converge([native], [pc, pf], 3, 20000)
  // Every update is signed by its writer and was checked by each receiver: the pages
  // hold the three with 64-byte signatures and refused none, and so does the native.
  for (const p of [pc, pf]) {
    const r = await p.evaluate(function () {
      const m = window.member
      const sigs = ['s-native', 's-chromium', 's-firefox'].map(function (k) { const e = m.mesh.store.entries.get(k); return e && e.sig ? e.sig.length : 0 })
      return { sigs, refused: m.stats.updatesBadSignature + m.stats.updatesUnsigned + m.stats.updatesBadSource + m.stats.updatesNotOwner }
    })
    if (r.sigs.some(function (n) { return n !== 64 }) || r.refused !== 0) fail(`signed updates in a secured page: ${JSON.stringify(r)}`)
  }
  const nk = native.events.length
  native.send({ op: 'stats' })
  const nst = await native.wait('stats', (e) => e.event === 'stats' && native.events.indexOf(e) >= nk, 10000)
  if (nst.store.applied < 2 || nst.store.unsigned + nst.store.bad_signatures + nst.store.bad_sources + nst.store.not_owner !== 0) {
    fail(`the native's store in the secured room: ${JSON.stringify(nst.store)}`)
  }
  // The wrong secrets: no peer, no data; their announces never opened for anyone.
  for (const [name, p] of [['chromium', wc], ['firefox', wf]]) {
    const r = await p.evaluate(function () {
      return { peers: window.member.peerList().length, keys: Object.keys(window.member.snapshot()).length }
    })
    if (r.peers !== 0 || r.keys !== 0) fail(`a ${name} page with the wrong secret met ${r.peers} peers and got ${r.keys} keys`)
  }
  for (const p of [pc, pf]) {
    const n = await p.evaluate(function () { return window.member.peerList().length })
    if (n !== 2) fail(`a secured page has ${n} peers, not 2`)
  }
  console.log('secured room: a native, a Chromium demo page (#secret=) and a Firefox page converged on 3 keys, ids are keys, ' +
    'every update signed by its writer and checked by the others (WebCrypto and dalek), none refused; ' +
    'a Chromium and a Firefox page with another secret met nobody and got nothing')
  native.send({ op: 'close' })
  await native.wait('closed', (e) => e.event === 'closed', 10000)
  for (const p of [pc, pf, wc, wf]) await p.close()
}

// The victim of a man-in-the-middle: a native `rtc-mesh join`, or our client in a page
// of `browser`, joined to `room` through the hostile switchboard at `signal`, as `id`
// (open) or with `secret` and the identity of `seed` (secured). Answers what the tests
// ask of it the same way for both kinds.
async function victim (browser, room, signal, opts) {
  if (!browser) {
    const args = ['join', room, '--signal', signal, '--json', '--bind', '127.0.0.1:0']
    if (opts.secret) args.push('--secret', opts.secret, '--identity', opts.identityFile)
    else args.push('--id', opts.id)
    const n = new Native(room, `victim-${room}`, null, [env.rtcMesh, args])
    await n.wait('ready', (e) => e.event === 'ready', 10000)
    return {
      name: 'native',
      syncedWith: async (peer) => {
        await n.wait(`synced_all with ${peer}`, (e) => e.event === 'synced_all' && e.peers.length === 1 && e.peers[0] === peer, 20000)
      },
      peers: async () => (await n.peers()).map((p) => ({ id: p.peer, linked: p.state === 'synced' || p.state === 'connected' })),
      keys: async () => Object.keys(await n.dump()).sort(),
      stats: async () => {
        const k = n.events.length
        n.send({ op: 'stats' })
        const e = await n.wait('stats', (e) => e.event === 'stats' && n.events.indexOf(e) >= k, 10000)
        return { bad: e.mesh.bad_signatures, unseal: e.mesh.unseal_failures, unsecured: e.mesh.unsecured_signals, stale: e.mesh.stale_signals }
      },
      close: () => n.close()
    }
  }
  const page = await browser.newPage()
  page.onConsole(function (m) {
    if (m.type === 'error' || m.type === 'pageerror') console.error(`[${browser.engine} victim] ${m.text}`)
  })
  await page.goto(`${env.base}health`)
  await page.evaluate(async function (cfg) {
    const m = await import(cfg.base + 'mesh.js')
    const o = { signal: cfg.signal }
    if (cfg.secret) {
      o.secret = cfg.secret
      o.identity = await m.Identity.fromSeed(new Uint8Array(cfg.seed))
    } else o.id = cfg.id
    window.member = await m.join(cfg.room, o)
  }, { base: env.base, signal, room, id: opts.id, secret: opts.secret, seed: opts.seed && Array.from(opts.seed) })
  return {
    name: browser.engine,
    syncedWith: async (peer) => {
      await meshedOn(page, 1, 20000)
      const id = await page.evaluate(function () { return window.member.peerList()[0].id })
      if (id !== peer) fail(`the ${browser.engine} victim linked to ${id}, not ${peer}`)
    },
    peers: () => page.evaluate(function () {
      return window.member.peerList().map(function (p) { return { id: p.id, linked: p.state === 'open' } })
    }),
    keys: () => page.evaluate(function () { return Object.keys(window.member.snapshot()).sort() }),
    stats: () => page.evaluate(function () {
      const s = window.member.stats
      return { bad: s.badSignatures, unseal: s.unsealFailures, unsecured: s.unsecuredSignals, stale: s.staleSignals }
    }),
    close: () => page.close()
  }
}

// `rtc-mesh join` as B or M of a man-in-the-middle test.
function member (room, id, opts) {
  const args = ['join', room, '--signal', env.signal, '--json', '--bind', '127.0.0.1:0']
  if (opts && opts.secret) args.push('--secret', opts.secret, '--identity', opts.identityFile)
  else args.push('--id', id)
  return new Native(room, id, null, [env.rtcMesh, args])
}

// The room's peers as M or B lists them: id -> state.
async function states (n) {
  const out = {}
  for (const p of await n.peers()) out[p.peer] = p.state
  return out
}

// A switchboard that puts M in B's place for the victim (hostile.js). Open room: the
// victim links to M taking it for B. Secured room: every forged announce and SDP fails
// its signature, no link and no data reach the victim, and once the attack stops the
// victim links to the real B.
async function manInTheMiddle (chromium, firefox) {
  const sec = await import('../../lib/security.js')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtc-mesh-mitm-'))
  // Three identities whose ids sort b < a < m: M offers to the victim (the forged SDP
  // reaches it), and the victim offers to B once B is let through.
  const ids = []
  for (let k = 1; k <= 3; k++) {
    const seed = new Uint8Array(32).fill(k)
    const file = path.join(dir, `id${k}`)
    fs.writeFileSync(file, `rm1id_${sec.b64url(seed)}\n`, { mode: 0o600 })
    ids.push({ seed, file, id: (await sec.Identity.fromSeed(seed)).peerId })
  }
  ids.sort(function (x, y) { return x.id < y.id ? -1 : 1 })
  const [kb, ka, km] = ids
  const lines = []
  for (const [kind, browser] of [['native', null], ['chromium', chromium], ['firefox', firefox]]) {
    // Open: bob and mallory sort after alice, so both offer to her.
    {
      const room = `mitm-open-${kind}`
      const b = member(room, 'bob')
      const m = member(room, 'mallory')
      for (const n of [b, m]) await n.wait('synced_all', (e) => e.event === 'synced_all' && e.peers.length === 1, 20000)
      m.send({ op: 'set', key: 'from-mallory', value: 1 })
      b.send({ op: 'set', key: 'from-bob', value: 2 })
      const h = new Hostile({ upstream: env.signal, b: 'bob', m: 'mallory' })
      const v = await victim(browser, room, await h.start(), { id: 'alice' })
      await v.syncedWith('bob')
      // The victim's side may finish first: M's report of its sync is awaited, not raced.
      await m.wait('mallory synced with alice', (e) => e.event === 'synced' && e.peer === 'alice', 20000)
      const mm = await states(m)
      const bb = await states(b)
      if (mm.alice !== 'synced' || bb.alice === 'synced' || bb.alice === 'connected') {
        fail(`open room, ${kind} victim: mallory's links ${JSON.stringify(mm)}, bob's ${JSON.stringify(bb)}`)
      }
      const peers = await v.peers()
      if (peers.length !== 1 || peers[0].id !== 'bob' || !peers[0].linked || h.forged.sdp < 1) {
        fail(`open room, ${kind} victim: peers ${JSON.stringify(peers)}, forged ${JSON.stringify(h.forged)}`)
      }
      lines.push(`open room, ${kind} victim: linked to "bob" through the hostile switchboard; the DTLS end was mallory's (${h.forged.sdp} SDP with her fingerprint relabelled; mallory lists a link to alice, bob none)`)
      await v.close()
      await h.close()
      for (const n of [b, m]) await n.close()
    }
    // Secured: the switchboard holds the secret (run by a member) and re-seals.
    {
      const room = `mitm-secured-${kind}`
      const secret = invite(room)
      const key = await sec.deriveRoomKey(room, secret)
      const b = member(room, 'sbob', { secret, identityFile: kb.file })
      const m = member(room, 'smallory', { secret, identityFile: km.file })
      for (const [n, k] of [[b, kb], [m, km]]) {
        const r = await n.wait('ready', (e) => e.event === 'ready', 10000)
        if (r.id !== k.id) fail(`--identity: ${r.id} is not ${k.id}`)
      }
      for (const n of [b, m]) await n.wait('synced_all', (e) => e.event === 'synced_all' && e.peers.length === 1, 20000)
      m.send({ op: 'set', key: 'from-mallory', value: 1 })
      b.send({ op: 'set', key: 'from-bob', value: 2 })
      await b.wait('from-mallory', (e) => e.event === 'update' && e.key === 'from-mallory', 10000)
      const h = new Hostile({ upstream: env.signal, b: kb.id, m: km.id, key })
      const v = await victim(browser, room, await h.start(), { secret, seed: ka.seed, identityFile: ka.file })
      await h.forgedSdp
      const before = { peers: await v.peers(), keys: await v.keys() }
      if (before.peers.length || before.keys.length) fail(`secured room, ${kind} victim during the attack: ${JSON.stringify(before)}`)
      await h.release()
      await v.syncedWith(kb.id)
      const keys = await v.keys()
      if (JSON.stringify(keys) !== '["from-bob","from-mallory"]') fail(`secured room, ${kind} victim's keys: ${keys}`)
      const st = await v.stats()
      const want = h.forged.announce + h.forged.kept
      if (st.bad !== want || st.unseal || st.unsecured || st.stale) {
        fail(`secured room, ${kind} victim's counters ${JSON.stringify(st)}; forged ${JSON.stringify(h.forged)}`)
      }
      const mm = await states(m)
      if (mm[ka.id] === 'synced' || mm[ka.id] === 'connected') fail(`secured room: mallory linked to the ${kind} victim`)
      lines.push(`secured room, ${kind} victim: ${h.forged.announce} forged announce and ${h.forged.sdp} forged SDP (mallory's fingerprint, re-sealed as bob's) refused, bad_signatures ${st.bad} of ${want} checked, nothing else refused; no link, no data, then linked to the real bob once the attack stopped`)
      await v.close()
      await h.close()
      for (const n of [b, m]) await n.close()
    }
  }
  fs.rmSync(dir, { recursive: true, force: true })
  for (const l of lines) console.log(l)
}

// A member that forges (a Chromium page of the room, holding the secret, whose client
// is made to put crafted updates on its links): an update unsigned, one into another
// member's `users/` space, then 20 in the native's name signed with its own key. Each
// victim, the native and a Firefox page, refuses every one (exact counts), reports the
// forger misbehaving at the 16th refusal and closes its link (the rest unchecked); the
// forger is told why; nothing forged reaches a store, and the victims stay linked.
async function forgedUpdates (chromium, firefox) {
  const secret = invite('ledger')
  const native = new Native('ledger', 'lnative', null,
    [env.rtcMesh, ['join', 'ledger', '--signal', env.signal, '--secret', secret, '--json', '--bind', '127.0.0.1:0']])
  const nid = (await native.wait('ready', (e) => e.event === 'ready', 10000)).id
  const victim = await securedClient(firefox, 'ledger', secret, 'lfirefox')
  const forger = await securedClient(chromium, 'ledger', secret, 'lforger')
  for (const p of [victim, forger]) await meshedOn(p, 2, 20000)
  await native.wait('synced_all with both pages', (e) => e.event === 'synced_all' && e.peers.length === 2, 20000)
  native.send({ op: 'set', key: 'balance', value: 100 })
  await converge([native], [victim, forger], 1, 20000)
  const fid = await victim.evaluate(function () { return window.member.id })
  const mid = await forger.evaluate(async function (cfg) {
    const m = window.member
    window.toldBy = []
    m.on('refused_by_peer', function (e) { window.toldBy.push(e) })
    const mesh = m.mesh
    const store = mesh.store
    const nsource = store.entries.get('balance').source
    const now = Date.now()
    const crafted = []
    // Unsigned, in its own name.
    crafted.push({ key: 'free', value: 1, json: '1', ts: now + 1, source: store.id })
    // Into the Firefox member's space, validly signed by itself.
    const own = { key: `users/${cfg.fid}/name`, value: 'forged', json: '"forged"', ts: now + 2, source: store.id }
    own.sig = await store.guard.sign(own)
    crafted.push(own)
    // The native's name, its own signature.
    for (let i = 0; i < 20; i++) {
      const u = { key: 'balance', value: 1e6 + i, json: String(1e6 + i), ts: now + 10 + i, source: nsource }
      u.sig = await store.guard.sign(u)
      crafted.push(u)
    }
    for (const l of mesh.replica.links.values()) for (const u of crafted) l.session.out.update(u)
    m.pump()
    return m.id
  }, { fid })
  // The native: 1 unsigned, 1 not its space's owner's, 14 bad signatures, then closed.
  const mis = await native.wait('peer_misbehaved', (e) => e.event === 'peer_misbehaved', 20000)
  if (mis.peer !== mid || mis.reason !== 'bad_sig') fail(`the native reported ${JSON.stringify(mis)}`)
  const k = native.events.length
  native.send({ op: 'stats' })
  const st = (await native.wait('stats', (e) => e.event === 'stats' && native.events.indexOf(e) >= k, 10000)).store
  const want = { unsigned: 1, not_owner: 1, bad_signatures: 14, bad_sources: 0 }
  for (const [key, n] of Object.entries(want)) {
    if (st[key] !== n) fail(`the native's store counted ${key} ${st[key]}, not ${n}: ${JSON.stringify(st)}`)
  }
  // The Firefox page: the same.
  await victim.waitForFunction(function () { return window.member.stats.updatesBadSignature >= 14 }, { timeout: 20000 })
  const fst = await victim.evaluate(function () {
    const s = window.member.stats
    return { unsigned: s.updatesUnsigned, not_owner: s.updatesNotOwner, bad_signatures: s.updatesBadSignature, bad_sources: s.updatesBadSource }
  })
  if (JSON.stringify(fst) !== JSON.stringify(want)) fail(`the Firefox victim counted ${JSON.stringify(fst)}`)
  // Nothing forged landed; the victims still hold each other.
  for (const snap of [await native.dump(), await victim.evaluate(function () { return window.member.snapshot() })]) {
    if (JSON.stringify(snap) !== '{"balance":100}') fail(`a victim's store after the forgeries: ${JSON.stringify(snap)}`)
  }
  // The forger was told why by both.
  await forger.waitForFunction(function () { return window.toldBy.length >= 2 }, { timeout: 20000 })
  const told = await forger.evaluate(function () { return window.toldBy.map(function (e) { return `${e.peer} ${e.reason}` }).sort() })
  if (JSON.stringify(told) !== JSON.stringify([`${fid} bad_sig`, `${nid} bad_sig`].sort())) fail(`the forger was told ${told}`)
  native.send({ op: 'set', key: 'after', value: 1 })
  await victim.waitForFunction(function () { return window.member.get('after') === 1 }, { timeout: 20000 })
  console.log('a forging member (a Chromium page): its unsigned, not-owner and 20 forged updates were refused by the native and a Firefox page alike ' +
    '(1 unsigned, 1 not_owner, 14 bad_sig each, the rest unchecked), both closed its link at the 16th and told it why; nothing forged landed')
  native.send({ op: 'close' })
  await native.wait('closed', (e) => e.event === 'closed', 10000)
  for (const p of [victim, forger]) await p.close()
}

// Key epochs across engines: a native admin removes a native member; a Chromium and a
// Firefox page take the admin's REKEY line (epoch 1) and stay linked with it. Then the
// Chromium page, not an admin, makes epoch 2 (listing the removal, a 3 s grace period)
// and hands it to the native only: the native takes a line WebCrypto signed and relays
// it, the Firefox page takes it from the native and the Chromium page its own back
// from Firefox. After the grace period every member announces on the new tag and the
// room goes on: a write from each converges. The removed member never had a line.
async function keyEpochs (chromium, firefox) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtc-mesh-epochs-'))
  const fa = path.join(dir, 'admin.key')
  const inv = require('child_process').spawnSync(env.rtcMesh, ['invite', 'keep', '--json', '--admin-identity', fa], { encoding: 'utf8' })
  if (inv.status !== 0) fail(`rtc-mesh invite --admin-identity: ${inv.stderr}`)
  const secret = JSON.parse(inv.stdout).secret
  const joinArgs = ['join', 'keep', '--signal', env.signal, '--secret', secret, '--json', '--bind', '127.0.0.1:0']
  const admin = new Native('keep', 'kadmin', null, [env.rtcMesh, joinArgs.concat(['--identity', fa])])
  const aid = (await admin.wait('ready', (e) => e.event === 'ready', 10000)).id
  const gone = new Native('keep', 'kgone', null, [env.rtcMesh, joinArgs])
  const gid = (await gone.wait('ready', (e) => e.event === 'ready', 10000)).id
  const pc = await securedClient(chromium, 'keep', secret, 'kchromium')
  const pf = await securedClient(firefox, 'keep', secret, 'kfirefox')
  for (const p of [pc, pf]) await meshedOn(p, 3, 20000)
  await admin.wait('synced_all with three', (e) => e.event === 'synced_all' && e.peers.length === 3, 20000)
  for (const p of [pc, pf]) {
    await p.evaluate(function () {
      window.lines = []
      window.member.on('rekeyed', function (e) { window.lines.push(e) })
    })
  }
  const lines = async function (p) { return p.evaluate(function () { return window.lines }) }
  const state = async function (p) {
    return p.evaluate(function () {
      const m = window.member
      return { id: m.id, epoch: m.epoch, tag: m.tag, peers: m.peerList().length, rekeys: m.stats.rekeys, refused: m.stats.rekeysRefused }
    })
  }
  const oldTag = (await state(pc)).tag
  // Epoch 1: the native admin's.
  admin.send({ op: 'set', key: `room/revoked/${gid}`, value: { after: 0 } })
  const r1 = await admin.wait('rekeyed', (e) => e.event === 'rekeyed' && e.epoch === 1, 20000)
  if (r1.by !== aid) fail(`the native admin's rotation: ${JSON.stringify(r1)}`)
  for (const p of [pc, pf]) await p.waitForFunction(function () { return window.lines.length >= 1 }, { timeout: 20000 })
  const [lc, lf] = [await lines(pc), await lines(pf)]
  if (lc[0].epoch !== 1 || lc[0].by !== aid || lf[0].line !== lc[0].line) fail(`the pages took ${JSON.stringify([lc, lf])}`)
  for (const p of [pc, pf]) {
    await p.waitForFunction(function () { return window.member.peerList().length === 2 }, { timeout: 20000 })
    const st = await state(p)
    if (st.epoch !== 1 || st.tag !== oldTag) fail(`a page in epoch 1's grace period: ${JSON.stringify(st)}`)
  }
  // Epoch 2: a page's, handed to the native only.
  const cid = (await state(pc)).id
  await pc.evaluate(async function (cfg) {
    const m = await import(cfg.base + 'mesh.js')
    const member = window.member
    const sec = member.mesh.secured
    const r = await m.rotateRekey(sec.key, [cfg.gid], Date.now() + 3000, sec.identity)
    member.mesh.sessionOf(cfg.aid).sendControl(`REKEY ${m.rekeyJson(r)}`)
    member.pump()
  }, { base: env.base, gid, aid })
  const r2 = await admin.wait('rekeyed epoch 2', (e) => e.event === 'rekeyed' && e.epoch === 2, 20000)
  if (r2.by !== cid) fail(`the native took ${JSON.stringify(r2)}, not the Chromium page's line`)
  for (const p of [pc, pf]) await p.waitForFunction(function () { return window.member.epoch === 2 }, { timeout: 20000 })
  const [l2c, l2f] = [(await lines(pc)).pop(), (await lines(pf)).pop()]
  if (l2c.line !== l2f.line || l2c.by !== cid) fail(`epoch 2 in the pages: ${JSON.stringify([l2c, l2f])}`)
  // The grace period ends: a new tag, the same room.
  for (const p of [pc, pf]) await p.waitForFunction(function (old) { return window.member.tag !== old }, { timeout: 20000 }, oldTag)
  const [sc, sf] = [await state(pc), await state(pf)]
  if (sc.tag !== sf.tag || sc.refused + sf.refused !== 0) fail(`after the grace period: ${JSON.stringify([sc, sf])}`)
  admin.send({ op: 'set', key: 'e-native', value: 1 })
  await pc.evaluate(function () { window.member.set('e-chromium', 2) })
  await pf.evaluate(function () { window.member.set('e-firefox', 3) })
  // The three writes and the removal.
  await converge([admin], [pc, pf], 4, 20000)
  for (const p of [pc, pf]) await meshedOn(p, 2, 20000)
  if (gone.events.some(function (e) { return e.event === 'rekeyed' })) fail('the removed member took a line')
  console.log(`key epochs: a native admin's REKEY line taken by a Chromium and a Firefox page; a Chromium page's line (epoch 2) ` +
    `taken by the native and relayed to Firefox; after its 3 s grace period all three announce on the new tag ` +
    `(${sc.tag.slice(0, 6)}.. after ${oldTag.slice(0, 6)}..), stay linked and converge; the removed native never had a line`)
  for (const n of [admin, gone]) n.send({ op: 'close' })
  for (const n of [admin, gone]) await n.wait('closed', (e) => e.event === 'closed', 10000)
  for (const p of [pc, pf]) await p.close()
  fs.rmSync(dir, { recursive: true, force: true })
}

// A durable page (`data: true`: IndexedDB) in each engine, `power` in Chromium and
// `process` in Firefox, beside a native peer: its acknowledged writes and the native's
// are there at once after a reload, before any peer, and the room sends only what
// changed while it was away (1% of the keys: counted in updates and bytes against the
// first sync); a second member on the same database is refused (`busy`); after the
// native peer has left, a reload still shows all the data with no peer at all, and a
// newcomer gets everything from the page.
async function durablePages (chromium, firefox) {
  for (const [b, durability] of [[chromium, 'power'], [firefox, 'process']]) {
    const room = `ledger-${b.engine}`
    const id = `d${b.engine}`
    const native = new Native(room, `n${b.engine}`)
    await native.wait('ready', (e) => e.event === 'ready', 10000)
    const page = await b.newPage()
    page.onConsole(function (m) {
      if (m.type === 'error' || m.type === 'pageerror') console.error(`[${b.engine} ${id}] ${m.text}`)
    })
    await page.goto(`${env.base}health`)
    const start = function () {
      return page.evaluate(async function (cfg) {
        const m = await import(cfg.base + 'mesh.js')
        const t0 = performance.now()
        window.member = await m.join(cfg.room, { signal: cfg.signal, id: cfg.id, data: true, durability: cfg.durability })
        const ms = performance.now() - t0
        return { ms, snapshot: window.member.snapshot(), peers: window.member.peerList().length }
      }, { base: env.base, signal: env.signal, room, id, durability })
    }
    const first = await start()
    if (Object.keys(first.snapshot).length !== 0) fail(`${b.engine}: a new database holds ${Object.keys(first.snapshot).length} keys`)
    await meshedOn(page, 1, 20000)
    const pad = 'v'.repeat(200)
    const keys = []
    for (let i = 0; i < 500; i++) keys.push({ op: 'set', key: `n${String(i).padStart(3, '0')}`, value: { i, pad } })
    native.sendAll(keys)
    // The page's writes, each acknowledged (its promise resolved) once IndexedDB has it.
    await page.evaluate(async function (pad) {
      const all = []
      for (let i = 0; i < 100; i++) all.push(window.member.set(`p${String(i).padStart(3, '0')}`, { i, pad }))
      await Promise.all(all)
    }, pad)
    const before = await converge([native], [page], 600, 30000)
    const full = await page.evaluate(function (peer) { return window.member.mesh.sessionOf(peer).stats.bytesIn }, native.id)
    await page.reload()
    // While the page is away, 6 of the 600 keys change (1%).
    const changed = {}
    for (let i = 0; i < 6; i++) changed[`n${String(i * 50).padStart(3, '0')}`] = { i, changed: true, pad }
    native.sendAll(Object.entries(changed).map(function (kv) { return { op: 'set', key: kv[0], value: kv[1] } }))
    await native.wait('its last change', (e) => e.event === 'update' && e.key === 'n250' && e.local, 10000)
    const back = await start()
    if (back.peers !== 0 || !same(back.snapshot, before)) {
      fail(`${b.engine}: after a reload ${Object.keys(back.snapshot).length} of 600 keys before any peer (${back.peers} peers)`)
    }
    await meshedOn(page, 1, 20000)
    const after = Object.assign({}, before, changed)
    await converge([native], [page], 600, 20000)
    const rejoin = await page.evaluate(function (peer) { return window.member.mesh.sessionOf(peer).stats }, native.id)
    if (rejoin.updatesIn !== 6) fail(`${b.engine}: the rejoin brought ${rejoin.updatesIn} updates, not the 6 that changed`)
    if (!same(await native.dump(), after)) fail(`${b.engine}: the native store differs after the rejoin`)
    const busy = await page.evaluate(async function (cfg) {
      const m = await import(cfg.base + 'mesh.js')
      try {
        await m.join(cfg.room, { signal: cfg.signal, id: 'other', data: true })
        return 'opened'
      } catch (e) {
        return `${e.code}: ${e.message}`
      }
    }, { base: env.base, signal: env.signal, room })
    if (!/^busy: .*rtc-mesh:ledger/.test(busy)) fail(`${b.engine}: a second member on the database: ${busy}`)
    console.log(`${b.engine} durable page (${durability}): 600 keys back ${back.ms.toFixed(0)} ms after a reload, before any peer; ` +
      `the rejoin after 1% changed: ${rejoin.updatesIn} updates, ${rejoin.bytesIn} bytes against a first sync's ${full} ` +
      `(${(100 * rejoin.bytesIn / full).toFixed(2)}%); a second member refused: ${busy}`)
    if (rejoin.bytesIn > full * 0.02) fail(`${b.engine}: the rejoin took ${rejoin.bytesIn} bytes, more than 2% of ${full}`)
    // The native peer leaves: the page, reloaded, still shows everything, alone.
    await native.close()
    await page.reload()
    const alone = await start()
    if (alone.peers !== 0 || !same(alone.snapshot, after)) fail(`${b.engine}: alone after a reload, ${Object.keys(alone.snapshot).length} of 600 keys`)
    await page.evaluate(function () { return window.member.set('after-reload', 1) })
    const newcomer = new Native(room, `m${b.engine}`)
    await newcomer.wait('ready', (e) => e.event === 'ready', 10000)
    await converge([newcomer], [page], 601, 30000)
    console.log(`${b.engine}: with no peer left, a reload shows all 600 keys; a newcomer got all 601 from the page`)
    await page.evaluate(function () { return window.member.close() })
    await newcomer.close()
    await page.close()
  }
  // The demo page with `?data`: alone, a reload still draws its table.
  const demo = await openPage(chromium, 'ledger-demo', 'demo', 'data')
  await demo.waitForFunction(function () { return !!window.member }, { timeout: 10000 })
  await demo.evaluate(function () { return window.member.set('kept', 'across reloads') })
  await demo.reload()
  await demo.waitForFunction(function () {
    return !!document.querySelector('#rows tr[data-key="kept"]') && window.member.peerList().length === 0
  }, { timeout: 10000 })
  await demo.evaluate(function () { return window.member.close() })
  await demo.close()
  console.log('the demo page with ?data draws its table after a reload, alone')
}

async function testMode (chromium, firefox) {
  // 0. The secured-room crypto is core's in both engines.
  for (const b of [chromium, firefox]) {
    const r = await securityInPage(b)
    console.log(`${b.engine}: security vectors match core; ${r.accepted} of 914 CCTV Ed25519 edge cases accepted, ` +
      `as core; passphrase stretch (PBKDF2, 600,000 rounds) ${r.stretchMs.toFixed(0)} ms`)
  }

  // 0b. A secured room: a native peer, a Chromium demo page (the secret in its URL's
  // fragment) and a Firefox page meet and converge; a page of each engine with another
  // secret, in the same room name, meets nobody and gets nothing.
  await securedRoom(chromium, firefox)

  // 0c. A hostile switchboard showing the attacker in a member's place: it succeeds in an
  // open room and fails in a secured one, for a native, a Chromium and a Firefox victim.
  await manInTheMiddle(chromium, firefox)

  // 0d. A member that forges updates: refused alike by a native and a Firefox page.
  await forgedUpdates(chromium, firefox)

  // 0e. Key epochs across engines: lines made by a native and by a page, taken by both.
  await keyEpochs(chromium, firefox)

  // 0f. Durable pages: a reload keeps the data in both engines.
  await durablePages(chromium, firefox)

  // 1. A native peer, a Chromium page and a Firefox page.
  const native = new Native('trio', 'native')
  await native.wait('ready', (e) => e.event === 'ready', 10000)
  const pc = await openPage(chromium, 'trio', 'pchromium')
  const pf = await openPage(firefox, 'trio', 'pfirefox')
  await meshedOn(pc, 2, 20000)
  await meshedOn(pf, 2, 20000)
  await native.wait('synced_all with both pages', (e) => e.event === 'synced_all' && e.peers.length === 2, 20000)
  console.log('trio meshed: native, chromium, firefox')
  // Every link of the trio speaks postcard: each side lists it.
  const codecs = {}
  for (const [name, p] of [['pchromium', pc], ['pfirefox', pf]]) {
    for (const l of await p.evaluate(function () { return window.member.peerList().map(function (p) { return [p.id, p.codec] }) })) codecs[`${name}-${l[0]}`] = l[1]
  }
  for (const l of await native.peers()) codecs[`native-${l.peer}`] = l.codec
  if (Object.keys(codecs).length !== 6 || !Object.values(codecs).every(function (c) { return c === 'postcard' })) fail(`codecs of the trio: ${JSON.stringify(codecs)}`)
  console.log('every link of the trio speaks postcard')
  // Each page says which path each of its links uses: host to host, on loopback.
  const paths = {}
  for (const [name, p] of [['pchromium', pc], ['pfirefox', pf]]) {
    await p.waitForFunction(function () { return window.member.peerList().every(function (q) { return q.path }) }, null, { timeout: 10000 })
    for (const q of await p.evaluate(function () { return window.member.peerList().map(function (q) { return [q.id, q.path] }) })) paths[`${name}-${q[0]}`] = q[1]
  }
  const hostToHost = Object.values(paths).every(function (x) { return x.local.type === 'host' && x.remote.type !== 'relay' && /^(127\.0\.0\.1|\[::1\]):/.test(x.local.addr) })
  if (Object.keys(paths).length !== 4 || !hostToHost) fail(`paths of the pages: ${JSON.stringify(paths)}`)
  console.log(`each page reports its links' paths: ${Object.entries(paths).map(function (e) { return `${e[0]} ${e[1].local.type} ${e[1].local.addr} -> ${e[1].remote.type} ${e[1].remote.addr}` }).join('; ')}`)

  // N-1 messages per write across engines: three writes, each received exactly twice.
  // Updates received per (receiver, sender) link.
  const received = async function () {
    const per = {}
    for (const [name, p] of [['pchromium', pc], ['pfirefox', pf]]) {
      const links = await p.evaluate(function () {
        return window.member.peerList().map(function (p) { return [p.id, p.stats ? p.stats.updatesIn : 0] })
      })
      for (const [from, n] of links) per[`${from}->${name}`] = n
    }
    const before = native.events.length
    native.send({ op: 'peers' })
    const e = await native.wait('peers', (e) => e.event === 'peers' && native.events.indexOf(e) >= before, 10000)
    for (const p of e.peers) per[`${p.peer}->native`] = p.updates_in
    return per
  }
  // Link reports are batched (each peer's timer): first every page link's remote must
  // have said it hears both others directly.
  for (const p of [pc, pf]) {
    await p.waitForFunction(function () {
      const links = Array.from(window.member.replica.links.values())
      return links.length === 2 && links.every(function (l) { return l.reaches.size === 2 })
    }, { timeout: 10000 })
  }
  const r0 = await received()
  native.send({ op: 'set', key: 'w-native', value: 1 })
  await pc.evaluate(function () { window.member.set('w-chromium', 2) })
  await pf.evaluate(function () { window.member.set('w-firefox', 3) })
  await converge([native], [pc, pf], 3, 20000)
  const r1 = await received()
  const delta = {}
  let messages = 0
  for (const k of Object.keys(r1)) {
    delta[k] = r1[k] - (r0[k] || 0)
    messages += delta[k]
  }
  if (messages !== 6) fail(`3 writes in a full mesh of 3 cost ${messages} messages, not 6: ${JSON.stringify(delta)}`)
  console.log('3 writes in the mixed full mesh of 3 cost 6 messages (N-1 each)')
  for (const k of ['w-native', 'w-chromium', 'w-firefox']) native.send({ op: 'delete', key: k })
  await converge([native], [pc, pf], 0, 20000)

  native.send({ op: 'set', key: 'from-native', value: { n: 1 } })
  await pc.evaluate(function () { window.member.set('from-chromium', ['c', 2]) })
  await pf.evaluate(function () { window.member.set('from-firefox', 'f\u00e9\ud83d\ude00') })
  // A value far larger than a data channel message: it travels in pieces.
  await pc.evaluate(function () { window.member.set('large', 'x'.repeat(300000) + '\u00e9') })
  // Past the maximum: a clear error, nothing written.
  const err = await pf.evaluate(function () {
    try { window.member.set('too-large', 'y'.repeat(2 << 20)); return null } catch (e) { return e.code + ': ' + e.message }
  })
  if (!err || !err.startsWith('value_too_large')) fail(`an oversize value was not refused: ${err}`)
  // A delete from a page.
  await pf.evaluate(function () { window.member.set('gone', 1); window.member.delete('gone') })
  const data = await converge([native], [pc, pf], 4, 20000)
  if (data.large.length !== 300001) fail('the large value arrived damaged')
  console.log('trio converged on 4 keys (one of 300 KB); the oversize value was refused: ' + err)


  // The page's own controls: a key set through the form, then deleted with its button.
  await pc.evaluate(function () {
    document.getElementById('key').value = 'from-form'
    document.getElementById('value').value = '{"typed":true}'
    document.querySelector('#edit button[type=submit]').click()
  })
  await native.wait('the form write', (e) => e.event === 'update' && e.key === 'from-form' && !e.deleted, 10000)
  await pc.waitForFunction(function () { return !!document.querySelector('#rows tr[data-key="from-form"] button:last-child') }, { timeout: 5000 })
  await pc.evaluate(function () { document.querySelector('#rows tr[data-key="from-form"] button:last-child').click() })
  await native.wait('the delete button', (e) => e.event === 'update' && e.key === 'from-form' && e.deleted, 10000)
  console.log('the page form set a key and its delete button deleted it, seen by the native peer')

  // The demo page with three peers (itself and two), checked through the DOM, in both
  // engines: the table, the peers, and the graph of the room (a node per peer, our links
  // coloured by state with their round trip and traffic on hover, the links our peers
  // report dashed); then a screenshot of each.
  const lost = native.events.filter(function (e) { return e.event === 'peer_leave' })
  if (lost.length) fail(`the trio lost links before its DOM check: ${JSON.stringify(lost)}`)
  for (const [engine, page, me] of [['chromium', pc, 'pchromium'], ['firefox', pf, 'pfirefox']]) {
    const other = me === 'pchromium' ? 'pfirefox' : 'pchromium'
    await page.waitForFunction(function (a) {
      const reported = document.querySelector(`#graph line.reported[data-link="${['native', a.other].sort().join('|')}"]`)
      return document.querySelectorAll('#rows tr').length === 4 &&
        document.querySelectorAll('#peers tbody tr').length === 2 &&
        document.querySelectorAll('#graph circle[data-peer]').length === 3 && !!reported
    }, { timeout: 10000 }, { other })
    const dom = await page.evaluate(function (me) {
      const link = document.querySelector(`#graph line[data-link="${me}|native"]`)
      link.dispatchEvent(new MouseEvent('mouseenter'))
      return {
        keys: Array.from(document.querySelectorAll('#rows tr td.key')).map(function (td) { return td.textContent }),
        count: document.getElementById('key-count').textContent,
        peers: Array.from(document.querySelectorAll('#peers tbody tr')).map(function (tr) { return tr.textContent }),
        native: document.querySelector('#rows tr[data-key="from-native"] td.value').textContent,
        linkClass: link.getAttribute('class'),
        linkTitle: link.querySelector('title').textContent,
        info: document.getElementById('graph-info').textContent
      }
    }, me)
    if (!same(dom.keys, ['from-chromium', 'from-firefox', 'from-native', 'large'])) fail(`${engine} table keys: ${dom.keys}`)
    if (dom.count !== '4 keys') fail(`${engine} key count: ${dom.count}`)
    if (dom.native !== '{"n":1}') fail(`${engine} table value: ${dom.native}`)
    if (!dom.peers.every(function (t) { return t.includes('open, synced') })) fail(`${engine} peers: ${dom.peers}`)
    if (dom.linkClass !== 'open synced' || !/round trip \d+(\.\d)? ms/.test(dom.linkTitle) || !dom.linkTitle.includes('postcard') ||
      !/in \d+ updates, [\d.]+ kB; out \d+ updates/.test(dom.linkTitle) || dom.info !== dom.linkTitle) {
      fail(`${engine} graph link to native: ${JSON.stringify(dom)}`)
    }
    const shot = path.join(SHOTS, `demo-page-three-peers-${engine}.png`)
    await page.screenshot(shot)
    console.log(`${engine} demo page: table ${dom.keys.join(', ')}; ${dom.peers.length} peers; graph link to native: ${dom.linkTitle.split('\n').join('; ')}; screenshot: ${shot}`)
  }

  // 2. A native peer that joins late receives everything.
  const late = new Native('trio', 'late', ['--listen', '127.0.0.1:0'])
  const tcp = (await late.wait('ready', (e) => e.event === 'ready', 10000)).tcp
  await late.wait('synced_all with all three', (e) => e.event === 'synced_all' && e.peers.length === 3, 20000)
  if (!same(await late.dump(), data)) fail('the late native peer did not receive everything')
  console.log('late native peer received all 4 keys')

  // 2b. A JavaScript scuttlebutt Model over TCP to that native peer syncs with the pages.
  const model = new Native('trio', 'js-model', null, ['node', [
    path.join(__dirname, '..', '..', '..', 'interop', 'scuttlebutt-peer.js'), '--connect', tcp, '--id', 'js-model'
  ]])
  await model.wait('ready', (e) => e.event === 'ready', 10000)
  await model.wait('from-chromium', (e) => e.event === 'update' && e.key === 'from-chromium', 10000)
  model.send({ op: 'set', key: 'from-js', value: { model: 'scuttlebutt' } })
  await pc.waitForFunction(function () {
    const v = window.member.get('from-js')
    return !!v && v.model === 'scuttlebutt'
  }, { timeout: 10000 })
  await pc.evaluate(function () { window.member.set('to-js', 'from the page') })
  await model.wait('to-js', (e) => e.event === 'update' && e.key === 'to-js' && e.value === 'from the page', 10000)
  console.log('a scuttlebutt Model over TCP to a native peer synced with the Chromium page both ways')
  await model.close()
  await late.close()

  // 2c. A foreign-style page (it pings, but announces no incarnation) links with the
  // native peer and the Chromium page, then closes without a goodbye: both report it
  // left within 6 s (before, natives held such a peer until ICE gave up, 23 s).
  const foreign = await openForeignPage(chromium, 'trio', 'foreign')
  await native.wait('peer_join of foreign', (e) => e.event === 'peer_join' && e.peer === 'foreign', 10000)
  await foreign.waitForFunction(function () {
    return window.foreign.linked.includes('native') && window.foreign.linked.includes('pchromium')
  }, { timeout: 10000 })
  // Pings have been heard on both links (so each side holds it to the liveness rule).
  await pc.waitForFunction(function () {
    const p = window.member.peerList().find(function (p) { return p.id === 'foreign' })
    return !!p && !!p.stats && p.stats.pingsIn > 0
  }, { timeout: 10000 })
  await native.until('a ping from foreign', async function () {
    const peers = await native.peers()
    return peers.some(function (p) { return p.peer === 'foreign' && p.pings_in > 0 })
  }, 10000)
  const tf = Date.now()
  await foreign.close()
  await Promise.all([
    native.wait('peer_leave of foreign', (e) => e.event === 'peer_leave' && e.peer === 'foreign' && e.at >= tf, 6000),
    pc.waitForFunction(function () {
      return !window.member.peerList().some(function (p) { return p.id === 'foreign' })
    }, { timeout: 6000 })
  ])
  const fl = native.events.find((e) => e.event === 'peer_leave' && e.peer === 'foreign')
  console.log(`foreign-style page closed: native reported it left (${fl.reason}) after ${fl.at - tf} ms; ` +
    `the chromium page within ${Date.now() - tf} ms`)

  // 2c'. A foreign-style page that never pings (a plain WebRTC peer) is watched by ICE:
  // closed without a goodbye, it is reported left within 15 s by the native peer (no
  // datagram for 10 s) and by both pages (ICE `disconnected` for 2 s).
  const quiet = await openForeignPage(chromium, 'trio', 'fquiet', { ping: false })
  await native.wait('peer_join of fquiet', (e) => e.event === 'peer_join' && e.peer === 'fquiet', 10000)
  await quiet.waitForFunction(function () {
    return ['native', 'pchromium', 'pfirefox'].every(function (p) { return window.foreign.linked.includes(p) })
  }, { timeout: 10000 })
  const tq = Date.now()
  await quiet.close()
  const goneFrom = function (page) {
    return page.waitForFunction(function () {
      return !window.member.peerList().some(function (p) { return p.id === 'fquiet' })
    }, { timeout: 15000 }).then(() => Date.now() - tq)
  }
  const [ql, qc, qf] = await Promise.all([
    native.wait('peer_leave of fquiet', (e) => e.event === 'peer_leave' && e.peer === 'fquiet' && e.at >= tq, 15000),
    goneFrom(pc),
    goneFrom(pf)
  ])
  console.log(`never-pinging page closed: native reported it left (${ql.reason}) after ${ql.at - tq} ms; ` +
    `the chromium page after ${qc} ms, the firefox page after ${qf} ms`)

  // 2d. A native peer's network path is cut (nftables drops its UDP in this network
  // namespace): both pages and the other native peer each report it left within 9 s
  // (2 s quiet, a restart that cannot succeed, its 4 s), and it reports them left.
  if (!ISOLATED) fail('the cut-path step needs root: a network namespace of its own, with nftables')
  const cut = new Native('trio', 'cut')
  const cutAddr = (await cut.wait('ready', (e) => e.event === 'ready', 10000)).addr
  await cut.wait('synced_all with three', (e) => e.event === 'synced_all' && e.peers.length === 3, 20000)
  await meshedOn(pc, 3, 20000)
  const port = cutAddr.split(':').pop()
  const cutPath = function () {
    nft(['add', 'table', 'inet', 'rtcmeshcut'])
    // On input, as a path that loses datagrams out there: a drop on output would fail
    // the senders' own sends (EPERM), which no real path does.
    nft(['add', 'chain', 'inet', 'rtcmeshcut', 'in', '{ type filter hook input priority 0 ; }'])
    nft(['add', 'rule', 'inet', 'rtcmeshcut', 'in', 'udp', 'sport', port, 'drop'])
    nft(['add', 'rule', 'inet', 'rtcmeshcut', 'in', 'udp', 'dport', port, 'drop'])
  }
  const restarts = function (page) {
    return page.evaluate(function () { return window.member.stats })
  }

  // 2c'. The path is cut for 3 s, then heals: every link to the cut peer is restarted
  // over signalling (the pages' too) and nobody reports a leave.
  const tb = Date.now()
  cutPath()
  await sleep(3000)
  nft(['delete', 'table', 'inet', 'rtcmeshcut'])
  cut.send({ op: 'set', key: 'after-brief-cut', value: 1 })
  for (const [name, page] of [['chromium', pc], ['firefox', pf]]) {
    try {
      await page.waitForFunction(function () {
        return window.member.get('after-brief-cut') === 1 && window.member.stats.restartsRecovered >= 1
      }, { timeout: 9000 })
    } catch (e) {
      const state = await page.evaluate(function () {
        return {
          value: window.member.get('after-brief-cut'),
          stats: window.member.stats,
          peers: window.member.peerList().map(function (p) { return [p.id, p.link && p.link.state] })
        }
      })
      const seen = [native, cut].flatMap((n) => n.events.filter((e) => e.at >= tb && e.event !== 'update'))
      fail(`after a 3 s cut, the ${name} page: ${JSON.stringify(state)}; natives saw ${JSON.stringify(seen)}: ${e}`)
    }
  }
  await native.wait('after-brief-cut', (e) => e.event === 'update' && e.key === 'after-brief-cut', 9000)
  const healed = Date.now() - tb
  const [sc, sf] = [await restarts(pc), await restarts(pf)]
  const briefLeaves = [native, cut].flatMap((n) => n.events.filter((e) => e.event === 'peer_leave' && e.at >= tb))
  if (briefLeaves.length) fail(`a 3 s cut made leaves: ${JSON.stringify(briefLeaves)}`)
  for (const page of [pc, pf]) {
    if (await page.evaluate(function () { return window.member.peerList().length }) !== 3) fail('a page lost a peer in a 3 s cut')
  }
  console.log(`network path of a native peer cut for 3 s: every link restarted, no leave, data through ${healed} ms ` +
    `after the cut began (chromium page ${JSON.stringify(sc)}, firefox page ${JSON.stringify(sf)})`)

  cutPath()
  const tc = Date.now()
  try {
    const cutGone = function (page) {
      return page.waitForFunction(function () {
        return !window.member.peerList().some(function (p) { return p.id === 'cut' })
      }, { timeout: 9000 })
    }
    // (Every peer first tries an ICE restart, as signalling still works: about 6 s.)
    await Promise.all([
      cutGone(pc),
      cutGone(pf),
      native.wait('peer_leave of cut', (e) => e.event === 'peer_leave' && e.peer === 'cut' && e.at >= tc, 9000),
      cut.wait('peer_leave of pchromium', (e) => e.event === 'peer_leave' && e.peer === 'pchromium' && e.at >= tc, 9000),
      cut.wait('peer_leave of native', (e) => e.event === 'peer_leave' && e.peer === 'native' && e.at >= tc, 9000),
      cut.wait('peer_leave of pfirefox', (e) => e.event === 'peer_leave' && e.peer === 'pfirefox' && e.at >= tc, 9000)
    ])
  } finally {
    nft(['delete', 'table', 'inet', 'rtcmeshcut'])
  }
  const cl = native.events.find((e) => e.event === 'peer_leave' && e.peer === 'cut' && e.at >= tc)
  console.log(`network path of a native peer cut: the other native reported it left (${cl.reason}) after ` +
    `${cl.at - tc} ms; both pages and the cut peer itself within ${Date.now() - tc} ms`)
  await cut.close()

  // 3. The Firefox page closes: the native peer and the Chromium page each report it
  // left within 6 s.
  const t0 = Date.now()
  await pf.close()
  const gone = function (id) {
    return pc.waitForFunction(function (id) {
      return !window.member.peerList().some(function (p) { return p.id === id })
    }, { timeout: 6000 - (Date.now() - t0) }, id)
  }
  const [left] = await Promise.all([
    native.wait('peer_leave of pfirefox', (e) => e.event === 'peer_leave' && e.peer === 'pfirefox' && e.at >= t0, 6000),
    gone('pfirefox')
  ])
  console.log(`firefox page closed: native reported it left (${left.reason}) after ${left.at - t0} ms; ` +
    `the chromium page within ${Date.now() - t0} ms`)

  // 3b. The native process is killed (no goodbye): the Chromium page reports it left
  // within 6 s.
  const t1 = Date.now()
  native.proc.kill('SIGKILL')
  await native.exited
  await pc.waitForFunction(function () {
    return !window.member.peerList().some(function (p) { return p.id === 'native' })
  }, { timeout: 6000 - (Date.now() - t1) })
  console.log(`native peer killed: the chromium page reported it left after ${Date.now() - t1} ms`)
  await pc.close()

  // 4. A Chromium page and a Firefox page alone.
  const a = await openPage(chromium, 'pair', 'achromium')
  const b = await openPage(firefox, 'pair', 'bfirefox', 'codecs=json')
  const pair = await Promise.allSettled([meshedOn(a, 1, 20000), meshedOn(b, 1, 20000)])
  const why = pair.filter(function (r) { return r.status === 'rejected' }).map(function (r) { return r.reason.message })
  if (why.length) fail(why.join('\n'))
  await a.evaluate(function () { window.member.set('a', 1) })
  await b.evaluate(function () { window.member.set('b', 2) })
  await converge([], [a, b], 2, 10000)
  const pairCodec = await a.evaluate(function () { return window.member.peerList()[0].codec })
  if (pairCodec !== 'json') fail(`a page that speaks only json linked in ${pairCodec}`)
  console.log('chromium and firefox pages alone synced through each other (json: one of them lists only json)')
  // 4b. 100,000 keys: each page draws only the rows in view, filters, and scrolls to
  // the last key.
  await a.evaluate(function () {
    for (let i = 0; i < 100000; i++) window.member.set('k' + String(i).padStart(6, '0'), i)
  })
  for (const [engine, page] of [['chromium', a], ['firefox', b]]) {
    await page.waitForFunction(function () { return document.getElementById('key-count').textContent === '100002 keys' }, { timeout: 30000 })
    const rows = await page.evaluate(function () { return document.querySelectorAll('#rows tr').length })
    if (!(rows > 5 && rows < 60)) fail(`${engine}: ${rows} rows drawn for 100,000 keys`)
    const t0 = Date.now()
    await page.evaluate(function () {
      const f = document.getElementById('filter')
      f.value = 'k09999'
      f.dispatchEvent(new Event('input'))
    })
    await page.waitForFunction(function () {
      const keys = Array.from(document.querySelectorAll('#rows tr td.key')).map(function (td) { return td.textContent })
      return keys.length === 10 && keys[0] === 'k099990' && keys[9] === 'k099999' &&
        document.getElementById('key-count').textContent === '10 of 100002 keys'
    }, { timeout: 5000 })
    const filterMs = Date.now() - t0
    await page.evaluate(function () {
      const f = document.getElementById('filter')
      f.value = ''
      f.dispatchEvent(new Event('input'))
    })
    await page.waitForFunction(function () {
      const first = document.querySelector('#rows tr td.key')
      return !!first && first.textContent === 'a' && !!document.querySelector('#pad-bottom tr')
    }, { timeout: 5000 })
    await page.evaluate(function () {
      const box = document.getElementById('table-view')
      box.scrollTop = box.scrollHeight
    })
    await page.waitForFunction(function () {
      const keys = Array.from(document.querySelectorAll('#rows tr td.key')).map(function (td) { return td.textContent })
      return keys[keys.length - 1] === 'k099999' && keys.length < 60
    }, { timeout: 5000 })
    console.log(`${engine} page with 100,000 keys: ${rows} rows drawn; the filter narrowed it to 10 in ${filterMs} ms; scrolled to the last key`)
  }
  // 5. The Chromium page writes 2 MB and leaves at once: close() resolves once its
  // channel has sent everything; the Firefox page has it all and reports a goodbye.
  await b.evaluate(function () {
    window.leftWhy = new Promise(function (resolve) {
      window.member.on('peer_leave', function (e) { if (e.peer === 'achromium') resolve(e.reason) })
    })
  })
  const closeMs = await a.evaluate(async function () {
    const v = 'z'.repeat(1000)
    for (let i = 0; i < 2000; i++) window.member.set('bye' + i, v)
    const t = Date.now()
    await window.member.close()
    return Date.now() - t
  })
  const reason = await b.evaluate(function () { return window.leftWhy })
  const kept = await b.evaluate(function () { return window.member.keys().filter(function (k) { return k.startsWith('bye') }).length })
  if (reason !== 'left' || kept !== 2000) fail(`after close(): reason ${reason}, ${kept} of 2000 writes`)
  console.log(`a page's close() sent its last 2000 writes first (${closeMs} ms) and was reported left`)
  await a.close()
  await b.close()
}

// Runs `nft` (in this process's network namespace).
function nft (args) {
  const r = require('child_process').spawnSync('nft', args, { encoding: 'utf8' })
  if (r.status !== 0) fail(`nft ${args.join(' ')}: ${r.error || r.stderr}`)
}

let ISOLATED = false

async function main () {
  const isolated = await isolateNetwork()
  ISOLATED = isolated
  console.log(isolated ? 'in a network namespace of its own (loopback only)' : 'in the host network namespace')
  const server = await serve()
  // (The switchboard goes whatever fails, a browser's launch too: left running, it
  // would hold this program's output open and the test waiting for it.)
  let chromium = null
  let firefox = null
  try {
    chromium = await launch('chromium')
    firefox = await launch('firefox')
    // `--only mitm`: that step alone (while working on it).
    if (opt('--only') === 'mitm') await manInTheMiddle(chromium, firefox)
    else if (opt('--only') === 'forged') await forgedUpdates(chromium, firefox)
    else if (opt('--only') === 'epochs') await keyEpochs(chromium, firefox)
    else if (opt('--only') === 'durable') await durablePages(chromium, firefox)
    else await testMode(chromium, firefox)
  } finally {
    if (chromium) await chromium.close()
    if (firefox) await firefox.close()
    server.kill()
  }
}

main().then(function () {
  console.log('ok')
  process.exit(0)
}, function (e) {
  console.error('FAILED: ' + (e && e.stack || e))
  process.exit(1)
})
