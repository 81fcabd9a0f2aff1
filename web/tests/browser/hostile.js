'use strict'
// A hostile switchboard for the man-in-the-middle tests: a WebSocket proxy in front of
// a real switchboard that shows each member connecting through it (the victim) the
// attacker M in the place of member B. Whatever B sends the victim is held back; whatever
// M sends it is relabelled as B's (and, knowing the room secret, re-sealed for the new
// sender: the switchboard is run by a member); whatever the victim sends B goes to M.
// The victim's negotiation "with B" is then one with M: the SDP it gets as B's carries
// M's DTLS fingerprint and ICE credentials.
//
// In an open room the attack succeeds: the victim links to M and takes it for B. In a
// secured room M cannot sign as B, so every forged announce and SDP fails its signature
// check; `release()` then ends the attack (B's held messages delivered, M's dropped) and
// the victim links to the real B, proving it was left healthy.
//
//   const h = new Hostile({ upstream: 'ws://127.0.0.1:PORT/', b, m, key })  // key: deriveRoomKey's, or null
//   const url = await h.start()   // the victim joins with this signalling URL
//   await h.forgedSdp             // the first SDP of M's delivered to a victim as B's
//   await h.release(); h.forged   // {announce, sdp, candidate, kept}; kept: forged SDPs among
//                                 // the first 64 negotiation messages (what a member keeps
//                                 // of a sender it has no announce from)
//   await h.close()
//
// The messages it rewrites are our clients' (no raw `|` inside JSON), so a split on `|`
// is exact for them.

const { WebSocketServer, WebSocket } = require('ws')

const MAX_EARLY = 64

class Hostile {
  constructor ({ upstream, b, m, key }) {
    this.upstream = upstream
    this.b = b
    this.m = m
    this.key = key || null
    this.released = false
    this.victims = []
    this.forged = { announce: 0, sdp: 0, candidate: 0, kept: 0, negotiation: 0 }
    this.forgedSdp = new Promise((resolve) => { this.sawSdp = resolve })
    this.sec = null
  }

  async start () {
    this.sec = await import('../../lib/security.js')
    this.server = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise((resolve) => this.server.once('listening', resolve))
    this.server.on('connection', (ws, req) => this.connect(ws, req.url))
    return `ws://127.0.0.1:${this.server.address().port}/`
  }

  connect (down, path) {
    const v = { down, up: new WebSocket(new URL(path, this.upstream).href), id: null, held: [], toDown: Promise.resolve(), toUp: Promise.resolve() }
    this.victims.push(v)
    const opened = new Promise((resolve) => v.up.once('open', resolve))
    const closeBoth = () => { down.close(); v.up.close() }
    down.on('close', closeBoth)
    v.up.on('close', closeBoth)
    v.up.on('error', closeBoth)
    down.on('message', (data) => {
      const text = String(data)
      v.toUp = v.toUp.then(async () => {
        const out = await this.fromVictim(v, text)
        await opened
        if (out !== null && v.up.readyState === WebSocket.OPEN) v.up.send(out)
      }).catch((e) => console.error('hostile switchboard (up):', e))
    })
    v.up.on('message', (data) => {
      const text = String(data)
      v.toDown = v.toDown.then(async () => {
        const out = await this.toVictim(v, text)
        if (out !== null && down.readyState === WebSocket.OPEN) down.send(out)
      }).catch((e) => console.error('hostile switchboard (down):', e))
    })
  }

  // The attack ends: B's held messages reach its victims, M's no longer do.
  async release () {
    this.released = true
    for (const v of this.victims) {
      const held = v.held.splice(0)
      v.toDown = v.toDown.then(() => {
        for (const t of held) if (v.down.readyState === WebSocket.OPEN) v.down.send(t)
      })
      await v.toDown
    }
  }

  async close () {
    for (const v of this.victims) { v.down.close(); v.up.close() }
    await new Promise((resolve) => this.server.close(resolve))
  }

  async fromVictim (v, text) {
    const s = split(text)
    if (s && s.sender && !v.id) v.id = s.sender
    if (!s || this.released || s.to !== this.b) return text
    return this.relabel(s, { to: this.m }, [s.command, s.sender, this.b], [s.command, s.sender, this.m])
  }

  async toVictim (v, text) {
    const s = split(text)
    if (!s) return text
    if (s.sender === this.b) {
      if (this.released) return text
      v.held.push(text)
      return null
    }
    if (s.sender !== this.m) return text
    if (this.released) return null
    const target = s.to || ''
    const out = await this.relabel(s, { sender: this.b }, [s.command, this.m, target], [s.command, this.b, target])
    if (s.command === 'announce') this.forged.announce++
    if (s.command === 'mesh:sdp' || s.command.startsWith('mesh:candidate')) {
      const sdp = s.command === 'mesh:sdp'
      if (sdp) this.forged.sdp++
      else this.forged.candidate++
      if (this.forged.negotiation++ < MAX_EARLY && sdp) this.forged.kept++
      if (sdp) this.sawSdp()
    }
    return out
  }

  // `s` with the routing changed as `change` says; a sealed payload opened for `from`
  // (command, sender, target) and sealed again for `to`; an announce's `id` follows.
  async relabel (s, change, from, to) {
    const r = Object.assign({}, s, change)
    if (r.body) {
      const o = JSON.parse(r.body)
      if (typeof o.sealed === 'string' && this.key) {
        const plain = await this.sec.open(this.key, o.sealed, from[0], from[1], from[2])
        o.sealed = await this.sec.seal(this.key, to[0], to[1], to[2], plain)
      }
      if (s.command === 'announce' && change.sender) o.id = change.sender
      r.body = JSON.stringify(o).replace(/\|/g, '\\u007c')
    }
    return (r.to ? `/to|${r.to}|` : '') + `/${r.command}|${r.sender}` + (r.body !== null ? `|${r.body}` : '')
  }
}

// `/[to|T|]/cmd|sender[|json]` of our clients, or null for anything else (`/roominfo`).
function split (text) {
  let parts = text.split('|')
  let to = null
  if (parts[0] === '/to') {
    to = parts[1]
    parts = parts.slice(2)
  }
  if (!parts[0] || !parts[0].startsWith('/') || parts.length < 2 || /^[[{]/.test(parts[1])) return null
  return { to, command: parts[0].slice(1), sender: parts[1], body: parts.length > 2 ? parts.slice(2).join('|') : null }
}

module.exports = { Hostile, MAX_EARLY }
