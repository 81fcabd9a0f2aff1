//! Property tests: the store's laws, sessions, and codec round trips.

use std::time::Instant;

use proptest::prelude::*;
use rtc_mesh_core::{
    Clock, Codec, Decoder, EncodedValue, Encoder, Framing, Limits, Message, Object, Replica,
    ReplicaOutput, Store, StoreConfig, Update, Value,
};

const EPOCH: f64 = 1_795_713_876_272.0;

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_filter("finite", |n| n.is_finite())
            .prop_map(Value::Number),
        (-1000i64..1000).prop_map(|n| Value::Number(n as f64)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-c0-9]{0,3}|.{0,4}", inner), 0..6)
                .prop_map(|e| Value::Object(Object::from_entries(e))),
        ]
    })
}

fn arb_source() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._~-]{1,20}"
}

fn arb_ts() -> impl Strategy<Value = f64> {
    prop_oneof![
        (1.0f64..1e15),
        (0u32..1000).prop_map(|n| EPOCH + n as f64),
        Just(f64::MIN_POSITIVE),
        Just(1.7976931348623157e308),
    ]
}

fn arb_update() -> impl Strategy<Value = Update> {
    (
        ".{0,16}",
        arb_value(),
        arb_ts(),
        arb_source(),
        prop::option::of(prop::collection::vec(any::<u8>(), 64)),
    )
        .prop_map(|(key, v, ts, source, sig)| Update {
            key: key.into(),
            value: EncodedValue::from_value(&v),
            ts,
            source: source.into(),
            sig: sig.map(|s| s.try_into().expect("64 bytes")),
        })
}

fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            arb_source(),
            prop::collection::vec((arb_source(), arb_ts()), 0..40)
        )
            .prop_map(|(id, c)| Message::Digest {
                id,
                clock: Clock::from_entries(c),
            }),
        arb_update().prop_map(Message::Update),
        Just(Message::Sync),
        Just(Message::Ping),
        Just(Message::Pong),
        any::<u64>().prop_map(Message::HistorySize),
    ]
}

fn store(id: &str) -> Store {
    Store::new(StoreConfig::new(id, EPOCH, Instant::now())).unwrap()
}

/// Writes from a few sources: each source's updates in increasing timestamp order, as
/// an ordered link delivers them. Timestamps come from a small set so that ties
/// between sources are frequent.
fn arb_source_logs() -> impl Strategy<Value = Vec<Vec<Update>>> {
    let sources = ["s1", "s2", "s3"];
    prop::collection::vec(
        prop::collection::vec(("[a-d]", arb_value(), 1u32..40), 0..12),
        3,
    )
    .prop_map(move |logs| {
        logs.into_iter()
            .zip(sources)
            .map(|(writes, src)| {
                let mut ts: Vec<u32> = writes.iter().map(|w| w.2).collect();
                ts.sort_unstable();
                ts.dedup();
                writes
                    .into_iter()
                    .zip(ts)
                    .map(|((key, v, _), t)| Update {
                        key: key.into(),
                        value: EncodedValue::from_value(&v),
                        ts: EPOCH + t as f64,
                        source: src.into(),
                        sig: None,
                    })
                    .collect()
            })
            .collect()
    })
}

/// Interleaves the logs (keeping each source's order) by `picks`, re-delivering an
/// earlier update now and then.
fn interleave(logs: &[Vec<Update>], picks: &[u8]) -> Vec<Update> {
    let mut pos = vec![0usize; logs.len()];
    let mut out: Vec<Update> = Vec::new();
    let mut p = picks.iter().cycle();
    let total: usize = logs.iter().map(Vec::len).sum();
    let mut delivered = 0;
    let mut dups = 0;
    while delivered < total {
        let pick = *p.next().unwrap_or(&0) as usize;
        if pick % 7 == 6 && !out.is_empty() && dups < total {
            dups += 1;
            let dup = out[pick % out.len()].clone();
            out.push(dup);
            continue;
        }
        let mut s = pick % logs.len();
        while pos[s] >= logs[s].len() {
            s = (s + 1) % logs.len();
        }
        out.push(logs[s][pos[s]].clone());
        pos[s] += 1;
        delivered += 1;
    }
    out
}

fn state(s: &Store) -> Vec<(String, Vec<u8>, u64, String)> {
    let mut keys: Vec<String> = Vec::new();
    for u in s.history(&Clock::new()) {
        keys.push(u.key.to_owned());
    }
    keys.sort();
    keys.iter()
        .map(|k| {
            let e = s.entry(k).unwrap();
            (
                k.clone(),
                e.value.as_bytes().to_vec(),
                e.ts.to_bits(),
                e.source.to_owned(),
            )
        })
        .collect()
}

/// Drains `from`, feeding its bytes to `to` on `link`; returns the bytes moved.
fn drain(from: &mut Replica, to: &mut Replica, link: rtc_mesh_core::LinkId) -> u64 {
    let now = Instant::now();
    let mut bytes = 0;
    loop {
        match from.poll_output() {
            ReplicaOutput::Transmit(_, d) => {
                bytes += d.len() as u64;
                to.handle_input(now, link, &d);
            }
            ReplicaOutput::Event(_) => {}
            ReplicaOutput::Timeout(_) => return bytes,
        }
    }
}

/// Moves bytes between two replicas until neither has any to send; returns the bytes moved.
fn pump(
    a: &mut Replica,
    b: &mut Replica,
    la: rtc_mesh_core::LinkId,
    lb: rtc_mesh_core::LinkId,
) -> u64 {
    let mut total = 0;
    for _ in 0..10_000 {
        let moved = drain(a, b, lb) + drain(b, a, la);
        if moved == 0 {
            return total;
        }
        total += moved;
    }
    panic!("pump did not settle");
}

proptest! {
    // Failing seeds are kept in core/proptest-regressions/props.txt (committed) and replayed first.
    #![proptest_config(ProptestConfig {
        cases: 200,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/props.txt"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn replicas_converge_whatever_the_order(logs in arb_source_logs(),
                                             p1 in prop::collection::vec(any::<u8>(), 1..64),
                                             p2 in prop::collection::vec(any::<u8>(), 1..64)) {
        let now = Instant::now();
        let mut x = store("x");
        let mut y = store("y");
        for u in interleave(&logs, &p1) {
            x.apply(now, u);
        }
        for u in interleave(&logs, &p2) {
            y.apply(now, u);
        }
        prop_assert_eq!(state(&x), state(&y));
        prop_assert_eq!(x.dump(), y.dump());
    }

    #[test]
    fn applying_twice_changes_nothing(logs in arb_source_logs(), p in prop::collection::vec(any::<u8>(), 1..64)) {
        let now = Instant::now();
        let mut x = store("x");
        let order = interleave(&logs, &p);
        for u in &order {
            x.apply(now, u.clone());
        }
        let before = state(&x);
        while x.poll_event().is_some() {}
        for u in order {
            x.apply(now, u);
        }
        prop_assert_eq!(before, state(&x));
        prop_assert!(x.poll_event().is_none());
    }

    #[test]
    fn a_session_exchanges_all_history(la_logs in arb_source_logs(), lb in prop::collection::vec(("[a-f]", arb_value()), 0..20),
                                        postcard in any::<bool>(), messages in any::<bool>()) {
        let now = Instant::now();
        let mut a = store("alice");
        for u in la_logs.into_iter().flatten() {
            a.apply(now, u);
        }
        let mut b = store("bob");
        for (k, v) in lb {
            b.set(now, &k, &v).unwrap();
        }
        let mut union = store("union");
        for s in [&a, &b] {
            for u in s.history(&Clock::new()) {
                union.apply(now, u.to_owned());
            }
        }
        let codec = if postcard { Codec::Postcard } else { Codec::Json };
        let framing = if messages { Framing::Messages } else { Framing::Stream };
        let mut ra = Replica::new(a);
        let mut rb = Replica::new(b);
        let la = ra.open_link(codec, framing);
        let lbk = rb.open_link(codec, framing);
        pump(&mut ra, &mut rb, la, lbk);
        prop_assert!(ra.session(la).unwrap().is_synced());
        prop_assert!(rb.session(lbk).unwrap().is_synced());
        prop_assert_eq!(state(ra.store()), state(&union));
        prop_assert_eq!(state(rb.store()), state(&union));
    }

    #[test]
    fn both_codecs_round_trip(msgs in prop::collection::vec(arb_message(), 0..12),
                              frame in 64usize..20_000, postcard in any::<bool>(), messages in any::<bool>()) {
        let codec = if postcard { Codec::Postcard } else { Codec::Json };
        let framing = if messages { Framing::Messages } else { Framing::Stream };
        let mut e = Encoder::with_frame_size(codec, framing, frame);
        for m in &msgs {
            e.message(m);
        }
        let mut d = Decoder::new(codec, framing, Limits::default());
        while let Some(chunk) = e.poll_transmit() {
            if framing == Framing::Messages {
                prop_assert!(chunk.len() <= frame.max(rtc_mesh_core::wire::MIN_FRAME));
            }
            // Split stream chunks anywhere: the decoder must not care.
            if framing == Framing::Stream && chunk.len() > 3 {
                let (x, y) = chunk.split_at(chunk.len() / 3);
                d.push(x);
                d.push(y);
            } else {
                d.push(&chunk);
            }
        }
        let mut out = Vec::new();
        while let Some(m) = d.poll_message() {
            out.push(m.unwrap());
        }
        // The json codec does not carry history size hints.
        let expected: Vec<Message> = msgs
            .into_iter()
            .filter(|m| postcard || !matches!(m, Message::HistorySize(_)))
            .collect();
        prop_assert_eq!(out, expected);
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), postcard in any::<bool>(), messages in any::<bool>()) {
        let codec = if postcard { Codec::Postcard } else { Codec::Json };
        let framing = if messages { Framing::Messages } else { Framing::Stream };
        let mut d = Decoder::new(codec, framing, Limits::default());
        let mut v = bytes.clone();
        if postcard && !messages { let mut m = b"RMP1".to_vec(); m.extend(v); v = m; }
        d.push(&v);
        d.finish();
        while d.poll_message().is_some() {}
        let _ = EncodedValue::from_bytes(&bytes, &Limits::default());
    }

    #[test]
    fn encoded_values_round_trip(v in arb_value()) {
        let e = EncodedValue::from_value(&v);
        prop_assert_eq!(e.to_value().unwrap(), v.clone());
        let by_postcard = postcard::to_allocvec(&rtc_mesh_core::PostcardValue(&v)).unwrap();
        prop_assert_eq!(&by_postcard[..], e.as_bytes());
        let again = EncodedValue::from_bytes(e.as_bytes(), &Limits::default()).unwrap();
        prop_assert_eq!(&again, &e);
        prop_assert_eq!(Value::from_json(&e.to_json()).unwrap(), v.clone());
        prop_assert_eq!(e.to_json(), v.to_json());
    }
}
