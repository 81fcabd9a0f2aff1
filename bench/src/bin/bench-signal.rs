//! Load generator for signalling servers: our `rtc-mesh serve` (smol and std) and the
//! original `rtc-switchboard@3.2.0` (node), each started as a child process and driven
//! the same way in one invocation.
//!
//! Relay: C WebSocket clients in R rooms, in pairs of room-mates; each client keeps W
//! `/to` messages in flight to its mate (a received message is answered with a new
//! one) for T seconds. Prints relayed messages per second, p50/p99 relay latency.
//! Idle: I connections opened and announced (rooms of 10), then held; prints the
//! server's RSS per connection. The open-files limit is raised to its hard limit
//! (the run re-executes itself under `sh -c 'ulimit -n hard'`).
//!
//! ```text
//! cargo run --release -p rtc-mesh-bench --bin bench-signal -- [--clients C] [--rooms R]
//!     [--window W] [--seconds T] [--idle I] [--only smol|std|node]
//! ```
//! Needs the interop npm packages (`npm ci` in interop/) for the node server.
//!
//! `tokens` is `rtc-mesh serve --token-secret` (smol): every client connects with an
//! HS256 token for its room in `?token=`, so its rate beside `smol`'s is the cost of
//! the gate (checked once per connection, nothing on the relay path).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use smol::channel;
use smol::future::FutureExt;
use smol::net::TcpStream;
use smol::stream::StreamExt;

struct Opts {
    clients: usize,
    rooms: usize,
    window: usize,
    seconds: u64,
    idle: usize,
    only: Option<String>,
    /// Drive a server that is already running (for profiling it).
    addr: Option<SocketAddr>,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Starts a server; returns the child and its address.
fn start(kind: &str) -> (Child, SocketAddr) {
    let mut cmd = match kind {
        "node" => {
            let mut c = Command::new("node");
            c.arg("switchboard-server.js")
                .current_dir(repo_root().join("interop"));
            c
        }
        kind => {
            let (rt, tokens) = match kind {
                "tokens" => ("smol", true),
                rt => (rt, false),
            };
            let exe = std::env::current_exe().expect("own path");
            let bin = exe.with_file_name("rtc-mesh");
            assert!(
                bin.exists(),
                "{} not built: cargo build --release -p rtc-mesh-smol first",
                bin.display()
            );
            let mut c = Command::new(bin);
            c.args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--json",
                "--runtime",
                rt,
            ]);
            if tokens {
                c.args(["--token-secret", TOKEN_SECRET]);
            }
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the server");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout"))
        .read_line(&mut line)
        .expect("ready line");
    let v: serde_json::Value = serde_json::from_str(&line).expect("json ready line");
    let addr = match (&v["addr"], &v["port"]) {
        (serde_json::Value::String(a), _) => a.parse().expect("addr"),
        (_, serde_json::Value::Number(p)) => format!("127.0.0.1:{p}").parse().expect("addr"),
        _ => panic!("bad ready line {line}"),
    };
    (child, addr)
}

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses).
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

type Ws = async_tungstenite::WebSocketStream<TcpStream>;

/// The `tokens` server's secret.
const TOKEN_SECRET: &str = "bench-signal token secret, 32 bytes or more";

/// A token for `room` (for the `tokens` server; the others ignore the query).
fn token(room: &str) -> String {
    use rtc_mesh_core::security::token::{Claims, TokenKey};
    TokenKey::new(TOKEN_SECRET.as_bytes())
        .expect("a long secret")
        .issue(&Claims {
            room: room.to_owned(),
            exp: u64::from(u32::MAX),
        })
}

async fn try_open(addr: SocketAddr, id: &str, room: &str) -> Option<Ws> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let url = format!("ws://{addr}/?token={}", token(room));
    let (mut ws, _) = async_tungstenite::client_async(url, stream).await.ok()?;
    let ann = format!(r#"/announce|{id}|{{"id":"{id}","room":"{room}","agent":"bench"}}"#);
    ws.send(Message::text(ann)).await.ok()?;
    Some(ws)
}

async fn open(addr: SocketAddr, id: &str, room: &str) -> Ws {
    try_open(addr, id, room)
        .await
        .expect("connect and announce")
}

/// Reads until a message that starts with `prefix`; false if the connection ends.
async fn try_wait_for(ws: &mut Ws, prefix: &str) -> bool {
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m {
            if t.as_str().starts_with(prefix) {
                return true;
            }
        }
    }
    false
}

async fn wait_for(ws: &mut Ws, prefix: &str) {
    assert!(
        try_wait_for(ws, prefix).await,
        "connection ended before {prefix}"
    );
}

/// Relay load: returns (messages relayed, latencies in µs).
fn relay(addr: SocketAddr, o: &Opts) -> (u64, Vec<u32>, Duration) {
    smol::block_on(async {
        let per_room = (o.clients / o.rooms).max(2) & !1;
        let t0 = Instant::now();
        // Connect everyone and wait until every room is complete.
        let mut conns = Vec::new();
        for i in 0..o.clients {
            let room = format!("room{}", i / per_room);
            let id = format!("c{i}");
            conns.push(smol::spawn(async move {
                let ws = open(addr, &id, &room).await;
                (i, ws)
            }));
        }
        let mut wss = Vec::new();
        for c in conns {
            wss.push(c.await);
        }
        for (_, ws) in wss.iter_mut() {
            wait_for(ws, "/roominfo").await;
        }
        // Let the announces settle: the last member of each room has been announced.
        smol::Timer::after(Duration::from_millis(300)).await;
        let start = Instant::now();
        let end = start + Duration::from_secs(o.seconds);
        let (tx, rx) = channel::unbounded::<(u64, Vec<u32>)>();
        let window = o.window;
        for (i, ws) in wss {
            let mate = i ^ 1;
            let tx = tx.clone();
            smol::spawn(async move {
                let (mut sink, mut stream) = ws.split();
                let me = format!("c{i}");
                let msg = |t0: Instant| {
                    let us = t0.elapsed().as_micros();
                    format!("/to|c{mate}|/load|{me}|{us}")
                };
                for _ in 0..window {
                    let _ = sink.send(Message::text(msg(t0))).await;
                }
                let mut lat = Vec::new();
                let mut n = 0u64;
                loop {
                    let next = async { stream.next().await }
                        .or(async {
                            smol::Timer::at(end).await;
                            None
                        })
                        .await;
                    let Some(Ok(Message::Text(t))) = next else {
                        break;
                    };
                    if Instant::now() >= end {
                        break;
                    }
                    if let Some(sent) = t
                        .as_str()
                        .rsplit('|')
                        .next()
                        .and_then(|s| s.parse::<u128>().ok())
                    {
                        if t.as_str().contains("/load|") {
                            n += 1;
                            let now = t0.elapsed().as_micros();
                            lat.push(now.saturating_sub(sent).min(u32::MAX as u128) as u32);
                            let _ = sink.send(Message::text(msg(t0))).await;
                        }
                    }
                }
                let _ = tx.send((n, lat)).await;
            })
            .detach();
        }
        drop(tx);
        let mut total = 0;
        let mut lat = Vec::new();
        while let Ok((n, l)) = rx.recv().await {
            total += n;
            lat.extend(l);
        }
        (total, lat, start.elapsed())
    })
}

/// Opens `n` idle connections (announced in rooms of 10) and returns them, held, with
/// how many the server took.
fn idle(addr: SocketAddr, n: usize) -> (Vec<smol::Task<()>>, usize) {
    smol::block_on(async {
        let (tx, rx) = channel::unbounded::<bool>();
        let mut tasks = Vec::new();
        for i in 0..n {
            let tx = tx.clone();
            tasks.push(smol::spawn(async move {
                let ws = try_open(addr, &format!("i{i}"), &format!("idle{}", i / 10)).await;
                let Some(mut ws) = ws else {
                    let _ = tx.send(false).await;
                    return;
                };
                let ok = try_wait_for(&mut ws, "/roominfo").await;
                let _ = tx.send(ok).await;
                // Hold it, reading whatever comes (announces of later room-mates).
                while let Some(Ok(_)) = ws.next().await {}
            }));
            if i % 256 == 255 {
                smol::Timer::after(Duration::from_millis(5)).await;
            }
        }
        drop(tx);
        let (mut done, mut held) = (0, 0);
        while let Ok(ok) = rx.recv().await {
            done += 1;
            held += ok as usize;
            if done == n {
                break;
            }
        }
        (tasks, held)
    })
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    // Raise the open-files limit: re-execute under a shell that sets it.
    if std::env::var_os("BENCH_SIGNAL_ULIMIT").is_none() {
        let exe = std::env::current_exe().expect("own path");
        let args: Vec<String> = std::env::args().skip(1).collect();
        let status = Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n "$(ulimit -Hn)" && exec "$0" "$@""#)
            .arg(exe)
            .args(args)
            .env("BENCH_SIGNAL_ULIMIT", "1")
            .status()
            .expect("re-exec under sh");
        std::process::exit(status.code().unwrap_or(1));
    }
    let mut o = Opts {
        clients: 1000,
        rooms: 100,
        window: 1,
        seconds: 10,
        idle: 10_000,
        only: None,
        addr: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().expect("a value");
        match a.as_str() {
            "--clients" => o.clients = val().parse().expect("number"),
            "--rooms" => o.rooms = val().parse().expect("number"),
            "--window" => o.window = val().parse().expect("number"),
            "--seconds" => o.seconds = val().parse().expect("number"),
            "--idle" => o.idle = val().parse().expect("number"),
            "--only" => o.only = Some(val()),
            "--addr" => o.addr = Some(val().parse().expect("HOST:PORT")),
            _ => {
                eprintln!("usage: bench-signal [--clients C] [--rooms R] [--window W] [--seconds T] [--idle I] [--only smol|tokens|std|node]");
                std::process::exit(2);
            }
        }
    }
    let nofile = Command::new("sh")
        .args(["-c", "ulimit -n"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    println!(
        "bench-signal: relay C={} clients in R={} rooms, W={} in flight each, T={} s; idle I={} connections; open files limit {nofile}",
        o.clients, o.rooms, o.window, o.seconds, o.idle
    );
    println!("servers: rtc-mesh serve with default limits (64 KiB frames, 256 members, 10,000 rooms, 1,000 msg/s per connection, burst 2,048, 65,536 connections; std: 5,000); rtc-switchboard 3.2.0 has no limits");
    if let Some(addr) = o.addr {
        let (n, mut lat, dt) = relay(addr, &o);
        lat.sort_unstable();
        println!(
            "{addr}: relay {:.0} msg/s  p50 {:.2} ms  p99 {:.2} ms",
            n as f64 / dt.as_secs_f64(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
        return;
    }
    let mut rates = Vec::new();
    for kind in ["smol", "tokens", "std", "node"] {
        if o.only.as_deref().is_some_and(|k| k != kind) {
            continue;
        }
        let (mut child, addr) = start(kind);
        let pid = child.id().to_string();
        let (s0, g0) = (cpu_secs(&pid), cpu_secs("self"));
        let (n, mut lat, dt) = relay(addr, &o);
        let (s1, g1) = (cpu_secs(&pid), cpu_secs("self"));
        lat.sort_unstable();
        let rate = n as f64 / dt.as_secs_f64();
        println!(
            "{kind:>5}: relay {:>9.0} msg/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({n} messages in {:.1} s; CPU: server {:.1} s = {:.1} us/msg, generator {:.1} s)",
            rate,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            dt.as_secs_f64(),
            s1 - s0,
            (s1 - s0) * 1e6 / n.max(1) as f64,
            g1 - g0,
        );
        let _ = child.kill();
        let _ = child.wait();
        rates.push((kind, rate));
        if o.idle > 0 {
            let (mut child, addr) = start(kind);
            std::thread::sleep(Duration::from_millis(200));
            let before = rss_kib(child.id());
            let (held, n) = idle(addr, o.idle);
            std::thread::sleep(Duration::from_millis(500));
            let after = rss_kib(child.id());
            println!(
                "{kind:>5}: {n} of {} idle connections held; server RSS {} KiB -> {} KiB = {:.1} KiB per connection",
                o.idle,
                before,
                after,
                (after.saturating_sub(before)) as f64 / n.max(1) as f64
            );
            drop(held);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    let smol = rates.iter().find(|(k, _)| *k == "smol").map(|(_, r)| *r);
    let tokens = rates.iter().find(|(k, _)| *k == "tokens").map(|(_, r)| *r);
    if let (Some(s), Some(t)) = (smol, tokens) {
        println!(
            "tokens: relay with --token-secret is {:+.1}% of smol's without",
            (t / s - 1.0) * 100.0
        );
    }
    let node = rates.iter().find(|(k, _)| *k == "node").map(|(_, r)| *r);
    for (k, r) in &rates {
        if let (Some(nr), true) = (node, *k != "node") {
            println!(
                "ratio: {k} relays {:.1}x the messages per second of rtc-switchboard 3.2.0",
                r / nr
            );
        }
    }
}
