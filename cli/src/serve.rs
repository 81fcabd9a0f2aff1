//! `rtc-mesh serve`: the switchboard (signalling server, demo page, browser client).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use crate::{bind_error, fail, parse_addr, parse_runtime, Runtime, Usage};

pub(crate) const USAGE: &str = "\
rtc-mesh serve: the signalling server (a switchboard speaking rtc-signaller 6.x over
WebSocket; rtc-switchboard 3.2 compatible, with leaves on disconnect and limits)

Usage:
  rtc-mesh serve [--listen ADDR] [--turn URL... --turn-secret S [--turn-ttl SECS]]
                 [--token-secret K] [--max-per-ip N] [--limit-loopback]
                 [--runtime smol|std] [--json]

Options:
  --listen ADDR        address to listen on (default 127.0.0.1:3000; port 0 picks one)
  --turn URL           a TURN server to offer every member (turn:HOST:PORT; repeatable),
                       with short-lived credentials signed by --turn-secret
  --turn-secret S      the secret shared with the TURN server (coturn: --use-auth-secret
                       --static-auth-secret=S)
  --turn-ttl SECS      how long a credential is valid (default 86400)
  --token-secret K     admit only connections with a valid HS256 token for their room
                       (`rtc-mesh token ROOM --token-secret K`), given as ?token= on
                       the URL; others get 401 before the upgrade (K: 32 bytes or more)
  --max-per-ip N       most connections open at once from one address (default 64;
                       more get 429); loopback is exempt unless --limit-loopback
  --limit-loopback     hold loopback addresses to --max-per-ip too
  --runtime smol|std   server runtime (default smol)
  --json               write the ready event as a JSON line

Clients connect to ws://ADDR/ (any path); GET http://ADDR/health returns the counters
as JSON. With --turn, each member gets, after its first announce, the TURN servers and
a credential for it (username EXPIRY:ID, password base64(HMAC-SHA1(S, username))), as
`/mesh:ice|{\"iceServers\":[..],\"ttl\":SECS}`; members and pages given no TURN server of
their own use them. Runs until killed.
";

pub(crate) fn run(mut args: lexopt::Parser) -> Result<ExitCode, Usage> {
    use lexopt::prelude::*;
    let mut listen: SocketAddr = "127.0.0.1:3000".parse().expect("valid default");
    let mut json = false;
    let mut std_runtime = false;
    let mut turn: Vec<String> = Vec::new();
    let mut secret: Option<String> = None;
    let mut ttl = std::time::Duration::from_secs(86_400);
    let mut config = rtc_mesh_core::switchboard::SwitchboardConfig::default();
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    while let Some(arg) = args.next()? {
        match arg {
            Long("listen") => listen = parse_addr(&args.value()?.string()?)?,
            Long("turn") => {
                let u = args.value()?.string()?;
                let u = if u.starts_with("turn:") || u.starts_with("turns:") {
                    u
                } else {
                    format!("turn:{u}")
                };
                rtc_mesh_core::member::check_ice_url(&u)
                    .map_err(|e| Usage(format!("--turn {u:?}: {e}")))?;
                turn.push(u);
            }
            Long("turn-secret") => secret = Some(args.value()?.string()?),
            Long("turn-ttl") => {
                let v = args.value()?.string()?;
                let secs: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| (60..=30 * 86_400).contains(s))
                    .ok_or_else(|| {
                        Usage(format!("--turn-ttl {v:?}: seconds, from 60 to 2592000"))
                    })?;
                ttl = std::time::Duration::from_secs(secs);
            }
            Long("token-secret") => {
                let key = crate::invite::parse_token_secret(&args.value()?.string()?)?;
                config.tokens = Some(rtc_mesh_core::switchboard::TokenGate::new(
                    key,
                    std::time::Instant::now(),
                    unix,
                ));
            }
            Long("max-per-ip") => {
                let v = args.value()?.string()?;
                config.max_per_ip = v
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| Usage(format!("--max-per-ip {v:?}: a number, 1 or more")))?;
            }
            Long("limit-loopback") => config.limit_loopback = true,
            Long("json") => json = true,
            Long("runtime") => {
                std_runtime = parse_runtime(&args.value()?.string()?)? == Runtime::Std
            }
            Long("help") | Short('h') => {
                print!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(other.unexpected().into()),
        }
    }
    match (turn.is_empty(), secret) {
        (true, None) => {}
        (false, Some(secret)) => {
            let mut offer = rtc_mesh_core::switchboard::TurnOffer::new(
                turn,
                secret,
                std::time::Instant::now(),
                unix,
            );
            offer.ttl = ttl;
            config.turn = Some(offer);
        }
        (true, Some(_)) => return Err(Usage("--turn-secret needs --turn".into())),
        (false, None) => {
            return Err(Usage(
                "--turn needs --turn-secret (the TURN server's auth secret)".into(),
            ))
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
        let server = match rtc_mesh_std::switchboard::Server::bind(listen, config.clone()) {
            Ok(s) => s,
            Err(e) => return Ok(fail(bind_error(listen, e))),
        };
        ready(server.local_addr());
        loop {
            std::thread::park();
        }
    }
    Ok(smol::block_on(async {
        let server = match rtc_mesh_smol::switchboard::Server::bind(listen, config).await {
            Ok(s) => s,
            Err(e) => return fail(bind_error(listen, e)),
        };
        ready(server.local_addr());
        server.run_until(smol::future::pending::<()>()).await;
        ExitCode::SUCCESS
    }))
}
