//! End-to-end tests of `rtc-mesh replicate` processes on loopback, both runtimes.

mod common;

use common::{free_port, rtc_mesh, Peer};
use serde_json::json;

fn replicate(name: &str, args: &[&str]) -> Peer {
    let mut cmd = rtc_mesh();
    cmd.arg("replicate").args(args).arg("--json");
    Peer::spawn(name, cmd)
}

fn pair(runtime_a: &str, runtime_b: &str, codec: &str) {
    let mut a = replicate(
        "a",
        &[
            "--listen",
            "127.0.0.1:0",
            "--id",
            "alice",
            "--runtime",
            runtime_a,
            "--codec",
            codec,
        ],
    );
    let addr = a.ready_addr();
    a.send(json!({"op":"set","key":"before-a","value":{"nested":[1,"x",null]}}));
    let mut b = replicate(
        "b",
        &[
            "--connect",
            &addr,
            "--id",
            "bob",
            "--runtime",
            runtime_b,
            "--codec",
            codec,
        ],
    );
    b.ready_addr();
    b.send(json!({"op":"set","key":"from-b","value":"ünïcødé ✓"}));
    a.wait_event("synced");
    b.wait_event("synced");
    a.send(json!({"op":"set","key":"after-a","value":1.5e-7}));
    a.send(json!({"op":"delete","key":"before-a"}));
    a.send(json!({"op":"set","key":"a-done","value":true}));
    b.wait_update("a-done", &json!(true));
    a.wait_update("from-b", &json!("ünïcødé ✓"));
    let da = a.dump();
    let db = b.dump();
    assert_eq!(da, db);
    assert_eq!(
        da,
        json!({"from-b":"ünïcødé ✓","after-a":1.5e-7,"a-done":true}),
        "{runtime_a}/{runtime_b}/{codec}"
    );
    b.send(json!({"op":"get","key":"after-a"}));
    assert_eq!(b.wait_event("value")["value"], json!(1.5e-7));
    assert!(a.close().success());
    assert!(b.close().success());
}

#[test]
fn smol_and_std_replicate_with_json() {
    pair("smol", "std", "json");
}

#[test]
fn std_and_smol_replicate_with_postcard() {
    pair("std", "smol", "postcard");
}

#[test]
fn a_bad_line_gets_an_error_event_and_the_program_goes_on() {
    let mut a = replicate("a", &["--listen", "127.0.0.1:0"]);
    a.ready_addr();
    a.send_raw("this is not json");
    assert_eq!(a.wait_event("error")["code"], "bad_json");
    a.send_raw(r#"{"op":"teleport"}"#);
    assert_eq!(a.wait_event("error")["code"], "unknown_op");
    a.send_raw(r#"{"op":"set","value":1}"#);
    assert_eq!(a.wait_event("error")["code"], "bad_command");
    a.send(json!({"op":"set","key":"__proto__","value":1}));
    assert_eq!(a.wait_event("error")["code"], "bad_key");
    a.send(json!({"op":"set","key":"k","value":[1,2]}));
    a.send(json!({"op":"get","key":"k"}));
    assert_eq!(a.wait_event("value")["value"], json!([1, 2]));
    // End of input closes the program cleanly.
    let status = a.wait();
    assert!(status.success());
}

#[test]
fn a_burst_of_writes_with_a_refused_one_writes_all_the_others() {
    let mut a = replicate("a", &["--listen", "127.0.0.1:0"]);
    a.ready_addr();
    // One write of many lines: the program takes them as a batch.
    let long = "k".repeat(5000);
    let mut burst: Vec<String> = (0..500)
        .map(|i| json!({"op":"set","key":format!("k{i}"),"value":i}).to_string())
        .collect();
    burst.insert(250, json!({"op":"set","key":long,"value":1}).to_string());
    burst.push(json!({"op":"delete","key":"k0"}).to_string());
    a.send_raw(&burst.join("\n"));
    assert_eq!(a.wait_event("error")["code"], "key_too_long");
    let dump = a.dump();
    let keys = dump.as_object().unwrap();
    assert_eq!(keys.len(), 499, "all but the refused and the deleted");
    assert_eq!(keys["k499"], json!(499));
    assert!(!keys.contains_key("k0"));
    assert!(a.close().success());
}

#[test]
fn bad_arguments_exit_with_code_2() {
    for args in [
        vec!["replicate"],
        vec!["replicate", "--listen", "nowhere"],
        vec!["replicate", "--listen", "127.0.0.1:0", "--codec", "xml"],
        vec![
            "replicate",
            "--listen",
            "127.0.0.1:0",
            "--connect",
            "127.0.0.1:1",
        ],
        vec!["frobnicate"],
        vec!["demo", "--peers", "1"],
        vec!["demo", "--codec", "xml"],
        vec!["join", "room", "--runtime", "tokio"],
        vec!["serve", "--runtime", "tokio"],
    ] {
        let out = rtc_mesh().args(&args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?}: no message");
    }
}

#[test]
fn an_unreachable_signalling_server_is_a_clear_error() {
    let port = free_port();
    let out = rtc_mesh()
        .args([
            "join",
            "room",
            "--signal",
            &format!("ws://127.0.0.1:{port}/"),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the signalling server"), "{err}");
    // A UDP port in use is one too (the listener stands in for a server: it is reached).
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let out = rtc_mesh()
        .args([
            "join",
            "room",
            "--bind",
            &taken.local_addr().unwrap().to_string(),
        ])
        .args([
            "--signal",
            &format!("ws://{}/", server.local_addr().unwrap()),
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot bind UDP"), "{err}");
}

#[test]
fn an_unreachable_peer_is_a_clear_error() {
    let port = free_port();
    let out = rtc_mesh()
        .args(["replicate", "--connect", &format!("127.0.0.1:{port}")])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
}

#[test]
fn the_demo_meshes_over_webrtc_and_converges() {
    let out = rtc_mesh()
        .args(["demo", "--peers", "4", "--keys", "200"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("4 peers joined and linked (6 data channels)"),
        "{text}"
    );
    assert!(text.contains("every peer holds 800 keys"), "{text}");
    assert!(text.contains("stores equal: yes"), "{text}");
    // peer-0's three links, open, with a round trip measured.
    let links: Vec<&str> = text.lines().filter(|l| l.contains(" open ")).collect();
    assert_eq!(links.len(), 3, "{text}");
    assert!(links.iter().all(|l| l.contains(" ms ")), "{text}");
}

#[test]
fn close_flushes_every_write_to_the_peer() {
    for runtime in ["smol", "std"] {
        let mut a = replicate("a", &["--listen", "127.0.0.1:0", "--runtime", runtime]);
        let addr = a.ready_addr();
        let mut b = replicate("b", &["--connect", &addr, "--runtime", runtime]);
        b.ready_addr();
        a.wait_event("synced");
        // Many writes, then close at once: all of them must reach b before a exits.
        let n = 3000;
        for i in 0..n {
            a.send(json!({"op":"set","key":format!("k{i:05}"),"value":i}));
        }
        assert!(a.close().success());
        b.wait_update(&format!("k{:05}", n - 1), &json!(n - 1));
        let d = b.dump();
        assert_eq!(d.as_object().unwrap().len(), n, "{runtime}");
        assert!(b.close().success());
    }
}

#[test]
fn large_values_cross_in_fragments() {
    for codec in ["postcard", "json"] {
        let mut a = replicate("a", &["--listen", "127.0.0.1:0", "--codec", codec]);
        let addr = a.ready_addr();
        let mut b = replicate(
            "b",
            &["--connect", &addr, "--codec", codec, "--runtime", "std"],
        );
        b.ready_addr();
        let big = "x".repeat(300_000) + "é";
        a.send(json!({"op":"set","key":"big","value":{"text":big}}));
        b.wait_update("big", &json!({"text":big}));
        // Past the maximum value size (1 MiB) is a clear error, and nothing is sent.
        let huge = "y".repeat(1_100_000);
        a.send(json!({"op":"set","key":"huge","value":huge}));
        assert_eq!(a.wait_event("error")["code"], "value_too_large");
        a.send(json!({"op":"set","key":"after","value":1}));
        b.wait_update("after", &json!(1));
        assert!(b.dump().get("huge").is_none());
        assert!(a.close().success());
        assert!(b.close().success());
    }
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for runtime in ["smol", "std"] {
        let out = rtc_mesh()
            .args(["replicate", "--listen", &addr, "--runtime", runtime])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{runtime}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("already in use"), "{runtime}: {err}");
    }
}
