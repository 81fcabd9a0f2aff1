//! # rtc-mesh-smol
//!
//! rtc-mesh on `smol` / `async-io`. Tasks run on smol's global executor; no protocol
//! decision lives here.
//!
//! ## A room over WebRTC: [`mesh::join`]
//!
//! A driver task owns one UDP socket, one signalling connection and core's `Node`. The
//! events are an `async_channel::Receiver`, which is also a `Stream`.
//!
//! ```no_run
//! use rtc_mesh_core::mesh::MeshEvent;
//! use rtc_mesh_core::node::NodeEvent;
//! use rtc_mesh_core::Value;
//! use rtc_mesh_smol::mesh::{join, JoinOptions};
//! use smol::stream::StreamExt;
//!
//! smol::block_on(async {
//!     let mut options = JoinOptions::new("lobby", "ws://127.0.0.1:3000/");
//!     options.stun_servers = vec!["stun:127.0.0.1:3478".into()];
//!     let (member, events) = join(options).await.unwrap();
//!     member.set("greeting", Value::from("hello")).await.unwrap();
//!     let mut events = std::pin::pin!(events);
//!     while let Some(event) = events.next().await {
//!         match event {
//!             NodeEvent::Mesh(MeshEvent::Update(u)) => println!("{} = {}", u.key, u.value.to_json()),
//!             NodeEvent::Mesh(MeshEvent::SyncedAll { .. }) => {
//!                 for p in member.peers().await {
//!                     println!("{}: {} rtt {:?}", p.id, p.link.state.name(), p.link.stats.rtt);
//!                 }
//!             }
//!             _ => {}
//!         }
//!     }
//! });
//! ```
//!
//! ## Two replicas over TCP: [`Replicator`]
//!
//! A member without a room ([`mesh::replicate`]) plus a TCP listener and dialer: each
//! TCP link is an attached stream (scuttlebutt's JSON lines, or postcard), on the same
//! driver as a room member.
//!
//! ```no_run
//! use rtc_mesh_smol::{Replicator, ReplicatorOptions};
//! use rtc_mesh_core::{mesh::MeshEvent, node::NodeEvent, Codec, Value};
//! use smol::stream::StreamExt;
//!
//! smol::block_on(async {
//!     let (r, events) = Replicator::start(ReplicatorOptions::new("alice", Codec::Json)).unwrap();
//!     let addr = r.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
//!     println!("listening on {addr}");
//!     r.set("greeting", &Value::from("hello")).await.unwrap();
//!     let mut events = std::pin::pin!(events);
//!     while let Some(event) = events.next().await {
//!         if let NodeEvent::Mesh(MeshEvent::Update(u)) = event {
//!             println!("{} = {}", u.key, u.value.to_json());
//!         }
//!     }
//! });
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod mesh;
pub mod signal;
pub mod switchboard;

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smol::channel::Receiver;
use smol::future::FutureExt;
use smol::net::{TcpListener, TcpStream};
use smol::Task;

use rtc_mesh_core::member::Entropy;
pub use rtc_mesh_core::member::{ReplicatorOptions, StartError};
use rtc_mesh_core::node::NodeEvent;
use rtc_mesh_core::{Codec, Object, Value};

use crate::mesh::{Member, MemberError};

/// Reads this machine's randomness and wall clock once, for a new member or store.
pub fn entropy() -> Entropy {
    let start = Instant::now();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
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
    accept: Mutex<Vec<Task<()>>>,
}

impl Replicator {
    /// Starts the member. Returns the handle and the event stream (a `Stream`).
    pub fn start(options: ReplicatorOptions) -> Result<(Self, Receiver<NodeEvent>), StartError> {
        let (member, events) = mesh::replicate(&options)?;
        let r = Replicator {
            member: Arc::new(member),
            codec: options.codec,
            accept: Mutex::new(Vec::new()),
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
    pub async fn listen(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let (member, codec) = (self.member.clone(), self.codec);
        let task = smol::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((s, _)) => {
                        let _ = s.set_nodelay(true);
                        if let Err(MemberError::Closed) = member.attach(s, codec).await {
                            return;
                        }
                    }
                    Err(_) => {
                        smol::Timer::after(Duration::from_millis(10)).await;
                    }
                }
            }
        });
        if let Ok(mut accept) = self.accept.lock() {
            accept.push(task);
        }
        Ok(bound)
    }

    /// Opens a TCP link to `addr`.
    pub async fn connect(&self, addr: SocketAddr) -> io::Result<()> {
        let s = TcpStream::connect(addr).await?;
        let _ = s.set_nodelay(true);
        self.member
            .attach(s, self.codec)
            .await
            .map(|_| ())
            .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))
    }

    /// Sets `key` to `value` (`null` deletes). After the replicator has stopped, nothing
    /// is written and the answer is [`MemberError::Closed`].
    pub async fn set(&self, key: &str, value: &Value) -> Result<(), MemberError> {
        self.member.set(key, value.clone()).await
    }

    /// Deletes `key` (as [`set`](Self::set) to `null`).
    pub async fn delete(&self, key: &str) -> Result<(), MemberError> {
        self.member.delete(key).await
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str) -> Option<Value> {
        self.member.get(key).await
    }

    /// Every live key and value.
    pub async fn dump(&self) -> Object {
        self.member.snapshot().await
    }

    /// Stops accepting, closes every link once it has taken what was written to it,
    /// and stops; waits at most `flush_timeout`. Later calls find it closed: writes fail
    /// with [`MemberError::Closed`], reads find nothing. Closing again does nothing.
    pub async fn close(&self, flush_timeout: Duration) {
        let accept = self.accept.lock().map(|mut a| std::mem::take(&mut *a));
        for t in accept.unwrap_or_default() {
            t.cancel().await;
        }
        async {
            self.member.request(mesh::Request::Close).await;
        }
        .or(async {
            smol::Timer::after(flush_timeout).await;
        })
        .await;
    }
}
