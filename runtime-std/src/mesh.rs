//! Joining a room with std threads: a UDP socket per local address, one WebSocket to the switchboard,
//! and core's [`Node`] deciding everything, on a driver thread. [`replicate`] makes a
//! member without a room: the same driver with neither, whose store syncs over
//! attached streams only.
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

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use rtc_mesh_core::member::{
    answer, Answer, IceServer, JoinError, JoinOptions, MemberError, PeerInfo, ReplicatorOptions,
    Request, StartError,
};
use rtc_mesh_core::member::{socket_for, use_offered};

/// How long a closing member waits for its attached streams to take what was written
/// to them (a slow or stuck socket does not hold the close up longer).
pub const STREAM_FLUSH: Duration = Duration::from_secs(5);
use rtc_mesh_core::node::{Node, NodeConfig, NodeEvent, NodeOutput};
use rtc_mesh_core::{Codec, LinkId};

use crate::signal::{Forward, Signalling, WsChange, WsEvent};

/// Looks `HOST:PORT` up with std (the first address).
pub(crate) fn resolve(host_port: &str) -> io::Result<Option<SocketAddr>> {
    Ok(host_port.to_socket_addrs()?.next())
}

enum Input {
    Request(Request, Sender<Answer>),
    /// A datagram: its bytes, its sender and the local address it came to.
    Datagram(Vec<u8>, SocketAddr, SocketAddr),
    /// From the signalling connection of a generation.
    Ws(u64, WsEvent),
    /// Attach a stream: its writer's queue; answered with its link and a token its
    /// writer holds until it is done (a closing driver waits for the tokens).
    Attach(Codec, Sender<Vec<u8>>, Sender<Option<(LinkId, Sender<()>)>>),
    /// Bytes from an attached stream, or its end (`None`).
    StreamIn(LinkId, Option<Vec<u8>>),
    /// The handle was dropped: stop now (the driver may be waiting for a far timeout).
    Stop,
    /// The log's sync thread finished a sync (or failed): the driver's flush learns
    /// which ([`crate::storage::Storage::synced`]).
    Synced,
}

/// Our membership of a room, driven by a thread. [`Member::close`] leaves politely;
/// dropping it stops the thread without a goodbye.
pub struct Member {
    id: String,
    locals: Vec<SocketAddr>,
    tx: Sender<Input>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    failure: Option<crate::storage::Failure>,
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
/// connects to the switchboard and announces.
pub fn join(options: JoinOptions) -> Result<(Member, Receiver<NodeEvent>), JoinError> {
    let sockets = options.bind_all(&interface_ips(), |a| {
        let u = UdpSocket::bind(a)?;
        let local = u.local_addr()?;
        Ok((u, local))
    })?;
    let stun = options.resolve_stun(resolve)?;
    let turn = options.resolve_turn(resolve)?;
    let locals: Vec<SocketAddr> = sockets.iter().map(|s| s.1).collect();
    let data = |e: crate::storage::StorageError| JoinError::Data(Box::new(e));
    let mut opening =
        crate::storage::open_data(options.data.as_ref(), &options.limits).map_err(data)?;
    let (node, id) =
        options.node_with_log(locals, stun, turn, crate::entropy(), opening.as_mut())?;
    let storage = crate::storage::begin_data(opening, node.store().id()).map_err(data)?;
    let (tx, rx) = mpsc::channel();
    let stx = tx.clone();
    let forward: Forward = Arc::new(move |g, e| stx.send(Input::Ws(g, e)).is_ok());
    let signalling = Signalling::new(&options.connect_url(), forward)?;
    let stop = Arc::new(AtomicBool::new(false));
    // The readers: datagrams into the driver's queue, one thread per socket.
    for (udp, local) in &sockets {
        widen_receive_buffer(udp);
        let bind_error = |e| JoinError::Bind(*local, e);
        let reader = udp.try_clone().map_err(bind_error)?;
        let _ = reader.set_read_timeout(Some(Duration::from_millis(200)));
        let (rtx, rstop, local) = (tx.clone(), stop.clone(), *local);
        thread::Builder::new()
            .name("mesh-udp".into())
            .spawn(move || {
                let mut buf = vec![0u8; 2048];
                while !rstop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = reader.recv_from(&mut buf) {
                        let d = buf[..n].to_vec();
                        if rtx.send(Input::Datagram(d, from, local)).is_err() {
                            return;
                        }
                    }
                }
            })
            .map_err(bind_error)?;
    }
    let first = sockets[0].1;
    spawn((node, storage), id, sockets, signalling, tx, rx, stop)
        .map_err(|e| JoinError::Bind(first, e))
}

/// A member without a room: no switchboard, no UDP socket, no peers; a store that
/// syncs over the streams [attached](Member::attach) to it (TCP links speaking
/// `options.codec`), exactly as a room member syncs its attached streams. Its
/// [`id`](Member::id) is the store's source id; its `local_addr` is unspecified.
/// `rtc-mesh replicate` is one.
pub fn replicate(options: &ReplicatorOptions) -> Result<(Member, Receiver<NodeEvent>), StartError> {
    let data = |e: crate::storage::StorageError| StartError::Data(Box::new(e));
    let mut opening =
        crate::storage::open_data(options.data.as_ref(), &options.limits).map_err(data)?;
    let node = options.node_with_log(crate::entropy(), opening.as_mut())?;
    let storage = crate::storage::begin_data(opening, node.store().id()).map_err(data)?;
    let (tx, rx) = mpsc::channel();
    let stx = tx.clone();
    let ws = Signalling::none(Arc::new(move |g, e| stx.send(Input::Ws(g, e)).is_ok()));
    let stop = Arc::new(AtomicBool::new(false));
    Ok(spawn(
        (node, storage),
        options.id.clone(),
        Vec::new(),
        ws,
        tx,
        rx,
        stop,
    )?)
}

/// Starts the driver thread for `node` (with its data directory's log, if durable).
fn spawn(
    (node, mut storage): (Node, Option<crate::storage::Storage>),
    id: String,
    udp: Vec<(UdpSocket, SocketAddr)>,
    ws: Signalling,
    tx: Sender<Input>,
    rx: Receiver<Input>,
    stop: Arc<AtomicBool>,
) -> io::Result<(Member, Receiver<NodeEvent>)> {
    let locals = udp.iter().map(|u| u.1).collect();
    let (ev_tx, events) = mpsc::channel();
    let dstop = stop.clone();
    if let Some(st) = storage.as_mut() {
        // At `power` the syncs run beside the driver, which goes on taking inputs.
        let wake = tx.clone();
        st.sync_in_background(move || {
            let _ = wake.send(Input::Synced);
        })
        .map_err(io::Error::other)?;
    }
    let failure = storage.as_ref().map(|s| s.failure());
    let thread = thread::Builder::new()
        .name("mesh".into())
        .spawn(move || drive(node, udp, ws, rx, ev_tx, dstop, storage))?;
    Ok((
        Member {
            id,
            locals,
            tx,
            stop,
            thread: Some(thread),
            failure,
        },
        events,
    ))
}

impl Member {
    /// A durable member that stopped on a failed write or sync of its directory: the
    /// error (it is never retried; nothing after the failed write was acknowledged).
    pub fn failure(&self) -> Option<String> {
        self.failure.as_ref().and_then(|f| f.get())
    }

    /// Sends `request` to the driver and waits for its answer (`None` once the
    /// driver has stopped). The typed calls below are built on it.
    pub fn request(&self, request: Request) -> Option<Answer> {
        self.request_later(request)?.recv().ok()
    }

    /// Sends `request` without waiting for its answer, which comes on the receiver
    /// returned (`None`: the member has stopped). Requests are handled in the order
    /// sent, so a caller can keep several batches of writes in flight, each answered
    /// once it is durable, while the next is made.
    pub fn request_later(&self, request: Request) -> Option<Receiver<Answer>> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(Input::Request(request, tx)).ok()?;
        Some(rx)
    }

    rtc_mesh_core::__member_calls!(;);

    /// Attaches an ordered byte stream speaking `codec` (`Codec::Json` is scuttlebutt's
    /// JSON lines), given as its two halves (for a `TcpStream`:
    /// `attach(s.try_clone()?, s, codec)`): it syncs with our store like any link of
    /// the room, until either side ends it. A reader and a writer thread move its
    /// bytes. Bad bytes from it come as `MeshEvent::StreamError` events and change
    /// nothing.
    pub fn attach<R, W>(
        &self,
        mut reader: R,
        mut writer: W,
        codec: Codec,
    ) -> Result<LinkId, MemberError>
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        let (wtx, wrx) = mpsc::channel::<Vec<u8>>();
        let (tx, rx) = mpsc::channel();
        self.tx
            .send(Input::Attach(codec, wtx, tx))
            .map_err(|_| MemberError::Closed)?;
        let (link, token) = rx.recv().ok().flatten().ok_or(MemberError::Closed)?;
        // The writer ends (dropping its half) when the driver drops the queue.
        thread::Builder::new()
            .name("mesh-stream-write".into())
            .spawn(move || {
                while let Ok(bytes) = wrx.recv() {
                    if writer.write_all(&bytes).is_err() {
                        return;
                    }
                }
                let _ = writer.flush();
                drop(writer);
                drop(token);
            })
            .map_err(MemberError::Attach)?;
        let inputs = self.tx.clone();
        thread::Builder::new()
            .name("mesh-stream-read".into())
            .spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let got = match reader.read(&mut buf) {
                        Ok(0) | Err(_) => None,
                        Ok(n) => Some(buf[..n].to_vec()),
                    };
                    let end = got.is_none();
                    if inputs.send(Input::StreamIn(link, got)).is_err() || end {
                        return;
                    }
                }
            })
            .map_err(MemberError::Attach)?;
        Ok(link)
    }

    /// [`attach`](Self::attach) for a TCP socket: when the stream ends on our side (a
    /// fatal decode error, or the member closing), the socket is shut down, so that the
    /// remote sees the end and our reader thread stops.
    pub fn attach_tcp(&self, stream: TcpStream, codec: Codec) -> Result<LinkId, MemberError> {
        let reader = stream.try_clone().map_err(MemberError::Attach)?;
        self.attach(reader, ShutdownOnDrop(stream), codec)
    }

    /// Asks the driver to close and waits at most `wait` for it to finish.
    pub(crate) fn close_within(&self, wait: Duration) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Input::Request(Request::Close, tx)).is_ok() {
            let _ = rx.recv_timeout(wait);
        }
    }

    /// Leaves the room (goodbyes on every link and to the switchboard), closes the
    /// attached streams once they have taken what was written to them (at most
    /// [`STREAM_FLUSH`]), and waits for the driver to end.
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
        let _ = self.tx.send(Input::Stop);
    }
}

/// A TCP socket's writing side that shuts the socket down when dropped.
struct ShutdownOnDrop(TcpStream);

impl Write for ShutdownOnDrop {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        let _ = self.0.shutdown(Shutdown::Both);
    }
}

fn drive(
    mut node: Node,
    udp: Vec<(UdpSocket, SocketAddr)>,
    mut ws: Signalling,
    inputs: Receiver<Input>,
    events: Sender<NodeEvent>,
    stop: Arc<AtomicBool>,
    mut storage: Option<crate::storage::Storage>,
) {
    node.start(Instant::now());
    let mut closing: Option<Sender<Answer>> = None;
    let mut streams: BTreeMap<LinkId, Sender<Vec<u8>>> = BTreeMap::new();
    let (flush_tx, flush_rx) = mpsc::channel::<()>();
    // Answers that acknowledge writes, until those are durable.
    let mut acks: crate::storage::Acks<(Sender<Answer>, Answer)> = Default::default();
    loop {
        // A durable member: what the store changed is written (at `power` synced by
        // the sync thread, while this loop goes on), and the node gives what depends
        // on it only once it is durable: a write reaches no peer, and is not
        // acknowledged (`acks`), before. A failed write or sync ends the member: it is
        // never retried. While a snapshot is under way the loop takes a piece of it
        // per turn, and turns again without waiting.
        let mut snapshotting = false;
        if let Some(st) = storage.as_mut() {
            match crate::storage::flush(&mut node, st) {
                Ok(more) => snapshotting = more,
                Err(e) => {
                    eprintln!(
                        "rtc-mesh: {e}: the member stops (nothing after this write was acknowledged)"
                    );
                    stop.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
        while let Some((reply, ans)) = acks.ready(&node) {
            let _ = reply.send(ans);
        }
        let deadline = loop {
            match node.poll_output() {
                NodeOutput::SignalConnect => ws.connect(),
                NodeOutput::Signal(t) => {
                    if !ws.send(t) {
                        node.handle_signal_disconnected(Instant::now());
                    }
                }
                // After the goodbye it follows.
                NodeOutput::SignalClose => ws.close(),
                NodeOutput::Transmit {
                    source,
                    destination,
                    data,
                } => {
                    if let Some((u, _)) = socket_for(&udp, source, destination) {
                        let _ = u.send_to(&data, destination);
                    }
                }
                NodeOutput::Event(e) => {
                    if let NodeEvent::IceOffered { servers } = &e {
                        // (A name lookup blocks the loop briefly; offers are usually
                        // addresses.)
                        let _ = use_offered(&mut node, Instant::now(), servers, resolve);
                    }
                    let _ = events.send(e);
                }
                NodeOutput::Stream { link, data } => {
                    if let Some(w) = streams.get(&link) {
                        let _ = w.send(data);
                    }
                }
                NodeOutput::CloseStream(link) => {
                    streams.remove(&link);
                }
                NodeOutput::Timeout(t) => break t,
            }
        };
        if node.is_finished() {
            // The goodbyes are out, the signalling connection closed. The streams'
            // writers finish what they hold, then drop their tokens.
            stop.store(true, Ordering::Relaxed);
            drop(streams);
            drop(flush_tx);
            // Nothing is ever sent: this ends when the last token is dropped.
            let _ = flush_rx.recv_timeout(STREAM_FLUSH);
            if let Some(reply) = closing {
                let _ = reply.send(Answer::Done);
            }
            return;
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let wait = if snapshotting {
            Duration::ZERO
        } else {
            deadline.saturating_duration_since(Instant::now())
        };
        let input = match inputs.recv_timeout(wait) {
            Ok(i) => Some(i),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let now = Instant::now();
        match input {
            // (Woken early for a snapshot's next piece: nothing is due yet.)
            None if now < deadline => {}
            None => node.handle_timeout(now),
            Some(Input::Datagram(d, from, local)) => node.handle_datagram(now, from, local, &d),
            Some(Input::Stop) => return,
            // (The flush at the top of the loop takes it.)
            Some(Input::Synced) => {}
            Some(Input::Ws(g, e)) => match ws.handle(g, e) {
                Some(WsChange::Up) => node.handle_signal_connected(now),
                Some(WsChange::Text(t)) => node.handle_signal(now, &t),
                Some(WsChange::Down) => node.handle_signal_disconnected(now),
                Some(WsChange::Refused(status)) => node.handle_signal_refused(now, &status),
                None => {}
            },
            Some(Input::Attach(codec, writer, reply)) => {
                let link = node.attach(now, codec);
                if let Some(l) = link {
                    streams.insert(l, writer);
                }
                let _ = reply.send(link.map(|l| (l, flush_tx.clone())));
            }
            Some(Input::StreamIn(link, Some(bytes))) => node.stream_data(now, link, &bytes),
            Some(Input::StreamIn(link, None)) => {
                streams.remove(&link);
                node.stream_end(now, link);
            }
            Some(Input::Request(req, reply)) => {
                let close = matches!(req, Request::Close);
                let ans = answer(&mut node, now, req);
                // The answer acknowledges the write: it goes once the write is
                // durable (`acks`).
                if let Some(st) = storage.as_mut() {
                    if let Err(e) = crate::storage::flush(&mut node, st) {
                        eprintln!(
                            "rtc-mesh: {e}: the member stops (this write was not acknowledged)"
                        );
                        stop.store(true, Ordering::Relaxed);
                        return;
                    }
                }
                if close {
                    closing = Some(reply);
                } else if let Some((reply, ans)) = acks.hold(&node, (reply, ans)) {
                    let _ = reply.send(ans);
                }
            }
        }
    }
}
