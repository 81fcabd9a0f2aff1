//! `rtc-mesh join` processes (both runtimes) meshing over WebRTC on loopback through
//! `rtc-mesh serve`.

mod common;

use std::time::{Duration, Instant};

use common::{rtc_mesh, Peer};
use serde_json::json;

/// Peers p1-p3 run on smol, p4 and p5 on std: the runtimes interoperate.
fn joiner(url: &str, id: &str) -> Peer {
    let runtime = if id == "p4" || id == "p5" {
        "std"
    } else {
        "smol"
    };
    let mut c = rtc_mesh();
    c.args([
        "join",
        "room",
        "--signal",
        url,
        "--id",
        id,
        "--runtime",
        runtime,
        "--json",
    ]);
    Peer::spawn(id, c)
}

#[test]
fn join_processes_converge_and_a_killed_one_is_reported_and_rejoins() {
    let mut server = rtc_mesh();
    server.args(["serve", "--listen", "127.0.0.1:0", "--json"]);
    let mut server = Peer::spawn("serve", server);
    let url = format!("ws://{}/", server.ready_addr());
    let ids = ["p1", "p2", "p3", "p4", "p5"];
    let mut peers: Vec<Peer> = ids.iter().map(|id| joiner(&url, id)).collect();
    for p in &mut peers {
        p.wait_for("synced_all with 4 peers", |v| {
            v["event"] == "synced_all" && v["peers"].as_array().is_some_and(|a| a.len() == 4)
        });
    }
    for (i, p) in peers.iter_mut().enumerate() {
        p.send(json!({"op":"set","key":format!("k{i}"),"value":{"n":i}}));
    }
    for p in &mut peers {
        for i in 0..5 {
            p.wait_update(&format!("k{i}"), &json!({"n": i}));
        }
    }
    // kill -9 p5: the others report it left (no goodbye: the link times out) within 6 s.
    let killed = peers.pop().unwrap();
    let t = Instant::now();
    killed.kill();
    for p in &mut peers {
        let v = p.wait_for("p5 left", |v| {
            v["event"] == "peer_leave" && v["peer"] == "p5"
        });
        assert_eq!(v["reason"], "timeout", "{v}");
    }
    let took = t.elapsed();
    assert!(took < Duration::from_secs(6), "reported after {took:?}");
    // Back with the same id and no state: it gets everything, and its new write is
    // not dropped as old.
    let mut p5 = joiner(&url, "p5");
    for i in 0..5 {
        p5.wait_update(&format!("k{i}"), &json!({"n": i}));
    }
    p5.send(json!({"op":"set","key":"k4","value":"again"}));
    for p in &mut peers {
        p.wait_update("k4", &json!("again"));
    }
    peers.push(p5);
    let d = peers[0].dump();
    for p in &mut peers[1..] {
        assert_eq!(p.dump(), d);
    }
    for p in peers {
        assert!(p.close().success());
    }
}
