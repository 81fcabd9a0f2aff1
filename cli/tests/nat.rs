//! Real NATs on this machine: the test bed of network namespaces, nftables routers and
//! Debian's coturn (see `common::netns::NatBed`). Behind two symmetric NATs only a relay
//! crosses: two `rtc-mesh join --relay-only` peers mesh relay to relay through coturn.
//! Behind two port-restricted cone NATs hole punching works: given STUN (and TURN too),
//! two peers mesh server-reflexive to server-reflexive, not through the relay. Behind
//! symmetric NATs with every candidate gathered, ICE finds the relayed pair by itself;
//! without TURN the failure is reported and retried. A router that forgets its
//! mappings under a live link: an ICE restart recovers it.

mod common;

use common::bed::{join, serve, TURN};
use common::coturn::Coturn;
use common::netns::{NatBed, INET};
use common::Peer;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The bed, coturn and a switchboard on its "internet".
fn bed(prefix: &str, symmetric: bool) -> (NatBed, Coturn, Peer) {
    common::bed::start(prefix, symmetric)
}

/// Whether a reported path goes through a relay at either end.
fn relayed(path: &Value) -> bool {
    path["local"]["type"] == json!("relay") || path["remote"]["type"] == json!("relay")
}

/// (After both synced) writes cross both ways; then each side's path.
fn converge(a: &mut Peer, b: &mut Peer) -> Vec<Value> {
    a.send(json!({"op":"set","key":"from-a","value":1}));
    b.wait_update("from-a", &json!(1));
    b.send(json!({"op":"set","key":"from-b","value":2}));
    a.wait_update("from-b", &json!(2));
    [a, b]
        .into_iter()
        .map(|p| {
            p.send(json!({"op":"peers"}));
            p.wait_event("peers")["peers"][0]["path"].clone()
        })
        .collect()
}

#[test]
fn behind_two_symmetric_nats_relay_only_peers_mesh_relay_to_relay() {
    let (bed, _coturn, _serve) = bed("rmsym", true);
    let mut extra = TURN.to_vec();
    extra.push("--relay-only");
    let mut a = join(&bed.peer_a, "sym", "na", &extra);
    let mut b = join(&bed.peer_b, "sym", "nb", &extra);
    a.wait_event("synced");
    b.wait_event("synced");
    for path in converge(&mut a, &mut b) {
        assert_eq!(path["local"]["type"], json!("relay"), "{path}");
        assert_eq!(path["remote"]["type"], json!("relay"), "{path}");
        let remote = path["remote"]["addr"].as_str().unwrap();
        assert!(remote.starts_with(&format!("{INET}:")), "the relay: {path}");
    }
    a.close();
    b.close();
}

#[test]
fn behind_two_cone_nats_peers_punch_through_with_stun() {
    let (bed, _coturn, _serve) = bed("rmcone", false);
    let mut extra = TURN.to_vec();
    extra.extend(["--stun", "198.51.100.1:3478"]);
    let mut a = join(&bed.peer_a, "cone", "ca", &extra);
    let mut b = join(&bed.peer_b, "cone", "cb", &extra);
    a.wait_event("synced");
    b.wait_event("synced");
    for path in converge(&mut a, &mut b) {
        assert_eq!(path["local"]["type"], json!("srflx"), "{path}");
        assert_eq!(path["remote"]["type"], json!("srflx"), "{path}");
        let remote = path["remote"]["addr"].as_str().unwrap();
        assert!(
            remote.starts_with("198.51.100.10"),
            "the other router: {path}"
        );
    }
    a.close();
    b.close();
}

#[test]
fn behind_two_symmetric_nats_peers_with_turn_mesh_through_the_relay_within_5_s() {
    let (bed, _coturn, _serve) = bed("rmsymt", true);
    let mut a = join(&bed.peer_a, "symt", "ta", &TURN);
    a.wait_event("relay");
    let second = Instant::now();
    let mut b = join(&bed.peer_b, "symt", "tb", &TURN);
    a.wait_event("synced");
    b.wait_event("synced");
    let took = second.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "synced {took:?} after the second join"
    );
    for path in converge(&mut a, &mut b) {
        assert!(
            relayed(&path),
            "only a relay crosses a symmetric NAT: {path}"
        );
    }
    a.close();
    b.close();
}

#[test]
fn behind_two_symmetric_nats_without_turn_the_failure_shows_within_30_s_and_is_retried() {
    let (bed, _coturn, _serve) = bed("rmsyms", true);
    let stun = ["--stun", "198.51.100.1:3478"];
    let mut a = join(&bed.peer_a, "syms", "sa", &stun);
    let mut b = join(&bed.peer_b, "syms", "sb", &stun);
    let joined = Instant::now();
    for p in [&mut a, &mut b] {
        let other = if p.name == "sa" { "sb" } else { "sa" };
        p.wait_for("peer_join", |v| {
            v["event"] == "peer_join" && v["peer"] == other
        });
        let leave = p.wait_event("peer_leave");
        assert_eq!(leave["reason"], json!("failed"), "{leave}");
        let failed = p.wait_event("link_failed");
        assert_eq!(failed["peer"], json!(other));
        assert_eq!(failed["failures"], json!(1), "{failed}");
        assert!(failed["retry_in_ms"].as_f64().unwrap() > 0.0, "{failed}");
        let took = joined.elapsed();
        assert!(
            took < Duration::from_secs(30),
            "failure seen after {took:?}"
        );
        p.send(json!({"op":"peers"}));
        let peers = p.wait_event("peers")["peers"].clone();
        assert_eq!(peers.as_array().unwrap().len(), 1, "{peers}");
        assert_eq!(peers[0]["peer"], json!(other));
        assert!(peers[0]["failures"].as_f64().unwrap() >= 1.0, "{peers}");
        assert!(
            [json!("failed"), json!("connecting")].contains(&peers[0]["state"]),
            "{peers}"
        );
    }
    // The offerer tries again, and fails again: once more on each side, no new leave.
    for p in [&mut a, &mut b] {
        let again = p.wait_event("link_failed");
        assert_eq!(again["failures"], json!(2), "{again}");
    }
    for p in [a, b] {
        assert_eq!(
            p.count_events("peer_leave"),
            1,
            "one leave per peer, not one per attempt"
        );
        p.close();
    }
}

/// Symmetric NATs, a coturn taking short-lived credentials of the secret `rest-secret`,
/// and a switchboard handing out credentials signed with `secret`.
fn rest_bed(prefix: &str, secret: &str, extra: &[&str]) -> (NatBed, Coturn, Peer) {
    let bed = NatBed::new(prefix, true);
    let coturn = Coturn::rest_in(&bed.inet, INET, "rest-secret");
    let turn = format!("{INET}:3478");
    let mut args = vec!["--turn", &turn, "--turn-secret", secret];
    args.extend_from_slice(extra);
    let serve = serve(&bed, &args);
    (bed, coturn, serve)
}

#[test]
fn behind_two_symmetric_nats_peers_given_no_turn_use_the_switchboards_short_lived_credentials() {
    let (bed, _coturn, _serve) = rest_bed("rmrest", "rest-secret", &["--turn-ttl", "600"]);
    let mut a = join(&bed.peer_a, "rest", "ra", &[]);
    let mut b = join(&bed.peer_b, "rest", "rb", &[]);
    for p in [&mut a, &mut b] {
        let offered = p.wait_event("ice_offered");
        assert_eq!(offered["urls"], json!([format!("turn:{INET}:3478")]));
        let relay = p.wait_event("relay");
        assert!(
            relay["relayed"].as_str().unwrap().starts_with(INET),
            "{relay}"
        );
    }
    a.wait_event("synced");
    b.wait_event("synced");
    for path in converge(&mut a, &mut b) {
        assert!(relayed(&path), "{path}");
    }
    a.close();
    b.close();
}

#[test]
fn a_wrong_turn_secret_at_the_switchboard_gives_the_named_error() {
    let (bed, _coturn, _serve) = rest_bed("rmbad", "not-the-secret", &[]);
    let mut a = join(&bed.peer_a, "bad", "ba", &[]);
    a.wait_event("ice_offered");
    let e = a.wait_event("error");
    assert_eq!(e["code"], json!("turn_refused"), "{e}");
    a.close();
}

/// The cone bed with STUN: two peers linked srflx to srflx.
fn cone_pair(prefix: &str, room: &str) -> (NatBed, Coturn, Peer, Peer, Peer) {
    let (bed, coturn, serve) = bed(prefix, false);
    let stun = ["--stun", "198.51.100.1:3478"];
    let mut a = join(&bed.peer_a, room, &format!("{room}a"), &stun);
    let mut b = join(&bed.peer_b, room, &format!("{room}b"), &stun);
    a.wait_event("synced");
    b.wait_event("synced");
    (bed, coturn, serve, a, b)
}

#[test]
fn with_10_percent_datagram_loss_on_one_router_1000_writes_converge() {
    let (bed, _coturn, _serve, mut a, mut b) = cone_pair("rmloss", "loss");
    bed.nat_a.lose_udp(10);
    for i in 0..1000 {
        let p = if i % 2 == 0 { &mut a } else { &mut b };
        p.send(json!({"op":"set","key":format!("k{i}"),"value":i}));
    }
    a.wait_update("k999", &json!(999));
    b.wait_update("k998", &json!(998));
    let (da, db) = (a.dump(), b.dump());
    assert_eq!(da.as_object().unwrap().len(), 1000);
    assert_eq!(da, db);
    for p in [&a, &b] {
        assert_eq!(p.count_events("peer_leave"), 0, "the link held");
    }
    a.close();
    b.close();
}

#[test]
fn with_udp_mappings_that_expire_in_10_s_a_link_idle_for_60_s_still_delivers() {
    let (bed, _coturn, _serve, mut a, mut b) = cone_pair("rmidle", "idle");
    bed.nat_a.udp_mapping_timeout(10, 15);
    bed.nat_b.udp_mapping_timeout(10, 15);
    // Idle for the application: nothing written for a minute (the scenario itself,
    // not a wait for an event).
    std::thread::sleep(Duration::from_secs(60));
    a.send(json!({"op":"set","key":"after-idle","value":true}));
    b.wait_update("after-idle", &json!(true));
    b.send(json!({"op":"set","key":"back","value":true}));
    a.wait_update("back", &json!(true));
    for p in [&a, &b] {
        assert_eq!(p.count_events("peer_leave"), 0, "the link held");
    }
    a.close();
    b.close();
}

#[test]
fn when_a_router_forgets_its_mappings_under_a_live_link_the_link_recovers() {
    flush_under_a_live_link("rmflush", false);
}

/// Relay-only, so the flushed side's own allocation belonged to the mapping its router
/// forgot: coturn drops what comes from the new port, and answers a second Allocate
/// from it. The node's probe gets that new allocation, and the link moves onto it.
#[test]
fn when_a_router_forgets_its_mappings_under_a_relay_only_link_a_new_allocation_takes_over() {
    flush_under_a_live_link("rmflushr", true);
}

fn flush_under_a_live_link(name: &str, relay_only: bool) {
    let (bed, _coturn, _serve) = bed(name, true);
    let mut extra = TURN.to_vec();
    if relay_only {
        extra.push("--relay-only");
    }
    let mut a = join(&bed.peer_a, "flush", "fa", &extra);
    let mut b = join(&bed.peer_b, "flush", "fb", &extra);
    let first = a.wait_event("relay")["relayed"].clone();
    a.wait_event("synced");
    b.wait_event("synced");
    for i in 0..500 {
        a.send(json!({"op":"set","key":format!("before{i}"),"value":i}));
    }
    b.wait_update("before499", &json!(499));
    let counts = |p: &mut Peer| {
        p.send(json!({"op":"peers"}));
        let peers = p.wait_event("peers")["peers"].clone();
        assert_eq!(peers[0]["state"], json!("synced"), "{peers}");
        peers[0]["updates_in"].as_f64().unwrap() + peers[0]["updates_out"].as_f64().unwrap()
    };
    let before = [counts(&mut a), counts(&mut b)];
    let flushed = Instant::now();
    bed.nat_a.flush_udp_mappings();
    // Symmetric NAT: the next datagram out gets a new, random port.
    a.send(json!({"op":"set","key":"after","value":2}));
    b.wait_update("after", &json!(2));
    b.send(json!({"op":"set","key":"back","value":3}));
    a.wait_update("back", &json!(3));
    let took = flushed.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "recovered {took:?} after the flush"
    );
    eprintln!("recovered {took:?} after the flush");
    // An ICE restart: the same link (never reported gone), the same incarnations, and
    // only the two new writes crossed it: no resync of the 500 keys.
    for (p, before) in [(&mut a, before[0]), (&mut b, before[1])] {
        assert_eq!(counts(p) - before, 2.0);
        assert_eq!(p.count_events("peer_leave"), 0);
        assert_eq!(p.count_events("peer_join"), 1);
    }
    assert_eq!(b.dump().as_object().unwrap().len(), 502);
    let relays = a.count_events("relay");
    if relay_only {
        // The probe's allocation, from the new port, took over.
        assert_eq!(relays, 2);
        a.send(json!({"op":"peers"}));
        let peers = a.wait_event("peers")["peers"].clone();
        let local = &peers[0]["path"]["local"];
        assert_eq!(local["type"], json!("relay"), "{peers}");
        assert_ne!(local["addr"], first, "{peers}");
    } else {
        assert!(relays <= 2, "{relays} allocations");
    }
    a.close();
    b.close();
}

#[test]
fn a_chromium_and_a_firefox_page_behind_nats_mesh_with_a_native_behind_another_via_turn() {
    // Symmetric NATs, and TURN only from the switchboard's offer: no page is given a
    // server of its own.
    let (bed, _coturn, _serve) = rest_bed("rmpages", "rest-secret", &[]);
    let dir = common::browser_dir();
    let page = |ns: &common::netns::Netns, engine: &str, id: &str| {
        let mut c = ns.command("node");
        c.current_dir(&dir).args([
            "nat-page.js",
            "--engine",
            engine,
            "--base",
            &format!("http://{INET}:3000/"),
            "--room",
            "pages",
            "--id",
            id,
            "--peers",
            "2",
        ]);
        Peer::spawn(id, c)
    };
    let mut pc = page(&bed.peer_a, "chromium", "pchromium");
    let mut pf = page(&bed.peer_b, "firefox", "pfirefox");
    let mut n = join(&bed.peer_c, "pages", "native", &[]);
    n.wait_event("ice_offered");
    for p in [&mut pc, &mut pf] {
        let offered = p.wait_event("ice_offered");
        assert_eq!(offered["urls"], json!([format!("turn:{INET}:3478")]));
        let synced = p.wait_event("synced");
        for peer in synced["peers"].as_array().unwrap() {
            assert!(relayed(&peer["path"]), "{}: {peer}", p.name);
        }
    }
    n.wait_for("synced with both pages", |v| {
        v["event"] == "synced_all" && v["peers"].as_array().is_some_and(|p| p.len() == 2)
    });
    n.send(json!({"op":"set","key":"from-native","value":1}));
    pc.send(json!({"op":"set","key":"from-chromium","value":2}));
    pf.send(json!({"op":"set","key":"from-firefox","value":3}));
    n.wait_update("from-chromium", &json!(2));
    n.wait_update("from-firefox", &json!(3));
    pc.wait_update("from-native", &json!(1));
    pc.wait_update("from-firefox", &json!(3));
    pf.wait_update("from-native", &json!(1));
    pf.wait_update("from-chromium", &json!(2));
    n.close();
    pc.close();
    pf.close();
}
