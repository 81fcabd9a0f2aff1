//! TURN through a real server: Debian's coturn on loopback with a long-term user
//! (`--allow-loopback-peers`, so that it relays to loopback peers). Two `rtc-mesh join`
//! peers with `--relay-only` offer relayed candidates only, so their link runs
//! relay to relay through coturn; bad credentials and a dead server are named errors
//! within 10 s, and a member goes on meshing over its other paths.

mod common;

use std::time::{Duration, Instant};

use common::coturn::Coturn;
use common::{free_port, rtc_mesh, serve, Peer};
use serde_json::json;

fn joiner(url: &str, id: &str, extra: &[&str]) -> Peer {
    let mut c = rtc_mesh();
    c.args(["join", "turn", "--signal", url, "--id", id, "--json"])
        .args(["--bind", "127.0.0.1:0"])
        .args(extra);
    Peer::spawn(id, c)
}

#[test]
fn relay_only_peers_link_through_coturn() {
    let coturn = Coturn::turn("mesh", "secret");
    let (_server, url) = serve();
    let turn = coturn.addr.to_string();
    let args = [
        "--turn",
        &turn,
        "--turn-user",
        "mesh",
        "--turn-credential",
        "secret",
        "--relay-only",
    ];
    let mut a = joiner(&url, "ra", &args);
    let mut b = joiner(&url, "rb", &args);
    for p in [&mut a, &mut b] {
        let r = p.wait_event("relay");
        assert_eq!(r["server"], json!(turn));
        let relayed = r["relayed"].as_str().unwrap();
        assert!(relayed.starts_with("127.0.0.1:"), "{relayed}");
    }
    a.wait_event("synced");
    b.wait_event("synced");
    a.send(json!({"op":"set","key":"relayed","value":"yes"}));
    b.wait_update("relayed", &json!("yes"));
    // Both say the link goes relay to relay.
    for p in [&mut a, &mut b] {
        p.send(json!({"op":"peers"}));
        let peers = p.wait_event("peers");
        let path = &peers["peers"][0]["path"];
        assert_eq!(path["local"]["type"], json!("relay"), "{peers}");
        assert_eq!(path["remote"]["type"], json!("relay"), "{peers}");
    }
    b.send(json!({"op":"set","key":"back","value":1}));
    a.wait_update("back", &json!(1));
    a.close();
    b.close();
}

#[test]
fn bad_credentials_and_a_dead_server_are_named_errors_and_the_member_goes_on() {
    let coturn = Coturn::turn("mesh", "secret");
    let (_server, url) = serve();
    let turn = coturn.addr.to_string();
    let dead = format!("127.0.0.1:{}", free_port());
    for (server, code) in [
        (turn.as_str(), "turn_refused"),
        (dead.as_str(), "turn_timeout"),
    ] {
        let t0 = Instant::now();
        let args = [
            "--turn",
            server,
            "--turn-user",
            "mesh",
            "--turn-credential",
            "wrong",
        ];
        let mut a = joiner(&url, "ea", &args);
        let mut b = joiner(&url, "eb", &[]);
        // The error, within 10 s; and its host candidates still work (in either order).
        let (mut error, mut synced) = (None, false);
        while error.is_none() || !synced {
            let e = a.wait_for("the error and a synced link", |e| {
                e["event"] == "error" || e["event"] == "synced"
            });
            if e["event"] == "synced" {
                synced = true;
            } else {
                error = Some((e, t0.elapsed()));
            }
        }
        let (e, took) = error.unwrap();
        assert_eq!(e["code"], json!(code), "{e}");
        assert!(e["message"].as_str().unwrap().contains(server), "{e}");
        assert!(took < Duration::from_secs(10), "{code} after {took:?}");
        b.wait_event("synced");
        a.send(json!({"op":"set","key":"k","value":code}));
        b.wait_update("k", &json!(code));
        a.close();
        b.close();
    }
}
