//! Joining a room on smol: a UDP socket per local address, one WebSocket to the switchboard, and
//! core's [`Node`] deciding everything. [`replicate`] makes a member without a room:
//! the same driver with neither, whose store syncs over attached streams only.
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

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use async_io::{Async, Timer};
use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use smol::Task;

use rtc_mesh_core::member::{socket_for, use_offered};
use rtc_mesh_core::node::{Node, NodeConfig, NodeEvent, NodeOutput};
use rtc_mesh_core::{Codec, LinkId};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::signal::{Signalling, WsEvent};

pub use rtc_mesh_core::member::{
    answer, Answer, IceServer, JoinError, JoinOptions, MemberError, PeerInfo, ReplicatorOptions,
    Request, StartError,
};

/// How long a closing member waits for its attached streams to take what was written
/// to them (a slow or stuck socket does not hold the close up longer).
pub const STREAM_FLUSH: Duration = Duration::from_secs(5);

/// Our membership of a room. Dropping it stops the driver without a goodbye; call
/// [`Member::close`] to leave politely.
pub struct Member {
    id: String,
    locals: Vec<SocketAddr>,
    cmds: Sender<Cmd>,
    _task: Task<()>,
    failure: Option<rtc_mesh_std::storage::Failure>,
}

/// What a member's handle (and its streams' readers) tell the driver.
enum Cmd {
    Request(Request, Sender<Answer>),
    /// Attach a stream: its writer's queue; answered with its link and a token its
    /// writer holds until it is done (a closing driver waits for the tokens).
    Attach(Codec, Sender<Vec<u8>>, Sender<Option<(LinkId, Sender<()>)>>),
    /// Bytes from an attached stream, or its end (`None`).
    StreamIn(LinkId, Option<Vec<u8>>),
}

/// Asks for [`NodeConfig::UDP_RECV_BUFFER`] on the node's socket, forced past
/// `net.core.rmem_max` where the process may. A kernel that grants less leaves the
/// default: the node works, browsers send to it more slowly.
fn widen_receive_buffer(udp: &UdpSocket) {
    use rustix::net::sockopt;
    let want = NodeConfig::UDP_RECV_BUFFER;
    let _ = sockopt::set_socket_recv_buffer_size(udp, want);
    #[cfg(target_os = "linux")]
    if sockopt::socket_recv_buffer_size(udp).is_ok_and(|got| got < want) {
        let _ = sockopt::set_socket_recv_buffer_size_force(udp, want);
    }
}

/// The machine's interface addresses, for [`JoinOptions::bind_addresses`] (none if the
/// system cannot list them: then only named addresses are bound).
fn interface_ips() -> Vec<std::net::IpAddr> {
    if_addrs::get_if_addrs()
        .map(|l| l.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default()
}

/// Joins a room: binds a UDP socket per local address (see [`JoinOptions::bind`]),
/// connects to the switchboard and announces. Events (peers joining and leaving,
/// updates, syncs) come on the returned channel.
pub async fn join(options: JoinOptions) -> Result<(Member, Receiver<NodeEvent>), JoinError> {
    let sockets = options.bind_all(&interface_ips(), |a| {
        let u = Async::<UdpSocket>::bind(a)?;
        widen_receive_buffer(u.get_ref());
        let local = u.get_ref().local_addr()?;
        Ok((u, local))
    })?;
    let stun = options.resolve_stun(crate::signal::resolve)?;
    let turn = options.resolve_turn(crate::signal::resolve)?;
    let locals = sockets.iter().map(|s| s.1).collect();
    let data = |e: rtc_mesh_std::storage::StorageError| JoinError::Data(Box::new(e));
    let mut opening =
        rtc_mesh_std::storage::open_data(options.data.as_ref(), &options.limits).map_err(data)?;
    let (node, id) =
        options.node_with_log(locals, stun, turn, crate::entropy(), opening.as_mut())?;
    let storage = rtc_mesh_std::storage::begin_data(opening, node.store().id()).map_err(data)?;
    let signalling = Signalling::new(&options.connect_url())?;
    Ok(spawn(node, id, sockets, signalling, storage))
}

/// Waits for a datagram on any of `udp` (taking turns, from `turn` on) and reads it
/// into `buf`: the local address it came to, and what `recv_from` said.
async fn recv_any(
    udp: &[(Async<UdpSocket>, SocketAddr)],
    turn: &mut usize,
    buf: &mut [u8],
) -> (SocketAddr, io::Result<(usize, SocketAddr)>) {
    if udp.is_empty() {
        return smol::future::pending().await;
    }
    loop {
        let i = std::future::poll_fn(|cx| {
            for k in 0..udp.len() {
                let i = (*turn + k) % udp.len();
                if udp[i].0.poll_readable(cx).is_ready() {
                    return std::task::Poll::Ready(i);
                }
            }
            std::task::Poll::Pending
        })
        .await;
        *turn = i + 1;
        match udp[i].0.get_ref().recv_from(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => return (udp[i].1, r),
        }
    }
}

/// A member without a room: no switchboard, no UDP socket, no peers; a store that
/// syncs over the streams [attached](Member::attach) to it (TCP links speaking
/// `options.codec`), exactly as a room member syncs its attached streams. Its
/// [`id`](Member::id) is the store's source id; its `local_addr` is unspecified.
/// `rtc-mesh replicate` is one.
pub fn replicate(options: &ReplicatorOptions) -> Result<(Member, Receiver<NodeEvent>), StartError> {
    let data = |e: rtc_mesh_std::storage::StorageError| StartError::Data(Box::new(e));
    let mut opening =
        rtc_mesh_std::storage::open_data(options.data.as_ref(), &options.limits).map_err(data)?;
    let node = options.node_with_log(crate::entropy(), opening.as_mut())?;
    let storage = rtc_mesh_std::storage::begin_data(opening, node.store().id()).map_err(data)?;
    Ok(spawn(
        node,
        options.id.clone(),
        Vec::new(),
        Signalling::none(),
        storage,
    ))
}

fn spawn(
    node: Node,
    id: String,
    udp: Vec<(Async<UdpSocket>, SocketAddr)>,
    ws: Signalling,
    storage: Option<rtc_mesh_std::storage::Storage>,
) -> (Member, Receiver<NodeEvent>) {
    let locals = udp.iter().map(|u| u.1).collect();
    let (cmds, cmd_rx) = channel::unbounded();
    let (ev_tx, events) = channel::unbounded();
    let failure = storage.as_ref().map(|s| s.failure());
    let task = smol::spawn(drive(node, udp, ws, cmd_rx, ev_tx, storage));
    (
        Member {
            id,
            locals,
            cmds,
            _task: task,
            failure,
        },
        events,
    )
}

impl Member {
    /// A durable member that stopped on a failed write or sync of its directory: the
    /// error (it is never retried; nothing after the failed write was acknowledged).
    pub fn failure(&self) -> Option<String> {
        self.failure.as_ref().and_then(|f| f.get())
    }

    /// Sends `request` to the driver and waits for its answer (`None` once the
    /// driver has stopped). The typed calls below are built on it.
    pub async fn request(&self, request: Request) -> Option<Answer> {
        self.request_later(request)?.recv().await.ok()
    }

    /// Sends `request` without waiting for its answer, which comes on the receiver
    /// returned (`None`: the member has stopped). Requests are handled in the order
    /// sent, so a caller can keep several batches of writes in flight, each answered
    /// once it is durable, while the next is made.
    pub fn request_later(&self, request: Request) -> Option<Receiver<Answer>> {
        let (tx, rx) = channel::bounded(1);
        self.cmds.try_send(Cmd::Request(request, tx)).ok()?;
        Some(rx)
    }

    /// Attaches an ordered byte stream (a TCP socket, anything `AsyncRead +
    /// AsyncWrite`) speaking `codec` (`Codec::Json` is scuttlebutt's JSON lines): it
    /// syncs with our store like any link of the room, until either side ends it. Bad
    /// bytes from it come as `MeshEvent::StreamError` events and change nothing.
    pub async fn attach<S>(&self, stream: S, codec: Codec) -> Result<LinkId, MemberError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut rd, mut wr) = smol::io::split(stream);
        let (wtx, wrx) = channel::unbounded::<Vec<u8>>();
        let (tx, rx) = channel::bounded(1);
        self.cmds
            .send(Cmd::Attach(codec, wtx, tx))
            .await
            .map_err(|_| MemberError::Closed)?;
        let (link, token) = rx.recv().await.ok().flatten().ok_or(MemberError::Closed)?;
        // The writer ends (and closes its half) when the driver drops the queue.
        smol::spawn(async move {
            while let Ok(bytes) = wrx.recv().await {
                if wr.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = wr.close().await;
            drop(token);
        })
        .detach();
        let cmds = self.cmds.clone();
        smol::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let got = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => None,
                    Ok(n) => Some(buf[..n].to_vec()),
                };
                let end = got.is_none();
                if cmds.send(Cmd::StreamIn(link, got)).await.is_err() || end {
                    return;
                }
            }
        })
        .detach();
        Ok(link)
    }

    rtc_mesh_core::__member_calls!(async; .await);

    /// Leaves the room (says goodbye on every link and to the switchboard), closes the
    /// attached streams once they have taken what was written to them (at most
    /// [`STREAM_FLUSH`]), and waits for the driver to end.
    pub async fn close(self) {
        self.request(Request::Close).await;
    }
}

enum Wake {
    Cmd(Option<Cmd>),
    Ws(WsEvent),
    Datagram(SocketAddr, io::Result<(usize, SocketAddr)>),
    Timer,
    /// The log's sync thread finished a sync (or failed).
    Synced,
}

/// No command is taken from here on (the driver stops). Closing the channel and
/// dropping what it holds answers every caller still waiting with `closed`: a queued
/// request's reply sender would otherwise outlive the driver (the member's own sender
/// keeps the channel, and the queue, alive) and its caller wait for ever.
fn refuse_commands(cmds: &Receiver<Cmd>) {
    cmds.close();
    while cmds.try_recv().is_ok() {}
}

async fn drive(
    mut node: Node,
    udp: Vec<(Async<UdpSocket>, SocketAddr)>,
    mut ws: Signalling,
    cmds: Receiver<Cmd>,
    events: Sender<NodeEvent>,
    mut storage: Option<rtc_mesh_std::storage::Storage>,
) {
    let mut streams: BTreeMap<LinkId, Sender<Vec<u8>>> = BTreeMap::new();
    let (flush_tx, flush_rx) = channel::unbounded::<()>();
    let mut buf = vec![0u8; 2048];
    let mut turn = 0;
    node.start(Instant::now());
    let mut closing: Option<Sender<Answer>> = None;
    // At `power` the syncs run on a thread of the storage's, which wakes this task
    // after each; answers that acknowledge writes wait in `acks` until those are
    // durable.
    let (synced_tx, synced_rx) = channel::unbounded::<()>();
    if let Some(st) = storage.as_mut() {
        if let Err(e) = st.sync_in_background(move || {
            let _ = synced_tx.try_send(());
        }) {
            eprintln!("rtc-mesh: {e}: the member stops");
            refuse_commands(&cmds);
            return;
        }
    }
    let mut acks: rtc_mesh_std::storage::Acks<(Sender<Answer>, Answer)> = Default::default();
    loop {
        // A durable member: what the store changed is written (at `power` synced by
        // the sync thread, while this task goes on), and the node gives what depends
        // on it only once it is durable: a write reaches no peer, and is not
        // acknowledged, before. A failed write or sync ends the member: it is never
        // retried. While a snapshot is under way the loop takes a piece of it per
        // turn, and turns again without waiting.
        let mut snapshotting = false;
        if let Some(st) = storage.as_mut() {
            match rtc_mesh_std::storage::flush(&mut node, st) {
                Ok(more) => snapshotting = more,
                Err(e) => {
                    eprintln!(
                        "rtc-mesh: {e}: the member stops (nothing after this write was acknowledged)"
                    );
                    refuse_commands(&cmds);
                    return;
                }
            }
        }
        while let Some((reply, ans)) = acks.ready(&node) {
            let _ = reply.try_send(ans);
        }
        // Drain the node.
        let deadline = loop {
            match node.poll_output() {
                NodeOutput::SignalConnect => ws.connect(),
                NodeOutput::Signal(t) => {
                    if !ws.send(t) {
                        node.handle_signal_disconnected(Instant::now());
                    }
                }
                // After the goodbye it follows.
                NodeOutput::SignalClose => ws.close().await,
                NodeOutput::Transmit {
                    source,
                    destination,
                    data,
                } => {
                    if let Some((u, _)) = socket_for(&udp, source, destination) {
                        let _ = u.send_to(&data, destination).await;
                    }
                }
                NodeOutput::Event(e) => {
                    if let NodeEvent::IceOffered { servers } = &e {
                        // (A name lookup blocks the loop briefly; offers are usually
                        // addresses.)
                        let _ =
                            use_offered(&mut node, Instant::now(), servers, crate::signal::resolve);
                    }
                    let _ = events.try_send(e);
                }
                NodeOutput::Stream { link, data } => {
                    if let Some(w) = streams.get(&link) {
                        let _ = w.try_send(data);
                    }
                }
                NodeOutput::CloseStream(link) => {
                    streams.remove(&link);
                }
                NodeOutput::Timeout(t) => break t,
            }
        };
        if node.is_finished() {
            refuse_commands(&cmds);
            // The goodbyes are out, the signalling connection closed. The streams'
            // writers finish what they hold, then drop their tokens.
            drop(streams);
            drop(flush_tx);
            async { while flush_rx.recv().await.is_ok() {} }
                .or(async {
                    Timer::after(STREAM_FLUSH).await;
                })
                .await;
            if let Some(reply) = closing {
                let _ = reply.try_send(Answer::Done);
            }
            return;
        }
        let wake = async { Wake::Cmd(cmds.recv().await.ok()) }
            .or(async { Wake::Ws(ws.recv().await) })
            .or(async {
                let (local, got) = recv_any(&udp, &mut turn, &mut buf).await;
                Wake::Datagram(local, got)
            })
            .or(async {
                // (Closed when nothing syncs in the background: never wakes then.)
                if synced_rx.recv().await.is_err() {
                    std::future::pending::<()>().await;
                }
                Wake::Synced
            })
            .or(async {
                Timer::at(if snapshotting {
                    Instant::now()
                } else {
                    deadline
                })
                .await;
                Wake::Timer
            })
            .await;
        let now = Instant::now();
        match wake {
            Wake::Cmd(None) => return,
            Wake::Cmd(Some(Cmd::Attach(codec, writer, reply))) => {
                let link = node.attach(now, codec);
                if let Some(l) = link {
                    streams.insert(l, writer);
                }
                let _ = reply.try_send(link.map(|l| (l, flush_tx.clone())));
            }
            Wake::Cmd(Some(Cmd::StreamIn(link, Some(bytes)))) => {
                node.stream_data(now, link, &bytes)
            }
            Wake::Cmd(Some(Cmd::StreamIn(link, None))) => {
                streams.remove(&link);
                node.stream_end(now, link);
            }
            Wake::Cmd(Some(Cmd::Request(req, reply))) => {
                let close = matches!(req, Request::Close);
                let ans = answer(&mut node, now, req);
                // The answer acknowledges the write: it goes once the write is
                // durable (`acks`).
                if let Some(st) = storage.as_mut() {
                    if let Err(e) = rtc_mesh_std::storage::flush(&mut node, st) {
                        eprintln!(
                            "rtc-mesh: {e}: the member stops (this write was not acknowledged)"
                        );
                        refuse_commands(&cmds);
                        return;
                    }
                }
                if close {
                    closing = Some(reply);
                } else if let Some((reply, ans)) = acks.hold(&node, (reply, ans)) {
                    let _ = reply.try_send(ans);
                }
            }
            Wake::Ws(WsEvent::Open) => node.handle_signal_connected(now),
            Wake::Ws(WsEvent::Text(t)) => node.handle_signal(now, &t),
            Wake::Ws(WsEvent::Closed) => node.handle_signal_disconnected(now),
            Wake::Ws(WsEvent::Refused(status)) => node.handle_signal_refused(now, &status),
            Wake::Datagram(local, Ok((n, from))) => {
                node.handle_datagram(now, from, local, &buf[..n])
            }
            Wake::Datagram(_, Err(_)) => {}
            // (Woken early for a snapshot's next piece: nothing is due yet.)
            Wake::Timer if now < deadline => {}
            Wake::Timer => node.handle_timeout(now),
            // (The flush at the top of the loop takes it.)
            Wake::Synced => {}
        }
    }
}
