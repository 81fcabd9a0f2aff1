'use strict'
// Launches the Debian-packaged browsers for end-to-end tests behind one small interface:
//   const b = await launch('chromium' | 'firefox')
//   const page = await b.newPage()
//   await page.goto(url); await page.evaluate(fnOrString, ...args)
//   await page.waitForFunction(fnOrString, { timeout }, ...args); await page.screenshot(file)
//   page.onConsole(function (m) { m.type, m.text }); await page.close(); await b.close()
// Chromium (/usr/bin/chromium) is driven by playwright-core over CDP, Firefox ESR
// (/usr/bin/firefox-esr) by puppeteer-core over WebDriver BiDi. Neither library downloads a
// browser. Both are set up so that WebRTC gathers plain loopback host candidates
// (127.0.0.1, no mDNS .local names) and so that they make no background network requests.
// Without a camera/microphone permission both browsers gather only the default route's
// address (Chromium additionally hides it behind an mDNS name), never 127.0.0.1; so every
// Chromium page gets that permission granted (all origins) and Firefox allows it by default.
// They still gather the other interfaces' addresses too: a test that must stay on loopback
// relays only the 127.0.0.1 candidates to the other side.
// Function arguments of evaluate/waitForFunction must be JSON-serialisable.
// Set BROWSERS_DEBUG=1 to see the browsers' own stdout/stderr.

const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
const FIREFOX_PATH = process.env.FIREFOX_PATH || '/usr/bin/firefox-esr'
const DEBUG = !!process.env.BROWSERS_DEBUG

// Chromium keeps only the LAST --disable-features switch, and playwright-core passes its own
// list before our args, so ours must repeat playwright-core 1.65.1's list (chromiumSwitches in
// its coreBundle.js) or those features would silently be re-enabled. Re-check on upgrade.
// (Disabling WebRtcHideLocalIpsWithMdns only matters where the media permission is missing:
// the default route's address is then shown as it is instead of as a .local name.)
const PLAYWRIGHT_DISABLED_FEATURES = [
  'AvoidUnnecessaryBeforeUnloadCheckSync', 'DestroyProfileOnBrowserClose', 'HttpsUpgrades',
  'HttpsFirstBalancedModeAutoEnable', 'LensOverlay', 'MediaRouter', 'PaintHolding',
  'ThirdPartyStoragePartitioning', 'AvoidCorsURLLoaderRestartOnRedirect',
  'TcpPortRandomizationWin', 'OptimizationHints', 'NetworkTimeServiceQuerying', 'AimEnabled',
  'PreconnectToSearch'
]
const CHROMIUM_DISABLED_FEATURES = ['WebRtcHideLocalIpsWithMdns'].concat(PLAYWRIGHT_DISABLED_FEATURES)

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--allow-loopback-in-peer-connection',
  '--disable-features=' + CHROMIUM_DISABLED_FEATURES.join(','),
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  // Still resolved accounts.google.com and update.googleapis.com within seconds of start-up
  // despite the switches above; point both at the closed discard port on loopback instead.
  '--gaia-url=http://127.0.0.1:9',
  '--component-updater=url-source=http://127.0.0.1:9/'
]

// Added to puppeteer's own test profile prefs (which already switch off updates, safe
// browsing, normandy, health reports, remote settings, sntp and search updates).
const FIREFOX_PREFS = {
  // WebRTC: gather plain host candidates including 127.0.0.1. Without a camera/microphone
  // permission Firefox gathers only the default route's address, hence the two defaults.
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.peerconnection.ice.no_host': false,
  'media.peerconnection.ice.default_address_only': false,
  'media.peerconnection.ice.proxy_only': false,
  'permissions.default.camera': 1,
  'permissions.default.microphone': 1,
  // No background network traffic. Remote settings otherwise poll
  // firefox.settings.services.mozilla.com (or puppeteer's dummy.test host) every few seconds.
  'services.settings.server': 'data:,#remote-settings-dummy/v1',
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.trr.mode': 5,
  'network.dns.disablePrefetch': true,
  'network.prefetch-next': false,
  'network.predictor.enabled': false,
  'network.http.speculative-parallel-limit': 0,
  'browser.safebrowsing.update.enabled': false,
  'browser.safebrowsing.provider.google4.updateURL': '',
  'browser.safebrowsing.provider.mozilla.updateURL': '',
  'browser.region.network.url': '',
  'browser.region.update.enabled': false,
  'browser.topsites.contile.enabled': false,
  'browser.newtabpage.activity-stream.feeds.topsites': false,
  'browser.ping-centre.telemetry': false,
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.unified': false,
  'toolkit.telemetry.server': '',
  'toolkit.telemetry.archive.enabled': false,
  'app.shield.optoutstudies.enabled': false,
  'messaging-system.rsexperimentloader.enabled': false,
  'extensions.systemAddon.update.enabled': false,
  'extensions.blocklist.enabled': false,
  'media.gmp-gmpopenh264.autoupdate': false,
  'media.gmp-widevinecdm.enabled': false,
  'dom.push.connection.enabled': false
}

// Source text for calling fn with JSON args, for APIs that take a single argument.
function callSource (fn, args) {
  return '(' + fn.toString() + ').apply(null, ' + JSON.stringify(args) + ')'
}

function withTimeout (promise, ms, what) {
  let timer
  return Promise.race([
    promise,
    new Promise(function (resolve, reject) {
      timer = setTimeout(function () { reject(new Error(what + ' timed out after ' + ms + ' ms')) }, ms)
    })
  ]).finally(function () { clearTimeout(timer) })
}

async function launchChromium (opts) {
  const { chromium } = require('playwright-core')
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS.concat(opts.args || []),
    logger: DEBUG ? { isEnabled: function () { return true }, log: function (n, s, m) { console.error('[chromium ' + n + ']', m) } } : undefined
  })
  return {
    engine: 'chromium',
    version: browser.version(),
    raw: browser,
    newPage: async function () {
      const context = await browser.newContext({ permissions: ['camera', 'microphone'] })
      const page = await context.newPage()
      return {
        raw: page,
        goto: async function (url) { await page.goto(url, { waitUntil: 'load' }) },
        reload: async function () { await page.reload({ waitUntil: 'load' }) },
        evaluate: function (fn, ...args) {
          if (typeof fn === 'string') return page.evaluate(fn)
          if (args.length <= 1) return page.evaluate(fn, args[0])
          return page.evaluate(callSource(fn, args))
        },
        waitForFunction: async function (fn, opts, ...args) {
          const o = { timeout: (opts && opts.timeout) || 30000, polling: (opts && opts.polling) || 50 }
          let h
          if (typeof fn === 'string' || args.length <= 1) h = await page.waitForFunction(fn, args[0], o)
          else h = await page.waitForFunction(callSource(fn, args), undefined, o)
          const v = await h.jsonValue()
          await h.dispose()
          return v
        },
        screenshot: async function (file) { await page.screenshot({ path: file }) },
        onConsole: function (cb) {
          // playwright says 'warning' where puppeteer (and the console method) says 'warn'
          page.on('console', function (m) { cb({ type: m.type() === 'warning' ? 'warn' : m.type(), text: m.text() }) })
          page.on('pageerror', function (e) { cb({ type: 'pageerror', text: String(e && e.stack || e) }) })
        },
        close: async function () { await context.close() }
      }
    },
    close: async function () { await withTimeout(browser.close(), 15000, 'chromium close') }
  }
}

async function launchFirefox (opts) {
  const puppeteer = require('puppeteer-core')
  const browser = await puppeteer.launch({
    browser: 'firefox',
    protocol: 'webDriverBiDi',
    executablePath: FIREFOX_PATH,
    headless: true,
    defaultViewport: { width: 1280, height: 720 }, // as playwright's default; puppeteer's is 800x600
    extraPrefsFirefox: Object.assign({}, FIREFOX_PREFS, opts.prefs),
    dumpio: DEBUG,
    // Release builds ignore services.settings.server unless this variable is set.
    env: Object.assign({}, process.env, { MOZ_CRASHREPORTER_DISABLE: '1', MOZ_REMOTE_SETTINGS_DEVTOOLS: '1' })
  })
  const proc = browser.process()
  return {
    engine: 'firefox',
    version: await browser.version(),
    raw: browser,
    newPage: async function () {
      const page = await browser.newPage()
      return {
        raw: page,
        goto: async function (url) { await page.goto(url, { waitUntil: 'load' }) },
        reload: async function () { await page.reload({ waitUntil: 'load' }) },
        evaluate: function (fn, ...args) { return page.evaluate(fn, ...args) },
        waitForFunction: async function (fn, opts, ...args) {
          const o = { timeout: (opts && opts.timeout) || 30000, polling: (opts && opts.polling) || 50 }
          const h = await page.waitForFunction(fn, o, ...args)
          const v = await h.jsonValue()
          await h.dispose()
          return v
        },
        screenshot: async function (file) { await page.screenshot({ path: file }) },
        onConsole: function (cb) {
          page.on('console', function (m) { cb({ type: m.type(), text: m.text() }) })
          page.on('pageerror', function (e) { cb({ type: 'pageerror', text: String(e && e.stack || e) }) })
        },
        close: async function () { await page.close() }
      }
    },
    close: async function () {
      try {
        await withTimeout(browser.close(), 15000, 'firefox close')
      } finally {
        // browser.close() normally waits for the process; make sure it is gone regardless.
        if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
      }
    }
  }
}

// Re-runs the calling script inside a new network namespace that has nothing but a loopback
// interface, so that the browsers gather only loopback candidates (on the host Chromium also
// gathers the other interfaces and may settle a connection on one of them, even when only
// 127.0.0.1 candidates were signalled) and nothing at all can leave the machine. Call it
// first thing in a top-level test script, before starting any server: everything the script
// starts shares the namespace. Needs root, unshare (util-linux) and ip (iproute2).
// Resolves to true when running isolated, to false when isolation is unavailable or
// BROWSERS_NETNS=0 (the caller goes on in the host namespace); in the original process it
// never resolves: that process waits for the re-run and exits with its status.
async function isolateNetwork () {
  if (process.env.BROWSERS_NETNS === 'inside') return true
  if (process.env.BROWSERS_NETNS === '0') return false
  if (process.platform !== 'linux' || !process.getuid || process.getuid() !== 0) return false
  const { spawn, spawnSync } = require('child_process')
  const probe = spawnSync('unshare', ['--net', 'ip', 'link', 'set', 'lo', 'up'], { stdio: 'ignore' })
  if (probe.status !== 0) return false
  const argv = [process.execPath].concat(process.execArgv, process.argv.slice(1))
  const child = spawn('unshare', ['--net', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh'].concat(argv), {
    stdio: 'inherit',
    env: Object.assign({}, process.env, { BROWSERS_NETNS: 'inside' })
  })
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, function () { child.kill(sig) })
  return new Promise(function () {
    child.on('exit', function (code, signal) { process.exit(code === null ? 128 + (require('os').constants.signals[signal] || 0) : code) })
  })
}

// opts.args: extra Chromium switches; opts.prefs: extra Firefox prefs.
async function launch (engine, opts) {
  if (engine === 'chromium') return launchChromium(opts || {})
  if (engine === 'firefox') return launchFirefox(opts || {})
  throw new Error('unknown engine ' + JSON.stringify(engine) + " (want 'chromium' or 'firefox')")
}

module.exports = { launch, isolateNetwork, CHROMIUM_ARGS, FIREFOX_PREFS }
