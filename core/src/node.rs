//! A mesh peer with real WebRTC: a [`Mesh`] plus one `str0m::Rtc` per peer, sans-IO.
//!
//! Inputs: the signalling connection's state and texts
//! ([`Node::handle_signal_connected`], [`Node::handle_signal`],
//! [`Node::handle_signal_disconnected`]), UDP datagrams ([`Node::handle_datagram`]:
//! source, destination, bytes) and timeouts ([`Node::handle_timeout`]); commands (`set`,
//! `delete`, `announce`, `close`). Outputs, from [`Node::poll_output`]: open, send on or
//! close the signalling connection, UDP transmits, events and the next timeout. The node
//! holds the signalling client (queue, backoff, announcing again after a reconnect). A
//! runtime owns one UDP socket and one WebSocket and moves bytes; nothing else.
//!
//! Local addresses given in [`NodeConfig::local_addrs`] become host candidates in the
//! SDP (natives do not trickle them). Remote candidates from signalling are added as
//! they come; empty, `.local` (mDNS) or unparsable ones are counted and ignored.
//!
//! STUN: with [`NodeConfig::stun_servers`], the node asks each server for our
//! server-reflexive address through a [`StunClient`] on the same socket (its answers
//! are taken before ICE sees them). A mapped address becomes a `srflx` candidate of
//! every connection: in the SDP of later ones, trickled (`/mesh:candidate`) to the
//! present ones. [`NodeEvent::Stun`] reports each answer.
//!
//! SCTP: offers carry SNAP (`a=sctp-init`, draft-hancke-tsvwg-snap), so two str0m
//! peers set up the data channel's association from the SDP instead of an INIT round
//! trip; a peer that does not know it (a browser) ignores the line and the normal
//! handshake runs. Besides being faster, it keeps simulations exact: sctp-proto starts
//! its INIT retransmission timer from the real clock.
//!
//! Flow control: each data channel keeps str0m's send buffer small (32 KiB by default,
//! since its CPU cost grows with data in flight). When a write does not fit, the frame
//! waits in a per-link queue (bounded, `max_queued` bytes) and goes out as the buffer
//! drains; a link whose queue overflows is reported with [`NodeEvent::LinkSlow`] and
//! closed, so no data is ever dropped silently.
//!
//! ## A custom event loop
//!
//! What `rtc-mesh-smol` and `rtc-mesh-std` do, in plain std: one UDP socket, a
//! WebSocket of yours to a switchboard, and the node deciding everything. Drain
//! [`Node::poll_output`] until it returns a timeout, wait for input or that instant,
//! feed what came, repeat.
//!
//! ```no_run
//! use std::net::UdpSocket;
//! use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
//! use rtc_mesh_core::mesh::{MeshConfig, MeshEvent};
//! use rtc_mesh_core::node::{Node, NodeConfig, NodeEvent, NodeOutput};
//! use rtc_mesh_core::Value;
//!
//! /// A WebSocket client of your choice, to the switchboard.
//! trait Ws {
//!     /// Connects; false if that failed.
//!     fn open(&mut self) -> bool;
//!     /// Sends a text frame; false if the connection is gone.
//!     fn send(&mut self, text: String) -> bool;
//!     /// Waits up to `wait` for a text: `Ok(None)` if none came, `Err(())` if the
//!     /// connection dropped (or none is open).
//!     fn recv(&mut self, wait: Duration) -> Result<Option<String>, ()>;
//!     /// Sends a close frame and drops the connection.
//!     fn close(&mut self);
//! }
//!
//! fn run(ws: &mut impl Ws) -> std::io::Result<()> {
//!     let udp = UdpSocket::bind("127.0.0.1:0")?;
//!     let local = udp.local_addr()?;
//!     let start = Instant::now();
//!     let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() * 1e3;
//!     let mut config = MeshConfig::new("alice", "lobby", "0123456789abcdef", epoch_ms, start);
//!     config.seed = 42; // any seed: core draws no randomness of its own
//!     let mut node = Node::new(NodeConfig::new(config, vec![local])).expect("valid id and room");
//!     node.start(start);
//!     node.set(start, "greeting", &Value::from("hello")).expect("a valid write");
//!     let mut buf = vec![0u8; 2048];
//!     let mut connected = false;
//!     udp.set_nonblocking(true)?;
//!     loop {
//!         let deadline = loop {
//!             match node.poll_output() {
//!                 NodeOutput::SignalConnect => {
//!                     connected = ws.open();
//!                     if connected {
//!                         node.handle_signal_connected(Instant::now());
//!                     } else {
//!                         node.handle_signal_disconnected(Instant::now());
//!                     }
//!                 }
//!                 NodeOutput::Signal(text) => {
//!                     if !ws.send(text) {
//!                         connected = false;
//!                         node.handle_signal_disconnected(Instant::now());
//!                     }
//!                 }
//!                 NodeOutput::SignalClose => ws.close(),
//!                 NodeOutput::Transmit { destination, data, .. } => {
//!                     udp.send_to(&data, destination)?;
//!                 }
//!                 NodeOutput::Event(NodeEvent::Mesh(MeshEvent::Update(u))) => {
//!                     println!("{} = {:?}", u.key, u.value);
//!                 }
//!                 NodeOutput::Event(_) => {}
//!                 NodeOutput::Stream { .. } | NodeOutput::CloseStream(_) => {} // none attached
//!                 NodeOutput::Timeout(at) => break at,
//!             }
//!         };
//!         if node.is_finished() {
//!             return Ok(());
//!         }
//!         // A real loop waits on both sources at once (poll/epoll, or a runtime);
//!         // this one alternates with a short wait to stay std-only.
//!         let wait = deadline
//!             .saturating_duration_since(Instant::now())
//!             .min(Duration::from_millis(5));
//!         if connected {
//!             match ws.recv(wait) {
//!                 Ok(Some(text)) => node.handle_signal(Instant::now(), &text),
//!                 Ok(None) => {}
//!                 Err(()) => {
//!                     connected = false;
//!                     node.handle_signal_disconnected(Instant::now());
//!                 }
//!             }
//!         } else {
//!             std::thread::sleep(wait);
//!         }
//!         while let Ok((n, from)) = udp.recv_from(&mut buf) {
//!             node.handle_datagram(Instant::now(), from, local, &buf[..n]);
//!         }
//!         node.handle_timeout(Instant::now());
//!     }
//! }
//! ```
//!
//! str0m draws its own randomness (DTLS keys, SCTP tags) and reads the clock lazily for
//! anchors; the ICE credentials come from the Node's seeded generator. So at Node level
//! "deterministic" means the same event timeline, not the same datagram bytes.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::channel::{ChannelConfig, ChannelId};
use str0m::net::{Protocol, Receive};
use str0m::{
    Candidate, CandidateKind, Event as RtcEvent, IceConnectionState, IceCreds, Input, Output, Rtc,
};

use crate::mesh::{
    LinkCommand, LinkState, Mesh, MeshConfig, MeshError, MeshEvent, MeshOutput, SdpKind,
};
use crate::replica::LinkId;
use crate::signal::PeerId;
use crate::store::{Store, StoreError, Update};
use crate::stun::{StunClient, StunEvent, StunOutput};
use crate::turn::{is_dtls, Datagram, Received, Relays, TurnEvent, TurnServer};
use crate::value::{Object, Value};
use crate::wire::Codec;

/// Configuration of a [`Node`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeConfig {
    /// The mesh.
    pub mesh: MeshConfig,
    /// Addresses of our UDP socket, offered as host candidates.
    pub local_addrs: Vec<SocketAddr>,
    /// str0m's SCTP send buffer per data channel (default 32 KiB).
    pub sctp_buffer: usize,
    /// Bytes a link may queue beyond that before it is reported slow and closed
    /// (default 8 MiB).
    pub max_queued: usize,
    /// STUN servers asked for our server-reflexive address (default none).
    pub stun_servers: Vec<SocketAddr>,
    /// TURN servers to allocate a relayed address on (default none): see
    /// [`crate::turn`].
    pub turn_servers: Vec<TurnServer>,
    /// Offer relayed candidates only (default false), as a browser's
    /// `iceTransportPolicy: 'relay'`: every link goes through a TURN server.
    pub relay_only: bool,
    /// An open connection that receives no datagram at all for this long is closed and
    /// its peer reported left (default 10 s). Every ICE agent checks its selected pair
    /// every few seconds (str0m at least every `ice_max_rto`, Chromium about every
    /// 2.5 s, Firefox's consent checks every 4-6 s, each retransmitted when lost), so
    /// silence this long means the peer is gone. It is how a peer that never pings (a
    /// plain scuttlebutt peer over WebRTC) is reported left within 15 s; str0m's ICE
    /// alone takes longer (it trusts a pair for 15 s after the remote's last check).
    /// A peer that pings is found out by the mesh's liveness rule in `dead_after` first.
    pub silence_timeout: Duration,
    /// The longest wait between our ICE checks (default 2 s; str0m's own is 3 s).
    pub ice_max_rto: Duration,
    /// ICE checks sent without an answer before str0m declares a connection
    /// disconnected (default 7; str0m's own is 9): see [`NodeConfig::ice_timeout`].
    pub ice_max_retransmits: usize,
    /// An open link whose peer pings but from which no data came for this long, while
    /// signalling works, is recovered by an ICE restart (default 2 s, half the mesh's
    /// `dead_after`): its offerer sends a new offer with fresh ICE credentials over
    /// signalling, and both ends check every candidate pair again, keeping DTLS, the
    /// data channel and the sync session. `Duration::MAX` turns restarts off.
    pub restart_after: Duration,
    /// How long a restart may take, from the peer's restart SDP, before the link is
    /// given up and negotiated anew (default 4 s: a path that died is back, or its peer
    /// reported left, within about 6 s of the silence starting). A restart is
    /// tried only while the switchboard has the peer, and given up after
    /// `restart_after` if no restart SDP came from it: a peer that is gone or hung is
    /// still reported left about when the mesh's `dead_after` says. A restart whose
    /// path brought datagrams within this time is not given up while its data is
    /// stalled for less than 10 s: SCTP backed its retransmissions off during the
    /// outage, so the first data can come some seconds after ICE found the path again.
    pub restart_timeout: Duration,
    /// Simulations only (default `false`): draw DTLS's retransmission jitter, handshake
    /// randoms and record nonces from a fixed-seed generator instead of the thread's, so
    /// that a simulated run with lost datagrams replays at the same instants.
    /// Certificates and key exchange stay random. Never set it on a real network.
    pub seeded_dtls: bool,
}

impl NodeConfig {
    /// The default for [`NodeConfig::max_queued`].
    pub const DEFAULT_MAX_QUEUED: usize = 8 << 20;

    /// The receive buffer both runtimes ask the kernel for on the node's UDP socket
    /// (`SO_RCVBUF`, 4 MiB; with `SO_RCVBUFFORCE` where the process may, past
    /// `net.core.rmem_max`). A browser's SCTP sender (Chromium's dcSCTP, Firefox's
    /// usrsctp) grows its window on a fast path up to the 1 MiB str0m advertises; the
    /// kernel's default buffer (212,992 bytes on Linux) holds about 92 of its datagrams,
    /// and each overflow costs the sender a halved window or a retransmission timeout
    /// (400 ms or more). Measured with `web/tests/browser/bench-browser.js`, which
    /// prints the kernel's drop count beside each figure.
    pub const UDP_RECV_BUFFER: usize = 4 << 20;

    /// A configuration for `mesh`, offering `local_addrs`.
    pub fn new(mesh: MeshConfig, local_addrs: Vec<SocketAddr>) -> Self {
        NodeConfig {
            mesh,
            local_addrs,
            sctp_buffer: 32 * 1024,
            max_queued: Self::DEFAULT_MAX_QUEUED,
            stun_servers: Vec::new(),
            turn_servers: Vec::new(),
            relay_only: false,
            silence_timeout: Duration::from_secs(10),
            ice_max_rto: Duration::from_secs(2),
            ice_max_retransmits: 7,
            restart_after: Duration::from_secs(2),
            restart_timeout: Duration::from_secs(4),
            seeded_dtls: false,
        }
    }

    /// How long ICE checks go unanswered before a connection is declared disconnected:
    /// the retransmission delays (250 ms doubling, capped at `ice_max_rto`) summed, as
    /// str0m's ICE agent does.
    pub fn ice_timeout(&self) -> Duration {
        let delay =
            |n: usize| Duration::from_millis(250u64 << (n - 1).min(20)).min(self.ice_max_rto);
        let n = self.ice_max_retransmits.max(1);
        (2..=n).map(delay).sum::<Duration>() + delay(n)
    }
}

/// An ICE candidate's type, as `RTCIceCandidate.type` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CandidateType {
    /// An interface address.
    Host,
    /// An address a STUN server saw (a NAT's mapping).
    Srflx,
    /// An address learnt from a connectivity check.
    Prflx,
    /// A TURN server's relayed address.
    Relay,
}

impl CandidateType {
    /// `host`, `srflx`, `prflx` or `relay`.
    pub fn name(self) -> &'static str {
        match self {
            CandidateType::Host => "host",
            CandidateType::Srflx => "srflx",
            CandidateType::Prflx => "prflx",
            CandidateType::Relay => "relay",
        }
    }

    fn of(k: CandidateKind) -> Self {
        match k {
            CandidateKind::Host => CandidateType::Host,
            CandidateKind::ServerReflexive => CandidateType::Srflx,
            CandidateKind::PeerReflexive => CandidateType::Prflx,
            CandidateKind::Relayed => CandidateType::Relay,
        }
    }
}

/// One end of a link's path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathEnd {
    /// Its candidate type.
    pub kind: CandidateType,
    /// Its address.
    pub addr: SocketAddr,
}

/// The path a link uses: our end and the remote's ([`Node::link_path`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkPath {
    /// Our end.
    pub local: PathEnd,
    /// The remote's end.
    pub remote: PathEnd,
}

/// Node-level happenings besides the mesh's own events.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// A mesh event.
    Mesh(MeshEvent),
    /// The link to `peer` could not keep up (its queue passed `max_queued`); it was
    /// closed and will be negotiated again.
    LinkSlow {
        /// The peer.
        peer: PeerId,
    },
    /// A STUN server answered (or gave up): a mapped address becomes a server-reflexive
    /// candidate.
    Stun(StunEvent),
    /// A TURN server gave us a relayed address, or gives us none.
    Turn(TurnEvent),
    /// The switchboard offers TURN servers with short-lived credentials (see
    /// [`TurnOffer`](crate::switchboard::TurnOffer)), and this node was given none
    /// itself. The driver resolves their URLs (as
    /// [`JoinOptions::resolve_turn`](crate::member::JoinOptions::resolve_turn) does)
    /// and passes them to [`Node::use_ice_servers`]; a driver that ignores this event
    /// simply goes on without them. Reported once per node.
    IceOffered {
        /// As a browser's `RTCIceServer`s.
        servers: Vec<crate::member::IceServer>,
    },
    /// A connection to `peer` could not be made (ICE found no working path, or DTLS
    /// or the data channel failed before it opened). The first time, the mesh also
    /// reports the peer gone (`failed`); it is tried again at `retry_at`, with
    /// backoff, while the switchboard still has it.
    LinkFailed {
        /// The peer.
        peer: PeerId,
        /// Failures in a row, this one included.
        failures: u32,
        /// When the next attempt starts (none if the peer is gone for good).
        retry_at: Option<Instant>,
    },
}

/// What [`Node::poll_output`] returns.
#[derive(Debug)]
pub enum NodeOutput {
    /// Open the signalling connection (a WebSocket to the switchboard), then report
    /// [`Node::handle_signal_connected`] or [`Node::handle_signal_disconnected`].
    SignalConnect,
    /// Send this text on the open signalling connection.
    Signal(String),
    /// Close the signalling connection after sending what came before.
    SignalClose,
    /// Send a UDP datagram.
    Transmit {
        /// Our address to send from.
        source: SocketAddr,
        /// Where to.
        destination: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
    /// Bytes to write to an attached stream ([`Node::attach`]).
    Stream {
        /// The stream's link.
        link: LinkId,
        /// The bytes.
        data: Vec<u8>,
    },
    /// Close an attached stream, after writing what came before.
    CloseStream(LinkId),
    /// An event.
    Event(NodeEvent),
    /// Call [`Node::handle_timeout`] at this instant (or earlier, on input).
    Timeout(Instant),
}

/// Counters of a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Remote candidates ignored (empty, mDNS `.local`, unparsable).
    pub candidates_ignored: u64,
    /// Datagrams no connection accepted.
    pub datagrams_unmatched: u64,
    /// Frames that waited in a link queue because str0m's buffer was full.
    pub frames_queued: u64,
    /// Links closed for being too slow.
    pub links_slow: u64,
    /// Open connections closed because nothing at all arrived for `silence_timeout`.
    pub links_silent: u64,
    /// ICE restarts begun (by us or the peer), and those after which data flowed again.
    pub restarts: u64,
    /// See [`NodeStats::restarts`].
    pub restarts_recovered: u64,
}

impl NodeStats {
    /// Every counter with its field's name, in declaration order (for reports).
    pub fn counters(&self) -> [(&'static str, u64); 7] {
        [
            ("candidates_ignored", self.candidates_ignored),
            ("datagrams_unmatched", self.datagrams_unmatched),
            ("frames_queued", self.frames_queued),
            ("links_slow", self.links_slow),
            ("links_silent", self.links_silent),
            ("restarts", self.restarts),
            ("restarts_recovered", self.restarts_recovered),
        ]
    }
}

/// Datagrams no connection accepts yet are held this long...
const HOLD_FOR: Duration = Duration::from_millis(500);
/// How long a link whose path is alive is held while its channel data stalls. A lost
/// frame holds the later ones back (SCTP delivers in order) until it is retransmitted:
/// one retransmission timeout at least 1 s, doubling when the retransmission is lost
/// too (1 + 2 + 4 s). A peer whose WebRTC stack answers while its application hangs
/// is reported this much later than one that is gone.
const STALL_HOLD: Duration = Duration::from_secs(10);
/// ... at most this many.
const MAX_HELD: usize = 64;

enum Delivered {
    Yes,
    NoTaker,
    Invalid,
}

/// A link queue holding this many bytes pauses the link's session...
const PAUSE_AT: usize = 256 * 1024;
/// ... until it drains below this.
const RESUME_AT: usize = 64 * 1024;

struct PeerRtc {
    /// The mesh was told to stop encoding for this link.
    paused: bool,
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    channel: Option<ChannelId>,
    /// Our ICE username fragment and the data m-line's mid (for trickled candidates).
    ufrag: String,
    mid: Option<String>,
    /// Frames waiting for room in str0m's buffer, and their bytes.
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    timeout: Option<Instant>,
    /// Once the data channel is open: when the last datagram arrived.
    heard: Option<Instant>,
    /// The path DTLS and SCTP last went out on: (our address, its address).
    path: Option<(SocketAddr, SocketAddr)>,
    /// Its candidates: address and kind.
    remote: Vec<(SocketAddr, CandidateKind)>,
    /// We made the first offer (and make the offers of ICE restarts).
    offerer: bool,
    /// Once the data channel is open: when channel data last arrived.
    data_heard: Option<Instant>,
    /// When a datagram last came on `path` (consent checks, SCTP acknowledgements and
    /// retransmissions included).
    path_heard: Option<Instant>,
    /// An ICE restart runs, until this instant: first only as long as an SDP round
    /// trip may take, then (once the offer or answer came) `restart_timeout`.
    restart: Option<Instant>,
}

impl PeerRtc {
    /// Since when the open link brought neither channel data nor any datagram on its
    /// path. Data alone is not enough: on a lossy path a lost frame holds the later
    /// ones back (SCTP delivers in order) for a retransmission timeout, which may pass
    /// `restart_after` while the path is fine.
    fn quiet_since(&self) -> Option<Instant> {
        let data = self.data_heard?;
        Some(self.path_heard.map_or(data, |p| p.max(data)))
    }

    /// Whether datagrams come on the path (within `after`) while channel data has
    /// stalled for less than [`STALL_HOLD`]: SCTP is retransmitting, the peer is there.
    fn stalled(&self, now: Instant, after: Duration) -> bool {
        self.stall_ends(after).is_some_and(|end| now < end)
    }

    /// When [`PeerRtc::stalled`] turns false if nothing more comes.
    fn stall_ends(&self, after: Duration) -> Option<Instant> {
        let (d, p) = (self.data_heard?, self.path_heard?);
        let hold = d + STALL_HOLD;
        Some(p.checked_add(after).map_or(hold, |t| t.min(hold)))
    }

    /// When to look at a running restart again: at its deadline; past it (held while
    /// the path answers, [`NodeConfig::restart_timeout`]) when the hold ends.
    fn restart_due(&self, now: Instant, timeout: Duration) -> Option<Instant> {
        let until = self.restart?;
        if until > now {
            return Some(until);
        }
        self.stall_ends(timeout).map(|t| t.max(now))
    }
}

/// A WebRTC mesh peer. See the module docs.
pub struct Node {
    config: NodeConfig,
    mesh: Mesh,
    rtcs: BTreeMap<PeerId, PeerRtc>,
    /// Connections given up before they opened, to report.
    gave_up: Vec<PeerId>,
    /// A TURN offer of the switchboard was reported.
    ice_offered: bool,
    out: VecDeque<NodeOutput>,
    now: Instant,
    rng: u64,
    stats: NodeStats,
    /// Datagrams waiting for a connection to accept them: (arrival, source, dest, bytes).
    held: VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    stun: StunClient,
    /// When the STUN client next wants `handle_timeout`.
    stun_at: Instant,
    /// Server-reflexive candidates found: (mapped, base).
    reflexive: Vec<(SocketAddr, SocketAddr)>,
    /// TURN allocations, and when they next want `handle_timeout`.
    relays: Relays,
    relays_at: Instant,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.mesh.id())
            .field("rtcs", &self.rtcs.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Node {
    /// A node; call [`start`](Self::start) to announce.
    pub fn new(mut config: NodeConfig) -> Result<Self, MeshError> {
        // (The log read back goes into the store, not into the configuration kept.)
        match config.mesh.durable.take() {
            Some(mut log) => Self::with_log(config, &mut log),
            None => {
                let mesh = Mesh::new(config.mesh.clone())?;
                Ok(Self::around(config, mesh))
            }
        }
    }

    /// A durable node whose store is built from `log` as it is read back
    /// ([`Mesh::with_log`]).
    pub fn with_log<S>(mut config: NodeConfig, log: &mut S) -> Result<Self, MeshError>
    where
        S: crate::persist::LogSource,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        config.mesh.durable = None;
        let mesh = Mesh::with_log(config.mesh.clone(), log)?;
        Ok(Self::around(config, mesh))
    }

    fn around(config: NodeConfig, mesh: Mesh) -> Self {
        let now = config.mesh.start;
        let rng = config.mesh.seed ^ 0x6e6f_6465;
        let stun = StunClient::new(config.stun_servers.clone(), rng.rotate_left(23), now);
        let relays = Relays::new(
            &config.turn_servers,
            |server| base_for(&config.local_addrs, server),
            now,
        );
        Node {
            relays,
            relays_at: now,
            stun,
            stun_at: now + crate::signal_client::IDLE,
            reflexive: Vec::new(),
            config,
            mesh,
            rtcs: BTreeMap::new(),
            gave_up: Vec::new(),
            ice_offered: false,
            out: VecDeque::new(),
            now,
            rng: rng | 1,
            stats: NodeStats::default(),
            held: VecDeque::new(),
        }
    }

    /// The mesh (peers, store, replica).
    pub fn mesh(&self) -> &Mesh {
        &self.mesh
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.mesh.store()
    }

    /// A durable member: the store's changes since the last call, as log records (see
    /// [`Mesh::poll_persist`]).
    pub fn poll_persist(&mut self) -> Option<crate::store::PersistBatch> {
        self.mesh.poll_persist()
    }

    /// A durable member: the records up to `seq` are durable (see [`Mesh::persisted`]).
    pub fn persisted(&mut self, seq: u64) {
        self.mesh.persisted(seq);
    }

    /// A durable member: the next piece of a snapshot (see
    /// [`crate::mesh::Mesh::poll_snapshot`]).
    pub fn poll_snapshot(&mut self) -> Option<crate::store::SnapshotPart> {
        self.mesh.poll_snapshot()
    }

    /// Whether a snapshot is under way.
    pub fn snapshotting(&self) -> bool {
        self.mesh.snapshotting()
    }

    /// Counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// The path the connection to `peer` uses (once DTLS has gone out on it): each
    /// end's candidate type and address. Ours is `relay` when we send from a relayed
    /// address, `srflx` when we send from an address a STUN server saw mapped to
    /// another and the remote is no host candidate (so it sees the mapped one), else
    /// `host`; the remote's is the type it gave its candidate of that address, or
    /// `prflx` for an address it gave no candidate for.
    pub fn link_path(&self, peer: &str) -> Option<LinkPath> {
        let p = self.rtcs.get(peer)?;
        let (local, remote) = p.path?;
        let remote_kind = p
            .remote
            .iter()
            .find(|(a, _)| *a == remote)
            .map_or(CandidateType::Prflx, |(_, k)| CandidateType::of(*k));
        let local_kind = if self.relays.is_relayed(local) {
            CandidateType::Relay
        } else if remote_kind != CandidateType::Host
            && self.reflexive.iter().any(|(m, b)| *b == local && m != b)
        {
            CandidateType::Srflx
        } else {
            CandidateType::Host
        };
        Some(LinkPath {
            local: PathEnd {
                kind: local_kind,
                addr: local,
            },
            remote: PathEnd {
                kind: remote_kind,
                addr: remote,
            },
        })
    }

    /// Server-reflexive addresses found through STUN: (mapped, base).
    pub fn reflexive_addrs(&self) -> &[(SocketAddr, SocketAddr)] {
        &self.reflexive
    }

    /// Announces us (and asks the STUN servers).
    pub fn start(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.mesh.start(now);
        self.relay_progress();
        if !self.stun.is_empty() {
            self.stun.start(now);
            self.stun_progress();
        }
    }

    /// Our address of `dest`'s family that reaches it: where STUN requests go from.
    fn base_for(&self, dest: SocketAddr) -> Option<SocketAddr> {
        base_for(&self.config.local_addrs, dest)
    }

    /// Moves the TURN clients' datagrams out and turns allocations into candidates.
    fn relay_progress(&mut self) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        let next = self.relays.progress(self.now, &mut out, &mut events);
        self.relays_at = next.unwrap_or(self.now + crate::signal_client::IDLE);
        self.push_datagrams(out);
        for e in events {
            if let TurnEvent::Allocated { relayed, .. } = &e {
                let local = self.relays.relayed().find(|(r, _)| r == relayed);
                if let Some(c) =
                    local.and_then(|(_, l)| Candidate::relayed(*relayed, l, "udp").ok())
                {
                    let peers: Vec<PeerId> = self.rtcs.keys().cloned().collect();
                    for peer in peers {
                        self.add_local(&peer, c.clone());
                    }
                }
            }
            self.out.push_back(NodeOutput::Event(NodeEvent::Turn(e)));
        }
    }

    fn push_datagrams(&mut self, out: Vec<Datagram>) {
        for d in out {
            self.out.push_back(NodeOutput::Transmit {
                source: d.source,
                destination: d.destination,
                data: d.data,
            });
        }
    }

    /// A datagram str0m sends: from a relayed address through its TURN server, else
    /// straight from our socket.
    fn transmit(&mut self, source: SocketAddr, destination: SocketAddr, data: Vec<u8>) {
        if self.relays.is_relayed(source) {
            if let Some(d) = self.relays.send(self.now, source, destination, &data) {
                self.push_datagrams(vec![d]);
            }
            if self.relays.asked() {
                self.relay_progress();
            }
        } else {
            self.out.push_back(NodeOutput::Transmit {
                source,
                destination,
                data,
            });
        }
    }

    /// Moves STUN requests out and turns answers into candidates.
    fn stun_progress(&mut self) {
        loop {
            let e = match self.stun.poll_output() {
                StunOutput::Transmit { server, data } => {
                    if let Some(source) = self.base_for(server) {
                        self.out.push_back(NodeOutput::Transmit {
                            source,
                            destination: server,
                            data,
                        });
                    }
                    continue;
                }
                StunOutput::Event(e) => e,
                StunOutput::Timeout(t) => {
                    self.stun_at = t;
                    return;
                }
            };
            if let StunEvent::Mapped { server, mapped } = &e {
                let base = self.base_for(*server);
                if let Some(base) = base.filter(|_| !self.reflexive.iter().any(|r| r.0 == *mapped))
                {
                    self.reflexive.push((*mapped, base));
                    let c = Candidate::server_reflexive(*mapped, base, "udp").ok();
                    if let Some(c) = c.filter(|_| !self.config.relay_only) {
                        let peers: Vec<PeerId> = self.rtcs.keys().cloned().collect();
                        for peer in peers {
                            self.add_local(&peer, c.clone());
                        }
                    }
                }
            }
            self.out.push_back(NodeOutput::Event(NodeEvent::Stun(e)));
        }
    }

    /// Adds a local candidate (server-reflexive or relayed) to `peer`'s connection and
    /// trickles it.
    fn add_local(&mut self, peer: &str, c: Candidate) {
        let Some(p) = self.rtcs.get_mut(peer) else {
            return;
        };
        // str0m drops a candidate equal to one it has (a mapped address that is our
        // host address: no NAT in between).
        let Some(added) = p.rtc.add_local_candidate(c) else {
            return;
        };
        let mut o = Object::new();
        o.insert("candidate", Value::from(added.to_sdp_string()));
        o.insert(
            "sdpMid",
            p.mid.as_deref().map(Value::from).unwrap_or(Value::Null),
        );
        o.insert("sdpMLineIndex", Value::from(0.0));
        o.insert("usernameFragment", Value::from(p.ufrag.as_str()));
        self.mesh.local_candidate(self.now, peer, o);
        self.poll_rtc(peer);
    }

    /// Sets `key` (null deletes).
    pub fn set(&mut self, now: Instant, key: &str, value: &Value) -> Result<Update, StoreError> {
        self.now = self.now.max(now);
        self.mesh.set(now, key, value)
    }

    /// Deletes `key`.
    pub fn delete(&mut self, now: Instant, key: &str) -> Result<Update, StoreError> {
        self.now = self.now.max(now);
        self.mesh.delete(now, key)
    }

    /// Updates our attributes and announces them.
    pub fn announce(&mut self, now: Instant, attributes: Object) {
        self.now = self.now.max(now);
        self.mesh.announce(now, attributes);
    }

    /// Leaves the room and closes every connection (and gives the TURN allocations
    /// back).
    pub fn close(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.mesh.close(now);
    }

    /// The signalling connection asked for by [`NodeOutput::SignalConnect`] opened.
    pub fn handle_signal_connected(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.mesh.handle_signal_connected(now);
    }

    /// A text from the switchboard.
    pub fn handle_signal(&mut self, now: Instant, text: &str) {
        self.now = self.now.max(now);
        if let Some(servers) = crate::member::IceServer::offered(text) {
            // The switchboard's own message, for us alone: not the room's.
            if self.config.turn_servers.is_empty() && !self.ice_offered && !servers.is_empty() {
                self.ice_offered = true;
                self.out
                    .push_back(NodeOutput::Event(NodeEvent::IceOffered { servers }));
            }
            return;
        }
        self.mesh.handle_signal(now, text);
    }

    /// Uses these STUN and TURN servers too (say, the ones the switchboard offered:
    /// [`NodeEvent::IceOffered`]): each new TURN server is allocated on at once and its
    /// relayed address offered to every peer, as those given in [`NodeConfig`] are.
    pub fn use_ice_servers(&mut self, now: Instant, stun: &[SocketAddr], turn: &[TurnServer]) {
        self.now = self.now.max(now);
        let locals = &self.config.local_addrs;
        self.relays
            .add(turn, |server| base_for(locals, server), now);
        self.relay_progress();
        if !stun.is_empty() {
            for s in stun {
                self.stun.add(now, *s);
            }
            self.stun_progress();
        }
    }

    /// The signalling connection failed to open or dropped (the node asks for a new one
    /// after a backoff, and queues what it sends until then).
    pub fn handle_signal_disconnected(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.mesh.handle_signal_disconnected(now);
    }

    /// The switchboard answered our connection with this HTTP status instead of
    /// the upgrade ([`Mesh::handle_signal_refused`]).
    pub fn handle_signal_refused(&mut self, now: Instant, status: &str) {
        self.now = self.now.max(now);
        self.mesh.handle_signal_refused(now, status);
    }

    /// Attaches an ordered byte stream (a TCP socket, say) speaking `codec` as one more
    /// link of our store, beside the room's data channels ([`Mesh::attach`]). Its bytes
    /// come out as [`NodeOutput::Stream`]; feed what it receives to
    /// [`stream_data`](Self::stream_data) and its end to [`stream_end`](Self::stream_end).
    pub fn attach(&mut self, now: Instant, codec: Codec) -> Option<LinkId> {
        self.now = self.now.max(now);
        self.mesh.attach(now, codec)
    }

    /// Bytes arrived on an attached stream.
    pub fn stream_data(&mut self, now: Instant, link: LinkId, data: &[u8]) {
        self.now = self.now.max(now);
        self.mesh.stream_data(now, link, data);
    }

    /// An attached stream ended.
    pub fn stream_end(&mut self, now: Instant, link: LinkId) {
        self.now = self.now.max(now);
        self.mesh.stream_end(now, link);
    }

    /// A UDP datagram arrived on our socket.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) {
        self.now = self.now.max(now);
        match self.relays.recv(now, source, destination, data) {
            Received::NotOurs => {}
            Received::Taken => return self.relay_progress(),
            Received::Peer {
                from,
                relayed,
                data,
            } => return self.take(now, from, relayed, &data),
        }
        if self.stun.handle_datagram(now, source, data) {
            self.stun_progress();
            return;
        }
        self.take(now, source, destination, data);
    }

    /// A datagram for ICE, DTLS or SCTP: to the connection that accepts it, or held.
    fn take(&mut self, now: Instant, source: SocketAddr, destination: SocketAddr, data: &[u8]) {
        match self.deliver(now, source, destination, data) {
            Delivered::Yes => {
                // A connectivity check may have just made earlier datagrams acceptable
                // (a DTLS hello can arrive before the check that validates its path).
                self.retry_held(now);
            }
            Delivered::NoTaker => {
                // Hold it briefly instead of dropping it: saves a DTLS retransmission
                // (about a second) at connection setup.
                if self.held.len() == MAX_HELD {
                    self.held.pop_front();
                }
                self.held
                    .push_back((now, source, destination, data.to_vec()));
            }
            Delivered::Invalid => self.stats.datagrams_unmatched += 1,
        }
    }

    fn deliver(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Delivered {
        let Ok(recv) = Receive::new(Protocol::Udp, source, destination, data) else {
            return Delivered::Invalid;
        };
        let input = Input::Receive(now, recv);
        let peer = self
            .rtcs
            .iter()
            .find(|(_, p)| p.rtc.accepts(&input))
            .map(|(k, _)| k.clone());
        let Some(peer) = peer else {
            return Delivered::NoTaker;
        };
        let failed = match self.rtcs.get_mut(&peer) {
            Some(p) => {
                if let Some(h) = p.heard.as_mut() {
                    *h = now;
                }
                if p.path == Some((destination, source)) {
                    p.path_heard = Some(now);
                }
                p.rtc.handle_input(input).is_err()
            }
            None => false,
        };
        if failed {
            self.rtc_failed(&peer);
        } else {
            self.poll_rtc(&peer);
        }
        Delivered::Yes
    }

    fn retry_held(&mut self, now: Instant) {
        let held = std::mem::take(&mut self.held);
        for (at, src, dst, data) in held {
            if now.saturating_duration_since(at) > HOLD_FOR {
                self.stats.datagrams_unmatched += 1;
                continue;
            }
            if let Delivered::NoTaker = self.deliver(now, src, dst, &data) {
                self.held.push_back((at, src, dst, data));
            }
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.restart_tick(now);
        self.mesh.handle_timeout(now);
        if self.stun_at <= now {
            self.stun.handle_timeout(now);
            self.stun_progress();
        }
        if self.relays_at <= now {
            self.relay_progress();
        }
        let due: Vec<PeerId> = self
            .rtcs
            .iter()
            .filter(|(_, p)| p.timeout.is_none_or(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for peer in due {
            let failed = match self.rtcs.get_mut(peer.as_str()) {
                Some(p) => p.rtc.handle_input(Input::Timeout(now)).is_err(),
                None => false,
            };
            if failed {
                self.rtc_failed(&peer);
            } else {
                self.poll_rtc(&peer);
            }
        }
        let silence = self.config.silence_timeout;
        let silent: Vec<PeerId> = self
            .rtcs
            .iter()
            .filter(|(_, p)| {
                p.heard
                    .is_some_and(|h| now.saturating_duration_since(h) >= silence)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for peer in silent {
            self.stats.links_silent += 1;
            self.rtc_failed(&peer);
        }
    }

    /// A candidate of `peer` (in its SDP or trickled): through our relays it may send to
    /// us, and we to it, so it is permitted (the caller moves the TURN requests out);
    /// and its type is kept for [`Node::link_path`].
    fn remote_seen(&mut self, now: Instant, peer: &PeerId, c: &Candidate) {
        self.relays.permit(now, c.addr().ip());
        if let Some(p) = self.rtcs.get_mut(peer) {
            p.remote.push((c.addr(), c.kind()));
        }
    }

    /// Applies the remote's SDP (of an ICE restart of the open link if `restart`).
    fn remote_sdp(&mut self, now: Instant, peer: &PeerId, kind: SdpKind, sdp: &str, restart: bool) {
        // Its candidates may send to our relays: permitted before ICE starts
        // (a controlled agent may wait for the other side's checks).
        for line in sdp.lines() {
            if let Some(c) = line
                .trim()
                .strip_prefix("a=")
                .and_then(|l| l.parse_candidate())
            {
                self.remote_seen(now, peer, &c);
            }
        }
        if self.relays.asked() {
            self.relay_progress();
        }
        let Some(restarting) = self.rtcs.get(peer).map(|p| p.restart.is_some()) else {
            return;
        };
        if restart && !restarting {
            self.stats.restarts += 1;
            self.recheck_paths(now);
        }
        let Some(p) = self.rtcs.get_mut(peer) else {
            return;
        };
        if restart {
            // The peer takes part: the restart has its full time.
            p.restart = Some(now + self.config.restart_timeout);
        }
        let ok = match kind {
            SdpKind::Offer => match SdpOffer::from_sdp_string(sdp)
                .ok()
                .and_then(|o| p.rtc.sdp_api().accept_offer(o).ok())
            {
                Some(answer) => {
                    let text = answer.to_sdp_string();
                    p.mid = sdp_attr(&text, "mid");
                    if restart {
                        // Our fresh credentials, for the candidates we trickle.
                        if let Some(u) = sdp_attr(&text, "ice-ufrag") {
                            p.ufrag = u;
                        }
                        self.mesh
                            .local_restart_sdp(now, peer, SdpKind::Answer, &text);
                    } else {
                        self.mesh.local_sdp(now, peer, SdpKind::Answer, &text);
                    }
                    true
                }
                None => false,
            },
            SdpKind::Answer => match (SdpAnswer::from_sdp_string(sdp), p.pending.take()) {
                (Ok(a), Some(pending)) => p.rtc.sdp_api().accept_answer(pending, a).is_ok(),
                _ => false,
            },
        };
        // str0m's ICE agent asks for no timeout until it has had one: give it
        // one now, or an answerer whose peer's checks cannot reach it (a NAT
        // that lets in only what answers our own checks) never starts its own.
        let ok = ok
            && self
                .rtcs
                .get_mut(peer)
                .is_some_and(|p| p.rtc.handle_input(Input::Timeout(now)).is_ok());
        if ok {
            self.poll_rtc(peer);
        } else {
            self.rtc_failed(peer);
        }
    }

    /// The open link to `peer` went quiet while signalling works: its offerer restarts
    /// ICE (fresh credentials, every pair checked again); the answerer waits for that
    /// offer. Either way the mesh holds the link until `restart_timeout`.
    fn start_restart(&mut self, now: Instant, peer: &PeerId) {
        // Until the peer's restart SDP comes: one more `restart_after`.
        let until = now + self.config.restart_after;
        let Some(p) = self.rtcs.get_mut(peer) else {
            return;
        };
        p.restart = Some(until);
        self.stats.restarts += 1;
        let offerer = p.offerer;
        self.recheck_paths(now);
        if !offerer {
            return;
        }
        let Some(p) = self.rtcs.get_mut(peer) else {
            return;
        };
        let mut api = p.rtc.sdp_api();
        let creds = api.ice_restart(true);
        let Some((offer, pending)) = api.apply() else {
            self.rtc_failed(peer);
            return;
        };
        p.pending = Some(pending);
        p.ufrag = creds.ufrag;
        let text = offer.to_sdp_string();
        self.mesh
            .local_restart_sdp(now, peer, SdpKind::Offer, &text);
        self.poll_rtc(peer);
    }

    /// A link went quiet: our NAT may have given us a new mapping. Ask the STUN
    /// servers again (a new reflexive address is trickled) and check that each TURN
    /// allocation still belongs to our mapping (a new one replaces it if not).
    fn recheck_paths(&mut self, now: Instant) {
        if !self.stun.is_empty() {
            self.stun.start(now);
            self.stun_progress();
        }
        self.relays.probe(now);
        if self.relays.asked() {
            self.relay_progress();
        }
    }

    /// Restarts to begin, to hold, and to give up (before the mesh's own liveness
    /// rule runs, so that a link being restarted is not reported dead).
    fn restart_tick(&mut self, now: Instant) {
        let after = self.config.restart_after;
        let timeout = self.config.restart_timeout;
        let signal_up = self.mesh.signal_client().is_connected();
        let mut begin = Vec::new();
        let mut give_up = Vec::new();
        for (peer, p) in &self.rtcs {
            match (p.restart, p.quiet_since()) {
                // Past its time, held while the path answers and data stalls (SCTP's
                // retransmission timer backed off while the path was down).
                (Some(until), _) if now >= until && !p.stalled(now, timeout) => {
                    give_up.push(peer.clone())
                }
                (Some(_), _) => {}
                (None, Some(h)) if signal_up && now.saturating_duration_since(h) >= after => {
                    let pings = self
                        .mesh
                        .link_info(peer)
                        .is_some_and(|i| i.state == LinkState::Open && i.stats.pings_in > 0);
                    if pings && self.mesh.in_room(peer) {
                        begin.push(peer.clone());
                    }
                }
                _ => {}
            }
        }
        for peer in give_up {
            self.rtc_failed(&peer);
        }
        for peer in begin {
            self.start_restart(now, &peer);
        }
        // Held: links being restarted (alive now), and links whose path is alive while
        // their data stalls, for up to STALL_HOLD (alive as of the path's last datagram:
        // once the path goes quiet too, the mesh's liveness rule counts from there, so a
        // peer that closed is reported left as soon as without the hold).
        let held: Vec<(PeerId, Instant)> = self
            .rtcs
            .iter()
            .filter_map(|(k, p)| match (p.restart, p.path_heard) {
                (Some(_), _) => Some((k.clone(), now)),
                (None, Some(heard)) if p.stalled(now, after) => Some((k.clone(), heard)),
                _ => None,
            })
            .collect();
        for (peer, at) in held {
            self.mesh.link_alive(at, &peer);
        }
    }

    fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            s.push_str(&format!("{:016x}", crate::rng::next(&mut self.rng)));
        }
        s.truncate(n);
        s
    }

    /// A connection offering our host and known server-reflexive candidates; and our
    /// ICE username fragment.
    fn new_rtc(&mut self) -> (Rtc, String) {
        let creds = IceCreds {
            ufrag: self.hex(8),
            pass: self.hex(24),
        };
        let ufrag = creds.ufrag.clone();
        let mut builder = Rtc::builder()
            .set_local_ice_credentials(creds)
            .set_sctp_max_buffered_amount(self.config.sctp_buffer)
            .set_snap_enabled(true);
        builder.set_max_stun_rto(self.config.ice_max_rto);
        builder.set_max_stun_retransmits(self.config.ice_max_retransmits);
        if self.config.seeded_dtls {
            builder = builder.set_crypto_provider(crate::seeded_dtls::provider());
        }
        let mut rtc = builder.build(self.now);
        if !self.config.relay_only {
            for a in &self.config.local_addrs {
                if let Ok(c) = Candidate::host(*a, "udp") {
                    rtc.add_local_candidate(c);
                }
            }
            for (mapped, base) in &self.reflexive {
                if let Ok(c) = Candidate::server_reflexive(*mapped, *base, "udp") {
                    rtc.add_local_candidate(c);
                }
            }
        }
        for (relayed, local) in self.relays.relayed() {
            if let Ok(c) = Candidate::relayed(relayed, local, "udp") {
                rtc.add_local_candidate(c);
            }
        }
        (rtc, ufrag)
    }

    fn link_command(&mut self, cmd: LinkCommand) {
        let now = self.now;
        match cmd {
            LinkCommand::Open {
                peer,
                offerer,
                codec,
            } => {
                let (mut rtc, ufrag) = self.new_rtc();
                let (mut pending, mut channel, mut mid) = (None, None, None);
                if offerer {
                    let mut api = rtc.sdp_api();
                    let cid = api.add_channel_with_config(ChannelConfig {
                        label: "mesh".into(),
                        protocol: codec.name().into(),
                        ..ChannelConfig::default()
                    });
                    let Some((offer, p)) = api.apply() else {
                        self.mesh.link_closed(now, &peer);
                        return;
                    };
                    pending = Some(p);
                    channel = Some(cid);
                    let text = offer.to_sdp_string();
                    mid = sdp_attr(&text, "mid");
                    self.mesh.local_sdp(now, &peer, SdpKind::Offer, &text);
                }
                let entry = PeerRtc {
                    paused: false,
                    rtc,
                    pending,
                    channel,
                    ufrag,
                    mid,
                    queue: VecDeque::new(),
                    queued: 0,
                    timeout: None,
                    heard: None,
                    path: None,
                    remote: Vec::new(),
                    offerer,
                    data_heard: None,
                    path_heard: None,
                    restart: None,
                };
                self.rtcs.insert(peer.clone(), entry);
                self.poll_rtc(&peer);
            }
            LinkCommand::RemoteSdp { peer, kind, sdp } => {
                self.remote_sdp(now, &peer, kind, &sdp, false);
            }
            LinkCommand::RestartSdp { peer, kind, sdp } => {
                self.remote_sdp(now, &peer, kind, &sdp, true);
            }
            LinkCommand::RemoteCandidate { peer, candidate } => {
                let text = match candidate.get("candidate") {
                    Some(Value::String(s)) => s.clone(),
                    _ => String::new(),
                };
                let parsed = text
                    .strip_prefix("a=")
                    .unwrap_or(&text)
                    .parse_candidate()
                    .filter(|c| !c.addr().ip().is_unspecified());
                if let Some(c) = &parsed {
                    self.remote_seen(now, &peer, c);
                    if self.relays.asked() {
                        self.relay_progress();
                    }
                }
                match (parsed, self.rtcs.get_mut(&peer)) {
                    (Some(c), Some(p)) => {
                        p.rtc.add_remote_candidate(c);
                        self.poll_rtc(&peer);
                    }
                    _ => self.stats.candidates_ignored += 1,
                }
            }
            LinkCommand::Close { peer } => {
                if let Some(mut p) = self.rtcs.remove(&peer) {
                    if p.heard.is_none() {
                        self.report_failure(&peer);
                    }
                    p.rtc.disconnect();
                    // Let it say goodbye (DTLS close, SCTP abort) on the way out.
                    while let Ok(o) = p.rtc.poll_output() {
                        match o {
                            Output::Transmit(t) => {
                                self.transmit(t.source, t.destination, t.contents.into())
                            }
                            Output::Timeout(_) => break,
                            Output::Event(_) => {}
                        }
                    }
                }
            }
        }
    }

    /// The connection to `peer` failed: tell the mesh (it reports and retries).
    fn rtc_failed(&mut self, peer: &str) {
        let never_opened = match self.rtcs.remove(peer) {
            Some(mut p) => {
                p.rtc.disconnect();
                p.heard.is_none()
            }
            None => false,
        };
        self.mesh.link_closed(self.now, peer);
        if never_opened {
            self.report_failure(peer);
        }
    }

    /// A connection that never opened was given up (by us or by the mesh's deadline):
    /// [`NodeEvent::LinkFailed`] once the mesh's own events of it (the leave) are out,
    /// if the mesh counts it as a failure.
    fn report_failure(&mut self, peer: &str) {
        self.gave_up.push(PeerId::checked(peer));
    }

    fn failure_events(&mut self) {
        for peer in std::mem::take(&mut self.gave_up) {
            let Some(info) = self.mesh.link_info(&peer) else {
                continue;
            };
            if info.state == LinkState::Failed {
                self.out.push_back(NodeOutput::Event(NodeEvent::LinkFailed {
                    peer,
                    failures: info.failures,
                    retry_at: info.retry_at,
                }));
            }
        }
    }

    /// Writes a frame on `peer`'s channel, or queues it.
    fn write(&mut self, peer: &str, data: Vec<u8>) {
        let max = self.config.max_queued;
        let Some(p) = self.rtcs.get_mut(peer) else {
            return;
        };
        if p.queue.is_empty() {
            if let Some(mut ch) = p.channel.and_then(|c| p.rtc.channel(c)) {
                match ch.write(true, &data) {
                    Ok(true) => return,
                    Ok(false) if cfg!(feature = "bug-drop-on-full") => return,
                    Ok(false) => {}
                    Err(_) => {
                        self.rtc_failed(peer);
                        return;
                    }
                }
            }
        }
        p.queued += data.len();
        p.queue.push_back(data);
        self.stats.frames_queued += 1;
        if p.queued > PAUSE_AT && !p.paused {
            p.paused = true;
            self.mesh.link_paused(peer, true);
        }
        if p.queued > max {
            self.stats.links_slow += 1;
            self.out.push_back(NodeOutput::Event(NodeEvent::LinkSlow {
                peer: PeerId::checked(peer),
            }));
            self.rtc_failed(peer);
        }
    }

    /// Moves queued frames into str0m's buffer while it has room.
    fn flush_queue(&mut self, peer: &str) {
        let Some(p) = self.rtcs.get_mut(peer) else {
            return;
        };
        while let Some(front) = p.queue.front() {
            let Some(mut ch) = p.channel.and_then(|c| p.rtc.channel(c)) else {
                return;
            };
            match ch.write(true, front) {
                Ok(true) => {
                    let f = p.queue.pop_front().expect("front exists");
                    p.queued -= f.len();
                    if p.paused && p.queued < RESUME_AT {
                        p.paused = false;
                        self.mesh.link_paused(peer, false);
                    }
                }
                Ok(false) => return,
                Err(_) => {
                    self.rtc_failed(peer);
                    return;
                }
            }
        }
    }

    /// Drains `peer`'s rtc: datagrams out, events into the mesh.
    fn poll_rtc(&mut self, peer: &str) {
        loop {
            let Some(p) = self.rtcs.get_mut(peer) else {
                return;
            };
            let o = match p.rtc.poll_output() {
                Ok(o) => o,
                Err(_) => {
                    self.rtc_failed(peer);
                    return;
                }
            };
            match o {
                Output::Timeout(t) => {
                    p.timeout = Some(t);
                    return;
                }
                Output::Transmit(t) => {
                    // DTLS goes on the selected pair only.
                    if is_dtls(&t.contents) {
                        p.path = Some((t.source, t.destination));
                    }
                    self.transmit(t.source, t.destination, t.contents.into())
                }
                Output::Event(e) => self.rtc_event(peer, e),
            }
        }
    }

    fn rtc_event(&mut self, peer: &str, e: RtcEvent) {
        let now = self.now;
        match e {
            RtcEvent::ChannelOpen(id, label) if label == "mesh" => {
                let Some(p) = self.rtcs.get_mut(peer) else {
                    return;
                };
                let protocol = p
                    .rtc
                    .channel(id)
                    .and_then(|c| c.config().map(|c| c.protocol.clone()))
                    .unwrap_or_default();
                let Some(codec) = Codec::from_name(&protocol) else {
                    self.rtc_failed(peer);
                    return;
                };
                p.channel = Some(id);
                p.heard = Some(now);
                p.data_heard = Some(now);
                if let Some(mut ch) = p.rtc.channel(id) {
                    ch.set_buffered_amount_low_threshold(self.config.sctp_buffer / 2);
                }
                self.mesh.link_open(now, peer, codec);
            }
            RtcEvent::ChannelData(d)
                if self.rtcs.get(peer).is_some_and(|p| p.channel == Some(d.id)) =>
            {
                if let Some(p) = self.rtcs.get_mut(peer) {
                    p.data_heard = Some(now);
                    if p.restart.take().is_some() {
                        self.stats.restarts_recovered += 1;
                    }
                }
                self.mesh.link_data(now, peer, &d.data);
            }
            RtcEvent::ChannelBufferedAmountLow(_) => self.flush_queue(peer),
            RtcEvent::ChannelClose(id)
                if self.rtcs.get(peer).is_some_and(|p| p.channel == Some(id)) =>
            {
                self.rtc_failed(peer);
            }
            RtcEvent::IceConnectionStateChange(IceConnectionState::Disconnected)
            | RtcEvent::Closed => self.rtc_failed(peer),
            _ => {}
        }
    }

    /// Whether the node has closed ([`close`](Self::close)) and every goodbye (`BYE` on
    /// each link, `/leave`, each connection's DTLS close) has been taken from
    /// [`poll_output`](Self::poll_output). A driver stops once this is true after a
    /// drain; no waiting is needed.
    pub fn is_finished(&self) -> bool {
        self.mesh.is_finished() && self.out.is_empty() && self.rtcs.is_empty()
    }

    /// The next output; drain until [`NodeOutput::Timeout`].
    pub fn poll_output(&mut self) -> NodeOutput {
        loop {
            if let Some(o) = self.out.pop_front() {
                return o;
            }
            match self.mesh.poll_output() {
                MeshOutput::SignalConnect => return NodeOutput::SignalConnect,
                MeshOutput::Signal(s) => return NodeOutput::Signal(s),
                MeshOutput::SignalClose => return NodeOutput::SignalClose,
                MeshOutput::Stream { link, data } => return NodeOutput::Stream { link, data },
                MeshOutput::CloseStream(link) => return NodeOutput::CloseStream(link),
                MeshOutput::Event(e) => return NodeOutput::Event(NodeEvent::Mesh(e)),
                MeshOutput::Link(cmd) => self.link_command(cmd),
                MeshOutput::Transmit { peer, data } => {
                    self.write(&peer, data);
                    self.poll_rtc(&peer);
                }
                MeshOutput::Timeout(t) => {
                    self.failure_events();
                    if self.mesh.is_finished() && !self.rtcs.is_empty() {
                        // Closed: any connection the mesh did not close itself goes too,
                        // so that the node finishes whatever state it was in.
                        let peers: Vec<PeerId> = self.rtcs.keys().cloned().collect();
                        for peer in peers {
                            self.link_command(LinkCommand::Close { peer });
                        }
                    }
                    if self.mesh.is_finished() && !self.relays.is_empty() {
                        // Closed: the allocations go back too.
                        let mut out = Vec::new();
                        self.relays.delete(self.now, &mut out);
                        self.push_datagrams(out);
                    }
                    if !self.out.is_empty() {
                        continue;
                    }
                    let mut next = t.min(self.stun_at).min(self.relays_at);
                    for p in self.rtcs.values() {
                        if let Some(rt) = p.timeout {
                            next = next.min(rt);
                        }
                        if let Some(h) = p.heard {
                            next = next.min(h + self.config.silence_timeout);
                        }
                        match (
                            p.restart_due(self.now, self.config.restart_timeout),
                            p.quiet_since(),
                        ) {
                            (Some(due), _) => next = next.min(due),
                            (None, Some(h)) => {
                                // (Past, it did not begin: a peer that never pings, or
                                // signalling down; other timers bring the next look.)
                                let t = h.checked_add(self.config.restart_after);
                                if let Some(t) = t.filter(|t| *t > self.now) {
                                    next = next.min(t);
                                }
                            }
                            _ => {}
                        }
                    }
                    return NodeOutput::Timeout(next);
                }
            }
        }
    }
}

/// Of `locals`, the address of `dest`'s family that reaches it: a loopback address only
/// for a destination on loopback, else the first other one.
fn base_for(locals: &[SocketAddr], dest: SocketAddr) -> Option<SocketAddr> {
    let family = locals
        .iter()
        .copied()
        .filter(|a| a.is_ipv4() == dest.is_ipv4());
    let wanted = dest.ip().is_loopback();
    family
        .clone()
        .find(|a| a.ip().is_loopback() == wanted)
        .or_else(|| family.clone().next())
}

/// The value of the first `a=<name>:` line of an SDP (ours has only the data m-line, so
/// `mid` is its mid and `ice-ufrag` our ICE username fragment).
fn sdp_attr(sdp: &str, name: &str) -> Option<String> {
    sdp.lines().find_map(|l| {
        l.trim_end()
            .strip_prefix("a=")
            .and_then(|a| a.strip_prefix(name))
            .and_then(|a| a.strip_prefix(':'))
            .map(str::to_owned)
    })
}

/// Parses an ICE candidate line (`candidate:...`).
trait ParseCandidate {
    fn parse_candidate(&self) -> Option<Candidate>;
}

impl ParseCandidate for str {
    fn parse_candidate(&self) -> Option<Candidate> {
        if self.is_empty() || self.contains(".local ") {
            return None;
        }
        Candidate::from_sdp_string(self).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_ice_timeout_reports_a_silent_peer_within_15_s() {
        let mc = MeshConfig::new("a", "r", "0000000000000001", 0.0, Instant::now());
        let c = NodeConfig::new(mc, Vec::new());
        // 500 + 1000 + 2000 x 4, then the last wait of 2000.
        assert_eq!(c.ice_timeout(), Duration::from_millis(11_500));
        let mut str0m = c.clone();
        str0m.ice_max_rto = Duration::from_secs(3);
        str0m.ice_max_retransmits = 9;
        assert_eq!(
            str0m.ice_timeout(),
            Duration::from_millis(21_500),
            "str0m's own"
        );
    }
}
