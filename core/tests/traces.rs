//! Traces of core's state machines for the browser client to replay (in Node, without a
//! browser: `web/tests/replay.test.mjs`), so that the JavaScript modules are held to the
//! Rust rules mechanically. Each trace is a seeded scenario: inputs with their times,
//! and every output after each input. The checked-in files must match what core does
//! now; `RTC_MESH_WRITE_TRACES=1 cargo test -p rtc-mesh-core --test traces` rewrites
//! them after a deliberate change of behaviour.

use std::time::{Duration, Instant};

use rtc_mesh_core::signal_client::{ClientConfig, ClientOutput, SignalClient};
use serde_json::{json, Value as J};

mod common;

/// Core's generator (the scenario's own, not the client's).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn ms(t0: Instant, t: Instant) -> f64 {
    t.saturating_duration_since(t0).as_secs_f64() * 1000.0
}

fn drain(c: &mut SignalClient, t0: Instant) -> Vec<J> {
    let mut out = Vec::new();
    loop {
        match c.poll_output() {
            ClientOutput::Connect => out.push(json!(["connect"])),
            ClientOutput::Send(t) => out.push(json!(["send", t])),
            ClientOutput::Close => out.push(json!(["close"])),
            ClientOutput::Connected => out.push(json!(["connected"])),
            ClientOutput::Disconnected => out.push(json!(["disconnected"])),
            ClientOutput::Message(_) | ClientOutput::BadMessage(_) => {}
            ClientOutput::Timeout(at) => {
                out.push(json!(["timeout", ms(t0, at)]));
                return out;
            }
        }
    }
}

/// One scenario of the signalling client: connections that fail and succeed, drops at
/// any moment, sends and announces while up and down (past a small queue's bound),
/// timers fired when due or early, and a close at the end.
fn signal_client_trace(seed: u64) -> J {
    let mut rng = Rng(seed | 1);
    let t0 = Instant::now();
    let mut config = ClientConfig::default();
    config.max_queue = 3;
    config.seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut c = SignalClient::new(config.clone(), t0);
    let mut steps = vec![json!({ "at": 0.0, "input": ["new"], "out": drain(&mut c, t0) })];
    let mut now = t0;
    let mut due = None;
    let mut n = 0;
    for _ in 0..400 {
        now += Duration::from_micros(rng.below(3_000_000));
        let input = match rng.below(10) {
            0 | 1 => {
                c.handle_connected(now);
                json!(["connected"])
            }
            2 | 3 => {
                c.handle_disconnected(now);
                json!(["disconnected"])
            }
            4 | 5 => {
                // The timer, when due (or now, early).
                if let Some(at) = due.filter(|_| rng.below(4) > 0) {
                    now = now.max(at);
                }
                c.handle_timeout(now);
                json!(["timeout"])
            }
            6..=8 => {
                n += 1;
                let text = format!("/m|a|{n}");
                c.send_text(text.clone());
                json!(["send", text])
            }
            _ => {
                n += 1;
                let text = format!("/announce|a|{{\"n\":{n}}}");
                c.announce_text(text.clone());
                json!(["announce", text])
            }
        };
        let out = drain(&mut c, t0);
        due = out
            .last()
            .and_then(|o| o[1].as_f64())
            .map(|m| t0 + Duration::from_secs_f64(m / 1000.0));
        steps.push(json!({ "at": ms(t0, now), "input": input, "out": out }));
    }
    c.close();
    steps.push(json!({ "at": ms(t0, now), "input": ["close"], "out": drain(&mut c, t0) }));
    json!({
        "seed": seed,
        "config": {
            "min_backoff_ms": config.min_backoff.as_secs_f64() * 1000.0,
            "max_backoff_ms": config.max_backoff.as_secs_f64() * 1000.0,
            "max_queue": config.max_queue,
            "seed": config.seed.to_string(),
        },
        "steps": steps,
    })
}

#[test]
fn the_signal_client_traces_are_current() {
    let traces: Vec<J> = [1u64, 2, 3, 42, 0xdead_beef]
        .into_iter()
        .map(signal_client_trace)
        .collect();
    let doc = json!({
        "about": "core's SignalClient: inputs with their times (ms since the start) and the \
                  outputs after each; written by core/tests/traces.rs, replayed by \
                  web/tests/replay.test.mjs",
        "traces": traces,
    });
    common::check_or_write("signal-client.json", &doc, false);
}

// ---- The mesh ----------------------------------------------------------------------

use std::collections::BTreeMap;

use rtc_mesh_core::control::Control;
use rtc_mesh_core::mesh::{LinkCommand, Mesh, MeshConfig, MeshEvent, MeshOutput, SdpKind};
use rtc_mesh_core::signal::Signal;
use rtc_mesh_core::{
    Codec, Decoder, Framing, Limits, LinkId, Message, Object, Replica, ReplicaOutput, Store,
    StoreConfig, Value,
};

fn obj_json(o: &Object) -> J {
    serde_json::from_str(&Value::Object(o.clone()).to_json()).expect("core writes JSON")
}

/// What the link layer in the scenario knows of the connection to one remote.
enum Conn {
    Negotiating { offerer: bool, codec: Codec },
    Open(Box<Remote>),
}

/// The remote end of an open link: a replica of its own, our decoder of what we send
/// it (to name the liveness messages), and what it has sent that we have not read.
struct Remote {
    replica: Replica,
    link: LinkId,
    codec: Codec,
    ours: Decoder,
    inbox: std::collections::VecDeque<Vec<u8>>,
}

impl Remote {
    fn new(codec: Codec, source: &str, t0: Instant) -> Remote {
        let mut replica = Replica::new(Store::new(StoreConfig::new(source, 0.0, t0)).unwrap());
        let link = replica.open_link(codec, Framing::Messages);
        let mut r = Remote {
            replica,
            link,
            codec,
            ours: Decoder::new(codec, Framing::Messages, Limits::default()),
            inbox: Default::default(),
        };
        r.pump();
        r
    }

    fn pump(&mut self) {
        loop {
            match self.replica.poll_output() {
                ReplicaOutput::Transmit(_, data) => self.inbox.push_back(data),
                ReplicaOutput::Event(_) => {}
                ReplicaOutput::Timeout(_) => return,
            }
        }
    }

    /// Takes what we sent it; returns the liveness messages among it.
    fn take(&mut self, now: Instant, data: &[u8]) -> Vec<&'static str> {
        self.replica.handle_input(now, self.link, data);
        self.pump();
        self.ours.push(data);
        let mut named = Vec::new();
        while let Some(m) = self.ours.poll_message() {
            match m {
                Ok(Message::Ping) => named.push("PING"),
                Ok(Message::Pong) => named.push("PONG"),
                Ok(Message::Control(c)) if c == "BYE" => named.push("BYE"),
                _ => {}
            }
        }
        named
    }
}

fn data_json(codec: Codec, data: &[u8]) -> J {
    match codec {
        Codec::Json => json!(String::from_utf8(data.to_vec()).expect("json lines are text")),
        _ => json!(data.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    }
}

const REMOTES: [&str; 4] = ["c", "k", "p", "x"];

/// One scenario of a mesh ("m") in a room with four remotes (two it offers to, two that
/// offer to it; some foreign, without incarnation or codecs): announces by broadcast and
/// direct, new incarnations, leaves with and without a reason, SDP and candidates
/// early and late, links that open, carry sync traffic and pings, go silent, close or
/// fail, signalling that drops and comes back, writes, new attributes, and a close.
fn mesh_trace(seed: u64) -> J {
    let mut rng = Rng(seed | 1);
    let t0 = Instant::now();
    let codecs = match rng.below(3) {
        0 => vec![Codec::Postcard, Codec::Json],
        1 => vec![Codec::Json, Codec::Postcard],
        _ => vec![Codec::Json],
    };
    let mut config = MeshConfig::new("m", "room", "00000000000000aa", 0.0, t0);
    config.agent = "trace".into();
    config.codecs = codecs.clone();
    config.seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    config.signalling.max_queue = 4;
    let mut mesh = Mesh::new(config.clone()).unwrap();
    // The link layer's view, per remote; each remote's life (incarnation) and codecs.
    let mut conns: BTreeMap<&str, Conn> = BTreeMap::new();
    let mut lives: BTreeMap<&str, u32> = REMOTES.iter().map(|r| (*r, 1)).collect();
    let mut remote_codecs: BTreeMap<&str, Option<Vec<Codec>>> = BTreeMap::new();
    let mut connecting = false;
    let mut connected = false;
    let mut due: Option<Instant> = None;
    let mut now = t0;
    let mut n = 0u32;
    let mut steps = Vec::new();

    // Runs one input's outputs: the link layer follows the commands, what goes to a
    // remote reaches its replica, liveness messages are named.
    let record = |mesh: &mut Mesh,
                  now: Instant,
                  conns: &mut BTreeMap<&'static str, Conn>,
                  connecting: &mut bool,
                  input: J|
     -> (J, Option<Instant>) {
        let mut out = Vec::new();
        let due;
        loop {
            match mesh.poll_output() {
                MeshOutput::SignalConnect => {
                    *connecting = true;
                    out.push(json!(["signal_connect"]));
                }
                MeshOutput::Signal(t) => out.push(json!(["signal", t])),
                MeshOutput::SignalClose => out.push(json!(["signal_close"])),
                MeshOutput::Link(c) => out.push(match c {
                    LinkCommand::Open {
                        peer,
                        offerer,
                        codec,
                    } => {
                        let r = REMOTES.iter().find(|r| **r == peer.as_str()).unwrap();
                        conns.insert(r, Conn::Negotiating { offerer, codec });
                        json!(["open", peer.as_str(), offerer, codec.name()])
                    }
                    LinkCommand::RemoteSdp { peer, kind, sdp } => {
                        let kind = if kind == SdpKind::Offer {
                            "offer"
                        } else {
                            "answer"
                        };
                        json!(["remote_sdp", peer.as_str(), kind, sdp])
                    }
                    LinkCommand::RestartSdp { peer, kind, sdp } => {
                        let kind = if kind == SdpKind::Offer {
                            "offer"
                        } else {
                            "answer"
                        };
                        json!(["restart_sdp", peer.as_str(), kind, sdp])
                    }
                    LinkCommand::RemoteCandidate { peer, candidate } => {
                        json!(["remote_candidate", peer.as_str(), obj_json(&candidate)])
                    }
                    LinkCommand::Close { peer } => {
                        conns.remove(peer.as_str());
                        json!(["close", peer.as_str()])
                    }
                }),
                MeshOutput::Transmit { peer, data } => {
                    if let Some(Conn::Open(r)) = conns.get_mut(peer.as_str()) {
                        for name in r.take(now, &data) {
                            out.push(json!(["tx", peer.as_str(), name]));
                        }
                    }
                }
                MeshOutput::Event(e) => match e {
                    MeshEvent::Online => out.push(json!(["event", "online"])),
                    MeshEvent::Offline => out.push(json!(["event", "offline"])),
                    MeshEvent::PeerJoined { peer, attributes } => out.push(json!([
                        "event",
                        "peer_join",
                        peer.as_str(),
                        obj_json(&attributes)
                    ])),
                    MeshEvent::PeerUpdated { peer, attributes } => out.push(json!([
                        "event",
                        "peer_update",
                        peer.as_str(),
                        obj_json(&attributes)
                    ])),
                    MeshEvent::PeerLeft { peer, reason } => {
                        out.push(json!(["event", "peer_leave", peer.as_str(), reason.name()]))
                    }
                    MeshEvent::Synced { peer } => {
                        out.push(json!(["event", "synced", peer.as_str()]))
                    }
                    MeshEvent::SyncedAll { peers } => out.push(json!([
                        "event",
                        "synced_all",
                        peers.iter().map(|p| p.as_str()).collect::<Vec<_>>()
                    ])),
                    _ => {}
                },
                MeshOutput::Timeout(at) => {
                    out.push(json!(["timeout", ms(t0, at)]));
                    due = Some(at);
                    break;
                }
                _ => {}
            }
        }
        (
            json!({ "at": ms(t0, now), "input": input, "out": out }),
            due,
        )
    };

    mesh.start(now);
    let (s, d) = record(
        &mut mesh,
        now,
        &mut conns,
        &mut connecting,
        json!(["start"]),
    );
    steps.push(s);
    due = d.or(due);
    let mut closed = false;
    for step in 0..900 {
        if step == 800 && !closed {
            closed = true;
            mesh.close(now);
            let (s, d) = record(
                &mut mesh,
                now,
                &mut conns,
                &mut connecting,
                json!(["close"]),
            );
            steps.push(s);
            due = d;
            continue;
        }
        // The timer when it is due (most steps that wait), else some other input.
        if let Some(at) = due.filter(|at| rng.below(3) == 0 && *at < now + Duration::from_secs(12))
        {
            now = now.max(at);
            mesh.handle_timeout(now);
            let (s, d) = record(
                &mut mesh,
                now,
                &mut conns,
                &mut connecting,
                json!(["timeout"]),
            );
            steps.push(s);
            due = d;
            continue;
        }
        now += Duration::from_micros(rng.below(900_000));
        let r = REMOTES[rng.below(4) as usize];
        let life = lives[r];
        let input = match rng.below(30) {
            0 if connecting => {
                connecting = false;
                if rng.below(4) == 0 {
                    mesh.handle_signal_disconnected(now);
                    json!(["signal_disconnected"])
                } else {
                    connected = true;
                    mesh.handle_signal_connected(now);
                    json!(["signal_connected"])
                }
            }
            1 if connected && rng.below(3) == 0 => {
                connected = false;
                mesh.handle_signal_disconnected(now);
                json!(["signal_disconnected"])
            }
            2..=4 if connected => {
                // An announce: broadcast or direct, the same life, a new one or none.
                if rng.below(6) == 0 {
                    lives.insert(r, life + 1);
                }
                let life = lives[r];
                let mut a = Object::new();
                a.insert("id", Value::from(r));
                a.insert(
                    "room",
                    Value::from(if rng.below(12) == 0 { "other" } else { "room" }),
                );
                let foreign = r == "k" || (r == "x" && rng.below(3) == 0);
                if !foreign {
                    a.insert("agent", Value::from("trace"));
                    a.insert("incarnation", Value::from(format!("{life:016x}")));
                    let cs = match (life + r.len() as u32) % 3 {
                        0 => vec![Codec::Postcard, Codec::Json],
                        1 => vec![Codec::Json],
                        _ => vec![Codec::Json, Codec::Postcard],
                    };
                    a.insert(
                        "codecs",
                        Value::Array(cs.iter().map(|c| Value::from(c.name())).collect()),
                    );
                    remote_codecs.insert(r, Some(cs));
                } else {
                    remote_codecs.insert(r, None);
                }
                if rng.below(3) == 0 {
                    a.insert("name", Value::from(format!("n{}", rng.below(3))));
                }
                let mut s = Signal::announce(r, a);
                if rng.below(3) == 0 {
                    s = s.to("m");
                }
                let text = s.encode();
                mesh.handle_signal(now, &text);
                json!(["signal", text])
            }
            5 if connected => {
                let text = if rng.below(2) == 0 {
                    format!("/leave|{r}|{{\"id\":\"{r}\"}}")
                } else {
                    format!("/leave|{r}|{{\"id\":\"{r}\",\"reason\":\"disconnected\"}}")
                };
                mesh.handle_signal(now, &text);
                json!(["signal", text])
            }
            6 | 7 if connected => {
                n += 1;
                let kind = if rng.below(2) == 0 { "offer" } else { "answer" };
                let text = format!(
                    "/to|m|/mesh:sdp|{r}|{{\"type\":\"{kind}\",\"sdp\":\"sdp-{n}\",\"incarnation\":\"{life:016x}\"}}"
                );
                mesh.handle_signal(now, &text);
                json!(["signal", text])
            }
            8 if connected => {
                n += 1;
                let c = format!(
                    "{{\"candidate\":\"candidate:{n} 1 udp 1 127.0.0.1 {} typ host\",\"sdpMid\":\"0\",\"sdpMLineIndex\":0}}",
                    5000 + n
                );
                let text = if rng.below(2) == 0 {
                    format!("/to|m|/mesh:candidate|{r}|{c}")
                } else {
                    format!("/to|m|/mesh:candidates|{r}|[{c},{c}]")
                };
                mesh.handle_signal(now, &text);
                json!(["signal", text])
            }
            9 if connected => {
                let text = match rng.below(4) {
                    0 => "/roominfo|{\"memberCount\":3}".to_string(),
                    1 => "not a message".to_string(),
                    2 => format!("/to|z|/announce|{r}|{{\"id\":\"{r}\",\"room\":\"room\"}}"),
                    _ => "/announce|m|{\"id\":\"m\",\"room\":\"room\"}".to_string(),
                };
                mesh.handle_signal(now, &text);
                json!(["signal", text])
            }
            10 | 11 => match conns.get(r) {
                Some(Conn::Negotiating { offerer, .. }) => {
                    let kind = if *offerer {
                        SdpKind::Offer
                    } else {
                        SdpKind::Answer
                    };
                    n += 1;
                    let sdp = format!("local-{n}");
                    mesh.local_sdp(now, r, kind, &sdp);
                    let kind = if *offerer { "offer" } else { "answer" };
                    json!(["local_sdp", r, kind, sdp])
                }
                _ => continue,
            },
            12 => match conns.get(r) {
                Some(Conn::Negotiating { .. }) => {
                    n += 1;
                    let mut c = Object::new();
                    c.insert(
                        "candidate",
                        Value::from(format!(
                            "candidate:{n} 1 udp 2 127.0.0.1 {} typ host",
                            6000 + n
                        )),
                    );
                    c.insert("sdpMid", Value::from("0"));
                    c.insert("sdpMLineIndex", Value::from(0.0));
                    // As text: its entries in order.
                    let text = Value::Object(c.clone()).to_json();
                    mesh.local_candidate(now, r, c);
                    json!(["local_candidate", r, text])
                }
                _ => continue,
            },
            13..=15 => match conns.get(r) {
                Some(Conn::Negotiating { offerer, codec }) => {
                    // The answerer learns the codec from the channel: the offerer's pick.
                    let codec = if *offerer {
                        *codec
                    } else {
                        match remote_codecs.get(r).cloned().flatten() {
                            Some(theirs) => theirs
                                .into_iter()
                                .find(|c| codecs.contains(c))
                                .unwrap_or(Codec::Json),
                            None => Codec::Json,
                        }
                    };
                    let source = format!("{r}.{life:016x}");
                    conns.insert(r, Conn::Open(Box::new(Remote::new(codec, &source, t0))));
                    mesh.link_open(now, r, codec);
                    json!(["link_open", r, codec.name()])
                }
                Some(Conn::Open(_)) => continue,
                None if rng.below(4) == 0 => {
                    // A link the mesh did not ask for: it closes it if it does not
                    // know the peer (any more), else takes it.
                    let source = format!("{r}.{life:016x}");
                    conns.insert(
                        r,
                        Conn::Open(Box::new(Remote::new(Codec::Json, &source, t0))),
                    );
                    mesh.link_open(now, r, Codec::Json);
                    json!(["link_open", r, "json"])
                }
                None => continue,
            },
            16..=23 => match conns.get_mut(r) {
                Some(Conn::Open(remote)) => {
                    match rng.below(8) {
                        0 => remote.replica.ping(now, remote.link),
                        1 if rng.below(6) == 0 => {
                            remote.replica.send_control(remote.link, &Control::Bye)
                        }
                        _ => {}
                    }
                    remote.pump();
                    let Some(data) = remote.inbox.pop_front() else {
                        continue;
                    };
                    let j = data_json(remote.codec, &data);
                    mesh.link_data(now, r, &data);
                    json!(["link_data", r, j])
                }
                _ => continue,
            },
            24 => match conns.get(r) {
                Some(_) => {
                    conns.remove(r);
                    mesh.link_closed(now, r);
                    json!(["link_closed", r])
                }
                None => continue,
            },
            25 if !closed => {
                n += 1;
                let key = format!("k{}", n % 5);
                mesh.set(now, &key, &Value::from(f64::from(n))).unwrap();
                json!(["set", key, n])
            }
            26 if !closed && rng.below(4) == 0 => {
                let mut a = Object::new();
                a.insert("name", Value::from(format!("m{n}")));
                let j = obj_json(&a);
                mesh.announce(now, a);
                json!(["announce", j])
            }
            _ => {
                mesh.handle_timeout(now);
                json!(["timeout"])
            }
        };
        let (s, d) = record(&mut mesh, now, &mut conns, &mut connecting, input);
        steps.push(s);
        due = d;
    }
    assert!(closed);
    json!({
        "seed": seed,
        "config": {
            "id": config.id,
            "room": config.room,
            "incarnation": config.incarnation,
            "agent": config.agent,
            "codecs": codecs.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "seed": config.seed.to_string(),
            "ping_ms": 1000,
            "dead_ms": 4000,
            "negotiate_ms": 10000,
            "retry_min_ms": 250,
            "retry_max_ms": 10000,
            "signalling": {
                "min_backoff_ms": config.signalling.min_backoff.as_secs_f64() * 1000.0,
                "max_backoff_ms": config.signalling.max_backoff.as_secs_f64() * 1000.0,
                "max_queue": config.signalling.max_queue,
            },
        },
        "steps": steps,
    })
}

#[test]
fn the_mesh_traces_are_current() {
    let traces: Vec<J> = [1u64, 4, 7, 42, 99, 0xdead_beef]
        .into_iter()
        .map(mesh_trace)
        .collect();
    let doc = json!({
        "about": "core's Mesh (peer \"m\" among scripted remotes): inputs with their times \
                  (ms since the start) and the outputs after each (signalling, link \
                  commands, events, and the liveness messages PING/PONG/BYE per link); \
                  written by core/tests/traces.rs, replayed by web/tests/replay.test.mjs",
        "traces": traces,
    });
    common::check_or_write("mesh.json", &doc, false);
}
