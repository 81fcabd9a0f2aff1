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
//! A member without a room ([`mesh::replicate`]) plus a TCP listener and dialer: each
//! TCP link is an attached stream (scuttlebutt's JSON lines, or postcard) with a reader
//! and a writer thread, on the same driver as a room member.
//!
//! ```no_run
//! use rtc_mesh_std::{Replicator, ReplicatorOptions};
//! use rtc_mesh_core::{mesh::MeshEvent, node::NodeEvent, Codec, Value};
//!
//! let (r, events) = Replicator::start(ReplicatorOptions::new("alice", Codec::Json)).unwrap();
//! let addr = r.listen("127.0.0.1:0".parse().unwrap()).unwrap();
//! println!("listening on {addr}");
//! r.set("greeting", &Value::from("hello")).unwrap();
//! for event in events {
//!     if let NodeEvent::Mesh(MeshEvent::Update(u)) = event {
//!         println!("{} = {}", u.key, u.value.to_json());
//!     }
//! }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod mesh;
pub mod signal;
pub mod storage;
pub mod switchboard;
pub mod ws;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtc_mesh_core::member::Entropy;
pub use rtc_mesh_core::member::{ReplicatorOptions, StartError};
use rtc_mesh_core::node::NodeEvent;
use rtc_mesh_core::{Codec, Object, Value};

use crate::mesh::{Member, MemberError};

/// Reads this machine's randomness and wall clock once, for a new member or store.
pub fn entropy() -> Entropy {
    let start = Instant::now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let entropy =
        Entropy::from_hasher(&std::collections::hash_map::RandomState::new(), wall, start);
    // The operating system's generator, for a secured room's identity and nonces.
    let mut secure = [0u8; 32];
    match getrandom::fill(&mut secure) {
        Ok(()) => entropy.with_secure(secure),
        Err(_) => entropy,
    }
}

/// A store replicated over TCP links: a member without a room ([`mesh::replicate`])
/// that listens and dials. See the crate docs.
pub struct Replicator {
    member: Arc<Member>,
    codec: Codec,
    stopping: Arc<AtomicBool>,
    /// Bound addresses and accepting threads, stopped on close.
    listeners: Mutex<Vec<(SocketAddr, JoinHandle<()>)>>,
}

impl Replicator {
    /// Starts the member. Returns the handle and the event receiver.
    pub fn start(options: ReplicatorOptions) -> Result<(Self, Receiver<NodeEvent>), StartError> {
        let (member, events) = mesh::replicate(&options)?;
        let r = Replicator {
            member: Arc::new(member),
            codec: options.codec,
            stopping: Arc::new(AtomicBool::new(false)),
            listeners: Mutex::new(Vec::new()),
        };
        Ok((r, events))
    }

    /// The store's source id.
    pub fn id(&self) -> &str {
        self.member.id()
    }

    /// The member, for everything else it does (`keys`, `snapshot`, `attach` of any
    /// stream).
    pub fn member(&self) -> &Member {
        &self.member
    }

    /// Accepts TCP links on `addr` (port 0 picks one); returns the bound address.
    pub fn listen(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr)?;
        let bound = listener.local_addr()?;
        let (member, codec) = (self.member.clone(), self.codec);
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
                            let _ = s.set_nodelay(true);
                            if let Err(MemberError::Closed) = member.attach_tcp(s, codec) {
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
        let _ = s.set_nodelay(true);
        self.member
            .attach_tcp(s, self.codec)
            .map(|_| ())
            .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))
    }

    /// Sets `key` to `value` (`null` deletes). After the replicator has stopped, nothing
    /// is written and the answer is [`MemberError::Closed`].
    pub fn set(&self, key: &str, value: &Value) -> Result<(), MemberError> {
        self.member.set(key, value.clone())
    }

    /// Deletes `key` (as [`set`](Self::set) to `null`).
    pub fn delete(&self, key: &str) -> Result<(), MemberError> {
        self.member.delete(key)
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.member.get(key)
    }

    /// Every live key and value.
    pub fn dump(&self) -> Object {
        self.member.snapshot()
    }

    /// Stops accepting, closes every link once it has taken what was written to it,
    /// and stops; waits at most `flush_timeout`. Later calls find it closed: writes fail
    /// with [`MemberError::Closed`], reads find nothing. Closing again does nothing.
    pub fn close(&self, flush_timeout: Duration) {
        self.stopping.store(true, Ordering::Relaxed);
        self.member.close_within(flush_timeout);
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
