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
//! A driver task owns the sans-IO [`Replica`]; each TCP link has a reader task and a
//! writer task that only move bytes (scuttlebutt's JSON lines, or postcard).
//!
//! ```no_run
//! use rtc_mesh_smol::{Replicator, ReplicatorOptions};
//! use rtc_mesh_core::{Codec, ReplicaEvent, Value};
//! use smol::stream::StreamExt;
//!
//! smol::block_on(async {
//!     let (mut r, events) = Replicator::start(ReplicatorOptions::new("alice", Codec::Json)).unwrap();
//!     let addr = r.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
//!     println!("listening on {addr}");
//!     r.set("greeting", &Value::from("hello")).await.unwrap();
//!     let mut events = std::pin::pin!(events);
//!     while let Some(event) = events.next().await {
//!         if let ReplicaEvent::Update(u) = event {
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

use std::collections::BTreeMap;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use smol::channel::{self, Receiver, Sender};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::Task;

use rtc_mesh_core::member::{Entropy, MemberError};
use rtc_mesh_core::replica::drain;
pub use rtc_mesh_core::replica::{ReplicatorOptions, StartError};
use rtc_mesh_core::{
    Codec, Framing, LinkId, Object, Replica, ReplicaEvent, Store, StoreConfig, StoreError, Value,
};

/// Reads this machine's randomness and wall clock once, for a new member or store.
pub fn entropy() -> Entropy {
    let start = Instant::now();
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
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

/// A store replicated over TCP links, driven by a smol task. See the crate docs.
pub struct Replicator {
    tx: Sender<Input>,
    driver: std::sync::Mutex<Option<Task<()>>>,
    accept: std::sync::Mutex<Vec<Task<()>>>,
    id: String,
}

impl Replicator {
    /// Starts the driver task. Returns the handle and the event stream (a `Stream`).
    pub fn start(options: ReplicatorOptions) -> Result<(Self, Receiver<ReplicaEvent>), StartError> {
        let entropy = entropy();
        let mut config = StoreConfig::new(options.id.clone(), entropy.epoch_ms, entropy.start);
        config.limits = options.limits.clone();
        config.hash_seed = entropy.seed;
        let store = Store::new(config)?;
        let (tx, rx) = channel::unbounded();
        let (etx, events) = channel::unbounded();
        let driver = Driver {
            replica: Replica::new(store),
            codec: options.codec,
            links: BTreeMap::new(),
            tx: tx.clone(),
            events: etx,
        };
        let driver = smol::spawn(driver.run(rx));
        let r = Replicator {
            tx,
            driver: std::sync::Mutex::new(Some(driver)),
            accept: std::sync::Mutex::new(Vec::new()),
            id: options.id,
        };
        Ok((r, events))
    }

    /// The store's source id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Accepts TCP links on `addr` (port 0 picks one); returns the bound address.
    pub async fn listen(&self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let tx = self.tx.clone();
        let task = smol::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((s, _)) => {
                        if tx.send(Input::Conn(s)).await.is_err() {
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
        self.tx
            .send(Input::Conn(s))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "replicator stopped"))
    }

    async fn call<T>(&self, make: impl FnOnce(Sender<T>) -> Input) -> Option<T> {
        let (tx, rx) = channel::bounded(1);
        self.tx.send(make(tx)).await.ok()?;
        rx.recv().await.ok()
    }

    /// Sets `key` to `value` (`null` deletes). After the replicator has stopped, nothing
    /// is written and the answer is [`MemberError::Closed`].
    pub async fn set(&self, key: &str, value: &Value) -> Result<(), MemberError> {
        match self
            .call(|r| Input::Set(key.to_owned(), value.clone(), r))
            .await
        {
            Some(written) => written.map_err(MemberError::Store),
            None => Err(MemberError::Closed),
        }
    }

    /// Deletes `key` (as [`set`](Self::set) to `null`).
    pub async fn delete(&self, key: &str) -> Result<(), MemberError> {
        self.set(key, &Value::Null).await
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str) -> Option<Value> {
        self.call(|r| Input::Get(key.to_owned(), r)).await.flatten()
    }

    /// Every live key and value.
    pub async fn dump(&self) -> Object {
        self.call(Input::Dump).await.unwrap_or_default()
    }

    /// Flushes every link (waiting at most `flush_timeout`), closes them and stops.
    /// Later calls find it closed: writes fail with [`MemberError::Closed`], reads find
    /// nothing. Closing again does nothing.
    pub async fn close(&self, flush_timeout: Duration) {
        let accept = self.accept.lock().map(|mut a| std::mem::take(&mut *a));
        for t in accept.unwrap_or_default() {
            t.cancel().await;
        }
        let _ = self.call(|r| Input::Close(flush_timeout, r)).await;
        let driver = self.driver.lock().map(|mut d| d.take());
        if let Ok(Some(d)) = driver {
            d.await;
        }
    }
}

struct LinkIo {
    stream: TcpStream,
    writer: Sender<Vec<u8>>,
    tasks: [Task<()>; 2],
}

struct Driver {
    replica: Replica,
    codec: Codec,
    links: BTreeMap<LinkId, LinkIo>,
    tx: Sender<Input>,
    events: Sender<ReplicaEvent>,
}

impl Driver {
    async fn run(mut self, rx: Receiver<Input>) {
        loop {
            let timeout = self.drain();
            let input = match timeout {
                Some(t) => {
                    let timer = async {
                        smol::Timer::at(t).await;
                        None
                    };
                    match smol::future::or(async { Some(rx.recv().await) }, timer).await {
                        Some(Ok(i)) => i,
                        Some(Err(_)) => return,
                        None => continue,
                    }
                }
                None => match rx.recv().await {
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
                    let _ = reply.send(r).await;
                }
                Input::Get(k, reply) => {
                    let _ = reply.send(self.replica.store().get(&k)).await;
                }
                Input::Dump(reply) => {
                    let _ = reply.send(self.replica.store().dump()).await;
                }
                Input::Close(timeout, reply) => {
                    self.drain();
                    self.flush_and_close(timeout).await;
                    let _ = reply.send(()).await;
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
                    let _ = io.writer.try_send(bytes);
                }
            },
            |link| {
                if let Some(io) = links.get(&link) {
                    let _ = io.stream.shutdown(Shutdown::Both);
                }
            },
            |e| {
                let _ = events.try_send(e);
            },
        )
    }

    fn add_link(&mut self, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let link = self.replica.open_link(self.codec, Framing::Stream);
        let tx = self.tx.clone();
        let mut rd = stream.clone();
        let reader = smol::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(Input::End(link)).await;
                        return;
                    }
                    Ok(n) => {
                        if tx
                            .send(Input::Bytes(link, buf[..n].to_vec()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        });
        let (wtx, wrx) = channel::unbounded::<Vec<u8>>();
        let mut wr = stream.clone();
        let writer = smol::spawn(async move {
            while let Ok(bytes) = wrx.recv().await {
                if wr.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            let _ = wr.flush().await;
            let _ = wr.shutdown(Shutdown::Write);
        });
        self.links.insert(
            link,
            LinkIo {
                stream,
                writer: wtx,
                tasks: [reader, writer],
            },
        );
    }

    async fn flush_and_close(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let links = std::mem::take(&mut self.links);
        for (_, io) in links {
            // Closing the channel lets the writer finish what it holds, then stop.
            io.writer.close();
            let [reader, writer] = io.tasks;
            let timer = async {
                smol::Timer::at(deadline).await;
            };
            smol::future::or(writer, timer).await;
            let _ = io.stream.shutdown(Shutdown::Both);
            reader.cancel().await;
        }
    }
}
