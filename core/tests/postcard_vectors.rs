//! Postcard vectors for the browser client (`web/tests/postcard.test.mjs` checks them in
//! Node): value encodings, message sequences with the frames core's encoder cuts them
//! into (on a data channel: one frame per message, 16 KiB, and a small frame size that
//! forces fragments), and frames core's decoder refuses. The checked-in file must match
//! what core does now; `RTC_MESH_WRITE_TRACES=1 cargo test -p rtc-mesh-core --test
//! postcard_vectors` rewrites it after a deliberate change of the format.

use rtc_mesh_core::{
    Clock, Codec, Decoder, EncodedValue, Encoder, Framing, Limits, Message, Update, Value,
};
use serde_json::{json, Value as J};

mod common;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// A message as the vectors write it.
fn describe(m: &Message) -> J {
    match m {
        Message::Digest { id, clock } => json!({
            "type": "digest",
            "id": id,
            "clock": clock.iter().map(|(s, t)| json!([s, t])).collect::<Vec<_>>(),
        }),
        Message::Update(u) => {
            let mut o = json!({
                "type": "update",
                "key": u.key.as_str(),
                "json": u.value.to_json(),
                "ts": u.ts,
                "source": u.source.as_str(),
            });
            if let Some(sig) = &u.sig {
                o["sig"] = J::from(hex(sig));
            }
            o
        }
        Message::Sync => json!({ "type": "sync" }),
        Message::Ping => json!({ "type": "ping" }),
        Message::Pong => json!({ "type": "pong" }),
        Message::Control(t) => json!({ "type": "control", "text": t }),
        Message::HistorySize(n) => json!({ "type": "history_size", "n": n }),
    }
}

fn update(key: &str, json: &str, ts: f64, source: &str) -> Message {
    Message::Update(Update {
        key: key.into(),
        value: EncodedValue::from_json(json, &Limits::default()).unwrap(),
        ts,
        source: source.into(),
        sig: None,
    })
}

/// A signed update (the signature's bytes are the codec's business only here).
fn signed(key: &str, json: &str, ts: f64, source: &str, fill: u8) -> Message {
    let Message::Update(mut u) = update(key, json, ts, source) else {
        unreachable!()
    };
    u.sig = Some(std::array::from_fn(|i| fill.wrapping_add(i as u8)));
    Message::Update(u)
}

const VALUES: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1",
    "-1",
    "63",
    "64",
    "-64",
    "-65",
    "300",
    "1795713876272",
    "9007199254740992",
    "-9007199254740992",
    "9007199254740994",
    "1.5",
    "-0.1",
    "1e+21",
    "5e-324",
    "1.7976931348623157e+308",
    "\"\"",
    "\"hello\"",
    "\"caf\\u00e9 \\u6f22\\u5b57 \\ud83d\\ude00\"",
    "\"a|b\\n\\\"c\\\"\"",
    "[]",
    "[1,[2,[3,null]],\"x\"]",
    "{}",
    "{\"b\":1,\"a\":2,\"1\":3,\"0\":4,\"01\":5,\"4294967294\":7,\"4294967295\":8}",
    "{\"__proto__\":1,\"constructor\":{\"x\":[true,false]}}",
    "{\"n\":12345,\"s\":\"v12345\",\"f\":0.25,\"list\":[1,2,3]}",
];

fn sequences() -> Vec<(&'static str, usize, Vec<Message>)> {
    let src_a = "aaaaaaaaaaaaaaaa.0123456789abcdef";
    let src_b = "bbbbbbbbbbbbbbbb.fedcba9876543210";
    let mut clock = Clock::new();
    clock.set(src_a, 1795713876272.0);
    clock.set(src_b, 1795713876272.5);
    let mut big_clock = Clock::new();
    for i in 0..40 {
        big_clock.set(&format!("peer-{i:03}.0123456789abcdef"), 1e12 + i as f64);
    }
    let mut live = vec![];
    for i in 0..200u32 {
        let src = if i % 3 == 0 { src_b } else { src_a };
        live.push(update(
            &format!("key-{:06}", i * 7),
            &format!("{{\"n\":{i},\"s\":\"v{i}\"}}"),
            1795713877118.0 + i as f64 * 0.001,
            src,
        ));
    }
    let large = format!("\"{}\"", "x".repeat(3000));
    vec![
        (
            "a session's opening: digest, history size, updates, SYNC",
            16384,
            vec![
                Message::Digest {
                    id: src_a.into(),
                    clock: clock.clone(),
                },
                Message::HistorySize(3),
                update("a", "1", 1795713876272.0, src_a),
                update("ab", "{\"x\":[1,2]}", 1795713876273.0, src_a),
                update("abc", "null", 1795713876272.5, src_b),
                Message::Sync,
            ],
        ),
        (
            "control strings",
            16384,
            vec![
                Message::Ping,
                Message::Pong,
                Message::Control("LINKS [\"a\",\"b\"]".into()),
                Message::Control("BYE".into()),
                Message::Control("CLOCK {\"a\":1}".into()),
            ],
        ),
        (
            "signed updates (secured rooms), one fragmented, beside an unsigned one",
            512,
            vec![
                signed("a", "1", 1795713876272.0, src_a, 1),
                update("b", "2", 1795713876273.0, src_a),
                signed(
                    "c",
                    &format!("\"{}\"", "z".repeat(1200)),
                    1795713876274.0,
                    src_b,
                    7,
                ),
                signed("d", "null", 1795713876275.0, src_b, 200),
            ],
        ),
        ("two hundred live updates", 16384, live.clone()),
        ("the same in small frames", 512, live),
        (
            "a clock in parts",
            512,
            vec![
                Message::Digest {
                    id: "me".into(),
                    clock: big_clock,
                },
                Message::Sync,
            ],
        ),
        (
            "keys sharing prefixes that end inside a character",
            16384,
            vec![
                update("caf\u{e9}1", "1", 1795713876272.0, src_a),
                update("caf\u{e9}2", "2", 1795713876272.0, src_a),
                update("caf\u{e8}", "3", 1795713876271.0, src_b),
                update("\u{6f22}\u{5b57}", "4", 1795713876280.0, src_a),
                update("\u{6f22}\u{5b50}", "5", 1795713876280.0, src_a),
                update("\u{1f600}a", "\"\u{1f600}\"", 1795713876281.0, src_a),
                update("\u{1f601}", "[]", 1795713876282.0, src_b),
            ],
        ),
        (
            "a 40 KB value in full frames",
            16384,
            vec![
                update("k", "1", 1795713876272.0, src_a),
                update(
                    "large",
                    &format!("\"{}\"", "y".repeat(40_000)),
                    1795713876273.0,
                    src_a,
                ),
                Message::Sync,
            ],
        ),
        (
            "a large value in fragments between small updates",
            512,
            vec![
                update("before", "1", 1795713876272.0, src_a),
                update("large", &large, 1795713876273.0, src_a),
                update("after", "2", 1795713876274.0, src_b),
            ],
        ),
    ]
}

/// Frames core's decoder refuses: what is wrong, the frame, and a word of the error.
const BAD: &[(&str, &str, &str)] = &[
    ("unknown record", "63", "unknown record"),
    ("truncated update", "05", "truncated"),
    ("source index out of range", "050100016103", "source index"),
    ("key prefix out of range", "0500016105016102", "key prefix"),
    ("zero timestamp", "0500016100016100", "timestamp"),
    ("fragment without a start", "070161", "without a start"),
    (
        "record between fragments",
        "060001610001610204010502",
        "between fragments",
    ),
    ("overlong varint", "0500016100016102038000", "overlong"),
    (
        "integer encoded as f64",
        "050001610001610204000000000000f03f",
        "integer encoded as f64",
    ),
    (
        "object keys out of order",
        "05000161000161020702016201013101",
        "out of order",
    ),
    (
        "duplicate object key",
        "050001610001610207020161010161010102",
        "duplicate",
    ),
    (
        "invalid utf-8 in a string",
        "0500016100016102050180",
        "utf-8",
    ),
    (
        "a control character in a source id",
        "0500010a0001610201",
        "source id",
    ),
    ("bad digest flag", "0101610002", "digest flag"),
];

fn frames_of(frame_size: usize, msgs: &[Message]) -> Vec<String> {
    let mut e = Encoder::with_frame_size(Codec::Postcard, Framing::Messages, frame_size);
    for m in msgs {
        e.message(m);
    }
    let mut out = Vec::new();
    while let Some(f) = e.poll_transmit() {
        out.push(hex(&f));
    }
    out
}

fn decode(frames: &[Vec<u8>]) -> Vec<Result<Message, String>> {
    let mut d = Decoder::new(Codec::Postcard, Framing::Messages, Limits::default());
    let mut out = Vec::new();
    for f in frames {
        d.push(f);
        while let Some(m) = d.poll_message() {
            out.push(m.map_err(|e| e.to_string()));
        }
    }
    out
}

fn vectors() -> J {
    let values: Vec<J> = VALUES
        .iter()
        .map(|text| {
            let v = Value::from_json(text).unwrap();
            let enc = EncodedValue::from_value(&v);
            json!({ "json": enc.to_json(), "bytes": hex(enc.as_bytes()) })
        })
        .collect();
    let sequences: Vec<J> = sequences()
        .into_iter()
        .map(|(name, frame_size, msgs)| {
            let frames = frames_of(frame_size, &msgs);
            // The frames decode back to the messages.
            let back: Vec<Message> = decode(&frames.iter().map(|f| unhex(f)).collect::<Vec<_>>())
                .into_iter()
                .map(|m| m.unwrap())
                .collect();
            assert_eq!(back, msgs, "{name}");
            json!({
                "name": name,
                "frame_size": frame_size,
                "messages": msgs.iter().map(describe).collect::<Vec<_>>(),
                "frames": frames,
            })
        })
        .collect();
    let bad: Vec<J> = BAD
        .iter()
        .map(|(why, frame, word)| {
            // Each is a frame of its own, decoded after a good one that must survive.
            let good = unhex("0203");
            let got = decode(&[good, unhex(frame)]);
            assert!(
                matches!(&got[..2], [Ok(Message::Sync), Ok(Message::Ping)]),
                "{why}: {got:?}"
            );
            assert!(
                got.len() == 3 && got[2].is_err(),
                "{why}: frame {frame} gave {got:?}"
            );
            let error = got[2].clone().unwrap_err();
            assert!(error.contains(word), "{why}: {error}");
            json!({ "why": why, "frame": frame, "error": error })
        })
        .collect();
    json!({
        "generated_by": "core/tests/postcard_vectors.rs",
        "values": values,
        "sequences": sequences,
        "bad": bad,
    })
}

#[test]
fn the_postcard_vectors_are_current() {
    common::check_or_write("postcard.json", &vectors(), true);
}
