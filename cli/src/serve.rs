//! `rtc-mesh serve`: the switchboard (signalling server, demo page, browser client).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use crate::{bind_error, fail, parse_addr, parse_runtime, Runtime, Usage};

pub(crate) const USAGE: &str = "\
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

pub(crate) fn run(mut args: lexopt::Parser) -> Result<ExitCode, Usage> {
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
                print!("{USAGE}");
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
