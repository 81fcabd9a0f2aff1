//! The `rtc-mesh` program: one module per command (`replicate`, `serve`, `join`,
//! `demo`), the stdin/stdout line protocol (`control`) and the line loop they share
//! (`lines`). See `USAGE` for what each command takes.

mod control;
mod demo;
mod invite;
mod join;
mod lines;
mod member;
mod replicate;
mod serve;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use rtc_mesh_core::{Codec, StoreError};
use rtc_mesh_smol::mesh::MemberError;

const USAGE: &str = "\
rtc-mesh: a key/value store kept in sync across peers (scuttlebutt protocol)

Usage:
  rtc-mesh demo [--peers N] [--keys K] [--codec auto|json|postcard]
  rtc-mesh replicate (--listen ADDR | --connect ADDR) [--codec json|postcard]
                     [--id ID] [--runtime smol|std] [--json]
  rtc-mesh serve [--listen ADDR] [--token-secret K] [--runtime smol|std] [--json]
  rtc-mesh join ROOM [--signal URL] [--secret S] [--token T] [--id ID]
                     [--codec auto|json|postcard] [--bind ADDR] [--stun HOST:PORT]
                     [--listen ADDR] [--runtime smol|std] [--json]
  rtc-mesh invite ROOM [--signal URL]      a fresh secret for a secured room
  rtc-mesh token ROOM --token-secret K     an admission token for a switchboard
  rtc-mesh help

Run `rtc-mesh <command> --help` for details.
";

/// A command-line error: message for stderr, exit code 2.
pub(crate) struct Usage(String);

impl From<lexopt::Error> for Usage {
    fn from(e: lexopt::Error) -> Self {
        Usage(e.to_string())
    }
}

fn main() -> ExitCode {
    // RTC_MESH_LOG=FILTER (say `is=debug,turn_client_proto=trace`) logs what the
    // WebRTC, ICE and TURN crates trace, to standard error: for finding why a link fails.
    if let Some(filter) = std::env::var_os("RTC_MESH_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter.to_string_lossy()))
            .with_writer(std::io::stderr)
            .init();
    }
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
        "replicate" => replicate::run(args),
        "demo" => demo::run(args),
        "serve" => serve::run(args),
        "join" => join::run(args),
        "invite" => invite::invite(args),
        "token" => invite::token(args),
        other => Err(Usage(format!("unknown command {other:?}"))),
    };
    match result {
        Ok(code) => code,
        Err(Usage(msg)) => usage_error(&msg),
    }
}

pub(crate) fn usage_error(msg: &str) -> ExitCode {
    eprintln!("rtc-mesh: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

pub(crate) fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("rtc-mesh: {msg}");
    ExitCode::from(1)
}

/// A fresh peer id, by the rule every member follows.
pub(crate) fn random_id() -> String {
    rtc_mesh_smol::entropy().peer_id()
}

pub(crate) fn parse_addr(s: &str) -> Result<SocketAddr, Usage> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Usage(format!("invalid address {s:?} (expected HOST:PORT)")))
}

pub(crate) fn parse_codec(s: &str) -> Result<Codec, Usage> {
    match s {
        "json" => Ok(Codec::Json),
        "postcard" => Ok(Codec::Postcard),
        _ => Err(Usage(format!(
            "invalid codec {s:?} (expected json or postcard)"
        ))),
    }
}

/// A join codec choice: `auto` (postcard with our peers, json otherwise) or one codec.
pub(crate) fn parse_codecs(s: &str) -> Result<Vec<Codec>, Usage> {
    match s {
        "auto" => Ok(vec![Codec::Postcard, Codec::Json]),
        "json" => Ok(vec![Codec::Json]),
        "postcard" => Ok(vec![Codec::Postcard]),
        o => Err(Usage(format!(
            "invalid codec {o:?} (expected auto, json or postcard)"
        ))),
    }
}

pub(crate) fn parse_runtime(s: &str) -> Result<Runtime, Usage> {
    match s {
        "smol" => Ok(Runtime::Smol),
        "std" => Ok(Runtime::Std),
        o => Err(Usage(format!(
            "invalid runtime {o:?} (expected smol or std)"
        ))),
    }
}

/// `--data DIR`, `--durability`, `--repair` as given (shared by `join` and
/// `replicate`).
#[derive(Default)]
pub(crate) struct DataArgs {
    pub(crate) dir: Option<String>,
    pub(crate) durability: Option<rtc_mesh_core::persist::Durability>,
    pub(crate) repair: bool,
}

impl DataArgs {
    /// Takes option `name` (`data`, `durability` or `repair`) and its value.
    pub(crate) fn take(&mut self, name: &str, args: &mut lexopt::Parser) -> Result<(), Usage> {
        use lexopt::prelude::*;
        match name {
            "data" => self.dir = Some(args.value()?.string()?),
            "durability" => {
                let v = args.value()?.string()?;
                self.durability = Some(v.parse().map_err(Usage)?);
            }
            _ => self.repair = true,
        }
        Ok(())
    }

    /// The options they make (none without `--data`).
    pub(crate) fn options(self) -> Result<Option<rtc_mesh_core::member::DataOptions>, Usage> {
        let Some(dir) = self.dir else {
            if self.durability.is_some() || self.repair {
                return Err(Usage("--durability and --repair need --data DIR".into()));
            }
            return Ok(None);
        };
        let mut d = rtc_mesh_core::member::DataOptions::new(dir);
        if let Some(level) = self.durability {
            d.durability = level;
        }
        d.repair = self.repair;
        Ok(Some(d))
    }
}

/// Help text of the data options.
pub(crate) const DATA_USAGE: &str = "\
  --data DIR           keep the store in DIR (made if missing; one process at a
                       time): restored at start, then only the difference is synced
  --durability memory|process|power   what an acknowledged write (its `update`
                       event with local: true) survives: process (default with
                       --data) a kill; power a power loss too (synced to disk first)
  --repair             a damaged log in DIR: keep what comes before the damage
";

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runtime {
    Smol,
    Std,
}

pub(crate) fn bind_error(a: SocketAddr, e: io::Error) -> String {
    if e.kind() == io::ErrorKind::AddrInUse {
        format!("cannot listen on {a}: the address is already in use")
    } else {
        format!("cannot listen on {a}: {e}")
    }
}

pub(crate) fn connect_error(a: SocketAddr, e: io::Error) -> String {
    format!("cannot connect to {a}: {e}")
}

pub(crate) fn member_error_code(e: &MemberError) -> &'static str {
    match e {
        MemberError::Store(e) => store_error_code(e),
        MemberError::Attach(_) => "attach_failed",
        _ => "closed",
    }
}

pub(crate) fn store_error_code(e: &StoreError) -> &'static str {
    match e {
        StoreError::KeyTooLong { .. } => "key_too_long",
        StoreError::ProtoKey => "bad_key",
        StoreError::ValueTooLarge { .. } => "value_too_large",
        _ => "bad_value",
    }
}
