//! `rtc-mesh join` processes (both runtimes) meshing over WebRTC on loopback through
//! `rtc-mesh serve`.

mod common;

use std::time::{Duration, Instant};

use common::{rtc_mesh, serve, Peer};
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
        "--bind",
        "127.0.0.1:0",
    ]);
    Peer::spawn(id, c)
}

#[test]
fn join_processes_converge_and_a_killed_one_is_reported_and_rejoins() {
    let (_server, url) = serve();
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

#[test]
fn two_peers_mesh_through_the_original_rtc_switchboard() {
    let (_server, url) = common::rtc_switchboard();
    let mut a = joiner(&url, "p1");
    let mut b = joiner(&url, "p4");
    for p in [&mut a, &mut b] {
        p.wait_event("synced_all");
    }
    a.send(json!({"op":"set","key":"x","value":1}));
    b.send(json!({"op":"set","key":"y","value":2}));
    for p in [&mut a, &mut b] {
        p.wait_update("x", &json!(1));
        p.wait_update("y", &json!(2));
    }
    assert!(a.close().success());
    assert!(b.close().success());
}

#[test]
fn a_switchboard_restart_keeps_the_data_links_and_peers_announce_again() {
    let mut server = rtc_mesh();
    server.args(["serve", "--listen", "127.0.0.1:0", "--json"]);
    let mut server = Peer::spawn("serve", server);
    let addr = server.ready_addr();
    let url = format!("ws://{addr}/");
    let mut a = joiner(&url, "p1");
    let mut b = joiner(&url, "p4");
    for p in [&mut a, &mut b] {
        p.wait_event("synced_all");
    }
    server.kill();
    // The data link does not need the switchboard.
    a.send(json!({"op":"set","key":"during","value":1}));
    b.wait_update("during", &json!(1));
    // The switchboard comes back on the same address; the peers announce again, so a
    // newcomer meets both.
    let mut server = rtc_mesh();
    server.args(["serve", "--listen", &addr, "--json"]);
    let mut server = Peer::spawn("serve again", server);
    server.wait_event("ready");
    let mut c = joiner(&url, "p2");
    c.wait_for("synced_all with 2 peers", |v| {
        v["event"] == "synced_all" && v["peers"].as_array().is_some_and(|a| a.len() == 2)
    });
    c.wait_update("during", &json!(1));
    for p in [&mut a, &mut b] {
        let left = p.seen.iter().any(|l| l.contains("peer_leave"));
        assert!(!left, "{}: a peer was reported left: {:?}", p.name, p.seen);
    }
    for p in [a, b, c] {
        assert!(p.close().success());
    }
}

#[test]
fn a_closing_peer_delivers_every_write_before_it_leaves() {
    // Before: the /leave went first and the links were dropped with their queues; a
    // peer closing right after 20,000 writes of 1 KB delivered about 3,000.
    let (server, url) = serve();
    for runtime in ["smol", "std"] {
        let mut a = rtc_mesh();
        a.args([
            "join",
            runtime,
            "--signal",
            &url,
            "--id",
            "pa",
            "--runtime",
            runtime,
            "--json",
            "--bind",
            "127.0.0.1:0",
        ]);
        let mut a = Peer::spawn("pa", a);
        let mut b = rtc_mesh();
        b.args(["join", runtime, "--signal", &url, "--id", "pb", "--json"])
            .args(["--bind", "127.0.0.1:0"]);
        let mut b = Peer::spawn("pb", b);
        a.wait_event("synced");
        b.wait_event("synced");
        let n = 5000;
        let big = "x".repeat(1000);
        for i in 0..n {
            a.send(json!({"op":"set","key":format!("k{i:05}"),"value":big}));
        }
        assert!(a.close().success());
        let left = b.wait_event("peer_leave");
        assert_eq!(left["reason"], "left", "{runtime}");
        let d = b.dump();
        assert_eq!(d.as_object().unwrap().len(), n, "{runtime}");
        assert!(b.close().success());
    }
    server.kill();
}
