'use strict'
// The real rtc-switchboard 3.2.0 (rtc-switch 1.3.0, ws 1.1.5) on 127.0.0.1, ephemeral port,
// for interop tests (see shared/reference/original-protocols.md §3.2).
//
//   node switchboard-server.js
//
// Prints {"event":"ready","port":N} on stdout once listening; clients connect to
// ws://127.0.0.1:N/ (any path; rtc-switchboard-messenger uses http://127.0.0.1:N/).
// Exits 0 when stdin ends. DEBUG=rtc-switchboard logs each frame sent (on stderr).
// Note: 3.2.0 sends nothing to the room when a socket closes (no /leave), and an
// old-format one-part /announce or a binary frame crashes it (exits non-zero).

const http = require('http')

const server = http.createServer()
require('rtc-switchboard')(server)

server.on('error', function (err) {
  process.stdout.write(JSON.stringify({ event: 'error', message: err.message }) + '\n')
  process.exit(1)
})

server.listen(0, '127.0.0.1', function () {
  process.stdout.write(JSON.stringify({ event: 'ready', port: server.address().port }) + '\n')
})

process.stdin.on('data', function () {})
process.stdin.on('end', function () { process.exit(0) })
