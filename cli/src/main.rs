//! The `rtc-mesh` command-line program.

mod control;

use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rtc_mesh_core::url::WsUrl;

use crate::control::{parse_command, Command, Report};
use rtc_mesh_core::mesh::LinkState;
use rtc_mesh_core::{Codec, Limits, Object, ReplicaEvent, StoreError, Value};
use rtc_mesh_smol::mesh::{Answer, MemberError, Request};
use rtc_mesh_smol::ReplicatorOptions;

const USAGE: &str = "\
rtc-mesh: a key/value store kept in sync across peers (scuttlebutt protocol)

Usage:
  rtc-mesh demo [--peers N] [--keys K] [--codec auto|json|postcard]
  rtc-mesh replicate (--listen ADDR | --connect ADDR) [--codec json|postcard]
                     [--id ID] [--runtime smol|std] [--json]
  rtc-mesh serve [--listen ADDR] [--runtime smol|std] [--json]
  rtc-mesh join ROOM [--signal URL] [--id ID] [--codec auto|json|postcard]
                     [--bind ADDR] [--stun HOST:PORT] [--runtime smol|std] [--json]
  rtc-mesh help

Run `rtc-mesh <command> --help` for details.
";

const REPLICATE_USAGE: &str = "\
rtc-mesh replicate: replicate a store over TCP (scuttlebutt JSON lines or postcard)

Usage:
  rtc-mesh replicate (--listen ADDR | --connect ADDR) [options]

Options:
  --listen ADDR        accept links on ADDR (port 0 picks a free port)
  --connect ADDR       open a link to ADDR
  --codec json|postcard  wire codec (default json: any scuttlebutt 5.6 peer can connect)
  --id ID              source id (default: 16 random hex characters)
  --runtime smol|std   driver runtime (default smol)
  --json               write events as JSON lines

Reads one JSON command per line on stdin:
  {\"op\":\"set\",\"key\":K,\"value\":V}   {\"op\":\"delete\",\"key\":K}   {\"op\":\"get\",\"key\":K}
  {\"op\":\"dump\"}   {\"op\":\"connect\",\"addr\":\"HOST:PORT\"}   {\"op\":\"close\"}
  (end of input = close)
Events: ready, update, synced, synced_all, value, dump, error, closed.
";

const DEMO_USAGE: &str = "\
rtc-mesh demo: start a switchboard and several peers in this process, mesh them over
WebRTC data channels on 127.0.0.1 (real UDP), write on each, and show them converge
with timings and each link's figures.

Usage:
  rtc-mesh demo [--peers N] [--keys K] [--codec auto|json|postcard]

Options:
  --peers N            peers to start (default 3, 2..=32)
  --keys K             keys each peer writes (default 1000)
  --codec auto|json|postcard   wire codec (default auto: postcard)
";

const SERVE_USAGE: &str = "\
rtc-mesh serve: the signalling server (a switchboard speaking rtc-signaller 6.x over
WebSocket; rtc-switchboard 3.2 compatible, with leaves on disconnect and limits)

Usage:
  rtc-mesh serve [--listen ADDR] [--runtime smol|std] [--json]

Options:
  --listen ADDR        address to listen on (default 127.0.0.1:3000; port 0 picks one)
  --runtime smol|std   server runtime (default smol)
  --json               write the ready event as a JSON line

Clients connect to ws://ADDR/ (any path); GET http://ADDR/health returns the counters
as JSON. Runs until killed.
";

const JOIN_USAGE: &str = "\
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
  --runtime smol|std   driver runtime (default smol)
  --json               write events as JSON lines

Reads one JSON command per line on stdin:
  {\"op\":\"set\",\"key\":K,\"value\":V}   {\"op\":\"delete\",\"key\":K}   {\"op\":\"get\",\"key\":K}
  {\"op\":\"dump\"}   {\"op\":\"peers\"}   {\"op\":\"close\"}   (end of input = close)
Events: ready, peer_join, peer_leave, update, synced, synced_all, value, dump, peers,
error, closed.
";

/// A command-line error: message for stderr, exit code 2.
struct Usage(String);

impl From<lexopt::Error> for Usage {
    fn from(e: lexopt::Error) -> Self {
        Usage(e.to_string())
    }
}

fn main() -> ExitCode {
    let mut args = lexopt::Parser::from_env();
    let cmd = match args.next() {
        Ok(Some(lexopt::Arg::Value(v))) => v.to_string_lossy().into_owned(),
        Ok(Some(lexopt::Arg::Long("help") | lexopt::Arg::Short('h'))) | Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Some(lexopt::Arg::Long("version"))) => {
            println!("rtc-mesh {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Some(other)) => return usage_error(&format!("unexpected {}", other.unexpected())),
        Err(e) => return usage_error(&e.to_string()),
    };
    let result = match cmd.as_str() {
        "help" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        "replicate" => replicate(args),
        "demo" => demo(args),
        "serve" => serve(args),
        "join" => join(args),
        other => Err(Usage(format!("unknown command {other:?}"))),
    };
    match result {
        Ok(code) => code,
        Err(Usage(msg)) => usage_error(&msg),
    }
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("rtc-mesh: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("rtc-mesh: {msg}");
    ExitCode::from(1)
}

/// A fresh peer id, by the rule every member follows.
fn random_id() -> String {
    rtc_mesh_smol::entropy().peer_id()
}

fn parse_addr(s: &str) -> Result<SocketAddr, Usage> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Usage(format!("invalid address {s:?} (expected HOST:PORT)")))
}

fn parse_codec(s: &str) -> Result<Codec, Usage> {
    match s {
        "json" => Ok(Codec::Json),
        "postcard" => Ok(Codec::Postcard),
        _ => Err(Usage(format!(
            "invalid codec {s:?} (expected json or postcard)"
        ))),
    }
}

/// A join codec choice: `auto` (postcard with our peers, json otherwise) or one codec.
fn parse_codecs(s: &str) -> Result<Vec<Codec>, Usage> {
    match s {
        "auto" => Ok(vec![Codec::Postcard, Codec::Json]),
        "json" => Ok(vec![Codec::Json]),
        "postcard" => Ok(vec![Codec::Postcard]),
        o => Err(Usage(format!(
            "invalid codec {o:?} (expected auto, json or postcard)"
        ))),
    }
}

fn parse_runtime(s: &str) -> Result<Runtime, Usage> {
    match s {
        "smol" => Ok(Runtime::Smol),
        "std" => Ok(Runtime::Std),
        o => Err(Usage(format!(
            "invalid runtime {o:?} (expected smol or std)"
        ))),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Smol,
    Std,
}

/// Either runtime's replicator, behind one blocking interface.
enum Backend {
    Smol(rtc_mesh_smol::Replicator),
    Std(rtc_mesh_std::Replicator),
}

impl Backend {
    fn set(&self, key: &str, value: &Value) -> Result<(), MemberError> {
        match self {
            Backend::Smol(r) => smol::block_on(r.set(key, value)),
            Backend::Std(r) => r.set(key, value),
        }
    }
    fn get(&self, key: &str) -> Option<Value> {
        match self {
            Backend::Smol(r) => smol::block_on(r.get(key)),
            Backend::Std(r) => r.get(key),
        }
    }
    fn dump(&self) -> Object {
        match self {
            Backend::Smol(r) => smol::block_on(r.dump()),
            Backend::Std(r) => r.dump(),
        }
    }
    fn connect(&self, a: SocketAddr) -> io::Result<()> {
        match self {
            Backend::Smol(r) => smol::block_on(r.connect(a)),
            Backend::Std(r) => r.connect(a),
        }
    }
    fn close(self, t: Duration) {
        match self {
            Backend::Smol(r) => smol::block_on(r.close(t)),
            Backend::Std(r) => r.close(t),
        }
    }
}

/// What the main loop of `replicate` and `join` waits for: a line of stdin, its end, or
/// an event of the runtime.
enum Msg<E> {
    Line(String),
    Eof,
    Event(E),
}

/// Forwards `events` (until they end, or the main loop is gone) on a thread.
fn forward_events<E: Send + 'static>(
    events: impl Iterator<Item = E> + Send + 'static,
    tx: mpsc::Sender<Msg<E>>,
) {
    std::thread::spawn(move || {
        for e in events {
            if tx.send(Msg::Event(e)).is_err() {
                return;
            }
        }
    });
}

/// Forwards the lines of stdin, then its end, on a thread.
fn forward_stdin<E: Send + 'static>(tx: mpsc::Sender<Msg<E>>) {
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(Msg::Line(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(Msg::Eof);
    });
}

struct Out {
    json: bool,
}

impl Out {
    fn emit(&self, r: &Report<'_>) {
        let line = if self.json {
            r.to_json_line()
        } else {
            r.to_human()
        };
        let mut o = io::stdout().lock();
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    }
}

fn replicate(mut args: lexopt::Parser) -> Result<ExitCode, Usage> {
    use lexopt::prelude::*;
    let mut listen = None;
    let mut connect = None;
    let mut codec = Codec::Json;
    let mut id = None;
    let mut runtime = Runtime::Smol;
    let mut json = false;
    while let Some(arg) = args.next()? {
        match arg {
            Long("listen") => listen = Some(parse_addr(&args.value()?.string()?)?),
            Long("connect") => connect = Some(parse_addr(&args.value()?.string()?)?),
            Long("codec") => codec = parse_codec(&args.value()?.string()?)?,
            Long("id") => id = Some(args.value()?.string()?),
            Long("runtime") => runtime = parse_runtime(&args.value()?.string()?)?,
            Long("json") => json = true,
            Long("help") | Short('h') => {
                print!("{REPLICATE_USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let target = match (listen, connect) {
        (Some(a), None) => Ok(a),
        (None, Some(a)) => Err(a),
        _ => {
            return Err(Usage(
                "replicate needs exactly one of --listen or --connect".into(),
            ))
        }
    };
    let id = id.unwrap_or_else(random_id);
    let out = Out { json };
    let (tx, rx) = mpsc::channel::<Msg<ReplicaEvent>>();
    let options = ReplicatorOptions::new(id.clone(), codec);

    // Start the runtime, bind or connect, and forward its events to the main loop.
    let started: Result<(Backend, SocketAddr), String> = match runtime {
        Runtime::Smol => match rtc_mesh_smol::Replicator::start(options) {
            Err(e) => Err(e.to_string()),
            Ok((r, events)) => {
                forward_events(
                    std::iter::from_fn(move || smol::block_on(events.recv()).ok()),
                    tx.clone(),
                );
                let res = match target {
                    Ok(a) => smol::block_on(r.listen(a)).map_err(|e| bind_error(a, e)),
                    Err(a) => smol::block_on(r.connect(a))
                        .map(|()| a)
                        .map_err(|e| connect_error(a, e)),
                };
                res.map(|a| (Backend::Smol(r), a))
            }
        },
        Runtime::Std => match rtc_mesh_std::Replicator::start(options) {
            Err(e) => Err(e.to_string()),
            Ok((r, events)) => {
                forward_events(events.into_iter(), tx.clone());
                let res = match target {
                    Ok(a) => r.listen(a).map_err(|e| bind_error(a, e)),
                    Err(a) => r.connect(a).map(|()| a).map_err(|e| connect_error(a, e)),
                };
                res.map(|a| (Backend::Std(r), a))
            }
        },
    };
    let (backend, addr) = match started {
        Ok(x) => x,
        Err(msg) => return Ok(fail(msg)),
    };
    out.emit(&Report::Ready {
        id: &id,
        addr: &addr.to_string(),
    });

    forward_stdin(tx);

    let limits = Limits::default();
    for msg in rx {
        match msg {
            Msg::Event(e) => report_event(&out, &e),
            Msg::Eof => break,
            Msg::Line(l) => {
                if l.trim().is_empty() {
                    continue;
                }
                match parse_command(&l, &limits) {
                    Err(e) => out.emit(&Report::Error {
                        code: e.code(),
                        message: &e.to_string(),
                    }),
                    Ok(Command::Close) => break,
                    Ok(cmd) => run_command(&out, &backend, cmd),
                }
            }
        }
    }
    backend.close(Duration::from_secs(2));
    out.emit(&Report::Closed);
    Ok(ExitCode::SUCCESS)
}

fn serve(mut args: lexopt::Parser) -> Result<ExitCode, Usage> {
    use lexopt::prelude::*;
    let mut listen: SocketAddr = "127.0.0.1:3000".parse().expect("valid default");
    let mut json = false;
    let mut std_runtime = false;
    while let Some(arg) = args.next()? {
        match arg {
            Long("listen") => listen = parse_addr(&args.value()?.string()?)?,
            Long("json") => json = true,
            Long("runtime") => {
                std_runtime = parse_runtime(&args.value()?.string()?)? == Runtime::Std
            }
            Long("help") | Short('h') => {
                print!("{SERVE_USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let ready = |addr: SocketAddr| {
        if json {
            println!("{{\"event\":\"ready\",\"addr\":\"{addr}\"}}");
        } else {
            println!("rtc-mesh: signalling on ws://{addr}/ (counters: http://{addr}/health)");
        }
        let _ = io::stdout().flush();
    };
    if std_runtime {
        let server = match rtc_mesh_std::switchboard::Server::bind(listen, Default::default()) {
            Ok(s) => s,
            Err(e) => return Ok(fail(bind_error(listen, e))),
        };
        ready(server.local_addr());
        loop {
            std::thread::park();
        }
    }
    Ok(smol::block_on(async {
        let server =
            match rtc_mesh_smol::switchboard::Server::bind(listen, Default::default()).await {
                Ok(s) => s,
                Err(e) => return fail(bind_error(listen, e)),
            };
        ready(server.local_addr());
        server.run_until(smol::future::pending::<()>()).await;
        ExitCode::SUCCESS
    }))
}

fn join(mut args: lexopt::Parser) -> Result<ExitCode, Usage> {
    use lexopt::prelude::*;
    let mut room = None;
    let mut signal = None;
    let mut id = None;
    let mut codecs = vec![Codec::Postcard, Codec::Json];
    let mut bind: SocketAddr = "127.0.0.1:0".parse().expect("valid default");
    let mut json = false;
    let mut runtime = Runtime::Smol;
    let mut stun = Vec::new();
    while let Some(arg) = args.next()? {
        match arg {
            Value(v) if room.is_none() => room = Some(v.string()?),
            Long("signal") => signal = Some(args.value()?.string()?),
            Long("id") => id = Some(args.value()?.string()?),
            Long("codec") => codecs = parse_codecs(&args.value()?.string()?)?,
            Long("stun") => stun.push(args.value()?.string()?),
            Long("bind") => bind = parse_addr(&args.value()?.string()?)?,
            Long("json") => json = true,
            Long("runtime") => runtime = parse_runtime(&args.value()?.string()?)?,
            Long("help") | Short('h') => {
                print!("{JOIN_USAGE}");
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
    let (mid, maddr) = member.identity();
    out.emit(&Report::Ready {
        id: &mid,
        addr: &maddr.to_string(),
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
                Ok(cmd) => join_command(&out, &member, cmd),
            },
            Msg::Event(e) => report_node_event(&out, &e),
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
                    peer: p.id,
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
        NodeEvent::Mesh(MeshEvent::SyncedAll { peers }) => out.emit(&Report::SyncedAll { peers }),
        NodeEvent::LinkSlow { peer } => out.emit(&Report::Error {
            code: "link_slow",
            message: &format!("the link to {peer} could not keep up; reconnecting"),
        }),
        _ => {}
    }
}

fn bind_error(a: SocketAddr, e: io::Error) -> String {
    if e.kind() == io::ErrorKind::AddrInUse {
        format!("cannot listen on {a}: the address is already in use")
    } else {
        format!("cannot listen on {a}: {e}")
    }
}

fn connect_error(a: SocketAddr, e: io::Error) -> String {
    format!("cannot connect to {a}: {e}")
}

fn member_error_code(e: &MemberError) -> &'static str {
    match e {
        MemberError::Store(e) => store_error_code(e),
        _ => "closed",
    }
}

fn store_error_code(e: &StoreError) -> &'static str {
    match e {
        StoreError::KeyTooLong { .. } => "key_too_long",
        StoreError::ProtoKey => "bad_key",
        StoreError::ValueTooLarge { .. } => "value_too_large",
        _ => "bad_value",
    }
}

fn run_command(out: &Out, backend: &Backend, cmd: Command) {
    let result = match cmd {
        Command::Set { key, value } => backend.set(&key, &value),
        Command::Delete { key } => backend.set(&key, &Value::Null),
        Command::Get { key } => {
            let value = backend.get(&key);
            out.emit(&Report::Value { key: &key, value });
            Ok(())
        }
        Command::Dump => {
            out.emit(&Report::Dump(&backend.dump()));
            Ok(())
        }
        Command::Peers => {
            out.emit(&Report::Error {
                code: "unsupported",
                message: "peers is a command of rtc-mesh join",
            });
            Ok(())
        }
        Command::Connect { addr } => {
            let res = match parse_addr(&addr) {
                Err(Usage(m)) => Err(("bad_address", m)),
                Ok(a) => backend
                    .connect(a)
                    .map_err(|e| ("connect_failed", connect_error(a, e))),
            };
            if let Err((code, message)) = res {
                out.emit(&Report::Error {
                    code,
                    message: &message,
                });
            }
            Ok(())
        }
        Command::Close => Ok(()),
    };
    if let Err(e) = result {
        out.emit(&Report::Error {
            code: member_error_code(&e),
            message: &e.to_string(),
        });
    }
}

fn report_event(out: &Out, e: &ReplicaEvent) {
    match e {
        ReplicaEvent::Update(u) => out.emit(&Report::Update(u)),
        ReplicaEvent::Synced { peer, .. } => out.emit(&Report::Synced { peer }),
        ReplicaEvent::SyncedAll { peers } => out.emit(&Report::SyncedAll { peers }),
        ReplicaEvent::LinkError { error, .. } => out.emit(&Report::Error {
            code: "link_error",
            message: &error.to_string(),
        }),
        _ => {}
    }
}

fn demo(mut args: lexopt::Parser) -> Result<ExitCode, Usage> {
    use lexopt::prelude::*;
    let mut peers = 3usize;
    let mut keys = 1000usize;
    let mut codecs = vec![Codec::Postcard, Codec::Json];
    while let Some(arg) = args.next()? {
        match arg {
            Long("peers") => peers = args.value()?.parse()?,
            Long("keys") => keys = args.value()?.parse()?,
            Long("codec") => codecs = parse_codecs(&args.value()?.string()?)?,
            Long("help") | Short('h') => {
                print!("{DEMO_USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    if !(2..=32).contains(&peers) {
        return Err(Usage("--peers must be between 2 and 32".into()));
    }
    if keys > 1_000_000 {
        return Err(Usage("--keys must be at most 1000000".into()));
    }
    Ok(smol::block_on(run_demo(peers, keys, codecs)))
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Waits for events on every member until `done(i, event)` has said yes for each, or
/// 30 s have passed; prints progress each second. Returns the members not done.
async fn await_all(
    what: &str,
    streams: &[smol::channel::Receiver<rtc_mesh_core::node::NodeEvent>],
    mut done: impl FnMut(usize, &rtc_mesh_core::node::NodeEvent) -> bool,
) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut finished = vec![false; streams.len()];
    let mut next_progress = Instant::now() + Duration::from_secs(1);
    while finished.iter().any(|f| !f) {
        let next = async {
            // Whichever member speaks first.
            let mut any = Box::pin(smol::future::pending::<Option<(usize, _)>>())
                as std::pin::Pin<Box<dyn std::future::Future<Output = _>>>;
            for (i, s) in streams.iter().enumerate().filter(|(i, _)| !finished[*i]) {
                any = Box::pin(smol::future::or(any, async move {
                    s.recv().await.ok().map(|e| (i, e))
                }));
            }
            any.await
        };
        let tick = async {
            smol::Timer::at(next_progress.min(deadline)).await;
            None
        };
        match smol::future::or(next, tick).await {
            Some((i, e)) => finished[i] = finished[i] || done(i, &e),
            None if Instant::now() >= deadline => break,
            None => {
                let n = finished.iter().filter(|f| **f).count();
                println!("  ... {what}: {n} of {} peers so far", streams.len());
                next_progress += Duration::from_secs(1);
            }
        }
    }
    (0..streams.len()).filter(|i| !finished[*i]).collect()
}

async fn run_demo(n: usize, keys: usize, codecs: Vec<Codec>) -> ExitCode {
    use rtc_mesh_core::mesh::MeshEvent;
    use rtc_mesh_core::node::NodeEvent;
    use rtc_mesh_smol::mesh::{join, JoinOptions};
    println!(
        "rtc-mesh demo: {n} peers in one process, meshed over WebRTC data channels on 127.0.0.1"
    );
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    let server = match rtc_mesh_smol::switchboard::Server::bind(any, Default::default()).await {
        Ok(s) => s,
        Err(e) => return fail(bind_error(any, e)),
    };
    let url = format!("ws://{}/", server.local_addr());
    println!("  switchboard on {url}");
    let t0 = Instant::now();
    let mut members = Vec::new();
    let mut streams = Vec::new();
    for i in 0..n {
        let mut o = JoinOptions::new("demo", url.clone());
        o.id = Some(format!("peer-{i}"));
        o.codecs = codecs.clone();
        match join(o).await {
            Ok((m, e)) => {
                members.push(m);
                streams.push(e);
            }
            Err(e) => return fail(e),
        }
    }
    // Formed: every member has a synced link to every other.
    let late = await_all(
        "meshed",
        &streams,
        |_, e| matches!(e, NodeEvent::Mesh(MeshEvent::SyncedAll { peers }) if peers.len() == n - 1),
    )
    .await;
    if !late.is_empty() {
        return fail(format!("peers {late:?} did not link to all others in 30 s"));
    }
    let formed = t0.elapsed();
    println!(
        "  {n} peers joined and linked ({} data channels) in {}",
        n * (n - 1) / 2,
        ms(formed)
    );
    let t1 = Instant::now();
    for (i, m) in members.iter().enumerate() {
        let batch = (0..keys)
            .map(|k| {
                let v = Value::from_json(&format!(r#"{{"writer":{i},"n":{k}}}"#))
                    .expect("literal json");
                (format!("p{i}-key-{k:06}"), v)
            })
            .collect();
        if let Err(e) = m.set_many(batch).await {
            return fail(e);
        }
    }
    println!("  each peer wrote {keys} keys ({} in all)", n * keys);
    // Each member reports its own writes and the others'.
    let expect = n * keys;
    let mut seen = vec![0usize; n];
    let late = if expect == 0 {
        Vec::new()
    } else {
        await_all("converged", &streams, |i, e| {
            if let NodeEvent::Mesh(MeshEvent::Update(_)) = e {
                seen[i] += 1;
            }
            seen[i] >= expect
        })
        .await
    };
    if !late.is_empty() {
        return fail(format!(
            "peers {late:?} did not receive every write in 30 s"
        ));
    }
    let converged = t1.elapsed();
    let mut snaps = Vec::new();
    for m in &members {
        snaps.push(m.snapshot().await);
    }
    let equal = snaps.windows(2).all(|w| w[0] == w[1]);
    println!(
        "  every peer holds {} keys {} after the writes; stores equal: {}",
        snaps[0].len(),
        ms(converged),
        if equal { "yes" } else { "NO" }
    );
    println!("  links of {}:", members[0].id());
    for p in members[0].peers().await {
        let l = &p.link;
        println!(
            "    {:<8} {:<5} codec {:<8} rtt {:>8}  sent {} B / {} updates, received {} B / {} updates",
            p.id,
            l.state.name(),
            l.codec.map(|c| c.name()).unwrap_or("-"),
            l.stats.rtt.map(ms).unwrap_or_else(|| "-".into()),
            l.stats.bytes_out,
            l.stats.updates_out,
            l.stats.bytes_in,
            l.stats.updates_in
        );
    }
    for m in members {
        m.close().await;
    }
    server.shutdown().await;
    if equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
