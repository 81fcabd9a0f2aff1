//! Joining a room on smol: one UDP socket, one signalling connection, and core's
//! [`Node`] deciding everything.
//!
//! ```no_run
//! use rtc_mesh_smol::mesh::{join, JoinOptions};
//! use rtc_mesh_core::Value;
//!
//! smol::block_on(async {
//!     let (member, events) = join(JoinOptions::new("lobby", "ws://127.0.0.1:3000/"))
//!         .await
//!         .unwrap();
//!     member.set("greeting", Value::from("hello")).await.unwrap();
//!     while let Ok(event) = events.recv().await {
//!         println!("{event:?}");
//!     }
//! });
//! ```

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use smol::Task;

use rtc_mesh_core::node::{Node, NodeEvent, NodeOutput};
use rtc_mesh_core::{Object, StoreError, Value};

use crate::signal::{SignalEvent, Signaller};

pub use rtc_mesh_std::mesh::{JoinError, JoinOptions, PeerInfo};

enum Cmd {
    Set(String, Value, Sender<Result<(), StoreError>>),
    SetMany(Vec<(String, Value)>, Sender<Result<(), StoreError>>),
    Get(String, Sender<Option<Value>>),
    Dump(Sender<Object>),
    Peers(Sender<Vec<PeerInfo>>),
    Close(Sender<()>),
}

/// Our membership of a room. Dropping it stops the driver without a goodbye; call
/// [`Member::close`] to leave politely.
pub struct Member {
    id: String,
    local: SocketAddr,
    cmds: Sender<Cmd>,
    _task: Task<()>,
}

/// Joins a room: binds the UDP socket, connects to the switchboard and announces.
/// Events (peers joining and leaving, updates, syncs) come on the returned channel.
pub async fn join(options: JoinOptions) -> Result<(Member, Receiver<NodeEvent>), JoinError> {
    let udp =
        Async::<UdpSocket>::bind(options.bind).map_err(|e| JoinError::Bind(options.bind, e))?;
    let local = udp
        .get_ref()
        .local_addr()
        .map_err(|e| JoinError::Bind(options.bind, e))?;
    let (node, id) = rtc_mesh_std::mesh::node_for(&options, local)?;
    let signaller = Signaller::connect(&options.signal_url, Default::default())?;
    let (cmds, cmd_rx) = channel::unbounded();
    let (ev_tx, events) = channel::unbounded();
    let task = smol::spawn(drive(node, udp, local, signaller, cmd_rx, ev_tx));
    Ok((
        Member {
            id,
            local,
            cmds,
            _task: task,
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

    async fn ask<T>(&self, make: impl FnOnce(Sender<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = channel::bounded(1);
        self.cmds.send(make(tx)).await.ok()?;
        rx.recv().await.ok()
    }

    /// Sets `key` (`null` deletes).
    pub async fn set(&self, key: &str, value: Value) -> Result<(), StoreError> {
        self.ask(|r| Cmd::Set(key.to_owned(), value, r))
            .await
            .unwrap_or(Ok(()))
    }

    /// Sets many keys in one step (much faster than one `set` each: the writes share
    /// frames on every link). Stops at the first refused write and returns its error.
    pub async fn set_many(&self, entries: Vec<(String, Value)>) -> Result<(), StoreError> {
        self.ask(|r| Cmd::SetMany(entries, r))
            .await
            .unwrap_or(Ok(()))
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.set(key, Value::Null).await
    }

    /// The value of `key`.
    pub async fn get(&self, key: &str) -> Option<Value> {
        self.ask(|r| Cmd::Get(key.to_owned(), r)).await.flatten()
    }

    /// Every live key and value.
    pub async fn dump(&self) -> Object {
        self.ask(Cmd::Dump).await.unwrap_or_default()
    }

    /// Present peers.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        self.ask(Cmd::Peers).await.unwrap_or_default()
    }

    /// Leaves the room (says goodbye on every link and to the switchboard).
    pub async fn close(self) {
        self.ask(Cmd::Close).await;
    }
}

enum Wake {
    Cmd(Option<Cmd>),
    Signal(Option<SignalEvent>),
    Datagram(io::Result<(usize, SocketAddr)>),
    Timer,
}

async fn drive(
    mut node: Node,
    udp: Async<UdpSocket>,
    local: SocketAddr,
    signaller: Signaller,
    cmds: Receiver<Cmd>,
    events: Sender<NodeEvent>,
) {
    let mut buf = vec![0u8; 2048];
    node.start(Instant::now());
    let mut closing: Option<(Sender<()>, Instant)> = None;
    loop {
        // Drain the node.
        let deadline = loop {
            match node.poll_output() {
                // Announces are sent again after a reconnect: the client knows them.
                NodeOutput::Signal(t) => signaller.send_text(t),
                NodeOutput::Transmit {
                    destination, data, ..
                } => {
                    let _ = udp.send_to(&data, destination).await;
                }
                NodeOutput::Event(e) => {
                    let _ = events.try_send(e);
                }
                NodeOutput::Timeout(t) => break t,
            }
        };
        if let Some((reply, until)) = &closing {
            // Give the goodbyes a moment to leave, then stop.
            if Instant::now() >= *until {
                let _ = reply.try_send(());
                signaller.close().await;
                return;
            }
        }
        let deadline = match &closing {
            Some((_, until)) => deadline.min(*until),
            None => deadline,
        };
        let wake = async { Wake::Cmd(cmds.recv().await.ok()) }
            .or(async { Wake::Signal(signaller.recv().await) })
            .or(async { Wake::Datagram(udp.recv_from(&mut buf).await) })
            .or(async {
                Timer::at(deadline).await;
                Wake::Timer
            })
            .await;
        let now = Instant::now();
        match wake {
            Wake::Cmd(None) => return,
            Wake::Cmd(Some(c)) => match c {
                Cmd::Set(k, v, r) => {
                    let res = node.set(now, &k, &v).map(|_| ());
                    let _ = r.try_send(res);
                }
                Cmd::SetMany(entries, r) => {
                    let res = entries
                        .iter()
                        .try_for_each(|(k, v)| node.set(now, k, v).map(|_| ()));
                    let _ = r.try_send(res);
                }
                Cmd::Get(k, r) => {
                    let _ = r.try_send(node.store().get(&k));
                }
                Cmd::Dump(r) => {
                    let _ = r.try_send(node.store().dump());
                }
                Cmd::Peers(r) => {
                    let _ = r.try_send(rtc_mesh_std::mesh::peers_of(&node));
                }
                Cmd::Close(r) => {
                    node.close(now);
                    closing = Some((r, now + Duration::from_millis(200)));
                }
            },
            Wake::Signal(Some(SignalEvent::Message(m))) => node.handle_signal(now, &m.encode()),
            Wake::Signal(Some(_)) => {}
            Wake::Signal(None) => return,
            Wake::Datagram(Ok((n, from))) => node.handle_datagram(now, from, local, &buf[..n]),
            Wake::Datagram(Err(_)) => {}
            Wake::Timer => node.handle_timeout(now),
        }
    }
}
