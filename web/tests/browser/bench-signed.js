'use strict'
// Signed updates in pages: a native `rtc-mesh join` writes N updates of ~30 bytes in a
// burst to a page of each engine, in a secured room (every update signed by the
// native, each checked by the page with WebCrypto before it is applied) and, in the same
// run, in an open room; then the page writes N back (each signed in the page). Timed
// from the first write until the other side has the last.
//
//   node bench-signed.js --rtc-mesh PATH [--updates N] [--engines chromium,firefox]
//
// Not a test: it prints figures and exits 0, or 1 when a transfer does not complete.

const { launch, isolateNetwork } = require('./browsers')
const { env, option, setRtcMesh, sleep, Native, meshedOn, serve } = require('./harness')
const opt = option(process.argv.slice(2))

const RTC_MESH = opt('--rtc-mesh')
const N = Number(opt('--updates', '10000'))
const ENGINES = opt('--engines', 'chromium,firefox').split(',')
if (!RTC_MESH || !(N > 0)) {
  console.error('usage: node bench-signed.js --rtc-mesh PATH [--updates N] [--engines chromium,firefox]')
  process.exit(2)
}
setRtcMesh(RTC_MESH)

function invite (room) {
  const r = require('child_process').spawnSync(env.rtcMesh, ['invite', room, '--json'], { encoding: 'utf8' })
  return JSON.parse(r.stdout).secret
}

async function page (browser, room, secret) {
  const p = await browser.newPage()
  await p.goto(`${env.base}health`)
  await p.evaluate(async function (cfg) {
    const m = await import(cfg.base + 'mesh.js')
    window.member = await m.join(cfg.room, cfg.secret ? { signal: cfg.signal, secret: cfg.secret } : { signal: cfg.signal, id: 'page' })
  }, { base: env.base, signal: env.signal, room, secret })
  return p
}

async function run (browser, secured) {
  const room = `bench-signed-${browser.engine}-${secured ? 's' : 'o'}`
  const secret = secured ? invite(room) : null
  const args = ['join', room, '--signal', env.signal, '--json', '--bind', '127.0.0.1:0']
  if (secured) args.push('--secret', secret)
  else args.push('--id', 'native')
  const native = new Native(room, 'native', null, [env.rtcMesh, args], { quietUpdates: true })
  await native.wait('ready', (e) => e.event === 'ready', 10000)
  const p = await page(browser, room, secret)
  await meshedOn(p, 1, 20000)
  // Native -> page.
  const last = `n-${N - 1}`
  const t0 = Date.now()
  const cmds = []
  for (let i = 0; i < N; i++) cmds.push({ op: 'set', key: `n-${i}`, value: { i, s: 'x'.repeat(16) } })
  native.sendAll(cmds)
  await p.waitForFunction(function (k) { return window.member.get(k) !== undefined }, { timeout: 120000, polling: 20 }, last)
  const inSecs = (Date.now() - t0) / 1000
  const refused = await p.evaluate(function () {
    const s = window.member.stats
    return s.updatesBadSignature + s.updatesUnsigned + s.updatesBadSource + s.updatesNotOwner
  })
  // Page -> native.
  const back = native.seen(`"p-${N - 1}"`)
  const t1 = Date.now()
  await p.evaluate(function (n) {
    for (let i = 0; i < n; i++) window.member.set(`p-${i}`, { i, s: 'x'.repeat(16) })
  }, N)
  const at = await Promise.race([back, sleep(120000).then(() => null)])
  if (at === null) throw new Error(`${browser.engine}: the page's writes did not arrive`)
  const outSecs = (at - t1) / 1000
  await p.close()
  await native.close()
  return { inRate: N / inSecs, outRate: N / outSecs, refused }
}

async function main () {
  await isolateNetwork()
  const server = await serve()
  try {
    console.log(`bench-signed: ${N} updates each way, native <-> page, secured (signed, checked) beside open`)
    for (const engine of ENGINES) {
      const browser = await launch(engine)
      try {
        const open = await run(browser, false)
        const sec = await run(browser, true)
        const f = (x) => Math.round(x).toLocaleString('en')
        console.log(`${engine.padEnd(9)} native -> page: ${f(sec.inRate)} verified updates/s (open room ${f(open.inRate)}/s); ` +
          `page -> native: ${f(sec.outRate)} signed updates/s (open ${f(open.outRate)}/s); refused ${sec.refused}`)
      } finally {
        await browser.close()
      }
    }
  } finally {
    server.kill()
  }
}

main().then(function () { process.exit(0) }, function (e) {
  console.error('FAILED: ' + (e && e.stack || e))
  process.exit(1)
})
