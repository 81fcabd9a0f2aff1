//! A mesh peer with real WebRTC: a [`Mesh`] plus one `str0m::Rtc` per peer, sans-IO.
//!
//! Inputs: signalling text ([`Node::handle_signal`]), UDP datagrams
//! ([`Node::handle_datagram`]: source, destination, bytes) and timeouts
//! ([`Node::handle_timeout`]); commands (`set`, `delete`, `announce`, `close`).
//! Outputs, from [`Node::poll_output`]: signalling text, UDP transmits, events and the
//! next timeout. A runtime owns one UDP socket and one signalling connection and moves
//! bytes; nothing else.
//!
//! Local addresses given in [`NodeConfig::local_addrs`] become host candidates in the
//! SDP (natives do not trickle them). Remote candidates from signalling are added as
//! they come; empty, `.local` (mDNS) or unparsable ones are counted and ignored.
//!
//! Flow control: each data channel keeps str0m's send buffer small (32 KiB by default,
//! since its CPU cost grows with data in flight). When a write does not fit, the frame
//! waits in a per-link queue (bounded, `max_queued` bytes) and goes out as the buffer
//! drains; a link whose queue overflows is reported with [`NodeEvent::LinkSlow`] and
//! closed, so no data is ever dropped silently.
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
use str0m::{Candidate, Event as RtcEvent, IceConnectionState, IceCreds, Input, Output, Rtc};

use crate::mesh::{LinkCommand, Mesh, MeshConfig, MeshError, MeshEvent, MeshOutput, SdpKind};
use crate::store::{Store, StoreError, Update};
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
}

impl NodeConfig {
    /// A configuration for `mesh`, offering `local_addrs`.
    pub fn new(mesh: MeshConfig, local_addrs: Vec<SocketAddr>) -> Self {
        NodeConfig {
            mesh,
            local_addrs,
            sctp_buffer: 32 * 1024,
            max_queued: 8 << 20,
        }
    }
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
        peer: String,
    },
}

/// What [`Node::poll_output`] returns.
#[derive(Debug)]
pub enum NodeOutput {
    /// Send this text to the switchboard.
    Signal(String),
    /// Send a UDP datagram.
    Transmit {
        /// Our address to send from.
        source: SocketAddr,
        /// Where to.
        destination: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
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
}

/// Datagrams no connection accepts yet are held this long...
const HOLD_FOR: Duration = Duration::from_millis(500);
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
    /// Frames waiting for room in str0m's buffer, and their bytes.
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    timeout: Option<Instant>,
}

/// A WebRTC mesh peer. See the module docs.
pub struct Node {
    config: NodeConfig,
    mesh: Mesh,
    rtcs: BTreeMap<String, PeerRtc>,
    out: VecDeque<NodeOutput>,
    now: Instant,
    rng: u64,
    stats: NodeStats,
    /// Datagrams waiting for a connection to accept them: (arrival, source, dest, bytes).
    held: VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
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
    pub fn new(config: NodeConfig) -> Result<Self, MeshError> {
        let now = config.mesh.start;
        let rng = config.mesh.seed ^ 0x6e6f_6465;
        let mesh = Mesh::new(config.mesh.clone())?;
        Ok(Node {
            config,
            mesh,
            rtcs: BTreeMap::new(),
            out: VecDeque::new(),
            now,
            rng: rng | 1,
            stats: NodeStats::default(),
            held: VecDeque::new(),
        })
    }

    /// The mesh (peers, store, replica).
    pub fn mesh(&self) -> &Mesh {
        &self.mesh
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.mesh.store()
    }

    /// Counters.
    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    /// Announces us.
    pub fn start(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.mesh.start(now);
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

    /// Leaves the room and closes every connection.
    pub fn close(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.mesh.close(now);
    }

    /// A text from the switchboard.
    pub fn handle_signal(&mut self, now: Instant, text: &str) {
        self.now = self.now.max(now);
        self.mesh.handle_signal(now, text);
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
            Some(p) => p.rtc.handle_input(input).is_err(),
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
        self.mesh.handle_timeout(now);
        let due: Vec<String> = self
            .rtcs
            .iter()
            .filter(|(_, p)| p.timeout.is_none_or(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for peer in due {
            let failed = match self.rtcs.get_mut(&peer) {
                Some(p) => p.rtc.handle_input(Input::Timeout(now)).is_err(),
                None => false,
            };
            if failed {
                self.rtc_failed(&peer);
            } else {
                self.poll_rtc(&peer);
            }
        }
    }

    fn hex(&mut self, n: usize) -> String {
        let mut s = String::with_capacity(n);
        while s.len() < n {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            s.push_str(&format!("{:016x}", self.rng));
        }
        s.truncate(n);
        s
    }

    fn new_rtc(&mut self) -> Rtc {
        let creds = IceCreds {
            ufrag: self.hex(8),
            pass: self.hex(24),
        };
        let mut rtc = Rtc::builder()
            .set_local_ice_credentials(creds)
            .set_sctp_max_buffered_amount(self.config.sctp_buffer)
            .build(self.now);
        for a in &self.config.local_addrs {
            if let Ok(c) = Candidate::host(*a, "udp") {
                rtc.add_local_candidate(c);
            }
        }
        rtc
    }

    fn link_command(&mut self, cmd: LinkCommand) {
        let now = self.now;
        match cmd {
            LinkCommand::Open {
                peer,
                offerer,
                codec,
            } => {
                let mut rtc = self.new_rtc();
                let (mut pending, mut channel) = (None, None);
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
                    self.mesh
                        .local_sdp(now, &peer, SdpKind::Offer, &offer.to_sdp_string());
                }
                let entry = PeerRtc {
                    paused: false,
                    rtc,
                    pending,
                    channel,
                    queue: VecDeque::new(),
                    queued: 0,
                    timeout: None,
                };
                self.rtcs.insert(peer.clone(), entry);
                self.poll_rtc(&peer);
            }
            LinkCommand::RemoteSdp { peer, kind, sdp } => {
                let Some(p) = self.rtcs.get_mut(&peer) else {
                    return;
                };
                let ok = match kind {
                    SdpKind::Offer => match SdpOffer::from_sdp_string(&sdp)
                        .ok()
                        .and_then(|o| p.rtc.sdp_api().accept_offer(o).ok())
                    {
                        Some(answer) => {
                            let text = answer.to_sdp_string();
                            self.mesh.local_sdp(now, &peer, SdpKind::Answer, &text);
                            true
                        }
                        None => false,
                    },
                    SdpKind::Answer => match (SdpAnswer::from_sdp_string(&sdp), p.pending.take()) {
                        (Ok(a), Some(pending)) => p.rtc.sdp_api().accept_answer(pending, a).is_ok(),
                        _ => false,
                    },
                };
                if ok {
                    self.poll_rtc(&peer);
                } else {
                    self.rtc_failed(&peer);
                }
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
                    p.rtc.disconnect();
                    // Let it say goodbye (DTLS close, SCTP abort) on the way out.
                    while let Ok(o) = p.rtc.poll_output() {
                        match o {
                            Output::Transmit(t) => self.out.push_back(NodeOutput::Transmit {
                                source: t.source,
                                destination: t.destination,
                                data: t.contents.into(),
                            }),
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
        if let Some(mut p) = self.rtcs.remove(peer) {
            p.rtc.disconnect();
        }
        self.mesh.link_closed(self.now, peer);
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
                peer: peer.to_owned(),
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
                Output::Transmit(t) => self.out.push_back(NodeOutput::Transmit {
                    source: t.source,
                    destination: t.destination,
                    data: t.contents.into(),
                }),
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
                if let Some(mut ch) = p.rtc.channel(id) {
                    ch.set_buffered_amount_low_threshold(self.config.sctp_buffer / 2);
                }
                self.mesh.link_open(now, peer, codec);
            }
            RtcEvent::ChannelData(d)
                if self.rtcs.get(peer).is_some_and(|p| p.channel == Some(d.id)) =>
            {
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

    /// The next output; drain until [`NodeOutput::Timeout`].
    pub fn poll_output(&mut self) -> NodeOutput {
        loop {
            if let Some(o) = self.out.pop_front() {
                return o;
            }
            match self.mesh.poll_output() {
                MeshOutput::Signal(s) => return NodeOutput::Signal(s),
                MeshOutput::Event(e) => return NodeOutput::Event(NodeEvent::Mesh(e)),
                MeshOutput::Link(cmd) => self.link_command(cmd),
                MeshOutput::Transmit { peer, data } => {
                    self.write(&peer, data);
                    self.poll_rtc(&peer);
                }
                MeshOutput::Timeout(t) => {
                    if !self.out.is_empty() {
                        continue;
                    }
                    let mut next = t.unwrap_or(self.now + Duration::from_secs(1));
                    for p in self.rtcs.values() {
                        if let Some(rt) = p.timeout {
                            next = next.min(rt);
                        }
                    }
                    return NodeOutput::Timeout(next);
                }
            }
        }
    }
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
