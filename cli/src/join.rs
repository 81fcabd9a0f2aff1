//! `rtc-mesh join`: a member of a room over WebRTC, on either runtime.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use rtc_mesh_core::url::WsUrl;
use rtc_mesh_core::Codec;

use crate::control::Report;
use crate::invite::parse_secret;
use crate::lines::{forward_events, Msg, Out};
use crate::member::{listen_tcp, serve, Backend};
use crate::{bind_error, fail, parse_addr, parse_codecs, parse_runtime, Runtime, Usage};

pub(crate) const USAGE: &str = "\
rtc-mesh join: join a room and keep its shared store over WebRTC data channels

Usage:
  rtc-mesh join ROOM [options]

Options:
  --signal URL         signalling server (default ws://127.0.0.1:3000/; when nothing
                       listens there, an embedded switchboard is started on it)
  --secret S           a secured room (an invite from `rtc-mesh invite`, or a
                       passphrase, stretched once): the switchboard sees a tag
                       instead of the room name, every signal is sealed and signed,
                       and the peer id is our identity's key (43 characters)
  --secret-file F      the secret, from the first line of file F
  --identity F         in a secured room, our identity (its private key) in file F,
                       made with a fresh one when F does not exist: the same peer id
                       after a restart. The room's key epoch (after a removal) is
                       kept there too, so a restart rejoins the current key
  --token T            an admission token for a switchboard that requires one
                       (`rtc-mesh token`), sent as ?token=T
  --id ID              peer id (default: 16 random hex characters; in a secured
                       room the identity's key)
  --codec auto|json|postcard   auto (default): postcard with our peers, json otherwise
  --bind ADDR          UDP address to bind (repeatable; default 0.0.0.0:0 and [::]:0:
                       every usable interface address, one socket each, each
                       offered as a host candidate; 127.0.0.1:0 keeps to this host)
  --stun HOST:PORT     a STUN server for our server-reflexive address (repeatable)
  --turn turn:HOST:PORT   a TURN server to relay through, over UDP (repeatable;
                       port 3478 by default); with --turn-user and --turn-credential
  --turn-user U        the TURN username
  --turn-credential P  the TURN password
  --relay-only         offer relayed candidates only (every link through TURN), as
                       a browser's iceTransportPolicy 'relay'
  --listen ADDR        also accept TCP replication links there (scuttlebutt's JSON
                       lines, as `replicate --listen`; postcard with --codec postcard);
                       `ready` reports the address as `tcp`
  --runtime smol|std   driver runtime (default smol)
  --json               write events as JSON lines
  (--data DIR, --durability, --repair: see Data options below)

Reads one JSON command per line on stdin:
  {\"op\":\"set\",\"key\":K,\"value\":V}   {\"op\":\"delete\",\"key\":K}   {\"op\":\"get\",\"key\":K}
  {\"op\":\"dump\"}   {\"op\":\"peers\"}   {\"op\":\"stats\"}   {\"op\":\"connect\",\"addr\":\"HOST:PORT\"}
  {\"op\":\"close\"}   (end of input = close)
Events: ready, peer_join, peer_leave, update, synced, synced_all, value, dump, peers,
stats, error, closed.
";

pub(crate) fn run(mut args: lexopt::Parser) -> Result<ExitCode, Usage> {
    use lexopt::prelude::*;
    let mut room = None;
    let mut signal = None;
    let mut id = None;
    let mut codecs = vec![Codec::Postcard, Codec::Json];
    let mut bind: Vec<SocketAddr> = Vec::new();
    let mut json = false;
    let mut runtime = Runtime::Smol;
    let mut stun = Vec::new();
    let mut turn = Vec::new();
    let mut turn_user = None;
    let mut turn_credential = None;
    let mut relay_only = false;
    let mut listen = None;
    let mut secret = None;
    let mut token = None;
    let mut data = crate::DataArgs::default();
    let mut identity_file = None;
    while let Some(arg) = args.next()? {
        match arg {
            Value(v) if room.is_none() => room = Some(v.string()?),
            Long("signal") => signal = Some(args.value()?.string()?),
            Long("id") => id = Some(args.value()?.string()?),
            Long("secret") => secret = Some(parse_secret(&args.value()?.string()?)?),
            Long("secret-file") => {
                secret = Some(crate::invite::secret_file(&args.value()?.string()?)?)
            }
            Long("identity") => identity_file = Some(args.value()?.string()?),
            Long("token") => {
                let t = args.value()?.string()?;
                if t.is_empty()
                    || t.len() > rtc_mesh_core::security::token::MAX_TOKEN_LEN
                    || !t
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                {
                    return Err(Usage(format!(
                        "--token {t:?}: a token is base64url parts joined by dots"
                    )));
                }
                token = Some(t);
            }
            Long("codec") => codecs = parse_codecs(&args.value()?.string()?)?,
            Long("stun") => stun.push(args.value()?.string()?),
            Long("turn") => {
                let u = args.value()?.string()?;
                turn.push(if u.starts_with("turn:") || u.starts_with("turns:") {
                    u
                } else {
                    format!("turn:{u}")
                });
            }
            Long("turn-user") => turn_user = Some(args.value()?.string()?),
            Long("turn-credential") => turn_credential = Some(args.value()?.string()?),
            Long("relay-only") => relay_only = true,
            Long("bind") => bind.push(parse_addr(&args.value()?.string()?)?),
            Long("listen") => listen = Some(parse_addr(&args.value()?.string()?)?),
            Long("json") => json = true,
            Long("runtime") => runtime = parse_runtime(&args.value()?.string()?)?,
            Long(n @ ("data" | "durability" | "repair")) => {
                let n = n.to_owned();
                data.take(&n, &mut args)?
            }
            Long("help") | Short('h') => {
                print!("{USAGE}\nData options:\n{}", crate::DATA_USAGE);
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    let Some(room) = room else {
        return Err(Usage("join needs a ROOM".into()));
    };
    if !turn.is_empty() && (turn_user.is_none() || turn_credential.is_none()) {
        return Err(Usage(
            "--turn needs --turn-user and --turn-credential".into(),
        ));
    }
    if relay_only && turn.is_empty() {
        return Err(Usage("--relay-only needs a --turn server".into()));
    }
    if id.is_some() && secret.is_some() {
        return Err(Usage(
            "--id and --secret: in a secured room the id is the identity's key".into(),
        ));
    }
    let kept = match &identity_file {
        Some(f) => crate::invite::kept_rekeys(std::path::Path::new(f), &room).map_err(Usage)?,
        None => Vec::new(),
    };
    let keep = identity_file
        .clone()
        .map(|f| (std::path::PathBuf::from(f), room.clone()));
    let identity = match identity_file {
        Some(_) if secret.is_none() => {
            return Err(Usage(
                "--identity is for secured rooms: give --secret too".into(),
            ))
        }
        Some(f) => Some(crate::invite::identity_file(std::path::Path::new(&f)).map_err(Usage)?),
        None => None,
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
    let out = Out::new(json);
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
    opts.secret = secret;
    opts.identity = identity;
    opts.rekey = kept;
    opts.token = token;
    opts.data = data.options()?;
    opts.codecs = codecs;
    if !bind.is_empty() {
        opts.bind = bind;
    }
    opts.stun_servers = stun;
    if !turn.is_empty() {
        opts.ice_servers = vec![rtc_mesh_smol::mesh::IceServer {
            urls: turn,
            username: turn_user,
            credential: turn_credential,
        }];
    }
    opts.relay_only = relay_only;
    let member = match runtime {
        Runtime::Smol => match smol::block_on(rtc_mesh_smol::mesh::join(opts)) {
            Ok((m, events)) => {
                forward_events(
                    std::iter::from_fn(move || smol::block_on(events.recv()).ok()),
                    tx.clone(),
                );
                Backend::Smol(m)
            }
            Err(e) => return Ok(fail(e)),
        },
        Runtime::Std => match rtc_mesh_std::mesh::join(opts) {
            Ok((m, events)) => {
                forward_events(events.into_iter(), tx.clone());
                Backend::Std(m)
            }
            Err(e) => return Ok(fail(e)),
        },
    };
    let tcp = match listen {
        None => None,
        Some(a) => match listen_tcp(a, tx.clone()) {
            Ok(bound) => Some(bound.to_string()),
            Err(e) => {
                member.close();
                return Ok(fail(bind_error(a, e)));
            }
        },
    };
    let (mid, maddrs) = member.identity();
    let addrs: Vec<String> = maddrs.iter().map(|a| a.to_string()).collect();
    out.emit(&Report::Ready {
        id: &mid,
        addr: addrs.first().map_or("0.0.0.0:0", |a| a.as_str()),
        addrs: &addrs,
        tcp: tcp.as_deref(),
    });
    serve(&out, &member, tx, rx, stream_codec, keep.as_ref(), true);
    let code = member.close();
    if let Some(s) = embedded {
        smol::block_on(s.shutdown());
    }
    out.emit(&Report::Closed);
    Ok(code)
}
