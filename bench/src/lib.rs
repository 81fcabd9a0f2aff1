//! What the benchmark programs share: replicas synced over in-memory links, and
//! readings of this process's memory.

use std::time::{Duration, Instant};

use rtc_mesh_core::{Codec, Framing, Replica, ReplicaOutput};

/// Takes outputs from `r` until one chunk to send (returned) or none is left;
/// events met on the way are consumed, as an event loop would.
fn next_chunk(r: &mut Replica, spent: &mut Duration) -> Option<Vec<u8>> {
    let t = Instant::now();
    let chunk = loop {
        match r.poll_output() {
            ReplicaOutput::Transmit(_, d) => break Some(d),
            ReplicaOutput::Event(_) => {}
            ReplicaOutput::Timeout(_) => break None,
        }
    };
    *spent += t.elapsed();
    chunk
}

/// Minor page faults of this process so far.
pub fn minflt() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| s.rsplit(')').next().map(str::to_owned))
        .and_then(|s| s.split_whitespace().nth(7).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Links two replicas over in-memory message links and runs until idle: each round
/// takes one chunk from each side and delivers it (the network is instant), so the
/// sender streams its history a chunk at a time while the receiver applies it.
/// Returns (elapsed, bytes a→b, bytes b→a).
pub fn sync(a: &mut Replica, b: &mut Replica, codec: Codec, now: Instant) -> (Duration, u64, u64) {
    let faults = minflt();
    let start = Instant::now();
    let la = a.open_link(codec, Framing::Messages);
    let lb = b.open_link(codec, Framing::Messages);
    let (mut ab, mut ba) = (0, 0);
    let (mut t_a, mut t_b, mut t_in) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    loop {
        let x = next_chunk(a, &mut t_a);
        let y = next_chunk(b, &mut t_b);
        if x.is_none() && y.is_none() {
            break;
        }
        let t = Instant::now();
        if let Some(d) = x {
            ab += d.len() as u64;
            b.handle_input(now, lb, &d);
        }
        if let Some(d) = y {
            ba += d.len() as u64;
            a.handle_input(now, la, &d);
        }
        t_in += t.elapsed();
    }
    let t = start.elapsed();
    if std::env::var_os("BENCH_DETAIL").is_some() {
        println!(
            "    (poll_output: sender {:.1} ms, receiver {:.1} ms; handle_input {:.1} ms; {} page faults)",
            ms(t_a),
            ms(t_b),
            ms(t_in),
            minflt() - faults
        );
    }
    a.close_link(la);
    b.close_link(lb);
    (t, ab, ba)
}

/// This process's resident memory, in bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Milliseconds, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
