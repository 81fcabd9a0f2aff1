//! One member over any links (the original's `expandMesh`): a JavaScript scuttlebutt
//! 5.6.15 `Model` (`interop/scuttlebutt-peer.js`) joined over TCP to a room member
//! (`rtc-mesh join --listen`, or the member's `connect` command), which meshes with
//! another member over WebRTC. Writes cross both kinds of link in both directions, and
//! bad bytes on the TCP link are an `error` event that changes nothing.

mod common;

use std::io::Write;
use std::process::Command;

use common::{interop_dir, rtc_mesh, serve, Peer};
use serde_json::{json, Value};

fn joiner(url: &str, id: &str, listen: bool, runtime: &str) -> (Peer, Option<String>) {
    let mut c = rtc_mesh();
    c.args(["join", "room", "--signal", url, "--id", id, "--json"])
        .args(["--bind", "127.0.0.1:0"])
        .args(["--runtime", runtime]);
    if listen {
        c.args(["--listen", "127.0.0.1:0"]);
    }
    let mut p = Peer::spawn(id, c);
    let ready = p.wait_event("ready");
    let tcp = ready["tcp"].as_str().map(str::to_owned);
    (p, tcp)
}

fn js_peer(args: &[&str]) -> Peer {
    let mut cmd = Command::new("node");
    cmd.current_dir(interop_dir())
        .arg("scuttlebutt-peer.js")
        .args(args);
    Peer::spawn("js", cmd)
}

fn set(p: &mut Peer, key: &str, value: Value) {
    p.send(json!({"op":"set","key":key,"value":value}));
}

/// The member with the TCP link runs on `runtime`; the other one on the other runtime.
fn scuttlebutt_over_tcp_and_webrtc_members_converge_both_ways(runtime: &str) {
    let other = if runtime == "smol" { "std" } else { "smol" };
    let (_server, url) = serve();
    let (mut a, tcp) = joiner(&url, "member-a", true, runtime);
    let tcp = tcp.expect("ready reports the TCP address with --listen");
    let (mut b, none) = joiner(&url, "member-b", false, other);
    assert_eq!(none, None, "no tcp field without --listen");
    for p in [&mut a, &mut b] {
        p.wait_for("synced_all with the other member", |v| {
            v["event"] == "synced_all" && v["peers"].as_array().is_some_and(|x| x.len() == 1)
        });
    }
    set(&mut a, "before-js", json!({"from":"a"}));
    b.wait_update("before-js", &json!({"from":"a"}));

    // The JavaScript Model dials the member's TCP port.
    let mut js = js_peer(&["--connect", &tcp, "--id", "js-model-0001"]);
    js.wait_event("ready");
    js.wait_update("before-js", &json!({"from":"a"}));
    a.wait_for("synced with the Model", |v| {
        v["event"] == "synced" && v["peer"] == "js-model-0001"
    });

    // js -> a (TCP) -> b (WebRTC), and b -> a -> js.
    set(&mut js, "from-js", json!([1, "two", {"three": 3}]));
    a.wait_update("from-js", &json!([1, "two", {"three": 3}]));
    b.wait_update("from-js", &json!([1, "two", {"three": 3}]));
    set(&mut b, "from-b", json!("über WebRTC"));
    a.wait_update("from-b", &json!("über WebRTC"));
    js.wait_update("from-b", &json!("über WebRTC"));
    let (da, db, dj) = (a.dump(), b.dump(), js.dump());
    assert_eq!(da, db);
    assert_eq!(da, dj);

    js.close();
    a.close();
    b.close();
}

#[test]
fn a_member_connects_out_and_bad_bytes_on_its_tcp_link_change_nothing() {
    let (_server, url) = serve();
    let (mut a, tcp) = joiner(&url, "member-c", true, "smol");
    let tcp = tcp.unwrap();

    // `connect` in join: the member dials a listening Model.
    let mut js = js_peer(&["--listen", "127.0.0.1:0", "--id", "js-model-0002"]);
    let js_addr = js.ready_addr();
    set(&mut js, "js-first", json!(1));
    a.send(json!({"op":"connect","addr":js_addr}));
    a.wait_update("js-first", &json!(1));
    set(&mut a, "member-first", json!(2));
    js.wait_update("member-first", &json!(2));

    // A raw TCP client sends junk to the member's port.
    let before = a.dump();
    let mut raw = std::net::TcpStream::connect(&tcp).unwrap();
    raw.write_all(b"this is not scuttlebutt\n[1,2,3]\n{\"id\":5}\n")
        .unwrap();
    a.wait_for("an error event for the bad link", |v| {
        v["event"] == "error" && v["code"] == "link_error"
    });
    assert_eq!(a.dump(), before, "bad bytes change nothing");
    // The room goes on: the Model's writes still arrive.
    set(&mut js, "after-junk", json!("still here"));
    a.wait_update("after-junk", &json!("still here"));
    drop(raw);

    // An unreachable address is an error event, and the member goes on.
    a.send(json!({"op":"connect","addr":"127.0.0.1:1"}));
    a.wait_for("connect_failed", |v| {
        v["event"] == "error" && v["code"] == "connect_failed"
    });
    js.close();
    a.close();
}

#[test]
fn scuttlebutt_through_a_smol_member_reaches_a_std_member_and_back() {
    scuttlebutt_over_tcp_and_webrtc_members_converge_both_ways("smol");
}

#[test]
fn scuttlebutt_through_a_std_member_reaches_a_smol_member_and_back() {
    scuttlebutt_over_tcp_and_webrtc_members_converge_both_ways("std");
}

#[test]
fn a_bad_listen_address_is_a_usage_error_and_a_taken_port_exits_1() {
    let out = rtc_mesh()
        .args(["join", "room", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (_server, url) = serve();
    let out = rtc_mesh()
        .args(["join", "room", "--signal", &url, "--listen"])
        .arg(taken.local_addr().unwrap().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}

/// A stream the member cannot read on (a frame length far past the limit) is closed
/// from the member's side, on both runtimes: the remote sees the end of the stream.
#[test]
fn a_fatal_error_closes_the_tcp_link_from_the_members_side() {
    use std::io::Read;
    for runtime in ["smol", "std"] {
        let (_server, url) = serve();
        let mut c = rtc_mesh();
        c.args([
            "join",
            "room",
            "--signal",
            &url,
            "--json",
            "--codec",
            "postcard",
            "--bind",
            "127.0.0.1:0",
        ])
        .args(["--runtime", runtime, "--listen", "127.0.0.1:0"]);
        let mut a = Peer::spawn(runtime, c);
        let tcp = a.wait_event("ready")["tcp"].as_str().unwrap().to_owned();
        let mut raw = std::net::TcpStream::connect(&tcp).unwrap();
        raw.set_read_timeout(Some(common::PATIENCE)).unwrap();
        raw.write_all(b"RMP1\xff\xff\xff\xff\x0f").unwrap();
        a.wait_for("the fatal link error", |v| {
            v["event"] == "error" && v["code"] == "link_error"
        });
        // Whatever the member sent first (its magic and digest), then the end.
        let mut got = Vec::new();
        raw.read_to_end(&mut got)
            .expect("the member ends the stream (not a read timeout)");
        assert!(got.starts_with(b"RMP1"), "{runtime}: {got:?}");
        a.close();
    }
}
