//! The signalling server as a sans-IO state machine.
//!
//! A runtime accepts WebSocket connections and tells the [`Switchboard`] what happens
//! on them, each with `now` first: [`handle_open`](Switchboard::handle_open),
//! [`handle_text`](Switchboard::handle_text), [`handle_binary`](Switchboard::handle_binary),
//! [`handle_activity`](Switchboard::handle_activity) (a pong or any frame),
//! [`handle_close`](Switchboard::handle_close), and
//! [`handle_timeout`](Switchboard::handle_timeout) at the instant the last drain ended
//! with. It then drains [`poll_output`](Switchboard::poll_output): texts to send,
//! pings, connections to close, and last [`SwitchOutput::Timeout`].
//!
//! Rules (rtc-switchboard 3.2's, with its failures fixed):
//!
//! - Rooms by name. A connection's id is fixed by its first announce; a later message
//!   naming another sender is dropped (counted as spoofed). The attributes of an
//!   announce must carry the same `id` and a `room`.
//! - Announcing into a room leaves the previous one, which hears `/leave|<id>|{"id"}`.
//!   The announcer gets `/roominfo|{"memberCount":N}` before the announce is relayed,
//!   unchanged, to the rest of the room. An announce of an id already in the room
//!   replaces the old connection, which is closed silently (no `/leave`).
//! - `/to|<target>|...` goes, unchanged, only to a member of the sender's room. Any
//!   other command is relayed unchanged to the rest of the sender's room. A client's
//!   `/leave` is relayed and takes it out of the room. Nothing is delivered for a
//!   connection that has not announced.
//! - When a member's connection closes (or stops answering pings), the room hears
//!   `/leave|<id>|{"id":"<id>","reason":"disconnected"}`. Empty rooms are removed.
//! - With [`SwitchboardConfig::turn`], each connection gets `/mesh:ice|{..}` right
//!   after its `/roominfo` on its first announce: TURN servers and short-lived
//!   credentials for it ([`TurnOffer`]).
//! - The gate ([`gate`]): before the upgrade, a per-address connection limit and
//!   (with [`SwitchboardConfig::tokens`]) an HS256 token for one room; at the
//!   announce, proof that an announcer of a key-form id (a secured member's) holds the
//!   key.
//! - Limits ([`SwitchboardConfig`]): frame size, members per room, rooms, and a token
//!   bucket per connection. A binary frame, a malformed text or a breach is counted
//!   and dropped; repeated abuse closes the connection. Nothing stops the server.
//!
//! All of it is counted in [`Counters`], which runtimes serve as JSON at `/health`.

mod gate;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::signal::{Signal, SignalError, SignalLimits};
use crate::value::{Object, Value};

pub use gate::{key_form, Admission, Refusal, TokenGate, REFUSED_COMMAND};

/// A connection, numbered by the runtime (unique while open).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Limits and timers of a [`Switchboard`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SwitchboardConfig {
    /// Largest text frame handled, in bytes (default 64 KiB). Runtimes close a
    /// connection whose frame is far larger (four times this) at the WebSocket layer.
    pub max_frame: usize,
    /// Most members in one room (default 256).
    pub max_members: usize,
    /// Most rooms (default 10,000).
    pub max_rooms: usize,
    /// Most open connections; runtimes refuse more with `503` (default 65,536).
    pub max_connections: usize,
    /// Frames per second allowed per connection, on average (default 1,000).
    pub rate_per_sec: f64,
    /// Frames a connection may send at once (default 2,048: forming a mesh sends about
    /// 2N messages together).
    pub burst: f64,
    /// A connection that commits this many offences (bad frames, breaches), less one
    /// forgiven per second, is closed (default 64).
    pub max_strikes: f64,
    /// Idle time after which a connection is pinged (default 10 s).
    pub ping_after: Duration,
    /// Idle time after which a connection is closed as dead (default 30 s).
    pub dead_after: Duration,
    /// TURN servers to offer each connection, with short-lived credentials (default
    /// none).
    pub turn: Option<TurnOffer>,
    /// Admission tokens: with a gate, only connections presenting a valid token
    /// (`?token=` on the URL) are upgraded, and each may announce into its token's
    /// room only (default none: anyone may connect).
    pub tokens: Option<TokenGate>,
    /// Most connections open at once from one IP address (default 64); more are
    /// refused with `429` before the upgrade.
    pub max_per_ip: usize,
    /// Whether loopback addresses are held to [`max_per_ip`](Self::max_per_ip) too
    /// (default false, so that one host's programs and tests are not limited).
    pub limit_loopback: bool,
}

/// TURN servers the switchboard offers each member, with credentials of coturn's
/// `--use-auth-secret` scheme (the "TURN REST API"): username `EXPIRY:ID` (the Unix
/// time the credential expires, and the member's id), password
/// `base64(HMAC-SHA1(secret, username))`. So no static TURN password ships in a page.
///
/// A member gets them once per connection, right after its first announce and before
/// anything else of its room: `/mesh:ice|{"iceServers":[{"urls":[..],"username":..,
/// "credential":..}],"ttl":SECONDS}`, the `iceServers` as a browser's
/// `RTCConfiguration` takes them. Clients that were given no TURN server use them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TurnOffer {
    /// `turn:HOST:PORT` URLs (each as clients will use it).
    pub urls: Vec<String>,
    /// The secret shared with the TURN server (its `--static-auth-secret`).
    pub secret: String,
    /// How long a credential is valid (default 24 h).
    pub ttl: Duration,
    /// The wall clock, which a sans-IO switchboard cannot read: the Unix time in
    /// seconds at an instant.
    pub clock: (Instant, u64),
}

impl TurnOffer {
    /// An offer of `urls` signed with `secret`, valid 24 h; `unix_secs` is the Unix
    /// time at `now`.
    pub fn new(urls: Vec<String>, secret: String, now: Instant, unix_secs: u64) -> Self {
        TurnOffer {
            urls,
            secret,
            ttl: Duration::from_secs(24 * 3600),
            clock: (now, unix_secs),
        }
    }

    /// The `/mesh:ice` message for member `id` at `now`.
    pub fn message(&self, now: Instant, id: &str) -> Signal {
        let unix = self.clock.1 + now.saturating_duration_since(self.clock.0).as_secs();
        let username = format!("{}:{id}", unix + self.ttl.as_secs());
        let mut server = Object::new();
        let urls = self.urls.iter().map(|u| Value::from(u.as_str())).collect();
        server.insert("urls", Value::Array(urls));
        let password = turn_password(&self.secret, &username);
        server.insert("username", Value::from(username.as_str()));
        server.insert("credential", Value::from(password.as_str()));
        let mut o = Object::new();
        o.insert("iceServers", Value::Array(vec![Value::Object(server)]));
        o.insert("ttl", Value::from(self.ttl.as_secs() as f64));
        Signal {
            to: None,
            command: ICE_COMMAND.into(),
            sender: None,
            args: vec![o.into()],
        }
    }
}

/// The command of the switchboard's TURN offer (see [`TurnOffer`]).
pub const ICE_COMMAND: &str = "mesh:ice";

/// The password coturn's `--use-auth-secret` expects for `username`:
/// `base64(HMAC-SHA1(secret, username))`.
pub fn turn_password(secret: &str, username: &str) -> String {
    use base64::Engine as _;
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl Default for SwitchboardConfig {
    fn default() -> Self {
        SwitchboardConfig {
            max_frame: 64 << 10,
            max_members: 256,
            max_rooms: 10_000,
            max_connections: 65_536,
            rate_per_sec: 1000.0,
            burst: 2048.0,
            max_strikes: 64.0,
            ping_after: Duration::from_secs(10),
            dead_after: Duration::from_secs(30),
            turn: None,
            tokens: None,
            max_per_ip: 64,
            limit_loopback: false,
        }
    }
}

/// What the server has seen; served at `/health`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Connections open now.
    pub connections: u64,
    /// Connections opened since start.
    pub connections_total: u64,
    /// Rooms now.
    pub rooms: u64,
    /// Members of all rooms now.
    pub members: u64,
    /// Text frames received.
    pub frames_in: u64,
    /// Texts sent (one per recipient).
    pub frames_out: u64,
    /// Announces accepted.
    pub announces: u64,
    /// `/to` messages delivered.
    pub directed: u64,
    /// Broadcast messages relayed (counted once per message).
    pub broadcasts: u64,
    /// Leaves sent to rooms (client `/leave`, room change, disconnect).
    pub leaves: u64,
    /// `/to` for a target not in the sender's room.
    pub dropped_no_target: u64,
    /// Messages from connections that have not announced.
    pub dropped_unannounced: u64,
    /// Messages naming a sender other than the connection's id.
    pub dropped_spoofed: u64,
    /// Texts that are not valid signalling messages.
    pub dropped_malformed: u64,
    /// Binary frames.
    pub dropped_binary: u64,
    /// Frames larger than the limit.
    pub dropped_oversize: u64,
    /// Frames over the rate limit.
    pub dropped_rate: u64,
    /// Announces refused because the room is full.
    pub refused_room_full: u64,
    /// Announces refused because there are too many rooms.
    pub refused_rooms: u64,
    /// Connections replaced by a new announce of the same id.
    pub replaced: u64,
    /// Connections closed for abuse.
    pub closed_abuse: u64,
    /// Connections closed for not answering pings.
    pub closed_dead: u64,
    /// Connections refused before the upgrade: no token, or an invalid one.
    pub refused_token: u64,
    /// Announces refused: the token grants another room (or none).
    pub refused_token_room: u64,
    /// Connections refused before the upgrade: too many from one address.
    pub refused_per_ip: u64,
    /// Announces of a key-form id without its holder's proof (or with a replayed one).
    pub refused_unproven: u64,
}

/// Why the switchboard closes a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Another connection announced the same id in the same room.
    Replaced,
    /// Too many bad frames or breaches.
    Abuse,
    /// It stopped answering pings.
    Dead,
}

/// What the runtime must do.
#[derive(Clone, Debug, PartialEq)]
pub enum SwitchOutput {
    /// Send this text frame on the connection.
    Send(ConnId, Arc<str>),
    /// Send a WebSocket ping (any frame back counts as [`Switchboard::handle_activity`]).
    Ping(ConnId),
    /// Close the connection. The switchboard has already forgotten it.
    Close(ConnId, CloseReason),
    /// Nothing more until an input or this instant (then call `handle_timeout`).
    Timeout(Instant),
}

#[derive(Debug)]
struct Conn {
    /// Fixed by the first announce.
    id: Option<String>,
    room: Option<Arc<str>>,
    tokens: f64,
    strikes: f64,
    last_strike: Instant,
    last_refill: Instant,
    last_seen: Instant,
    pinged: bool,
    /// The address the gate counted it under.
    ip: Option<IpAddr>,
    /// The room its token grants.
    token_room: Option<String>,
    /// The timestamp of its last proven announce (key-form ids).
    proven_ts: Option<u64>,
}

#[derive(Debug, Default)]
struct Room {
    /// Member id -> connection, in id order (deterministic relay order).
    members: BTreeMap<String, ConnId>,
}

/// The signalling server. See the module docs.
#[derive(Debug)]
pub struct Switchboard {
    config: SwitchboardConfig,
    limits: SignalLimits,
    conns: BTreeMap<ConnId, Conn>,
    rooms: BTreeMap<Arc<str>, Room>,
    out: VecDeque<SwitchOutput>,
    counters: Counters,
    /// Open (and admitted) connections per address.
    per_ip: HashMap<IpAddr, usize>,
    next_sweep: Option<Instant>,
    /// The latest instant seen.
    now: Instant,
}

impl Switchboard {
    /// A switchboard with these limits, made at `now`.
    pub fn new(config: SwitchboardConfig, now: Instant) -> Self {
        // Lenient: relayed text goes on unchanged, so an argument that only looks
        // like JSON (`/chat|a|[bot] hi`) is no reason to refuse it.
        let limits = SignalLimits {
            max_len: config.max_frame,
            lenient: true,
            ..SignalLimits::default()
        };
        Switchboard {
            config,
            limits,
            conns: BTreeMap::new(),
            rooms: BTreeMap::new(),
            out: VecDeque::new(),
            counters: Counters::default(),
            per_ip: HashMap::new(),
            next_sweep: None,
            now,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SwitchboardConfig {
        &self.config
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The members of `room` (ids, in order).
    pub fn room_members(&self, room: &str) -> Vec<&str> {
        self.rooms
            .get(room)
            .map(|r| r.members.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The id a connection announced, if any.
    pub fn conn_id(&self, conn: ConnId) -> Option<&str> {
        self.conns.get(&conn).and_then(|c| c.id.as_deref())
    }

    /// The room a connection is a member of, if any.
    pub fn conn_room(&self, conn: ConnId) -> Option<&str> {
        self.conns.get(&conn).and_then(|c| c.room.as_deref())
    }

    /// A connection was accepted and upgraded, with its [`admit`](Self::admit)
    /// (or [`Admission::ungated`]).
    pub fn handle_open(&mut self, now: Instant, conn: ConnId, admission: Admission) {
        self.now = self.now.max(now);
        self.counters.connections_total += 1;
        self.conns.insert(
            conn,
            Conn {
                id: None,
                room: None,
                tokens: self.config.burst,
                strikes: 0.0,
                last_strike: now,
                last_refill: now,
                last_seen: now,
                pinged: false,
                ip: admission.ip,
                token_room: admission.room,
                proven_ts: None,
            },
        );
        self.counters.connections = self.conns.len() as u64;
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + self.sweep_interval());
        }
    }

    /// Any frame (a pong included) arrived on `conn`: it is alive.
    pub fn handle_activity(&mut self, now: Instant, conn: ConnId) {
        self.now = self.now.max(now);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.last_seen = now;
            c.pinged = false;
        }
    }

    /// A binary frame arrived: not part of the protocol; counted and dropped.
    pub fn handle_binary(&mut self, now: Instant, conn: ConnId) {
        self.handle_activity(now, conn);
        self.counters.dropped_binary += 1;
        self.strike(conn, now);
    }

    /// A text frame arrived.
    pub fn handle_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        self.handle_activity(now, conn);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        self.counters.frames_in += 1;
        // Token bucket.
        let dt = now.saturating_duration_since(c.last_refill).as_secs_f64();
        c.last_refill = now;
        c.tokens = (c.tokens + dt * self.config.rate_per_sec).min(self.config.burst);
        if c.tokens < 1.0 {
            self.counters.dropped_rate += 1;
            self.strike(conn, now);
            return;
        }
        c.tokens -= 1.0;
        if text.len() > self.config.max_frame {
            self.counters.dropped_oversize += 1;
            self.strike(conn, now);
            return;
        }
        let msg = match Signal::parse(text, &self.limits) {
            Ok(m) => m,
            Err(SignalError::TooLong { .. }) => {
                self.counters.dropped_oversize += 1;
                self.strike(conn, now);
                return;
            }
            Err(_) => {
                self.counters.dropped_malformed += 1;
                self.strike(conn, now);
                return;
            }
        };
        let c = &self.conns[&conn];
        // The sender must be the connection's id once it has one.
        let Some(sender) = msg.sender.as_deref() else {
            // Only the server sends sender-less commands (roominfo).
            self.counters.dropped_spoofed += 1;
            self.strike(conn, now);
            return;
        };
        if c.id.as_deref().is_some_and(|id| id != sender) {
            self.counters.dropped_spoofed += 1;
            self.strike(conn, now);
            return;
        }
        if msg.to.is_none() && msg.command == "announce" {
            self.announce(conn, now, &msg, text);
            return;
        }
        let Some(room) = c.room.clone() else {
            self.counters.dropped_unannounced += 1;
            return;
        };
        let text: Arc<str> = text.into();
        if let Some(target) = &msg.to {
            let to = self
                .rooms
                .get(&room)
                .and_then(|r| r.members.get(target.as_str()))
                .copied();
            match to {
                Some(t) if t != conn => {
                    self.counters.directed += 1;
                    self.send(t, text);
                }
                _ => self.counters.dropped_no_target += 1,
            }
            return;
        }
        self.counters.broadcasts += 1;
        self.broadcast(&room, Some(conn), &text);
        if msg.command == "leave" {
            self.counters.leaves += 1;
            self.leave_room(conn, false);
        }
    }

    fn announce(&mut self, conn: ConnId, now: Instant, msg: &Signal, text: &str) {
        let sender = msg.sender.clone().unwrap_or_default();
        let attrs = msg.object();
        let room = attrs.and_then(|a| match a.get("room") {
            Some(Value::String(r)) if !r.is_empty() && r.len() <= 256 => Some(r.as_str()),
            _ => None,
        });
        let id_matches = attrs.and_then(|a| a.get("id")) == Some(&Value::from(sender.as_str()));
        let (Some(room), Some(attrs)) = (room.filter(|_| id_matches), attrs) else {
            self.counters.dropped_malformed += 1;
            self.strike(conn, now);
            return;
        };
        let Ok(proven) = self.gate_announce(conn, room, &sender, attrs) else {
            return;
        };
        let current = self.conns[&conn].room.clone();
        if current.as_deref() != Some(room) {
            match self.rooms.get(room) {
                None if self.rooms.len() >= self.config.max_rooms => {
                    self.counters.refused_rooms += 1;
                    return;
                }
                Some(r)
                    if r.members.len() >= self.config.max_members
                        && !r.members.contains_key(&sender) =>
                {
                    self.counters.refused_room_full += 1;
                    return;
                }
                _ => {}
            }
            if current.is_some() {
                self.leave_room(conn, true);
            }
        }
        let room: Arc<str> = match self.rooms.get_key_value(room) {
            Some((k, _)) => k.clone(),
            None => room.into(),
        };
        let r = self.rooms.entry(room.clone()).or_default();
        let old = r.members.insert(sender.clone(), conn);
        let count = r.members.len();
        if old.is_none() {
            self.counters.members += 1;
        }
        if let Some(old) = old {
            if old != conn {
                // Same id, new connection: the old one goes silently.
                self.counters.replaced += 1;
                self.remove_conn(old);
                self.out
                    .push_back(SwitchOutput::Close(old, CloseReason::Replaced));
            }
        }
        let c = self.conns.get_mut(&conn).expect("open connection");
        let first = c.id.is_none();
        let offer = match &self.config.turn {
            Some(t) if first => Some(t.message(now, &sender)),
            _ => None,
        };
        c.id = Some(sender);
        c.room = Some(room.clone());
        c.proven_ts = proven.or(c.proven_ts);
        self.counters.announces += 1;
        self.update_gauges();
        self.send(conn, Signal::roominfo(count).encode().into());
        if let Some(offer) = offer {
            self.send(conn, offer.encode().into());
        }
        self.broadcast(&room, Some(conn), &text.into());
    }

    /// Takes `conn` out of its room; the rest of the room hears `leave` if given (a
    /// room change or a disconnect; a client's own `/leave` was relayed already).
    fn leave_room_with(&mut self, conn: ConnId, leave: Option<Signal>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let (Some(room), Some(id)) = (c.room.take(), c.id.clone()) else {
            return;
        };
        if let Some(r) = self.rooms.get_mut(&room) {
            if r.members.get(&id) == Some(&conn) {
                r.members.remove(&id);
                self.counters.members -= 1;
            }
            if r.members.is_empty() {
                self.rooms.remove(&room);
            } else if let Some(l) = leave {
                self.counters.leaves += 1;
                self.broadcast(&room, None, &l.encode().into());
            }
        }
        self.update_gauges();
    }

    fn leave_room(&mut self, conn: ConnId, tell: bool) {
        let leave = if tell {
            self.conn_id(conn).map(|id| Signal::leave(id, None))
        } else {
            None
        };
        self.leave_room_with(conn, leave);
    }

    /// The connection closed (or failed). Its room hears a leave with reason
    /// `disconnected`.
    pub fn handle_close(&mut self, now: Instant, conn: ConnId) {
        self.now = self.now.max(now);
        let leave = self
            .conn_id(conn)
            .map(|id| Signal::leave(id, Some("disconnected")));
        self.leave_room_with(conn, leave);
        self.remove_conn(conn);
    }

    /// Forgets a connection (and its count under its address).
    fn remove_conn(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            self.forget_ip(c.ip);
        }
        self.counters.connections = self.conns.len() as u64;
    }

    fn strike(&mut self, conn: ConnId, now: Instant) {
        let max = self.config.max_strikes;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let dt = now.saturating_duration_since(c.last_strike).as_secs_f64();
        c.last_strike = now;
        c.strikes = (c.strikes - dt).max(0.0) + 1.0;
        if c.strikes >= max {
            self.counters.closed_abuse += 1;
            self.handle_close(now, conn);
            self.out
                .push_back(SwitchOutput::Close(conn, CloseReason::Abuse));
        }
    }

    fn send(&mut self, conn: ConnId, text: Arc<str>) {
        self.counters.frames_out += 1;
        self.out.push_back(SwitchOutput::Send(conn, text));
    }

    fn broadcast(&mut self, room: &str, except: Option<ConnId>, text: &Arc<str>) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        for &m in r.members.values() {
            if Some(m) != except {
                self.counters.frames_out += 1;
                self.out.push_back(SwitchOutput::Send(m, text.clone()));
            }
        }
    }

    fn update_gauges(&mut self) {
        self.counters.rooms = self.rooms.len() as u64;
    }

    fn sweep_interval(&self) -> Duration {
        (self.config.ping_after / 4).max(Duration::from_millis(100))
    }

    /// Pings idle connections and closes dead ones.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.next_sweep.is_some_and(|t| now < t) {
            return;
        }
        let (ping_after, dead_after) = (self.config.ping_after, self.config.dead_after);
        let mut dead = Vec::new();
        for (&id, c) in self.conns.iter_mut() {
            let idle = now.saturating_duration_since(c.last_seen);
            if idle >= dead_after {
                dead.push(id);
            } else if idle >= ping_after && !c.pinged {
                c.pinged = true;
                self.out.push_back(SwitchOutput::Ping(id));
            }
        }
        // Take every dead connection out first, so that none is told of another's
        // leave just before it is closed itself.
        let mut leaves = Vec::new();
        for &id in &dead {
            if let Some(c) = self.conns.get(&id) {
                if let (Some(room), Some(peer)) = (c.room.clone(), c.id.clone()) {
                    leaves.push((room, peer));
                }
            }
            // Out of its room silently for now: the rooms hear every leave below.
            self.leave_room_with(id, None);
            self.remove_conn(id);
            self.counters.closed_dead += 1;
            self.out
                .push_back(SwitchOutput::Close(id, CloseReason::Dead));
        }
        for (room, peer) in leaves {
            if self.rooms.contains_key(&room) {
                self.counters.leaves += 1;
                let text = Signal::leave(&peer, Some("disconnected")).encode().into();
                self.broadcast(&room, None, &text);
            }
        }
        self.counters.connections = self.conns.len() as u64;
        self.update_gauges();
        self.next_sweep = (!self.conns.is_empty()).then(|| now + self.sweep_interval());
    }

    /// The next thing to do; a drain ends with [`SwitchOutput::Timeout`]: the next
    /// sweep of idle connections (far ahead while there are none).
    pub fn poll_output(&mut self) -> SwitchOutput {
        match self.out.pop_front() {
            Some(o) => o,
            None => SwitchOutput::Timeout(
                self.next_sweep
                    .unwrap_or(self.now + crate::signal_client::IDLE),
            ),
        }
    }
}
