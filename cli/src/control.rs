//! The line protocol of the `rtc-mesh` program: JSON commands in, JSON events out.
//!
//! `rtc-mesh replicate` and `rtc-mesh join` read one command per line on stdin and,
//! with `--json`, write one event per line on stdout. Both runtimes share this module,
//! so the protocol is defined once:
//!
//! | command | effect |
//! |---|---|
//! | `{"op":"set","key":K,"value":V}` | set K to V (`null` deletes) |
//! | `{"op":"delete","key":K}` | delete K |
//! | `{"op":"get","key":K}` | answer `value` |
//! | `{"op":"dump"}` | answer `dump` |
//! | `{"op":"peers"}` | answer `peers` (join) |
//! | `{"op":"stats"}` | answer `stats` (the member's counters) |
//! | `{"op":"connect","addr":"HOST:PORT"}` | open one more link (replicate) |
//! | `{"op":"close"}` | flush links, answer `closed`, exit 0 (end of input does the same) |
//!
//! Every event is `{"event":"<name>",...fields}`: `ready{id,addr}`,
//! `update{key,value,deleted,source,ts,local}`, `synced{peer}`, `synced_all{peers}`,
//! `value{key,value}`, `dump{data}` (deleted keys left out), `error{code,message}`,
//! `closed{}`, and for `join` `peer_join{peer,attributes}`,
//! `peer_leave{peer,reason}` (reason `left`, `timeout`, `closed`, `failed` or `removed`),
//! `peer_misbehaved{peer,reason}` and `refused_by_peer{peer,reason}` (secured rooms: a
//! link closed for updates refused, by us or by the peer) and
//! `peers{peers:[{peer,attributes,state,codec}]}` and `stats{mesh:{..},node:{..},store:{..}}`
//! (every counter of `MeshStats`, `NodeStats` and `StoreStats` by its field's name; in a
//! secured room `mesh.unsecured_signals`, `unseal_failures`, `bad_signatures` and
//! `stale_signals` count the signals refused, `store.unsigned`, `bad_signatures`,
//! `bad_sources`, `not_owner` the updates refused and `store.held` those held back).
//! A bad command line gets an `error` event; the program goes on.

use rtc_mesh_core::limits::Limits;
use rtc_mesh_core::store::StoreEvent;
use rtc_mesh_core::value::{write_json, write_number, write_string, Object, Value, ValueError};

/// A command read from the program's input.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// Set a key (`null` deletes).
    Set {
        /// The key.
        key: String,
        /// The value.
        value: Value,
    },
    /// Delete a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Read a key.
    Get {
        /// The key.
        key: String,
    },
    /// Read every live key.
    Dump,
    /// List peers.
    Peers,
    /// The member's counters.
    Stats,
    /// Open one more link to an address (`replicate`).
    Connect {
        /// `HOST:PORT`.
        addr: String,
    },
    /// Flush and exit.
    Close,
}

/// Why a command line was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The line is not valid JSON.
    #[error("{0}")]
    Json(ValueError),
    /// The line is JSON but not an object.
    #[error("a command is a JSON object such as {{\"op\":\"get\",\"key\":\"k\"}}")]
    NotAnObject,
    /// A field is missing or has the wrong type.
    #[error("field {field:?} must be {expected}")]
    Field {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// The `op` is not one of the known commands.
    #[error("unknown op {0:?} (expected set, delete, get, dump, peers, connect or close)")]
    UnknownOp(String),
}

impl CommandError {
    /// A short machine-readable code for the `error` event.
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::Json(_) => "bad_json",
            CommandError::NotAnObject | CommandError::Field { .. } => "bad_command",
            CommandError::UnknownOp(_) => "unknown_op",
        }
    }
}

/// Parses one command line.
pub fn parse_command(line: &str, limits: &Limits) -> Result<Command, CommandError> {
    let v = Value::from_json_with(line.as_bytes(), limits).map_err(CommandError::Json)?;
    let Value::Object(o) = v else {
        return Err(CommandError::NotAnObject);
    };
    let op = match o.get("op") {
        Some(Value::String(s)) => s.as_str(),
        _ => {
            return Err(CommandError::Field {
                field: "op",
                expected: "a string",
            })
        }
    };
    let key = || match o.get("key") {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(CommandError::Field {
            field: "key",
            expected: "a string",
        }),
    };
    Ok(match op {
        "set" => Command::Set {
            key: key()?,
            value: o.get("value").cloned().ok_or(CommandError::Field {
                field: "value",
                expected: "present (null deletes)",
            })?,
        },
        "delete" => Command::Delete { key: key()? },
        "get" => Command::Get { key: key()? },
        "dump" => Command::Dump,
        "peers" => Command::Peers,
        "stats" => Command::Stats,
        "connect" => Command::Connect {
            addr: match o.get("addr") {
                Some(Value::String(s)) => s.clone(),
                _ => {
                    return Err(CommandError::Field {
                        field: "addr",
                        expected: "a string HOST:PORT",
                    })
                }
            },
        },
        "close" => Command::Close,
        other => return Err(CommandError::UnknownOp(other.to_owned())),
    })
}

/// A peer as listed by the `peers` event.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerReport {
    /// Peer id.
    pub peer: String,
    /// Its announce attributes.
    pub attributes: Value,
    /// Link state (`connecting`, `connected`, `synced`, …).
    pub state: String,
    /// The codec of its link, if any.
    pub codec: Option<String>,
    /// Bytes and updates each way on its link, and the round trip.
    pub stats: rtc_mesh_core::session::SessionStats,
    /// The path its link uses (each end's candidate type and address), once known.
    pub path: Option<rtc_mesh_core::node::LinkPath>,
    /// Negotiations that failed in a row.
    pub failures: u32,
    /// Until the next negotiation, while there is no connection.
    pub retry_in: Option<std::time::Duration>,
}

/// An event the program writes.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Report<'a> {
    /// Started: our id and the bound address.
    Ready {
        /// Our id.
        id: &'a str,
        /// The bound address (`join`: the first UDP one).
        addr: &'a str,
        /// `join`: every bound UDP address, each a host candidate.
        addrs: &'a [String],
        /// `join --listen`: the TCP address replication links are accepted on.
        tcp: Option<&'a str>,
    },
    /// A store change.
    Update(&'a StoreEvent),
    /// Synced with one peer.
    Synced {
        /// Its id.
        peer: &'a str,
    },
    /// Synced with every peer.
    SyncedAll {
        /// Their ids.
        peers: &'a [String],
    },
    /// Answer to `get`.
    Value {
        /// The key.
        key: &'a str,
        /// The value, `None` when absent.
        value: Option<Value>,
    },
    /// Answer to `dump`.
    Dump(&'a Object),
    /// Something went wrong.
    Error {
        /// Machine-readable code.
        code: &'a str,
        /// Human-readable message.
        message: &'a str,
    },
    /// A TURN server gave us a relayed address.
    Relay {
        /// The server.
        server: &'a str,
        /// Our relayed address on it.
        relayed: &'a str,
    },
    /// The switchboard offered TURN servers (with credentials, not shown), used as
    /// this member was given none.
    IceOffered {
        /// Their URLs.
        urls: Vec<String>,
    },
    /// A connection to a peer could not be made; it is retried.
    LinkFailed {
        /// The peer.
        peer: &'a str,
        /// Failures in a row.
        failures: u32,
        /// Until the next attempt.
        retry_in: Option<std::time::Duration>,
    },
    /// A peer joined.
    PeerJoin {
        /// Its id.
        peer: &'a str,
        /// Its announce attributes.
        attributes: &'a Value,
    },
    /// A secured room moved to a new key epoch (after a removal).
    Rekeyed {
        /// The epoch.
        epoch: u32,
        /// The member that made it.
        by: &'a str,
    },
    /// A peer left.
    PeerLeave {
        /// Its id.
        peer: &'a str,
        /// `left`, `timeout`, `closed`, `failed` or `removed`.
        reason: &'a str,
    },
    /// Answer to `peers`.
    Peers(&'a [PeerReport]),
    /// Answer to `stats`.
    Stats(&'a rtc_mesh_core::member::MemberStats),
    /// A secured room: a peer sent updates our store refused (forged, unsigned, into
    /// another member's space) and its link was closed (`peer_misbehaved`); or a peer
    /// closed ours for what we relayed (`told`: `refused_by_peer`).
    PeerMisbehaved {
        /// Its id.
        peer: &'a str,
        /// `bad_sig`, `unsigned`, `bad_source`, `not_owner`.
        reason: &'a str,
        /// We were told (the peer refused ours).
        told: bool,
    },
    /// Closed; the program exits.
    Closed,
}

struct Line(String);

impl Line {
    fn new(event: &str) -> Self {
        let mut s = String::from("{\"event\":");
        write_string(event, &mut s, false);
        Line(s)
    }
    fn key(&mut self, k: &str) -> &mut String {
        self.0.push(',');
        write_string(k, &mut self.0, false);
        self.0.push(':');
        &mut self.0
    }
    fn str(&mut self, k: &str, v: &str) -> &mut Self {
        write_string(v, self.key(k), false);
        self
    }
    fn value(&mut self, k: &str, v: &Value) -> &mut Self {
        write_json(v, self.key(k), false);
        self
    }
    fn raw(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k).push_str(v);
        self
    }
    fn strs(&mut self, k: &str, v: &[String]) -> &mut Self {
        let arr = Value::Array(v.iter().map(|s| Value::from(s.as_str())).collect());
        self.value(k, &arr)
    }
    fn done(&mut self) -> String {
        let mut s = std::mem::take(&mut self.0);
        s.push('}');
        s
    }
}

impl Report<'_> {
    /// The event as one JSON line (without the newline).
    pub fn to_json_line(&self) -> String {
        match self {
            Report::Ready {
                id,
                addr,
                addrs,
                tcp,
            } => {
                let mut l = Line::new("ready");
                l.str("id", id).str("addr", addr);
                if !addrs.is_empty() {
                    l.strs("addrs", addrs);
                }
                if let Some(t) = tcp {
                    l.str("tcp", t);
                }
                l.done()
            }
            Report::Update(e) => {
                let mut l = Line::new("update");
                l.str("key", &e.key);
                e.value.write_json(l.key("value"), false);
                l.raw("deleted", if e.deleted { "true" } else { "false" });
                l.str("source", &e.source);
                write_number(e.ts, l.key("ts"));
                l.raw("local", if e.local { "true" } else { "false" });
                l.done()
            }
            Report::Synced { peer } => Line::new("synced").str("peer", peer).done(),
            Report::SyncedAll { peers } => Line::new("synced_all").strs("peers", peers).done(),
            Report::Value { key, value } => Line::new("value")
                .str("key", key)
                .value("value", value.as_ref().unwrap_or(&Value::Null))
                .done(),
            Report::Dump(o) => Line::new("dump")
                .value("data", &Value::Object((*o).clone()))
                .done(),
            Report::Error { code, message } => Line::new("error")
                .str("code", code)
                .str("message", message)
                .done(),
            Report::PeerJoin { peer, attributes } => Line::new("peer_join")
                .str("peer", peer)
                .value("attributes", attributes)
                .done(),
            Report::Rekeyed { epoch, by } => Line::new("rekeyed")
                .raw("epoch", &epoch.to_string())
                .str("by", by)
                .done(),
            Report::PeerLeave { peer, reason } => Line::new("peer_leave")
                .str("peer", peer)
                .str("reason", reason)
                .done(),
            Report::Peers(list) => {
                let arr = list
                    .iter()
                    .map(|p| {
                        let mut o = Object::new();
                        o.insert("peer", p.peer.as_str().into());
                        o.insert("attributes", p.attributes.clone());
                        o.insert("state", p.state.as_str().into());
                        o.insert(
                            "codec",
                            p.codec.as_deref().map(Value::from).unwrap_or(Value::Null),
                        );
                        let st = &p.stats;
                        for (k, n) in [
                            ("bytes_in", st.bytes_in),
                            ("bytes_out", st.bytes_out),
                            ("updates_in", st.updates_in),
                            ("updates_out", st.updates_out),
                            ("pings_in", st.pings_in),
                        ] {
                            o.insert(k, Value::from(n as f64));
                        }
                        o.insert(
                            "rtt_ms",
                            st.rtt
                                .map(|d| Value::from(d.as_secs_f64() * 1000.0))
                                .unwrap_or(Value::Null),
                        );
                        let end = |e: &rtc_mesh_core::node::PathEnd| {
                            let mut o = Object::new();
                            o.insert("type", e.kind.name().into());
                            o.insert("addr", e.addr.to_string().as_str().into());
                            Value::Object(o)
                        };
                        o.insert(
                            "path",
                            match &p.path {
                                Some(path) => {
                                    let mut o = Object::new();
                                    o.insert("local", end(&path.local));
                                    o.insert("remote", end(&path.remote));
                                    Value::Object(o)
                                }
                                None => Value::Null,
                            },
                        );
                        o.insert("failures", Value::from(f64::from(p.failures)));
                        o.insert(
                            "retry_in_ms",
                            p.retry_in
                                .map(|d| Value::from(d.as_millis() as f64))
                                .unwrap_or(Value::Null),
                        );
                        Value::Object(o)
                    })
                    .collect();
                Line::new("peers").value("peers", &Value::Array(arr)).done()
            }
            Report::PeerMisbehaved { peer, reason, told } => Line::new(if *told {
                "refused_by_peer"
            } else {
                "peer_misbehaved"
            })
            .str("peer", peer)
            .str("reason", reason)
            .done(),
            Report::Stats(st) => {
                let group = |counters: &[(&str, u64)]| {
                    let mut o = Object::new();
                    for (k, n) in counters {
                        o.insert(*k, Value::from(*n as f64));
                    }
                    Value::Object(o)
                };
                Line::new("stats")
                    .value("mesh", &group(&st.mesh.counters()))
                    .value("node", &group(&st.node.counters()))
                    .value("store", &group(&st.store.counters()))
                    .done()
            }
            Report::Relay { server, relayed } => Line::new("relay")
                .str("server", server)
                .str("relayed", relayed)
                .done(),
            Report::IceOffered { urls } => Line::new("ice_offered")
                .value(
                    "urls",
                    &Value::Array(urls.iter().map(|u| Value::from(u.as_str())).collect()),
                )
                .done(),
            Report::LinkFailed {
                peer,
                failures,
                retry_in,
            } => Line::new("link_failed")
                .str("peer", peer)
                .value("failures", &Value::from(f64::from(*failures)))
                .value(
                    "retry_in_ms",
                    &retry_in
                        .map(|d| Value::from(d.as_millis() as f64))
                        .unwrap_or(Value::Null),
                )
                .done(),
            Report::Closed => Line::new("closed").done(),
        }
    }

    /// The event for a person reading a terminal.
    pub fn to_human(&self) -> String {
        match self {
            Report::Ready {
                id,
                addr,
                addrs,
                tcp,
            } => {
                let at = if addrs.len() > 1 {
                    format!("addresses {}", addrs.join(", "))
                } else {
                    format!("address {addr}")
                };
                match tcp {
                    Some(t) => format!("ready: id {id}, {at}, TCP links on {t}"),
                    None => format!("ready: id {id}, {at}"),
                }
            }
            Report::Update(e) => {
                let who = if e.local {
                    "local".to_owned()
                } else {
                    format!("from {}", e.source)
                };
                if e.deleted {
                    format!("{} deleted ({who})", e.key)
                } else {
                    format!("{} = {} ({who})", e.key, e.value.to_json())
                }
            }
            Report::Synced { peer } => format!("synced with {peer}"),
            Report::SyncedAll { peers } => format!("synced with all peers: {}", peers.join(", ")),
            Report::Value {
                key,
                value: Some(v),
            } => format!("{key} = {v}"),
            Report::Value { key, value: None } => format!("{key} is not set"),
            Report::Dump(o) => Value::Object((*o).clone()).to_json(),
            Report::Error { code, message } => format!("error ({code}): {message}"),
            Report::PeerJoin { peer, attributes } => format!("peer joined: {peer} {attributes}"),
            Report::PeerLeave { peer, reason } => format!("peer left: {peer} ({reason})"),
            Report::Rekeyed { epoch, by } => {
                format!("the room's key moved to epoch {epoch} (by {by})")
            }
            Report::Peers(list) => {
                if list.is_empty() {
                    "no peers".to_owned()
                } else {
                    list.iter()
                        .map(|p| {
                            let st = &p.stats;
                            let rtt = st
                                .rtt
                                .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
                                .unwrap_or_else(|| "-".into());
                            format!(
                                "{} {} {} rtt {} in {} B/{} updates, out {} B/{} updates{}",
                                p.peer,
                                p.state,
                                p.codec.as_deref().unwrap_or("-"),
                                rtt,
                                st.bytes_in,
                                st.updates_in,
                                st.bytes_out,
                                st.updates_out,
                                match &p.path {
                                    Some(x) => format!(
                                        ", via {} {} to {} {}",
                                        x.local.kind.name(),
                                        x.local.addr,
                                        x.remote.kind.name(),
                                        x.remote.addr
                                    ),
                                    None => String::new(),
                                }
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("\n")
                }
            }
            Report::PeerMisbehaved {
                peer,
                reason,
                told: false,
            } => {
                format!("{peer} sent updates our store refused ({reason}): its link is closed")
            }
            Report::PeerMisbehaved {
                peer,
                reason,
                told: true,
            } => {
                format!("{peer} closed our link: its store refused what we sent ({reason})")
            }
            Report::Stats(st) => {
                let line = |counters: &[(&str, u64)]| {
                    counters
                        .iter()
                        .map(|(k, n)| format!("{k} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!(
                    "stats: mesh: {}\nstats: node: {}\nstats: store: {}",
                    line(&st.mesh.counters()),
                    line(&st.node.counters()),
                    line(&st.store.counters())
                )
            }
            Report::Relay { server, relayed } => {
                format!("relay: TURN server {server} relays for us at {relayed}")
            }
            Report::IceOffered { urls } => {
                format!("the switchboard offers TURN: {}", urls.join(", "))
            }
            Report::LinkFailed {
                peer,
                failures,
                retry_in,
            } => format!(
                "no connection to {peer} ({failures} failed in a row){}",
                retry_in
                    .map(|d| format!("; trying again in {:.1} s", d.as_secs_f64()))
                    .unwrap_or_default()
            ),
            Report::Closed => "closed".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        let l = Limits::default();
        assert_eq!(
            parse_command(r#"{"op":"set","key":"k","value":{"a":[1]}}"#, &l),
            Ok(Command::Set {
                key: "k".into(),
                value: Value::from_json(r#"{"a":[1]}"#).unwrap()
            })
        );
        assert_eq!(parse_command(r#"{"op":"dump"}"#, &l), Ok(Command::Dump));
        assert_eq!(parse_command("nope", &l).unwrap_err().code(), "bad_json");
        assert_eq!(parse_command("[1]", &l).unwrap_err().code(), "bad_command");
        assert_eq!(
            parse_command(r#"{"op":"get"}"#, &l).unwrap_err().code(),
            "bad_command"
        );
        assert_eq!(
            parse_command(r#"{"op":"fly"}"#, &l).unwrap_err().code(),
            "unknown_op"
        );
    }

    #[test]
    fn events_are_json_lines() {
        assert_eq!(
            Report::Ready {
                id: "a",
                addr: "127.0.0.1:1",
                addrs: &[],
                tcp: None,
            }
            .to_json_line(),
            r#"{"event":"ready","id":"a","addr":"127.0.0.1:1"}"#
        );
        let two = ["127.0.0.1:1".to_owned(), "10.0.1.2:2".to_owned()];
        let ready = Report::Ready {
            id: "a",
            addr: "127.0.0.1:1",
            addrs: &two,
            tcp: None,
        };
        assert_eq!(
            ready.to_json_line(),
            r#"{"event":"ready","id":"a","addr":"127.0.0.1:1","addrs":["127.0.0.1:1","10.0.1.2:2"]}"#
        );
        assert_eq!(
            ready.to_human(),
            "ready: id a, addresses 127.0.0.1:1, 10.0.1.2:2"
        );
        assert_eq!(Report::Closed.to_json_line(), r#"{"event":"closed"}"#);
    }
}
