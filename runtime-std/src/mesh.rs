//! Joining a room with std threads: one UDP socket, one signalling connection, and
//! core's [`Node`] deciding everything, on a driver thread.
//!
//! ```no_run
//! use rtc_mesh_std::mesh::{join, JoinOptions};
//! use rtc_mesh_core::Value;
//!
//! let (member, events) = join(JoinOptions::new("lobby", "ws://127.0.0.1:3000/")).unwrap();
//! member.set("greeting", Value::from("hello")).unwrap();
//! for event in events {
//!     println!("{event:?}");
//! }
//! ```

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rtc_mesh_core::mesh::{LinkInfo, LinkState, MeshConfig};
use rtc_mesh_core::node::{Node, NodeConfig, NodeEvent, NodeOutput};
use rtc_mesh_core::{Codec, Limits, StoreError};
pub use rtc_mesh_core::{Object, Value};

use crate::signal::{SignalEvent, Signaller, UrlError};

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
    /// The UDP address to bind (default `127.0.0.1:0`).
    pub bind: SocketAddr,
    /// Codecs, preferred first (default postcard, json).
    pub codecs: Vec<Codec>,
    /// User attributes for our announce.
    pub attributes: Object,
    /// STUN servers (`host:port`, or `stun:host:port`; default none) asked for our
    /// server-reflexive address. Names are resolved once, at join.
    pub stun_servers: Vec<String>,
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
}

impl JoinOptions {
    /// Options for `room` through the switchboard at `signal_url`.
    pub fn new(room: impl Into<String>, signal_url: impl Into<String>) -> Self {
        JoinOptions {
            room: room.into(),
            signal_url: signal_url.into(),
            id: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            codecs: vec![Codec::Postcard, Codec::Json],
            attributes: Object::new(),
            stun_servers: Vec::new(),
            ping_interval: Duration::from_secs(1),
            dead_after: Duration::from_secs(4),
            negotiate_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            max_queued: 8 << 20,
        }
    }
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
    /// A STUN server name does not resolve to an address.
    #[error("STUN server {0:?}: {1}")]
    Stun(String, String),
    /// The configuration is invalid (id, room).
    #[error(transparent)]
    Mesh(#[from] rtc_mesh_core::mesh::MeshError),
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
}

/// A peer's present state, for [`Member::peers`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct PeerInfo {
    /// Its id.
    pub id: String,
    /// Its announce attributes.
    pub attributes: Object,
    /// The connection to it: state, codec, bytes and updates each way, round trip.
    pub link: LinkInfo,
}

impl PeerInfo {
    /// Whether a data channel is open to it.
    pub fn is_linked(&self) -> bool {
        self.link.state == LinkState::Open
    }
}

/// Resolves a STUN server given as `host:port` or `stun:host:port`.
fn resolve_stun(s: &str) -> Result<SocketAddr, JoinError> {
    let hp = s.strip_prefix("stun:").unwrap_or(s);
    let fail = |why: String| JoinError::Stun(s.to_owned(), why);
    hp.to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".into()))
}

/// The Node for `options`, offering `local` as its host candidate; and its id.
pub fn node_for(options: &JoinOptions, local: SocketAddr) -> Result<(Node, String), JoinError> {
    let id = options
        .id
        .clone()
        .unwrap_or_else(|| format!("{:016x}", crate::random_seed()));
    let (epoch_ms, start) = crate::clock_anchor();
    let seed = crate::random_seed();
    let mut mc = MeshConfig::new(
        id.clone(),
        options.room.clone(),
        format!("{:016x}", seed.rotate_left(17) ^ 0x9e37_79b9),
        epoch_ms,
        start,
    );
    mc.codecs = options.codecs.clone();
    mc.attributes = options.attributes.clone();
    mc.ping_interval = options.ping_interval;
    mc.dead_after = options.dead_after;
    mc.negotiate_timeout = options.negotiate_timeout;
    mc.limits = options.limits.clone();
    mc.seed = seed;
    let mut nc = NodeConfig::new(mc, vec![local]);
    nc.max_queued = options.max_queued;
    nc.stun_servers = options
        .stun_servers
        .iter()
        .map(|s| resolve_stun(s))
        .collect::<Result<_, _>>()?;
    Ok((Node::new(nc)?, id))
}

/// A request to a member's driver. Both runtimes' drivers answer it the same way, with
/// [`answer`]; a custom driver can too.
#[derive(Debug)]
#[non_exhaustive]
pub enum Request {
    /// Write these keys (`null` deletes), stopping at the first refused one.
    Set(Vec<(String, Value)>),
    /// The value of a key.
    Get(String),
    /// Every live key, in byte order.
    Keys,
    /// Every live key and value.
    Snapshot,
    /// Present peers and their links.
    Peers,
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
    /// For `Get`.
    Value(Option<Value>),
    /// For `Keys`.
    Keys(Vec<String>),
    /// For `Snapshot`.
    Snapshot(Object),
    /// For `Peers`.
    Peers(Vec<PeerInfo>),
    /// For `Announce` and `Close`.
    Done,
}

/// How long a driver keeps going after answering [`Request::Close`], so that the
/// goodbyes (`BYE` on each link, `/leave`, the DTLS close) leave before it stops.
pub const CLOSE_LINGER: Duration = Duration::from_millis(200);

/// Answers `request` from `node`.
pub fn answer(node: &mut Node, now: Instant, request: Request) -> Answer {
    match request {
        Request::Set(entries) => Answer::Written(
            entries
                .iter()
                .try_for_each(|(k, v)| node.set(now, k, v).map(|_| ())),
        ),
        Request::Get(k) => Answer::Value(node.store().get(&k)),
        Request::Keys => Answer::Keys(node.store().keys().map(str::to_owned).collect()),
        Request::Snapshot => Answer::Snapshot(node.store().dump()),
        Request::Peers => Answer::Peers(peers_of(node)),
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

/// Present peers of `node`, with their links.
pub fn peers_of(node: &Node) -> Vec<PeerInfo> {
    let m = node.mesh();
    m.peers()
        .filter_map(|(id, attrs)| {
            Some(PeerInfo {
                id: id.to_owned(),
                attributes: attrs.clone(),
                link: m.link_info(id)?,
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

        /// The UDP address we listen on.
        pub fn local_addr(&self) -> std::net::SocketAddr {
            self.local
        }

        /// Sets `key` (`null` deletes).
        pub $($async)? fn set(&self, key: &str, value: $crate::mesh::Value) -> Result<(), $crate::mesh::MemberError> {
            self.set_many(vec![(key.to_owned(), value)]) $($await)*
        }

        /// Sets many keys in one step (much faster than one `set` each: the writes
        /// share frames on every link). Stops at the first refused write and returns
        /// its error.
        pub $($async)? fn set_many(&self, entries: Vec<(String, $crate::mesh::Value)>) -> Result<(), $crate::mesh::MemberError> {
            match self.request($crate::mesh::Request::Set(entries)) $($await)* {
                Some($crate::mesh::Answer::Written(r)) => r.map_err(Into::into),
                _ => Err($crate::mesh::MemberError::Closed),
            }
        }

        /// Deletes `key`.
        pub $($async)? fn delete(&self, key: &str) -> Result<(), $crate::mesh::MemberError> {
            self.set(key, $crate::mesh::Value::Null) $($await)*
        }

        /// The value of `key`.
        pub $($async)? fn get(&self, key: &str) -> Option<$crate::mesh::Value> {
            match self.request($crate::mesh::Request::Get(key.to_owned())) $($await)* {
                Some($crate::mesh::Answer::Value(v)) => v,
                _ => None,
            }
        }

        /// Every live key, in byte order.
        pub $($async)? fn keys(&self) -> Vec<String> {
            match self.request($crate::mesh::Request::Keys) $($await)* {
                Some($crate::mesh::Answer::Keys(k)) => k,
                _ => Vec::new(),
            }
        }

        /// A snapshot: every live key and value.
        pub $($async)? fn snapshot(&self) -> $crate::mesh::Object {
            match self.request($crate::mesh::Request::Snapshot) $($await)* {
                Some($crate::mesh::Answer::Snapshot(o)) => o,
                _ => $crate::mesh::Object::new(),
            }
        }

        /// Present peers: their attributes and links (state, codec, bytes and updates
        /// each way, round trip).
        pub $($async)? fn peers(&self) -> Vec<$crate::mesh::PeerInfo> {
            match self.request($crate::mesh::Request::Peers) $($await)* {
                Some($crate::mesh::Answer::Peers(p)) => p,
                _ => Vec::new(),
            }
        }

        /// Replaces our user attributes and announces them to the room.
        pub $($async)? fn announce(&self, attributes: $crate::mesh::Object) {
            self.request($crate::mesh::Request::Announce(attributes)) $($await)*;
        }
    };
}

enum Input {
    Request(Request, Sender<Answer>),
    Datagram(Vec<u8>, SocketAddr),
    Signal(SignalEvent),
}

/// Our membership of a room, driven by a thread. [`Member::close`] leaves politely;
/// dropping it stops the thread without a goodbye.
pub struct Member {
    id: String,
    local: SocketAddr,
    tx: Sender<Input>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Joins a room: binds the UDP socket, connects to the switchboard and announces.
pub fn join(options: JoinOptions) -> Result<(Member, Receiver<NodeEvent>), JoinError> {
    let udp = UdpSocket::bind(options.bind).map_err(|e| JoinError::Bind(options.bind, e))?;
    let local = udp
        .local_addr()
        .map_err(|e| JoinError::Bind(options.bind, e))?;
    let (node, id) = node_for(&options, local)?;
    let (tx, rx) = mpsc::channel();
    let stx = tx.clone();
    let signaller =
        Signaller::connect_with_handler(&options.signal_url, Default::default(), move |e| {
            stx.send(Input::Signal(e)).is_ok()
        })?;
    let stop = Arc::new(AtomicBool::new(false));
    // The reader: datagrams into the driver's queue.
    let reader = udp
        .try_clone()
        .map_err(|e| JoinError::Bind(options.bind, e))?;
    let _ = reader.set_read_timeout(Some(Duration::from_millis(200)));
    let (rtx, rstop) = (tx.clone(), stop.clone());
    thread::Builder::new()
        .name("mesh-udp".into())
        .spawn(move || {
            let mut buf = vec![0u8; 2048];
            while !rstop.load(Ordering::Relaxed) {
                if let Ok((n, from)) = reader.recv_from(&mut buf) {
                    if rtx.send(Input::Datagram(buf[..n].to_vec(), from)).is_err() {
                        return;
                    }
                }
            }
        })
        .map_err(|e| JoinError::Bind(options.bind, e))?;
    let (ev_tx, events) = mpsc::channel();
    let dstop = stop.clone();
    let thread = thread::Builder::new()
        .name("mesh".into())
        .spawn(move || drive(node, udp, local, signaller, rx, ev_tx, dstop))
        .map_err(|e| JoinError::Bind(options.bind, e))?;
    Ok((
        Member {
            id,
            local,
            tx,
            stop,
            thread: Some(thread),
        },
        events,
    ))
}

impl Member {
    /// Sends `request` to the driver and waits for its answer (`None` once the
    /// driver has stopped). The typed calls below are built on it.
    pub fn request(&self, request: Request) -> Option<Answer> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(Input::Request(request, tx)).ok()?;
        rx.recv().ok()
    }

    crate::__member_calls!(;);

    /// Leaves the room (goodbyes on every link and to the switchboard) and waits for
    /// the driver to end.
    pub fn close(mut self) {
        self.request(Request::Close);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn drive(
    mut node: Node,
    udp: UdpSocket,
    local: SocketAddr,
    signaller: Signaller,
    inputs: Receiver<Input>,
    events: Sender<NodeEvent>,
    stop: Arc<AtomicBool>,
) {
    node.start(Instant::now());
    let mut closing: Option<(Sender<Answer>, Instant)> = None;
    loop {
        let deadline = loop {
            match node.poll_output() {
                // Announces are sent again after a reconnect: the client knows them.
                NodeOutput::Signal(t) => signaller.send_text(t),
                NodeOutput::Transmit {
                    destination, data, ..
                } => {
                    let _ = udp.send_to(&data, destination);
                }
                NodeOutput::Event(e) => {
                    let _ = events.send(e);
                }
                NodeOutput::Timeout(t) => break t,
            }
        };
        if stop.load(Ordering::Relaxed) && closing.is_none() {
            return;
        }
        let deadline = match &closing {
            Some((reply, until)) => {
                if Instant::now() >= *until {
                    stop.store(true, Ordering::Relaxed);
                    signaller.close();
                    let _ = reply.send(Answer::Done);
                    return;
                }
                deadline.min(*until)
            }
            None => deadline,
        };
        let wait = deadline.saturating_duration_since(Instant::now());
        let input = match inputs.recv_timeout(wait) {
            Ok(i) => Some(i),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let now = Instant::now();
        match input {
            None => node.handle_timeout(now),
            Some(Input::Datagram(d, from)) => node.handle_datagram(now, from, local, &d),
            Some(Input::Signal(SignalEvent::Message(m))) => node.handle_signal(now, &m.encode()),
            Some(Input::Signal(_)) => {}
            Some(Input::Request(req, reply)) => {
                let close = matches!(req, Request::Close);
                let ans = answer(&mut node, now, req);
                if close {
                    closing = Some((reply, now + CLOSE_LINGER));
                } else {
                    let _ = reply.send(ans);
                }
            }
        }
    }
}
