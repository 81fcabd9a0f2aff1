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
//! - Links carry `PING`/`PONG`: once the remote has sent a `PING` (ours, a page, or a
//!   foreign client without an `incarnation`), a link silent for `dead_after` is
//!   closed and the peer reported left (`timeout`); a remote that never pings is
//!   watched by ICE only. A negotiation that does not finish in time is abandoned and retried
//!   with backoff by the offerer; so is a link that closed while its peer is still in
//!   the room.
//! - The mesh holds its signalling client ([`SignalClient`]): it says when to open the
//!   connection to the switchboard ([`MeshOutput::SignalConnect`]), queues what it sends
//!   while the connection is down, reconnects with backoff and announces again first.
//!   The runtime only moves texts and reports the connection opening
//!   ([`Mesh::handle_signal_connected`]) and dropping
//!   ([`Mesh::handle_signal_disconnected`]).
//! - Signalling that reconnects may have lost what was in flight: an offerer restarts
//!   the negotiations it has in progress (a fresh offer, which replaces the old one at
//!   the answerer) when its own connection comes back and when the peer it is offering
//!   to announces again by broadcast with the same incarnation. Open links are kept.
//! - A closing peer says `"BYE"` on each link, behind everything written to it, and
//!   keeps the link until its remote, having read it all, closes it (at most
//!   [`CLOSE_FLUSH`]); then its `/leave`. The remote drops the link on the `"BYE"` and
//!   reports it left.
//! - The peer's own `/leave` (no reason) or an announce with a new incarnation drops its
//!   link at once; a switchboard's `/leave` with reason `disconnected` does not, while
//!   the link answers pings. No id is ever blocked: a returning peer gets a fresh link
//!   and a delta sync.
//! - Updates go through a [`Replica`], so a healthy full mesh costs N-1 messages per
//!   write (see [`crate::replica`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

mod links;
mod liveness;
mod membership;
mod negotiation;
mod rekeying;
mod secured;
mod streams;

pub use secured::Security;

use crate::control::Control;
use crate::limits::Limits;
use crate::replica::{LinkId, Replica, ReplicaEvent, ReplicaOutput};
use crate::session::SessionStats;
use crate::signal::{valid_peer_id, Part, PeerId, Signal};
use crate::signal_client::{ClientConfig, ClientOutput, SignalClient, IDLE};
use crate::store::{Store, StoreConfig, StoreError, StoreEvent, Update};
use crate::value::{Object, Value};
use crate::wire::{Codec, Framing};

/// How many SDP or candidate messages are kept per peer whose announce has not arrived.
const MAX_EARLY: usize = 64;

/// How many peers may have early messages waiting.
const MAX_EARLY_PEERS: usize = 256;

/// The longest a closing mesh waits for its links' remotes to read its goodbye (and
/// close them) before it drops them and sends its `/leave` (see [`Mesh::close`]).
pub const CLOSE_FLUSH: Duration = Duration::from_secs(5);

/// Configuration of a [`Mesh`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MeshConfig {
    /// Our peer id: 1-64 bytes of `[A-Za-z0-9._~-]`.
    pub id: String,
    /// The room to join.
    pub room: String,
    /// Whether to join `room` through a switchboard (default true). A mesh that does
    /// not is a member without a room ([`MeshConfig::without_room`]): no signalling,
    /// no announce, no peers; its store syncs over attached streams only
    /// ([`Mesh::attach`]), as `rtc-mesh replicate` does.
    pub in_room: bool,
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
    /// Whether we ping our links at all (default true). Peers judge a mesh that does
    /// not through ICE alone, as they judge a plain scuttlebutt peer over WebRTC; the
    /// simulator uses it to play one.
    pub ping: bool,
    /// A link whose remote has pinged, silent this long, is closed and its peer
    /// reported left (default 4 s).
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
    /// The signalling client's backoff, queue and bounds (its jitter seed is drawn
    /// from `seed`).
    pub signalling: ClientConfig,
    /// A secured room (default `None`: an open one, as rtc-mesh always was): what
    /// goes through the switchboard is sealed and signed ([`Security`]); `room` stays
    /// the room's name and the switchboard sees its tag.
    pub security: Option<Security>,
    /// Signed updates without a room's signalling (a secured room's replicator over
    /// TCP, [`crate::member::ReplicatorOptions::secured`]): the store signs our writes
    /// and checks every update. With [`MeshConfig::security`] this is made from it.
    pub guard: Option<crate::security::updates::UpdateGuard>,
    /// A durable member (default `None`: the store lives in memory): the log its last
    /// lives wrote, read back ([`crate::persist::recover`]). Its updates are restored
    /// into the store before anything else, and every change the store makes from then
    /// on is recorded for the log ([`Mesh::poll_persist`]), numbered on from it.
    pub durable: Option<crate::persist::Recovered>,
    /// A durable member: when its store snapshots itself (default
    /// [`crate::persist::SnapshotPolicy::default`]; its byte counts are taken from the
    /// log read back).
    pub snapshots: crate::persist::SnapshotPolicy,
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
            in_room: true,
            incarnation: incarnation.into(),
            codecs: vec![Codec::Postcard, Codec::Json],
            attributes: Object::new(),
            agent: concat!("rtc-mesh/", env!("CARGO_PKG_VERSION")).into(),
            epoch_ms,
            start,
            source: None,
            ping_interval: Self::DEFAULT_PING_INTERVAL,
            ping: true,
            dead_after: Self::DEFAULT_DEAD_AFTER,
            negotiate_timeout: Self::DEFAULT_NEGOTIATE_TIMEOUT,
            retry_min: Duration::from_millis(250),
            retry_max: Duration::from_secs(10),
            limits: Limits::default(),
            seed: 0,
            signalling: ClientConfig::default(),
            security: None,
            guard: None,
            durable: None,
            snapshots: crate::persist::SnapshotPolicy::default(),
        }
    }
}

impl MeshConfig {
    /// A member without a room (see [`MeshConfig::in_room`]): a store over attached
    /// streams, with the defaults of [`MeshConfig::new`].
    pub fn without_room(
        id: impl Into<String>,
        incarnation: impl Into<String>,
        epoch_ms: f64,
        start: Instant,
    ) -> Self {
        let mut c = MeshConfig::new(id, String::new(), incarnation, epoch_ms, start);
        c.in_room = false;
        c
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
    /// In a secured room the peer id must be the identity's ([`Security::identity`]).
    #[error("in a secured room the peer id must be the identity's key ({0})")]
    NotTheIdentity(String),
    /// The store refused its configuration.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A durable member's log could not be read back ([`Mesh::with_log`]).
    #[error(transparent)]
    Log(Box<dyn std::error::Error + Send + Sync>),
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
    /// Texts from the switchboard that were not valid messages (dropped).
    pub bad_signals: u64,
    /// Times our signalling connection dropped.
    pub signal_disconnects: u64,
    /// Secured rooms: signals without the seal or signature they must have (ignored).
    pub unsecured_signals: u64,
    /// Secured rooms: sealed payloads that did not open for their command, sender and
    /// target (another key, or a rewritten message).
    pub unseal_failures: u64,
    /// Secured rooms: announces, leaves and SDP whose signature did not check.
    pub bad_signatures: u64,
    /// Secured rooms: announces, leaves and SDP replayed (not newer than the last of
    /// their kind from that member, of another incarnation, or too far from our clock).
    pub stale_signals: u64,
    /// Secured rooms: announces and SDP from members an admin removed (ignored).
    pub removed_signals: u64,
    /// Secured rooms: key epochs taken (made here or handed over a link).
    pub rekeys: u64,
    /// Secured rooms: `REKEY` lines refused (malformed, a bad signature, a signer
    /// that may not rotate, too far ahead).
    pub rekeys_refused: u64,
}

impl MeshStats {
    /// Every counter with its field's name, in declaration order (for reports).
    pub fn counters(&self) -> [(&'static str, u64); 14] {
        [
            ("early", self.early),
            ("offers", self.offers),
            ("negotiation_timeouts", self.negotiation_timeouts),
            ("link_timeouts", self.link_timeouts),
            ("offers_restarted", self.offers_restarted),
            ("bad_signals", self.bad_signals),
            ("signal_disconnects", self.signal_disconnects),
            ("unsecured_signals", self.unsecured_signals),
            ("unseal_failures", self.unseal_failures),
            ("bad_signatures", self.bad_signatures),
            ("stale_signals", self.stale_signals),
            ("removed_signals", self.removed_signals),
            ("rekeys", self.rekeys),
            ("rekeys_refused", self.rekeys_refused),
        ]
    }
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
    /// The last negotiation failed (the peer was reported gone, `failed`, though the
    /// switchboard still has it): it is tried again at [`LinkInfo::retry_at`].
    Failed,
}

impl LinkState {
    /// Its name: `idle`, `negotiating`, `open` or `failed`.
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Idle => "idle",
            LinkState::Negotiating => "negotiating",
            LinkState::Open => "open",
            LinkState::Failed => "failed",
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
    /// Negotiations that failed in a row (0 once a link opens).
    pub failures: u32,
    /// When the next negotiation starts, while there is no connection.
    pub retry_at: Option<Instant>,
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
    /// Secured rooms: an admin removed it (`room/revoked/<id>` is in the store). Its
    /// link is closed and its announces and SDP are ignored from then on.
    Removed,
}

impl LeaveReason {
    /// The name used in the line protocol: `left`, `timeout`, `closed`, `failed`,
    /// `removed`.
    pub fn name(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Timeout => "timeout",
            LeaveReason::Closed => "closed",
            LeaveReason::Failed => "failed",
            LeaveReason::Removed => "removed",
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
        peer: PeerId,
        /// Its announce attributes.
        attributes: Object,
    },
    /// A present peer announced new attributes.
    PeerUpdated {
        /// Its id.
        peer: PeerId,
        /// Its new announce attributes.
        attributes: Object,
    },
    /// A peer is gone.
    PeerLeft {
        /// Its id.
        peer: PeerId,
        /// Why.
        reason: LeaveReason,
    },
    /// The store changed.
    Update(StoreEvent),
    /// The link to a peer is synced both ways.
    Synced {
        /// The peer.
        peer: PeerId,
    },
    /// Every present peer has a synced link.
    SyncedAll {
        /// The peers.
        peers: Vec<PeerId>,
    },
    /// We left (after [`Mesh::close`]).
    Offline,
    /// The switchboard refused us: our connection before the upgrade
    /// ([`Mesh::handle_signal_refused`]: `http_401` for a missing or bad token,
    /// `http_429` for too many connections from our address), or our announce
    /// (`/mesh:refused`: `token_room`, `token_required`, `unproven`). We are not in the
    /// room; the connection is retried with backoff as after any loss.
    Refused {
        /// Why, as the switchboard said.
        reason: String,
    },
    /// A secured room: a peer sent [`crate::session::MAX_STRIKES`] updates our store
    /// refused (forged, unsigned, into another member's space). Its link was closed and
    /// the peer told why; it is reported left (`failed`) and retried after a backoff.
    PeerMisbehaved {
        /// Its id.
        peer: PeerId,
        /// The last refusal: `bad_sig`, `unsigned`, `bad_source`, `not_owner`.
        reason: String,
    },
    /// A secured room moved to a new key epoch (after a removal: see
    /// [`crate::security::Rekey`]). Keep `line` across a restart
    /// ([`Security::resume`]): a member that comes back with the old key after the
    /// grace period finds no one.
    Rekeyed {
        /// The epoch.
        epoch: u32,
        /// The member that made it.
        by: PeerId,
        /// The `REKEY` line ([`Mesh::rekey_line`]). Secret: it holds the key.
        line: String,
    },
    /// A peer closed our link because its store refused what we sent (`REFUSED
    /// <reason>`): a member relaying a misbehaving writer's updates hears it too.
    RefusedByPeer {
        /// Its id.
        peer: PeerId,
        /// Its reason.
        reason: String,
    },
    /// A mesh without a room ([`MeshConfig::in_room`] false): every attached stream
    /// is synced both ways.
    StreamsSynced {
        /// The remotes' source ids.
        sources: Vec<String>,
    },
    /// An attached stream's two sides are synced ([`Mesh::attach`]).
    StreamSynced {
        /// The stream's link.
        link: LinkId,
        /// The remote's source id.
        source: String,
    },
    /// An attached stream sent something that could not be decoded. It was skipped and
    /// the store is unchanged; a [fatal](crate::DecodeError::is_fatal) error also closes
    /// the stream ([`MeshOutput::CloseStream`]).
    StreamError {
        /// The stream's link.
        link: LinkId,
        /// What was wrong.
        error: crate::DecodeError,
    },
    /// An attached stream sent forged updates (bad signatures, into another member's
    /// space) 16 times within the forgiveness: it was told why and detached.
    StreamMisbehaved {
        /// The stream's link.
        link: LinkId,
        /// The last refusal: `bad_sig` or `not_owner`.
        reason: String,
    },
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
        peer: PeerId,
        /// Whether we offer.
        offerer: bool,
        /// The codec (the offerer's choice; the answerer learns it from the channel).
        codec: Codec,
    },
    /// Apply the remote's SDP; an answerer then hands its answer to [`Mesh::local_sdp`].
    RemoteSdp {
        /// The peer.
        peer: PeerId,
        /// Offer or answer.
        kind: SdpKind,
        /// The SDP text.
        sdp: String,
    },
    /// An ICE restart of the open link to `peer` (its path died while signalling
    /// works): apply the remote's SDP to the existing connection, keeping its DTLS,
    /// channel and sync session; an answerer hands its answer to
    /// [`Mesh::local_restart_sdp`].
    RestartSdp {
        /// The peer.
        peer: PeerId,
        /// Offer or answer.
        kind: SdpKind,
        /// The SDP text.
        sdp: String,
    },
    /// Add a remote ICE candidate (`{"candidate":..,"sdpMid":..,"sdpMLineIndex":..}`).
    RemoteCandidate {
        /// The peer.
        peer: PeerId,
        /// The candidate, as a browser's `RTCIceCandidate.toJSON()`.
        candidate: Object,
    },
    /// Tear the connection down (no further input is expected for it).
    Close {
        /// The peer.
        peer: PeerId,
    },
}

/// What [`Mesh::poll_output`] returns.
#[derive(Debug)]
pub enum MeshOutput {
    /// Open the signalling connection (a WebSocket to the switchboard), then report
    /// [`Mesh::handle_signal_connected`] or [`Mesh::handle_signal_disconnected`].
    SignalConnect,
    /// Send this text on the open signalling connection (texts sent while it was down
    /// were queued and come out after it opens).
    Signal(String),
    /// Close the signalling connection after sending what came before (we left), or
    /// give up opening it.
    SignalClose,
    /// A command for the link layer.
    Link(LinkCommand),
    /// Bytes for the data channel to `peer` (one channel message).
    Transmit {
        /// The peer.
        peer: PeerId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Bytes to write to an attached stream ([`Mesh::attach`]).
    Stream {
        /// The stream's link.
        link: LinkId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Close an attached stream (after writing what came before): its remote sent
    /// what cannot be decoded, or we closed.
    CloseStream(LinkId),
    /// An event.
    Event(MeshEvent),
    /// Nothing more until an input or this instant (then call [`Mesh::handle_timeout`]).
    Timeout(Instant),
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
    /// Links over attached byte streams (no peer, no WebRTC): see [`Mesh::attach`].
    streams: BTreeSet<LinkId>,
    early: BTreeMap<String, Vec<Signal>>,
    out: VecDeque<MeshOutput>,
    /// A durable member's outputs made while changes wait to be durable, each with the
    /// number of the last record the store had made when it was made: it goes once
    /// that record is durable (see [`Mesh::poll_output`]).
    held: VecDeque<(u64, MeshOutput)>,
    /// The signalling client, and when it next wants `handle_timeout`.
    client: SignalClient,
    client_at: Instant,
    rng: u64,
    online: bool,
    closed: bool,
    /// Closing: the links are saying goodbye until then (see [`Mesh::close`]).
    closing_until: Option<Instant>,
    /// The latest `now` seen (for work scheduled from replica events).
    last_now: Instant,
    stats: MeshStats,
    /// Timers run on a common tick (a quarter of the ping interval): pings, dead
    /// links, negotiation deadlines and retries are checked then.
    next_tick: Instant,
    /// Something changed that may complete "all synced".
    sync_dirty: bool,
    /// Secured rooms: the timestamp of our last signature.
    sig_ts: u64,
    /// Secured rooms: the last accepted signed timestamp per member and kind.
    fresh_ts: BTreeMap<(String, secured::Signed), u64>,
    /// Secured rooms: peers that announced under the previous epoch's key (the grace
    /// period), answered under it.
    behind: BTreeSet<String>,
    /// Secured rooms: a `REKEY` line that lists a removal not in the store yet.
    held_rekey: Option<crate::security::Rekey>,
    /// Secured rooms: when we rotate the key ourselves, unless a line comes first.
    rotate_at: Option<Instant>,
    /// Secured rooms: when the grace period of the current epoch ends.
    grace_until: Option<Instant>,
    /// Secured rooms: when we last announced again for an announce that did not open.
    reannounced_at: Option<Instant>,
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
    pub fn new(mut config: MeshConfig) -> Result<Self, MeshError> {
        match config.durable.take() {
            Some(mut log) => Self::with_log(config, &mut log),
            None => Self::make(config, None::<&mut crate::persist::Recovered>),
        }
    }

    /// A durable mesh peer whose store is built from `log` as it is read back
    /// ([`crate::persist::LogSource`], [`Store::from_log`]), in place of
    /// [`MeshConfig::durable`]: a runtime's reader hands the updates on as it reads its
    /// files, and the store restores them meanwhile. Its error is
    /// [`MeshError::Log`].
    pub fn with_log<S>(config: MeshConfig, log: &mut S) -> Result<Self, MeshError>
    where
        S: crate::persist::LogSource,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        Self::make(config, Some(log))
    }

    fn make<S>(mut config: MeshConfig, log: Option<&mut S>) -> Result<Self, MeshError>
    where
        S: crate::persist::LogSource,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        config.durable = None;
        if !valid_peer_id(&config.id) {
            return Err(MeshError::BadId(config.id));
        }
        if config.in_room && (config.room.is_empty() || config.room.len() > 256) {
            return Err(MeshError::BadRoom(config.room));
        }
        if config.codecs.is_empty() {
            return Err(MeshError::NoCodec);
        }
        if let Some(sec) = &config.security {
            if sec.identity.peer_id() != config.id {
                return Err(MeshError::NotTheIdentity(config.id));
            }
        }
        let source = config
            .source
            .clone()
            .unwrap_or_else(|| format!("{}.{}", config.id, config.incarnation));
        let mut sc = StoreConfig::new(source, config.epoch_ms, config.start);
        sc.limits = config.limits.clone();
        sc.hash_seed = config.seed;
        sc.guard = config.guard.clone();
        if let Some(sec) = &config.security {
            // Every write signed, every update checked (crate::security::updates).
            sc.guard = Some(crate::security::updates::UpdateGuard::for_room(
                &sec.key,
                sec.identity.clone(),
            ));
        }
        sc.snapshots = config.snapshots.clone();
        let store = match log {
            Some(log) => Store::from_log(sc, log).map_err(|e| match e {
                crate::store::FromLogError::Store(e) => MeshError::Store(e),
                crate::store::FromLogError::Log(e) => MeshError::Log(Box::new(e)),
            })?,
            None => Store::new(sc)?,
        };
        // A resumed epoch keeps its grace period: until it ends, the old tag.
        let wall = config.epoch_ms.max(0.0) as u64;
        let mut grace_until = None;
        if let Some(sec) = config.security.as_mut() {
            if let Some(until) = sec.rekey().map(|r| r.until()).filter(|_| sec.in_grace()) {
                if until > wall {
                    grace_until = config
                        .start
                        .checked_add(Duration::from_millis(until - wall));
                } else {
                    sec.end_grace();
                }
            }
        }
        let config_start = config.start;
        let mut replica = Replica::new(store);
        replica.batch_link_reports(true);
        let mut signalling = config.signalling.clone();
        signalling.seed = config.seed.rotate_left(32) ^ 0x5167_6e61_6c6c_696e;
        let mut client = SignalClient::new(signalling, config_start);
        let client_at = if config.in_room {
            config_start
        } else {
            // No room: the client is never used.
            client.close();
            while !matches!(client.poll_output(), ClientOutput::Timeout(_)) {}
            config_start + IDLE
        };
        Ok(Mesh {
            client,
            client_at,
            rng: config.seed | 1,
            config,
            replica,
            peers: BTreeMap::new(),
            links: BTreeMap::new(),
            streams: BTreeSet::new(),
            early: BTreeMap::new(),
            out: VecDeque::new(),
            held: VecDeque::new(),
            online: false,
            closed: false,
            closing_until: None,
            last_now: config_start,
            stats: MeshStats::default(),
            next_tick: config_start,
            sync_dirty: false,
            sig_ts: 0,
            fresh_ts: BTreeMap::new(),
            behind: BTreeSet::new(),
            held_rekey: None,
            rotate_at: None,
            grace_until,
            reannounced_at: None,
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

    /// A durable member: the store's changes since the last call, as log records (see
    /// [`Store::poll_persist`]). The runtime writes them, in order, before it
    /// acknowledges the writes among them.
    pub fn poll_persist(&mut self) -> Option<crate::store::PersistBatch> {
        self.replica.store_mut().poll_persist()
    }

    /// A durable member: the records up to `seq` (a [`PersistBatch`]'s `last_seq`) are
    /// durable at the runtime's level (written; at `power`, synced). Until then what
    /// they changed is not made known ([`Mesh::poll_output`]).
    ///
    /// [`PersistBatch`]: crate::store::PersistBatch
    pub fn persisted(&mut self, seq: u64) {
        self.replica.store_mut().persisted(seq);
    }

    /// A durable member: the next piece of a snapshot of the store, if one is due or
    /// under way (see [`Store::poll_snapshot`]). Call it once per turn of the event
    /// loop, after the log has taken [`Mesh::poll_persist`]'s records, and turn again
    /// without waiting while [`Mesh::snapshotting`] says more is to come.
    pub fn poll_snapshot(&mut self) -> Option<crate::store::SnapshotPart> {
        self.replica.store_mut().poll_snapshot()
    }

    /// Whether a snapshot is under way.
    pub fn snapshotting(&self) -> bool {
        self.store().snapshotting()
    }

    /// The link to `peer`, if its data channel is open.
    pub fn link_of(&self, peer: &str) -> Option<LinkId> {
        match self.peers.get(peer).map(|p| &p.conn) {
            Some(Conn::Open { link, .. }) => Some(*link),
            _ => None,
        }
    }

    /// Whether the switchboard still has `peer` (no `/leave` of it seen since its
    /// announce).
    pub fn in_room(&self, peer: &str) -> bool {
        self.peers.get(peer).is_some_and(|p| p.in_room)
    }

    /// Peers the switchboard still has whose links failed, so that they are not
    /// [present](Mesh::peers) (they were reported gone, `failed`) and are being
    /// retried: their [`Mesh::link_info`] says how often and when next.
    pub fn unreachable(&self) -> impl Iterator<Item = (&str, &Object)> {
        self.peers
            .iter()
            .filter(|(_, p)| !p.present && p.in_room && p.failures > 0)
            .map(|(k, p)| (k.as_str(), &p.attributes))
    }

    /// The connection to a present or [unreachable](Mesh::unreachable) `peer`: its
    /// state, codec and counters.
    pub fn link_info(&self, peer: &str) -> Option<LinkInfo> {
        let p = self
            .peers
            .get(peer)
            .filter(|p| p.present || (p.in_room && p.failures > 0))?;
        let (state, session, retry_at) = match &p.conn {
            Conn::Idle { retry_at } if !p.present => (LinkState::Failed, None, *retry_at),
            Conn::Idle { retry_at } => (LinkState::Idle, None, *retry_at),
            Conn::Negotiating { .. } => (LinkState::Negotiating, None, None),
            Conn::Open { link, .. } => (LinkState::Open, self.replica.session(*link), None),
        };
        Some(LinkInfo {
            state,
            codec: session.map(|s| s.codec()),
            synced: session.is_some_and(|s| s.is_synced()),
            stats: session.map(|s| s.stats().clone()).unwrap_or_default(),
            failures: p.failures,
            retry_at,
        })
    }

    /// The signalling client (its connection state, queue and counters).
    pub fn signal_client(&self) -> &SignalClient {
        &self.client
    }

    /// Announces us to the room (at once if signalling is connected, else as soon as it
    /// connects, and again after every reconnect).
    pub fn start(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        if !self.config.in_room {
            return;
        }
        let a = Signal::announce(&self.config.id, self.attributes());
        let a = self.secure_out(now, a);
        self.client.announce(&a);
        self.pump_signal();
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

    /// Leaves: says `BYE` on every link, keeps each until its remote closes it (at most
    /// [`CLOSE_FLUSH`], so what was written before reaches it), then closes what is
    /// left, says `/leave` and reports [`MeshEvent::Offline`]. [`Mesh::is_finished`]
    /// turns true after that.
    pub fn close(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.last_now = self.last_now.max(now);
        // Say goodbye on every link, behind what was written to it. Each link then stays
        // until its remote, having read everything before the goodbye, closes it (or
        // `CLOSE_FLUSH` passes); the `/leave` goes last, since a peer that hears it drops
        // its link to us at once and would lose what is still on the way.
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        for l in links {
            self.replica.send_control(l, &Control::Bye);
        }
        self.flush_replica();
        let idle: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, p)| !matches!(p.conn, Conn::Open { .. }))
            .map(|(id, _)| id.clone())
            .collect();
        for p in idle {
            self.drop_conn(&p, None);
        }
        let streams: Vec<LinkId> = self.streams.iter().copied().collect();
        for link in streams {
            self.detach(link);
        }
        self.closing_until = Some(now + CLOSE_FLUSH);
        self.check_closing();
    }

    /// While closing: once no link is left open, or `CLOSE_FLUSH` has passed, the
    /// remaining links go, then the `/leave`, and the mesh is offline.
    pub(super) fn check_closing(&mut self) {
        let Some(until) = self.closing_until else {
            return;
        };
        let open = self
            .peers
            .values()
            .any(|p| matches!(p.conn, Conn::Open { .. }));
        if open && self.last_now < until {
            return;
        }
        self.closing_until = None;
        let peers: Vec<String> = self.peers.keys().cloned().collect();
        for p in peers {
            self.drop_conn(&p, None);
        }
        if self.config.in_room {
            let me = self.config.id.clone();
            self.signal(Signal::leave(&me, None));
            // The leave goes out first if the connection is up; then it closes.
            self.client.close();
            self.pump_signal();
        }
        self.out.push_back(MeshOutput::Event(MeshEvent::Offline));
    }

    /// Whether the mesh has closed and every goodbye it had to give has been taken
    /// from [`poll_output`](Self::poll_output): nothing more will come out of it.
    pub fn is_finished(&self) -> bool {
        self.closed
            && self.closing_until.is_none()
            && self.out.is_empty()
            && self.held.is_empty()
            && !self.client.has_output()
    }

    /// Moves the replica's pending output ahead of what comes next.
    fn flush_replica(&mut self) {
        loop {
            match self.replica.poll_output() {
                ReplicaOutput::Transmit(link, data) => {
                    if let Some(o) = self.route(link, data) {
                        self.out.push_back(o);
                    }
                }
                ReplicaOutput::Event(e) => self.on_replica_event(e),
                ReplicaOutput::Timeout(_) => return,
            }
        }
    }

    fn event(&mut self, e: MeshEvent) {
        self.out.push_back(MeshOutput::Event(e));
    }

    /// When [`Mesh::poll_output`]'s timeout falls: a closed mesh's end of closing, else
    /// its next timer.
    fn poll_timeout(&self) -> Instant {
        if self.closed {
            self.closing_until.unwrap_or(self.last_now + IDLE)
        } else {
            self.next_timeout()
        }
    }

    /// The next output; drain until [`MeshOutput::Timeout`].
    ///
    /// A durable member ([`MeshConfig::durable`]) holds back what it makes while
    /// changes wait to be made durable ([`Mesh::poll_persist`], then
    /// [`Mesh::persisted`]): each output made then is kept with the number of the
    /// last record the store had made (an output can tell of no later change), and
    /// goes once that record is durable. So no event (a local write's `Update` is its
    /// acknowledgement), no update to a peer, no answer goes out before the changes
    /// behind it are on disk at the runtime's level, while a runtime that syncs in the
    /// background goes on taking inputs: what an earlier sync covered goes out as soon
    /// as it is done, whatever came since (the drivers drain after every input, so
    /// each output is taken, and numbered, right after the input that made it).
    pub fn poll_output(&mut self) -> MeshOutput {
        let Some((recorded, durable)) = self
            .store()
            .persist_seqs()
            .filter(|_| !cfg!(feature = "bug-ack-before-sync"))
        else {
            return self.next_output();
        };
        loop {
            if let Some(&(tag, _)) = self.held.front() {
                if tag <= durable {
                    return self.held.pop_front().map(|(_, o)| o).expect("a front");
                }
            }
            match self.next_output() {
                MeshOutput::Timeout(t) => return MeshOutput::Timeout(t),
                o if self.held.is_empty() && durable >= recorded => return o,
                o => self.held.push_back((recorded, o)),
            }
        }
    }

    /// The next output made (held or not: see [`Mesh::poll_output`]).
    fn next_output(&mut self) -> MeshOutput {
        loop {
            if let Some(o) = self.out.pop_front() {
                return o;
            }
            match self.replica.poll_output() {
                ReplicaOutput::Transmit(link, data) => {
                    if let Some(o) = self.route(link, data) {
                        return o;
                    }
                }
                ReplicaOutput::Event(e) => self.on_replica_event(e),
                ReplicaOutput::Timeout(_) => {
                    self.report_all_synced();
                    if self.out.is_empty() {
                        return MeshOutput::Timeout(self.poll_timeout());
                    }
                }
            }
        }
    }
}
