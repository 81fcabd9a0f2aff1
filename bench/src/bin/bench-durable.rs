//! Durable members benchmark: prints figures, with redb run beside our log in the same
//! invocation.
//!
//! `cargo run --release -p rtc-mesh-bench --bin bench-durable [-- --writes N] [--repeat R] [--keys M] [--rejoin-keys K]`
//!
//! - **Group commit at `power`**: `N` writes (default 200,000) of 100-byte values under
//!   new keys, through the real path (`Store::set`, `Store::poll_persist`,
//!   `Storage::append`), at 256 and 4,096 writes per batch: as the drivers run it
//!   (`Storage::sync_in_background`: the batch written on the loop, the `fdatasync`
//!   on the storage's sync thread, each covering every batch written while the one
//!   before ran; a batch acknowledged when a sync covers it, at most 8 batches
//!   waiting for theirs, as writers waiting for answers), and with the sync inline (one
//!   `write` and one `fdatasync` per batch, nothing else meanwhile); redb 4.6
//!   inserting the same keys and values, one `Durability::Immediate` transaction per
//!   batch of the same size, alone and with each write applied to an in-memory store
//!   first (a member that keeps its store in redb instead of our log). `R` rounds
//!   (`--repeat R`, default 3), both batch sizes in each, and then the spread of each
//!   figure and of the ratios within a run: on a shared machine the figures move by a
//!   fifth or more from one run to the next.
//! - **Restart**: a directory of `M` keys (default 1,000,000) written as a member
//!   writes it (snapshots taken in pieces along the way, as the event loop takes
//!   them), then: the time from opening the directory to a store that serves, in a
//!   process of its own (as a member restarts; the files in the page cache, as after a
//!   crash), from the snapshot and log the writing left, from a snapshot alone and
//!   from a snapshot with an `M`-record log after it; disk bytes per live key; and the
//!   two longest steps the event loop spent on a snapshot.
//! - **Rejoin**: two replicas of `K` keys (default 100,000); one goes away with its
//!   log, 1% of the keys change meanwhile, it comes back from its log: the bytes of
//!   that sync against a full sync's.
//!
//! The directories are made under the system's temporary directory and removed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rtc_mesh_bench::{minflt, ms, rss_bytes, sync};
use rtc_mesh_core::persist::{encode_header, recover, Durability, SegmentHeader, FORMAT};
use rtc_mesh_core::{Codec, Limits, Replica, Store, StoreConfig, Value};
use rtc_mesh_std::storage::Storage;

const EPOCH: f64 = 1_795_713_876_272.0;

fn key(i: usize) -> String {
    format!("key-{i:010}")
}

/// A value whose encoded form is 100 bytes (a JSON string of 98 characters).
fn value(i: usize) -> Value {
    let s = format!("{i:010}");
    Value::from(format!("{s}{}", "v".repeat(98 - s.len())))
}

/// A store at `power` on `dir`, for a throughput run (see [`no_snapshots_if_asked`]).
fn open_power(dir: &Path, t0: Instant) -> (Store, Storage, Duration) {
    open(
        dir,
        "me.0000000000000001",
        Durability::Power,
        t0,
        no_snapshots_if_asked,
    )
}

/// `BENCH_NO_SNAPSHOTS`: the store takes no snapshots (to see what they cost).
fn no_snapshots_if_asked(c: &mut StoreConfig) {
    if std::env::var_os("BENCH_NO_SNAPSHOTS").is_some() {
        c.snapshots.min_log = u64::MAX;
    }
}

/// Whether `BENCH_DETAIL` asks for the times split.
fn detail() -> bool {
    std::env::var_os("BENCH_DETAIL").is_some()
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rtc-mesh-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// A durable store on `dir`, restored as a member restores it (the log read back on a
/// thread of its own while the store takes its updates); and the storage, begun.
fn open(
    dir: &Path,
    id: &str,
    durability: Durability,
    t0: Instant,
    tune: impl FnOnce(&mut StoreConfig),
) -> (Store, Storage, Duration) {
    let start = Instant::now();
    let mut opening = Storage::opening(dir, durability, false, &Limits::default()).expect("open");
    let mut c = StoreConfig::new(id, EPOCH, t0);
    tune(&mut c);
    let s = Store::from_log(c, &mut opening).expect("store");
    let restored = start.elapsed();
    // (As the drivers begin: after the store is restored.)
    let st = opening
        .finish()
        .expect("finish")
        .storage
        .begin(id)
        .expect("begin");
    let serving = start.elapsed();
    if detail() {
        eprintln!(
            "    (open: read back and restored {:.0} ms, {} keys; begun {:.0} ms)",
            ms(restored),
            s.len(),
            ms(serving - restored)
        );
    }
    (s, st, serving)
}

/// A restart, as a member restarts: in a process of its own (this program with
/// `--open DIR`), so that nothing of the life before (its heap above all) weighs on
/// it. Returns the time from opening the directory to a store that serves, and the
/// keys it holds.
fn restart_in_child(dir: &Path) -> (Duration, usize) {
    let out = std::process::Command::new(std::env::current_exe().expect("this program"))
        .arg("--open")
        .arg(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("the child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    let mut next = || words.next().and_then(|w| w.parse::<u64>().ok());
    match (next(), next()) {
        (Some(us), Some(keys)) if out.status.success() => {
            (Duration::from_micros(us), keys as usize)
        }
        _ => panic!(
            "the restart failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// `--open DIR`: prints the microseconds to a serving store, and its keys.
fn open_only(dir: &Path) {
    let t0 = Instant::now();
    let (s, st, serving) = open(dir, "me.0000000000000009", Durability::Process, t0, |_| {});
    println!("{} {}", serving.as_micros(), s.len());
    // (The exit frees nothing: as a member that serves on.)
    std::mem::forget((s, st));
}

/// What a driver does after an input: the log's records written, then one piece of a
/// snapshot if one is due or under way. Returns the time the snapshot piece took.
fn flush(s: &mut Store, st: &mut Storage) -> Duration {
    while let Some(b) = s.poll_persist() {
        st.append(&b).expect("append");
    }
    let t = Instant::now();
    if let Some(p) = s.poll_snapshot() {
        let taken = t.elapsed();
        let first = p.first;
        st.snapshot(p).expect("snapshot");
        if detail() && t.elapsed() > Duration::from_millis(5) {
            println!(
                "    (a long snapshot step: the store's part {:.2} ms, the storage's {:.2} ms{})",
                ms(taken),
                ms(t.elapsed() - taken),
                if first { ", the first" } else { "" }
            );
        }
    }
    t.elapsed()
}

/// The two longest snapshot steps. (The one-off of the allocator that once made the
/// longest 14-25 ms, glibc sorting a million freed blocks at the next large request,
/// is now taken before the steps: see `rtc_mesh_std::storage::settle_heap`.)
#[derive(Default, Clone, Copy)]
struct Steps([Duration; 2]);

impl Steps {
    fn add(&mut self, d: Duration) {
        if d > self.0[0] {
            self.0 = [d, self.0[0]];
        } else if d > self.0[1] {
            self.0[1] = d;
        }
    }

    fn merge(mut self, other: Steps) -> Steps {
        other.0.iter().for_each(|&d| self.add(d));
        self
    }
}

impl std::fmt::Display for Steps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "longest snapshot step {:.2} ms (next {:.2} ms)",
            ms(self.0[0]),
            ms(self.0[1])
        )
    }
}

/// Writes keys `range` (values `value(i + shift)`) in batches of `batch`, flushing
/// after each; returns the elapsed time and the longest snapshot steps.
fn write(
    s: &mut Store,
    st: &mut Storage,
    range: std::ops::Range<usize>,
    shift: usize,
    batch: usize,
    t0: Instant,
) -> (Duration, Steps) {
    // The keys and values made beforehand (as the redb run does), so that only the
    // store and the log are timed.
    let keys: Vec<String> = range.clone().map(key).collect();
    let values: Vec<Value> = range.clone().map(|i| value(i + shift)).collect();
    let start = Instant::now();
    let mut longest = Steps::default();
    let (mut in_store, mut in_log) = (Duration::ZERO, Duration::ZERO);
    let mut i = 0;
    while i < keys.len() {
        let end = (i + batch).min(keys.len());
        let t = Instant::now();
        let now = t0 + start.elapsed();
        for j in i..end {
            s.set(now, &keys[j], &values[j]).expect("set");
        }
        while s.poll_event().is_some() {}
        let t2 = Instant::now();
        in_store += t2 - t;
        longest.add(flush(s, st));
        in_log += t2.elapsed();
        i = end;
    }
    let took = start.elapsed();
    // The inputs are the benchmark's, not the member's: their million blocks freed,
    // and the allocator's sorting of them (see `settle_heap`) done, outside the time
    // taken and the steps measured after this.
    drop((keys, values));
    rtc_mesh_std::storage::settle_heap();
    if detail() {
        println!(
            "    (store {:.0} ms, log {:.0} ms)",
            ms(in_store),
            ms(in_log)
        );
    }
    (took, longest)
}

/// As `write` (fresh keys `0..n`), the way the drivers run at `power`: the sync on the
/// storage's thread while the next batches are made and written; at most `window`
/// batches not yet acknowledged (synced). Returns the time until the last is.
fn write_pipelined(
    s: &mut Store,
    st: &mut Storage,
    n: usize,
    batch: usize,
    window: usize,
    t0: Instant,
) -> Duration {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    st.sync_in_background(move || {
        let _ = tx.send(());
    })
    .expect("sync thread");
    let keys: Vec<String> = (0..n).map(key).collect();
    let values: Vec<Value> = (0..n).map(value).collect();
    let flt0 = minflt();
    let start = Instant::now();
    let mut waiting = std::collections::VecDeque::new();
    let (mut in_append, mut in_set, mut in_wait) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut i = 0;
    while i < n || !waiting.is_empty() {
        if i < n && waiting.len() < window {
            let end = (i + batch).min(n);
            let now = t0 + start.elapsed();
            let ts = Instant::now();
            for j in i..end {
                s.set(now, &keys[j], &values[j]).expect("set");
            }
            while s.poll_event().is_some() {}
            in_set += ts.elapsed();
            let ta = Instant::now();
            while let Some(b) = s.poll_persist() {
                if !st.append(&b).expect("append") {
                    waiting.push_back(b.last_seq);
                }
            }
            in_append += ta.elapsed();
            if let Some(p) = s.poll_snapshot() {
                st.snapshot(p).expect("snapshot");
            }
            i = end;
        } else {
            let tw = Instant::now();
            rx.recv().expect("a sync");
            in_wait += tw.elapsed();
        }
        if let Some(seq) = st.synced().expect("sync") {
            s.persisted(seq);
            while waiting.front().is_some_and(|&w| w <= seq) {
                waiting.pop_front();
            }
        }
    }
    if detail() {
        println!(
            "    (pipelined: store {:.0} ms, append {:.0} ms, waiting for syncs {:.0} ms; {} page faults)",
            ms(in_set),
            ms(in_append),
            ms(in_wait),
            minflt() - flt0
        );
    }
    start.elapsed()
}

/// redb inserting `n` keys in transactions of `batch` writes at
/// `Durability::Immediate`; with `store`, each write applied to that (in-memory) store
/// first, as a member keeping its store in redb would.
fn redb_writes(n: usize, batch: usize, mut store: Option<&mut Store>) -> Duration {
    use redb::{Database, TableDefinition};
    const TABLE: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("kv");
    let dir = temp("redb");
    std::fs::create_dir_all(&dir).expect("dir");
    let db = Database::create(dir.join("db.redb")).expect("redb");
    let keys: Vec<String> = (0..n).map(key).collect();
    let vals: Vec<Value> = (0..n).map(value).collect();
    let values: Vec<Vec<u8>> = (0..batch.min(n))
        .map(|i| value(i).to_json().into_bytes())
        .collect();
    let t0 = Instant::now();
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let end = (i + batch).min(n);
        let mut txn = db.begin_write().expect("txn");
        txn.set_durability(redb::Durability::Immediate)
            .expect("durability");
        {
            let mut t = txn.open_table(TABLE).expect("table");
            for j in i..end {
                if let Some(s) = store.as_deref_mut() {
                    s.set(t0 + start.elapsed(), &keys[j], &vals[j])
                        .expect("set");
                }
                t.insert(keys[j].as_str(), values[j % values.len()].as_slice())
                    .expect("insert");
            }
        }
        txn.commit().expect("commit");
        if let Some(s) = store.as_deref_mut() {
            while s.poll_event().is_some() {}
        }
        i = end;
    }
    let t = start.elapsed();
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
    t
}

/// One run of the throughput part at one batch size: writes per second of ours synced
/// beside the loop, ours with the sync inline, redb alone, a store over redb.
#[derive(Clone, Copy)]
struct Rates {
    piped: f64,
    inline: f64,
    redb: f64,
    over_redb: f64,
}

fn throughput_once(n: usize, batch: usize) -> Rates {
    let dir = temp("power");
    let t0 = Instant::now();
    let (mut s, mut st, _) = open_power(&dir, t0);
    let window = std::env::var("BENCH_WINDOW")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(8);
    let piped = write_pipelined(&mut s, &mut st, n, batch, window, t0);
    st.settle().expect("settle");
    drop((s, st));
    let _ = std::fs::remove_dir_all(&dir);
    let t0 = Instant::now();
    let (mut s, mut st, _) = open_power(&dir, t0);
    let (ours, longest) = write(&mut s, &mut st, 0..n, 0, batch, t0);
    st.settle().expect("settle");
    let log = dir_bytes(&dir);
    drop((s, st));
    let _ = std::fs::remove_dir_all(&dir);
    let redb = redb_writes(n, batch, None);
    let mut plain = Store::new(StoreConfig::new("me.0000000000000001", EPOCH, t0)).expect("store");
    let over_redb = redb_writes(n, batch, Some(&mut plain));
    let per_s = |d: Duration| n as f64 / d.as_secs_f64();
    let r = Rates {
        piped: per_s(piped),
        inline: per_s(ours),
        redb: per_s(redb),
        over_redb: per_s(over_redb),
    };
    println!(
        "  batch {batch:>5}: rtc-mesh {:>8.0} writes/s ({:.2} s; synced beside the loop, as the drivers run); redb alone {:>8.0}/s: {:.2}x; a store over redb {:>8.0}/s: {:.2}x",
        r.piped,
        piped.as_secs_f64(),
        r.redb,
        r.piped / r.redb,
        r.over_redb,
        r.piped / r.over_redb,
    );
    println!(
        "               with the sync inline (one per batch) {:>8.0} writes/s ({:.2} s): {:.2}x redb alone, {:.2}x a store over redb; directory {:.1} MB; {longest}",
        r.inline,
        ours.as_secs_f64(),
        r.inline / r.redb,
        r.inline / r.over_redb,
        log as f64 / 1e6,
    );
    r
}

/// The least, median and largest of `xs` (not empty).
fn spread_of(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[0], xs[xs.len() / 2], xs[xs.len() - 1])
}

/// The throughput part, `repeat` times: the batch sizes interleaved in each round, so
/// that a slow spell of the machine weighs on both and on redb alike; with more than
/// one round, the spread of each figure and of the ratios within a run.
fn throughput(n: usize, repeat: usize) {
    println!("group commit at power, {n} writes of 100-byte values under new keys:");
    const BATCHES: [usize; 2] = [256, 4096];
    let mut runs: Vec<[Rates; 2]> = Vec::new();
    for round in 0..repeat {
        if repeat > 1 {
            println!(" run {} of {repeat}:", round + 1);
        }
        runs.push(BATCHES.map(|b| throughput_once(n, b)));
    }
    if repeat < 2 {
        return;
    }
    for (i, batch) in BATCHES.iter().enumerate() {
        let of = |f: fn(&Rates) -> f64| spread_of(runs.iter().map(|r| f(&r[i])).collect());
        let ratios = |f: fn(&Rates) -> f64| {
            let (lo, mid, hi) = of(f);
            format!("{lo:.2}x-{hi:.2}x (median {mid:.2}x)")
        };
        let (plo, pmid, phi) = of(|r| r.piped);
        let (rlo, rmid, rhi) = of(|r| r.redb);
        println!(
            "  batch {batch:>5}, {repeat} runs: rtc-mesh {plo:.0}-{phi:.0} writes/s (median {pmid:.0}); redb alone {rlo:.0}-{rhi:.0}/s (median {rmid:.0}); within each run: {} redb alone, {} a store over redb; the sync inline {} redb alone",
            ratios(|r| r.piped / r.redb),
            ratios(|r| r.piped / r.over_redb),
            ratios(|r| r.inline / r.redb),
        );
    }
}

fn restart(m: usize) {
    println!("restart, {m} keys:");
    let dir = temp("restart");
    let t0 = Instant::now();
    // Life 1: the keys written as a member writes them, 4,096 per turn, at `process`.
    let (mut s, mut st, _) = open(&dir, "me.0000000000000001", Durability::Process, t0, |_| {});
    let (took, longest) = write(&mut s, &mut st, 0..m, 0, 4096, t0);
    // The turns after the writes: a snapshot under way goes on, a piece per turn.
    let mut tail = Steps::default();
    while s.snapshotting() {
        tail.add(flush(&mut s, &mut st));
    }
    st.settle().expect("settle");
    let (snaps, _) = st.snapshots();
    println!(
        "  written in {:.2} s ({:.0} writes/s at process), {snaps} snapshots on the way; {}",
        took.as_secs_f64(),
        m as f64 / took.as_secs_f64(),
        longest.merge(tail)
    );
    let rss_before = rss_bytes();
    drop((s, st));
    let (serving, keys) = restart_in_child(&dir);
    assert_eq!(keys, m);
    println!(
        "  restart (a process of its own) from what the writing left ({snaps} snapshots: the log alone when no record was replaced): serving in {:.0} ms ({:.1} MB on disk)",
        ms(serving),
        dir_bytes(&dir) as f64 / 1e6
    );
    // Life 2: a snapshot at once (as if garbage made one due), then stop.
    let (mut s, mut st, _) = open(&dir, "me.0000000000000002", Durability::Process, t0, |c| {
        c.snapshots.min_log = 0;
        c.snapshots.garbage_bytes = u64::MAX / 2;
    });
    let mut longest = Steps::default();
    while {
        longest.add(flush(&mut s, &mut st));
        s.snapshotting()
    } {}
    st.settle().expect("settle");
    let disk = dir_bytes(&dir);
    println!(
        "  after a snapshot: {:.1} MB on disk, {:.1} bytes per live key; {longest}; RSS {:.0} MB",
        disk as f64 / 1e6,
        disk as f64 / m as f64,
        rss_before as f64 / 1e6
    );
    drop((s, st));
    let (serving, keys) = restart_in_child(&dir);
    assert_eq!(keys, m);
    println!(
        "  restart from a snapshot alone: serving in {:.0} ms",
        ms(serving)
    );
    // Life 4: every key overwritten, no snapshot: a log of `m` records after it.
    let (mut s, mut st, _) = open(&dir, "me.0000000000000004", Durability::Process, t0, |c| {
        c.snapshots.min_log = u64::MAX;
    });
    let _ = write(&mut s, &mut st, 0..m, 1, 4096, t0);
    drop((s, st));
    let (serving, keys) = restart_in_child(&dir);
    assert_eq!(keys, m);
    println!(
        "  restart from a snapshot and a {m}-record log: serving in {:.0} ms ({:.1} MB on disk)",
        ms(serving),
        dir_bytes(&dir) as f64 / 1e6
    );
    if std::env::var_os("BENCH_KEEP").is_some() {
        // (for profiling a restart alone: `--open DIR`)
        println!("  (kept {})", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn rejoin(k: usize) {
    println!("rejoin, {k} keys, 1% changed while away (postcard):");
    let t0 = Instant::now();
    let a_store = Store::new(StoreConfig::new("aaaaaaaaaaaaaaaa.01", EPOCH, t0)).expect("a");
    let mut a = Replica::new(a_store);
    for i in 0..k {
        a.set(t0, &key(i), &value(i)).expect("set");
    }
    let mut c = StoreConfig::new("bbbbbbbbbbbbbbbb.01", EPOCH, t0);
    c.persist_from = Some(1);
    c.snapshots.min_log = u64::MAX;
    let mut b = Replica::new(Store::new(c).expect("b"));
    let (_, ab, ba) = sync(&mut a, &mut b, Codec::Postcard, t0);
    let full = ab + ba;
    // b goes away with its log.
    let mut log = Vec::new();
    encode_header(
        &SegmentHeader {
            format: FORMAT,
            store_id: "bbbbbbbbbbbbbbbb.01".into(),
            first_seq: 1,
        },
        &mut log,
    );
    while let Some(batch) = b.poll_persist() {
        log.extend(batch.bytes);
    }
    drop(b);
    let t1 = t0 + Duration::from_secs(5);
    for i in (0..k).step_by(100) {
        a.set(t1, &key(i), &value(i + 1)).expect("set");
    }
    let r = recover(None, &[&log], false, &Limits::default()).expect("recover");
    let mut c = StoreConfig::new("bbbbbbbbbbbbbbbb.02", EPOCH, t0);
    c.persist_from = Some(r.next_seq);
    let mut s = Store::new(c).expect("b again");
    for u in &r.updates {
        s.restore(t1, u.update.as_ref());
    }
    let mut b = Replica::new(s);
    let (_, ab, ba) = sync(&mut a, &mut b, Codec::Postcard, t1);
    assert_eq!(a.store().dump(), b.store().dump(), "converged");
    let back = ab + ba;
    println!(
        "  full sync {:.2} MB; rejoin from the log {:.1} KB: {:.2}% of a full sync",
        full as f64 / 1e6,
        back as f64 / 1e3,
        100.0 * back as f64 / full as f64
    );
}

const USAGE: &str =
    "usage: bench-durable [--writes N] [--repeat R] [--keys N] [--rejoin-keys N] [--restart-only | --throughput-only]
       bench-durable --pipelined-only BATCH [--writes N]
       bench-durable --open DIR
  BENCH_DETAIL=1 splits the times; BENCH_KEEP=1 keeps the restart's directory;
  BENCH_NO_SNAPSHOTS=1 takes no snapshots in the throughput runs.";

/// A bad command line: the usage, and exit 2.
fn usage(why: &str) -> ! {
    eprintln!("bench-durable: {why}\n{USAGE}");
    std::process::exit(2)
}

fn main() {
    let (mut n, mut m, mut k) = (200_000usize, 1_000_000usize, 100_000usize);
    let mut repeat = 3usize;
    // (`--pipelined-only BATCH`, `--restart-only`, `--throughput-only`: one part alone, once every
    // argument is read, so that `--writes` and `--keys` count wherever they come.)
    let (mut pipelined_only, mut restart_only, mut throughput_only) = (None, false, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| usage(&format!("{what} takes a number")))
        };
        match a.as_str() {
            "--writes" => n = num("--writes"),
            "--repeat" => repeat = num("--repeat").max(1),
            "--keys" => m = num("--keys"),
            "--rejoin-keys" => k = num("--rejoin-keys"),
            "--open" => {
                let dir = args
                    .next()
                    .unwrap_or_else(|| usage("--open takes a directory"));
                open_only(Path::new(&dir));
                return;
            }
            "--pipelined-only" => pipelined_only = Some(num("--pipelined-only")),
            "--restart-only" => restart_only = true,
            "--throughput-only" => throughput_only = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return;
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    if let Some(batch) = pipelined_only {
        // (for profiling: the pipelined run alone, at batch `batch`)
        let dir = temp("power");
        let t0 = Instant::now();
        let (mut s, mut st, _) = open_power(&dir, t0);
        let d = write_pipelined(&mut s, &mut st, n, batch, 8, t0);
        println!("{:.0} writes/s", n as f64 / d.as_secs_f64());
        drop((s, st));
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    if restart_only {
        restart(m);
        return;
    }
    throughput(n, repeat);
    if throughput_only {
        return;
    }
    restart(m);
    rejoin(k);
}
