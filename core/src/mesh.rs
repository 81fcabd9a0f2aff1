//! The peer side of a room, over abstract links: membership, negotiation roles,
//! signalling routes, one sync session per link, liveness and recovery.
//!
//! A [`Mesh`] does not know WebRTC. It says what the link layer must do with
//! [`LinkCommand`]s (open a connection to a peer as offerer or answerer, apply the
//! remote's SDP and candidates, close), and the link layer reports back: the local SDP
//! and candidates to route ([`Mesh::local_sdp`], [`Mesh::local_candidate`]), the data
//! channel opened ([`Mesh::link_open`]), bytes ([`Mesh::link_data`]), closed
//! ([`Mesh::link_closed`]). The `Node` pairs a Mesh with str0m; the simulator in
//! `rtc-mesh-sim` pairs it with in-memory links.
//!
//! Rules (DESIGN, Conventions):
//!
//! - On [`start`](Mesh::start) the mesh announces itself: `id`, `room`, `agent`,
//!   `incarnation`, `codecs`, then user attributes. A broadcast announce from a
//!   newcomer is answered with a direct one, as rtc-signaller does.
//! - The peer whose id sorts higher offers; exactly one side does. It picks the first
//!   codec of its own list that the other side lists (a peer without `codecs` speaks
//!   json only) and names it in the data channel's protocol field.
//! - SDP and candidates that arrive before their sender's announce are kept (bounded)
//!   and used once it arrives.
//! - Links carry `PING`/`PONG`: a link to one of our peers (it announced an
//!   `incarnation`) silent for `dead_after` is closed and the peer reported left
//!   (`timeout`). A negotiation that does not finish in time is abandoned and retried
//!   with backoff by the offerer; so is a link that closed while its peer is still in
//!   the room.
//! - Signalling that reconnects may have lost what was in flight: an offerer restarts
//!   the negotiations it has in progress (a fresh offer, which replaces the old one at
//!   the answerer) when its own announce is confirmed again (a second `/roominfo`) and
//!   when the peer it is offering to announces again by broadcast with the same
//!   incarnation. Open links are kept.
//! - A closing peer says `"BYE"` on each link (then `/leave`); either drops its link at
//!   once and reports it left.
//! - The peer's own `/leave` (no reason) or an announce with a new incarnation drops its
//!   link at once; a switchboard's `/leave` with reason `disconnected` does not, while
//!   the link answers pings. No id is ever blocked: a returning peer gets a fresh link
//!   and a delta sync.
//! - Updates go through a [`Replica`], so a healthy full mesh costs N-1 messages per
//!   write (see [`crate::replica`]).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use crate::limits::Limits;
use crate::replica::{LinkId, Output, Replica, ReplicaEvent};
use crate::session::SessionStats;
use crate::signal::{valid_peer_id, Part, Signal, SignalLimits};
use crate::store::{Event, Store, StoreConfig, StoreError, Update};
use crate::value::{Object, Value};
use crate::wire::{Codec, Framing};

/// How many SDP or candidate messages are kept per peer whose announce has not arrived.
const MAX_EARLY: usize = 64;
/// How many peers may have early messages waiting.
const MAX_EARLY_PEERS: usize = 256;
/// The control string a closing peer sends on each link before closing it.
const BYE: &str = "BYE";

/// Configuration of a [`Mesh`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MeshConfig {
    /// Our peer id: 1-64 bytes of `[A-Za-z0-9._~-]`.
    pub id: String,
    /// The room to join.
    pub room: String,
    /// This process's incarnation (16 hex characters, fresh at every start).
    pub incarnation: String,
    /// Codecs we speak, preferred first (default postcard, json).
    pub codecs: Vec<Codec>,
    /// User attributes added to our announce.
    pub attributes: Object,
    /// The `agent` attribute.
    pub agent: String,
    /// Wall-clock milliseconds since 1970 at `start`.
    pub epoch_ms: f64,
    /// The instant `epoch_ms` was read at.
    pub start: Instant,
    /// The store's source id (default `<id>.<incarnation>`).
    pub source: Option<String>,
    /// Interval between pings on a link (default 1 s).
    pub ping_interval: Duration,
    /// A link to one of our peers silent this long is closed (default 4 s).
    pub dead_after: Duration,
    /// A negotiation not finished in this time is abandoned (default 10 s).
    pub negotiate_timeout: Duration,
    /// First retry delay after a failed negotiation or a lost link (default 250 ms;
    /// doubling to `retry_max`).
    pub retry_min: Duration,
    /// Longest retry delay (default 10 s).
    pub retry_max: Duration,
    /// Bounds on values, keys, ids.
    pub limits: Limits,
    /// Seed for jitter and the store's hash.
    pub seed: u64,
}

impl MeshConfig {
    /// The default interval between pings on a link.
    pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(1);
    /// The default silence after which a pinging link is closed and its peer gone.
    pub const DEFAULT_DEAD_AFTER: Duration = Duration::from_secs(4);
    /// The default time a connection may take to open before it is abandoned.
    pub const DEFAULT_NEGOTIATE_TIMEOUT: Duration = Duration::from_secs(10);

    /// A configuration with defaults for `id` in `room`.
    pub fn new(
        id: impl Into<String>,
        room: impl Into<String>,
        incarnation: impl Into<String>,
        epoch_ms: f64,
        start: Instant,
    ) -> Self {
        MeshConfig {
            id: id.into(),
            room: room.into(),
            incarnation: incarnation.into(),
            codecs: vec![Codec::Postcard, Codec::Json],
            attributes: Object::new(),
            agent: concat!("rtc-mesh/", env!("CARGO_PKG_VERSION")).into(),
            epoch_ms,
            start,
            source: None,
            ping_interval: Self::DEFAULT_PING_INTERVAL,
            dead_after: Self::DEFAULT_DEAD_AFTER,
            negotiate_timeout: Self::DEFAULT_NEGOTIATE_TIMEOUT,
            retry_min: Duration::from_millis(250),
            retry_max: Duration::from_secs(10),
            limits: Limits::default(),
            seed: 0,
        }
    }
}

/// Why a [`Mesh`] could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeshError {
    /// The peer id breaks the Conventions.
    #[error("invalid peer id {0:?}: 1-64 characters of A-Z a-z 0-9 . _ ~ -")]
    BadId(String),
    /// The room name is empty or longer than 256 bytes.
    #[error("invalid room name {0:?}")]
    BadRoom(String),
    /// No codec to speak.
    #[error("no codec configured")]
    NoCodec,
    /// The store refused its configuration.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counters of a mesh.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MeshStats {
    /// SDP or candidate messages that arrived before their sender's announce (kept).
    pub early: u64,
    /// Negotiations started as offerer.
    pub offers: u64,
    /// Negotiations abandoned for taking too long.
    pub negotiation_timeouts: u64,
    /// Links closed for silence.
    pub link_timeouts: u64,
    /// Negotiations restarted because signalling reconnected (ours or the peer's).
    pub offers_restarted: u64,
}

/// How far the connection to a peer has come, in [`LinkInfo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// No connection; one will be negotiated (again).
    Idle,
    /// Offer and answer are being exchanged, or ICE and DTLS are connecting.
    Negotiating,
    /// The data channel is open and the sync session runs.
    Open,
}

impl LinkState {
    /// Its name: `idle`, `negotiating` or `open`.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Idle => "idle",
            LinkState::Negotiating => "negotiating",
            LinkState::Open => "open",
        }
    }
}

/// The connection to one peer, from [`Mesh::link_info`] (what the original rtc-mesh
/// exposed as `getChannel`/`getConnection`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkInfo {
    /// How far the connection has come.
    pub state: LinkState,
    /// The codec of the open link.
    pub codec: Option<Codec>,
    /// Whether the initial sync over the open link has finished both ways.
    pub synced: bool,
    /// Bytes and updates each way, and the round-trip time (zero while not open).
    pub stats: SessionStats,
}

/// Why a peer is reported gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaveReason {
    /// It said `/leave`, or came back as a new incarnation.
    Left,
    /// Its link went silent.
    Timeout,
    /// Its link closed, or the switchboard saw it disconnect and there is no link.
    Closed,
    /// The link could not be negotiated.
    Failed,
}

impl LeaveReason {
    /// The name used in the line protocol: `left`, `timeout`, `closed`, `failed`.
    pub fn name(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Timeout => "timeout",
            LeaveReason::Closed => "closed",
            LeaveReason::Failed => "failed",
        }
    }
}

/// Something that happened in the mesh.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum MeshEvent {
    /// The switchboard answered our announce.
    Online,
    /// A peer is present (announced, or its link came back).
    PeerJoined {
        /// Its id.
        peer: String,
        /// Its announce attributes.
        attributes: Object,
    },
    /// A present peer announced new attributes.
    PeerUpdated {
        /// Its id.
        peer: String,
        /// Its new announce attributes.
        attributes: Object,
    },
    /// A peer is gone.
    PeerLeft {
        /// Its id.
        peer: String,
        /// Why.
        reason: LeaveReason,
    },
    /// The store changed.
    Update(Event),
    /// The link to a peer is synced both ways.
    Synced {
        /// The peer.
        peer: String,
    },
    /// Every present peer has a synced link.
    SyncedAll {
        /// The peers.
        peers: Vec<String>,
    },
    /// We left (after [`Mesh::close`]).
    Offline,
}

/// SDP kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SdpKind {
    /// An offer.
    Offer,
    /// An answer.
    Answer,
}

impl SdpKind {
    fn name(self) -> &'static str {
        match self {
            SdpKind::Offer => "offer",
            SdpKind::Answer => "answer",
        }
    }
}

/// What the link layer must do.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkCommand {
    /// Start a connection to `peer`. The offerer creates the data channel (label
    /// `mesh`, protocol = the codec's name) and an offer, and hands the offer to
    /// [`Mesh::local_sdp`]; the answerer waits for [`LinkCommand::RemoteSdp`].
    Open {
        /// The peer.
        peer: String,
        /// Whether we offer.
        offerer: bool,
        /// The codec (the offerer's choice; the answerer learns it from the channel).
        codec: Codec,
    },
    /// Apply the remote's SDP; an answerer then hands its answer to [`Mesh::local_sdp`].
    RemoteSdp {
        /// The peer.
        peer: String,
        /// Offer or answer.
        kind: SdpKind,
        /// The SDP text.
        sdp: String,
    },
    /// Add a remote ICE candidate (`{"candidate":..,"sdpMid":..,"sdpMLineIndex":..}`).
    RemoteCandidate {
        /// The peer.
        peer: String,
        /// The candidate, as a browser's `RTCIceCandidate.toJSON()`.
        candidate: Object,
    },
    /// Tear the connection down (no further input is expected for it).
    Close {
        /// The peer.
        peer: String,
    },
}

/// What [`Mesh::poll_output`] returns.
#[derive(Debug)]
pub enum MeshOutput {
    /// Send this text to the switchboard.
    Signal(String),
    /// A command for the link layer.
    Link(LinkCommand),
    /// Bytes for the data channel to `peer` (one channel message).
    Transmit {
        /// The peer.
        peer: String,
        /// The bytes.
        data: Vec<u8>,
    },
    /// An event.
    Event(MeshEvent),
    /// Nothing more until an input or this instant.
    Timeout(Option<Instant>),
}

#[derive(Debug)]
enum Conn {
    /// No connection; the offerer retries at `retry_at`.
    Idle { retry_at: Option<Instant> },
    /// Negotiating since `since`.
    Negotiating { since: Instant, offerer: bool },
    /// The data channel is open.
    Open {
        link: LinkId,
        last_heard: Instant,
        next_ping: Instant,
    },
}

#[derive(Debug)]
struct Peer {
    attributes: Object,
    incarnation: Option<String>,
    codecs: Vec<Codec>,
    /// Reported present (joined and not left since).
    present: bool,
    /// The switchboard still has it (no `/leave` seen).
    in_room: bool,
    conn: Conn,
    /// Consecutive failed negotiations (for backoff).
    failures: u32,
    synced: bool,
}

/// A peer in a room. See the module docs.
#[derive(Debug)]
pub struct Mesh {
    config: MeshConfig,
    replica: Replica,
    peers: BTreeMap<String, Peer>,
    links: BTreeMap<LinkId, String>,
    early: BTreeMap<String, Vec<Signal>>,
    out: VecDeque<MeshOutput>,
    limits: SignalLimits,
    rng: u64,
    online: bool,
    closed: bool,
    /// The latest `now` seen (for work scheduled from replica events).
    last_now: Instant,
    stats: MeshStats,
    /// Timers run on a common tick (a quarter of the ping interval): pings, dead
    /// links, negotiation deadlines and retries are checked then.
    next_tick: Instant,
    /// Something changed that may complete "all synced".
    sync_dirty: bool,
}

fn codecs_of(attrs: &Object) -> Vec<Codec> {
    match attrs.get("codecs") {
        Some(Value::Array(a)) => {
            let v: Vec<Codec> = a
                .iter()
                .filter_map(|c| match c {
                    Value::String(s) => Codec::from_name(s),
                    _ => None,
                })
                .collect();
            if v.is_empty() {
                vec![Codec::Json]
            } else {
                v
            }
        }
        _ => vec![Codec::Json],
    }
}

impl Mesh {
    /// A mesh peer; call [`start`](Self::start) to announce.
    pub fn new(config: MeshConfig) -> Result<Self, MeshError> {
        if !valid_peer_id(&config.id) {
            return Err(MeshError::BadId(config.id));
        }
        if config.room.is_empty() || config.room.len() > 256 {
            return Err(MeshError::BadRoom(config.room));
        }
        if config.codecs.is_empty() {
            return Err(MeshError::NoCodec);
        }
        let source = config
            .source
            .clone()
            .unwrap_or_else(|| format!("{}.{}", config.id, config.incarnation));
        let mut sc = StoreConfig::new(source, config.epoch_ms, config.start);
        sc.limits = config.limits.clone();
        sc.hash_seed = config.seed;
        let store = Store::new(sc)?;
        let config_start = config.start;
        let mut replica = Replica::new(store);
        replica.batch_link_reports(true);
        Ok(Mesh {
            rng: config.seed | 1,
            config,
            replica,
            peers: BTreeMap::new(),
            links: BTreeMap::new(),
            early: BTreeMap::new(),
            out: VecDeque::new(),
            limits: SignalLimits::default(),
            online: false,
            closed: false,
            last_now: config_start,
            stats: MeshStats::default(),
            next_tick: config_start,
            sync_dirty: false,
        })
    }

    /// Counters.
    pub fn stats(&self) -> &MeshStats {
        &self.stats
    }

    /// Our id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.replica.store()
    }

    /// The replica (links, sessions, counters).
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// Present peers and their attributes.
    pub fn peers(&self) -> impl Iterator<Item = (&str, &Object)> {
        self.peers
            .iter()
            .filter(|(_, p)| p.present)
            .map(|(k, p)| (k.as_str(), &p.attributes))
    }

    /// The link to `peer`, if its data channel is open.
    pub fn link_of(&self, peer: &str) -> Option<LinkId> {
        match self.peers.get(peer).map(|p| &p.conn) {
            Some(Conn::Open { link, .. }) => Some(*link),
            _ => None,
        }
    }

    /// The connection to a present `peer`: its state, codec and counters.
    pub fn link_info(&self, peer: &str) -> Option<LinkInfo> {
        let p = self.peers.get(peer).filter(|p| p.present)?;
        let (state, session) = match &p.conn {
            Conn::Idle { .. } => (LinkState::Idle, None),
            Conn::Negotiating { .. } => (LinkState::Negotiating, None),
            Conn::Open { link, .. } => (LinkState::Open, self.replica.session(*link)),
        };
        Some(LinkInfo {
            state,
            codec: session.map(|s| s.codec()),
            synced: session.is_some_and(|s| s.is_synced()),
            stats: session.map(|s| s.stats().clone()).unwrap_or_default(),
        })
    }

    /// Our announce attributes.
    fn attributes(&self) -> Object {
        let c = &self.config;
        let mut o = Object::new();
        o.insert("id", Value::from(c.id.as_str()));
        o.insert("room", Value::from(c.room.as_str()));
        o.insert("agent", Value::from(c.agent.as_str()));
        o.insert("incarnation", Value::from(c.incarnation.as_str()));
        o.insert(
            "codecs",
            Value::Array(c.codecs.iter().map(|k| Value::from(k.name())).collect()),
        );
        for (k, v) in c.attributes.iter() {
            if !matches!(k, "id" | "room" | "agent" | "incarnation" | "codecs") {
                o.insert(k, v.clone());
            }
        }
        o
    }

    fn signal(&mut self, s: Signal) {
        self.out.push_back(MeshOutput::Signal(s.encode()));
    }

    /// Announces us to the room.
    pub fn start(&mut self, _now: Instant) {
        let a = Signal::announce(&self.config.id, self.attributes());
        self.signal(a);
    }

    /// Updates our user attributes and announces them.
    pub fn announce(&mut self, now: Instant, attributes: Object) {
        self.config.attributes = attributes;
        self.start(now);
    }

    /// Sets `key` (null deletes); the write goes to every link.
    pub fn set(&mut self, now: Instant, key: &str, value: &Value) -> Result<Update, StoreError> {
        self.replica.set(now, key, value)
    }

    /// Deletes `key`.
    pub fn delete(&mut self, now: Instant, key: &str) -> Result<Update, StoreError> {
        self.replica.delete(now, key)
    }

    /// Leaves: says `/leave`, closes every link, reports [`MeshEvent::Offline`].
    pub fn close(&mut self, _now: Instant) {
        if self.closed {
            return;
        }
        self.closed = true;
        let me = self.config.id.clone();
        self.signal(Signal::leave(&me, None));
        // Say goodbye on every link too, ahead of closing it: the link is faster than
        // the switchboard, and its closing must not look like a failure.
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        for l in links {
            self.replica.send_control(l, BYE);
        }
        self.flush_replica();
        let peers: Vec<String> = self.peers.keys().cloned().collect();
        for p in peers {
            self.drop_conn(&p, None);
        }
        self.out.push_back(MeshOutput::Event(MeshEvent::Offline));
    }

    /// Moves the replica's pending output ahead of what comes next.
    fn flush_replica(&mut self) {
        loop {
            match self.replica.poll_output() {
                Output::Transmit(link, data) => {
                    if let Some(peer) = self.links.get(&link) {
                        self.out.push_back(MeshOutput::Transmit {
                            peer: peer.clone(),
                            data,
                        });
                    }
                }
                Output::Event(e) => self.on_replica_event(e),
                Output::Timeout(_) => return,
            }
        }
    }

    fn jitter(&mut self, d: Duration) -> Duration {
        crate::rng::jitter(&mut self.rng, d)
    }

    fn backoff(&mut self, failures: u32) -> Duration {
        let d = self
            .config
            .retry_min
            .saturating_mul(1 << failures.min(16))
            .min(self.config.retry_max);
        self.jitter(d)
    }

    fn event(&mut self, e: MeshEvent) {
        self.out.push_back(MeshOutput::Event(e));
    }

    fn set_present(&mut self, peer: &str, present: bool, reason: LeaveReason) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        if p.present == present {
            return;
        }
        p.present = present;
        let e = if present {
            MeshEvent::PeerJoined {
                peer: peer.to_owned(),
                attributes: p.attributes.clone(),
            }
        } else {
            MeshEvent::PeerLeft {
                peer: peer.to_owned(),
                reason,
            }
        };
        self.event(e);
    }

    /// Closes the connection to `peer` (if any); with `retry`, the offerer tries again
    /// after a backoff.
    fn drop_conn(&mut self, peer: &str, retry: Option<Instant>) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        let old = std::mem::replace(&mut p.conn, Conn::Idle { retry_at: retry });
        p.synced = false;
        match old {
            Conn::Open { link, .. } => {
                self.links.remove(&link);
                self.replica.close_link(link);
                self.out.push_back(MeshOutput::Link(LinkCommand::Close {
                    peer: peer.to_owned(),
                }));
            }
            Conn::Negotiating { .. } => {
                self.out.push_back(MeshOutput::Link(LinkCommand::Close {
                    peer: peer.to_owned(),
                }));
            }
            Conn::Idle { .. } => {}
        }
    }

    fn we_offer(&self, peer: &str) -> bool {
        self.config.id.as_str() > peer
    }

    fn codec_with(&self, peer: &Peer) -> Codec {
        self.config
            .codecs
            .iter()
            .copied()
            .find(|c| peer.codecs.contains(c))
            .unwrap_or(Codec::Json)
    }

    /// Starts a negotiation as offerer.
    fn offer(&mut self, peer: &str, now: Instant) {
        if !self.peers.contains_key(peer) {
            return;
        }
        self.stats.offers += 1;
        self.start_negotiation(peer, now, true);
    }

    /// Drops the negotiation in progress with `peer` and offers afresh.
    fn restart_offer(&mut self, peer: &str, now: Instant) {
        self.stats.offers_restarted += 1;
        self.drop_conn(peer, None);
        self.offer(peer, now);
    }

    /// Marks `peer` negotiating and tells the link layer to open a connection to it, in
    /// `offerer`'s role, with the best common codec.
    fn start_negotiation(&mut self, peer: &str, now: Instant, offerer: bool) {
        let codec = self
            .peers
            .get(peer)
            .map_or(Codec::Json, |p| self.codec_with(p));
        if let Some(p) = self.peers.get_mut(peer) {
            p.conn = Conn::Negotiating {
                since: now,
                offerer,
            };
        }
        self.out.push_back(MeshOutput::Link(LinkCommand::Open {
            peer: peer.to_owned(),
            offerer,
            codec,
        }));
    }

    /// A text from the switchboard.
    pub fn handle_signal(&mut self, now: Instant, text: &str) {
        self.last_now = self.last_now.max(now);
        if self.closed {
            return;
        }
        let Ok(msg) = Signal::parse(text, &self.limits) else {
            return;
        };
        if let Some(t) = &msg.to {
            if t != &self.config.id {
                return;
            }
        }
        if msg.command == "roominfo" {
            if !self.online {
                self.online = true;
                self.event(MeshEvent::Online);
            } else {
                // Announced again (a reconnect): offers in flight may be lost.
                let offering: Vec<String> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| matches!(p.conn, Conn::Negotiating { offerer: true, .. }))
                    .map(|(id, _)| id.clone())
                    .collect();
                for peer in offering {
                    self.restart_offer(&peer, now);
                }
            }
            return;
        }
        let Some(from) = msg.sender.clone() else {
            return;
        };
        if from == self.config.id {
            return;
        }
        match msg.command.as_str() {
            "announce" => self.on_announce(now, &from, &msg),
            "leave" => self.on_leave(now, &from, &msg),
            "mesh:sdp" | "mesh:candidate" | "mesh:candidates" => {
                if self.peers.get(&from).is_some_and(|p| p.in_room) {
                    self.on_negotiation(now, &from, &msg);
                } else if !cfg!(feature = "bug-drop-early-sdp")
                    && (self.early.len() < MAX_EARLY_PEERS || self.early.contains_key(&from))
                {
                    // Before its announce: keep it for then.
                    self.stats.early += 1;
                    let q = self.early.entry(from).or_default();
                    if q.len() < MAX_EARLY {
                        q.push(msg);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_announce(&mut self, now: Instant, from: &str, msg: &Signal) {
        let Some(attrs) = msg.object().cloned() else {
            return;
        };
        if attrs.get("room") != Some(&Value::from(self.config.room.as_str())) {
            return;
        }
        let incarnation = match attrs.get("incarnation") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        if msg.to.is_none() {
            // A newcomer's broadcast: answer directly, as rtc-signaller does.
            let me = self.config.id.clone();
            let reply = Signal::announce(&me, self.attributes()).to(from);
            self.signal(reply);
        }
        let codecs = codecs_of(&attrs);
        let returning = match self.peers.get(from) {
            Some(p) => p.incarnation != incarnation,
            None => false,
        };
        if returning && cfg!(feature = "bug-block-returning") {
            return;
        }
        if returning {
            // A new life: its old link (if any) is of no use.
            self.drop_conn(from, None);
            self.set_present(from, false, LeaveReason::Left);
        }
        let p = self.peers.entry(from.to_owned()).or_insert_with(|| Peer {
            attributes: Object::new(),
            incarnation: None,
            codecs: Vec::new(),
            present: false,
            in_room: true,
            conn: Conn::Idle { retry_at: None },
            failures: 0,
            synced: false,
        });
        let changed = p.present && !returning && p.attributes != attrs;
        if changed {
            self.out
                .push_back(MeshOutput::Event(MeshEvent::PeerUpdated {
                    peer: from.to_owned(),
                    attributes: attrs.clone(),
                }));
        }
        p.attributes = attrs;
        p.incarnation = incarnation;
        p.codecs = codecs;
        p.in_room = true;
        if returning {
            p.failures = 0;
        }
        self.set_present(from, true, LeaveReason::Left);
        let conn = &self.peers[from].conn;
        let idle = matches!(conn, Conn::Idle { .. });
        let offering = matches!(conn, Conn::Negotiating { offerer: true, .. });
        if idle && self.we_offer(from) {
            self.offer(from, now);
        } else if offering && msg.to.is_none() && !returning {
            // It announced again by broadcast (its signalling reconnected): what we
            // sent it, or it sent us, may be lost.
            self.restart_offer(from, now);
        }
        if let Some(early) = self.early.remove(from) {
            for m in early {
                self.on_negotiation(now, from, &m);
            }
        }
    }

    fn on_leave(&mut self, _now: Instant, from: &str, msg: &Signal) {
        let reason = msg.object().and_then(|o| match o.get("reason") {
            Some(Value::String(r)) => Some(r.clone()),
            _ => None,
        });
        self.early.remove(from);
        let Some(p) = self.peers.get_mut(from) else {
            return;
        };
        p.in_room = false;
        let open = matches!(p.conn, Conn::Open { .. });
        if reason.is_some() && open {
            // The switchboard lost its connection; the link decides.
            return;
        }
        self.drop_conn(from, None);
        let why = if reason.is_some() {
            LeaveReason::Closed
        } else {
            LeaveReason::Left
        };
        self.set_present(from, false, why);
        self.peers.remove(from);
        self.check_all_synced();
    }

    fn on_negotiation(&mut self, now: Instant, from: &str, msg: &Signal) {
        match msg.command.as_str() {
            "mesh:sdp" => {
                let Some(o) = msg.object() else { return };
                let (Some(Value::String(kind)), Some(Value::String(sdp))) =
                    (o.get("type"), o.get("sdp"))
                else {
                    return;
                };
                let sdp = sdp.clone();
                match kind.as_str() {
                    "offer" => {
                        let negotiating_as_offerer = matches!(
                            self.peers.get(from).map(|p| &p.conn),
                            Some(Conn::Negotiating { offerer: true, .. })
                        );
                        if negotiating_as_offerer {
                            // Both offered (it should not, by the rule): ours stands.
                            return;
                        }
                        // A fresh offer replaces whatever was there.
                        self.drop_conn(from, None);
                        self.start_negotiation(from, now, false);
                        self.out.push_back(MeshOutput::Link(LinkCommand::RemoteSdp {
                            peer: from.to_owned(),
                            kind: SdpKind::Offer,
                            sdp,
                        }));
                    }
                    "answer" => {
                        if matches!(
                            self.peers.get(from).map(|p| &p.conn),
                            Some(Conn::Negotiating { offerer: true, .. })
                        ) {
                            self.out.push_back(MeshOutput::Link(LinkCommand::RemoteSdp {
                                peer: from.to_owned(),
                                kind: SdpKind::Answer,
                                sdp,
                            }));
                        }
                    }
                    _ => {}
                }
            }
            "mesh:candidate" | "mesh:candidates" => {
                if !matches!(
                    self.peers.get(from).map(|p| &p.conn),
                    Some(Conn::Negotiating { .. } | Conn::Open { .. })
                ) {
                    return;
                }
                let mut cands = Vec::new();
                for part in &msg.args {
                    match part {
                        Part::Json(Value::Object(o)) => cands.push(o.clone()),
                        Part::Json(Value::Array(a)) => {
                            for c in a {
                                if let Value::Object(o) = c {
                                    cands.push(o.clone());
                                }
                            }
                        }
                        _ => {}
                    }
                }
                for candidate in cands {
                    self.out
                        .push_back(MeshOutput::Link(LinkCommand::RemoteCandidate {
                            peer: from.to_owned(),
                            candidate,
                        }));
                }
            }
            _ => {}
        }
    }

    /// The link layer made our SDP for `peer`: route it through signalling.
    pub fn local_sdp(&mut self, _now: Instant, peer: &str, kind: SdpKind, sdp: &str) {
        let mut o = Object::new();
        o.insert("type", Value::from(kind.name()));
        o.insert("sdp", Value::from(sdp));
        o.insert("incarnation", Value::from(self.config.incarnation.as_str()));
        let me = self.config.id.clone();
        self.signal(Signal::new("mesh:sdp", &me, vec![o.into()]).to(peer));
    }

    /// The link layer found a local candidate for `peer` (trickled).
    pub fn local_candidate(&mut self, _now: Instant, peer: &str, candidate: Object) {
        let me = self.config.id.clone();
        self.signal(Signal::new("mesh:candidate", &me, vec![candidate.into()]).to(peer));
    }

    /// The data channel to `peer` opened, speaking `codec`.
    pub fn link_open(&mut self, now: Instant, peer: &str, codec: Codec) {
        self.last_now = self.last_now.max(now);
        let Some(p) = self.peers.get(peer) else {
            // Not a peer we know (any more): the link layer must close it.
            self.out.push_back(MeshOutput::Link(LinkCommand::Close {
                peer: peer.to_owned(),
            }));
            return;
        };
        if matches!(p.conn, Conn::Open { .. }) {
            return;
        }
        let link = self.replica.open_link(codec, Framing::Messages);
        // A first PING right behind the digest: the round trip is known at once.
        self.replica.ping(link, now);
        self.links.insert(link, peer.to_owned());
        let ping = self.config.ping_interval;
        if let Some(p) = self.peers.get_mut(peer) {
            p.conn = Conn::Open {
                link,
                last_heard: now,
                next_ping: now + ping,
            };
            p.failures = 0;
        }
        self.set_present(peer, true, LeaveReason::Left);
    }

    /// The link layer's buffer for `peer` is full (`paused`), or has room again: the
    /// mesh encodes the history no faster than the link can take it.
    pub fn link_paused(&mut self, peer: &str, paused: bool) {
        if let Some(link) = self.link_of(peer) {
            self.replica.pause_link(link, paused);
        }
    }

    /// Bytes from the data channel to `peer`.
    pub fn link_data(&mut self, now: Instant, peer: &str, data: &[u8]) {
        self.last_now = self.last_now.max(now);
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        let Conn::Open {
            link, last_heard, ..
        } = &mut p.conn
        else {
            return;
        };
        *last_heard = now;
        let link = *link;
        self.replica.handle_input(link, now, data);
    }

    /// The connection to `peer` closed or failed.
    pub fn link_closed(&mut self, now: Instant, peer: &str) {
        self.last_now = self.last_now.max(now);
        let Some(p) = self.peers.get(peer) else {
            return;
        };
        let was_open = matches!(p.conn, Conn::Open { .. });
        let failures = p.failures + 1;
        let retry = now + self.backoff(failures);
        if let Some(p) = self.peers.get_mut(peer) {
            p.failures = failures;
        }
        self.drop_conn(peer, Some(retry));
        let reason = if was_open {
            LeaveReason::Closed
        } else {
            LeaveReason::Failed
        };
        self.set_present(peer, false, reason);
        if !self.peers[peer].in_room {
            self.peers.remove(peer);
        }
        self.check_all_synced();
    }

    /// Time passed: pings, dead links, negotiation timeouts, retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        if self.closed || now < self.next_tick {
            return;
        }
        self.next_tick = now + self.tick();
        let (ping, dead, negotiate) = (
            self.config.ping_interval,
            self.config.dead_after,
            self.config.negotiate_timeout,
        );
        let mut to_ping = Vec::new();
        let mut timed_out = Vec::new();
        let mut failed = Vec::new();
        let mut retry = Vec::new();
        for (id, p) in self.peers.iter_mut() {
            match &mut p.conn {
                Conn::Open {
                    link,
                    last_heard,
                    next_ping,
                } => {
                    if p.incarnation.is_some() && now.saturating_duration_since(*last_heard) >= dead
                    {
                        timed_out.push(id.clone());
                    } else if now >= *next_ping {
                        to_ping.push(*link);
                        *next_ping = now + ping;
                    }
                }
                Conn::Negotiating { since, .. } => {
                    if now.saturating_duration_since(*since) >= negotiate {
                        failed.push(id.clone());
                    }
                }
                Conn::Idle { retry_at } => {
                    if retry_at.is_some_and(|t| now >= t) {
                        *retry_at = None;
                        retry.push(id.clone());
                    }
                }
            }
        }
        for l in to_ping {
            self.replica.ping(l, now);
        }
        self.replica.flush_link_reports();
        self.stats.link_timeouts += timed_out.len() as u64;
        self.stats.negotiation_timeouts += failed.len() as u64;
        for id in timed_out {
            let failures = self.peers[&id].failures;
            let at = now + self.backoff(failures);
            self.drop_conn(&id, Some(at));
            self.set_present(&id, false, LeaveReason::Timeout);
            if !self.peers[&id].in_room {
                self.peers.remove(&id);
            }
        }
        for id in failed {
            let failures = self.peers[&id].failures + 1;
            if let Some(p) = self.peers.get_mut(&id) {
                p.failures = failures;
            }
            let at = now + self.backoff(failures);
            self.drop_conn(&id, Some(at));
            self.set_present(&id, false, LeaveReason::Failed);
            if !self.peers[&id].in_room {
                self.peers.remove(&id);
            }
        }
        for id in retry {
            if self.we_offer(&id) && self.peers.get(&id).is_some_and(|p| p.in_room) {
                self.offer(&id, now);
            }
        }
    }

    fn tick(&self) -> Duration {
        (self.config.ping_interval / 4).max(Duration::from_millis(10))
    }

    fn next_timeout(&self) -> Option<Instant> {
        Some(self.next_tick)
    }

    fn check_all_synced(&mut self) {
        self.sync_dirty = true;
    }

    fn report_all_synced(&mut self) {
        if !std::mem::take(&mut self.sync_dirty) {
            return;
        }
        let present: Vec<&String> = self
            .peers
            .iter()
            .filter(|(_, p)| p.present)
            .map(|(k, _)| k)
            .collect();
        if present.is_empty() {
            return;
        }
        if present.iter().all(|k| self.peers[*k].synced) {
            let peers = present.into_iter().cloned().collect();
            self.event(MeshEvent::SyncedAll { peers });
        }
    }

    fn on_replica_event(&mut self, e: ReplicaEvent) {
        match e {
            ReplicaEvent::Update(ev) => self.event(MeshEvent::Update(ev)),
            ReplicaEvent::Synced { link, .. } => {
                if let Some(peer) = self.links.get(&link).cloned() {
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.synced = true;
                    }
                    self.event(MeshEvent::Synced { peer });
                    self.check_all_synced();
                }
            }
            ReplicaEvent::Control { link, text } if text == BYE => {
                if let Some(peer) = self.links.get(&link).cloned() {
                    // It is leaving: as its own `/leave`.
                    self.drop_conn(&peer, None);
                    self.set_present(&peer, false, LeaveReason::Left);
                    self.peers.remove(&peer);
                    self.check_all_synced();
                }
            }
            ReplicaEvent::LinkError { link, error } if error.is_fatal() => {
                if let Some(peer) = self.links.get(&link).cloned() {
                    // A peer that sends what cannot be decoded: closed, retried later.
                    let at = self.last_now + self.backoff(4);
                    self.drop_conn(&peer, Some(at));
                    self.set_present(&peer, false, LeaveReason::Failed);
                }
            }
            _ => {}
        }
    }

    /// The next output; drain until [`MeshOutput::Timeout`].
    pub fn poll_output(&mut self) -> MeshOutput {
        loop {
            if let Some(o) = self.out.pop_front() {
                return o;
            }
            match self.replica.poll_output() {
                Output::Transmit(link, data) => {
                    if let Some(peer) = self.links.get(&link) {
                        return MeshOutput::Transmit {
                            peer: peer.clone(),
                            data,
                        };
                    }
                }
                Output::Event(e) => self.on_replica_event(e),
                Output::Timeout(_) => {
                    self.report_all_synced();
                    if self.out.is_empty() {
                        return MeshOutput::Timeout(if self.closed {
                            None
                        } else {
                            self.next_timeout()
                        });
                    }
                }
            }
        }
    }
}
