//! `rtc-mesh join`: a member of a room over WebRTC, on either runtime.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use rtc_mesh_core::mesh::LinkState;
use rtc_mesh_core::url::WsUrl;
use rtc_mesh_core::{Codec, Limits, Value};
use rtc_mesh_smol::mesh::{Answer, Request};

use crate::control::{parse_command, Command, Report};
use crate::lines::{forward_events, forward_stdin, Msg, Out};
use crate::{
    bind_error, connect_error, fail, member_error_code, parse_addr, parse_codecs, parse_runtime,
    store_error_code, Runtime, Usage,
};

pub(crate) const USAGE: &str = "\
rtc-mesh join: join a room and keep its shared store over WebRTC data channels

Usage:
  rtc-mesh join ROOM [options]

Options:
  --signal URL         signalling server (default ws://127.0.0.1:3000/; when nothing
                       listens there, an embedded switchboard is started on it)
  --id ID              peer id (default: 16 random hex characters)
  --codec auto|json|postcard   auto (default): postcard with our peers, json otherwise
  --bind ADDR          UDP address (default 127.0.0.1:0)
  --stun HOST:PORT     a STUN server for our server-reflexive address (repeatable)
  --listen ADDR        also accept TCP replication links there (scuttlebutt's JSON
                       lines, as `replicate --listen`; postcard with --codec postcard);
                       `ready` reports the address as `tcp`
  --runtime smol|std   driver runtime (default smol)
  --json               write events as JSON lines

Reads one JSON command per line on stdin:
  {\"op\":\"set\",\"key\":K,\"value\":V}   {\"op\":\"delete\",\"key\":K}   {\"op\":\"get\",\"key\":K}
  {\"op\":\"dump\"}   {\"op\":\"peers\"}   {\"op\":\"connect\",\"addr\":\"HOST:PORT\"}
  {\"op\":\"close\"}   (end of input = close)
Events: ready, peer_join, peer_leave, update, synced, synced_all, value, dump, peers,
error, closed.
";

pub(crate) fn run(mut args: lexopt::Parser) -> Result<ExitCode, Usage> {
    use lexopt::prelude::*;
    let mut room = None;
    let mut signal = None;
    let mut id = None;
    let mut codecs = vec![Codec::Postcard, Codec::Json];
    let mut bind: SocketAddr = "127.0.0.1:0".parse().expect("valid default");
    let mut json = false;
    let mut runtime = Runtime::Smol;
    let mut stun = Vec::new();
    let mut listen = None;
    while let Some(arg) = args.next()? {
        match arg {
            Value(v) if room.is_none() => room = Some(v.string()?),
            Long("signal") => signal = Some(args.value()?.string()?),
            Long("id") => id = Some(args.value()?.string()?),
            Long("codec") => codecs = parse_codecs(&args.value()?.string()?)?,
            Long("stun") => stun.push(args.value()?.string()?),
            Long("bind") => bind = parse_addr(&args.value()?.string()?)?,
            Long("listen") => listen = Some(parse_addr(&args.value()?.string()?)?),
            Long("json") => json = true,
            Long("runtime") => runtime = parse_runtime(&args.value()?.string()?)?,
            Long("help") | Short('h') => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let Some(room) = room else {
        return Err(Usage("join needs a ROOM".into()));
    };
    if let Some(id) = &id {
        if !rtc_mesh_core::signal::valid_peer_id(id) {
            return Err(Usage(format!(
                "invalid id {id:?}: 1-64 characters of A-Z a-z 0-9 . _ ~ -"
            )));
        }
    }
    // TCP replication links speak scuttlebutt's JSON lines unless postcard is asked for.
    let stream_codec = if codecs == [Codec::Postcard] {
        Codec::Postcard
    } else {
        Codec::Json
    };
    let out = Out { json };
    let default_url = signal.is_none();
    let url = signal.unwrap_or_else(|| "ws://127.0.0.1:3000/".into());
    let addr =
        match WsUrl::parse(&url).and_then(|u| u.resolve(|hp| Ok(hp.to_socket_addrs()?.next()))) {
            Ok(a) => a,
            Err(e) => return Err(Usage(e.to_string())),
        };
    // A given server must answer now; once joined, the client reconnects through
    // outages by itself.
    if !default_url {
        if let Err(e) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            return Ok(fail(format!(
                "cannot reach the signalling server {url} ({addr}): {e}"
            )));
        }
    }
    // Without --signal: start a switchboard on the default address when none runs.
    let embedded = if default_url && std::net::TcpStream::connect(addr).is_err() {
        match smol::block_on(rtc_mesh_smol::switchboard::Server::bind(
            addr,
            Default::default(),
        )) {
            Ok(s) => {
                // Serve it on smol's global executor while we run.
                Some(s)
            }
            Err(e) => return Ok(fail(bind_error(addr, e))),
        }
    } else {
        None
    };
    let (tx, rx) = mpsc::channel::<Msg<rtc_mesh_core::node::NodeEvent>>();
    let mut opts = rtc_mesh_smol::mesh::JoinOptions::new(room, url);
    opts.id = id;
    opts.codecs = codecs;
    opts.bind = bind;
    opts.stun_servers = stun;
    let member = match runtime {
        Runtime::Smol => match smol::block_on(rtc_mesh_smol::mesh::join(opts)) {
            Ok((m, events)) => {
                forward_events(
                    std::iter::from_fn(move || smol::block_on(events.recv()).ok()),
                    tx.clone(),
                );
                JoinBackend::Smol(m)
            }
            Err(e) => return Ok(fail(e)),
        },
        Runtime::Std => match rtc_mesh_std::mesh::join(opts) {
            Ok((m, events)) => {
                forward_events(events.into_iter(), tx.clone());
                JoinBackend::Std(m)
            }
            Err(e) => return Ok(fail(e)),
        },
    };
    let tcp = match listen {
        None => None,
        Some(a) => match std::net::TcpListener::bind(a) {
            Ok(l) => {
                let bound = l.local_addr().map(|b| b.to_string()).unwrap_or_default();
                let tx = tx.clone();
                std::thread::spawn(move || {
                    for conn in l.incoming().flatten() {
                        if tx.send(Msg::Accepted(conn)).is_err() {
                            return;
                        }
                    }
                });
                Some(bound)
            }
            Err(e) => {
                member.close();
                return Ok(fail(bind_error(a, e)));
            }
        },
    };
    let (mid, maddr) = member.identity();
    out.emit(&Report::Ready {
        id: &mid,
        addr: &maddr.to_string(),
        tcp: tcp.as_deref(),
    });
    forward_stdin(tx);
    let limits = Limits::default();
    for msg in rx {
        match msg {
            Msg::Eof => break,
            Msg::Line(l) if l.trim().is_empty() => {}
            Msg::Line(l) => match parse_command(&l, &limits) {
                Err(e) => out.emit(&Report::Error {
                    code: e.code(),
                    message: &e.to_string(),
                }),
                Ok(Command::Close) => break,
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
                Ok(cmd) => join_command(&out, &member, cmd),
            },
            Msg::Event(e) => report_node_event(&out, &e),
            Msg::Accepted(s) => {
                if let Err((code, message)) = member.attach(s, stream_codec) {
                    out.emit(&Report::Error {
                        code,
                        message: &message,
                    });
                }
            }
        }
    }
    member.close();
    if let Some(s) = embedded {
        smol::block_on(s.shutdown());
    }
    out.emit(&Report::Closed);
    Ok(ExitCode::SUCCESS)
}

/// Either runtime's membership, behind one blocking interface.
enum JoinBackend {
    Smol(rtc_mesh_smol::mesh::Member),
    Std(rtc_mesh_std::mesh::Member),
}

impl JoinBackend {
    fn identity(&self) -> (String, SocketAddr) {
        match self {
            JoinBackend::Smol(m) => (m.id().to_owned(), m.local_addr()),
            JoinBackend::Std(m) => (m.id().to_owned(), m.local_addr()),
        }
    }
    fn request(&self, r: Request) -> Option<Answer> {
        match self {
            JoinBackend::Smol(m) => smol::block_on(m.request(r)),
            JoinBackend::Std(m) => m.request(r),
        }
    }
    /// Attaches a TCP link to the member's store.
    fn attach(&self, s: std::net::TcpStream, codec: Codec) -> Result<(), (&'static str, String)> {
        let _ = s.set_nodelay(true);
        match self {
            JoinBackend::Smol(m) => {
                let s = smol::net::TcpStream::try_from(s)
                    .map_err(|e| ("connect_failed", e.to_string()))?;
                smol::block_on(m.attach(s, codec))
                    .map(|_| ())
                    .map_err(|e| (member_error_code(&e), e.to_string()))
            }
            JoinBackend::Std(m) => m
                .attach_tcp(s, codec)
                .map(|_| ())
                .map_err(|e| (member_error_code(&e), e.to_string())),
        }
    }
    fn close(self) {
        match self {
            JoinBackend::Smol(m) => smol::block_on(m.close()),
            JoinBackend::Std(m) => m.close(),
        }
    }
}

fn join_command(out: &Out, member: &JoinBackend, cmd: Command) {
    let mut asked = None;
    let request = match cmd {
        Command::Set { key, value } => Request::Set(vec![(key, value)]),
        Command::Delete { key } => Request::Set(vec![(key, Value::Null)]),
        Command::Get { key } => {
            asked = Some(key.clone());
            Request::Get(key)
        }
        Command::Dump => Request::Snapshot,
        Command::Peers => Request::Peers,
        _ => {
            out.emit(&Report::Error {
                code: "unsupported",
                message: "not available in join",
            });
            return;
        }
    };
    match (member.request(request), asked) {
        (Some(Answer::Written(Err(e))), _) => out.emit(&Report::Error {
            code: store_error_code(&e),
            message: &e.to_string(),
        }),
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
                        _ => "connecting",
                    }
                    .into(),
                    codec: p.link.codec.map(|c| c.name().to_owned()),
                    stats: p.link.stats,
                })
                .collect();
            out.emit(&Report::Peers(&list));
        }
        (None, _) => out.emit(&Report::Error {
            code: "closed",
            message: "the member has left the room",
        }),
        _ => {}
    }
}

fn report_node_event(out: &Out, e: &rtc_mesh_core::node::NodeEvent) {
    use rtc_mesh_core::mesh::MeshEvent;
    use rtc_mesh_core::node::NodeEvent;
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
        NodeEvent::Mesh(MeshEvent::SyncedAll { peers }) => {
            let peers: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
            out.emit(&Report::SyncedAll { peers: &peers })
        }
        NodeEvent::Mesh(MeshEvent::StreamSynced { source, .. }) => {
            out.emit(&Report::Synced { peer: source })
        }
        NodeEvent::Mesh(MeshEvent::StreamError { error, .. }) => out.emit(&Report::Error {
            code: "link_error",
            message: &error.to_string(),
        }),
        NodeEvent::LinkSlow { peer } => out.emit(&Report::Error {
            code: "link_slow",
            message: &format!("the link to {peer} could not keep up; reconnecting"),
        }),
        _ => {}
    }
}
