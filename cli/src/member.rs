//! What `join` and `replicate` share: a member of either runtime (with a room, or
//! without one), the line loop that drives it, and its TCP links.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};

use rtc_mesh_core::mesh::LinkState;
use rtc_mesh_core::node::NodeEvent;
use rtc_mesh_core::{Codec, Limits, Value};
use rtc_mesh_smol::mesh::{Answer, Request};

use crate::control::{parse_command, Command, CommandError, Report};
use crate::lines::{forward_stdin, Msg, Out};
use crate::{connect_error, member_error_code, parse_addr, store_error_code, Usage};

/// Accepts TCP links on `addr` into the main loop (as [`Msg::Accepted`]); the bound
/// address.
pub(crate) fn listen_tcp(addr: SocketAddr, tx: Sender<Msg<NodeEvent>>) -> io::Result<SocketAddr> {
    let l = std::net::TcpListener::bind(addr)?;
    let bound = l.local_addr()?;
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            if tx.send(Msg::Accepted(conn)).is_err() {
                return;
            }
        }
    });
    Ok(bound)
}

/// The main loop: commands from stdin, events of the member, accepted TCP links
/// (attached speaking `stream_codec`), until `close` or the end of input. A member
/// without a room (`in_room` false) has no `peers`. With `keep` (the identity file and
/// the room), a secured room's new key epoch is kept in the file.
pub(crate) fn serve(
    out: &Out,
    member: &Backend,
    tx: Sender<Msg<NodeEvent>>,
    rx: Receiver<Msg<NodeEvent>>,
    stream_codec: Codec,
    keep: Option<&(std::path::PathBuf, String)>,
    in_room: bool,
) {
    forward_stdin(tx);
    let limits = Limits::default();
    // What a batch of writes stopped at, to handle next.
    let mut pending: Option<Item> = None;
    // Batches of writes sent, their answers to come (once the writes are durable).
    let mut inflight = InFlight::default();
    loop {
        let item = match pending.take() {
            Some(i) => i,
            None => match rx.try_recv() {
                Ok(m) => Item::Msg(m),
                Err(TryRecvError::Empty) => {
                    // Nothing more queued: the writes sent are answered, and what was
                    // held goes out, before we wait.
                    inflight.drain(out);
                    out.release();
                    match rx.recv() {
                        Ok(m) => Item::Msg(m),
                        Err(_) => break,
                    }
                }
                Err(TryRecvError::Disconnected) => break,
            },
        };
        out.hold();
        let parsed = match item {
            Item::Parsed(p) => p,
            Item::Msg(Msg::Eof) => break,
            Item::Msg(Msg::Line(l)) if l.trim().is_empty() => continue,
            Item::Msg(Msg::Line(l)) => parse_command(&l, &limits),
            Item::Msg(Msg::Event(e)) => {
                if let (
                    Some((path, room)),
                    NodeEvent::Mesh(rtc_mesh_core::mesh::MeshEvent::Rekeyed { line, .. }),
                ) = (keep, &e)
                {
                    if let Err(message) = crate::invite::keep_rekey(path, room, line) {
                        out.emit(&Report::Error {
                            code: "identity_write",
                            message: &message,
                        });
                    }
                }
                report_event(out, &e);
                continue;
            }
            Item::Msg(Msg::Accepted(s)) => {
                if let Err((code, message)) = member.attach(s, stream_codec) {
                    out.emit(&Report::Error {
                        code,
                        message: &message,
                    });
                }
                continue;
            }
        };
        // Anything but a write waits for the writes before it to be answered: their
        // errors come first, and a `get` sees them.
        if !matches!(
            parsed,
            Ok(Command::Set { .. } | Command::Delete { .. } | Command::Close)
        ) {
            inflight.drain(out);
        }
        match parsed {
            Err(e) => out.emit(&Report::Error {
                code: e.code(),
                message: &e.to_string(),
            }),
            Ok(Command::Close) => break,
            Ok(Command::Set { key, value }) => {
                pending = write_batch(out, member, &rx, &limits, (key, value), &mut inflight);
            }
            Ok(Command::Delete { key }) => {
                pending = write_batch(out, member, &rx, &limits, (key, Value::Null), &mut inflight);
            }
            Ok(Command::Connect { addr }) => {
                let res = parse_addr(&addr)
                    .map_err(|Usage(m)| ("bad_address", m))
                    .and_then(|a| {
                        std::net::TcpStream::connect(a)
                            .map_err(|e| ("connect_failed", connect_error(a, e)))
                    })
                    .and_then(|s| member.attach(s, stream_codec));
                if let Err((code, message)) = res {
                    out.emit(&Report::Error {
                        code,
                        message: &message,
                    });
                }
            }
            Ok(Command::Peers) if !in_room => out.emit(&Report::Error {
                code: "unsupported",
                message: "peers is a command of rtc-mesh join",
            }),
            Ok(cmd) => command(out, member, cmd),
        }
    }
    inflight.drain(out);
    out.release();
}

/// At most this many batches of writes wait for their answers (each once its writes
/// are durable) while the next are read and sent: at `power` the member's next sync
/// then covers those that came meanwhile.
const IN_FLIGHT: usize = 4;

/// Batches of writes sent to the member, oldest first, their answers to come.
#[derive(Default)]
struct InFlight(std::collections::VecDeque<Option<Later>>);

impl InFlight {
    /// Sends a batch; waits for the oldest answers while too many are out.
    fn send(&mut self, out: &Out, member: &Backend, batch: Vec<(String, Value)>) {
        self.0
            .push_back(member.request_later(Request::SetEach(batch)));
        while self.0.len() > IN_FLIGHT {
            self.answer(out);
        }
    }

    /// Waits for every answer.
    fn drain(&mut self, out: &Out) {
        while !self.0.is_empty() {
            self.answer(out);
        }
    }

    /// Waits for the oldest answer and reports the writes it refused.
    fn answer(&mut self, out: &Out) {
        let Some(later) = self.0.pop_front() else {
            return;
        };
        match later.and_then(Later::wait) {
            Some(Answer::WrittenEach(results)) => {
                for e in results.into_iter().filter_map(Result::err) {
                    out.emit(&Report::Error {
                        code: store_error_code(&e),
                        message: &e.to_string(),
                    });
                }
            }
            _ => out.emit(&Report::Error {
                code: "closed",
                message: "the member has left the room",
            }),
        }
    }
}

/// An answer to come, from either runtime.
enum Later {
    Smol(smol::channel::Receiver<Answer>),
    Std(std::sync::mpsc::Receiver<Answer>),
}

impl Later {
    fn wait(self) -> Option<Answer> {
        match self {
            Later::Smol(rx) => smol::block_on(rx.recv()).ok(),
            Later::Std(rx) => rx.recv().ok(),
        }
    }
}

/// A message of the main loop, or a command already parsed from one.
enum Item {
    Msg(Msg<NodeEvent>),
    Parsed(Result<Command, CommandError>),
}

/// At most this many `set`/`delete` lines already waiting go to the member as one request
/// (the writes then share frames on every link). Each is still its own write: a refused
/// one is reported and the others are made.
const WRITE_BATCH: usize = 1024;

/// Writes `first` and the `set`/`delete` lines queued right behind it; returns what
/// stopped the batch, to handle next.
fn write_batch(
    out: &Out,
    member: &Backend,
    rx: &Receiver<Msg<NodeEvent>>,
    limits: &Limits,
    first: (String, Value),
    inflight: &mut InFlight,
) -> Option<Item> {
    let mut batch = vec![first];
    let mut stop = None;
    while batch.len() < WRITE_BATCH {
        match rx.try_recv() {
            Ok(Msg::Line(l)) if l.trim().is_empty() => {}
            Ok(Msg::Line(l)) => match parse_command(&l, limits) {
                Ok(Command::Set { key, value }) => batch.push((key, value)),
                Ok(Command::Delete { key }) => batch.push((key, Value::Null)),
                other => {
                    stop = Some(Item::Parsed(other));
                    break;
                }
            },
            Ok(m) => {
                stop = Some(Item::Msg(m));
                break;
            }
            Err(_) => break,
        }
    }
    inflight.send(out, member, batch);
    stop
}

/// Either runtime's member, behind one blocking interface.
pub(crate) enum Backend {
    Smol(rtc_mesh_smol::mesh::Member),
    Std(rtc_mesh_std::mesh::Member),
}

impl Backend {
    pub(crate) fn identity(&self) -> (String, Vec<SocketAddr>) {
        match self {
            Backend::Smol(m) => (m.id().to_owned(), m.local_addrs().to_vec()),
            Backend::Std(m) => (m.id().to_owned(), m.local_addrs().to_vec()),
        }
    }
    fn request(&self, r: Request) -> Option<Answer> {
        match self {
            Backend::Smol(m) => smol::block_on(m.request(r)),
            Backend::Std(m) => m.request(r),
        }
    }
    /// Sends `r`; its answer comes later.
    fn request_later(&self, r: Request) -> Option<Later> {
        match self {
            Backend::Smol(m) => m.request_later(r).map(Later::Smol),
            Backend::Std(m) => m.request_later(r).map(Later::Std),
        }
    }
    /// Attaches a TCP link to the member's store.
    pub(crate) fn attach(
        &self,
        s: std::net::TcpStream,
        codec: Codec,
    ) -> Result<(), (&'static str, String)> {
        let _ = s.set_nodelay(true);
        match self {
            Backend::Smol(m) => {
                let s = smol::net::TcpStream::try_from(s)
                    .map_err(|e| ("connect_failed", e.to_string()))?;
                smol::block_on(m.attach(s, codec))
                    .map(|_| ())
                    .map_err(|e| (member_error_code(&e), e.to_string()))
            }
            Backend::Std(m) => m
                .attach_tcp(s, codec)
                .map(|_| ())
                .map_err(|e| (member_error_code(&e), e.to_string())),
        }
    }
    /// Closes the member; the program's exit status: 1 if the member had stopped on a
    /// failed write or sync of its directory (the error is on stderr), else 0.
    pub(crate) fn close(self) -> ExitCode {
        let failed = match self {
            Backend::Smol(m) => {
                let failed = m.failure().is_some();
                smol::block_on(m.close());
                failed
            }
            Backend::Std(m) => {
                let failed = m.failure().is_some();
                m.close();
                failed
            }
        };
        if failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

fn command(out: &Out, member: &Backend, cmd: Command) {
    let mut asked = None;
    let request = match cmd {
        Command::Get { key } => {
            asked = Some(key.clone());
            Request::Get(key)
        }
        Command::Dump => Request::Snapshot,
        Command::Peers => Request::Peers,
        Command::Stats => Request::Stats,
        _ => {
            out.emit(&Report::Error {
                code: "unsupported",
                message: "not available here",
            });
            return;
        }
    };
    match (member.request(request), asked) {
        (Some(Answer::Value(value)), Some(key)) => out.emit(&Report::Value { key: &key, value }),
        (Some(Answer::Snapshot(o)), _) => out.emit(&Report::Dump(&o)),
        (Some(Answer::Peers(peers)), _) => {
            let list: Vec<crate::control::PeerReport> = peers
                .into_iter()
                .map(|p| crate::control::PeerReport {
                    peer: p.id.into(),
                    attributes: Value::Object(p.attributes),
                    state: match (p.link.state, p.link.synced) {
                        (LinkState::Open, true) => "synced",
                        (LinkState::Open, false) => "connected",
                        (LinkState::Failed, _) => "failed",
                        _ => "connecting",
                    }
                    .into(),
                    failures: p.link.failures,
                    retry_in: p
                        .link
                        .retry_at
                        .map(|t| t.saturating_duration_since(std::time::Instant::now())),
                    codec: p.link.codec.map(|c| c.name().to_owned()),
                    stats: p.link.stats,
                    path: p.path,
                })
                .collect();
            out.emit(&Report::Peers(&list));
        }
        (Some(Answer::Stats(st)), _) => out.emit(&Report::Stats(&st)),
        (None, _) => out.emit(&Report::Error {
            code: "closed",
            message: "the member has left the room",
        }),
        _ => {}
    }
}

fn report_event(out: &Out, e: &rtc_mesh_core::node::NodeEvent) {
    use rtc_mesh_core::mesh::MeshEvent;
    use rtc_mesh_core::node::NodeEvent;
    use rtc_mesh_core::turn::{TurnEvent, TurnFailure};
    match e {
        NodeEvent::Mesh(MeshEvent::Update(u)) => out.emit(&Report::Update(u)),
        NodeEvent::Mesh(MeshEvent::PeerJoined { peer, attributes }) => {
            out.emit(&Report::PeerJoin {
                peer,
                attributes: &Value::Object(attributes.clone()),
            })
        }
        NodeEvent::Mesh(MeshEvent::PeerLeft { peer, reason }) => out.emit(&Report::PeerLeave {
            peer,
            reason: reason.name(),
        }),
        NodeEvent::Mesh(MeshEvent::Synced { peer }) => out.emit(&Report::Synced { peer }),
        NodeEvent::Mesh(MeshEvent::Rekeyed { epoch, by, .. }) => {
            out.emit(&Report::Rekeyed { epoch: *epoch, by })
        }
        NodeEvent::Mesh(MeshEvent::SyncedAll { peers }) => {
            let peers: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
            out.emit(&Report::SyncedAll { peers: &peers })
        }
        NodeEvent::Mesh(MeshEvent::StreamsSynced { sources }) => {
            out.emit(&Report::SyncedAll { peers: sources })
        }
        NodeEvent::Mesh(MeshEvent::StreamSynced { source, .. }) => {
            out.emit(&Report::Synced { peer: source })
        }
        NodeEvent::Mesh(MeshEvent::StreamMisbehaved { reason, .. }) => out.emit(&Report::Error {
            code: "link_misbehaved",
            message: &format!("a link sent forged updates ({reason}): told why and closed"),
        }),
        NodeEvent::Mesh(MeshEvent::StreamError { error, .. }) => out.emit(&Report::Error {
            code: "link_error",
            message: &error.to_string(),
        }),
        NodeEvent::Turn(TurnEvent::Allocated { server, relayed }) => out.emit(&Report::Relay {
            server: &server.to_string(),
            relayed: &relayed.to_string(),
        }),
        NodeEvent::Turn(TurnEvent::Failed { server, failure }) => {
            let why = match failure {
                TurnFailure::Refused => {
                    "refused the allocation (check the username and credential)"
                }
                TurnFailure::Timeout => "did not answer",
                _ => "cannot be reached from any of our addresses",
            };
            out.emit(&Report::Error {
                code: &format!("turn_{}", failure.name()),
                message: &format!("TURN server {server} {why}; going on without it"),
            })
        }
        NodeEvent::IceOffered { servers } => out.emit(&Report::IceOffered {
            urls: servers
                .iter()
                .flat_map(|s| s.urls.iter().cloned())
                .collect(),
        }),
        NodeEvent::LinkFailed {
            peer,
            failures,
            retry_at,
        } => out.emit(&Report::LinkFailed {
            peer,
            failures: *failures,
            retry_in: retry_at.map(|t| t.saturating_duration_since(std::time::Instant::now())),
        }),
        NodeEvent::Mesh(MeshEvent::PeerMisbehaved { peer, reason }) => {
            out.emit(&Report::PeerMisbehaved {
                peer,
                reason,
                told: false,
            })
        }
        NodeEvent::Mesh(MeshEvent::RefusedByPeer { peer, reason }) => {
            out.emit(&Report::PeerMisbehaved {
                peer,
                reason,
                told: true,
            })
        }
        NodeEvent::Mesh(MeshEvent::Refused { reason }) => {
            let why = match reason.as_str() {
                "http_401" => "refused our connection: a valid --token is required",
                "http_429" => "refused our connection: too many from our address",
                "token_room" => "refused our announce: the token is for another room",
                "token_required" => "refused our announce: a token is required",
                "unproven" => "refused our announce: no proof that we hold our id's key",
                _ => "refused us",
            };
            out.emit(&Report::Error {
                code: &format!("refused_{reason}"),
                message: &format!("the switchboard {why}; retrying"),
            })
        }
        NodeEvent::LinkSlow { peer } => out.emit(&Report::Error {
            code: "link_slow",
            message: &format!("the link to {peer} could not keep up; reconnecting"),
        }),
        _ => {}
    }
}
