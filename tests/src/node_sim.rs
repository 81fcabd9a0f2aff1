//! Deterministic simulation of Node peers: real str0m over simulated UDP.
//!
//! Each node has an address `127.0.0.1:(10000 + i)`; datagrams between nodes are
//! delayed, lost, duplicated and reordered by a seeded network; signalling goes through
//! core's [`Switchboard`] in order. Faults: link partitions, node crashes and restarts
//! (same id, new incarnation, no state). The trace digest hashes the exact simulated time,
//! peer and kind of every event and the datagram count so far (str0m's bytes differ from
//! run to run, since DTLS keys are random; the number of datagrams and their timing do
//! not).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc_mesh_core::mesh::{MeshConfig, MeshEvent};
use rtc_mesh_core::node::{Node, NodeConfig, NodeEvent, NodeOutput};
use rtc_mesh_core::switchboard::{ConnId, SwitchOutput, Switchboard};

use crate::connections::Connections;
use crate::net::{Nat, NatType, SimTurn, PASSWORD, USER};
use rtc_mesh_core::turn::TurnServer;
use rtc_mesh_core::Value;

use crate::mesh_sim::{check_writes, FaultCounts, Queued as Q, Rng, Write};

const EPOCH_MS: f64 = 1_795_713_876_272.0;

/// What a Node-level run does.
#[derive(Clone, Debug)]
pub struct NodeSimConfig {
    /// The seed.
    pub seed: u64,
    /// Nodes.
    pub peers: usize,
    /// Datagram loss probability.
    pub loss: f64,
    /// Datagram duplication probability.
    pub duplicate: f64,
    /// Writes after the mesh formed.
    pub writes: usize,
    /// Inject partitions and crashes.
    pub faults: bool,
    /// Nodes that never ping (as plain scuttlebutt peers over WebRTC): their links are
    /// watched by ICE alone.
    pub quiet: Vec<usize>,
    /// A simulated internet (NATs, a STUN/TURN server) instead of one flat network of
    /// public addresses.
    pub net: Option<NetConfig>,
}

/// The simulated internet of a run ([`crate::net`]).
#[derive(Clone, Debug, Default)]
pub struct NetConfig {
    /// Per node, the NAT it sits behind (`None`, or a node past the end: a public
    /// address of its own). Node `i` behind a NAT has `10.0.i.2:5000` on a private
    /// network of its own and the NAT `198.51.100.(10 + i)`; a public node has
    /// `198.51.100.(10 + i):5000`.
    pub nats: Vec<Option<NatType>>,
    /// Nodes ask the server ([`SERVER`]) for their reflexive address.
    pub stun: bool,
    /// Nodes relay through the server, with its user and password.
    pub turn: bool,
    /// Nodes offer and use relayed candidates only.
    pub relay_only: bool,
}

/// The simulated STUN/TURN server's address.
pub const SERVER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(203, 0, 113, 1)),
    3478,
);

impl NodeSimConfig {
    /// A small run with faults.
    pub fn new(seed: u64) -> Self {
        NodeSimConfig {
            seed,
            peers: 4,
            loss: 0.02,
            duplicate: 0.01,
            writes: 20,
            faults: true,
            quiet: Vec::new(),
            net: None,
        }
    }
}

/// What a Node-level run measured.
#[derive(Clone, Debug, Default)]
pub struct NodeSimReport {
    /// Faults injected (drops are lost datagrams, delays reordered ones).
    pub faults: FaultCounts,
    /// Duplicated datagrams.
    pub duplicates: u64,
    /// The trace digest.
    pub trace: u64,
    /// Simulated time for the mesh to form (all linked and synced).
    pub formed: Option<Duration>,
    /// Simulated time from the last write until converged.
    pub converge: Option<Duration>,
    /// Datagrams moved.
    pub datagrams: u64,
    /// Invariant failures.
    pub failures: Vec<String>,
}

enum Ev {
    ToServer(ConnId, String),
    ToPeer(usize, ConnId, String),
    ServerClose(ConnId),
    /// The signalling connection node `at` (in life `life`) asked for opens.
    SignalOpen {
        at: usize,
        life: u32,
    },
    /// Node `at` sees its signalling connection `conn` drop.
    SignalLost {
        at: usize,
        conn: ConnId,
    },
    /// A datagram on the simulated internet, after the sender's NAT.
    Wire {
        src: SocketAddr,
        dst: SocketAddr,
        data: Vec<u8>,
    },
    /// Node `i`'s NAT forgets its mappings.
    FlushNat(usize),
    /// Node `i`'s NAT drops everything for a while (keeping its mappings).
    NatDown(usize, Duration),
    Datagram {
        to: usize,
        life: u32,
        src: SocketAddr,
        dst: SocketAddr,
        data: Vec<u8>,
    },
    Write(usize, String, f64),
    Crash(usize),
    Restart(usize),
    Partition(usize, usize, Duration),
    SwitchboardRestart,
}

struct SimNode {
    node: Option<Node>,
    lives: u32,
    crashed: bool,
    timer: Option<Instant>,
}

/// A Node-level world.
pub struct NodeWorld {
    cfg: NodeSimConfig,
    t0: Instant,
    now: Instant,
    rng: Rng,
    nodes: Vec<SimNode>,
    board: Switchboard,
    queue: BinaryHeap<Reverse<Q<Ev>>>,
    seq: u64,
    conns: Connections,
    last_signal: BTreeMap<usize, Instant>,
    partitioned: BTreeMap<(usize, usize), Instant>,
    path_count: BTreeMap<(usize, usize), u64>,
    writes: Vec<Write>,
    report: NodeSimReport,
    nats: Vec<Option<Nat>>,
    server: Option<SimTurn>,
    wire_count: BTreeMap<(SocketAddr, SocketAddr), u64>,
    nat_down: BTreeMap<usize, Instant>,
    /// Events kept for [`NodeWorld::events`], once asked for.
    events: Option<Vec<(Duration, usize, NodeEvent)>>,
}

fn addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + i as u16))
}

fn public_ip(i: usize) -> std::net::IpAddr {
    std::net::IpAddr::from([198, 51, 100, 10 + i as u8])
}

fn is_private(a: SocketAddr) -> bool {
    matches!(a.ip(), std::net::IpAddr::V4(v) if v.is_private())
}

impl NodeWorld {
    /// A world for `cfg`, every node started.
    pub fn new(cfg: NodeSimConfig) -> NodeWorld {
        let t0 = Instant::now();
        let mut w = NodeWorld {
            rng: Rng::new(cfg.seed),
            t0,
            now: t0,
            nodes: Vec::new(),
            board: Switchboard::new(Default::default(), t0),
            queue: BinaryHeap::new(),
            seq: 0,
            conns: Connections::default(),
            last_signal: BTreeMap::new(),
            partitioned: BTreeMap::new(),
            path_count: BTreeMap::new(),
            writes: Vec::new(),
            report: NodeSimReport {
                trace: 0xcbf2_9ce4_8422_2325,
                ..Default::default()
            },
            nats: Vec::new(),
            server: None,
            wire_count: BTreeMap::new(),
            nat_down: BTreeMap::new(),
            events: None,
            cfg,
        };
        if let Some(net) = &w.cfg.net {
            w.server = Some(SimTurn::new(SERVER, t0));
            for i in 0..w.cfg.peers {
                let nat = net.nats.get(i).copied().flatten();
                w.nats.push(nat.map(|ty| Nat::new(public_ip(i), ty)));
            }
        }
        for i in 0..w.cfg.peers {
            w.nodes.push(SimNode {
                node: None,
                lives: 0,
                crashed: false,
                timer: None,
            });
            w.boot(i);
        }
        w
    }

    fn hash(&mut self, x: u64) {
        self.report.trace ^= x;
        self.report.trace = self.report.trace.wrapping_mul(0x100_0000_01b3);
    }

    fn at(&mut self, t: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Q(t, self.seq, ev)));
    }

    fn latency(&mut self) -> Duration {
        Duration::from_micros(300 + self.rng.below(3_000))
    }

    fn boot(&mut self, i: usize) {
        let local = self.local(i);
        let n = &mut self.nodes[i];
        n.lives += 1;
        let incarnation = format!("{:016x}", (i as u64) << 32 | n.lives as u64);
        let wall = EPOCH_MS + self.now.duration_since(self.t0).as_millis() as f64;
        let mut mc = MeshConfig::new(format!("n{i:03}"), "nodesim", incarnation, wall, self.now);
        mc.seed = self.cfg.seed ^ (i as u64) << 8 ^ n.lives as u64;
        if self.cfg.quiet.contains(&i) {
            mc.ping = false;
        }
        let mut nc = NodeConfig::new(mc, vec![local]);
        nc.seeded_dtls = true;
        if let Some(net) = &self.cfg.net {
            if net.stun {
                nc.stun_servers = vec![SERVER];
            }
            if net.turn {
                nc.turn_servers = vec![TurnServer {
                    addr: SERVER,
                    username: USER.into(),
                    credential: PASSWORD.into(),
                }];
            }
            nc.relay_only = net.relay_only;
        }
        let mut node = Node::new(nc).expect("valid config");
        node.start(self.now);
        n.node = Some(node);
        self.drain(i);
    }

    fn drain(&mut self, i: usize) {
        loop {
            let Some(node) = self.nodes[i].node.as_mut() else {
                self.nodes[i].timer = None;
                return;
            };
            match node.poll_output() {
                NodeOutput::Timeout(t) => {
                    self.nodes[i].timer = Some(t);
                    return;
                }
                // Simulated nodes attach no streams.
                NodeOutput::Stream { .. } | NodeOutput::CloseStream(_) => {}
                NodeOutput::SignalConnect => {
                    let t = self.now + self.latency() * 4;
                    let life = self.nodes[i].lives;
                    self.at(t, Ev::SignalOpen { at: i, life });
                }
                NodeOutput::Signal(text) => {
                    if let Some(c) = self.conns.of(i) {
                        let t = self.signal_time(i);
                        self.at(t, Ev::ToServer(c, text));
                    }
                }
                NodeOutput::SignalClose => {
                    if let Some(c) = self.conns.take(i) {
                        let t = self.signal_time(i);
                        self.at(t, Ev::ServerClose(c));
                    }
                }
                NodeOutput::Event(e) => {
                    let kind = match &e {
                        NodeEvent::Mesh(MeshEvent::PeerJoined { .. }) => 2,
                        NodeEvent::Mesh(MeshEvent::PeerLeft { .. }) => 3,
                        NodeEvent::Mesh(MeshEvent::Synced { .. }) => 5,
                        NodeEvent::Mesh(MeshEvent::SyncedAll { .. }) => 6,
                        NodeEvent::Mesh(MeshEvent::Update(_)) => 4,
                        NodeEvent::LinkSlow { .. } => 9,
                        _ => 1,
                    };
                    // Exact simulated time: DTLS draws from a seeded generator and SCTP's
                    // INIT timer (the one that reads the real clock) is not used (SNAP).
                    let at = self.now.duration_since(self.t0);
                    if let Some(log) = self.events.as_mut() {
                        if !matches!(e, NodeEvent::Mesh(MeshEvent::Update(_))) {
                            log.push((at, i, e.clone()));
                        }
                    }
                    let ns = at.as_nanos() as u64;
                    self.hash(ns);
                    self.hash(i as u64);
                    self.hash(kind);
                    self.hash(self.report.datagrams);
                }
                NodeOutput::Transmit {
                    source,
                    destination,
                    data,
                } => {
                    self.report.datagrams += 1;
                    if self.cfg.net.is_some() {
                        self.send_from(i, source, destination, data);
                        continue;
                    }
                    let Some(j) = (0..self.nodes.len()).find(|&j| addr(j) == destination) else {
                        continue;
                    };
                    // The network's choices for this datagram depend only on the seed, the
                    // path and the datagram's number on it, not on the order str0m emits
                    // datagrams for different paths in.
                    let k = self.path_count.entry((i, j)).or_insert(0);
                    *k += 1;
                    let mut r = Rng::new(self.cfg.seed ^ (i as u64) << 40 ^ (j as u64) << 32 ^ *k);
                    if self.partitioned.contains_key(&(i.min(j), i.max(j)))
                        || r.chance(self.cfg.loss)
                    {
                        self.report.faults.drops += 1;
                        continue;
                    }
                    let copies = if r.chance(self.cfg.duplicate) {
                        self.report.duplicates += 1;
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let d = Duration::from_micros(300 + r.below(3_000));
                        let life = self.nodes[j].lives;
                        self.at(
                            self.now + d,
                            Ev::Datagram {
                                to: j,
                                life,
                                src: source,
                                dst: destination,
                                data: data.clone(),
                            },
                        );
                    }
                }
            }
        }
    }

    /// Node `i`'s address on its own network.
    fn local(&self, i: usize) -> SocketAddr {
        match self.nats.get(i) {
            None => addr(i),
            Some(Some(_)) => SocketAddr::from(([10, 0, i as u8, 2], 5000)),
            Some(None) => SocketAddr::new(public_ip(i), 5000),
        }
    }

    /// A datagram node `i` sends on the simulated internet: through its NAT, if any.
    fn send_from(&mut self, i: usize, source: SocketAddr, destination: SocketAddr, data: Vec<u8>) {
        let now = self.now;
        if self.nat_down.get(&i).is_some_and(|t| *t > now) {
            self.report.faults.drops += 1;
            return;
        }
        let src = match self.nats[i].as_mut() {
            // Another private network's address: no route.
            _ if is_private(destination) => {
                self.report.faults.drops += 1;
                return;
            }
            Some(nat) => nat.outbound(now, source, destination),
            None => source,
        };
        self.wire(src, destination, data);
    }

    /// A datagram on the internet from `src` to `dst`: delayed, maybe lost or doubled,
    /// by choices that depend on the seed, the address pair and its datagram count.
    fn wire(&mut self, src: SocketAddr, dst: SocketAddr, data: Vec<u8>) {
        let k = self.wire_count.entry((src, dst)).or_insert(0);
        *k += 1;
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for b in format!("{src}>{dst}").bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
        let mut r = Rng::new(self.cfg.seed ^ h ^ *k);
        if r.chance(self.cfg.loss) {
            self.report.faults.drops += 1;
            return;
        }
        let copies = if r.chance(self.cfg.duplicate) {
            self.report.duplicates += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let d = Duration::from_micros(300 + r.below(3_000));
            let data = data.clone();
            self.at(self.now + d, Ev::Wire { src, dst, data });
        }
    }

    /// A datagram arrives at `dst` on the internet.
    fn arrive(&mut self, src: SocketAddr, dst: SocketAddr, data: Vec<u8>) {
        let now = self.now;
        if let Some(server) = self.server.as_mut().filter(|s| s.owns(dst)) {
            for (s, d, b) in server.recv(now, src, dst, &data) {
                self.wire(s, d, b);
            }
            return;
        }
        let publics: Vec<SocketAddr> = (0..self.nodes.len()).map(|j| self.local(j)).collect();
        let to = (0..self.nodes.len()).find_map(|j| match self.nats[j].as_mut() {
            Some(nat) if nat.public() == dst.ip() => Some((j, nat.inbound(now, src, dst.port()))),
            None if publics[j] == dst => Some((j, Some(dst))),
            _ => None,
        });
        let Some((j, Some(inner))) = to else {
            self.report.faults.drops += 1;
            return;
        };
        if self.nat_down.get(&j).is_some_and(|t| *t > now) {
            self.report.faults.drops += 1;
            return;
        }
        if let Some(n) = self.nodes[j].node.as_mut() {
            n.handle_datagram(now, src, inner, &data);
        }
        self.drain(j);
    }

    /// When a text node `i` sends now reaches the switchboard (in order).
    fn signal_time(&mut self, i: usize) -> Instant {
        let mut t = self.now + self.latency();
        let last = self.last_signal.entry(i).or_insert(t);
        t = t.max(*last);
        *last = t;
        t
    }

    fn server_outputs(&mut self) {
        loop {
            let o = self.board.poll_output();
            if let SwitchOutput::Timeout(_) = o {
                return;
            }
            if let SwitchOutput::Send(c, text) = o {
                if let Some(i) = self.conns.peer(c) {
                    if self.nodes[i].node.is_some() {
                        let mut t = self.now + self.latency();
                        let last = self.last_signal.entry(usize::MAX - i).or_insert(t);
                        t = t.max(*last);
                        *last = t;
                        self.at(t, Ev::ToPeer(i, c, text.to_string()));
                    }
                }
            }
        }
    }

    fn apply(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::ToServer(c, text) => {
                self.board.handle_text(now, c, &text);
                self.server_outputs();
            }
            Ev::ServerClose(c) => {
                self.board.handle_close(now, c);
                self.server_outputs();
            }
            Ev::ToPeer(i, c, text) => {
                if self.conns.of(i) == Some(c) {
                    if let Some(n) = self.nodes[i].node.as_mut() {
                        n.handle_signal(now, &text);
                    }
                    self.drain(i);
                }
            }
            Ev::SignalOpen { at, life } => {
                if self.nodes[at].lives != life || self.nodes[at].node.is_none() {
                    return;
                }
                self.conns.open(&mut self.board, now, at);
                self.server_outputs();
                if let Some(n) = self.nodes[at].node.as_mut() {
                    n.handle_signal_connected(now);
                }
                self.drain(at);
            }
            Ev::SignalLost { at, conn } => {
                if !self.conns.lost(at, conn) {
                    return;
                }
                if let Some(n) = self.nodes[at].node.as_mut() {
                    n.handle_signal_disconnected(now);
                }
                self.drain(at);
            }
            Ev::Wire { src, dst, data } => self.arrive(src, dst, data),
            Ev::FlushNat(i) => {
                if let Some(nat) = self.nats.get_mut(i).and_then(Option::as_mut) {
                    nat.flush();
                }
            }
            Ev::NatDown(i, d) => {
                self.report.faults.partitions += 1;
                self.nat_down.insert(i, now + d);
            }
            Ev::Datagram {
                to,
                life,
                src,
                dst,
                data,
            } => {
                if self.nodes[to].lives != life {
                    return;
                }
                if let Some(n) = self.nodes[to].node.as_mut() {
                    n.handle_datagram(now, src, dst, &data);
                }
                self.drain(to);
            }
            Ev::Write(i, key, v) => {
                if let Some(n) = self.nodes[i].node.as_mut() {
                    if let Ok(u) = n.set(now, &key, &Value::from(v)) {
                        let s = u.source.to_string();
                        self.writes.push((i, key, u.ts, s, u.value.to_json()));
                    }
                }
                self.drain(i);
            }
            Ev::Crash(i) => {
                if self.nodes[i].node.take().is_some() {
                    self.report.faults.crashes += 1;
                    self.nodes[i].crashed = true;
                    self.nodes[i].timer = None;
                    if let Some(c) = self.conns.take(i) {
                        let d = self.latency();
                        self.at(now + d, Ev::ServerClose(c));
                    }
                }
            }
            Ev::Restart(i) => {
                if self.nodes[i].node.is_none() {
                    self.report.faults.restarts += 1;
                    self.boot(i);
                }
            }
            Ev::Partition(a, b, d) => {
                self.report.faults.partitions += 1;
                self.partitioned.insert((a.min(b), a.max(b)), now + d);
            }
            Ev::SwitchboardRestart => {
                self.report.faults.switchboard_restarts += 1;
                self.board = Switchboard::new(Default::default(), now);
                // Every connection drops; each client sees it a little later, then
                // reconnects and announces again; links stay up.
                for (i, conn) in self.conns.open_ones() {
                    let t = now + self.latency();
                    self.at(t, Ev::SignalLost { at: i, conn });
                }
            }
        }
    }

    /// Node `i` crashes: it sends nothing more, says no goodbye, and its signalling
    /// connection closes.
    pub fn crash(&mut self, i: usize) {
        self.apply(Ev::Crash(i));
    }

    /// The datagram path between nodes `a` and `b` drops everything for `d` (their
    /// signalling still works).
    pub fn partition(&mut self, a: usize, b: usize, d: Duration) {
        self.apply(Ev::Partition(a, b, d));
    }

    /// Node `i`'s NAT forgets every mapping now (`conntrack -D` on a real router).
    pub fn flush_nat(&mut self, i: usize) {
        self.apply(Ev::FlushNat(i));
    }

    /// Keeps every node event but updates from now on, for [`NodeWorld::events`].
    pub fn keep_events(&mut self) {
        self.events.get_or_insert_with(Vec::new);
    }

    /// The events kept since [`NodeWorld::keep_events`]: (simulated time, node, event).
    pub fn events(&self) -> &[(Duration, usize, NodeEvent)] {
        self.events.as_deref().unwrap_or_default()
    }

    /// Node `i`'s NAT drops every datagram for `d`, keeping its mappings (a router
    /// that hangs, a cable pulled and put back).
    pub fn nat_down(&mut self, i: usize, d: Duration) {
        self.apply(Ev::NatDown(i, d));
    }

    /// Mappings alive now on node `i`'s NAT.
    pub fn nat_mappings(&mut self, i: usize) -> usize {
        let now = self.now;
        self.nats
            .get_mut(i)
            .and_then(Option::as_mut)
            .map_or(0, |n| n.mappings(now))
    }

    /// The simulated STUN/TURN server, in a run with [`NodeSimConfig::net`].
    pub fn server(&self) -> Option<&SimTurn> {
        self.server.as_ref()
    }

    /// Simulated time since the world began.
    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Node `i`, unless it is down.
    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].node.as_ref()
    }

    /// Node `i` sets `key` to `value` now.
    pub fn write_value(&mut self, i: usize, key: &str, value: &Value) {
        let now = self.now;
        if let Some(n) = self.nodes[i].node.as_mut() {
            if let Ok(u) = n.set(now, key, value) {
                let s = u.source.to_string();
                self.writes
                    .push((i, key.into(), u.ts, s, u.value.to_json()));
            }
        }
        self.drain(i);
    }

    /// Runs until converged, up to `max` of simulated time.
    pub fn settle(&mut self, max: Duration) -> Option<Duration> {
        self.run_until_converged(max)
    }

    /// Invariant failures now.
    pub fn failures(&self) -> Vec<String> {
        self.check()
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        let mut steps = 0u64;
        loop {
            steps += 1;
            assert!(steps < 20_000_000, "node simulation does not settle");
            self.partitioned.retain(|_, heal| *heal > self.now);
            let next_ev = self.queue.peek().map(|Reverse(q)| q.0);
            let next_timer = self
                .nodes
                .iter()
                .enumerate()
                .filter_map(|(i, n)| n.timer.map(|t| (t, i)))
                .min();
            let server_timer = self.server.as_ref().and_then(SimTurn::timer);
            let next_timer = match (next_timer, server_timer) {
                (Some((m, i)), Some(s)) if m <= s => Some((m, i)),
                (_, Some(s)) => Some((s, usize::MAX)),
                (n, None) => n,
            };
            let t = match (next_ev, next_timer) {
                (Some(e), Some((m, _))) => e.min(m),
                (Some(e), None) => e,
                (None, Some((m, _))) => m,
                (None, None) => until,
            };
            if t > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(t);
            if next_ev == Some(t) {
                let Reverse(Q(_, _, ev)) = self.queue.pop().expect("peeked");
                self.apply(ev);
            } else if let Some((_, usize::MAX)) = next_timer {
                let now = self.now;
                let mut out = Vec::new();
                if let Some(s) = self.server.as_mut() {
                    s.poll(now, &mut out);
                }
                for (s, d, b) in out {
                    self.wire(s, d, b);
                }
            } else if let Some((_, i)) = next_timer {
                let now = self.now;
                if let Some(n) = self.nodes[i].node.as_mut() {
                    n.handle_timeout(now);
                }
                self.drain(i);
            }
        }
    }

    /// Every live node linked and synced with every other, and the stores equal.
    pub fn converged(&self) -> bool {
        let live: Vec<&Node> = self.nodes.iter().filter_map(|n| n.node.as_ref()).collect();
        live.windows(2)
            .all(|w| w[0].store().dump() == w[1].store().dump())
            && live.iter().all(|n| {
                let r = n.mesh().replica();
                r.links().count() == live.len() - 1
                    && r.links()
                        .all(|l| r.session(l).is_some_and(|s| s.is_synced()))
            })
    }

    fn run_until_converged(&mut self, max: Duration) -> Option<Duration> {
        let start = self.now;
        while self.now - start < max {
            if self.converged() {
                return Some(self.now - start);
            }
            self.run_for(Duration::from_millis(20));
        }
        None
    }

    fn check(&self) -> Vec<String> {
        let stores: Vec<(&str, &rtc_mesh_core::Store)> = self
            .nodes
            .iter()
            .filter_map(|n| n.node.as_ref())
            .map(|n| (n.mesh().id(), n.store()))
            .collect();
        check_writes(&stores, &self.writes, |i| self.nodes[i].crashed)
    }
}

/// Runs one Node-level seed: form, write (with faults), heal, converge, check.
pub fn run_nodes(cfg: NodeSimConfig) -> NodeSimReport {
    let mut w = NodeWorld::new(cfg.clone());
    let formed = w.run_until_converged(Duration::from_secs(30));
    w.report.formed = formed;
    let n = cfg.peers;
    let span = 10_000u64;
    let t = w.now;
    for k in 0..cfg.writes {
        let at = t + Duration::from_millis(w.rng.below(span));
        let i = w.rng.below(n as u64) as usize;
        let key = format!("k{}", w.rng.below(cfg.writes as u64 / 2 + 1));
        w.at(at, Ev::Write(i, key, k as f64));
    }
    // A burst of large values from one node: far more than str0m's send buffer holds,
    // so frames wait in the link queues.
    let big = Value::from("b".repeat(16_000));
    let writer = w.rng.below(n as u64) as usize;
    for k in 0..40 {
        w.write_value(writer, &format!("big{k}"), &big);
    }
    if cfg.faults {
        for _ in 0..2 {
            let at = t + Duration::from_millis(w.rng.below(span));
            let a = w.rng.below(n as u64) as usize;
            let kind = w.rng.below(6);
            if kind == 0 {
                w.at(at, Ev::SwitchboardRestart);
            } else if kind <= 3 {
                let b = (a + 1 + w.rng.below(n as u64 - 1) as usize) % n;
                let d = Duration::from_millis(500 + w.rng.below(6000));
                w.at(at, Ev::Partition(a, b, d));
            } else {
                w.at(at, Ev::Crash(a));
                let back = at + Duration::from_millis(500 + w.rng.below(3000));
                w.at(back, Ev::Restart(a));
            }
        }
    }
    w.run_for(Duration::from_millis(span));
    for i in 0..n {
        let now = w.now;
        w.at(now, Ev::Restart(i));
    }
    w.partitioned.clear();
    w.report.converge = w.run_until_converged(Duration::from_secs(60));
    let mut failures = w.check();
    if formed.is_none() {
        failures.push("the mesh did not form within 30 s".into());
    }
    if w.report.converge.is_none() {
        failures.push("did not converge within 60 s of healing".into());
    }
    w.report.failures = failures;
    w.report.clone()
}
