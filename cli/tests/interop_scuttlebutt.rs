//! Interop with the real JavaScript scuttlebutt 5.6.15 `Model` (npm registry, pinned by
//! interop/package-lock.json) over TCP on 127.0.0.1: `rtc-mesh replicate` on one
//! end, `interop/scuttlebutt-peer.js` on the other, both directions.
//!
//! Scuttlebutt breaks timestamp ties by arrival order, so every key here is written by
//! one side only, except `shared`, which the second writer writes only after it has seen
//! the first write (so its hybrid-logical-clock timestamp is larger).

mod common;

use std::process::Command;

use common::{interop_dir, rtc_mesh, Peer};
use serde_json::{json, Value};

fn rust_peer(id: &str, codec_runtime: &str) -> Peer {
    let mut cmd = rtc_mesh();
    cmd.args(["replicate", "--listen", "127.0.0.1:0", "--json", "--id", id])
        .args(["--runtime", codec_runtime]);
    Peer::spawn(&format!("rust {id}"), cmd)
}

fn js_peer(id: &str) -> Peer {
    let dir = interop_dir();
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .arg("scuttlebutt-peer.js")
        .args(["--listen", "127.0.0.1:0", "--id", id]);
    Peer::spawn(&format!("js {id}"), cmd)
}

fn set(p: &mut Peer, key: &str, value: Value) {
    p.send(json!({"op":"set","key":key,"value":value}));
}

fn delete(p: &mut Peer, key: &str) {
    p.send(json!({"op":"delete","key":key}));
}

/// Both sides write before and after the link opens; `rust_dials` says which side
/// opens the link (the other one accepts it).
fn replicate_with_scuttlebutt(rust_dials: bool, runtime: &str) {
    let mut rust = rust_peer("rust-side-0001", runtime);
    let mut js = js_peer("js-side-0001");
    let rust_addr = rust.ready_addr();
    let js_addr = js.ready_addr();

    // Before the link: nested values, unicode keys, a delete, awkward numbers.
    set(
        &mut rust,
        "r-nested",
        json!({"a":[1,"x",{"deep":[true,null]}],"z":{"1":1,"0":0}}),
    );
    set(
        &mut rust,
        "ключ-🔑",
        json!("ünïcødé ✓ \"quoted\" \\ back\nslash"),
    );
    set(&mut rust, "r-doomed", json!("soon gone"));
    delete(&mut rust, "r-doomed");
    set(
        &mut rust,
        "r-numbers",
        json!([0, -1.5, 1e21, 1.5e-7, 9007199254740993u64, 0.1]),
    );
    set(&mut js, "j-nested", json!([{"b":2,"a":1}, [], {}, ""]));
    set(&mut js, "j-ключ-ü", json!("日本語"));
    set(&mut js, "j-doomed", json!(1));
    delete(&mut js, "j-doomed");
    rust.wait_update(
        "r-numbers",
        &json!([0, -1.5, 1e21, 1.5e-7, 9007199254740992u64, 0.1]),
    );
    js.wait_update("j-ключ-ü", &json!("日本語"));

    if rust_dials {
        rust.send(json!({"op":"connect","addr":js_addr}));
    } else {
        js.send(json!({"op":"connect","addr":rust_addr}));
    }
    rust.wait_event("synced");
    js.wait_event("synced");

    // After the link: live updates both ways, each side deleting one of its own
    // earlier keys, and a key written by both in turn.
    set(&mut js, "shared", json!("js first"));
    rust.wait_update("shared", &json!("js first"));
    set(&mut rust, "shared", json!({"rust":"second"}));
    set(&mut rust, "r-after", json!(["after", 2]));
    delete(&mut rust, "r-nested");
    set(&mut rust, "r-done", json!(true));
    set(&mut js, "j-after", json!({"x":null}));
    delete(&mut js, "j-nested");
    set(&mut js, "j-done", json!(true));
    js.wait_update("r-done", &json!(true));
    rust.wait_update("j-done", &json!(true));

    let dr = rust.dump();
    let dj = js.dump();
    let expected = json!({
        "ключ-🔑": "ünïcødé ✓ \"quoted\" \\ back\nslash",
        "r-numbers": [0, -1.5, 1e21, 1.5e-7, 9007199254740992u64, 0.1],
        "j-ключ-ü": "日本語",
        "shared": {"rust":"second"},
        "r-after": ["after", 2],
        "r-done": true,
        "j-after": {"x":null},
        "j-done": true,
    });
    assert_eq!(dr, dj, "rust and scuttlebutt disagree");
    assert_eq!(dr, expected);
    assert!(rust.close().success());
    assert!(js.close().success());
}

#[test]
fn scuttlebutt_dials_rust() {
    replicate_with_scuttlebutt(false, "smol");
}

#[test]
fn rust_dials_scuttlebutt() {
    replicate_with_scuttlebutt(true, "smol");
}

#[test]
fn rust_std_runtime_dials_scuttlebutt() {
    replicate_with_scuttlebutt(true, "std");
}

/// A secured room's replicator (`replicate --secret --room`).
fn secured_peer(name: &str, secret: &str, runtime: &str) -> Peer {
    let mut cmd = rtc_mesh();
    cmd.args(["replicate", "--listen", "127.0.0.1:0", "--json"])
        .args(["--secret", secret, "--room", "ledger", "--runtime", runtime]);
    Peer::spawn(name, cmd)
}

fn store_stats(p: &mut Peer) -> Value {
    p.send(json!({"op":"stats"}));
    p.wait_event("stats")["store"].clone()
}

/// Two secured replicators linked only through a stock scuttlebutt 5.6 Model: it keeps
/// each signed update whole (the signature is its fourth element) and relays it; the far
/// side checks every one. The Model's own writes come from no member's key: refused by
/// both, counted, and the relaying goes on.
#[test]
fn signed_updates_cross_a_stock_scuttlebutt_relay_intact_and_its_own_writes_are_refused() {
    let secret = "rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let mut a = secured_peer("secured a", secret, "smol");
    let mut c = secured_peer("secured c", secret, "std");
    let mut js = js_peer("js-relay-0001");
    let js_addr = js.ready_addr();
    let a_id = a.wait_event("ready")["id"].as_str().unwrap().to_owned();
    c.wait_event("ready");
    assert_eq!(
        a_id.len(),
        43 + 1 + 16,
        "{a_id}: the identity's key and an incarnation"
    );
    set(&mut a, "before", json!({"n": 1}));
    a.send(json!({"op":"connect","addr":js_addr}));
    c.send(json!({"op":"connect","addr":js_addr}));
    a.wait_event("synced");
    c.wait_event("synced");
    set(&mut a, "live", json!([1, "two"]));
    set(&mut js, "js-own", json!("unsigned"));
    c.wait_update("live", &json!([1, "two"]));
    set(&mut c, "back", json!(true));
    a.wait_update("back", &json!(true));
    js.wait_update("back", &json!(true));
    // What the relay holds is signed: the Model's store keeps the whole update.
    let want = json!({"before": {"n": 1}, "live": [1, "two"], "back": true});
    assert_eq!(a.dump(), want);
    assert_eq!(c.dump(), want);
    let mut all = want.clone();
    all["js-own"] = json!("unsigned");
    assert_eq!(js.dump(), all);
    for p in [&mut a, &mut c] {
        let st = store_stats(p);
        // Its id is no member's key: refused as such, before its missing signature.
        assert_eq!(st["bad_sources"], 1, "{}: {st}", p.name);
        assert_eq!(st["bad_signatures"], 0, "{}: {st}", p.name);
        assert!(st["applied"].as_u64().unwrap() >= 1, "{}: {st}", p.name);
    }
    for p in [a, c, js] {
        assert!(p.close().success());
    }
}

/// A scuttlebutt Model signed by the Ed25519 plugin (web/examples/scuttlebutt-ed25519.mjs).
fn signed_js_peer(name: &str, secret: &str) -> Peer {
    let mut cmd = Command::new("node");
    cmd.current_dir(interop_dir())
        .arg("scuttlebutt-peer.js")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--secret",
            secret,
            "--room",
            "ledger",
        ]);
    Peer::spawn(name, cmd)
}

/// `rtc-mesh replicate --secret` and scuttlebutt Models signed by the plugin replicate a
/// signed store both ways; an update forged in the replicator's name (signed by a Model's
/// own key) is refused by the replicator and by a plugin Model alike.
#[test]
fn the_ed25519_plugin_lets_scuttlebutt_replicate_a_signed_store_both_ways() {
    let secret = "rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let mut r = secured_peer("secured r", secret, "smol");
    let mut j1 = signed_js_peer("signed js 1", secret);
    let mut j2 = signed_js_peer("signed js 2", secret);
    let r_id = r.wait_event("ready")["id"].as_str().unwrap().to_owned();
    let j1_addr = j1.ready_addr();
    j2.wait_event("ready");
    r.send(json!({"op":"connect","addr":j1_addr}));
    r.wait_event("synced");
    j1.wait_event("synced");
    set(&mut r, "r", json!(1));
    set(&mut j1, "j", json!({"two": 2}));
    r.wait_update("j", &json!({"two": 2}));
    j1.wait_update("r", &json!(1));
    // j1 forges in r's name: r refuses it (what follows on the link shows it was read).
    j1.send(json!({"op":"forge","key":"r","value":666,"source":r_id}));
    set(&mut j1, "fence", json!(1));
    r.wait_update("fence", &json!(1));
    let st = store_stats(&mut r);
    assert_eq!(st["bad_signatures"], 1, "{st}");
    // j2 forges toward j1: the plugin refuses it.
    j2.send(json!({"op":"connect","addr":j1_addr}));
    j2.wait_update("r", &json!(1));
    j2.send(json!({"op":"forge","key":"r","value":777,"source":r_id}));
    set(&mut j2, "fence2", json!(2));
    j1.wait_update("fence2", &json!(2));
    j1.send(json!({"op":"stats"}));
    assert_eq!(j1.wait_event("stats")["unverified"], 1);
    r.wait_update("fence2", &json!(2));
    let want = json!({"r": 1, "j": {"two": 2}, "fence": 1, "fence2": 2});
    assert_eq!(r.dump(), want);
    assert_eq!(j1.dump(), want);
    for p in [r, j1, j2] {
        assert!(p.close().success());
    }
}
