//! A room member as every driver sees it, whatever its I/O: the options of a join, the
//! requests a member's handle sends its driver and the answers ([`Request`],
//! [`answer`]), the errors, and the rules that make a fresh member (its id and
//! incarnation, [`Entropy`]). Both runtimes' `Member`s are built on these; a custom
//! event loop can answer the same requests from its own [`Node`].
//!
//! Randomness and wall-clock time are inputs: the driver reads them once and hands
//! them over as an [`Entropy`].
//!
//! ```
//! use std::time::{Duration, Instant};
//! use rtc_mesh_core::member::{answer, Answer, Entropy, JoinOptions, Request};
//! use rtc_mesh_core::Value;
//!
//! let options = JoinOptions::new("lobby", "ws://127.0.0.1:3000/");
//! let now = Instant::now();
//! let entropy = Entropy::new([1, 0x5eed, 2], Duration::from_millis(1_795_713_876_272), now);
//! let local = "127.0.0.1:40000".parse().unwrap();
//! let (mut node, id) = options.node(vec![local], Vec::new(), Vec::new(), entropy).unwrap();
//! assert_eq!(id, "0000000000005eed");
//! node.start(now);
//! let set = Request::Set(vec![("k".into(), Value::from(1.0))]);
//! assert!(matches!(answer(&mut node, now, set), Answer::Written(Ok(()))));
//! assert!(matches!(answer(&mut node, now, Request::Keys), Answer::Keys(k) if k == ["k"]));
//! ```

use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::limits::Limits;
use crate::mesh::{LinkInfo, LinkState, MeshConfig, MeshError, Security};
use crate::node::{Node, NodeConfig};
use crate::security::{Identity, RoomKey, RoomSecret};
use crate::signal::PeerId;
use crate::store::StoreError;
use crate::turn::TurnServer;
use crate::url::UrlError;
use crate::value::{Object, Value};
use crate::wire::Codec;

/// What a driver reads from its machine once, at start: three independent random
/// words (from an unpredictable source: peers must not be able to choose keys that
/// collide in our store's hash table, so the secret `seed` is never derived into
/// anything we announce), the wall clock since the Unix epoch, and the instant it was
/// read at.
#[derive(Clone, Copy, Debug)]
pub struct Entropy {
    /// The secret seed: the store's key hash and the mesh's jitter. Never announced.
    pub seed: u64,
    /// Random bits for a fresh peer id.
    pub id_bits: u64,
    /// Random bits for this process start's incarnation.
    pub incarnation_bits: u64,
    /// Wall-clock time since the Unix epoch, in milliseconds, at `start`.
    pub epoch_ms: f64,
    /// The instant `epoch_ms` was read at.
    pub start: Instant,
    /// 256 bits from the operating system's generator (`getrandom`), the seed of a
    /// secured member's identity and nonces ([`crate::security::Entropy`]). `None`
    /// where the driver has none; a secured room then cannot be joined.
    pub secure: Option<[u8; 32]>,
}

impl Entropy {
    /// From three independent random words (`[seed, id bits, incarnation bits]`), the
    /// wall clock `since_epoch` and the `start` it was read at.
    pub fn new(random: [u64; 3], since_epoch: Duration, start: Instant) -> Self {
        Entropy {
            seed: random[0],
            id_bits: random[1],
            incarnation_bits: random[2],
            epoch_ms: since_epoch.as_secs_f64() * 1000.0,
            start,
            secure: None,
        }
    }

    /// With 32 bytes from the operating system's generator ([`Entropy::secure`]).
    pub fn with_secure(self, bytes: [u8; 32]) -> Self {
        Entropy {
            secure: Some(bytes),
            ..self
        }
    }

    /// From a keyed hasher the caller seeded unpredictably (std's `RandomState`): the
    /// three words are its hashes of `(0, wall)`, `(1, wall)` and `(2, wall)`, so none
    /// of them tells anything about another.
    pub fn from_hasher(random: &impl BuildHasher, since_epoch: Duration, start: Instant) -> Self {
        let words = [0u8, 1, 2].map(|i| random.hash_one((i, since_epoch)));
        Entropy::new(words, since_epoch, start)
    }

    /// A fresh peer id: 16 hex characters, as the Conventions say.
    pub fn peer_id(&self) -> String {
        format!("{:016x}", self.id_bits)
    }

    /// A fresh incarnation: 16 hex characters.
    pub fn incarnation(&self) -> String {
        format!("{:016x}", self.incarnation_bits)
    }
}

/// The socket (of a runtime's bound ones, each with its address) to send a node's
/// transmit from: the one bound to `source`, or else one of `destination`'s family.
pub fn socket_for<S>(
    sockets: &[(S, SocketAddr)],
    source: SocketAddr,
    destination: SocketAddr,
) -> Option<&(S, SocketAddr)> {
    sockets.iter().find(|s| s.1 == source).or_else(|| {
        sockets
            .iter()
            .find(|s| s.1.is_ipv4() == destination.is_ipv4())
    })
}

/// Whether `ip` can be a host candidate: not unspecified, multicast or link-local.
fn usable_host_ip(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            !(v.is_unspecified() || v.is_multicast() || v.is_link_local() || v.is_broadcast())
        }
        IpAddr::V6(v) => {
            !(v.is_unspecified() || v.is_multicast() || (v.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// A STUN or TURN server, as a browser's `RTCIceServer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IceServer {
    /// `stun:HOST[:PORT]` or `turn:HOST[:PORT][?transport=udp]` (port 3478 by default).
    pub urls: Vec<String>,
    /// The TURN username.
    pub username: Option<String>,
    /// The TURN password.
    pub credential: Option<String>,
}

impl IceServer {
    /// The servers of a switchboard's TURN offer (`/mesh:ice|{"iceServers":[..]}`, see
    /// [`TurnOffer`](crate::switchboard::TurnOffer)); `None` if `text` is none. Bounded:
    /// at most 8 servers of 8 URLs each are read, and entries of the wrong shape are
    /// skipped.
    pub fn offered(text: &str) -> Option<Vec<IceServer>> {
        use crate::signal::{Signal, SignalLimits};
        let rest = text.strip_prefix('/')?;
        if !rest.starts_with(crate::switchboard::ICE_COMMAND) {
            return None;
        }
        let msg = Signal::parse(text, &SignalLimits::default()).ok()?;
        if msg.command != crate::switchboard::ICE_COMMAND || msg.to.is_some() {
            return None;
        }
        let Some(Value::Array(list)) = msg.object()?.get("iceServers") else {
            return Some(Vec::new());
        };
        let text_of = |o: &Object, k: &str| match o.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let servers = list
            .iter()
            .take(8)
            .filter_map(|v| {
                let Value::Object(o) = v else { return None };
                let urls = match o.get("urls") {
                    Some(Value::String(u)) => vec![u.clone()],
                    Some(Value::Array(us)) => us
                        .iter()
                        .take(8)
                        .filter_map(|u| match u {
                            Value::String(u) => Some(u.clone()),
                            _ => None,
                        })
                        .collect(),
                    _ => return None,
                };
                Some(IceServer {
                    urls,
                    username: text_of(o, "username"),
                    credential: text_of(o, "credential"),
                })
            })
            .collect();
        Some(servers)
    }
}

/// Whether `url` is an ICE server URL rtc-mesh can use (`stun:`/`turn:` over UDP,
/// `HOST[:PORT]`), and why not.
pub fn check_ice_url(url: &str) -> Result<(), String> {
    ice_url(url).map(|_| ())
}

enum IceUrl {
    Stun(String),
    Turn(String),
}

/// `stun:H[:P]`, `turn:H[:P][?transport=udp]` or a bare `H:P` (STUN): its kind and
/// `HOST:PORT`.
fn ice_url(u: &str) -> Result<IceUrl, String> {
    let (turn, rest) = if let Some(r) = u.strip_prefix("turn:") {
        (true, r)
    } else if let Some(r) = u.strip_prefix("stun:") {
        (false, r)
    } else if u.starts_with("turns:") || u.starts_with("stuns:") {
        return Err("TLS (turns:, stuns:) is not supported; use turn: over UDP".into());
    } else {
        (false, u)
    };
    let (hp, query) = rest.split_once('?').unwrap_or((rest, ""));
    match query {
        "" | "transport=udp" => {}
        "transport=tcp" => return Err("TURN over TCP is not supported; use UDP".into()),
        q => return Err(format!("unknown parameter {q:?}")),
    }
    if hp.is_empty() {
        return Err("no host".into());
    }
    // `[v6]:port`, or `host:port` (one colon: more is a bare IPv6 address).
    let has_port = if hp.starts_with('[') {
        hp.contains("]:")
    } else {
        hp.matches(':').count() == 1
    };
    let hp = if has_port {
        hp.to_owned()
    } else {
        format!("{hp}:3478")
    };
    Ok(if turn {
        IceUrl::Turn(hp)
    } else {
        IceUrl::Stun(hp)
    })
}

/// What to join, and how.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JoinOptions {
    /// The room.
    pub room: String,
    /// The signalling server (`ws://host:port/`).
    pub signal_url: String,
    /// Our peer id (default: 16 random hex characters).
    pub id: Option<String>,
    /// The UDP addresses to bind, one socket each, each offered as a host candidate
    /// (default `0.0.0.0:0` and `[::]:0`). An unspecified address stands for every
    /// usable address of its family on the machine's interfaces (see
    /// [`JoinOptions::bind_addresses`]), each with the given port (0: a free one per
    /// socket); a named address binds just that one.
    pub bind: Vec<SocketAddr>,
    /// Codecs, preferred first (default postcard, json).
    pub codecs: Vec<Codec>,
    /// User attributes for our announce.
    pub attributes: Object,
    /// STUN servers (`host:port`, or `stun:host:port`; default none) asked for our
    /// server-reflexive address. Names are resolved once, at join.
    pub stun_servers: Vec<String>,
    /// STUN and TURN servers, as a browser's `RTCIceServer`s (default none): `stun:`
    /// URLs are asked for our server-reflexive address (as [`stun_servers`]); `turn:`
    /// URLs (`turn:HOST[:PORT][?transport=udp]`, port 3478 by default) are asked for a
    /// relayed address with the entry's `username` and `credential`, and for our
    /// server-reflexive one too. Names are resolved once, at join.
    ///
    /// [`stun_servers`]: JoinOptions::stun_servers
    pub ice_servers: Vec<IceServer>,
    /// Offer relayed candidates only (default false), as a browser's
    /// `iceTransportPolicy: 'relay'`.
    pub relay_only: bool,
    /// Interval between pings on a link (default 1 s).
    pub ping_interval: Duration,
    /// A link silent this long is closed and its peer reported gone (default 4 s).
    pub dead_after: Duration,
    /// A connection not established in this time is abandoned and retried (default
    /// 10 s).
    pub negotiate_timeout: Duration,
    /// Bounds on values, keys and ids.
    pub limits: Limits,
    /// Bytes a slow link may queue before it is closed (default 8 MiB).
    pub max_queued: usize,
    /// The room's secret (default none: an open room). With one, the room is secured
    /// ([`crate::security`]): the switchboard sees a tag derived from it instead of
    /// the room name, every signal is sealed, and our id is our identity's key. A
    /// passphrase is stretched once here (PBKDF2, 600,000 rounds).
    pub secret: Option<RoomSecret>,
    /// Our identity in a secured room (default: a fresh one from
    /// [`Entropy::secure`]). Keep one to keep the same peer id across joins.
    pub identity: Option<Identity>,
    /// Secured rooms: `REKEY` lines kept from earlier joins
    /// ([`crate::mesh::MeshEvent::Rekeyed`]); the latest of this room's is resumed
    /// ([`Security::resume`]), those of other rooms are skipped (default none).
    pub rekey: Vec<String>,
    /// An admission token for a switchboard that requires one (`serve
    /// --token-secret`), sent as `?token=` on the signalling URL (default none).
    pub token: Option<String>,
    /// A durable member's data directory (default none: the store lives in memory).
    pub data: Option<DataOptions>,
}

/// Where a durable member keeps its store, and what an acknowledged write survives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataOptions {
    /// The directory (made if missing; one process at a time).
    pub dir: std::path::PathBuf,
    /// What an acknowledged write survives (default [`crate::persist::Durability::Process`]).
    pub durability: crate::persist::Durability,
    /// Keep the valid prefix of a damaged log (its files cut there) instead of refusing
    /// to start (default false).
    pub repair: bool,
}

impl DataOptions {
    /// `dir` at [`Durability::Process`](crate::persist::Durability::Process), no repair.
    pub fn new(dir: impl Into<std::path::PathBuf>) -> Self {
        DataOptions {
            dir: dir.into(),
            durability: crate::persist::Durability::Process,
            repair: false,
        }
    }
}

impl JoinOptions {
    /// Options for `room` through the switchboard at `signal_url`, with the defaults of
    /// [`MeshConfig`] and [`NodeConfig`].
    pub fn new(room: impl Into<String>, signal_url: impl Into<String>) -> Self {
        JoinOptions {
            room: room.into(),
            signal_url: signal_url.into(),
            id: None,
            bind: vec![
                SocketAddr::from(([0, 0, 0, 0], 0)),
                SocketAddr::from(([0u16; 8], 0)),
            ],
            codecs: vec![Codec::Postcard, Codec::Json],
            attributes: Object::new(),
            stun_servers: Vec::new(),
            ice_servers: Vec::new(),
            relay_only: false,
            ping_interval: MeshConfig::DEFAULT_PING_INTERVAL,
            dead_after: MeshConfig::DEFAULT_DEAD_AFTER,
            negotiate_timeout: MeshConfig::DEFAULT_NEGOTIATE_TIMEOUT,
            limits: Limits::default(),
            max_queued: NodeConfig::DEFAULT_MAX_QUEUED,
            secret: None,
            identity: None,
            rekey: Vec::new(),
            token: None,
            data: None,
        }
    }

    /// The URL the runtimes connect to: [`signal_url`](Self::signal_url) with
    /// `token=` added to its query when there is a [`token`](Self::token).
    pub fn connect_url(&self) -> String {
        match &self.token {
            None => self.signal_url.clone(),
            Some(t) => {
                let sep = if self.signal_url.contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!("{}{sep}token={t}", self.signal_url)
            }
        }
    }

    /// The security of a secured room ([`secret`](Self::secret)), and the peer id it
    /// gives us: the room key derived from the secret, our identity, and nonces seeded
    /// from [`Entropy::secure`]. `None` for an open room.
    pub fn security(&self, entropy: &Entropy) -> Result<Option<(Security, String)>, JoinError> {
        let Some(secret) = &self.secret else {
            return Ok(None);
        };
        let Some(seed) = entropy.secure else {
            return Err(JoinError::NoEntropy);
        };
        let mut random = crate::security::Entropy::from_seed(seed);
        let identity = match &self.identity {
            Some(i) => i.clone(),
            None => Identity::generate(&mut random),
        };
        let id = identity.peer_id().to_owned();
        if self.id.as_ref().is_some_and(|given| *given != id) {
            return Err(JoinError::Mesh(MeshError::NotTheIdentity(id)));
        }
        let key = RoomKey::derive(&self.room, secret);
        let mut sec = Security::new(key, identity, random);
        for line in &self.rekey {
            // Another room's line does not check for this one: skipped.
            match sec.clone().resume(line) {
                Ok(s) => sec = s,
                Err(crate::security::RekeyError::BadSignature) => {}
                Err(e) => return Err(JoinError::Rekey(e)),
            }
        }
        Ok(Some((sec, id)))
    }
    /// The addresses to bind, given the machine's interface addresses (in the order
    /// the system lists them): [`JoinOptions::bind`] with each unspecified address
    /// replaced by the usable interface addresses of its family. Usable means not
    /// multicast, not unspecified, and not link-local (`169.254.0.0/16`, `fe80::/10`:
    /// such an address needs its interface named, and TURN servers refuse to relay to
    /// them). Loopback addresses are kept, so peers on one host link over loopback.
    /// No address twice; the order is the requested one.
    pub fn bind_addresses(&self, interfaces: &[IpAddr]) -> Vec<SocketAddr> {
        let mut out: Vec<SocketAddr> = Vec::new();
        let mut add = |a: SocketAddr| {
            if !out.contains(&a) {
                out.push(a);
            }
        };
        for b in &self.bind {
            if !b.ip().is_unspecified() {
                add(*b);
                continue;
            }
            for ip in interfaces {
                if ip.is_ipv4() == b.is_ipv4() && usable_host_ip(ip) {
                    add(SocketAddr::new(*ip, b.port()));
                }
            }
        }
        out
    }

    /// Binds [`JoinOptions::bind_addresses`] with `bind` (which makes a socket and
    /// says its bound address): the runtimes' one rule. A named address that cannot be
    /// bound is an error; an interface address that cannot (an IPv6 address still
    /// tentative, say) is left out; none at all is [`JoinError::NoAddress`].
    pub fn bind_all<S>(
        &self,
        interfaces: &[IpAddr],
        mut bind: impl FnMut(SocketAddr) -> io::Result<(S, SocketAddr)>,
    ) -> Result<Vec<(S, SocketAddr)>, JoinError> {
        let mut bound = Vec::new();
        for a in self.bind_addresses(interfaces) {
            match bind(a) {
                Ok(s) => bound.push(s),
                Err(e) if self.bind.contains(&a) => return Err(JoinError::Bind(a, e)),
                Err(_) => {}
            }
        }
        if bound.is_empty() {
            return Err(JoinError::NoAddress(self.bind.clone()));
        }
        Ok(bound)
    }

    /// The STUN servers' addresses, each looked up with `resolve` (given `HOST:PORT`,
    /// the `stun:` prefix taken off; the first address counts): [`stun_servers`], the
    /// `stun:` URLs of [`ice_servers`], and the TURN servers (which answer STUN too).
    ///
    /// [`stun_servers`]: JoinOptions::stun_servers
    /// [`ice_servers`]: JoinOptions::ice_servers
    pub fn resolve_stun(
        &self,
        mut resolve: impl FnMut(&str) -> io::Result<Option<SocketAddr>>,
    ) -> Result<Vec<SocketAddr>, JoinError> {
        let mut out: Vec<SocketAddr> = Vec::new();
        let urls = self.ice_servers.iter().flat_map(|i| i.urls.iter());
        for s in self.stun_servers.iter().chain(urls) {
            let hp = match ice_url(s) {
                Ok(IceUrl::Stun(hp) | IceUrl::Turn(hp)) => hp,
                Err(e) => return Err(JoinError::Stun(s.clone(), e)),
            };
            let a = match resolve(&hp) {
                Ok(Some(a)) => a,
                Ok(None) => return Err(JoinError::Stun(s.clone(), "no address".into())),
                Err(e) => return Err(JoinError::Stun(s.clone(), e.to_string())),
            };
            if !out.contains(&a) {
                out.push(a);
            }
        }
        Ok(out)
    }

    /// The TURN servers of [`ice_servers`](JoinOptions::ice_servers), each looked up
    /// with `resolve` as in [`resolve_stun`](Self::resolve_stun). An entry with a
    /// `turn:` URL needs a username and a credential.
    pub fn resolve_turn(
        &self,
        mut resolve: impl FnMut(&str) -> io::Result<Option<SocketAddr>>,
    ) -> Result<Vec<TurnServer>, JoinError> {
        let mut out = Vec::new();
        for i in &self.ice_servers {
            for u in &i.urls {
                let hp = match ice_url(u) {
                    Ok(IceUrl::Turn(hp)) => hp,
                    Ok(IceUrl::Stun(_)) => continue,
                    Err(e) => return Err(JoinError::Turn(u.clone(), e)),
                };
                let (Some(username), Some(credential)) = (&i.username, &i.credential) else {
                    return Err(JoinError::Turn(
                        u.clone(),
                        "a TURN server needs a username and a credential".into(),
                    ));
                };
                let addr = match resolve(&hp) {
                    Ok(Some(a)) => a,
                    Ok(None) => return Err(JoinError::Turn(u.clone(), "no address".into())),
                    Err(e) => return Err(JoinError::Turn(u.clone(), e.to_string())),
                };
                out.push(TurnServer {
                    addr,
                    username: username.clone(),
                    credential: credential.clone(),
                });
            }
        }
        Ok(out)
    }

    /// The Node for these options, offering `locals` as its host candidates, asking
    /// `stun_servers` and `turn_servers` (see [`resolve_stun`](Self::resolve_stun) and
    /// [`resolve_turn`](Self::resolve_turn)); and its peer id
    /// (the given one, or a fresh one from `entropy`). Its store lives in memory; see
    /// [`JoinOptions::node_with_log`] for a durable member's.
    pub fn node(
        &self,
        locals: Vec<SocketAddr>,
        stun_servers: Vec<SocketAddr>,
        turn_servers: Vec<TurnServer>,
        entropy: Entropy,
    ) -> Result<(Node, String), JoinError> {
        self.node_with_log(
            locals,
            stun_servers,
            turn_servers,
            entropy,
            None::<&mut crate::persist::Recovered>,
        )
    }

    /// [`JoinOptions::node`] for a durable member (with `Some(log)`): its store built
    /// from `log` as it is read back ([`Node::with_log`]; a log that cannot be read is
    /// [`JoinError::Data`]). A runtime passes its data directory's, if it has one.
    pub fn node_with_log<S>(
        &self,
        locals: Vec<SocketAddr>,
        stun_servers: Vec<SocketAddr>,
        turn_servers: Vec<TurnServer>,
        entropy: Entropy,
        log: Option<&mut S>,
    ) -> Result<(Node, String), JoinError>
    where
        S: crate::persist::LogSource,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        let security = self.security(&entropy)?;
        let id = match &security {
            Some((_, id)) => id.clone(),
            None => self.id.clone().unwrap_or_else(|| entropy.peer_id()),
        };
        let mut mc = MeshConfig::new(
            id.clone(),
            self.room.clone(),
            entropy.incarnation(),
            entropy.epoch_ms,
            entropy.start,
        );
        mc.codecs = self.codecs.clone();
        mc.attributes = self.attributes.clone();
        mc.ping_interval = self.ping_interval;
        mc.dead_after = self.dead_after;
        mc.negotiate_timeout = self.negotiate_timeout;
        mc.limits = self.limits.clone();
        mc.seed = entropy.seed;
        mc.security = security.map(|(s, _)| s);
        let mut nc = NodeConfig::new(mc, locals);
        nc.max_queued = self.max_queued;
        nc.stun_servers = stun_servers;
        nc.turn_servers = turn_servers;
        nc.relay_only = self.relay_only;
        let node = match log {
            Some(log) => Node::with_log(nc, log),
            None => Node::new(nc),
        };
        match node {
            Ok(node) => Ok((node, id)),
            Err(MeshError::Log(e)) => Err(JoinError::Data(e)),
            Err(e) => Err(e.into()),
        }
    }
}

/// How a member without a room is set up: a store replicated over attached byte
/// streams only (TCP links speaking scuttlebutt's JSON lines, or postcard), with no
/// signalling and no WebRTC. `rtc-mesh replicate` is one; so is a runtime's
/// `Replicator`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReplicatorOptions {
    /// The store's source id.
    pub id: String,
    /// The codec spoken on every link.
    pub codec: Codec,
    /// Bounds on values, keys and messages.
    pub limits: Limits,
    /// A secured room's store: our writes signed, every update checked
    /// ([`ReplicatorOptions::secured`]). Default `None`.
    pub guard: Option<crate::security::updates::UpdateGuard>,
    /// A durable store's data directory (default none: in memory).
    pub data: Option<DataOptions>,
}

impl ReplicatorOptions {
    /// Options with default limits.
    pub fn new(id: impl Into<String>, codec: Codec) -> Self {
        ReplicatorOptions {
            id: id.into(),
            codec,
            limits: Limits::default(),
            guard: None,
            data: None,
        }
    }

    /// Options for a replicator of the secured room `room` under `secret` (a passphrase
    /// is stretched here, about a second): its writes are signed as `identity`, every
    /// update it receives is checked as a mesh member checks it, and its source id is
    /// `<identity's peer id>.<incarnation>` (a fresh `incarnation` per start, 16 hex).
    /// It replicates with the room's members and with scuttlebutt peers, which relay
    /// signed updates intact (their own writes are refused: unsigned).
    pub fn secured(
        room: &str,
        secret: &crate::security::RoomSecret,
        identity: Identity,
        incarnation: &str,
        codec: Codec,
    ) -> Self {
        let key = crate::security::RoomKey::derive(room, secret);
        let mut o = ReplicatorOptions::new(format!("{}.{incarnation}", identity.peer_id()), codec);
        o.guard = Some(crate::security::updates::UpdateGuard::for_room(
            &key, identity,
        ));
        o
    }

    /// The Node of a member without a room ([`MeshConfig::without_room`]) whose store
    /// writes as `id`.
    /// The replicator's node, its store in memory.
    pub fn node(&self, entropy: Entropy) -> Result<Node, StartError> {
        self.node_with_log(entropy, None::<&mut crate::persist::Recovered>)
    }

    /// The replicator's node; with `Some(log)` (its data directory's), its store built
    /// from `log` as it is read back ([`Node::with_log`]; a log that cannot be read is
    /// [`StartError::Data`]).
    pub fn node_with_log<S>(
        &self,
        entropy: Entropy,
        log: Option<&mut S>,
    ) -> Result<Node, StartError>
    where
        S: crate::persist::LogSource,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        let mut mc = MeshConfig::without_room(
            "replicator",
            entropy.incarnation(),
            entropy.epoch_ms,
            entropy.start,
        );
        mc.source = Some(self.id.clone());
        mc.guard = self.guard.clone();
        mc.codecs = vec![self.codec];
        mc.limits = self.limits.clone();
        mc.seed = entropy.seed;
        let nc = NodeConfig::new(mc, Vec::new());
        match log {
            Some(log) => Node::with_log(nc, log),
            None => Node::new(nc),
        }
        .map_err(|e| match e {
            MeshError::Store(e) => StartError::Store(e),
            MeshError::Log(e) => StartError::Data(e),
            other => StartError::Io(io::Error::new(io::ErrorKind::InvalidInput, other)),
        })
    }
}

/// Why a member without a room (a runtime's `Replicator`) could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The store configuration is invalid (for example the source id).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A thread or socket could not be created.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The data directory could not be used (held by another process, damaged, ...).
    #[error("{0}")]
    Data(Box<dyn std::error::Error + Send + Sync>),
}

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The signalling URL is not usable.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP {0}: {1}")]
    Bind(SocketAddr, io::Error),
    /// No address to bind: every requested one was unspecified, and the machine has no
    /// usable interface address of its family (or none could be bound).
    #[error("no UDP address to bind (requested {0:?}); name one, e.g. 127.0.0.1:0")]
    NoAddress(Vec<SocketAddr>),
    /// A STUN server name does not resolve to an address.
    #[error("STUN server {0:?}: {1}")]
    Stun(String, String),
    /// A TURN server URL is not usable (bad form, no credentials, no address).
    #[error("TURN server {0:?}: {1}")]
    Turn(String, String),
    /// The configuration is invalid (id, room).
    #[error(transparent)]
    Mesh(#[from] MeshError),
    /// A secured room, and the driver gave no randomness from the operating system
    /// ([`Entropy::secure`]).
    #[error("a secured room needs randomness from the operating system")]
    NoEntropy,
    /// A kept `REKEY` line ([`JoinOptions::rekey`]) is not one.
    #[error("a kept key epoch: {0}")]
    Rekey(crate::security::RekeyError),
    /// The data directory could not be used (held by another process, damaged, ...).
    #[error("{0}")]
    Data(Box<dyn std::error::Error + Send + Sync>),
}

/// Why a write through a member failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemberError {
    /// The store refused the write (key or value too large, bad value).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The member has left the room (or its driver stopped): nothing was written.
    #[error("the member has left the room")]
    Closed,
    /// A stream could not be attached (its socket could not be split, or a thread to
    /// move its bytes could not be started).
    #[error("cannot attach the stream: {0}")]
    Attach(io::Error),
}

/// A peer's state, for a member's `peers()`: each present peer, and each peer in the
/// room whose link failed and is being retried.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// Its id.
    pub id: PeerId,
    /// Its announce attributes.
    pub attributes: Object,
    /// The connection to it: state, codec, bytes and updates each way, round trip.
    pub link: LinkInfo,
    /// The path its connection uses: each end's candidate type and address (once
    /// the connection has sent on one).
    pub path: Option<crate::node::LinkPath>,
}

impl PeerInfo {
    /// Whether a data channel is open to it.
    pub fn is_linked(&self) -> bool {
        self.link.state == LinkState::Open
    }
}

/// A member's counters, for [`Request::Stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MemberStats {
    /// The node's: links, datagrams, restarts.
    pub node: crate::node::NodeStats,
    /// The mesh's: negotiations, and in a secured room the signals refused and why.
    pub mesh: crate::mesh::MeshStats,
    /// The store's: updates applied, stale, and in a secured room refused and why.
    pub store: crate::store::StoreStats,
}

/// A request to a member's driver. Both runtimes' drivers answer it the same way, with
/// [`answer`]; a custom driver can too.
#[derive(Debug)]
#[non_exhaustive]
pub enum Request {
    /// Write these keys (`null` deletes), stopping at the first refused one.
    Set(Vec<(String, Value)>),
    /// Write each of these keys on its own (`null` deletes): a refused one does not stop
    /// the others. For a stream of independent writes, such as the CLI's `set` lines,
    /// taken in batches.
    SetEach(Vec<(String, Value)>),
    /// The value of a key.
    Get(String),
    /// Every live key, in byte order.
    Keys,
    /// Every live key and value.
    Snapshot,
    /// Present peers and their links.
    Peers,
    /// The node's and the mesh's counters.
    Stats,
    /// New announce attributes.
    Announce(Object),
    /// Leave the room.
    Close,
}

/// What [`answer`] gives back for a [`Request`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Answer {
    /// For `Set`.
    Written(Result<(), StoreError>),
    /// For `SetEach`: one result per write, in order.
    WrittenEach(Vec<Result<(), StoreError>>),
    /// For `Get`.
    Value(Option<Value>),
    /// For `Keys`.
    Keys(Vec<String>),
    /// For `Snapshot`.
    Snapshot(Object),
    /// For `Peers`.
    Peers(Vec<PeerInfo>),
    /// For `Stats` (boxed: it is much larger than the others).
    Stats(Box<MemberStats>),
    /// For `Announce` and `Close`.
    Done,
}

/// Answers `request` from `node`. After [`Request::Close`] the driver drains the node
/// once more (the goodbyes) and stops when [`Node::is_finished`] says so.
pub fn answer(node: &mut Node, now: Instant, request: Request) -> Answer {
    match request {
        Request::Set(entries) => Answer::Written(
            entries
                .iter()
                .try_for_each(|(k, v)| node.set(now, k, v).map(|_| ())),
        ),
        Request::SetEach(entries) => Answer::WrittenEach(
            entries
                .iter()
                .map(|(k, v)| node.set(now, k, v).map(|_| ()))
                .collect(),
        ),
        Request::Get(k) => Answer::Value(node.store().get(&k)),
        Request::Keys => Answer::Keys(node.store().keys().map(str::to_owned).collect()),
        Request::Snapshot => Answer::Snapshot(node.store().dump()),
        Request::Peers => Answer::Peers(peers_of(node)),
        Request::Stats => Answer::Stats(Box::new(MemberStats {
            node: node.stats().clone(),
            mesh: node.mesh().stats().clone(),
            store: node.store().stats().clone(),
        })),
        Request::Announce(attributes) => {
            node.announce(now, attributes);
            Answer::Done
        }
        Request::Close => {
            node.close(now);
            Answer::Done
        }
    }
}

/// What a runtime does with [`NodeEvent::IceOffered`](crate::node::NodeEvent::IceOffered):
/// resolves the offered servers' URLs with `resolve` (`HOST:PORT` to an address) and
/// gives them to the node. Both runtimes' drivers call it; a custom driver can too.
/// Returns why the offer is unusable, if it is (the node then goes on without it).
pub fn use_offered(
    node: &mut Node,
    now: Instant,
    servers: &[IceServer],
    mut resolve: impl FnMut(&str) -> io::Result<Option<SocketAddr>>,
) -> Result<(), JoinError> {
    let mut o = JoinOptions::new("", "");
    o.ice_servers = servers.to_vec();
    let stun = o.resolve_stun(&mut resolve)?;
    let turn = o.resolve_turn(&mut resolve)?;
    node.use_ice_servers(now, &stun, &turn);
    Ok(())
}

/// Present peers of `node`, with their links, then the [unreachable] ones (state
/// [`LinkState::Failed`] or, while retried, `Negotiating`).
///
/// [unreachable]: crate::mesh::Mesh::unreachable
pub fn peers_of(node: &Node) -> Vec<PeerInfo> {
    let m = node.mesh();
    m.peers()
        .chain(m.unreachable())
        .filter_map(|(id, attrs)| {
            Some(PeerInfo {
                id: PeerId::checked(id),
                attributes: attrs.clone(),
                link: m.link_info(id)?,
                path: node.link_path(id),
            })
        })
        .collect()
}

/// The typed calls of a member, over its one `request` primitive, and its `id` and
/// `local_addr` getters (shared by both runtimes' `Member`s, which hold `id` and `local`).
#[doc(hidden)]
#[macro_export]
macro_rules! __member_calls {
    ($($async:ident)? ; $($await:tt)*) => {
        /// Our peer id.
        pub fn id(&self) -> &str {
            &self.id
        }

        /// The first UDP address we listen on (unspecified for a member without a
        /// room).
        pub fn local_addr(&self) -> std::net::SocketAddr {
            self.locals
                .first()
                .copied()
                .unwrap_or(std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
        }

        /// Every UDP address we listen on, each a host candidate (none for a member
        /// without a room).
        pub fn local_addrs(&self) -> &[std::net::SocketAddr] {
            &self.locals
        }

        /// Sets `key` (`null` deletes).
        pub $($async)? fn set(&self, key: &str, value: $crate::Value) -> Result<(), $crate::member::MemberError> {
            self.set_many(vec![(key.to_owned(), value)]) $($await)*
        }

        /// Sets many keys in one step (much faster than one `set` each: the writes
        /// share frames on every link). Stops at the first refused write and returns
        /// its error.
        pub $($async)? fn set_many(&self, entries: Vec<(String, $crate::Value)>) -> Result<(), $crate::member::MemberError> {
            match self.request($crate::member::Request::Set(entries)) $($await)* {
                Some($crate::member::Answer::Written(r)) => r.map_err(Into::into),
                _ => Err($crate::member::MemberError::Closed),
            }
        }

        /// Deletes `key`.
        pub $($async)? fn delete(&self, key: &str) -> Result<(), $crate::member::MemberError> {
            self.set(key, $crate::Value::Null) $($await)*
        }

        /// The value of `key`.
        pub $($async)? fn get(&self, key: &str) -> Option<$crate::Value> {
            match self.request($crate::member::Request::Get(key.to_owned())) $($await)* {
                Some($crate::member::Answer::Value(v)) => v,
                _ => None,
            }
        }

        /// Every live key, in byte order.
        pub $($async)? fn keys(&self) -> Vec<String> {
            match self.request($crate::member::Request::Keys) $($await)* {
                Some($crate::member::Answer::Keys(k)) => k,
                _ => Vec::new(),
            }
        }

        /// A snapshot: every live key and value.
        pub $($async)? fn snapshot(&self) -> $crate::Object {
            match self.request($crate::member::Request::Snapshot) $($await)* {
                Some($crate::member::Answer::Snapshot(o)) => o,
                _ => $crate::Object::new(),
            }
        }

        /// Present peers: their attributes and links (state, codec, bytes and updates
        /// each way, round trip, path); then peers in the room whose links failed and
        /// are retried (state [`LinkState::Failed`](crate::mesh::LinkState::Failed),
        /// with the failures in a row and the next try).
        pub $($async)? fn peers(&self) -> Vec<$crate::member::PeerInfo> {
            match self.request($crate::member::Request::Peers) $($await)* {
                Some($crate::member::Answer::Peers(p)) => p,
                _ => Vec::new(),
            }
        }

        /// Replaces our user attributes and announces them to the room.
        pub $($async)? fn announce(&self, attributes: $crate::Object) {
            self.request($crate::member::Request::Announce(attributes)) $($await)*;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_switchboards_turn_offer_reads_back() {
        use crate::switchboard::TurnOffer;
        let now = Instant::now();
        let offer = TurnOffer::new(vec!["turn:192.0.2.1:3478".into()], "s".into(), now, 1000);
        let text = offer.message(now, "alice").encode();
        let servers = IceServer::offered(&text).expect("an offer");
        assert_eq!(servers.len(), 1);
        assert_eq!(servers[0].urls, vec!["turn:192.0.2.1:3478".to_owned()]);
        assert_eq!(servers[0].username.as_deref(), Some("87400:alice"));
        assert!(IceServer::offered("/roominfo|{\"memberCount\":1}").is_none());
        assert!(IceServer::offered("/to|b|/mesh:ice|a|{}").is_none());
    }

    #[test]
    fn fresh_ids_and_incarnations_follow_the_conventions() {
        let e = Entropy::new([7, 0xabc, 0xdef], Duration::from_secs(1), Instant::now());
        assert_eq!(e.peer_id(), "0000000000000abc");
        assert_eq!(e.incarnation(), "0000000000000def");
        assert_eq!(e.epoch_ms, 1000.0);
        // From a keyed hasher: three different words, the same for the same key.
        let r = std::collections::hash_map::RandomState::new();
        let (a, b) = (
            Entropy::from_hasher(&r, Duration::from_secs(1), Instant::now()),
            Entropy::from_hasher(&r, Duration::from_secs(1), Instant::now()),
        );
        assert!(a.seed != a.id_bits && a.id_bits != a.incarnation_bits);
        assert_eq!((a.seed, a.id_bits), (b.seed, b.id_bits));
        // The secret seed shows in neither.
        assert!(!e.peer_id().contains('7') && !e.incarnation().contains('7'));
    }

    #[test]
    fn unspecified_bind_addresses_stand_for_every_usable_interface_address() {
        let ips: Vec<IpAddr> = [
            "127.0.0.1",
            "10.0.1.2",
            "169.254.3.4",
            "::1",
            "fe80::1",
            "2001:db8::5",
            "192.168.7.9",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        let mut o = JoinOptions::new("r", "ws://127.0.0.1:1/");
        assert_eq!(
            o.bind_addresses(&ips),
            [
                a("127.0.0.1:0"),
                a("10.0.1.2:0"),
                a("192.168.7.9:0"),
                a("[::1]:0"),
                a("[2001:db8::5]:0")
            ]
        );
        // A named address narrows it; a port is kept; nothing twice.
        o.bind = vec![a("0.0.0.0:5000"), a("10.0.1.2:5000")];
        assert_eq!(
            o.bind_addresses(&ips),
            [
                a("127.0.0.1:5000"),
                a("10.0.1.2:5000"),
                a("192.168.7.9:5000")
            ]
        );
        o.bind = vec![a("[::]:0")];
        assert_eq!(o.bind_addresses(&ips[..3]), Vec::<SocketAddr>::new());
        o.bind = vec![a("127.0.0.1:0")];
        assert_eq!(o.bind_addresses(&[]), [a("127.0.0.1:0")]);
    }

    #[test]
    fn set_each_writes_the_others_when_one_is_refused() {
        let now = Instant::now();
        let entropy = Entropy::new([1, 2, 3], Duration::from_secs(1), now);
        let local = "127.0.0.1:40000".parse().unwrap();
        let (mut node, _) = JoinOptions::new("r", "ws://127.0.0.1:1/")
            .node(vec![local], Vec::new(), Vec::new(), entropy)
            .unwrap();
        node.start(now);
        let long = "k".repeat(Limits::default().max_key_len + 1);
        let writes = vec![
            ("a".into(), Value::from(1.0)),
            (long.clone(), Value::from(2.0)),
            ("b".into(), Value::from(3.0)),
        ];
        let Answer::WrittenEach(r) = answer(&mut node, now, Request::SetEach(writes.clone()))
        else {
            panic!("not WrittenEach")
        };
        assert!(r[0].is_ok() && r[1].is_err() && r[2].is_ok(), "{r:?}");
        assert!(
            matches!(answer(&mut node, now, Request::Keys), Answer::Keys(k) if k == ["a", "b"])
        );
        // `Set` stops at the refused one.
        let writes: Vec<_> = writes
            .into_iter()
            .map(|(k, _)| (k + "2", Value::Null))
            .collect();
        assert!(matches!(
            answer(&mut node, now, Request::Set(writes)),
            Answer::Written(Err(_))
        ));
    }

    #[test]
    fn stun_names_resolve_through_the_given_resolver() {
        let mut o = JoinOptions::new("r", "ws://127.0.0.1:1/");
        o.stun_servers = vec!["stun:a.test:3478".into(), "b.test:1".into()];
        let addr: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        let mut asked = Vec::new();
        let got = o
            .resolve_stun(|hp| {
                asked.push(hp.to_owned());
                Ok(Some(addr))
            })
            .unwrap();
        // Both asked; the one address they give, once.
        assert_eq!(got, vec![addr]);
        assert_eq!(asked, ["a.test:3478", "b.test:1"]);
        assert!(
            matches!(o.resolve_stun(|_| Ok(None)), Err(JoinError::Stun(s, _)) if s == "stun:a.test:3478")
        );
    }

    #[test]
    fn ice_servers_give_stun_and_turn_servers() {
        let mut o = JoinOptions::new("r", "ws://127.0.0.1:1/");
        o.ice_servers = vec![
            IceServer {
                urls: vec!["stun:s.test".into()],
                ..Default::default()
            },
            IceServer {
                urls: vec!["turn:t.test:3479?transport=udp".into(), "turn:[::1]".into()],
                username: Some("u".into()),
                credential: Some("p".into()),
            },
        ];
        let mut asked = Vec::new();
        let addr: SocketAddr = "127.0.0.1:3478".parse().unwrap();
        let turn = o
            .resolve_turn(|hp| {
                asked.push(hp.to_owned());
                Ok(Some(addr))
            })
            .unwrap();
        assert_eq!(asked, ["t.test:3479", "[::1]:3478"]);
        assert_eq!(turn.len(), 2);
        assert_eq!(
            (turn[0].username.as_str(), turn[0].credential.as_str()),
            ("u", "p")
        );
        // Every one of them answers STUN; one address once.
        asked.clear();
        let stun = o
            .resolve_stun(|hp| {
                asked.push(hp.to_owned());
                Ok(Some(addr))
            })
            .unwrap();
        assert_eq!(asked, ["s.test:3478", "t.test:3479", "[::1]:3478"]);
        assert_eq!(stun, [addr]);
        for (url, user, why) in [
            ("turns:t.test", true, "TLS"),
            ("turn:t.test?transport=tcp", true, "TCP"),
            ("turn:t.test", false, "username"),
            ("turn:", true, "no host"),
        ] {
            o.ice_servers = vec![IceServer {
                urls: vec![url.into()],
                username: user.then(|| "u".into()),
                credential: user.then(|| "p".into()),
            }];
            match o.resolve_turn(|_| Ok(Some(addr))) {
                Err(JoinError::Turn(u, e)) => assert!(u == url && e.contains(why), "{u}: {e}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}
