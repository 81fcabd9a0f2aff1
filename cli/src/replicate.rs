//! `rtc-mesh replicate`: a store replicated over TCP links (scuttlebutt's JSON lines
//! by default), on either runtime.

use std::io::{self};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use rtc_mesh_core::{Codec, Limits, Object, ReplicaEvent, Value};
use rtc_mesh_smol::mesh::MemberError;
use rtc_mesh_smol::ReplicatorOptions;

use crate::control::{parse_command, Command, Report};
use crate::lines::{forward_events, forward_stdin, Msg, Out};
use crate::{
    bind_error, connect_error, fail, member_error_code, parse_addr, parse_codec, parse_runtime,
    random_id, Runtime, Usage,
};

pub(crate) const USAGE: &str = "\
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

pub(crate) fn run(mut args: lexopt::Parser) -> Result<ExitCode, Usage> {
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
                print!("{USAGE}");
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
        tcp: None,
    });

    forward_stdin(tx);

    let limits = Limits::default();
    for msg in rx {
        match msg {
            Msg::Event(e) => report_event(&out, &e),
            Msg::Eof => break,
            Msg::Accepted(_) => {}
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
