//! # rtc-mesh-std
//!
//! rtc-mesh on plain `std`: threads, blocking sockets and `std::sync::mpsc`. No
//! protocol decision lives here.
//!
//! ## A room over WebRTC: [`mesh::join`]
//!
//! A driver thread owns core's `Node`, one UDP socket (with a reader thread) and one
//! signalling connection; events come on a `Receiver`.
//!
//! ```no_run
//! use rtc_mesh_core::mesh::MeshEvent;
//! use rtc_mesh_core::node::NodeEvent;
//! use rtc_mesh_core::Value;
//! use rtc_mesh_std::mesh::{join, JoinOptions};
//!
//! let (member, events) = join(JoinOptions::new("lobby", "ws://127.0.0.1:3000/")).unwrap();
//! member.set("greeting", Value::from("hello")).unwrap();
//! for event in events {
//!     if let NodeEvent::Mesh(MeshEvent::Update(u)) = event {
//!         println!("{} = {}", u.key, u.value.to_json());
//!         println!("keys now: {:?}", member.keys());
//!     }
//! }
//! ```
//!
//! For a custom event loop, drive `rtc_mesh_core::node::Node` yourself (its docs show
//! one); `rtc_mesh_core::member::answer` answers the same requests these members take.
//!
//! ## Two replicas over TCP: [`Replicator`]
//!
//! A driver thread owns the sans-IO [`Replica`]; each TCP link has a reader thread and a
//! writer thread that only move bytes.
//!
//! ```no_run
//! use rtc_mesh_std::{Replicator, ReplicatorOptions};
//! use rtc_mesh_core::{Codec, ReplicaEvent, Value};
//!
//! let (r, events) = Replicator::start(ReplicatorOptions::new("alice", Codec::Json)).unwrap();
//! let addr = r.listen("127.0.0.1:0".parse().unwrap()).unwrap();
//! println!("listening on {addr}");
//! r.set("greeting", &Value::from("hello")).unwrap();
//! for event in events {
//!     if let ReplicaEvent::Update(u) = event {
//!         println!("{} = {}", u.key, u.value.to_json());
//!     }
//! }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod mesh;
pub mod signal;
pub mod switchboard;
pub mod ws;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtc_mesh_core::member::{Entropy, MemberError};
use rtc_mesh_core::replica::drain;
use rtc_mesh_core::{
    Codec, Framing, LinkId, Object, Replica, ReplicaEvent, Store, StoreConfig, StoreError, Value,
};

pub use rtc_mesh_core::replica::{ReplicatorOptions, StartError};

/// Reads this machine's randomness and wall clock once, for a new member or store.
pub fn entropy() -> Entropy {
    let start = Instant::now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Entropy::from_hasher(&std::collections::hash_map::RandomState::new(), wall, start)
}

enum Input {
    Conn(TcpStream),
    Bytes(LinkId, Vec<u8>),
    End(LinkId),
    Set(String, Value, Sender<Result<(), StoreError>>),
    Get(String, Sender<Option<Value>>),
    Dump(Sender<Object>),
    Close(Duration, Sender<()>),
}

/// A store replicated over TCP links, driven by a thread. See the crate docs.
pub struct Replicator {
    tx: Sender<Input>,
    driver: Mutex<Option<JoinHandle<()>>>,
    stopping: Arc<AtomicBool>,
    /// Bound addresses and accepting threads, stopped on close.
    listeners: Mutex<Vec<(SocketAddr, JoinHandle<()>)>>,
    id: String,
}

impl Replicator {
    /// Starts the driver thread. Returns the handle and the event receiver.
    pub fn start(options: ReplicatorOptions) -> Result<(Self, Receiver<ReplicaEvent>), StartError> {
        let entropy = entropy();
        let mut config = StoreConfig::new(options.id.clone(), entropy.epoch_ms, entropy.start);
        config.limits = options.limits;
        config.hash_seed = entropy.seed;
        let store = Store::new(config)?;
        let (tx, rx) = mpsc::channel();
        let (etx, events) = mpsc::channel();
        let driver = Driver {
            replica: Replica::new(store),
            codec: options.codec,
            links: BTreeMap::new(),
            tx: tx.clone(),
            events: etx,
        };
        let driver = thread::Builder::new()
            .name("rtc-mesh-driver".into())
            .spawn(move || driver.run(rx))?;
        let r = Replicator {
            tx,
            driver: Mutex::new(Some(driver)),
            stopping: Arc::new(AtomicBool::new(false)),
            listeners: Mutex::new(Vec::new()),
            id: options.id,
        };
        Ok((r, events))
    }

    /// The store's source id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Accepts TCP links on `addr` (port 0 picks one); returns the bound address.
    pub fn listen(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr)?;
        let bound = listener.local_addr()?;
        let tx = self.tx.clone();
        let stopping = self.stopping.clone();
        let handle = thread::Builder::new()
            .name("rtc-mesh-accept".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stopping.load(Ordering::Relaxed) {
                        break;
                    }
                    match conn {
                        Ok(s) => {
                            if tx.send(Input::Conn(s)).is_err() {
                                break;
                            }
                        }
                        // Out of descriptors, say: back off rather than spin.
                        Err(_) => thread::sleep(Duration::from_millis(10)),
                    }
                }
            })?;
        if let Ok(mut l) = self.listeners.lock() {
            l.push((bound, handle));
        }
        Ok(bound)
    }

    /// Opens a TCP link to `addr`.
    pub fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        let s = TcpStream::connect(addr)?;
        self.tx
            .send(Input::Conn(s))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "replicator stopped"))
    }

    fn call<T>(&self, make: impl FnOnce(Sender<T>) -> Input) -> Option<T> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(make(tx)).ok()?;
        rx.recv().ok()
    }

    /// Sets `key` to `value` (`null` deletes). After the replicator has stopped, nothing
    /// is written and the answer is [`MemberError::Closed`].
    pub fn set(&self, key: &str, value: &Value) -> Result<(), MemberError> {
        match self.call(|r| Input::Set(key.to_owned(), value.clone(), r)) {
            Some(written) => written.map_err(MemberError::Store),
            None => Err(MemberError::Closed),
        }
    }

    /// Deletes `key` (as [`set`](Self::set) to `null`).
    pub fn delete(&self, key: &str) -> Result<(), MemberError> {
        self.set(key, &Value::Null)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.call(|r| Input::Get(key.to_owned(), r)).flatten()
    }

    /// Every live key and value.
    pub fn dump(&self) -> Object {
        self.call(Input::Dump).unwrap_or_default()
    }

    /// Flushes every link (waiting at most `flush_timeout`), closes them and stops.
    /// Later calls find it closed: writes fail with [`MemberError::Closed`], reads find
    /// nothing. Closing again does nothing.
    pub fn close(&self, flush_timeout: Duration) {
        self.stopping.store(true, Ordering::Relaxed);
        let _ = self.call(|r| Input::Close(flush_timeout, r));
        let driver = self.driver.lock().map(|mut d| d.take());
        if let Ok(Some(d)) = driver {
            let _ = d.join();
        }
        // Wake each accepting thread with a connection of our own, so that it sees the
        // flag, ends, and frees its port.
        let listeners = self.listeners.lock().map(|mut l| std::mem::take(&mut *l));
        for (addr, handle) in listeners.unwrap_or_default() {
            let mut wake = addr;
            if wake.ip().is_unspecified() {
                wake.set_ip(match addr {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
                let _ = handle.join();
            }
        }
    }
}

impl Drop for Replicator {
    fn drop(&mut self) {
        self.close(Duration::ZERO);
    }
}

struct LinkIo {
    stream: TcpStream,
    writer: Sender<Vec<u8>>,
    writer_done: Receiver<()>,
}

struct Driver {
    replica: Replica,
    codec: Codec,
    links: BTreeMap<LinkId, LinkIo>,
    tx: Sender<Input>,
    events: Sender<ReplicaEvent>,
}

impl Driver {
    fn run(mut self, rx: Receiver<Input>) {
        loop {
            let timeout = self.drain();
            let input = match timeout {
                Some(t) => match rx.recv_timeout(t.saturating_duration_since(Instant::now())) {
                    Ok(i) => i,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match rx.recv() {
                    Ok(i) => i,
                    Err(_) => return,
                },
            };
            let now = Instant::now();
            match input {
                Input::Conn(stream) => self.add_link(stream),
                Input::Bytes(link, bytes) => self.replica.handle_input(now, link, &bytes),
                Input::End(link) => {
                    self.replica.handle_end(now, link);
                    self.drain();
                    self.replica.close_link(link);
                    if let Some(io) = self.links.remove(&link) {
                        let _ = io.stream.shutdown(Shutdown::Both);
                    }
                }
                Input::Set(k, v, reply) => {
                    let r = self.replica.set(now, &k, &v).map(|_| ());
                    let _ = reply.send(r);
                }
                Input::Get(k, reply) => {
                    let _ = reply.send(self.replica.store().get(&k));
                }
                Input::Dump(reply) => {
                    let _ = reply.send(self.replica.store().dump());
                }
                Input::Close(timeout, reply) => {
                    self.drain();
                    self.flush_and_close(timeout);
                    let _ = reply.send(());
                    return;
                }
            }
        }
    }

    /// Moves all output to the links and the event channel; returns the next timer.
    fn drain(&mut self) -> Option<Instant> {
        let links = &self.links;
        let events = &self.events;
        drain(
            &mut self.replica,
            |link, bytes| {
                if let Some(io) = links.get(&link) {
                    let _ = io.writer.send(bytes);
                }
            },
            |link| {
                if let Some(io) = links.get(&link) {
                    let _ = io.stream.shutdown(Shutdown::Both);
                }
            },
            |e| {
                let _ = events.send(e);
            },
        )
    }

    fn add_link(&mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (Ok(read_half), Ok(write_half)) = (stream.try_clone(), stream.try_clone()) else {
            return;
        };
        let link = self.replica.open_link(self.codec, Framing::Stream);
        let tx = self.tx.clone();
        let reader = thread::Builder::new()
            .name("rtc-mesh-read".into())
            .spawn(move || read_loop(link, read_half, tx));
        let (wtx, wrx) = mpsc::channel::<Vec<u8>>();
        let (done_tx, done_rx) = mpsc::channel();
        let writer = thread::Builder::new()
            .name("rtc-mesh-write".into())
            .spawn(move || {
                write_loop(write_half, wrx);
                let _ = done_tx.send(());
            });
        if reader.is_err() || writer.is_err() {
            self.replica.close_link(link);
            return;
        }
        self.links.insert(
            link,
            LinkIo {
                stream,
                writer: wtx,
                writer_done: done_rx,
            },
        );
    }

    fn flush_and_close(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let links = std::mem::take(&mut self.links);
        let mut waiting = Vec::new();
        for (_, io) in links {
            // Dropping the sender lets the writer finish what it holds, then stop.
            drop(io.writer);
            waiting.push((io.stream, io.writer_done));
        }
        for (stream, done) in waiting {
            let _ = done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn read_loop(link: LinkId, mut s: TcpStream, tx: Sender<Input>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = tx.send(Input::End(link));
                return;
            }
            Ok(n) => {
                if tx.send(Input::Bytes(link, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
        }
    }
}

fn write_loop(mut s: TcpStream, rx: Receiver<Vec<u8>>) {
    while let Ok(bytes) = rx.recv() {
        if s.write_all(&bytes).is_err() {
            return;
        }
    }
    let _ = s.flush();
    let _ = s.shutdown(Shutdown::Write);
}
