//! Deterministic simulation of Mesh peers over in-memory links.
//!
//! One seed fixes everything: latencies, which peers write what and when, and the
//! faults (link partitions, peer crashes and restarts without their state,
//! switchboard restarts, a peer's signalling connection dropping, stalls on it, and
//! relays that let a later direct `/to` message overtake an earlier one). Simulated
//! time only; no threads, no sockets. The switchboard is core's [`Switchboard`]; each
//! peer's signalling client is the real one inside its [`Mesh`] (its queue, backoff
//! and announcing again), and the world only opens, drops and closes its connection
//! and moves its texts. The link layer is modelled: an `Open` as offerer makes an offer, the answerer answers,
//! and after a few round trips both data channels open; channel messages are
//! reliable and ordered, held back while their pair is partitioned (SCTP
//! retransmits) and lost once either side closes.
//!
//! Invariants, checked after the faults heal and traffic settles: all live replicas
//! are equal; every write made by a peer that stayed up is present everywhere (or
//! overwritten by a larger one); nothing is present that nobody wrote.
//!
//! With [`SimConfig::power`] every peer is a durable member at `power` on a simulated
//! disk ([`SimDisk`]) that keeps only what was synced: a crash is a power loss, and
//! the peer comes back from what its disk kept. Every write it acknowledged (its
//! `Update` event with `local: true`) must then be in its restored store, and at the
//! end everywhere.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

use rtc_mesh_core::mesh::Security;
use rtc_mesh_core::mesh::{LinkCommand, Mesh, MeshConfig, MeshEvent, MeshOutput, SdpKind};
use rtc_mesh_core::security::{Entropy, Identity, RoomKey, RoomSecret};
use rtc_mesh_core::switchboard::{ConnId, SwitchOutput, Switchboard};
use rtc_mesh_core::{Codec, Store, Value};

/// The invite of a removal run of `seed` ([`SimConfig::removal`]): `plain` naming
/// peer 1 as the room's admin.
pub fn removal_secret(seed: u64, plain: &str) -> String {
    let s = RoomSecret::parse(plain).expect("a valid invite");
    s.with_admins(&identity(seed, 1), &[])
        .expect("an invite names admins")
        .to_text()
        .to_string()
}

/// Peer `i`'s identity in a secured run of `seed`.
fn identity(seed: u64, i: usize) -> Identity {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    Identity::from_seed(&s)
}

use crate::connections::Connections;

const EPOCH_MS: f64 = 1_795_713_876_272.0;

/// A write made in a run: (writer's index, key, timestamp, source id, value as JSON).
pub type Write = (usize, String, f64, String, String);

/// The write invariants, over the live stores (named by their peer): every write of a
/// writer that stayed up (`lost_ok(writer)` false) is present in each store, or
/// overwritten by a larger (timestamp, source); and each store holds only what was
/// written.
pub fn check_writes(
    stores: &[(&str, &Store)],
    writes: &[Write],
    lost_ok: impl Fn(usize) -> bool,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, store) in stores {
        for (i, key, ts, source, _) in writes {
            if lost_ok(*i) {
                continue;
            }
            match store.entry(key) {
                Some(e) if (e.ts, e.source) >= (*ts, source.as_str()) => {}
                _ => failures.push(format!("{name}: write of {key} by {source} missing")),
            }
        }
        for key in store.keys() {
            let e = store.entry(key).expect("listed");
            let known = writes.iter().any(|(_, k, ts, s, v)| {
                k == key && *ts == e.ts && s == e.source && *v == e.value.to_json()
            });
            if !known {
                failures.push(format!(
                    "{name}: {key} holds what nobody wrote ({} at {} by {})",
                    e.value.to_json(),
                    e.ts,
                    e.source
                ));
            }
        }
        if failures.len() > 10 {
            break;
        }
    }
    failures
}

/// In a secured run, every entry of every store is signed by its writer for this room.
pub fn check_signed(secret: &str, stores: &[(&str, &Store)]) -> Vec<String> {
    use rtc_mesh_core::security::updates::{signing_input, writer_of};
    use rtc_mesh_core::security::PeerKey;
    let key = RoomKey::derive("sim", &RoomSecret::parse(secret).expect("valid"));
    let mut failures = Vec::new();
    for (name, store) in stores {
        for k in store.keys() {
            let e = store.entry(k).expect("listed");
            let ok = writer_of(e.source)
                .and_then(|w| PeerKey::from_peer_id(w).ok())
                .zip(e.sig)
                .is_some_and(|(pk, sig)| pk.verify(&signing_input(key.room_id(), e), sig).is_ok());
            if !ok {
                failures.push(format!("{name}: {k} is not signed by its writer"));
            }
        }
    }
    failures
}

/// How soon after the faults heal the mesh must have converged again.
const MAX_SETTLE: Duration = Duration::from_secs(9);

/// A small seeded generator (xorshift64*), so runs never depend on a crate's choices.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// What a run does.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The seed.
    pub seed: u64,
    /// Peers.
    pub peers: usize,
    /// Writes during the fault phase (spread over it).
    pub writes: usize,
    /// Length of the fault phase.
    pub fault_time: Duration,
    /// Inject faults.
    pub faults: bool,
    /// Codecs the peers speak (a mix when both are given: odd peers json only).
    pub mixed_codecs: bool,
    /// Like rtc-switchboard 3.2.0: no `/leave` when a connection closes.
    pub no_server_leaves: bool,
    /// A secured room under this secret: each peer's id is its identity's key, drawn
    /// from the seed (so a run replays), and every signal is sealed and signed.
    pub secret: Option<String>,
    /// A secured run: peer 0 is Byzantine. Besides its honest writes it puts crafted
    /// updates on its links during the fault phase: forged in another member's name,
    /// another's update mutated, others' genuine updates replayed out of order (ahead of
    /// their writer's earlier ones, which per-source clocks alone would then call
    /// stale), unsigned, into another's `users/` space, stamped an hour ahead, and
    /// floods of forgeries. The honest replicas must stay equal, every honest write
    /// present, and nothing accepted that its writer did not sign.
    pub byzantine: bool,
    /// A secured run whose invite names peer 1 admin ([`removal_secret`]): halfway
    /// through the fault phase it removes peer 2, which goes on writing. The others
    /// must cut it off (no one links with it), and their replicas end equal with none
    /// of peer 2's writes stamped after the removal, and every other honest write
    /// present, but those to keys peer 2 wrote after its removal (such a write may have
    /// superseded them everywhere before the removal arrived: README, "What removal
    /// cannot do"). Peer 2's own earlier writes need not be anywhere (what it had not
    /// sent when it was cut off is gone with it).
    pub removal: bool,
    /// Secured runs: the grace period of a rotation (default 7 days, the mesh's).
    pub rekey_grace: Option<Duration>,
    /// Durable members at `power` on simulated disks; crashes are power losses, and
    /// more of them come a few milliseconds after a write.
    pub power: bool,
}

impl SimConfig {
    /// A small run with faults.
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            peers: 6,
            writes: 60,
            fault_time: Duration::from_secs(30),
            faults: true,
            mixed_codecs: true,
            no_server_leaves: seed.is_multiple_of(3),
            secret: None,
            byzantine: false,
            removal: false,
            rekey_grace: None,
            power: false,
        }
    }
}

/// Faults injected in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Channel messages lost because a side closed.
    pub drops: u64,
    /// Channel messages held back by a partition.
    pub delays: u64,
    /// Partitions between two peers.
    pub partitions: u64,
    /// Peer crashes.
    pub crashes: u64,
    /// Peer restarts (without state, or at `power` from what the disk kept).
    pub restarts: u64,
    /// At `power`: writes acknowledged, and unsynced bytes the power losses took.
    pub acknowledged: u64,
    pub bytes_lost: u64,
    /// At `power`: snapshots put in place on the disks, and returns that read one back.
    pub snapshots: u64,
    pub snapshot_starts: u64,
    /// Switchboard restarts.
    pub switchboard_restarts: u64,
    /// A peer's signalling connection dropped (the switchboard stayed up).
    pub signal_drops: u64,
    /// SDP or candidates that reached a peer before their sender's announce.
    pub early_sdp: u64,
    /// Signalling messages held up on their way to a peer.
    pub signal_stalls: u64,
    /// Crafted updates the Byzantine peer put on its links.
    pub forgeries: u64,
    /// Direct (`/to`) signalling messages overtaken by a later one to the same peer.
    pub signal_reorders: u64,
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// Faults injected.
    pub faults: FaultCounts,
    /// A digest of the event timeline (same seed, same digest).
    pub trace: u64,
    /// Simulated time from the last fault's end (or the burst) until converged.
    pub converge: Duration,
    /// Updates encoded on links per write during the burst.
    pub messages_per_update: f64,
    /// Link bytes per write during the burst.
    pub bytes_per_update: f64,
    /// Updates the live stores refused at the end (secured runs; the counts of a
    /// restarted peer start again).
    pub refused: u64,
    /// Updates the live stores applied late, below their writer's clock (secured runs:
    /// the Byzantine peer's replays out of order, repaired).
    pub late: u64,
    /// Updates of a removed member refused, and its writes voided, by the live stores
    /// at the end (removal runs).
    pub revoked: u64,
    pub voided: u64,
    /// Announces and SDP of the removed member the others ignored (removal runs).
    pub removed_signals: u64,
    /// Key epochs the live members took (removal runs: the rotation, and a restarted
    /// member's taking it in the grace period), and the epoch they ended on.
    pub rekeys: u64,
    pub epoch: u32,
    /// Invariant failures (empty when the run passed).
    pub failures: Vec<String>,
}

#[derive(Debug)]
enum Ev {
    /// Text from a peer's signalling connection to the switchboard.
    ToServer(ConnId, String),
    /// Text from the switchboard to a peer (for one connection).
    ToPeer(usize, ConnId, String),
    /// The switchboard sees a connection close.
    ServerClose(ConnId),
    /// The signalling connection peer `at` (in life `life`) asked for opens.
    SignalOpen { at: usize, life: u32 },
    /// Peer `at` sees its signalling connection `conn` drop.
    SignalLost { at: usize, conn: ConnId },
    /// A data channel of generation `gen` opens on `at`'s side toward `other`.
    LinkUp {
        at: usize,
        other: usize,
        gen: u64,
        codec: Codec,
    },
    /// A channel message.
    LinkMsg {
        at: usize,
        other: usize,
        gen: u64,
        data: Vec<u8>,
    },
    /// The other side closed the connection of generation `gen`.
    LinkDown { at: usize, other: usize, gen: u64 },
    /// A scheduled fault or write.
    Action(Action),
    /// Peer `at`'s disk finished a sync of segment `seg` up to `len` bytes (life
    /// `life`), which holds the records up to `seq`.
    Synced {
        at: usize,
        life: u32,
        seg: usize,
        len: usize,
        seq: u64,
    },
    /// Peer `at`'s disk (life `life`) put the snapshot it was writing in place: it
    /// and the log segment it depends on (`seg`, up to `len`) synced, renamed, the
    /// directory synced.
    SnapshotIn {
        at: usize,
        life: u32,
        seg: usize,
        len: usize,
    },
}

#[derive(Debug, Clone)]
enum Action {
    Write(usize, String, f64),
    Partition(usize, usize, Duration),
    Heal(usize, usize),
    Crash(usize),
    Restart(usize),
    SwitchboardRestart,
    SignalDrop(usize),
    Forge(usize),
    /// Peer .0 (an admin) removes peer .1.
    Remove(usize, usize),
}

/// A queued event, ordered by time then sequence number (ties keep their order).
pub struct Queued<E>(pub Instant, pub u64, pub E);

impl<E> PartialEq for Queued<E> {
    fn eq(&self, o: &Self) -> bool {
        (self.0, self.1) == (o.0, o.1)
    }
}
impl<E> Eq for Queued<E> {}
impl<E> PartialOrd for Queued<E> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<E> Ord for Queued<E> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(o.0, o.1))
    }
}

/// The log a simulated disk's store may grow to before its garbage makes a snapshot
/// due (the runtime's default is 64 KiB; runs write a few KiB).
const SIM_SNAPSHOT_MIN_LOG: u64 = 1024;

/// A simulated disk ([`SimConfig::power`]): a write lands in the page cache at once
/// and is durable only once its sync finishes, a little later; a power loss keeps
/// what was synced and some prefix of what was not (cut anywhere, even inside a
/// record). Like the runtime's directory, each life writes a segment of its own, and
/// snapshots are written as the runtime writes them: the log rolls to a new segment at
/// a snapshot's first piece; the pieces go to a file that is put in place only once
/// the last has come and it and the log it depends on are synced, a little later;
/// then the segments before it no longer count.
#[derive(Default)]
pub struct SimDisk {
    /// Segments: (bytes written, bytes synced).
    segments: Vec<(Vec<u8>, usize)>,
    /// The snapshot in place, and the index of the first segment read after it.
    snapshot: Option<(Vec<u8>, usize)>,
    /// The snapshot being written (lost with the power), and its first segment.
    writing: Option<(Vec<u8>, usize)>,
    /// The writes this peer acknowledged: (key, ts, source).
    acked: Vec<(String, f64, String)>,
}

struct SimPeer {
    id: String,
    mesh: Option<Mesh>,
    /// At `power`: its disk.
    disk: Option<SimDisk>,
    lives: u32,
    /// Ever crashed: its writes may be lost.
    crashed: bool,
    /// Per other peer: the link generation this side is bound to, and whether open.
    sides: BTreeMap<usize, (u64, bool)>,
}

/// A Mesh-level world.
pub struct World {
    cfg: SimConfig,
    t0: Instant,
    now: Instant,
    rng: Rng,
    peers: Vec<SimPeer>,
    board: Switchboard,
    queue: BinaryHeap<Reverse<Queued<Ev>>>,
    /// Each peer's signalling connection.
    conns: Connections,
    seq: u64,
    next_gen: u64,
    partitioned: BTreeMap<(usize, usize), Instant>,
    /// Each live peer's next timer, and the set ordered by time.
    timer_of: Vec<Option<Instant>>,
    timers: std::collections::BTreeSet<(Instant, usize)>,
    /// Offers under way: (offerer, answerer) -> (start, generation).
    negotiations: BTreeMap<(usize, usize), (Instant, u64)>,
    /// The last crash, restart or partition touching each peer.
    last_fault: BTreeMap<usize, Instant>,
    board_restart: Option<Instant>,
    broken_negotiations: Vec<String>,
    /// Per (from, to): when the last message was delivered (channels keep order).
    last_delivery: BTreeMap<(usize, usize), Instant>,
    /// Per (from, to): the link's last real message ended inside a json line (a
    /// Byzantine peer's crafted messages go only between whole lines: one put inside a
    /// line would garble it, as if the peer had withheld what it relayed, which this
    /// model does not do).
    mid_line: BTreeMap<(usize, usize), bool>,
    /// Every write: key -> (ts, source, value json).
    writes: Vec<Write>,
    /// The removal made ([`SimConfig::removal`]): the removed peer's id and `after`.
    removal: Option<(String, f64)>,
    faults: FaultCounts,
    trace: u64,
    /// Record events and link commands in `log` (tests).
    pub record: bool,
    /// `RTC_MESH_SIM_DEBUG=1`: every signal, link command, action and mesh event (but
    /// updates) printed to stderr as it happens, to see why a seed fails.
    debug: bool,
    /// What was recorded: (time since start, peer, what).
    pub log: Vec<(Duration, usize, Logged)>,
    /// The largest channel message sent.
    pub max_message: usize,
    /// At `power`: what went wrong coming back from a power loss.
    durable_failures: Vec<String>,
}

/// A recorded output.
#[derive(Clone, Debug)]
pub enum Logged {
    /// A mesh event.
    Event(MeshEvent),
    /// A link command.
    Link(LinkCommand),
}

/// A switchboard whose room holds every peer of the run.
fn board(peers: usize, now: Instant) -> Switchboard {
    let mut c = rtc_mesh_core::switchboard::SwitchboardConfig::default();
    c.max_members = c.max_members.max(peers);
    Switchboard::new(c, now)
}

fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl World {
    /// A world for `cfg`.
    pub fn new(cfg: SimConfig) -> World {
        let t0 = Instant::now();
        let mut w = World {
            rng: Rng::new(cfg.seed),
            t0,
            now: t0,
            peers: Vec::new(),
            board: board(cfg.peers, t0),
            queue: BinaryHeap::new(),
            conns: Connections::default(),
            seq: 0,
            next_gen: 0,
            partitioned: BTreeMap::new(),
            last_delivery: BTreeMap::new(),
            mid_line: BTreeMap::new(),
            negotiations: BTreeMap::new(),
            last_fault: BTreeMap::new(),
            board_restart: None,
            broken_negotiations: Vec::new(),
            timer_of: Vec::new(),
            timers: std::collections::BTreeSet::new(),
            writes: Vec::new(),
            removal: None,
            faults: FaultCounts::default(),
            trace: 0xcbf2_9ce4_8422_2325,
            record: false,
            debug: std::env::var_os("RTC_MESH_SIM_DEBUG").is_some(),
            log: Vec::new(),
            max_message: 0,
            durable_failures: Vec::new(),
            cfg,
        };
        w.timer_of = vec![None; w.cfg.peers];
        for i in 0..w.cfg.peers {
            let id = match w.cfg.secret {
                Some(_) => identity(w.cfg.seed, i).peer_id().to_owned(),
                None => format!("p{i:03}"),
            };
            let disk = w.cfg.power.then(SimDisk::default);
            w.peers.push(SimPeer {
                id,
                mesh: None,
                disk,
                lives: 0,
                crashed: false,
                sides: BTreeMap::new(),
            });
            w.boot(i);
        }
        w
    }

    fn hash(&mut self, x: u64) {
        self.trace ^= x;
        self.trace = self.trace.wrapping_mul(0x100_0000_01b3);
    }

    fn latency(&mut self) -> Duration {
        Duration::from_micros(500 + self.rng.below(4_500))
    }

    fn at(&mut self, t: Instant, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued(t, self.seq, ev)));
    }

    fn after(&mut self, d: Duration, ev: Ev) {
        let t = self.now + d;
        self.at(t, ev);
    }

    /// Starts (or restarts, without state) peer `i`.
    fn boot(&mut self, i: usize) {
        let p = &mut self.peers[i];
        p.lives += 1;
        let incarnation = format!("{:016x}", (i as u64) << 32 | p.lives as u64);
        let mut mc = MeshConfig::new(
            p.id.clone(),
            "sim",
            incarnation,
            EPOCH_MS + self.now.duration_since(self.t0).as_millis() as f64,
            self.now,
        );
        if self.cfg.mixed_codecs && i % 2 == 1 {
            mc.codecs = vec![Codec::Json];
        }
        mc.seed = self.cfg.seed ^ (i as u64) << 8 ^ p.lives as u64;
        if let Some(secret) = &self.cfg.secret {
            let key = RoomKey::derive("sim", &RoomSecret::parse(secret).expect("a valid secret"));
            let mut e = [0u8; 32];
            e[..8].copy_from_slice(&mc.seed.to_le_bytes());
            let mut sec = Security::new(key, identity(self.cfg.seed, i), Entropy::from_seed(e));
            if let Some(g) = self.cfg.rekey_grace {
                sec.rekey_grace = g;
            }
            mc.security = Some(sec);
        }
        let mut first_seq = None;
        if let Some(disk) = p.disk.as_mut() {
            let r = disk.come_back(&p.id, &mut self.durable_failures);
            first_seq = Some(r.next_seq);
            if r.snapshot_bytes > 0 {
                self.faults.snapshot_starts += 1;
            }
            mc.durable = Some(r);
            // Snapshots small and often, in pieces of a few entries, so that runs
            // take them among the writes and the power losses.
            mc.snapshots.min_log = SIM_SNAPSHOT_MIN_LOG;
            mc.snapshots.entries_per_step = 3;
        }
        let mut mesh = Mesh::new(mc).expect("valid config");
        if let (Some(disk), Some(first)) = (p.disk.as_mut(), first_seq) {
            disk.begin(mesh.store().id(), first);
        }
        p.sides.clear();
        mesh.start(self.now);
        p.mesh = Some(mesh);
        self.drain(i);
    }

    fn set_timer(&mut self, i: usize, t: Option<Instant>) {
        if let Some(old) = self.timer_of[i].take() {
            self.timers.remove(&(old, i));
        }
        if let Some(t) = t {
            self.timers.insert((t, i));
            self.timer_of[i] = Some(t);
        }
    }

    /// Moves peer `i`'s outputs into the world (a durable peer's changes to its disk
    /// first, as the runtimes do after every input).
    fn drain(&mut self, i: usize) {
        self.flush_disk(i);
        loop {
            let Some(mesh) = self.peers[i].mesh.as_mut() else {
                self.set_timer(i, None);
                return;
            };
            let o = mesh.poll_output();
            match o {
                MeshOutput::Timeout(t) => {
                    self.set_timer(i, Some(t));
                    return;
                }
                // Simulated peers attach no streams.
                MeshOutput::Stream { .. } | MeshOutput::CloseStream(_) => {}
                MeshOutput::SignalConnect => {
                    // A TCP and WebSocket handshake: two round trips.
                    let d = self.latency() * 4;
                    let life = self.peers[i].lives;
                    self.after(d, Ev::SignalOpen { at: i, life });
                }
                MeshOutput::Signal(text) => {
                    if let Some(c) = self.conns.of(i) {
                        let t = self.now + self.latency();
                        let t = self.ordered(usize::MAX - i, t);
                        self.at(t, Ev::ToServer(c, text));
                    }
                }
                MeshOutput::SignalClose => {
                    // After what was sent before it.
                    if let Some(c) = self.conns.take(i) {
                        let t = self.now + self.latency();
                        let t = self.ordered(usize::MAX - i, t);
                        self.at(t, Ev::ServerClose(c));
                    }
                }
                MeshOutput::Event(e) => {
                    if !matches!(e, MeshEvent::Update(_)) {
                        self.debug(format_args!("p{i} event {e:?}"));
                    }
                    if let (MeshEvent::Update(u), Some(disk)) = (&e, self.peers[i].disk.as_mut()) {
                        if u.local {
                            // Acknowledged.
                            self.faults.acknowledged += 1;
                            disk.acked
                                .push((u.key.to_string(), u.ts, u.source.to_string()));
                        }
                    }
                    let kind = match &e {
                        MeshEvent::Online => 1,
                        MeshEvent::PeerJoined { .. } => 2,
                        MeshEvent::PeerLeft { .. } => 3,
                        MeshEvent::Update(_) => 4,
                        MeshEvent::Synced { .. } => 5,
                        MeshEvent::SyncedAll { .. } => 6,
                        MeshEvent::Offline => 7,
                        _ => 8,
                    };
                    let t = self.now.duration_since(self.t0).as_micros() as u64;
                    self.hash(t);
                    self.hash(i as u64);
                    self.hash(kind);
                    if self.record {
                        let at = self.now.duration_since(self.t0);
                        self.log.push((at, i, Logged::Event(e)));
                    }
                }
                MeshOutput::Transmit { peer, data } => {
                    self.max_message = self.max_message.max(data.len());
                    let Some(j) = self.index(&peer) else { continue };
                    let Some(&(gen, true)) = self.peers[i].sides.get(&j) else {
                        self.faults.drops += 1;
                        continue;
                    };
                    self.mid_line
                        .insert((i, j), data.last().is_some_and(|&b| b != b'\n'));
                    self.send_link(i, j, gen, data);
                }
                MeshOutput::Link(cmd) => {
                    if self.debug {
                        let c: String = format!("{cmd:?}").chars().take(120).collect();
                        self.debug(format_args!("p{i} link {c}"));
                    }
                    if self.record {
                        let at = self.now.duration_since(self.t0);
                        self.log.push((at, i, Logged::Link(cmd.clone())));
                    }
                    self.link_command(i, cmd)
                }
            }
        }
    }

    /// Keeps a stream's order: `t`, or later if the stream's last message is later.
    fn ordered(&mut self, stream: usize, t: Instant) -> Instant {
        let last = self.last_delivery.entry((stream, stream)).or_insert(t);
        let t = t.max(*last);
        *last = t;
        t
    }

    fn index(&self, id: &str) -> Option<usize> {
        if self.cfg.secret.is_some() {
            // Key-derived ids.
            return self.peers.iter().position(|p| p.id == id);
        }
        id.strip_prefix('p')
            .and_then(|n| n.parse().ok())
            .filter(|&n: &usize| n < self.peers.len())
    }

    fn link_command(&mut self, i: usize, cmd: LinkCommand) {
        match cmd {
            LinkCommand::Open {
                peer,
                offerer,
                codec,
            } => {
                let Some(j) = self.index(&peer) else { return };
                if offerer {
                    self.next_gen += 1;
                    let gen = self.next_gen;
                    self.peers[i].sides.insert(j, (gen, false));
                    self.negotiations.insert((i, j), (self.now, gen));
                    let sdp = format!("sim {} {gen}", codec.name());
                    if let Some(m) = self.peers[i].mesh.as_mut() {
                        m.local_sdp(self.now, &peer, SdpKind::Offer, &sdp);
                    }
                }
            }
            // Simulated links have no ICE to restart (and no mesh here sends one).
            LinkCommand::RestartSdp { .. } => {}
            LinkCommand::RemoteSdp { peer, kind, sdp } => {
                let Some(j) = self.index(&peer) else { return };
                let mut parts = sdp.split(' ').skip(1);
                let codec = parts
                    .next()
                    .and_then(Codec::from_name)
                    .unwrap_or(Codec::Json);
                let gen: u64 = parts.next().and_then(|g| g.parse().ok()).unwrap_or(0);
                match kind {
                    SdpKind::Offer => {
                        self.peers[i].sides.insert(j, (gen, false));
                        if let Some(m) = self.peers[i].mesh.as_mut() {
                            m.local_sdp(self.now, &peer, SdpKind::Answer, &sdp);
                        }
                    }
                    SdpKind::Answer => {
                        if self.peers[i].sides.get(&j).map(|s| s.0) != Some(gen) {
                            return;
                        }
                        // ICE, DTLS and SCTP: a few round trips, then both sides open.
                        let d = self.latency() * 3;
                        let mut t = self.now + d;
                        if let Some(&heal) = self.partitioned.get(&pair(i, j)) {
                            t = t.max(heal + d);
                        }
                        self.at(
                            t,
                            Ev::LinkUp {
                                at: i,
                                other: j,
                                gen,
                                codec,
                            },
                        );
                        self.at(
                            t,
                            Ev::LinkUp {
                                at: j,
                                other: i,
                                gen,
                                codec,
                            },
                        );
                    }
                }
            }
            LinkCommand::RemoteCandidate { .. } => {}
            LinkCommand::Close { peer } => {
                let Some(j) = self.index(&peer) else { return };
                if let Some((start, gen)) = self.negotiations.remove(&(i, j)) {
                    // A negotiation abandoned: fine if a fault touched either side (or
                    // the switchboard) meanwhile; with no fault it is a bug.
                    let faulted = |k: usize| self.last_fault.get(&k).is_some_and(|&t| t >= start);
                    let bound = self.peers[i].sides.get(&j).map(|s| s.0) == Some(gen);
                    if bound
                        && self.now - start >= Duration::from_secs(9)
                        && !faulted(i)
                        && !faulted(j)
                        && self.board_restart.is_none_or(|t| t < start)
                        && self.peers[j].mesh.is_some()
                        && !self.is_removed_peer(i)
                        && !self.is_removed_peer(j)
                    {
                        self.broken_negotiations.push(format!(
                            "{} gave up on an offer to {} after {:?} with no fault in between",
                            self.peers[i].id,
                            self.peers[j].id,
                            self.now - start
                        ));
                    }
                }
                if let Some((gen, _)) = self.peers[i].sides.remove(&j) {
                    // After whatever this side sent before closing (SCTP shuts down
                    // gracefully).
                    let mut t = self.now + self.latency();
                    if let Some(last) = self.last_delivery.get(&(i, j)) {
                        t = t.max(*last);
                    }
                    self.at(
                        t,
                        Ev::LinkDown {
                            at: j,
                            other: i,
                            gen,
                        },
                    );
                }
            }
        }
    }

    fn server_outputs(&mut self) {
        loop {
            match self.board.poll_output() {
                SwitchOutput::Timeout(_) => return,
                SwitchOutput::Send(_, text)
                    if self.cfg.no_server_leaves
                        && text.starts_with("/leave|")
                        && text.ends_with(r#""reason":"disconnected"}"#) => {}
                SwitchOutput::Send(c, text) => {
                    let to = self.conns.peer(c);
                    if let Some(i) = to.filter(|&i| self.peers[i].mesh.is_some()) {
                        let mut t = self.now + self.latency();
                        if self.cfg.faults && self.rng.chance(0.02) {
                            // A slow stretch on this peer's WebSocket (kept in order).
                            self.faults.signal_stalls += 1;
                            t += Duration::from_millis(300 + self.rng.below(1200));
                        }
                        let t =
                            if self.cfg.faults && text.starts_with("/to|") && self.rng.chance(0.05)
                            {
                                // A relay that does not keep a sender's direct messages in
                                // order (a switchboard cluster spreading `/to` over workers):
                                // this one is late, and later ones may pass it. It is not a
                                // fault that excuses anything: the mesh must cope with it.
                                self.faults.signal_reorders += 1;
                                t + Duration::from_millis(1 + self.rng.below(40))
                            } else {
                                self.ordered(usize::MAX / 2 - i, t)
                            };
                        self.at(t, Ev::ToPeer(i, c, text.to_string()));
                    }
                }
                SwitchOutput::Close(..) | SwitchOutput::Ping(_) => {}
            }
        }
    }

    fn debug(&self, what: std::fmt::Arguments<'_>) {
        if self.debug {
            let at = self.now.duration_since(self.t0).as_millis();
            eprintln!("{at:>7} {what}");
        }
    }

    fn apply(&mut self, ev: Ev) {
        if self.debug {
            match &ev {
                Ev::ToPeer(i, _, text) => {
                    let t: String = text.chars().take(90).collect();
                    self.debug(format_args!("p{i} <- {t}"));
                }
                Ev::ToServer(c, text) => {
                    let t: String = text.chars().take(90).collect();
                    self.debug(format_args!("conn {c:?} -> {t}"));
                }
                Ev::LinkMsg {
                    at, other, data, ..
                } => {
                    let text = String::from_utf8_lossy(data);
                    for w in ["WANT ", "SUMS ", "REKEY "] {
                        for (k, _) in text.match_indices(w) {
                            let t: String = text[k..]
                                .chars()
                                .take(if w == "SUMS " { 4000 } else { 160 })
                                .collect();
                            self.debug(format_args!("p{at} <- p{other} {t}"));
                        }
                    }
                }
                other => self.debug(format_args!("{other:?}")),
            }
        }
        match ev {
            Ev::ToServer(c, text) => {
                self.board.handle_text(self.now, c, &text);
                self.server_outputs();
            }
            Ev::ServerClose(c) => {
                self.board.handle_close(self.now, c);
                self.server_outputs();
            }
            Ev::ToPeer(i, c, text) => {
                if self.conns.of(i) == Some(c) {
                    let mut counted = Vec::new();
                    if let Some(m) = self.peers[i].mesh.as_mut() {
                        let before = m.stats().counters();
                        m.handle_signal(self.now, &text);
                        if self.debug {
                            for (b, a) in before.iter().zip(m.stats().counters()) {
                                if a.1 != b.1 {
                                    counted.push(a.0);
                                }
                            }
                        }
                    }
                    if !counted.is_empty() {
                        self.debug(format_args!("p{i} counted {counted:?}"));
                    }
                    self.drain(i);
                } else {
                    self.debug(format_args!("p{i} not on conn {c:?}: dropped"));
                }
            }
            Ev::SignalOpen { at, life } => {
                if self.peers[at].lives != life || self.peers[at].mesh.is_none() {
                    return;
                }
                self.conns.open(&mut self.board, self.now, at);
                self.server_outputs();
                if let Some(m) = self.peers[at].mesh.as_mut() {
                    m.handle_signal_connected(self.now);
                }
                self.drain(at);
            }
            Ev::SignalLost { at, conn } => {
                if !self.conns.lost(at, conn) {
                    return;
                }
                if let Some(m) = self.peers[at].mesh.as_mut() {
                    m.handle_signal_disconnected(self.now);
                }
                self.drain(at);
            }
            Ev::LinkUp {
                at,
                other,
                gen,
                codec,
            } => {
                let Some(side) = self.peers[at].sides.get_mut(&other) else {
                    return;
                };
                if side.0 != gen {
                    return;
                }
                side.1 = true;
                self.negotiations.remove(&(at, other));
                let peer = self.peers[other].id.clone();
                if let Some(m) = self.peers[at].mesh.as_mut() {
                    m.link_open(self.now, &peer, codec);
                }
                self.drain(at);
            }
            Ev::LinkMsg {
                at,
                other,
                gen,
                data,
            } => {
                if self.peers[at].sides.get(&other) != Some(&(gen, true)) {
                    self.faults.drops += 1;
                    return;
                }
                let peer = self.peers[other].id.clone();
                if let Some(m) = self.peers[at].mesh.as_mut() {
                    m.link_data(self.now, &peer, &data);
                }
                self.drain(at);
            }
            Ev::LinkDown { at, other, gen } => {
                if self.peers[at].sides.get(&other).map(|s| s.0) != Some(gen) {
                    return;
                }
                self.peers[at].sides.remove(&other);
                let peer = self.peers[other].id.clone();
                if let Some(m) = self.peers[at].mesh.as_mut() {
                    m.link_closed(self.now, &peer);
                }
                self.drain(at);
            }
            Ev::Action(a) => self.action(a),
            Ev::Synced {
                at,
                life,
                seg,
                len,
                seq,
            } => {
                // (Of a life that ended: its power went before the disk got there,
                // whether or not it has come back yet.)
                if self.peers[at].lives != life || self.peers[at].mesh.is_none() {
                    return;
                }
                let Some(disk) = self.peers[at].disk.as_mut() else {
                    return;
                };
                let synced = &mut disk.segments[seg].1;
                *synced = (*synced).max(len);
                if let Some(m) = self.peers[at].mesh.as_mut() {
                    m.persisted(seq);
                }
                self.drain(at);
            }
            Ev::SnapshotIn { at, life, seg, len } => {
                // (Of a life that ended: its power went before the disk got there,
                // whether or not it has come back yet.)
                if self.peers[at].lives != life || self.peers[at].mesh.is_none() {
                    return;
                }
                let Some(disk) = self.peers[at].disk.as_mut() else {
                    return;
                };
                // (A later snapshot begun meanwhile is the one still being written.)
                if disk.writing.as_ref().is_some_and(|w| w.1 == seg) {
                    let synced = &mut disk.segments[seg].1;
                    *synced = (*synced).max(len);
                    disk.snapshot = disk.writing.take();
                    self.faults.snapshots += 1;
                }
            }
        }
    }

    /// A durable peer's changes since its last turn, written to its disk; each batch
    /// synced after a while (then reported to the mesh).
    fn flush_disk(&mut self, i: usize) {
        let p = &mut self.peers[i];
        let (Some(m), Some(disk)) = (p.mesh.as_mut(), p.disk.as_mut()) else {
            return;
        };
        let life = p.lives;
        let mut syncs = Vec::new();
        while let Some(b) = m.poll_persist() {
            let seg = disk.segments.len() - 1;
            let bytes = &mut disk.segments[seg].0;
            bytes.extend_from_slice(&b.bytes);
            syncs.push((seg, bytes.len(), b.last_seq));
        }
        // A snapshot's next piece, one per turn as the runtime takes them.
        let mut installing = None;
        if let Some(part) = m.poll_snapshot() {
            if part.first {
                disk.roll(m.store().id(), part.from_seq);
                disk.writing = Some((Vec::new(), disk.segments.len() - 1));
            }
            if let Some((bytes, _)) = disk.writing.as_mut() {
                bytes.extend_from_slice(&part.bytes);
            }
            if part.last_seq.is_some() {
                let seg = disk.segments.len() - 1;
                installing = Some((seg, disk.segments[seg].0.len()));
            }
        }
        if let Some((seg, len)) = installing {
            let d = Duration::from_micros(500 + self.rng.below(5_000));
            self.after(
                d,
                Ev::SnapshotIn {
                    at: i,
                    life,
                    seg,
                    len,
                },
            );
        }
        for (seg, len, seq) in syncs {
            let d = Duration::from_micros(200 + self.rng.below(2_800));
            self.after(
                d,
                Ev::Synced {
                    at: i,
                    life,
                    seg,
                    len,
                    seq,
                },
            );
        }
    }

    fn action(&mut self, a: Action) {
        match a {
            Action::Write(i, key, v) => {
                let Some(m) = self.peers[i].mesh.as_mut() else {
                    return;
                };
                if let Ok(u) = m.set(self.now, &key, &Value::from(v)) {
                    let source = u.source.to_string();
                    self.writes.push((i, key, u.ts, source, u.value.to_json()));
                }
                self.drain(i);
            }
            Action::Forge(i) => self.forge(i),
            Action::Remove(admin, who) => {
                let id = identity(self.cfg.seed, who).peer_id().to_owned();
                let after = EPOCH_MS + self.now.duration_since(self.t0).as_millis() as f64;
                let Some(m) = self.peers[admin].mesh.as_mut() else {
                    return;
                };
                let record = Value::from_json(&format!("{{\"after\":{after}}}")).expect("json");
                if let Ok(u) = m.set(self.now, &format!("room/revoked/{id}"), &record) {
                    let source = u.source.to_string();
                    let key = u.key.to_string();
                    self.writes
                        .push((admin, key, u.ts, source, u.value.to_json()));
                    self.removal = Some((id, after));
                }
                self.drain(admin);
            }
            Action::Partition(a, b, d) => {
                self.faults.partitions += 1;
                self.last_fault.insert(a, self.now + d);
                self.last_fault.insert(b, self.now + d);
                let heal = self.now + d;
                self.partitioned.insert(pair(a, b), heal);
                self.after(d, Ev::Action(Action::Heal(a, b)));
            }
            Action::Heal(a, b) => {
                if self
                    .partitioned
                    .get(&pair(a, b))
                    .is_some_and(|&t| t <= self.now)
                {
                    self.partitioned.remove(&pair(a, b));
                }
            }
            Action::Crash(i) => {
                if let Some(m) = self.peers[i].mesh.as_ref() {
                    self.faults.early_sdp += m.stats().early;
                }
                if self.peers[i].mesh.take().is_some() {
                    if let Some(disk) = self.peers[i].disk.as_mut() {
                        self.faults.bytes_lost += disk.power_loss(&mut self.rng);
                    }
                    self.set_timer(i, None);
                    self.last_fault.insert(i, self.now);
                    self.faults.crashes += 1;
                    self.peers[i].crashed = true;
                    self.peers[i].sides.clear();
                    if let Some(c) = self.conns.take(i) {
                        let d = self.latency();
                        self.after(d, Ev::ServerClose(c));
                    }
                }
            }
            Action::Restart(i) => {
                if self.peers[i].mesh.is_none() {
                    self.last_fault.insert(i, self.now);
                    self.faults.restarts += 1;
                    self.boot(i);
                }
            }
            Action::SwitchboardRestart => {
                self.faults.switchboard_restarts += 1;
                self.board_restart = Some(self.now);
                self.board = board(self.peers.len(), self.now);
                // Every connection drops; each peer's client sees it a little later,
                // then reconnects and announces again.
                for (i, conn) in self.conns.open_ones() {
                    let d = self.latency();
                    self.after(d, Ev::SignalLost { at: i, conn });
                }
            }
            Action::SignalDrop(i) => {
                let Some(conn) = self.conns.of(i) else {
                    return;
                };
                self.faults.signal_drops += 1;
                self.last_fault.insert(i, self.now);
                // Both ends notice, each after its own delay.
                let (d1, d2) = (self.latency(), self.latency());
                self.after(d1, Ev::ServerClose(conn));
                self.after(d2, Ev::SignalLost { at: i, conn });
            }
        }
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Simulated time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now.duration_since(self.t0)
    }

    /// Number of peers.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Peer `i`'s mesh, unless it is down.
    pub fn mesh(&self, i: usize) -> Option<&Mesh> {
        self.peers[i].mesh.as_ref()
    }

    /// Peer `i` writes `key` = `value` now.
    pub fn write(&mut self, i: usize, key: &str, value: f64) {
        self.action(Action::Write(i, key.into(), value));
    }

    /// Peer `i` sets `key` to any value now; the store's answer.
    pub fn write_value(
        &mut self,
        i: usize,
        key: &str,
        value: &Value,
    ) -> Result<(), rtc_mesh_core::StoreError> {
        let now = self.now;
        let Some(m) = self.peers[i].mesh.as_mut() else {
            return Ok(());
        };
        let u = m.set(now, key, value)?;
        let source = u.source.to_string();
        self.writes
            .push((i, key.into(), u.ts, source, u.value.to_json()));
        self.drain(i);
        Ok(())
    }

    /// Peer `i` crashes (no `/leave`; its sockets close).
    pub fn crash(&mut self, i: usize) {
        self.action(Action::Crash(i));
    }

    /// Peer `i` starts again with a new incarnation and no state.
    pub fn restart(&mut self, i: usize) {
        self.action(Action::Restart(i));
    }

    /// Peer `admin` (named admin by the run's invite: [`removal_secret`]) removes peer
    /// `who` (`room/revoked/<id>`).
    pub fn remove(&mut self, admin: usize, who: usize) {
        self.action(Action::Remove(admin, who));
    }

    /// Whether the switchboard has peer `i`, and in which room (the room's tag in a
    /// secured run).
    pub fn switchboard_room(&self, i: usize) -> Option<String> {
        let conn = self.conns.of(i)?;
        self.board.conn_room(conn).map(str::to_owned)
    }

    /// Cuts the channel between `a` and `b` for `d`.
    pub fn partition(&mut self, a: usize, b: usize, d: Duration) {
        self.action(Action::Partition(a, b, d));
    }

    /// The switchboard restarts; peers reconnect and announce again.
    pub fn restart_switchboard(&mut self) {
        self.action(Action::SwitchboardRestart);
    }

    /// Peer `i`'s signalling connection drops (the switchboard stays up); its client
    /// reconnects.
    pub fn drop_signalling(&mut self, i: usize) {
        self.action(Action::SignalDrop(i));
    }

    /// Peer `i` announces new user attributes.
    pub fn announce<'a>(
        &mut self,
        i: usize,
        attributes: impl IntoIterator<Item = (&'a str, Value)>,
    ) {
        let now = self.now;
        let mut o = rtc_mesh_core::Object::new();
        for (k, v) in attributes {
            o.insert(k, v);
        }
        if let Some(m) = self.peers[i].mesh.as_mut() {
            m.announce(now, o);
        }
        self.drain(i);
    }

    /// Peer `i` leaves politely.
    pub fn leave(&mut self, i: usize) {
        let now = self.now;
        if let Some(m) = self.peers[i].mesh.as_mut() {
            m.close(now);
        }
        self.drain(i);
    }

    /// Are all live replicas equal, each seeing every other live peer?
    pub fn is_converged(&self) -> bool {
        self.converged()
    }

    /// Invariant failures now.
    pub fn failures(&self) -> Vec<String> {
        self.check()
    }

    /// Runs until `f` holds, up to `max` of simulated time; returns the time taken.
    pub fn run_until_true(
        &mut self,
        max: Duration,
        f: impl Fn(&World) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        while self.now - start < max {
            if f(self) {
                return Some(self.now - start);
            }
            let t = self.now + Duration::from_millis(10);
            self.run_until(t);
        }
        f(self).then(|| self.now - start)
    }

    /// Runs until `until`, processing events and timers in order.
    fn run_until(&mut self, until: Instant) {
        let mut steps = 0u64;
        loop {
            steps += 1;
            assert!(steps < 50_000_000, "simulation does not settle");
            let next_ev = self.queue.peek().map(|Reverse(q)| q.0);
            // The earliest mesh timer.
            let next_timer: Option<(Instant, usize)> = self.timers.iter().next().copied();
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
                let Reverse(Queued(_, _, ev)) = self.queue.pop().expect("peeked");
                self.apply(ev);
            } else if let Some((_, i)) = next_timer {
                if let Some(m) = self.peers[i].mesh.as_mut() {
                    m.handle_timeout(self.now);
                }
                self.drain(i);
            }
        }
    }

    /// Sends `data` on `i`'s open link (generation `gen`) to `j`: after the latency, held
    /// by a partition, and never before the link's previous message (ordered, reliable).
    fn send_link(&mut self, i: usize, j: usize, gen: u64, data: Vec<u8>) {
        let d = self.latency();
        let mut t = self.now + d;
        if let Some(&heal) = self.partitioned.get(&pair(i, j)) {
            self.faults.delays += 1;
            t = t.max(heal + d);
        }
        let last = self.last_delivery.entry((i, j)).or_insert(t);
        t = t.max(*last);
        *last = t;
        self.at(
            t,
            Ev::LinkMsg {
                at: j,
                other: i,
                gen,
                data,
            },
        );
    }

    /// Peer `i` (Byzantine) puts crafted updates on each of its open links.
    fn forge(&mut self, i: usize) {
        use rtc_mesh_core::security::updates::UpdateGuard;
        use rtc_mesh_core::{EncodedValue, Encoder, Framing, Update};
        let Some(secret) = self.cfg.secret.clone() else {
            return;
        };
        let Some(m) = self.peers[i].mesh.as_ref() else {
            return;
        };
        let key = RoomKey::derive("sim", &RoomSecret::parse(&secret).expect("valid"));
        let me = identity(self.cfg.seed, i);
        let guard = UpdateGuard::new(*key.room_id(), me.clone());
        let own = m.store().id().to_owned();
        // What it holds of the others' (to replay or mutate), and their names. (Not its
        // own earlier lives': those it may still sign, as the member it is.)
        let mine = |source: &str| {
            rtc_mesh_core::security::updates::writer_of(source) == Some(me.peer_id())
        };
        let held: Vec<Update> = m
            .store()
            .keys()
            .filter_map(|k| m.store().entry(k))
            .filter(|u| !mine(u.source))
            .map(|u| u.to_owned())
            .collect();
        let others: Vec<String> = held.iter().map(|u| u.source.to_string()).collect();
        let sides: Vec<(usize, u64, Codec)> = self.peers[i]
            .sides
            .iter()
            .filter(|(_, s)| s.1)
            .filter_map(|(&j, s)| {
                let codec = m.link_info(&self.peers[j].id).and_then(|l| l.codec)?;
                Some((j, s.0, codec))
            })
            .collect();
        let wall = EPOCH_MS + self.now.duration_since(self.t0).as_millis() as f64;
        let mut crafted = Vec::new();
        let n = if self.rng.chance(0.2) {
            40
        } else {
            1 + self.rng.below(4) as usize
        };
        for _ in 0..n {
            let ts = wall + self.rng.below(50_000) as f64 + 1.0;
            let v = EncodedValue::from_value(&Value::from(-1.0));
            let mut u = Update {
                key: format!("k{}", self.rng.below(10)).into(),
                value: v,
                ts,
                source: own.as_str().into(),
                sig: None,
            };
            match self.rng.below(6) {
                // Forged in another's name, signed by itself.
                0 if !others.is_empty() => {
                    u.source = others[self.rng.below(others.len() as u64) as usize]
                        .as_str()
                        .into();
                    u.sig = Some(guard.sign(u.as_ref()));
                }
                // Another's update, its value changed; or replayed as it is, which can
                // put a writer's later update ahead of its earlier ones where those have
                // not arrived yet (see StoreStats::late and the SUMS repair).
                1 | 2 if !held.is_empty() => {
                    u = held[self.rng.below(held.len() as u64) as usize].clone();
                    if self.rng.chance(0.5) {
                        u.value = EncodedValue::from_value(&Value::from(-2.0));
                    }
                }
                // Into another's users/ space, validly signed.
                3 => {
                    let victim = identity(self.cfg.seed, (i + 1) % self.cfg.peers);
                    u.key = format!("users/{}/x", victim.peer_id()).into();
                    u.sig = Some(guard.sign(u.as_ref()));
                }
                // An hour ahead, validly signed: held back past the run's end.
                4 => {
                    u.ts = wall + 3_600_000.0;
                    u.sig = Some(guard.sign(u.as_ref()));
                }
                // Unsigned.
                _ => {}
            }
            crafted.push(u);
        }
        for (j, gen, codec) in sides {
            if codec == Codec::Json && self.mid_line.get(&(i, j)).copied().unwrap_or(false) {
                continue;
            }
            let mut e = Encoder::new(codec, Framing::Messages);
            for u in &crafted {
                e.update(u.as_ref());
            }
            while let Some(data) = e.poll_transmit() {
                self.faults.forgeries += 1;
                self.send_link(i, j, gen, data);
            }
        }
    }

    fn schedule(&mut self, d: Duration, a: Action) {
        self.after(d, Ev::Action(a));
    }

    /// Checks the invariants; returns what failed.
    fn check(&self) -> Vec<String> {
        let mut failures = Vec::new();
        // A removed member is cut off: its replica is no one's to keep equal.
        let removed = self.removal.as_ref().map(|(id, _)| id.as_str());
        let live = self.members();
        let Some(first) = live.first() else {
            return failures;
        };
        let dump = first.store().dump();
        for m in &live[1..] {
            let other = m.store().dump();
            if other != dump {
                let key = dump
                    .iter()
                    .map(|(k, _)| k)
                    .chain(other.iter().map(|(k, _)| k))
                    .find(|k| dump.get(k) != other.get(k))
                    .unwrap_or_default()
                    .to_owned();
                let show = |s: &Store| {
                    s.entry(&key)
                        .map(|e| format!("{} at {} by {}", e.value.to_json(), e.ts, e.source))
                        .unwrap_or_else(|| "nothing".into())
                };
                failures.push(format!(
                    "replicas {} and {} differ: {key} is {} and {}",
                    first.id(),
                    m.id(),
                    show(first.store()),
                    show(m.store())
                ));
                break;
            }
        }
        if let Some(r) = removed {
            for m in &live {
                if m.peers().any(|(p, _)| p == r) || m.link_of(r).is_some() {
                    failures.push(format!("{} still has the removed member {r}", m.id()));
                }
            }
            // The room moved to a key the removed member does not have, every member
            // with it.
            for m in &live {
                if m.epoch() == 0 || m.epoch() != first.epoch() {
                    failures.push(format!(
                        "{} is in key epoch {} ({} in {})",
                        m.id(),
                        m.epoch(),
                        first.epoch(),
                        first.id()
                    ));
                }
            }
            let gone = self.peers.iter().filter_map(|p| p.mesh.as_ref());
            for m in gone.filter(|m| m.id() == r && m.epoch() != 0) {
                failures.push(format!("the removed member has key epoch {}", m.epoch()));
            }
        }
        let stores: Vec<(&str, &Store)> = live.iter().map(|m| (m.id(), m.store())).collect();
        // After a removal: the removed member's later writes must be gone, and the
        // keys it wrote then may have lost what they held (see SimConfig::removal).
        let removed_late = |source: &str, ts: f64| {
            self.removal.as_ref().is_some_and(|(id, after)| {
                rtc_mesh_core::security::updates::writer_of(source) == Some(id.as_str())
                    && ts > *after
            })
        };
        let hit: std::collections::HashSet<&str> = self
            .writes
            .iter()
            .filter(|w| removed_late(&w.3, w.2))
            .map(|w| w.1.as_str())
            .collect();
        let expected: Vec<Write> = self
            .writes
            .iter()
            .filter(|w| !removed_late(&w.3, w.2))
            .cloned()
            .collect();
        for (name, store) in &stores {
            for key in store.keys() {
                let e = store.entry(key).expect("listed");
                if removed_late(e.source, e.ts) {
                    failures.push(format!(
                        "{name}: {key} holds a removed member's later write"
                    ));
                }
            }
        }
        failures.extend(
            // Its earlier writes need not be anywhere: those it had not sent when it was
            // cut off are gone with it (the replicas must still agree on them).
            check_writes(&stores, &expected, |i| {
                self.peers[i].crashed || self.is_removed_peer(i)
            })
            .into_iter()
            .filter(|f| {
                // "write of K by S missing" for a key the removed member hit is allowed.
                !hit.iter()
                    .any(|k| f.contains(&format!(": write of {k} by ")))
            }),
        );
        if let Some(secret) = &self.cfg.secret {
            failures.extend(check_signed(secret, &stores));
        }
        // At `power`: what came back from each power loss, and every acknowledged write
        // everywhere (or a later one of its key).
        failures.extend(self.durable_failures.iter().cloned());
        for (i, p) in self.peers.iter().enumerate() {
            for (key, ts, source) in p.disk.iter().flat_map(|d| &d.acked) {
                for (name, store) in &stores {
                    if !store
                        .entry(key)
                        .is_some_and(|e| (e.ts, e.source) >= (*ts, source.as_str()))
                    {
                        failures.push(format!(
                            "{name}: p{i}'s acknowledged write of {key} ({source} at {ts}) missing"
                        ));
                    }
                }
            }
        }
        failures
    }

    /// Updates encoded on all links, and link bytes.
    fn link_totals(&self) -> (u64, u64) {
        let mut u = 0;
        let mut b = 0;
        for m in self.peers.iter().filter_map(|p| p.mesh.as_ref()) {
            for l in m.replica().links() {
                if let Some(s) = m.replica().link_stats(l) {
                    u += s.updates_out;
                    b += s.bytes_out;
                }
            }
        }
        (u, b)
    }

    /// Whether peer `i` is the member a removal run removed (once it has been): the
    /// others ignore its offers and drop theirs to it.
    fn is_removed_peer(&self, i: usize) -> bool {
        self.cfg.secret.is_some()
            && self
                .removal
                .as_ref()
                .is_some_and(|(id, _)| identity(self.cfg.seed, i).peer_id() == id)
    }

    /// The live meshes but the removed member's (removal runs).
    fn members(&self) -> Vec<&Mesh> {
        let removed = self.removal.as_ref().map(|(id, _)| id.as_str());
        self.peers
            .iter()
            .filter_map(|p| p.mesh.as_ref())
            .filter(|m| Some(m.id()) != removed)
            .collect()
    }

    /// The live members' replicas are equal and each sees all the others. After a
    /// removal, the removed member is no one's peer: the others see each other, and it
    /// sees no one once it has heard of its removal (what it holds then is its own).
    fn converged(&self) -> bool {
        let removed = self.removal.as_ref().map(|(id, _)| id.as_str());
        let live = self.members();
        live.windows(2)
            .all(|w| same_entries(w[0].store(), w[1].store()) && w[0].epoch() == w[1].epoch())
            && live.iter().all(|m| m.peers().count() == live.len() - 1)
            && live
                .iter()
                .all(|m| removed.is_none_or(|r| m.store().is_removed(r)))
    }
}

/// Whether two stores hold the same writes: each key's value, timestamp and writer
/// (values alone would call `0` and `-0` equal, and a tie of the two settled).
fn same_entries(a: &Store, b: &Store) -> bool {
    a.len() == b.len()
        && a.keys().all(|k| match (a.entry(k), b.entry(k)) {
            (Some(x), Some(y)) => {
                x.ts == y.ts && x.source == y.source && x.value.to_json() == y.value.to_json()
            }
            _ => false,
        })
}

/// The first 6 characters of a peer id (all of a short one).
fn short(id: &str) -> &str {
    id.char_indices().nth(6).map_or(id, |(i, _)| &id[..i])
}

impl World {
    /// What keeps the live members from converging: per member its epoch, its peers,
    /// whether it holds the removal, and its store's size.
    fn unconverged(&self) -> String {
        let removed = self.removal.as_ref().map(|(id, _)| id.as_str());
        let live = self.members();
        live.iter()
            .map(|m| {
                let missing: Vec<String> = live
                    .iter()
                    .filter(|o| o.id() != m.id() && !m.peers().any(|(p, _)| p == o.id()))
                    .map(|o| format!("{} (in room {})", short(o.id()), m.in_room(o.id())))
                    .collect();
                let counts: Vec<String> = m
                    .stats()
                    .counters()
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect();
                format!(
                    "{}: epoch {} peers {} removal {} keys {} missing [{}] stats [{}]",
                    short(m.id()),
                    m.epoch(),
                    m.peers().count(),
                    removed.is_none_or(|r| m.store().is_removed(r)),
                    m.store().len(),
                    missing.join(", "),
                    counts.join(", ")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Runs one seed: the mesh forms, a burst of writes is measured, then faults and
/// writes for `fault_time`, then everything heals and settles, and the invariants are
/// checked.
pub fn run(cfg: SimConfig) -> SimReport {
    let mut w = World::new(cfg.clone());
    let n = cfg.peers;
    // Form the mesh.
    let form = w.now + Duration::from_secs(5) + Duration::from_millis(20 * n as u64);
    w.run_until(form);
    // A burst: one write per peer, measured.
    let (u0, b0) = w.link_totals();
    for i in 0..n {
        w.schedule(
            Duration::ZERO,
            Action::Write(i, format!("burst{i}"), i as f64),
        );
    }
    let burst_start = w.now;
    let mut converge = Duration::ZERO;
    for _ in 0..600 {
        let t = w.now + Duration::from_millis(10);
        w.run_until(t);
        if w.converged()
            && w.peers.iter().all(|p| {
                p.mesh
                    .as_ref()
                    .is_some_and(|m| m.store().get(&format!("burst{}", n - 1)).is_some())
            })
        {
            converge = w.now - burst_start;
            break;
        }
    }
    let (u1, b1) = w.link_totals();
    let messages_per_update = (u1 - u0) as f64 / n as f64;
    let bytes_per_update = (b1 - b0) as f64 / n as f64;

    // Faults and writes.
    let span = cfg.fault_time.as_millis() as u64;
    for k in 0..cfg.writes {
        let at = Duration::from_millis(w.rng.below(span));
        let i = w.rng.below(n as u64) as usize;
        let key = format!("k{}", w.rng.below(cfg.writes as u64 / 2 + 1));
        w.schedule(at, Action::Write(i, key.clone(), k as f64));
        if cfg.power && w.rng.chance(0.1) {
            // Power lost a few milliseconds after a write: while its sync may be under
            // way.
            let cut = at + Duration::from_micros(w.rng.below(4_000));
            w.schedule(cut, Action::Crash(i));
            let back = Duration::from_millis(500 + w.rng.below(3000));
            w.schedule(cut + back, Action::Restart(i));
        }
        if w.rng.chance(0.25) {
            // Another peer writes the same key in the same millisecond: a tie for
            // the (timestamp, source) rule to break.
            let j = (i + 1 + w.rng.below(n as u64 - 1) as usize) % n;
            w.schedule(at, Action::Write(j, key, -(k as f64)));
        }
    }
    if cfg.removal && n > 2 {
        // A write storm around the removal: the removed member and the others write the
        // same keys every few milliseconds, so that its writes are in flight when the
        // removal is, and some land before it.
        let at = span / 2;
        w.schedule(Duration::from_millis(at), Action::Remove(1, 2));
        // The removed member and peer 3 cut off from the rest for a while: both hear of
        // the removal late; meanwhile 3 takes the removed member's writes (voided when
        // it hears), and the rest refuse them once the cut heals.
        let d = Duration::from_millis(1500 + w.rng.below(2000));
        for a in [2, 3].into_iter().filter(|&a| a < n) {
            for b in (0..n).filter(|&b| b != 2 && b != 3) {
                w.schedule(Duration::from_millis(at - 200), Action::Partition(a, b, d));
            }
        }
        for k in 0..400u64 {
            let t = Duration::from_millis(at - 1000 + k * 5);
            let i = if k % 2 == 0 {
                2
            } else {
                w.rng.below(n as u64) as usize
            };
            let key = format!("storm{}", w.rng.below(8));
            w.schedule(t, Action::Write(i, key, k as f64));
        }
    }
    if cfg.byzantine {
        for _ in 0..40 {
            let at = Duration::from_millis(w.rng.below(span));
            w.schedule(at, Action::Forge(0));
        }
    }
    if cfg.faults {
        let events = 4 + n / 2;
        for _ in 0..events {
            let at = Duration::from_millis(w.rng.below(span));
            let a = w.rng.below(n as u64) as usize;
            match w.rng.below(10) {
                0..=4 => {
                    let b = (a + 1 + w.rng.below(n as u64 - 1) as usize) % n;
                    let d = Duration::from_millis(200 + w.rng.below(8000));
                    w.schedule(at, Action::Partition(a, b, d));
                }
                5..=7 => {
                    w.schedule(at, Action::Crash(a));
                    let back = Duration::from_millis(500 + w.rng.below(5000));
                    w.schedule(at + back, Action::Restart(a));
                }
                8 => w.schedule(at, Action::SwitchboardRestart),
                _ => w.schedule(at, Action::SignalDrop(a)),
            }
        }
    }
    let end = w.now + cfg.fault_time;
    w.run_until(end);
    // Heal: restart anyone down; let it settle.
    for i in 0..n {
        w.schedule(Duration::ZERO, Action::Restart(i));
    }
    w.partitioned.clear();
    let heal = w.now;
    let mut settled = Duration::ZERO;
    for _ in 0..1200 {
        let t = w.now + Duration::from_millis(50);
        w.run_until(t);
        if w.converged() {
            settled = w.now - heal;
            break;
        }
    }
    for p in &w.peers {
        if let Some(m) = p.mesh.as_ref() {
            w.faults.early_sdp += m.stats().early;
        }
    }
    let mut failures = w.check();
    failures.extend(w.broken_negotiations.iter().cloned());
    if failures.len() > 10 {
        let more = failures.len() - 10;
        failures.truncate(10);
        failures.push(format!("... and {more} more"));
    }
    if !w.converged() {
        failures.push(format!(
            "did not converge within 60 s of healing ({})",
            w.unconverged()
        ));
    } else if settled > MAX_SETTLE {
        // Within a negotiation timeout: a peer must not need a failed negotiation and
        // a retry to come back (that is how a dropped early SDP would show).
        failures.push(format!(
            "took {settled:?} to converge after healing (at most {MAX_SETTLE:?})"
        ));
    }
    if messages_per_update > (n - 1) as f64 {
        failures.push(format!(
            "{messages_per_update} messages per write in a healthy full mesh of {n} (at most {})",
            n - 1
        ));
    }
    // A counter summed over the live members.
    let total = |f: fn(&Mesh) -> u64| -> u64 {
        w.peers.iter().filter_map(|p| p.mesh.as_ref()).map(f).sum()
    };
    SimReport {
        faults: w.faults.clone(),
        trace: w.trace,
        converge: if cfg.faults { settled } else { converge },
        messages_per_update,
        bytes_per_update,
        refused: total(|m| m.store().stats().rejected),
        late: total(|m| m.store().stats().late),
        revoked: total(|m| m.store().stats().revoked),
        voided: total(|m| m.store().stats().voided),
        removed_signals: total(|m| m.stats().removed_signals),
        rekeys: total(|m| m.stats().rekeys),
        epoch: w.members().first().map_or(0, |m| m.epoch()),
        failures,
    }
}

/// The bytes of a segment's header record.
fn segment_header(store_id: &str, first_seq: u64) -> Vec<u8> {
    use rtc_mesh_core::persist::{encode_header, SegmentHeader, FORMAT};
    let mut bytes = Vec::new();
    encode_header(
        &SegmentHeader {
            format: FORMAT,
            store_id: store_id.to_owned(),
            first_seq,
        },
        &mut bytes,
    );
    bytes
}

impl SimDisk {
    /// What a start reads back: the segments, as the runtime's directory gives them to
    /// [`rtc_mesh_core::persist::recover`] (without repair). The peer's acknowledged
    /// writes must all be in it.
    fn come_back(
        &mut self,
        id: &str,
        failures: &mut Vec<String>,
    ) -> rtc_mesh_core::persist::Recovered {
        use rtc_mesh_core::persist::{recover, Recovered};
        // A snapshot being written when the power went is gone, as the runtime
        // removes a leftover.
        self.writing = None;
        let from = self.snapshot.as_ref().map_or(0, |s| s.1);
        let segs: Vec<&[u8]> = self.segments[from..].iter().map(|(b, _)| &b[..]).collect();
        let snap = self.snapshot.as_ref().map(|s| &s.0[..]);
        let r = match recover(snap, &segs, false, &rtc_mesh_core::Limits::default()) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{id}: its disk does not read back: {e}"));
                return Recovered::empty();
            }
        };
        // A torn tail is cut, as the runtime truncates it.
        for ((bytes, synced), &valid) in self.segments[from..].iter_mut().zip(&r.valid_lens) {
            bytes.truncate(valid);
            *synced = (*synced).min(valid);
        }
        let mut held: BTreeMap<&str, (f64, &str)> = BTreeMap::new();
        for u in &r.updates {
            let u = u.update.as_ref();
            let e = held.entry(u.key).or_insert((u.ts, u.source));
            if (u.ts, u.source) > *e {
                *e = (u.ts, u.source);
            }
        }
        for (key, ts, source) in &self.acked {
            if !held
                .get(key.as_str())
                .is_some_and(|h| *h >= (*ts, source.as_str()))
            {
                failures.push(format!(
                    "{id}: acknowledged write of {key} ({source} at {ts}) lost in a power loss"
                ));
            }
        }
        r
    }

    /// A snapshot's first piece: the log rolls to a segment from `from_seq`, unless
    /// the one being written starts there and holds nothing yet (as in the runtime).
    /// (Without syncing the segment left first, a power loss here leaves a sealed
    /// segment cut short: seeds found that.)
    fn roll(&mut self, store_id: &str, from_seq: u64) {
        let header = segment_header(store_id, from_seq);
        if self.segments.last().is_some_and(|(b, _)| *b == header) {
            return;
        }
        // The segment left is synced whole first (as the runtime does at `power`).
        if let Some((bytes, synced)) = self.segments.last_mut() {
            *synced = bytes.len();
        }
        let n = header.len();
        self.segments.push((header, n));
    }

    /// This life's segment, starting at `first_seq`; its header is synced at once (as
    /// the runtime syncs a new segment at `power`).
    fn begin(&mut self, store_id: &str, first_seq: u64) {
        let bytes = segment_header(store_id, first_seq);
        let n = bytes.len();
        self.segments.push((bytes, n));
    }

    /// Power lost: each segment keeps what was synced and some prefix of the rest.
    /// Returns the bytes lost.
    fn power_loss(&mut self, rng: &mut Rng) -> u64 {
        let mut lost = 0;
        for (bytes, synced) in &mut self.segments {
            let unsynced = bytes.len() - *synced;
            let kept = *synced + rng.below(unsynced as u64 + 1) as usize;
            lost += (bytes.len() - kept) as u64;
            bytes.truncate(kept);
            *synced = kept;
        }
        lost
    }
}
