//! The Mesh's rules, each in a small simulated world (simulated time: no sleeping).

use std::time::{Duration, Instant};

use rtc_mesh_core::mesh::{
    LeaveReason, LinkCommand, LinkState, Mesh, MeshConfig, MeshEvent, MeshOutput, SdpKind,
};
use rtc_mesh_core::Value;
use rtc_mesh_sim::mesh_sim::{Logged, SimConfig, World};

fn world(peers: usize, seed: u64) -> World {
    let mut cfg = SimConfig::new(seed);
    cfg.peers = peers;
    cfg.faults = false;
    cfg.mixed_codecs = false;
    let mut w = World::new(cfg);
    w.record = true;
    w
}

fn formed(w: &mut World) {
    let t = w.run_until_true(Duration::from_secs(10), |w| w.is_converged());
    assert!(t.is_some(), "the mesh did not form");
    // Let the link reports settle.
    w.run_for(Duration::from_millis(500));
}

#[test]
fn exactly_the_higher_id_offers() {
    let mut w = world(4, 1);
    formed(&mut w);
    let mut offers = Vec::new();
    for (_, i, l) in &w.log {
        if let Logged::Link(LinkCommand::Open { peer, offerer, .. }) = l {
            let me = format!("p{i:03}");
            assert_eq!(*offerer, me.as_str() > peer.as_str(), "{me} -> {peer}");
            if *offerer {
                offers.push((me, peer.clone()));
            }
        }
    }
    offers.sort();
    offers.dedup();
    assert_eq!(offers.len(), 6, "one offer per pair: {offers:?}");
}

#[test]
fn a_full_mesh_costs_n_minus_1_messages_per_write() {
    let mut w = world(10, 2);
    formed(&mut w);
    let before = totals(&w);
    for i in 0..10 {
        w.write(i, &format!("k{i}"), i as f64);
    }
    w.run_for(Duration::from_secs(1));
    assert!(w.is_converged());
    assert_eq!(totals(&w) - before, 10 * 9);
}

fn totals(w: &World) -> u64 {
    (0..w.peer_count())
        .filter_map(|i| w.mesh(i))
        .map(|m| {
            let r = m.replica();
            r.links()
                .filter_map(|l| r.link_stats(l))
                .map(|s| s.updates_out)
                .sum::<u64>()
        })
        .sum()
}

#[test]
fn a_killed_peer_is_reported_left_within_6_seconds_and_rejoins_fresh() {
    let mut w = world(3, 3);
    formed(&mut w);
    w.write(2, "before", 1.0);
    w.run_for(Duration::from_secs(1));
    let crash_at = w.elapsed();
    w.crash(2);
    let left = w.run_until_true(Duration::from_secs(10), |w| {
        w.log.iter().any(|(t, i, l)| {
            *t >= crash_at
                && *i == 0
                && matches!(l, Logged::Event(MeshEvent::PeerLeft { peer, reason: LeaveReason::Timeout }) if peer == "p002")
        })
    });
    let left = left.expect("p002 reported left");
    assert!(left <= Duration::from_secs(6), "reported after {left:?}");
    assert!(
        left >= Duration::from_secs(3),
        "the link decides, not the switchboard: {left:?}"
    );
    // Back with the same id, no state: it receives everything, and its new writes are
    // not dropped as old.
    w.restart(2);
    formed(&mut w);
    assert_eq!(
        w.mesh(2).unwrap().store().get("before"),
        Some(Value::from(1.0))
    );
    w.write(2, "after", 2.0);
    w.run_for(Duration::from_secs(1));
    for i in 0..3 {
        assert_eq!(
            w.mesh(i).unwrap().store().get("after"),
            Some(Value::from(2.0))
        );
    }
    assert!(w.failures().is_empty(), "{:?}", w.failures());
}

#[test]
fn a_polite_leave_is_reported_at_once() {
    let mut w = world(3, 4);
    formed(&mut w);
    let t0 = w.elapsed();
    w.leave(1);
    let t = w.run_until_true(Duration::from_secs(5), |w| {
        w.log.iter().any(|(_, i, l)| {
            *i == 0 && matches!(l, Logged::Event(MeshEvent::PeerLeft { peer, reason: LeaveReason::Left }) if peer == "p001")
        })
    });
    if t.is_none() {
        for (at, i, l) in &w.log {
            if *at >= t0 && *i == 0 {
                eprintln!("{at:?} {l:?}");
            }
        }
    }
    assert!(
        t.expect("left") < Duration::from_millis(100),
        "{t:?} after {t0:?}"
    );
}

#[test]
fn a_switchboard_restart_keeps_the_links() {
    let mut w = world(4, 5);
    formed(&mut w);
    let closes = |w: &World| {
        w.log
            .iter()
            .filter(|(_, _, l)| matches!(l, Logged::Link(LinkCommand::Close { .. })))
            .count()
    };
    let before = closes(&w);
    w.restart_switchboard();
    w.run_for(Duration::from_secs(10));
    assert_eq!(closes(&w), before, "no link was closed");
    w.write(0, "x", 1.0);
    w.run_for(Duration::from_secs(1));
    assert!(w.is_converged());
}

#[test]
fn a_short_partition_heals_without_losing_writes() {
    let mut w = world(3, 6);
    formed(&mut w);
    w.partition(0, 1, Duration::from_secs(2));
    w.write(0, "during", 1.0);
    w.run_for(Duration::from_secs(5));
    assert!(w.is_converged());
    assert!(w.failures().is_empty(), "{:?}", w.failures());
}

#[test]
fn a_long_partition_closes_the_link_and_the_writes_still_arrive() {
    let mut w = world(3, 7);
    formed(&mut w);
    w.partition(0, 1, Duration::from_secs(8));
    w.write(0, "during", 1.0);
    w.run_for(Duration::from_secs(6));
    // p001 got it through p002 (it no longer hears p000 directly).
    assert_eq!(
        w.mesh(1).unwrap().store().get("during"),
        Some(Value::from(1.0))
    );
    w.run_for(Duration::from_secs(20));
    assert!(w.is_converged());
    assert!(w.failures().is_empty(), "{:?}", w.failures());
}

#[test]
fn large_values_are_fragmented_and_oversize_ones_refused() {
    for seed in [8, 9] {
        let mut w = world(3, seed);
        formed(&mut w);
        let big = Value::from("x".repeat(200_000));
        w.write_value(0, "big", &big).unwrap();
        w.run_for(Duration::from_secs(1));
        for i in 1..3 {
            assert_eq!(w.mesh(i).unwrap().store().get("big"), Some(big.clone()));
        }
        assert!(
            w.max_message <= 16 * 1024,
            "a channel message of {} bytes",
            w.max_message
        );
        let huge = Value::from("x".repeat(1 << 20));
        let err = w.write_value(0, "huge", &huge).unwrap_err();
        assert!(
            matches!(err, rtc_mesh_core::StoreError::ValueTooLarge { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("maximum value size"));
    }
}

fn mesh(id: &str) -> Mesh {
    Mesh::new(MeshConfig::new(
        id,
        "room",
        "0000000000000001",
        1.7e12,
        Instant::now(),
    ))
    .unwrap()
}

/// A mesh `id` that has started and whose signalling connection is up.
fn online(id: &str, t: Instant) -> Mesh {
    let mut m = mesh(id);
    m.start(t);
    m.handle_signal_connected(t);
    m
}

fn drain(m: &mut Mesh) -> Vec<MeshOutput> {
    let mut v = Vec::new();
    loop {
        match m.poll_output() {
            MeshOutput::Timeout(_) => return v,
            o => v.push(o),
        }
    }
}

#[test]
fn sdp_and_candidates_before_the_announce_are_kept() {
    let t = Instant::now();
    let mut a = online("a", t);
    drain(&mut a);
    // b (higher id, so the offerer) sends its offer and a candidate before a has seen
    // its announce.
    a.handle_signal(t, r#"/to|a|/mesh:sdp|b|{"type":"offer","sdp":"v=0 offer"}"#);
    a.handle_signal(
        t,
        r#"/to|a|/mesh:candidate|b|{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}"#,
    );
    assert!(drain(&mut a)
        .iter()
        .all(|o| !matches!(o, MeshOutput::Link(_))));
    a.handle_signal(
        t,
        r#"/announce|b|{"id":"b","room":"room","incarnation":"0000000000000002","codecs":["postcard","json"]}"#,
    );
    let out = drain(&mut a);
    let links: Vec<&LinkCommand> = out
        .iter()
        .filter_map(|o| match o {
            MeshOutput::Link(l) => Some(l),
            _ => None,
        })
        .collect();
    assert!(matches!(links[0], LinkCommand::Open { offerer: false, .. }));
    assert!(matches!(
        links[1],
        LinkCommand::RemoteSdp {
            kind: SdpKind::Offer,
            ..
        }
    ));
    assert!(matches!(links[2], LinkCommand::RemoteCandidate { .. }));
    // And a answered b's broadcast announce directly.
    assert!(out
        .iter()
        .any(|o| matches!(o, MeshOutput::Signal(s) if s.starts_with("/to|b|/announce|a|"))));
}

#[test]
fn a_returning_incarnation_gets_a_fresh_link() {
    let t = Instant::now();
    let mut b = mesh("b");
    b.start(t);
    drain(&mut b);
    b.handle_signal(
        t,
        r#"/announce|a|{"id":"a","room":"room","incarnation":"1111111111111111"}"#,
    );
    let out = drain(&mut b);
    assert!(out
        .iter()
        .any(|o| matches!(o, MeshOutput::Link(LinkCommand::Open { offerer: true, .. }))));
    b.link_open(t, "a", rtc_mesh_core::Codec::Json);
    drain(&mut b);
    // a crashed and came back: same id, new incarnation.
    b.handle_signal(
        t,
        r#"/announce|a|{"id":"a","room":"room","incarnation":"2222222222222222"}"#,
    );
    let out = drain(&mut b);
    let kinds: Vec<String> = out
        .iter()
        .filter_map(|o| match o {
            MeshOutput::Link(LinkCommand::Close { .. }) => Some("close".to_string()),
            MeshOutput::Link(LinkCommand::Open { offerer: true, .. }) => Some("open".to_string()),
            MeshOutput::Event(MeshEvent::PeerLeft { .. }) => Some("left".to_string()),
            MeshOutput::Event(MeshEvent::PeerJoined { .. }) => Some("joined".to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["close", "left", "joined", "open"]);
}

#[test]
fn a_switchboard_leave_for_a_live_link_keeps_it() {
    let t = Instant::now();
    let mut b = mesh("b");
    b.start(t);
    b.handle_signal(
        t,
        r#"/announce|a|{"id":"a","room":"room","incarnation":"1111111111111111"}"#,
    );
    b.link_open(t, "a", rtc_mesh_core::Codec::Json);
    drain(&mut b);
    b.handle_signal(t, r#"/leave|a|{"id":"a","reason":"disconnected"}"#);
    let out = drain(&mut b);
    assert!(!out.iter().any(|o| matches!(
        o,
        MeshOutput::Link(LinkCommand::Close { .. }) | MeshOutput::Event(MeshEvent::PeerLeft { .. })
    )));
    b.handle_signal(t, r#"/leave|a|{"id":"a"}"#);
    let out = drain(&mut b);
    assert!(out.iter().any(|o| matches!(
        o,
        MeshOutput::Event(MeshEvent::PeerLeft {
            reason: LeaveReason::Left,
            ..
        })
    )));
}

#[test]
fn link_info_tells_state_codec_counters_and_round_trip() {
    let mut w = world(2, 3);
    formed(&mut w);
    w.write(1, "k", 1.0);
    // Two ping intervals: each side has had a PING answered.
    w.run_for(Duration::from_secs(2));
    let (m0, m1) = (w.mesh(0).unwrap(), w.mesh(1).unwrap());
    let (a, b) = (
        m0.link_info("p001").expect("p001 is present"),
        m1.link_info("p000").expect("p000 is present"),
    );
    for i in [&a, &b] {
        assert_eq!(i.state, LinkState::Open);
        assert_eq!(i.state.name(), "open");
        assert!(i.codec.is_some());
        assert!(i.synced);
        assert!(i.stats.bytes_in > 0 && i.stats.bytes_out > 0);
        let rtt = i.stats.rtt.expect("a ping was answered");
        assert!(
            rtt > Duration::ZERO && rtt < Duration::from_secs(1),
            "{rtt:?}"
        );
    }
    assert_eq!(a.stats.updates_in, 1);
    assert_eq!(b.stats.updates_out, 1);
    assert_eq!(a.stats.bytes_in, b.stats.bytes_out);
    assert!(m0.link_info("nobody").is_none());
}

/// Signalling that reconnects may have lost an offer or answer in flight: the offerer
/// offers again at once (not after its negotiation timeout) when its own signalling
/// connection comes back, and when the peer announces again by broadcast; a direct
/// announce, a second `/roominfo` and an open link change nothing.
#[test]
fn a_negotiation_in_flight_is_restarted_when_signalling_reconnects() {
    let t = Instant::now();
    let mut z = online("z", t);
    z.handle_signal(t, r#"/roominfo|{"memberCount":1}"#);
    drain(&mut z);
    let b = r#"/announce|b|{"id":"b","room":"room","incarnation":"0000000000000002","codecs":["postcard","json"]}"#;
    z.handle_signal(t, b);
    let opens = |out: &[MeshOutput]| {
        out.iter()
            .filter(|o| {
                matches!(o, MeshOutput::Link(LinkCommand::Open { peer, offerer: true, .. }) if peer == "b")
            })
            .count()
    };
    let closes = |out: &[MeshOutput]| {
        out.iter()
            .filter(|o| matches!(o, MeshOutput::Link(LinkCommand::Close { peer }) if peer == "b"))
            .count()
    };
    assert_eq!(opens(&drain(&mut z)), 1, "z offers to b");
    // A second roominfo alone is no reason.
    z.handle_signal(t, r#"/roominfo|{"memberCount":2}"#);
    let out = drain(&mut z);
    assert_eq!((closes(&out), opens(&out)), (0, 0));
    // Our signalling dropped and came back: announce first, then the fresh offer.
    z.handle_signal_disconnected(t);
    assert_eq!(
        opens(&drain(&mut z)),
        0,
        "nothing before the connection is back"
    );
    z.handle_signal_connected(t);
    let out = drain(&mut z);
    assert_eq!((closes(&out), opens(&out)), (1, 1), "offered afresh");
    let first_signal = out.iter().find_map(|o| match o {
        MeshOutput::Signal(s) => Some(s.as_str()),
        _ => None,
    });
    assert!(
        first_signal.is_some_and(|s| s.starts_with("/announce|z|")),
        "{first_signal:?}"
    );
    // b's signalling reconnected: its broadcast announce, same incarnation.
    z.handle_signal(t, b);
    let out = drain(&mut z);
    assert_eq!((closes(&out), opens(&out)), (1, 1), "offered afresh");
    // A direct announce (b answering someone's broadcast) is no reason.
    z.handle_signal(t, &format!("/to|z|{b}"));
    let out = drain(&mut z);
    assert_eq!((closes(&out), opens(&out)), (0, 0));
    assert_eq!(z.stats().offers_restarted, 2);
}

/// The real signalling client inside each mesh loses its connection while a link is
/// being negotiated, and gets it back (after its backoff): the link forms anyway, well
/// within a negotiation timeout, whether the offerer's connection dropped or the
/// answerer's, and whether or not the offer or answer in flight was lost (then the
/// offerer offers again once it is back).
#[test]
fn the_signalling_client_loses_and_regains_its_connection_mid_negotiation() {
    let mut restarted = 0;
    for seed in 11..41u64 {
        let dropped = (seed % 2) as usize;
        let mut w = world(2, seed);
        // p001 (the higher id) offers to p000.
        let negotiating = w.run_until_true(Duration::from_secs(2), |w| {
            w.mesh(1)
                .and_then(|m| m.link_info("p000"))
                .is_some_and(|i| i.state == LinkState::Negotiating)
        });
        assert!(negotiating.is_some(), "no negotiation started");
        w.drop_signalling(dropped);
        let t = w.run_until_true(Duration::from_secs(5), |w| w.is_converged());
        assert!(
            t.is_some(),
            "seed {seed}: no link after dropping {dropped}'s signalling"
        );
        w.run_for(Duration::from_millis(200));
        let m = w.mesh(dropped).unwrap();
        assert_eq!(m.stats().signal_disconnects, 1);
        assert_eq!(m.signal_client().connections(), 2, "it reconnected");
        for i in 0..2 {
            let s = w.mesh(i).unwrap().stats();
            assert_eq!(
                s.negotiation_timeouts, 0,
                "seed {seed}: peer {i} waited out a timeout"
            );
        }
        restarted += w.mesh(1).unwrap().stats().offers_restarted;
        assert!(w.failures().is_empty(), "{:?}", w.failures());
    }
    assert!(restarted > 0, "no offer was ever lost and restarted");
}

/// While its signalling is down a mesh's messages are queued by its client and sent,
/// after the announce, once it is back: new attributes announced meanwhile reach the
/// room.
#[test]
fn what_is_announced_while_signalling_is_down_arrives_after_the_reconnect() {
    let mut w = world(2, 21);
    formed(&mut w);
    w.drop_signalling(0);
    w.announce(0, [("nick", Value::from("zed"))]);
    let updated = w.run_until_true(Duration::from_secs(3), |w| {
        w.log.iter().any(|(_, i, l)| {
            *i == 1
                && matches!(l, Logged::Event(MeshEvent::PeerUpdated { attributes, .. })
                    if attributes.get("nick") == Some(&Value::from("zed")))
        })
    });
    assert!(updated.is_some(), "the new attributes did not arrive");
    assert_eq!(w.mesh(0).unwrap().signal_client().connections(), 2);
}

/// DESIGN: once a remote has sent a `"PING"`, a link silent for `dead_after` is closed
/// and its peer reported left, whatever the remote is: here a foreign-style peer (a page
/// of another client) that pings but announced no `incarnation`. A remote that never
/// pinged is not judged by silence (ICE watches it).
#[test]
fn a_peer_that_pinged_and_fell_silent_is_reported_left_even_without_an_incarnation() {
    let t = Instant::now();
    let mut b = online("b", t);
    // Two foreign peers, neither with an incarnation; b (the higher id) offers to both.
    for who in ["a", "0"] {
        b.handle_signal(
            t,
            &format!(r#"/announce|{who}|{{"id":"{who}","room":"room","agent":"other/1"}}"#),
        );
        b.link_open(t, who, rtc_mesh_core::Codec::Json);
    }
    drain(&mut b);
    // `a` pings once (b answers), then nothing more comes from either.
    b.link_data(t, "a", b"\"PING\"\n");
    let out = drain(&mut b);
    assert!(out.iter().any(|o| matches!(o,
        MeshOutput::Transmit { peer, data } if peer == "a" && data.ends_with(b"\"PONG\"\n"))));
    let mut left = Vec::new();
    let mut at = t;
    while at < t + Duration::from_secs(12) {
        at += Duration::from_millis(100);
        b.handle_timeout(at);
        for o in drain(&mut b) {
            if let MeshOutput::Event(MeshEvent::PeerLeft { peer, reason }) = o {
                left.push((peer.to_string(), reason, at - t));
            }
        }
    }
    assert_eq!(left.len(), 1, "{left:?}");
    let (who, reason, after) = &left[0];
    assert_eq!((who.as_str(), *reason), ("a", LeaveReason::Timeout));
    assert!(*after <= Duration::from_secs(5), "reported after {after:?}");
    assert!(
        b.peers().any(|(id, _)| id == "0"),
        "the one that never pinged stays"
    );
}

/// A fresh offer over an open link means the remote lost that link: the peer is reported
/// left (`closed`, as when a link closes) and joins again once the new link opens, so a
/// link replaced by a failed renegotiation is never reported present meanwhile.
#[test]
fn a_fresh_offer_over_an_open_link_reports_the_link_lost() {
    let t = Instant::now();
    let mut a = online("a", t);
    a.handle_signal(
        t,
        r#"/announce|b|{"id":"b","room":"room","incarnation":"0000000000000002"}"#,
    );
    a.handle_signal(t, r#"/to|a|/mesh:sdp|b|{"type":"offer","sdp":"v=0 one"}"#);
    a.link_open(t, "b", rtc_mesh_core::Codec::Json);
    drain(&mut a);
    a.handle_signal(t, r#"/to|a|/mesh:sdp|b|{"type":"offer","sdp":"v=0 two"}"#);
    let kinds = |out: Vec<MeshOutput>| -> Vec<String> {
        out.into_iter()
            .filter_map(|o| match o {
                MeshOutput::Link(LinkCommand::Close { .. }) => Some("close".into()),
                MeshOutput::Link(LinkCommand::RemoteSdp { .. }) => Some("sdp".into()),
                MeshOutput::Event(MeshEvent::PeerLeft { reason, .. }) => {
                    Some(format!("left {}", reason.name()))
                }
                MeshOutput::Event(MeshEvent::PeerJoined { .. }) => Some("joined".into()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(kinds(drain(&mut a)), ["close", "left closed", "sdp"]);
    a.link_open(t, "b", rtc_mesh_core::Codec::Json);
    assert_eq!(kinds(drain(&mut a)), ["joined"]);
}
