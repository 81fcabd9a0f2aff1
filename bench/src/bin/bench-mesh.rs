//! Mesh benchmarks on loopback (real WebRTC over UDP):
//!
//! - join until synced: N `rtc-mesh join` processes; the time from spawning the last
//!   one until every process has printed `synced_all` naming all the others;
//! - bulk initial sync: one member holds 50k values of 1 KiB (50 MB), a second joins;
//!   MB/s of store data until it holds them all;
//! - small updates: 100-byte values written through the batched API (`set_many`, 1,000
//!   at a time) on one member, until the other has them all; updates per second end
//!   to end.
//!
//! ```text
//! cargo run --release -p rtc-mesh-bench --bin bench-mesh -- [--sizes 2,8,16] [--bulk N] [--small N]
//! ```
//! Needs the release `rtc-mesh` binary next to this one.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rtc_mesh_core::mesh::MeshEvent;
use rtc_mesh_core::node::NodeEvent;
use rtc_mesh_core::Value;
use rtc_mesh_smol::mesh::{join, JoinOptions};
use rtc_mesh_smol::switchboard::Server;

fn exe(name: &str) -> std::path::PathBuf {
    std::env::current_exe()
        .expect("own path")
        .with_file_name(name)
}

struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

fn spawn(args: &[&str]) -> Proc {
    let mut child = Command::new(exe("rtc-mesh"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start rtc-mesh (build it with --release first)");
    let out = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    Proc { child, lines }
}

impl Proc {
    fn wait_for(&self, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        loop {
            let l = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("an event within 60 s");
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&l) {
                if pred(&v) {
                    return v;
                }
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut i) = self.child.stdin.take() {
            let _ = writeln!(i, "{{\"op\":\"close\"}}");
        }
        // `join` exits on close; `serve` runs until killed.
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn synced_all(n: usize) -> impl Fn(&serde_json::Value) -> bool {
    move |v| v["event"] == "synced_all" && v["peers"].as_array().is_some_and(|a| a.len() == n)
}

fn join_time(n: usize) -> Duration {
    let server = spawn(&["serve", "--listen", "127.0.0.1:0", "--json"]);
    let addr = server.wait_for(|v| v["event"] == "ready")["addr"]
        .as_str()
        .expect("addr")
        .to_owned();
    let url = format!("ws://{addr}/");
    let mut procs = Vec::new();
    for i in 0..n - 1 {
        let id = format!("b{i:02}");
        procs.push(spawn(&[
            "join",
            "bench",
            "--signal",
            &url,
            "--id",
            &id,
            "--json",
            "--bind",
            "127.0.0.1:0",
        ]));
    }
    if n > 2 {
        for p in &procs {
            p.wait_for(synced_all(n - 2));
        }
    } else {
        for p in &procs {
            p.wait_for(|v| v["event"] == "ready");
        }
    }
    let t = Instant::now();
    let last = format!("b{:02}", n - 1);
    procs.push(spawn(&[
        "join",
        "bench",
        "--signal",
        &url,
        "--id",
        &last,
        "--json",
        "--bind",
        "127.0.0.1:0",
    ]));
    for p in &procs {
        p.wait_for(synced_all(n - 1));
    }
    let took = t.elapsed();
    drop(procs);
    drop(server);
    took
}

/// A switchboard on a free loopback port, and its WebSocket URL.
async fn switchboard() -> (Server, String) {
    let server = Server::bind("127.0.0.1:0".parse().unwrap(), Default::default())
        .await
        .expect("bind a switchboard on loopback");
    let url = format!("ws://{}/", server.local_addr());
    (server, url)
}

/// Options for member `id` joining `room` through `url`.
fn member(room: &str, url: &str, id: &str) -> JoinOptions {
    let mut o = JoinOptions::new(room, url.to_owned());
    o.id = Some(id.into());
    o.bind = vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))];
    o
}

fn bulk(values: usize, size: usize) -> (Duration, f64) {
    smol::block_on(async {
        let (server, url) = switchboard().await;
        let (a, _ae) = join(member("bulk", &url, "a")).await.unwrap();
        let v = Value::from("x".repeat(size - 2));
        for i in 0..values {
            a.set(&format!("key{i:08}"), v.clone()).await.unwrap();
        }
        let t = Instant::now();
        let (b, be) = join(member("bulk", &url, "b")).await.unwrap();
        let mut got = 0;
        while got < values {
            if let Ok(NodeEvent::Mesh(MeshEvent::Update(_))) = be.recv().await {
                got += 1;
            }
        }
        let took = t.elapsed();
        b.close().await;
        a.close().await;
        server.shutdown().await;
        (took, (values * size) as f64 / 1e6 / took.as_secs_f64())
    })
}

fn small(updates: usize) -> (Duration, f64) {
    smol::block_on(async {
        let (server, url) = switchboard().await;
        let (a, ae) = join(member("small", &url, "a")).await.unwrap();
        let (b, be) = join(member("small", &url, "b")).await.unwrap();
        loop {
            if let Ok(NodeEvent::Mesh(MeshEvent::SyncedAll { .. })) = ae.recv().await {
                break;
            }
        }
        let v = Value::from("y".repeat(98));
        let t = Instant::now();
        let writer = async {
            // In batches of 1,000: the API's batched write.
            for chunk in (0..updates).collect::<Vec<_>>().chunks(1000) {
                let batch = chunk
                    .iter()
                    .map(|i| (format!("s{i:08}"), v.clone()))
                    .collect();
                a.set_many(batch).await.unwrap();
            }
        };
        let reader = async {
            let mut got = 0;
            while got < updates {
                if let Ok(NodeEvent::Mesh(MeshEvent::Update(u))) = be.recv().await {
                    if !u.local {
                        got += 1;
                    }
                }
            }
        };
        smol::future::zip(writer, reader).await;
        let took = t.elapsed();
        b.close().await;
        a.close().await;
        server.shutdown().await;
        (took, updates as f64 / took.as_secs_f64())
    })
}

fn main() {
    let mut sizes = vec![2usize, 8, 16];
    let mut bulk_n = 50_000usize;
    let mut small_n = 200_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sizes" => {
                sizes = args
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|s| s.parse().ok())
                    .collect()
            }
            "--bulk" => bulk_n = args.next().and_then(|v| v.parse().ok()).unwrap_or(bulk_n),
            "--small" => small_n = args.next().and_then(|v| v.parse().ok()).unwrap_or(small_n),
            _ => {
                eprintln!("usage: bench-mesh [--sizes 2,8,16] [--bulk N] [--small N]");
                std::process::exit(2);
            }
        }
    }
    println!(
        "bench-mesh: rtc-mesh join processes and in-process members on 127.0.0.1 (WebRTC over UDP)"
    );
    for n in sizes {
        let t = join_time(n);
        println!(
            "join until synced, {n:>2} peers: {:>7.1} ms (from spawning the last process)",
            t.as_secs_f64() * 1e3
        );
    }
    if bulk_n > 0 {
        let (t, mbs) = bulk(bulk_n, 1024);
        println!(
            "bulk initial sync: {bulk_n} values of 1 KiB ({:.1} MB) in {:.2} s = {mbs:.1} MB/s",
            (bulk_n * 1024) as f64 / 1e6,
            t.as_secs_f64()
        );
    }
    if small_n > 0 {
        let (t, rate) = small(small_n);
        println!(
            "small updates: {small_n} values of 100 bytes in {:.2} s = {rate:.0} updates/s end to end",
            t.as_secs_f64()
        );
    }
}
