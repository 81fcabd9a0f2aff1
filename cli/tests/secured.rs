//! Secured rooms at the process level: `rtc-mesh join --secret` members (both
//! runtimes) through `rtc-mesh serve`, with a spy, an impostor and a wrong secret
//! beside them; the switchboard's token gate and per-address limit.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{rtc_mesh, Peer};
use rtc_mesh_core::security::token::{Claims, TokenKey};
use rtc_mesh_core::security::{RoomKey, RoomSecret};
use rtc_mesh_core::signal::Signal;
use rtc_mesh_core::Value as V;
use rtc_mesh_smol::signal::Signaller;
use serde_json::{json, Value};

const TOKEN_SECRET: &str = "a switchboard secret of 32 bytes or more";

fn serve(extra: &[&str]) -> (Peer, String, SocketAddr) {
    let mut c = rtc_mesh();
    c.args(["serve", "--listen", "127.0.0.1:0", "--json"]);
    c.args(extra);
    let mut p = Peer::spawn("serve", c);
    let addr: SocketAddr = p.ready_addr().parse().unwrap();
    (p, format!("ws://{addr}/"), addr)
}

/// The tag the switchboard sees for `room` under `secret`.
fn tag_of(room: &str, secret: &str) -> String {
    RoomKey::derive(room, &RoomSecret::parse(secret).unwrap())
        .tag()
        .to_owned()
}

/// A fresh secret, as `rtc-mesh invite` prints it.
fn invite(room: &str, url: &str) -> String {
    let out = rtc_mesh()
        .args(["invite", room, "--signal", url, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = v["secret"].as_str().unwrap().to_owned();
    let link = v["link"].as_str().unwrap();
    assert!(secret.starts_with("rm1_") && secret.len() == 47, "{secret}");
    assert!(
        link.ends_with(&format!("/?room={room}#secret={secret}")),
        "{link}"
    );
    secret
}

fn joiner(name: &str, url: &str, room: &str, runtime: &str, extra: &[&str]) -> Peer {
    let mut c = rtc_mesh();
    c.args(["join", room, "--signal", url, "--runtime", runtime]);
    c.args(["--json", "--bind", "127.0.0.1:0"]);
    c.args(extra);
    Peer::spawn(name, c)
}

fn synced_with(p: &mut Peer, n: usize) {
    p.wait_for(&format!("synced_all with {n}"), |v| {
        v["event"] == "synced_all" && v["peers"].as_array().is_some_and(|a| a.len() == n)
    });
}

/// The next message on `s` (skipping connection events), or a panic after 10 s.
fn next_message(s: &Signaller) -> Signal {
    smol::block_on(common::next_message(s))
}

fn attrs(id: &str, room: &str) -> rtc_mesh_core::Object {
    let mut o = rtc_mesh_core::Object::new();
    o.insert("id", id.into());
    o.insert("room", room.into());
    o
}

/// The mesh counters of `p` (its `stats` answer) once `ready` holds of them: what it
/// was sent reaches it by another path than our questions, so ask until then (each
/// question is answered; at most 100).
fn stats_when(p: &mut Peer, ready: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        p.send(json!({"op":"stats"}));
        last = p.wait_event("stats")["mesh"].clone();
        if ready(&last) {
            return last;
        }
    }
    panic!("{}: stats never as expected: {last}", p.name)
}

fn health(addr: SocketAddr) -> Value {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    serde_json::from_str(body.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

/// A WebSocket upgrade request for `path` on `stream`; the status line answered.
fn upgrade_on(mut stream: TcpStream, path: &str) -> (String, TcpStream) {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        if stream.read(&mut b).unwrap() == 0 {
            break;
        }
        head.push(b[0]);
    }
    (String::from_utf8_lossy(&head).trim().to_owned(), stream)
}

fn upgrade(addr: SocketAddr, path: &str) -> String {
    upgrade_on(TcpStream::connect(addr).unwrap(), path).0
}

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    use rustix::net::{bind, connect, socket, AddressFamily, SocketType};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &SocketAddr::from((from, 0))).unwrap();
    connect(&fd, &to).unwrap();
    TcpStream::from(fd)
}

#[test]
fn a_secured_room_meshes_and_the_switchboard_sees_neither_room_nor_attributes() {
    let (_server, url, addr) = serve(&[]);
    let secret = invite("lobby", &url);
    let tag = tag_of("lobby", &secret);
    // A spy in the tag's room (the switchboard relays it everything the room hears).
    let spy = Signaller::connect(&url, Default::default()).unwrap();
    spy.announce(&Signal::announce("spy", attrs("spy", &tag)));
    assert_eq!(next_message(&spy), Signal::roominfo(1));
    // A wrong secret: another tag, nobody to meet.
    let wrong = invite("lobby", &url);
    let mut c = joiner("wrong", &url, "lobby", "smol", &["--secret", &wrong]);
    c.wait_event("ready");
    let mut a = joiner("a", &url, "lobby", "smol", &["--secret", &secret]);
    let mut b = joiner("b", &url, "lobby", "std", &["--secret", &secret]);
    let a_id = a.wait_event("ready")["id"].as_str().unwrap().to_owned();
    let b_id = b.wait_event("ready")["id"].as_str().unwrap().to_owned();
    assert_eq!((a_id.len(), b_id.len()), (43, 43), "ids are keys");
    synced_with(&mut a, 1);
    synced_with(&mut b, 1);
    // What the spy heard: two announces, sealed; no room name, no attributes.
    let heard: Vec<Signal> = (0..2).map(|_| next_message(&spy)).collect();
    let a_announce = heard
        .iter()
        .find(|m| m.sender.as_deref() == Some(a_id.as_str()))
        .expect("a's announce")
        .clone();
    for m in &heard {
        let text = m.encode();
        assert_eq!(m.command, "announce");
        for plain in ["lobby", "incarnation", "codecs", "rtc-mesh/", "fingerprint"] {
            assert!(!text.contains(plain), "{plain} in {text}");
        }
        let o = m.object().unwrap();
        assert_eq!(o.get("room"), Some(&V::from(tag.as_str())));
        assert!(matches!(o.get("sealed"), Some(V::String(s)) if s.len() > 40));
    }
    // The spy's own (open) announce and an unsealed offer on the tag are ignored.
    spy.announce(&Signal::announce("spy", attrs("spy", &tag)));
    let mut offer = rtc_mesh_core::Object::new();
    offer.insert("type", "offer".into());
    offer.insert("sdp", "v=0\r\n".into());
    spy.send(&Signal::new("mesh:sdp", "spy", vec![offer.into()]).to(&a_id));
    // An impostor announcing a's id: without a proof, and replaying a's own.
    let thief = Signaller::connect(&url, Default::default()).unwrap();
    thief.announce(&Signal::announce(&a_id, attrs(&a_id, &tag)));
    let refused = Signal::parse(
        r#"/mesh:refused|{"reason":"unproven"}"#,
        &Default::default(),
    )
    .unwrap();
    assert_eq!(next_message(&thief), refused);
    thief.announce(&a_announce);
    assert_eq!(next_message(&thief), refused);
    // The room goes on: writes both ways, nobody left, no stranger joined.
    a.send(json!({"op":"set","key":"from-a","value":1}));
    b.send(json!({"op":"set","key":"from-b","value":2}));
    a.wait_update("from-b", &json!(2));
    b.wait_update("from-a", &json!(1));
    a.send(json!({"op":"peers"}));
    let peers = a.wait_event("peers")["peers"].clone();
    assert_eq!(peers.as_array().unwrap().len(), 1, "{peers}");
    assert_eq!(peers[0]["peer"], b_id.as_str());
    for p in [&a, &b] {
        assert_eq!(p.count_events("peer_leave"), 0, "{}", p.seen.join("\n"));
        assert_eq!(p.count_events("peer_join"), 1, "{}", p.seen.join("\n"));
    }
    assert_eq!(c.dump(), json!({}));
    assert_eq!(c.count_events("peer_join"), 0);
    let h = health(addr);
    assert_eq!(h["refused_unproven"], 2, "{h}");
    // The spy's open announce reached both and was counted as unsecured; its offer,
    // from no member, waits (a few are kept, unopened) for an announce that never comes.
    // Nothing else was refused.
    for (p, early) in [(&mut a, 1), (&mut b, 0)] {
        let mesh = stats_when(p, |m| m["unsecured_signals"] == 1 && m["early"] == early);
        for k in ["unseal_failures", "bad_signatures", "stale_signals"] {
            assert_eq!(mesh[k], 0, "{k}: {mesh}");
        }
    }
    for p in [a, b, c] {
        assert!(p.close().success());
    }
}

#[test]
fn an_identity_file_keeps_a_member_s_peer_id_across_restarts() {
    use std::os::unix::fs::PermissionsExt;
    let (_server, url, _) = serve(&[]);
    let secret = invite("den", &url);
    let dir = std::env::temp_dir().join(format!("rtc-mesh-identity-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("me.key");
    let f = file.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut p = joiner("den", &url, "den", "smol", extra);
        let id = p.wait_event("ready")["id"].as_str().unwrap().to_owned();
        p.send(json!({"op":"stats"}));
        let st = p.wait_event("stats");
        assert!(p.close().success());
        (id, st)
    };
    // Made when missing, owner-only, and read back the next time.
    let (first, st) = run(&["--secret", &secret, "--identity", f]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        rtc_mesh_core::security::Identity::parse(text.trim())
            .unwrap()
            .peer_id(),
        first
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (again, _) = run(&["--secret", &secret, "--identity", f]);
    assert_eq!(again, first);
    // Every counter is reported by name.
    assert_eq!(st["mesh"].as_object().unwrap().len(), 14, "{st}");
    assert_eq!(st["mesh"]["bad_signatures"], 0, "{st}");
    assert_eq!(st["node"].as_object().unwrap().len(), 7, "{st}");
    assert_eq!(st["store"].as_object().unwrap().len(), 14, "{st}");
    // A damaged file, and an identity without a secured room: usage errors.
    std::fs::write(&file, "rm1id_not-a-key\n").unwrap();
    for (args, says) in [
        (vec!["--secret", &secret, "--identity", f], "bad_identity"),
        (vec!["--identity", f], "--identity is for secured rooms"),
    ] {
        let out = rtc_mesh()
            .args(["join", "den", "--signal", &url])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An admin removes a member: the admin and the others report the room's new key
/// epoch (`rekeyed`), the removed member does not; a member's identity file keeps the
/// epoch, and the member restarted with it is in the epoch already (it takes no line).
#[test]
fn a_removal_moves_the_room_to_a_new_key_that_identity_files_keep() {
    let (_server, url, _) = serve(&[]);
    let dir = std::env::temp_dir().join(format!("rtc-mesh-rekey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (fa, fb) = (dir.join("admin.key"), dir.join("b.key"));
    let (fa, fb) = (fa.to_str().unwrap(), fb.to_str().unwrap());
    let out = rtc_mesh()
        .args([
            "invite",
            "den",
            "--signal",
            &url,
            "--json",
            "--admin-identity",
            fa,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let secret = v["secret"].as_str().unwrap().to_owned();
    let with_identity = |name: &str, runtime: &str, f: &str| {
        joiner(
            name,
            &url,
            "den",
            runtime,
            &["--secret", &secret, "--identity", f],
        )
    };
    let mut a = with_identity("admin", "smol", fa);
    let mut b = with_identity("b", "std", fb);
    let mut c = joiner("c", &url, "den", "smol", &["--secret", &secret]);
    let cid = c.wait_event("ready")["id"].as_str().unwrap().to_owned();
    for p in [&mut a, &mut b, &mut c] {
        synced_with(p, 2);
    }
    let key = format!("room/revoked/{cid}");
    a.send(json!({"op":"set","key":key,"value":{"after":0}}));
    for p in [&mut a, &mut b] {
        let r = p.wait_event("rekeyed");
        assert_eq!(r["epoch"], 1, "{r}");
    }
    c.wait_for("its removal", |v| {
        v["event"] == "update" && v["key"] == key.as_str()
    });
    b.send(json!({"op":"set","key":"after","value":1}));
    a.wait_update("after", &json!(1));
    b.send(json!({"op":"stats"}));
    let st = b.wait_event("stats");
    assert_eq!(
        (
            st["mesh"]["rekeys"].as_u64(),
            st["mesh"]["rekeys_refused"].as_u64()
        ),
        (Some(1), Some(0)),
        "{st}"
    );
    assert_eq!(c.count_events("rekeyed"), 0);
    // The identity file keeps the line, for this room.
    let text = std::fs::read_to_string(fb).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("rekey\tden\tREKEY {\"epoch\":1,"),
        "{text}"
    );
    // Restarted with it: in epoch 1 at once (no line taken), with the admin.
    assert!(b.close().success());
    let mut b = with_identity("b", "std", fb);
    b.wait_update("after", &json!(1));
    b.send(json!({"op":"stats"}));
    let st = b.wait_event("stats");
    assert_eq!(st["mesh"]["rekeys"], 0, "{st}");
    assert_eq!(b.count_events("rekeyed"), 0);
    // A damaged kept line is a usage error.
    std::fs::write(
        fb,
        format!("{}\nrekey\tden\tREKEY {{}}\n", text.lines().next().unwrap()),
    )
    .unwrap();
    assert!(b.close().success());
    let out = rtc_mesh()
        .args([
            "join",
            "den",
            "--signal",
            &url,
            "--secret",
            &secret,
            "--identity",
            fb,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad_identity"));
    for p in [a, c] {
        assert!(p.close().success());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tokens_admit_their_room_only_and_are_checked_before_the_upgrade() {
    let (_server, url, addr) = serve(&["--token-secret", TOKEN_SECRET]);
    let secret = invite("team", &url);
    let token = |room: &str, secret: Option<&str>| {
        let mut c = rtc_mesh();
        c.args(["token", room, "--token-secret", TOKEN_SECRET]);
        if let Some(s) = secret {
            c.args(["--secret", s]);
        }
        let out = c.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let t = token("team", Some(&secret));
    let mut a = joiner(
        "a",
        &url,
        "team",
        "smol",
        &["--secret", &secret, "--token", &t],
    );
    let mut b = joiner(
        "b",
        &url,
        "team",
        "std",
        &["--secret", &secret, "--token", &t],
    );
    synced_with(&mut a, 1);
    synced_with(&mut b, 1);
    // No token; a token for another room (the open room "team" is another tag).
    let mut none = joiner("none", &url, "team", "smol", &["--secret", &secret]);
    let e = none.wait_event("error");
    assert_eq!(e["code"], "refused_http_401", "{e}");
    let other = token("team", None);
    let mut elsewhere = joiner(
        "other",
        &url,
        "team",
        "std",
        &["--secret", &secret, "--token", &other],
    );
    let e = elsewhere.wait_event("error");
    assert_eq!(e["code"], "refused_token_room", "{e}");
    // Expired, alg none, tampered, another secret: 401 before the upgrade.
    let key = TokenKey::new(TOKEN_SECRET.as_bytes()).unwrap();
    let tag = tag_of("team", &secret);
    let expired = key.issue(&Claims {
        room: tag.clone(),
        exp: 1,
    });
    let (h, rest) = t.split_once('.').unwrap();
    let none_alg = format!("eyJhbGciOiJub25lIn0.{}", rest.rsplit_once('.').unwrap().0) + ".";
    let tampered = format!(
        "{h}.{}",
        rest.replacen(|c: char| c.is_ascii_lowercase(), "Q", 1)
    );
    let foreign = TokenKey::new(&[1; 32]).unwrap().issue(&Claims {
        room: tag,
        exp: u64::MAX / 2,
    });
    for bad in [expired, none_alg, tampered, foreign, String::new()] {
        let status = upgrade(addr, &format!("/?token={bad}"));
        assert_eq!(status, "HTTP/1.1 401 Unauthorized", "{bad}");
    }
    assert_eq!(upgrade(addr, "/"), "HTTP/1.1 401 Unauthorized");
    assert_eq!(
        upgrade(addr, &format!("/?token={t}")),
        "HTTP/1.1 101 Switching Protocols"
    );
    // The admitted room works.
    a.send(json!({"op":"set","key":"k","value":"v"}));
    b.wait_update("k", &json!("v"));
    let h = health(addr);
    assert!(h["refused_token"].as_u64().unwrap() >= 7, "{h}");
    assert!(h["refused_token_room"].as_u64().unwrap() >= 1, "{h}");
    for p in [a, b] {
        assert!(p.close().success());
    }
}

#[test]
fn two_hundred_connections_from_one_address_meet_the_limit_and_others_do_not() {
    let (_server, _url, addr) = serve(&["--max-per-ip", "20", "--limit-loopback"]);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        let (status, s) = upgrade_on(connect_from([127, 0, 0, 1], addr), "/");
        match status.as_str() {
            "HTTP/1.1 101 Switching Protocols" => held.push(s),
            "HTTP/1.1 429 Too Many Requests" => refused += 1,
            o => panic!("unexpected {o}"),
        }
    }
    assert_eq!((held.len(), refused), (20, 180));
    // Another address is not affected.
    let (status, _other) = upgrade_on(connect_from([127, 0, 0, 2], addr), "/");
    assert_eq!(status, "HTTP/1.1 101 Switching Protocols");
    // Closed connections give their places back.
    drop(held.drain(..10));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let h = loop {
        let h = health(addr);
        if h["connections"] == 11 {
            break h;
        }
        assert!(std::time::Instant::now() < deadline, "{h}");
    };
    assert_eq!(h["refused_per_ip"], 180, "{h}");
    let (status, _again) = upgrade_on(connect_from([127, 0, 0, 1], addr), "/");
    assert_eq!(status, "HTTP/1.1 101 Switching Protocols");
}

#[test]
fn through_rtc_switchboard_3_2_an_impostor_replay_and_forged_leave_are_ignored() {
    let (_server, url) = common::rtc_switchboard();
    let secret = invite("crew", &url);
    let tag = tag_of("crew", &secret);
    // The impostor sits in the tag's room first, so it hears the members' announces.
    let thief = Signaller::connect(&url, Default::default()).unwrap();
    thief.announce(&Signal::announce("thief", attrs("thief", &tag)));
    assert_eq!(next_message(&thief), Signal::roominfo(1));
    let mut a = joiner("a", &url, "crew", "smol", &["--secret", &secret]);
    let a_id = a.wait_event("ready")["id"].as_str().unwrap().to_owned();
    let a_announce = loop {
        let m = next_message(&thief);
        if m.command == "announce" && m.sender.as_deref() == Some(a_id.as_str()) {
            break m;
        }
    };
    let mut b = joiner("b", &url, "crew", "std", &["--secret", &secret]);
    let b_id = b.wait_event("ready")["id"].as_str().unwrap().to_owned();
    synced_with(&mut a, 1);
    synced_with(&mut b, 1);
    // rtc-switchboard relays everything verbatim: an unproven announce of a's id, a's
    // own announce replayed, a forged leave of a, an unsealed offer to b.
    let other = Signaller::connect(&url, Default::default()).unwrap();
    other.announce(&Signal::announce(&a_id, attrs(&a_id, &tag)));
    assert_eq!(next_message(&other).command, "roominfo");
    other.send(&a_announce);
    let leave = rtc_mesh_core::signal::Part::from(attrs(&a_id, &tag));
    other.send(&Signal::new("leave", &a_id, vec![leave]));
    let mut offer = rtc_mesh_core::Object::new();
    offer.insert("type", "offer".into());
    offer.insert("sdp", "v=0\r\n".into());
    other.send(&Signal::new("mesh:sdp", &a_id, vec![offer.into()]).to(&b_id));
    // Then a real member joins: rtc-switchboard relays in order on b's connection, so
    // when b sees it join, b has handled every forgery.
    let mut c = joiner("c", &url, "crew", "smol", &["--secret", &secret]);
    let c_id = c.wait_event("ready")["id"].as_str().unwrap().to_owned();
    b.wait_for("c joined", |v| {
        v["event"] == "peer_join" && v["peer"] == c_id.as_str()
    });
    // The link is kept and carries writes both ways; b never saw a leave or a stranger.
    a.send(json!({"op":"set","key":"after","value":"a"}));
    b.wait_update("after", &json!("a"));
    b.send(json!({"op":"set","key":"back","value":"b"}));
    a.wait_update("back", &json!("b"));
    b.send(json!({"op":"peers"}));
    let peers = b.wait_event("peers")["peers"].clone();
    let a_link = peers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["peer"] == a_id.as_str())
        .expect("a still b's peer");
    assert_eq!(a_link["state"], "synced", "{peers}");
    assert_eq!(peers.as_array().unwrap().len(), 2, "a and c only: {peers}");
    for p in [&a, &b] {
        assert_eq!(p.count_events("peer_leave"), 0, "{}", p.seen.join("\n"));
    }
    assert_eq!(b.count_events("peer_join"), 2, "{}", b.seen.join("\n"));
    for p in [a, b, c] {
        assert!(p.close().success());
    }
}
