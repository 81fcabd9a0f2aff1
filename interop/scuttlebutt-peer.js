'use strict'
// A real scuttlebutt 5.6.15 Model replicating over TCP with scuttlebutt's own JSON-lines
// wire format (`s = model.createStream(); s.pipe(sock).pipe(s)`), driven by the same line
// protocol as `rtc-mesh replicate --json`, so tests can put it on either end of a link.
//
// Usage:
//   node scuttlebutt-peer.js (--listen HOST:PORT | --connect HOST:PORT) [--id ID] [--trace]
//                            [--secret S --room ROOM [--seed HEX]]
//
//   --listen HOST:PORT   accept any number of links (port 0 picks a free port)
//   --connect HOST:PORT  open one link; `ready` is printed once it is established
//   --id ID              the Model's id (default: scuttlebutt's own random id)
//   --trace              log every wire chunk to stderr (`> ` sent, `< ` received)
//   --secret S --room R  a signed Model (web/examples/scuttlebutt-ed25519.mjs): its writes
//                        signed, every update checked as rtc-mesh's secured rooms do
//   --seed HEX           its identity's 32-byte seed (default: a fresh one)
//
// stdin, one JSON object per line:
//   {"op":"set","key":K,"value":V}   (V null = delete: model.set(K, null))
//   {"op":"delete","key":K}          (= set null)
//   {"op":"get","key":K}             -> value
//   {"op":"dump"}                    -> dump
//   {"op":"connect","addr":"HOST:PORT"}  open one more link
//   {"op":"forge","key":K,"value":V,"source":S}  put an update in S's name, signed by us,
//                                    straight on every link (a hostile peer; signed Model)
//   {"op":"stats"}                   -> stats {unverified: updates the plugin refused}
//   {"op":"close"}                   (end of stdin does the same)
// stdout, one JSON object per line:
//   {"event":"ready","id":ID,"addr":"127.0.0.1:PORT"}
//   {"event":"update","key":K,"value":V,"deleted":B,"source":S,"ts":T,"local":B}
//   {"event":"synced","peer":REMOTE_ID}
//   {"event":"value","key":K,"value":V}      (null when absent)
//   {"event":"dump","data":{...}}            (model.toJSON(): null values left out)
//   {"event":"error","code":C,"message":M}   (bad input line, link trouble; the program goes on)
//   {"event":"closed"}                       then exit 0
// Failing to listen or connect at start: message on stderr, exit 1. Bad arguments: exit 2.

const net = require('net')
const readline = require('readline')
const Model = require('scuttlebutt/model')

function usage (msg) {
  if (msg) process.stderr.write('scuttlebutt-peer: ' + msg + '\n')
  process.stderr.write('usage: node scuttlebutt-peer.js (--listen HOST:PORT | --connect HOST:PORT) [--id ID] [--trace]\n')
  process.exit(2)
}

function parseAddr (s) {
  if (typeof s !== 'string') return null
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s)
  if (!m) return null
  const port = Number(m[3])
  if (port > 65535) return null
  return { host: m[1] || m[2], port }
}

function fmtAddr (host, port) {
  return (host.indexOf(':') >= 0 ? '[' + host + ']' : host) + ':' + port
}

// ---- arguments
let listen = null
let connect = null
let id = null
let trace = false
let secret = null
let room = null
let seed = null
{
  const argv = process.argv.slice(2)
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const val = () => {
      if (i + 1 >= argv.length) usage(a + ' needs a value')
      return argv[++i]
    }
    if (a === '--listen') listen = val()
    else if (a === '--connect') connect = val()
    else if (a === '--id') id = val()
    else if (a === '--trace') trace = true
    else if (a === '--secret') secret = val()
    else if (a === '--room') room = val()
    else if (a === '--seed') seed = val()
    else if (a === '--help' || a === '-h') usage()
    else usage('unexpected argument ' + JSON.stringify(a))
  }
  if ((listen === null) === (connect === null)) usage('needs exactly one of --listen or --connect')
  if (id !== null && (id === '' || id === '__proto__')) usage('invalid id ' + JSON.stringify(id))
}
const target = parseAddr(listen !== null ? listen : connect)
if (!target) usage('invalid address ' + JSON.stringify(listen !== null ? listen : connect) + ' (expected HOST:PORT)')

// ---- output
process.stdout.on('error', function () { process.exit(0) }) // reader went away
function out (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}
function outError (code, message) {
  out({ event: 'error', code, message: String(message) })
}

// ---- the model (a signed one is made asynchronously: see the end of the file)
function main (model, options) {
let unverified = 0
model.on('unverified_data', function () { unverified++ })

model.on('update', function (kv, ts, source) {
  const key = kv[0]
  const value = kv[1]
  const deleted = value === null || value === undefined
  out({
    event: 'update',
    key: String(key),
    value: deleted ? null : value,
    deleted,
    source,
    ts,
    local: source === model.id
  })
})
model.on('invalid', function (err) { outError('bad_key', err && err.message) })

// A malformed update from a peer (e.g. `[null,1,"P"]`) throws out of scuttlebutt's stream.write;
// report it and keep running instead of dying in the middle of a test.
process.on('uncaughtException', function (err) {
  outError('exception', err && err.stack ? err.stack.split('\n')[0] : err)
})

// ---- links
const links = new Set()
let server = null
let closing = false

function attach (sock, label) {
  const link = { sock, stream: null, peer: null, label }
  links.add(link)
  sock.setNoDelay(true)
  const s = model.createStream()
  link.stream = s
  s.on('header', function (digest) {
    link.peer = digest && digest.id !== undefined ? digest.id : null
  })
  s.on('sync', function () {
    out({ event: 'synced', peer: link.peer })
  })
  s.on('error', function (err) {
    // stream-serializer: a line that is not JSON; scuttlebutt: a digest without a clock.
    let msg = err && err.message ? err.message : 'protocol error (object without a clock)'
    if (err && err.line !== undefined) msg += ' (line ' + JSON.stringify(err.line) + ')'
    outError('link_error', label + ': ' + msg)
    sock.destroy()
  })
  if (trace) {
    s.on('data', function (chunk) { process.stderr.write('> ' + label + ' ' + JSON.stringify(chunk) + '\n') })
    sock.on('data', function (chunk) { process.stderr.write('< ' + label + ' ' + JSON.stringify(chunk.toString()) + '\n') })
  }
  sock.on('error', function (err) {
    if (!closing) outError('link_error', label + ': ' + err.message)
  })
  sock.on('close', function () {
    links.delete(link)
    if (trace) process.stderr.write('closed ' + label + '\n')
  })
  s.pipe(sock).pipe(s)
  return link
}

function openLink (addr, cb) {
  const sock = net.connect({ host: addr.host, port: addr.port })
  let connected = false
  sock.once('connect', function () {
    connected = true
    attach(sock, fmtAddr(addr.host, addr.port))
    cb(null)
  })
  sock.once('error', function (err) {
    if (!connected) cb(err)
  })
}

// ---- commands
function command (line) {
  if (line.trim() === '') return
  let o
  try {
    o = JSON.parse(line)
  } catch (err) {
    return outError('bad_json', err.message)
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) {
    return outError('bad_command', 'a command is a JSON object such as {"op":"get","key":"k"}')
  }
  if (typeof o.op !== 'string') return outError('bad_command', 'field "op" must be a string')
  const needKey = function () {
    if (typeof o.key !== 'string') {
      outError('bad_command', 'field "key" must be a string')
      return false
    }
    return true
  }
  switch (o.op) {
    case 'set':
      if (!needKey()) return
      if (!Object.prototype.hasOwnProperty.call(o, 'value')) {
        return outError('bad_command', 'field "value" must be present (null deletes)')
      }
      model.set(o.key, o.value)
      return
    case 'delete':
      if (!needKey()) return
      model.set(o.key, null)
      return
    case 'get': {
      if (!needKey()) return
      const v = model.get(o.key)
      out({ event: 'value', key: o.key, value: v === undefined ? null : v })
      return
    }
    case 'dump':
      out({ event: 'dump', data: model.toJSON() })
      return
    case 'connect': {
      const addr = parseAddr(o.addr)
      if (!addr) return outError(typeof o.addr === 'string' ? 'bad_address' : 'bad_command',
        typeof o.addr === 'string' ? 'invalid address ' + JSON.stringify(o.addr) + ' (expected HOST:PORT)'
          : 'field "addr" must be a string HOST:PORT')
      openLink(addr, function (err) {
        if (err) outError('connect_failed', 'cannot connect to ' + o.addr + ': ' + err.message)
      })
      return
    }
    case 'forge': {
      if (!needKey() || !options) return outError('bad_command', 'forge needs a key and a signed Model')
      const update = [[o.key, o.value], Date.now(), o.source]
      update[3] = options.sign(update)
      for (const l of links) l.sock.write(JSON.stringify(update) + '\n')
      return
    }
    case 'stats':
      out({ event: 'stats', unverified })
      return
    case 'close':
      close()
      return
    default:
      return outError('unknown_op', 'unknown op ' + JSON.stringify(o.op) +
        ' (expected set, delete, get, dump, connect or close)')
  }
}

// End every link (scuttlebutt stream end -> buffered lines flushed -> socket end), stop
// listening, wait for the sockets to close (at most 2 s), then report and exit.
function close () {
  if (closing) return
  closing = true
  rl.close()
  if (server) server.close()
  // s.end() drains what scuttlebutt still buffers, then its 'end' ends the socket (pipe).
  for (const link of links) link.stream.end()
  const deadline = setTimeout(function () {
    for (const link of links) link.sock.destroy()
    finish()
  }, 2000)
  const poll = setInterval(function () {
    if (links.size === 0) finish()
  }, 10)
  let done = false
  function finish () {
    if (done) return
    done = true
    clearTimeout(deadline)
    clearInterval(poll)
    process.stdout.write(JSON.stringify({ event: 'closed' }) + '\n', function () { process.exit(0) })
  }
}

// ---- start
let rl = null
function startInput () {
  rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false })
  rl.on('line', function (line) { if (!closing) command(line) })
  rl.on('close', close)
}

if (listen !== null) {
  server = net.createServer(function (sock) {
    if (closing) return sock.destroy()
    attach(sock, fmtAddr(sock.remoteAddress, sock.remotePort))
  })
  server.once('error', function (err) {
    process.stderr.write('scuttlebutt-peer: cannot listen on ' + listen + ': ' + err.message + '\n')
    process.exit(1)
  })
  server.listen(target.port, target.host, function () {
    const a = server.address()
    server.on('error', function (err) { outError('listen_error', err.message) })
    out({ event: 'ready', id: model.id, addr: fmtAddr(a.address, a.port) })
    startInput()
  })
} else {
  openLink(target, function (err) {
    if (err) {
      process.stderr.write('scuttlebutt-peer: cannot connect to ' + connect + ': ' + err.message + '\n')
      process.exit(1)
    }
    out({ event: 'ready', id: model.id, addr: fmtAddr(target.host, target.port) })
    startInput()
  })
}
}

if (secret === null) main(id !== null ? new Model(id) : new Model(), null)
else {
  if (room === null) usage('--secret needs --room')
  import('../web/examples/scuttlebutt-ed25519.mjs')
    .then(function (p) { return p.signedModelOptions({ room, secret, seed: seed && Buffer.from(seed, 'hex') }) })
    .then(function (o) { main(new Model(o), o) }, function (e) {
      process.stderr.write('scuttlebutt-peer: ' + (e && e.message) + '\n')
      process.exit(1)
    })
}
