'use strict'
// A real rtc-signaller 6.3.0 client over rtc-switchboard-messenger 2.0.4, driven over stdio,
// for interop tests against rtc-mesh's signalling (6.x wire format, see
// shared/reference/original-protocols.md §2.5).
//
//   node signaller-client.js URL ID ROOM
//
// URL is the switchboard (e.g. http://127.0.0.1:PORT/), ID the signaller id, ROOM the room
// announced right away.
//
// stdout: one JSON object per line, one per event:
//   {"event":"roominfo","memberCount":N}                      message:roominfo (from the server)
//   {"event":"announce","id":ID,"attributes":{...}}            peer:announce (a new peer)
//   {"event":"message","command":C,"sender":S,"args":[...]}   any other message:<cmd>
//   {"event":"leave","id":ID,"reason":R}                       message:leave (R null if absent)
//   {"event":"dropped"}                                        after {"op":"drop"}, then exit 0
//   {"event":"error","message":M}                              errors (bad input, transport)
// stdin: one JSON command per line:
//   {"op":"to","target":T,"command":C,"args":[...]}   sig.to(T).send('/'+C, ...args)
//   {"op":"send","command":C,"args":[...]}            sig.send('/'+C, ...args)
//   {"op":"drop"}     terminate the WebSocket without a close frame or /leave, print dropped, exit 0
//   {"op":"leave"}    sig.leave() (sends /leave, then closes the socket cleanly; no reconnect)
//   {"op":"exit"}     exit 0 (as does end of stdin)
//
// Notes on 6.3.0's event arguments (rtc-signal@1.3.0 process.js): every message:<cmd> event
// is emitted as (...args, srcState, rawData) where args = message parts after the sender part
// (each run through cog/jsonparse, so "12" arrives as 12 and a string that looks like JSON
// arrives parsed) and srcState = the known peer object ({id, roleIdx, data}) or else the raw
// sender part. /roominfo has no sender part, so its {memberCount} object lands in the
// srcState slot and args is empty. mbus turns ':' in event names into '.', so the command
// name is taken from the raw message instead of the event name.

const path = require('path')
const readline = require('readline')

// rtc-core@4.3.0 detect.js reads `navigator` at load time (ReferenceError on Node 20).
// defineProperty rather than assignment so this also works where Node defines navigator.
Object.defineProperty(globalThis, 'navigator', { value: undefined, writable: true, configurable: true })

const [url, id, room] = process.argv.slice(2)
if (!url || !id || !room) {
  process.stderr.write('usage: node signaller-client.js URL ID ROOM\n')
  process.exit(2)
}

function out (o) {
  process.stdout.write(JSON.stringify(o) + '\n')
}
function fail (message) {
  out({ event: 'error', message: String(message) })
}
function exit (code) {
  // stdout is a pipe in tests: let pending writes drain before exiting
  process.stdout.write('', function () { process.exit(code) })
}

// Record every client WebSocket that messenger-ws creates (it calls addEventListener right
// after `new WebSocket(...)`), so {"op":"drop"} can terminate the live one. The ws module is
// resolved from messenger-ws so it is the same copy that messenger-ws uses.
const WebSocket = require(require.resolve('ws', { paths: [path.dirname(require.resolve('messenger-ws'))] }))
const sockets = new Set()
const addEventListener = WebSocket.prototype.addEventListener
WebSocket.prototype.addEventListener = function () {
  sockets.add(this)
  return addEventListener.apply(this, arguments)
}

// Wrap the messenger so that after a drop the signaller cannot reconnect (it retries 50 ms
// after a disconnect and would re-announce).
let dropped = false
const messenger = require('rtc-switchboard-messenger')(url)
function guardedMessenger (callback) {
  if (dropped) return
  messenger(function (err, source, sink) {
    if (dropped) return
    callback(err, source, sink)
  })
}

const sig = require('rtc-signaller')(guardedMessenger, { id })

function senderOf (srcState) {
  if (srcState && typeof srcState === 'object') return srcState.id === undefined ? null : srcState.id
  return srcState === undefined ? null : srcState
}

// command name from the raw message: "/cmd|..." or "/to|<myid>|/cmd|..."
function commandOf (raw) {
  let s = String(raw)
  const to = '/to|' + sig.id + '|'
  if (s.startsWith(to)) s = s.slice(to.length)
  const bar = s.indexOf('|')
  return (bar < 0 ? s : s.slice(0, bar)).slice(1)
}

sig.feed(function (evt) {
  if (!evt.name.startsWith('message.')) return
  const a = evt.args
  const raw = a[a.length - 1]
  const srcState = a[a.length - 2]
  const args = a.slice(0, -2)
  const command = commandOf(raw)
  if (command === 'roominfo') {
    const info = srcState && typeof srcState === 'object' ? srcState : {}
    out({ event: 'roominfo', memberCount: info.memberCount === undefined ? null : info.memberCount })
  } else if (command === 'leave') {
    const info = args[0] && typeof args[0] === 'object' ? args[0] : {}
    out({
      event: 'leave',
      id: info.id === undefined ? senderOf(srcState) : info.id,
      reason: info.reason === undefined ? null : info.reason
    })
  } else {
    out({ event: 'message', command, sender: senderOf(srcState), args })
  }
})

sig.on('peer:announce', function (data) {
  out({ event: 'announce', id: data.id, attributes: data })
})

sig.on('error', function (err) {
  fail(err && err.message ? err.message : err)
})

function drop () {
  dropped = true
  const live = Array.from(sockets).filter(function (s) { return s.readyState <= WebSocket.OPEN })
  for (const s of live) s.terminate()
  // ws@1.1.5 terminate(): ends the TCP connection (FIN) with no WebSocket close frame and
  // no /leave; the process exit right after closes the fd for good
  setTimeout(function () {
    out({ event: 'dropped' })
    exit(0)
  }, 20)
}

function handle (line) {
  if (!line.trim()) return
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (e) {
    return fail('bad json: ' + e.message)
  }
  if (!cmd || typeof cmd !== 'object') return fail('command must be an object')
  const args = cmd.args === undefined ? [] : cmd.args
  switch (cmd.op) {
    case 'to':
    case 'send':
      if (typeof cmd.command !== 'string' || !Array.isArray(args)) return fail('bad ' + cmd.op + ' command')
      if (cmd.op === 'to') {
        if (typeof cmd.target !== 'string') return fail('bad to target')
        sig.to(cmd.target).send('/' + cmd.command, ...args)
      } else {
        sig.send('/' + cmd.command, ...args)
      }
      return
    case 'drop':
      return drop()
    case 'leave':
      return sig.leave()
    case 'exit':
      return exit(0)
    default:
      return fail('unknown op: ' + cmd.op)
  }
}

process.on('uncaughtException', function (err) {
  fail(err && err.stack ? err.stack.split('\n')[0] : err)
  exit(1)
})

readline.createInterface({ input: process.stdin })
  .on('line', function (line) { if (!dropped) handle(line) })
  .on('close', function () { if (!dropped) exit(0) })

sig.announce({ room })
