//! Signed updates (secured rooms) measured beside unsigned ones, in one invocation:
//!
//! - signing: a local write in a secured store against one in an open store, and the
//!   signature alone;
//! - verification: the check of one received update (p50, p99), each timed alone;
//! - a full sync of N keys (default 100,000) over one in-memory link on one core, the
//!   receiver checking every update: time, verified updates per second, and the bytes
//!   per update each codec adds;
//! - a flood: a member receives live updates from an honest writer, one at a time, each
//!   behind a frame of 50 forgeries from another link (100,000 in all): the p99 of the
//!   time to take each honest update beside the same without the flood;
//! - memory per key of a secured store holding M keys (default 1,000,000), in a fresh
//!   process, beside an open store's.
//!
//! ```text
//! cargo run --release -p rtc-mesh-bench --bin bench-signed -- [--keys N] [--rss-keys M]
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use rtc_mesh_bench::{ms, rss_bytes, sync};
use rtc_mesh_core::security::updates::UpdateGuard;
use rtc_mesh_core::security::Identity;
use rtc_mesh_core::{Codec, Replica, ReplicaOutput, Store, StoreConfig, Update, Value};

const EPOCH: f64 = 1_795_713_876_272.0;
const ROOM: [u8; 16] = [9; 16];

fn key(i: usize) -> String {
    format!("key-{i:010}")
}

fn value(i: usize) -> Value {
    Value::from_json(&format!(r#"{{"n":{i},"s":"v{i}"}}"#)).expect("literal json")
}

/// A store of member `seed`, secured (signing, checking) or open.
fn store(seed: u8, secured: bool, t0: Instant) -> Store {
    let me = Identity::from_seed(&[seed; 32]);
    let mut c = StoreConfig::new(format!("{}.{:016x}", me.peer_id(), seed), EPOCH, t0);
    if secured {
        c.guard = Some(UpdateGuard::new(ROOM, me));
    }
    Store::new(c).expect("valid id")
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    if let Some(i) = std::env::args().position(|a| a == "--rss-child") {
        let args: Vec<String> = std::env::args().collect();
        let n: usize = args[i + 1].parse().expect("n");
        rss_child(n, args[i + 2] == "secured");
        return;
    }
    let n = arg("--keys", 100_000);
    let rss_n = arg("--rss-keys", 1_000_000);
    let t0 = Instant::now();
    println!("signed updates, beside unsigned ones (one core, release build)");

    // Signing: local writes, secured against open, interleaved in blocks.
    let writes = 20_000;
    let (mut open_t, mut signed_t) = (Duration::ZERO, Duration::ZERO);
    let mut open = store(1, false, t0);
    let mut secured = store(1, true, t0);
    for block in 0..10 {
        for (s, t) in [(&mut open, &mut open_t), (&mut secured, &mut signed_t)] {
            let start = Instant::now();
            for i in 0..writes / 10 {
                s.set(t0, &key(block * writes / 10 + i + 1), &value(i))
                    .expect("set");
            }
            *t += start.elapsed();
            while s.poll_event().is_some() {}
        }
    }
    let guard = UpdateGuard::new(ROOM, Identity::from_seed(&[1; 32]));
    let sample = secured.entry(&key(1)).expect("written").to_owned();
    let mut sign_times: Vec<Duration> = (0..2000)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(guard.sign(sample.as_ref()));
            t.elapsed()
        })
        .collect();
    println!(
        "sign:          {:.1} us per local write signed vs {:.1} us unsigned ({:.1} us added); the signature alone p50 {:.1} us",
        us(signed_t) / writes as f64,
        us(open_t) / writes as f64,
        us(signed_t.saturating_sub(open_t)) / writes as f64,
        us(percentile(&mut sign_times, 0.5)),
    );

    // Verification: each received update checked alone (distinct updates, a known writer).
    let updates: Vec<Update> = (1..=writes)
        .filter_map(|i| secured.entry(&key(i)).map(|u| u.to_owned()))
        .collect();
    let mut checker = UpdateGuard::new(ROOM, Identity::from_seed(&[2; 32]));
    let mut times: Vec<Duration> = updates
        .iter()
        .map(|u| {
            let t = Instant::now();
            checker.check(u.as_ref()).expect("genuine");
            t.elapsed()
        })
        .collect();
    let (p50, p99) = (percentile(&mut times, 0.5), percentile(&mut times, 0.99));
    println!(
        "verify:        p50 {:.1} us, p99 {:.1} us per update ({} updates)",
        us(p50),
        us(p99),
        updates.len()
    );

    // Full sync of n keys: the writer's history to a fresh reader that checks each one.
    for codec in [Codec::Postcard, Codec::Json] {
        let mut row = Vec::new();
        for secure in [false, true] {
            let mut writer = Replica::new(store(1, secure, t0));
            for i in 1..=n {
                writer.set(t0, &key(i), &value(i)).expect("set");
                while !matches!(writer.poll_output(), ReplicaOutput::Timeout(_)) {}
            }
            let mut best = (Duration::MAX, 0u64);
            for _ in 0..3 {
                let mut reader = Replica::new(store(2, secure, t0));
                let (t, ab, ba) = sync(&mut writer, &mut reader, codec, t0);
                assert_eq!(reader.store().len(), n, "full sync incomplete");
                assert_eq!(reader.store().stats().rejected, 0);
                if t < best.0 {
                    best = (t, ab + ba);
                }
            }
            row.push(best);
        }
        let (open, signed) = (row[0], row[1]);
        println!(
            "sync {:<8} {n} keys: signed {:.0} ms ({:.0} verified updates/s), unsigned {:.0} ms; {:.1} bytes per update signed vs {:.1} (+{:.1})",
            codec.name(),
            ms(signed.0),
            n as f64 / signed.0.as_secs_f64(),
            ms(open.0),
            signed.1 as f64 / n as f64,
            open.1 as f64 / n as f64,
            (signed.1 as f64 - open.1 as f64) / n as f64,
        );
    }

    flood(t0);

    // Memory per key, each in a fresh process.
    let exe = std::env::current_exe().expect("own path");
    for kind in ["open", "secured"] {
        let out = Command::new(&exe)
            .args(["--rss-child", &rss_n.to_string(), kind])
            .output()
            .expect("run the memory child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

/// Honest live updates behind a flood of forgeries on another link (see the docs).
fn flood(t0: Instant) {
    use rtc_mesh_core::{Encoder, Framing};
    let honest = 2000;
    let mut p99 = Vec::new();
    for flooding in [false, true] {
        let mut writer = Replica::new(store(1, true, t0));
        let mut reader = Replica::new(store(2, true, t0));
        let wl = writer.open_link(Codec::Postcard, Framing::Messages);
        let rl = reader.open_link(Codec::Postcard, Framing::Messages);
        let fl = reader.open_link(Codec::Postcard, Framing::Messages);
        let forger = UpdateGuard::new(ROOM, Identity::from_seed(&[6; 32]));
        let victim = writer.store().id().to_owned();
        // The digests first.
        for _ in 0..4 {
            while let ReplicaOutput::Transmit(_, d) = writer.poll_output() {
                reader.handle_input(t0, rl, &d);
            }
            while let ReplicaOutput::Transmit(l, d) = reader.poll_output() {
                if l == rl {
                    writer.handle_input(t0, wl, &d);
                }
            }
        }
        let mut times = Vec::with_capacity(honest);
        let mut ts = EPOCH + 1e6;
        for i in 0..honest {
            writer.set(t0, &key(i), &value(i)).expect("set");
            let mut frames = Vec::new();
            loop {
                match writer.poll_output() {
                    ReplicaOutput::Transmit(_, d) => frames.push(d),
                    ReplicaOutput::Event(_) => {}
                    ReplicaOutput::Timeout(_) => break,
                }
            }
            let mut forged = Vec::new();
            if flooding {
                let mut e = Encoder::new(Codec::Postcard, Framing::Messages);
                for _ in 0..50 {
                    ts += 1.0;
                    let mut u = Update {
                        key: "k".into(),
                        value: rtc_mesh_core::EncodedValue::from_value(&Value::from(ts)),
                        ts,
                        source: victim.as_str().into(),
                        sig: None,
                    };
                    u.sig = Some(forger.sign(u.as_ref()));
                    e.update(u.as_ref());
                }
                while let Some(f) = e.poll_transmit() {
                    forged.push(f);
                }
            }
            let t = Instant::now();
            for f in &forged {
                reader.handle_input(t0, fl, f);
            }
            for f in &frames {
                reader.handle_input(t0, rl, f);
            }
            while !matches!(reader.poll_output(), ReplicaOutput::Timeout(_)) {}
            times.push(t.elapsed());
        }
        assert_eq!(reader.store().len(), honest);
        p99.push(percentile(&mut times, 0.99));
        if flooding {
            let refused = reader.link_stats(fl).expect("link").refused;
            println!(
                "flood:         honest live update p99 {:.1} us behind 50 forgeries each ({} forged, {} checked before the link was given up) vs {:.1} us without ({:+.0}%)",
                us(p99[1]),
                honest * 50,
                refused,
                us(p99[0]),
                (us(p99[1]) / us(p99[0]) - 1.0) * 100.0
            );
        }
    }
}

fn rss_child(n: usize, secured: bool) {
    let t0 = Instant::now();
    let before = rss_bytes();
    let mut s = store(1, secured, t0);
    let mut raw = 0usize;
    for i in 1..=n {
        let (k, v) = (key(i), value(i));
        raw += k.len() + v.to_json().len();
        s.set(t0, &k, &v).expect("set");
        while s.poll_event().is_some() {}
    }
    let per_key = rss_bytes().saturating_sub(before) as f64 / n as f64;
    println!(
        "memory {:<8} {per_key:.1} bytes RSS per key at {n} keys (raw key+value {:.1})",
        if secured { "secured" } else { "open" },
        raw as f64 / n as f64
    );
}
