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
        }),
        Message::Update(Update {
            key: "preB".into(),
            value: v(r#"{"nested":[1,"x"]}"#),
            ts: 1795713876273.0,
            source: "B".into(),
        }),
        Message::Update(Update {
            key: "key-0000000001".into(),
            value: v(r#"{"n":1,"s":"v1"}"#),
            ts: 1795713876274.0,
            source: "B".into(),
        }),
        Message::Update(Update {
            key: "key-0000000002".into(),
            value: v("null"),
            ts: 1795713876274.5,
            source: "B".into(),
        }),
        Message::Update(Update {
            key: "ключ".into(),
            value: v(r#"[true,false,null,1.5,-2,"é\n"]"#),
            ts: 1795713876275.0,
            source: "A".into(),
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

fn main() {
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
}
