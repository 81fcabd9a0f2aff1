//! Store and sync benchmark: prints figures, and the ratio against JavaScript
//! scuttlebutt 5.6.15 run in the same invocation.
//!
//! `cargo run --release -p rtc-mesh-bench --bin bench-sync [-- --keys N] [--rss-keys M] [--no-js]`
//!
//! Inputs: keys `key-0000000001`…, values `{"n":i,"s":"v<i>"}`, 16-character source ids.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rtc_mesh_bench::{ms, rss_bytes, sync};
use rtc_mesh_core::{Codec, Replica, ReplicaOutput, Store, StoreConfig, Update, Value};

const EPOCH: f64 = 1_795_713_876_272.0;
const WRITER: &str = "aaaaaaaaaaaaaaaa";
const READER: &str = "bbbbbbbbbbbbbbbb";

fn key(i: usize) -> String {
    format!("key-{i:010}")
}

fn value(i: usize) -> Value {
    Value::from_json(&format!(r#"{{"n":{i},"s":"v{i}"}}"#)).expect("literal json")
}

fn store(id: &str, t0: Instant) -> Store {
    Store::new(StoreConfig::new(id, EPOCH, t0)).expect("valid id")
}

fn main() {
    let mut keys = 100_000usize;
    let mut rss_keys = 1_000_000usize;
    let mut js = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--keys" => keys = args.next().and_then(|v| v.parse().ok()).expect("--keys N"),
            "--rss-keys" => {
                rss_keys = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rss-keys N")
            }
            "--no-js" => js = false,
            "--sync-child" => {
                let codec = args
                    .next()
                    .and_then(|v| Codec::from_name(&v))
                    .expect("codec");
                let n = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--sync-child CODEC N");
                sync_child(codec, n);
                return;
            }
            "--rss-child" => {
                let n = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--rss-child N");
                rss_child(n);
                return;
            }
            _ => {
                eprintln!("usage: bench-sync [--keys N] [--rss-keys N] [--no-js]");
                std::process::exit(2);
            }
        }
    }
    let t0 = Instant::now();
    println!("bench-sync: {keys} keys, values {{\"n\":i,\"s\":\"v<i>\"}}, 16-character source ids");

    // Local set rate.
    let values: Vec<Value> = (1..=keys).map(value).collect();
    let names: Vec<String> = (1..=keys).map(key).collect();
    let mut writer = Replica::new(store(WRITER, t0));
    let start = Instant::now();
    for (k, v) in names.iter().zip(&values) {
        writer.set(t0, k, v).expect("set");
    }
    let set_t = start.elapsed();
    while !matches!(writer.poll_output(), ReplicaOutput::Timeout(_)) {}
    println!(
        "local set:     {:>10.0} sets/s   ({:.1} ms for {keys})",
        keys as f64 / set_t.as_secs_f64(),
        ms(set_t)
    );

    // Remote apply rate.
    let updates: Vec<Update> = writer
        .store()
        .history(&Default::default())
        .iter()
        .map(|u| u.to_owned())
        .collect();
    let mut applier = store(READER, t0);
    let start = Instant::now();
    for u in updates {
        applier.apply(t0, u);
        while applier.poll_event().is_some() {}
    }
    let apply_t = start.elapsed();
    println!(
        "remote apply:  {:>10.0} updates/s ({:.1} ms for {keys})",
        keys as f64 / apply_t.as_secs_f64(),
        ms(apply_t)
    );

    // Full sync and delta sync, per codec, each in a fresh process (as the JavaScript
    // run is): the first sync there has a cold heap; the warm figure is the median of
    // three more syncs into fresh readers.
    let exe = std::env::current_exe().expect("own path");
    let mut full_ms = Vec::new();
    for codec in [Codec::Json, Codec::Postcard] {
        let out = Command::new(&exe)
            .args(["--sync-child", codec.name(), &keys.to_string()])
            .output()
            .expect("run the sync child");
        let text = String::from_utf8_lossy(&out.stdout);
        print!("{text}");
        if !out.status.success() {
            eprintln!(
                "bench-sync: {codec} sync failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::process::exit(1);
        }
        // "full sync CODEC  X ms cold,  Y ms warm ..."
        let figures: Vec<f64> = text
            .lines()
            .find(|l| l.starts_with("full sync"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|w| w.trim_end_matches(',').parse().ok())
            .collect();
        let (cold, warm) = (figures.first(), figures.get(1));
        full_ms.push((
            codec,
            cold.copied().unwrap_or(f64::NAN),
            warm.copied().unwrap_or(f64::NAN),
        ));
    }

    // Memory: RSS per key at rss_keys keys, measured in a fresh process so that
    // memory freed by the runs above does not hide the store's growth.
    if rss_keys > 0 {
        let exe = std::env::current_exe().expect("own path");
        let out = Command::new(exe)
            .args(["--rss-child", &rss_keys.to_string()])
            .output()
            .expect("run the memory child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }

    // JavaScript scuttlebutt, same workload, same invocation.
    if js {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/bench-scuttlebutt.js");
        let out = Command::new("node")
            .arg("--max-old-space-size=4096")
            .arg(&script)
            .arg(keys.to_string())
            .arg("4")
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let text = String::from_utf8_lossy(&o.stdout);
                let line = text.lines().last().unwrap_or_default();
                let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
                let js_ms = v["sync_ms"].as_f64().unwrap_or(f64::NAN);
                let js_warm = v["sync_ms_warm"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "scuttlebutt:   set {:.1} ms; full sync {js_ms:.1} ms cold, {js_warm:.1} ms warm; {} bytes ({} bytes/update)",
                    v["set_ms"].as_f64().unwrap_or(f64::NAN),
                    v["bytes"],
                    v["bytes_per_update"]
                );
                for (codec, cold, warm) in &full_ms {
                    println!(
                        "ratio:         full sync {:.1}x faster than scuttlebutt cold, {:.1}x warm ({})",
                        js_ms / cold,
                        js_warm / warm,
                        codec.name()
                    );
                }
            }
            Ok(o) => {
                eprintln!(
                    "bench-sync: scuttlebutt run failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("bench-sync: cannot run node ({e}); install Node.js or pass --no-js");
                std::process::exit(1);
            }
        }
    }
}

/// Fills one store with `n` keys and prints RSS growth per key.
fn rss_child(n: usize) {
    let t0 = Instant::now();
    let before = rss_bytes();
    let mut big = store(WRITER, t0);
    let mut raw = 0usize;
    for i in 1..=n {
        let k = key(i);
        let v = value(i);
        raw += k.len() + v.to_json().len();
        big.set(t0, &k, &v).expect("set");
        while big.poll_event().is_some() {}
    }
    let after = rss_bytes();
    let per_key = after.saturating_sub(before) as f64 / n as f64;
    let raw_per_key = raw as f64 / n as f64;
    println!(
        "memory:        {per_key:.1} bytes RSS per key at {n} keys; raw key+value {raw_per_key:.1} bytes; overhead {:.1} bytes/key",
        per_key - raw_per_key
    );
    assert_eq!(big.len(), n);
}

/// In a fresh process: full sync of `n` keys with `codec`, cold then warm, then a delta.
fn sync_child(codec: Codec, n: usize) {
    let t0 = Instant::now();
    let mut writer = Replica::new(store(WRITER, t0));
    for i in 1..=n {
        writer.set(t0, &key(i), &value(i)).expect("set");
        while !matches!(writer.poll_output(), ReplicaOutput::Timeout(_)) {}
    }
    let mut times = Vec::new();
    let mut reader = Replica::new(store(READER, t0));
    let (mut full_bytes, mut first_ab) = (0, 0);
    for run in 0..4 {
        reader = Replica::new(store(READER, t0));
        let (t, ab, ba) = sync(&mut writer, &mut reader, codec, t0);
        assert_eq!(reader.store().len(), n, "full sync incomplete");
        if run == 0 {
            full_bytes = ab + ba;
            first_ab = ab;
        }
        times.push(ms(t));
    }
    let cold = times[0];
    let mut warm = times[1..].to_vec();
    warm.sort_by(f64::total_cmp);
    let warm = warm[warm.len() / 2];
    println!(
        "full sync {:<8} {cold:>7.1} ms cold, {warm:>6.1} ms warm  {first_ab:>9} bytes  {:>5.1} bytes/update",
        codec.name(),
        first_ab as f64 / n as f64
    );
    // 1% of the keys change on the writer, then the two reconnect.
    let t1 = t0 + Duration::from_millis(10);
    for i in (1..=n).step_by(100) {
        writer
            .set(t1, &key(i), &Value::from(i as f64))
            .expect("set");
    }
    while !matches!(writer.poll_output(), ReplicaOutput::Timeout(_)) {}
    let (dt, dab, dba) = sync(&mut writer, &mut reader, codec, t1);
    assert_eq!(reader.store().dump(), writer.store().dump());
    println!(
        "delta sync {:<7} {:>7.1} ms       {:>9} bytes  = {:.2}% of the full sync's bytes",
        codec.name(),
        ms(dt),
        dab + dba,
        100.0 * (dab + dba) as f64 / full_bytes as f64
    );
}
