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
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rtc_mesh_core::mesh::MeshConfig;
use rtc_mesh_core::node::{Node, NodeConfig, NodeEvent, NodeOutput};
use rtc_mesh_core::{Codec, Object, StoreError, Value};

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
    /// The configuration is invalid (id, room).
    #[error(transparent)]
    Mesh(#[from] rtc_mesh_core::mesh::MeshError),
}

/// A peer's present state, for [`Member::peers`].
#[derive(Clone, Debug, PartialEq)]
pub struct PeerInfo {
    /// Its id.
    pub id: String,
    /// Its announce attributes.
    pub attributes: Object,
    /// Whether a data channel is open to it.
    pub linked: bool,
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
    mc.seed = seed;
    Ok((Node::new(NodeConfig::new(mc, vec![local]))?, id))
}

/// Answers a `peers` question from the node's state.
pub fn peers_of(node: &Node) -> Vec<PeerInfo> {
    let m = node.mesh();
    m.peers()
        .map(|(id, attrs)| PeerInfo {
            id: id.to_owned(),
            attributes: attrs.clone(),
            linked: m.link_of(id).is_some(),
        })
        .collect()
}

enum Cmd {
    Set(String, Value, Sender<Result<(), StoreError>>),
    SetMany(Vec<(String, Value)>, Sender<Result<(), StoreError>>),
    Get(String, Sender<Option<Value>>),
    Dump(Sender<Object>),
    Peers(Sender<Vec<PeerInfo>>),
    Close(Sender<()>),
}

enum Input {
    Cmd(Cmd),
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
    /// Our peer id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The UDP address we listen on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(Input::Cmd(make(tx))).ok()?;
        rx.recv().ok()
    }

    /// Sets `key` (`null` deletes).
    pub fn set(&self, key: &str, value: Value) -> Result<(), StoreError> {
        self.ask(|r| Cmd::Set(key.to_owned(), value, r))
            .unwrap_or(Ok(()))
    }

    /// Sets many keys in one step (much faster than one `set` each: the writes share
    /// frames on every link). Stops at the first refused write and returns its error.
    pub fn set_many(&self, entries: Vec<(String, Value)>) -> Result<(), StoreError> {
        self.ask(|r| Cmd::SetMany(entries, r)).unwrap_or(Ok(()))
    }

    /// Deletes `key`.
    pub fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.set(key, Value::Null)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.ask(|r| Cmd::Get(key.to_owned(), r)).flatten()
    }

    /// Every live key and value.
    pub fn dump(&self) -> Object {
        self.ask(Cmd::Dump).unwrap_or_default()
    }

    /// Present peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.ask(Cmd::Peers).unwrap_or_default()
    }

    /// Leaves the room (goodbyes on every link and to the switchboard) and waits for
    /// the driver to end.
    pub fn close(mut self) {
        self.ask(Cmd::Close);
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
    let mut closing: Option<(Sender<()>, Instant)> = None;
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
                    let _ = reply.send(());
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
            Some(Input::Cmd(c)) => match c {
                Cmd::Set(k, v, r) => {
                    let _ = r.send(node.set(now, &k, &v).map(|_| ()));
                }
                Cmd::SetMany(entries, r) => {
                    let res = entries
                        .iter()
                        .try_for_each(|(k, v)| node.set(now, k, v).map(|_| ()));
                    let _ = r.send(res);
                }
                Cmd::Get(k, r) => {
                    let _ = r.send(node.store().get(&k));
                }
                Cmd::Dump(r) => {
                    let _ = r.send(node.store().dump());
                }
                Cmd::Peers(r) => {
                    let _ = r.send(peers_of(&node));
                }
                Cmd::Close(r) => {
                    node.close(now);
                    closing = Some((r, now + Duration::from_millis(200)));
                }
            },
        }
    }
}
