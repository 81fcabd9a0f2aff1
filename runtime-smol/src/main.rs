//! The `rtc-mesh` command-line program.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rtc_mesh_core::control::{parse_command, Command, Report};
use rtc_mesh_core::{Codec, Limits, Object, ReplicaEvent, StoreError, Value};
use rtc_mesh_smol::ReplicatorOptions;

const USAGE: &str = "\
rtc-mesh: a key/value store kept in sync across peers (scuttlebutt protocol)

Usage:
  rtc-mesh demo [--peers N] [--keys K] [--codec json|postcard]
  rtc-mesh replicate (--listen ADDR | --connect ADDR) [--codec json|postcard]
                     [--id ID] [--runtime smol|std] [--json]
  rtc-mesh serve [--listen ADDR] [--runtime smol|std] [--json]
  rtc-mesh join ROOM [--signal URL] [--id ID] [--codec auto|json|postcard]
                     [--bind ADDR] [--runtime smol|std] [--json]
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
rtc-mesh demo: start several replicas in this process, linked over TCP on 127.0.0.1,
write on each, and show them converge with timings.

Usage:
  rtc-mesh demo [--peers N] [--keys K] [--codec json|postcard]

Options:
  --peers N            replicas to start (default 3, 2..=64)
  --keys K             keys each replica writes (default 1000)
  --codec json|postcard  wire codec (default postcard)
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

fn random_id() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
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
    fn set(&self, key: &str, value: &Value) -> Result<(), StoreError> {
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

enum Msg {
    Line(String),
    Eof,
    Event(ReplicaEvent),
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
            Long("runtime") => {
                runtime = match args.value()?.string()?.as_str() {
                    "smol" => Runtime::Smol,
                    "std" => Runtime::Std,
                    o => {
                        return Err(Usage(format!(
                            "invalid runtime {o:?} (expected smol or std)"
                        )))
                    }
                }
            }
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
    let (tx, rx) = mpsc::channel::<Msg>();
    let options = ReplicatorOptions::new(id.clone(), codec);

    // Start the runtime, bind or connect, and forward its events to the main loop.
    let started: Result<(Backend, SocketAddr), String> = match runtime {
        Runtime::Smol => match rtc_mesh_smol::Replicator::start(options) {
            Err(e) => Err(e.to_string()),
            Ok((mut r, events)) => {
                let etx = tx.clone();
                std::thread::spawn(move || {
                    while let Ok(e) = smol::block_on(events.recv()) {
                        if etx.send(Msg::Event(e)).is_err() {
                            break;
                        }
                    }
                });
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
                let etx = tx.clone();
                std::thread::spawn(move || {
                    for e in events {
                        if etx.send(Msg::Event(e)).is_err() {
                            break;
                        }
                    }
                });
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

    std::thread::spawn(move || {
        let stdin = io::stdin();
        for line in stdin.lock().lines() {
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
                std_runtime = match args.value()?.string()?.as_str() {
                    "smol" => false,
                    "std" => true,
                    o => {
                        return Err(Usage(format!(
                            "invalid runtime {o:?} (expected smol or std)"
                        )))
                    }
                }
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
    while let Some(arg) = args.next()? {
        match arg {
            Value(v) if room.is_none() => room = Some(v.string()?),
            Long("signal") => signal = Some(args.value()?.string()?),
            Long("id") => id = Some(args.value()?.string()?),
            Long("codec") => {
                codecs = match args.value()?.string()?.as_str() {
                    "auto" => vec![Codec::Postcard, Codec::Json],
                    "json" => vec![Codec::Json],
                    "postcard" => vec![Codec::Postcard],
                    o => {
                        return Err(Usage(format!(
                            "invalid codec {o:?} (expected auto, json or postcard)"
                        )))
                    }
                }
            }
            Long("bind") => bind = parse_addr(&args.value()?.string()?)?,
            Long("json") => json = true,
            Long("runtime") => {
                runtime = match args.value()?.string()?.as_str() {
                    "smol" => Runtime::Smol,
                    "std" => Runtime::Std,
                    o => {
                        return Err(Usage(format!(
                            "invalid runtime {o:?} (expected smol or std)"
                        )))
                    }
                }
            }
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
    let addr = match rtc_mesh_smol::signal::resolve_ws_url(&url) {
        Ok(a) => a,
        Err(e) => return Err(Usage(e.to_string())),
    };
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
    let (tx, rx) = mpsc::channel::<JoinMsg>();
    let mut opts = rtc_mesh_smol::mesh::JoinOptions::new(room, url);
    opts.id = id;
    opts.codecs = codecs;
    opts.bind = bind;
    let member = match runtime {
        Runtime::Smol => match smol::block_on(rtc_mesh_smol::mesh::join(opts)) {
            Ok((m, events)) => {
                let etx = tx.clone();
                std::thread::spawn(move || {
                    while let Ok(e) = smol::block_on(events.recv()) {
                        if etx.send(JoinMsg::Event(e)).is_err() {
                            return;
                        }
                    }
                });
                JoinBackend::Smol(m)
            }
            Err(e) => return Ok(fail(e)),
        },
        Runtime::Std => match rtc_mesh_std::mesh::join(opts) {
            Ok((m, events)) => {
                let etx = tx.clone();
                std::thread::spawn(move || {
                    for e in events {
                        if etx.send(JoinMsg::Event(e)).is_err() {
                            return;
                        }
                    }
                });
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
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(JoinMsg::Line(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(JoinMsg::Eof);
    });
    let limits = Limits::default();
    for msg in rx {
        match msg {
            JoinMsg::Eof => break,
            JoinMsg::Line(l) if l.trim().is_empty() => {}
            JoinMsg::Line(l) => match parse_command(&l, &limits) {
                Err(e) => out.emit(&Report::Error {
                    code: e.code(),
                    message: &e.to_string(),
                }),
                Ok(Command::Close) => break,
                Ok(cmd) => join_command(&out, &member, cmd),
            },
            JoinMsg::Event(e) => report_node_event(&out, &e),
        }
    }
    member.close();
    if let Some(s) = embedded {
        smol::block_on(s.shutdown());
    }
    out.emit(&Report::Closed);
    Ok(ExitCode::SUCCESS)
}

enum JoinMsg {
    Line(String),
    Eof,
    Event(rtc_mesh_core::node::NodeEvent),
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
    fn set(&self, key: &str, value: Value) -> Result<(), StoreError> {
        match self {
            JoinBackend::Smol(m) => smol::block_on(m.set(key, value)),
            JoinBackend::Std(m) => m.set(key, value),
        }
    }
    fn get(&self, key: &str) -> Option<Value> {
        match self {
            JoinBackend::Smol(m) => smol::block_on(m.get(key)),
            JoinBackend::Std(m) => m.get(key),
        }
    }
    fn dump(&self) -> Object {
        match self {
            JoinBackend::Smol(m) => smol::block_on(m.dump()),
            JoinBackend::Std(m) => m.dump(),
        }
    }
    fn peers(&self) -> Vec<rtc_mesh_std::mesh::PeerInfo> {
        match self {
            JoinBackend::Smol(m) => smol::block_on(m.peers()),
            JoinBackend::Std(m) => m.peers(),
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
    let result = match cmd {
        Command::Set { key, value } => member.set(&key, value),
        Command::Delete { key } => member.set(&key, Value::Null),
        Command::Get { key } => {
            let value = member.get(&key);
            out.emit(&Report::Value { key: &key, value });
            Ok(())
        }
        Command::Dump => {
            out.emit(&Report::Dump(&member.dump()));
            Ok(())
        }
        Command::Peers => {
            let list: Vec<rtc_mesh_core::control::PeerReport> = member
                .peers()
                .into_iter()
                .map(|p| rtc_mesh_core::control::PeerReport {
                    peer: p.id,
                    attributes: Value::Object(p.attributes),
                    state: if p.linked { "connected" } else { "connecting" }.into(),
                    codec: None,
                })
                .collect();
            out.emit(&Report::Peers(&list));
            Ok(())
        }
        _ => {
            out.emit(&Report::Error {
                code: "unsupported",
                message: "not available in join",
            });
            Ok(())
        }
    };
    if let Err(e) = result {
        out.emit(&Report::Error {
            code: store_error_code(&e),
            message: &e.to_string(),
        });
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
        _ => Ok(()),
    };
    if let Err(e) = result {
        out.emit(&Report::Error {
            code: store_error_code(&e),
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
    let mut codec = Codec::Postcard;
    while let Some(arg) = args.next()? {
        match arg {
            Long("peers") => peers = args.value()?.parse()?,
            Long("keys") => keys = args.value()?.parse()?,
            Long("codec") => codec = parse_codec(&args.value()?.string()?)?,
            Long("help") | Short('h') => {
                print!("{DEMO_USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    if !(2..=64).contains(&peers) {
        return Err(Usage("--peers must be between 2 and 64".into()));
    }
    Ok(smol::block_on(run_demo(peers, keys, codec)))
}

async fn run_demo(n: usize, keys: usize, codec: Codec) -> ExitCode {
    println!(
        "rtc-mesh demo: {n} replicas in one process, linked over TCP on 127.0.0.1, codec {codec}"
    );
    let t0 = Instant::now();
    let mut reps = Vec::new();
    let mut streams = Vec::new();
    for i in 0..n {
        let id = format!("demo-{i}-{}", &random_id()[..8]);
        match rtc_mesh_smol::Replicator::start(ReplicatorOptions::new(id, codec)) {
            Ok((r, e)) => {
                reps.push(r);
                streams.push(e);
            }
            Err(e) => return fail(e),
        }
    }
    // Replica 0 is the hub; the others link to it and reach each other through it.
    let hub = match reps[0]
        .listen("127.0.0.1:0".parse().expect("literal address"))
        .await
    {
        Ok(a) => a,
        Err(e) => return fail(format!("cannot listen on 127.0.0.1: {e}")),
    };
    println!("  {} listens on {hub}", reps[0].id());
    for r in &reps[1..] {
        if let Err(e) = r.connect(hub).await {
            return fail(format!("cannot connect to {hub}: {e}"));
        }
    }
    for (i, r) in reps.iter().enumerate() {
        for k in 0..keys {
            let v =
                Value::from_json(&format!(r#"{{"writer":{i},"n":{k}}}"#)).expect("literal json");
            if let Err(e) = r.set(&format!("r{i}-key-{k:06}"), &v).await {
                return fail(e);
            }
        }
    }
    println!(
        "  each of {n} replicas wrote {keys} keys ({} in all)",
        n * keys
    );
    let total = n * keys;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut counts = vec![0usize; n];
    for (i, events) in streams.iter_mut().enumerate() {
        while counts[i] < total {
            let next = smol::future::or(async { events.recv().await.ok() }, async {
                smol::Timer::at(deadline).await;
                None
            });
            match next.await {
                Some(ReplicaEvent::Update(_)) => counts[i] += 1,
                Some(_) => {}
                None => {
                    return fail(format!(
                        "replica {i} saw only {} of {total} keys in 30 s",
                        counts[i]
                    ))
                }
            }
        }
    }
    let elapsed = t0.elapsed();
    let mut dumps = Vec::new();
    for r in &reps {
        dumps.push(r.dump().await);
    }
    let equal = dumps.windows(2).all(|w| w[0] == w[1]);
    println!(
        "  all {n} replicas hold {} keys after {:.1} ms; replicas equal: {}",
        dumps[0].len(),
        elapsed.as_secs_f64() * 1000.0,
        if equal { "yes" } else { "NO" }
    );
    for r in reps {
        r.close(Duration::from_secs(2)).await;
    }
    if equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
