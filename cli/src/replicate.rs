//! `rtc-mesh replicate`: a store replicated over TCP links (scuttlebutt's JSON lines
//! by default), on either runtime: a member without a room, on the same path as
//! `join`'s attached links.

use std::process::ExitCode;
use std::sync::mpsc;

use rtc_mesh_core::node::NodeEvent;
use rtc_mesh_core::Codec;
use rtc_mesh_smol::ReplicatorOptions;

use crate::control::Report;
use crate::lines::{forward_events, Msg, Out};
use crate::member::{listen_tcp, serve, Backend};
use crate::{
    bind_error, connect_error, fail, parse_addr, parse_codec, parse_runtime, random_id, Runtime,
    Usage,
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
  --secret S           a secured room's store (with --room, the room's name): every
                       write signed, every update checked, as the room's members do;
                       scuttlebutt peers relay signed updates intact, their own
                       writes are refused (unsigned). The source id is our identity's
                       key and a fresh incarnation
  --secret-file F      the secret, from the first line of file F
  --room ROOM          the secured room's name (its secret and name make its key)
  --identity F         our identity (its private key) in file F, made when missing
  --runtime smol|std   driver runtime (default smol)
  --json               write events as JSON lines
  (--data DIR, --durability, --repair: see Data options below)

Reads one JSON command per line on stdin:
  {\"op\":\"set\",\"key\":K,\"value\":V}   {\"op\":\"delete\",\"key\":K}   {\"op\":\"get\",\"key\":K}
  {\"op\":\"dump\"}   {\"op\":\"connect\",\"addr\":\"HOST:PORT\"}   {\"op\":\"close\"}
  (end of input = close)
Events: ready, update, synced, synced_all, value, dump, error, closed.
";

pub(crate) fn run(mut args: lexopt::Parser) -> Result<ExitCode, Usage> {
    use lexopt::prelude::*;
    let mut listen = None;
    let mut connect = None;
    let mut codec = Codec::Json;
    let mut id = None;
    let mut runtime = Runtime::Smol;
    let mut json = false;
    let mut secret = None;
    let mut room = None;
    let mut identity_file = None;
    let mut data = crate::DataArgs::default();
    while let Some(arg) = args.next()? {
        match arg {
            Long(n @ ("data" | "durability" | "repair")) => {
                let n = n.to_owned();
                data.take(&n, &mut args)?
            }
            Long("listen") => listen = Some(parse_addr(&args.value()?.string()?)?),
            Long("connect") => connect = Some(parse_addr(&args.value()?.string()?)?),
            Long("codec") => codec = parse_codec(&args.value()?.string()?)?,
            Long("id") => id = Some(args.value()?.string()?),
            Long("secret") => secret = Some(crate::invite::parse_secret(&args.value()?.string()?)?),
            Long("secret-file") => {
                secret = Some(crate::invite::secret_file(&args.value()?.string()?)?)
            }
            Long("room") => room = Some(args.value()?.string()?),
            Long("identity") => identity_file = Some(args.value()?.string()?),
            Long("runtime") => runtime = parse_runtime(&args.value()?.string()?)?,
            Long("json") => json = true,
            Long("help") | Short('h') => {
                print!("{USAGE}\nData options:\n{}\nWith --data and --id at process durability the source id is ID.<16 hex>, new\nat each start: what a power loss took from the log may be held by peers, and\nnew writes under the old id would lose to it. At power the id is kept.\n", crate::DATA_USAGE);
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
    let options = match (secret, room) {
        (Some(secret), Some(room)) => {
            if id.is_some() {
                return Err(Usage(
                    "--id and --secret: in a secured room the source id is the identity's key"
                        .into(),
                ));
            }
            let identity = match identity_file {
                Some(f) => crate::invite::identity_file(std::path::Path::new(&f)).map_err(Usage)?,
                None => rtc_mesh_core::security::Identity::from_seed(
                    &crate::invite::os_random().map_err(Usage)?,
                ),
            };
            ReplicatorOptions::secured(&room, &secret, identity, &random_id(), codec)
        }
        (Some(_), None) => return Err(Usage("--secret needs --room ROOM".into())),
        (None, Some(_)) => return Err(Usage("--room is for secured rooms: give --secret".into())),
        (None, None) if identity_file.is_some() => {
            return Err(Usage(
                "--identity is for secured rooms: give --secret".into(),
            ))
        }
        (None, None) => {
            // A durable store below `power` may have lost from its log what peers
            // hold: a new source id at each start keeps new writes from losing to it.
            let fresh = data.dir.is_some()
                && data.durability != Some(rtc_mesh_core::persist::Durability::Power);
            let id = match id {
                Some(id) if fresh => format!("{id}.{}", random_id()),
                Some(id) => id,
                None => random_id(),
            };
            ReplicatorOptions::new(id, codec)
        }
    };
    let mut options = options;
    options.data = data.options()?;
    let id = options.id.clone();
    let out = Out::new(json);
    let (tx, rx) = mpsc::channel::<Msg<NodeEvent>>();

    // A member without a room, on the same driver and loop as `join`.
    let member = match runtime {
        Runtime::Smol => match rtc_mesh_smol::mesh::replicate(&options) {
            Err(e) => return Ok(fail(e)),
            Ok((m, events)) => {
                forward_events(
                    std::iter::from_fn(move || smol::block_on(events.recv()).ok()),
                    tx.clone(),
                );
                Backend::Smol(m)
            }
        },
        Runtime::Std => match rtc_mesh_std::mesh::replicate(&options) {
            Err(e) => return Ok(fail(e)),
            Ok((m, events)) => {
                forward_events(events.into_iter(), tx.clone());
                Backend::Std(m)
            }
        },
    };
    let addr = match target {
        Ok(a) => listen_tcp(a, tx.clone()).map_err(|e| bind_error(a, e)),
        Err(a) => std::net::TcpStream::connect(a)
            .map_err(|e| connect_error(a, e))
            .and_then(|s| member.attach(s, codec).map_err(|(_, m)| m))
            .map(|()| a),
    };
    let addr = match addr {
        Ok(a) => a,
        Err(msg) => {
            member.close();
            return Ok(fail(msg));
        }
    };
    out.emit(&Report::Ready {
        id: &id,
        addr: &addr.to_string(),
        addrs: &[],
        tcp: None,
    });
    serve(&out, &member, tx, rx, codec, None, false);
    let code = member.close();
    out.emit(&Report::Closed);
    Ok(code)
}
