//! Writes the seed corpus: `cargo run --manifest-path fuzz/Cargo.toml --bin make-seeds`.
use std::fs;
use std::path::Path;

use rtc_mesh_core::{Clock, Codec, EncodedValue, Encoder, Framing, Message, Update, Value};

fn messages() -> Vec<Message> {
    let mut clock = Clock::new();
    clock.set("A", 1795713876272.0);
    clock.set("B.0123456789abcdef", 1795713877118.001);
    let v = |s: &str| EncodedValue::from_value(&Value::from_json(s).unwrap());
    vec![
        Message::Digest {
            id: "A".into(),
            clock,
        },
        Message::Update(Update {
            key: "preA".into(),
            value: v("1"),
            ts: 1795713876272.0,
            source: "A".into(),
            sig: None,
        }),
        Message::Update(Update {
            key: "preB".into(),
            value: v(r#"{"nested":[1,"x"]}"#),
            ts: 1795713876273.0,
            source: "B".into(),
            sig: None,
        }),
        Message::Update(Update {
            key: "key-0000000001".into(),
            value: v(r#"{"n":1,"s":"v1"}"#),
            ts: 1795713876274.0,
            source: "B".into(),
            sig: None,
        }),
        Message::Update(Update {
            key: "key-0000000002".into(),
            value: v("null"),
            ts: 1795713876274.5,
            source: "B".into(),
            // A signed record (secured rooms).
            sig: Some([7; 64]),
        }),
        Message::Update(Update {
            key: "ключ".into(),
            value: v(r#"[true,false,null,1.5,-2,"é\n"]"#),
            ts: 1795713876275.0,
            source: "A".into(),
            sig: None,
        }),
        Message::Sync,
        Message::Ping,
        Message::Pong,
    ]
}

fn encode(codec: Codec, framing: Framing, frame: usize) -> Vec<Vec<u8>> {
    let mut e = Encoder::with_frame_size(codec, framing, frame);
    for m in messages() {
        e.message(&m);
    }
    let mut big = Encoder::with_frame_size(codec, framing, 64);
    big.message(&Message::Update(Update {
        key: "big".into(),
        value: EncodedValue::from_value(&Value::from("x".repeat(300))),
        ts: 1795713876276.0,
        source: "A".into(),
        sig: None,
    }));
    let mut out = Vec::new();
    while let Some(c) = e.poll_transmit() {
        out.push(c);
    }
    let mut joined = Vec::new();
    while let Some(c) = big.poll_transmit() {
        joined.extend(c);
    }
    out.push(joined);
    out
}

fn write(dir: &str, name: &str, bytes: &[u8]) {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(dir);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join(name), bytes).unwrap();
}

/// Signalling messages: the rtc-signaller 6.3.0 transcript (reference §2.5), the
/// rtc-switchboard 3.2.0 probe (§3.2, in the 0.16-5.x shape with a `{"id"}` sender part,
/// which we refuse), and a few of our own.
const SIGNALS: &[&str] = &[
    r#"/announce|peerA|{"browser":"node","browserVersion":"20.20.2","agent":"signaller@6.3.0","id":"peerA","room":"r6"}"#,
    r#"/roominfo|{"memberCount":1}"#,
    r#"/to|peerB|/announce|peerA|{"browser":"node","browserVersion":"20.20.2","agent":"signaller@6.3.0","id":"peerA","room":"r6"}"#,
    r#"/to|peerB|/hello|peerA|{"x":1}|text"#,
    r#"/hello|peerB|{"y":2}"#,
    r#"/leave|peerB|{"id":"peerB"}"#,
    r#"/hello|{"id":"A"}|{"x":0}"#,
    r#"/announce|{"id":"A"}|{"browser":"node","browserVersion":"?","id":"A","agent":"signaller@6.3.0","room":"r1"}"#,
    r#"/to|B|/announce|{"id":"A"}|{"id":"A","room":"r1"}"#,
    r#"/custom|{"id":"B"}|{"k":"v"}|plain text part"#,
    "hello world",
    "/ping",
    r#"/leave|b|{"id":"b","reason":"disconnected"}"#,
    r#"/to|b|/mesh:sdp|a|{"type":"offer","sdp":"v=0\r\na=x|y\r\n"}|t"#,
    r#"/to|b|/mesh:sdp|a|{"type":"offer","sdp":"v=0\r\na=x\u007cy\r\n"}|t"#,
    r#"/to|b|/mesh:candidates|a|[{"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 5000 typ host","sdpMid":"data","sdpMLineIndex":0}]"#,
];

/// An input of the switchboard target (`fuzz_targets/switchboard.rs`, which documents
/// the format): a configuration byte, then `(slot << 4 | op, arg)` pairs.
struct Ops(Vec<u8>);

const OPEN: u8 = 0;
const CLOSE: u8 = 1;
const ANNOUNCE: u8 = 2;
const TO: u8 = 3;
const BROADCAST: u8 = 4;
const LEAVE: u8 = 5;
const BINARY: u8 = 6;
const ACTIVITY: u8 = 7;
const SLEEP: u8 = 8;
const TICK: u8 = 9;
const ROOMINFO: u8 = 10;
const RAW: u8 = 11;

impl Ops {
    fn new(config: u8) -> Self {
        Ops(vec![config])
    }

    fn op(mut self, slot: u8, op: u8, arg: u8) -> Self {
        self.0.extend([slot << 4 | op, arg]);
        self
    }

    /// `slot` sends `text` as it is.
    fn text(mut self, slot: u8, text: &str) -> Self {
        let len = u8::try_from(text.len()).expect("a raw text of at most 255 bytes");
        self.0.extend([slot << 4 | RAW, len]);
        self.0.extend(text.as_bytes());
        self
    }
}

fn switchboard_seeds() -> Vec<(&'static str, Ops)> {
    let attrs = r#""browser":"node","browserVersion":"20.20.2","agent":"signaller@6.3.0""#;
    let announce =
        |id: &str, room: &str| format!(r#"/announce|{id}|{{{attrs},"id":"{id}","room":"{room}"}}"#);
    let short = |id: &str, room: &str| format!(r#"/announce|{id}|{{"id":"{id}","room":"{room}"}}"#);
    vec![
        // §2.5: two rtc-signaller 6.3.0 clients.
        (
            "transcript-6x",
            Ops::new(0)
                .op(0, OPEN, 0)
                .op(1, OPEN, 0)
                .text(0, &announce("peerA", "r6"))
                .text(1, &announce("peerB", "r6"))
                .text(0, &format!("/to|peerB|{}", announce("peerA", "r6")))
                .text(0, r#"/to|peerB|/hello|peerA|{"x":1}|text"#)
                .text(1, r#"/hello|peerB|{"y":2}"#)
                .text(1, r#"/leave|peerB|{"id":"peerB"}"#)
                .op(1, CLOSE, 0)
                .op(0, CLOSE, 0),
        ),
        // §3.2's probe of rtc-switchboard 3.2.0, in the 6.x shape.
        (
            "probe-3.2",
            Ops::new(0)
                .op(0, OPEN, 0)
                .op(1, OPEN, 0)
                .op(2, OPEN, 0)
                .op(3, OPEN, 0)
                .text(0, r#"/hello|A|{"x":0}"#)
                .text(0, &announce("A", "r1"))
                .text(1, &short("B", "r1"))
                .text(2, &short("C", "r2"))
                .text(0, r#"/to|B|/announce|A|{"id":"A","room":"r1"}"#)
                .text(1, r#"/custom|B|{"k":"v"}|plain text part"#)
                .text(0, "/to|ZZZ|/x|A")
                .text(0, "/to|C|/x|A")
                .text(1, "hello world")
                .text(1, "/ping")
                .text(1, r#"/leave|B|{"id":"B"}"#)
                .text(1, "/after-leave|B")
                .op(1, CLOSE, 0)
                .text(3, &short("D", "r1"))
                .text(0, &short("A", "r2")),
        ),
        // The same probe verbatim: 3.2.0's `{"id"}` sender parts, which we refuse.
        (
            "probe-3.2-verbatim",
            Ops::new(0)
                .op(0, OPEN, 0)
                .op(1, OPEN, 0)
                .text(0, r#"/announce|{"id":"A"}|{"browser":"node","browserVersion":"?","id":"A","agent":"signaller@6.3.0","room":"r1"}"#)
                .text(1, r#"/announce|{"id":"B"}|{"id":"B","room":"r1"}"#)
                .text(0, r#"/to|B|/announce|{"id":"A"}|{"id":"A","room":"r1"}"#)
                .text(1, r#"/leave|{"id":"B"}"#),
        ),
        // Table messages: announce, directed, broadcast, leave, a client's roominfo.
        (
            "tables",
            Ops::new(0)
                .op(0, OPEN, 0)
                .op(1, OPEN, 0)
                .op(2, OPEN, 0)
                .op(0, ANNOUNCE, 0)
                .op(1, ANNOUNCE, 0)
                .op(2, ANNOUNCE, 1)
                .op(0, TO, 1)
                .op(1, TO, 20)
                .op(0, BROADCAST, 0)
                .op(1, BROADCAST, 8)
                .op(2, ROOMINFO, 2)
                .op(0, ANNOUNCE, 20)
                .op(0, ANNOUNCE, 24)
                .op(1, LEAVE, 0)
                .op(1, BROADCAST, 0),
        ),
        // Idle connections: pinged, one answers, the others are closed as dead and
        // the runtime reports their ends afterwards.
        (
            "keepalive",
            Ops::new(0)
                .op(0, OPEN, 0)
                .op(1, OPEN, 0)
                .op(2, OPEN, 0)
                .op(0, ANNOUNCE, 0)
                .op(1, ANNOUNCE, 0)
                .op(2, ANNOUNCE, 0)
                .op(0, TICK, 110)
                .op(0, ACTIVITY, 0)
                .op(0, TICK, 110)
                .op(0, ACTIVITY, 0)
                .op(0, TICK, 110)
                .op(1, CLOSE, 0)
                .op(0, SLEEP, 255)
                .op(2, CLOSE, 0)
                .op(0, CLOSE, 0),
        ),
        // Tight limits: abuse closes a connection; a replaced connection; full rooms.
        (
            "limits",
            Ops::new(0x20 | 0x01 | 0x02)
                .op(0, OPEN, 0)
                .op(5, OPEN, 0)
                .op(1, OPEN, 0)
                .op(0, ANNOUNCE, 0)
                .op(5, ANNOUNCE, 0)
                .op(1, ANNOUNCE, 0)
                .op(1, ANNOUNCE, 1)
                .op(1, BINARY, 0)
                .op(1, BINARY, 0)
                .op(1, BINARY, 0)
                .op(1, BINARY, 0)
                .op(1, TO, 0)
                .op(1, CLOSE, 0)
                .op(0, CLOSE, 0),
        ),
    ]
}

fn main() {
    // A log segment: its header, then updates (one signed, a delete), and the same cut
    // inside its last record (a torn tail).
    {
        use rtc_mesh_core::persist::{encode_header, encode_update, SegmentHeader, FORMAT};
        let mut seg = Vec::new();
        encode_header(
            &SegmentHeader {
                format: FORMAT,
                store_id: "alice.0123456789abcdef".into(),
                first_seq: 1,
            },
            &mut seg,
        );
        // Three updates: one signed, a delete.
        let updates: Vec<Update> = ["1", "{\"a\":[1,2]}", "null"]
            .iter()
            .enumerate()
            .map(|(i, v)| Update {
                key: format!("k{i}").into(),
                value: EncodedValue::from_value(&Value::from_json(v).unwrap()),
                ts: 1795713876273.0 + i as f64,
                source: "alice.0123456789abcdef".into(),
                sig: (i == 1).then_some([7; 64]),
            })
            .collect();
        for (i, u) in updates.iter().enumerate() {
            encode_update(i as u64 + 1, u.as_ref(), &mut seg);
        }
        write("persist", "segment", &seg);
        write("persist", "torn", &seg[..seg.len() - 3]);
        // A snapshot of the same updates, with two clocks.
        use rtc_mesh_core::persist::{
            encode_snapshot_clock, encode_snapshot_end, encode_snapshot_entry,
            encode_snapshot_header, SnapshotHeader,
        };
        let mut snap = Vec::new();
        encode_snapshot_header(
            &SnapshotHeader {
                format: FORMAT,
                store_id: "alice.0123456789abcdef".into(),
                from_seq: 4,
            },
            &mut snap,
        );
        for u in &updates {
            encode_snapshot_entry(u.as_ref(), &mut snap);
        }
        encode_snapshot_clock("alice.0123456789abcdef", 1795713876275.0, &mut snap);
        encode_snapshot_clock("bob.0123456789abcdef", 1795713876000.0, &mut snap);
        encode_snapshot_end(3, 2, 3, &mut snap);
        write("persist", "snapshot", &snap);
    }
    // STUN: the answer to the fuzz target's own request (seed 1), and that request.
    {
        use rtc_mesh_core::stun::{binding_success, StunClient, StunOutput};
        let server = "127.0.0.1:3478".parse().expect("literal");
        let now = std::time::Instant::now();
        let mut c = StunClient::new(vec![server], 1, now);
        c.start(now);
        let StunOutput::Transmit { data: request, .. } = c.poll_output() else {
            panic!("a request first");
        };
        let answer = binding_success(&request, "203.0.113.5:61000".parse().expect("literal"))
            .expect("a binding request");
        write("stun", "answer", &answer);
        write("stun", "request", &request);
    }
    for (i, c) in encode(Codec::Json, Framing::Stream, 16 * 1024)
        .iter()
        .enumerate()
    {
        let mut s = vec![0u8];
        s.extend(c);
        write("json_decoder", &format!("seed-{i}"), &s);
        let mut m = vec![0u8];
        m.extend(c);
        write("session", &format!("json-{i}"), &m);
    }
    for (i, c) in encode(Codec::Postcard, Framing::Messages, 16 * 1024)
        .iter()
        .enumerate()
    {
        write("postcard_decoder", &format!("seed-{i}"), c);
        let mut m = vec![3u8];
        m.extend(c);
        write("session", &format!("postcard-{i}"), &m);
    }
    // A secured session (first byte's bit 7): a digest and signed updates of a member,
    // genuine for the fuzz target's room, in both codecs.
    {
        use rtc_mesh_core::security::updates::UpdateGuard;
        use rtc_mesh_core::security::Identity;
        let them = Identity::from_seed(&[6; 32]);
        let source = format!("{}.0123456789abcdef", them.peer_id());
        let guard = UpdateGuard::new([3; 16], them);
        for (codec, framing, mode, name) in [
            (Codec::Json, Framing::Stream, 0x80u8, "secured-json"),
            (Codec::Postcard, Framing::Messages, 0x83u8, "secured-postcard"),
        ] {
            let mut e = Encoder::with_frame_size(codec, framing, 16 * 1024);
            let mut clock = Clock::new();
            clock.set(&source, 1795713876272.0);
            e.message(&Message::Digest { id: source.clone(), clock });
            for (i, v) in ["1", "{\"a\":[1,2]}", "null"].iter().enumerate() {
                let mut u = Update {
                    key: format!("k{i}").into(),
                    value: EncodedValue::from_value(&Value::from_json(v).unwrap()),
                    ts: 1795713876273.0 + i as f64,
                    source: source.as_str().into(),
                    sig: None,
                };
                u.sig = Some(guard.sign(u.as_ref()));
                e.message(&Message::Update(u));
            }
            e.message(&Message::Sync);
            // An earlier write arriving late (below the writer's clock), then sums that
            // differ for the writer: a repair.
            let mut late = Update {
                key: "late".into(),
                value: EncodedValue::from_value(&Value::from(1.0)),
                ts: 1795713876272.5,
                source: source.as_str().into(),
                sig: None,
            };
            late.sig = Some(guard.sign(late.as_ref()));
            e.message(&Message::Update(late));
            let sums = rtc_mesh_core::control::Control::Sums(vec![
                rtc_mesh_core::control::SourceSum {
                    source: source.clone(),
                    ts: 1795713876275.0,
                    count: 1,
                    lanes: [0; rtc_mesh_core::control::SUM_LANES],
                },
            ]);
            e.message(&Message::Control(sums.encode().into_owned()));
            // Keys a removal voided there: what we hold of them goes out.
            let want = rtc_mesh_core::control::Control::Want(vec![
                "k0".into(),
                "mine".into(),
                "late".into(),
            ]);
            e.message(&Message::Control(want.encode().into_owned()));
            let mut m = vec![mode];
            while let Some(c) = e.poll_transmit() {
                m.extend(c);
            }
            write("session", name, &m);
        }
    }
    for (i, c) in encode(Codec::Postcard, Framing::Messages, 80)
        .iter()
        .enumerate()
    {
        write("postcard_decoder", &format!("small-{i}"), c);
    }
    for (i, v) in [
        r#"{"n":12345,"s":"v12345"}"#,
        r#"[1,[2,[3,{"a":null}]]]"#,
        r#""\u00e9\ud83d\ude00""#,
        "1e21",
        "-0.5",
    ]
    .iter()
    .enumerate()
    {
        let val = Value::from_json(v).unwrap();
        write(
            "value",
            &format!("bin-{i}"),
            EncodedValue::from_value(&val).as_bytes(),
        );
        write("value", &format!("json-{i}"), v.as_bytes());
    }
    for (i, m) in SIGNALS.iter().enumerate() {
        write("signal", &format!("seed-{i}"), m.as_bytes());
    }
    // A REKEY line genuine for the security target's room and signer.
    {
        use rtc_mesh_core::security::{Entropy, Identity, Rekey, RoomKey, RoomSecret};
        let mut e = Entropy::from_seed([9; 32]);
        let secret = RoomSecret::generate(&mut e);
        let (key, me) = (RoomKey::derive("fuzz", &secret), Identity::generate(&mut e));
        let removed = [Identity::from_seed(&[4; 32]).peer_id().to_owned()];
        let r = Rekey::rotate(&key, removed, 1_795_713_886_272, &me, &mut e).expect("epoch 1");
        write("security", "rekey", r.to_line().as_bytes());
        write("security", "rekey-json", r.to_json().as_bytes());
    }
    for (name, ops) in switchboard_seeds() {
        write("switchboard", &format!("seed-{name}"), &ops.0);
    }
}
