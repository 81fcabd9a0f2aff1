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
use std::time::Instant;

use async_io::{Async, Timer};
use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use smol::Task;

use rtc_mesh_core::node::{Node, NodeEvent, NodeOutput};

use crate::signal::{SignalEvent, Signaller};

pub use rtc_mesh_core::member::{
    answer, Answer, JoinError, JoinOptions, MemberError, PeerInfo, Request,
};

/// Our membership of a room. Dropping it stops the driver without a goodbye; call
/// [`Member::close`] to leave politely.
pub struct Member {
    id: String,
    local: SocketAddr,
    cmds: Sender<(Request, Sender<Answer>)>,
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
    let stun = options.resolve_stun(crate::signal::resolve)?;
    let (node, id) = options.node(local, stun, crate::entropy())?;
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
    /// Sends `request` to the driver and waits for its answer (`None` once the
    /// driver has stopped). The typed calls below are built on it.
    pub async fn request(&self, request: Request) -> Option<Answer> {
        let (tx, rx) = channel::bounded(1);
        self.cmds.send((request, tx)).await.ok()?;
        rx.recv().await.ok()
    }

    rtc_mesh_core::__member_calls!(async; .await);

    /// Leaves the room (says goodbye on every link and to the switchboard).
    pub async fn close(self) {
        self.request(Request::Close).await;
    }
}

enum Wake {
    Cmd(Option<(Request, Sender<Answer>)>),
    Signal(Option<SignalEvent>),
    Datagram(io::Result<(usize, SocketAddr)>),
    Timer,
}

async fn drive(
    mut node: Node,
    udp: Async<UdpSocket>,
    local: SocketAddr,
    signaller: Signaller,
    cmds: Receiver<(Request, Sender<Answer>)>,
    events: Sender<NodeEvent>,
) {
    let mut buf = vec![0u8; 2048];
    node.start(Instant::now());
    let mut closing: Option<Sender<Answer>> = None;
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
                // This driver attaches no streams (yet), so none speak.
                NodeOutput::Stream { .. } | NodeOutput::CloseStream(_) => {}
                NodeOutput::Timeout(t) => break t,
            }
        };
        if node.is_finished() {
            // The goodbyes are out (the signaller sends what it holds before closing).
            signaller.close().await;
            if let Some(reply) = closing {
                let _ = reply.try_send(Answer::Done);
            }
            return;
        }
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
            Wake::Cmd(Some((req, reply))) => {
                let close = matches!(req, Request::Close);
                let ans = answer(&mut node, now, req);
                if close {
                    closing = Some(reply);
                } else {
                    let _ = reply.try_send(ans);
                }
            }
            Wake::Signal(Some(SignalEvent::Message(m))) => node.handle_message(now, m),
            Wake::Signal(Some(_)) => {}
            Wake::Signal(None) => return,
            Wake::Datagram(Ok((n, from))) => node.handle_datagram(now, from, local, &buf[..n]),
            Wake::Datagram(Err(_)) => {}
            Wake::Timer => node.handle_timeout(now),
        }
    }
}
