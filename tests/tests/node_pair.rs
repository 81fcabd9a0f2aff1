//! Two and more Nodes (real str0m) over simulated UDP.

use rtc_mesh_sim::node_sim::{run_nodes, NodeSimConfig};

#[test]
fn a_pair_of_nodes_meshes_and_syncs_over_str0m() {
    let mut cfg = NodeSimConfig::new(1);
    cfg.peers = 2;
    cfg.faults = false;
    cfg.loss = 0.0;
    cfg.duplicate = 0.0;
    let r = run_nodes(cfg);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    eprintln!("{r:?}");
}

#[test]
fn node_seeds_with_loss_duplication_partitions_and_crashes() {
    let mut failed = Vec::new();
    for seed in 0..20 {
        let r = run_nodes(NodeSimConfig::new(seed));
        eprintln!(
            "seed {seed}: formed {:?} converged {:?} datagrams {} drops {} dups {} partitions {} crashes {} trace {:016x}",
            r.formed, r.converge, r.datagrams, r.faults.drops, r.duplicates, r.faults.partitions, r.faults.crashes, r.trace
        );
        if !r.failures.is_empty() {
            failed.push((seed, r.failures));
        }
    }
    assert!(failed.is_empty(), "{failed:?}");
}

/// Same seed, same run, exactly: the trace digest (simulated time to the nanosecond,
/// peer and kind of every event, datagram counts) is equal, with lost, duplicated and
/// reordered datagrams and DTLS retransmissions. Two things make it so: the simulator
/// gives str0m's DTLS a seeded generator (`NodeConfig::seeded_dtls`), and links set up
/// SCTP with SNAP, which skips the INIT timer that sctp-proto starts from the real clock.
#[test]
fn a_node_seed_replays_exactly() {
    for seed in [1, 3, 4] {
        let a = run_nodes(NodeSimConfig::new(seed));
        let b = run_nodes(NodeSimConfig::new(seed));
        assert!(
            a.failures.is_empty() && b.failures.is_empty(),
            "{a:?} {b:?}"
        );
        assert!(a.faults.drops > 0, "seed {seed} lost datagrams");
        assert_eq!(a.trace, b.trace, "seed {seed}");
        assert_eq!(a.datagrams, b.datagrams, "seed {seed}");
        assert_eq!(a.formed, b.formed, "seed {seed}");
        assert_eq!(a.converge, b.converge, "seed {seed}");
    }
    let c = run_nodes(NodeSimConfig::new(5));
    let a = run_nodes(NodeSimConfig::new(4));
    assert_ne!(a.trace, c.trace);
}

/// A burst far larger than str0m's 32 KiB send buffer: frames wait in the link's
/// queue and all arrive, in order, none dropped.
#[test]
fn a_burst_larger_than_the_send_buffer_queues_and_arrives_whole() {
    use rtc_mesh_core::Value;
    use rtc_mesh_sim::node_sim::NodeWorld;
    use std::time::Duration;
    let mut cfg = NodeSimConfig::new(11);
    cfg.peers = 2;
    cfg.faults = false;
    cfg.loss = 0.0;
    cfg.duplicate = 0.0;
    let mut w = NodeWorld::new(cfg);
    assert!(w.settle(Duration::from_secs(20)).is_some(), "pair formed");
    let v = Value::from("y".repeat(20_000));
    for k in 0..200 {
        w.write_value(0, &format!("big{k}"), &v);
    }
    // Also values larger than one frame (fragmented).
    w.write_value(0, "huge", &Value::from("z".repeat(300_000)));
    assert!(
        w.node(0).unwrap().stats().frames_queued > 0,
        "the buffer filled"
    );
    assert!(w.settle(Duration::from_secs(60)).is_some(), "all arrived");
    assert_eq!(w.node(1).unwrap().store().len(), 201);
    assert!(w.failures().is_empty(), "{:?}", w.failures());
}

/// Offers carry SNAP (`a=sctp-init`): between str0m peers the SCTP association is set
/// up from the SDP, saving the INIT round trips (browsers that do not know it ignore
/// the line and use the normal handshake; `cli/tests/browser.rs`).
#[test]
fn offers_set_up_sctp_with_snap() {
    use rtc_mesh_core::node::NodeOutput;
    let mut z = node_z_with_peer_b();
    let mut offer = None;
    loop {
        match z.poll_output() {
            NodeOutput::Timeout(_) => break,
            NodeOutput::Signal(s) if s.contains("/mesh:sdp|z|") => offer = Some(s),
            _ => {}
        }
    }
    let offer = offer.expect("z (the higher id) offers");
    assert!(offer.contains("a=sctp-init:"), "{offer}");
}

/// A closed node says when it is finished: once the drain after `close` has taken the
/// goodbyes (`/leave`, then the signalling connection's close, and the DTLS close of a
/// connection in progress), so that a driver stops at once instead of lingering.
#[test]
fn a_closed_node_reports_that_it_is_finished() {
    use rtc_mesh_core::node::{Node, NodeOutput};
    let mut z = node_z_with_peer_b();
    let drain = |z: &mut Node| {
        let mut signals = Vec::new();
        loop {
            match z.poll_output() {
                NodeOutput::Timeout(_) => return signals,
                NodeOutput::Signal(s) => signals.push(s),
                NodeOutput::SignalClose => signals.push("(close)".into()),
                _ => {}
            }
        }
    };
    drain(&mut z);
    assert!(
        !z.is_finished(),
        "an open node with a negotiation in flight"
    );
    z.close(std::time::Instant::now());
    assert!(!z.is_finished(), "the goodbyes are not taken yet");
    let signals = drain(&mut z);
    let leave = signals.iter().position(|s| s.starts_with("/leave|z"));
    let close = signals.iter().position(|s| s == "(close)");
    assert!(
        leave.is_some() && close == Some(signals.len() - 1) && leave < close,
        "{signals:?}"
    );
    assert!(z.is_finished());
}

/// A lone node `z` that has heard `b` (a lower id, so `z` offers) announce.
fn node_z_with_peer_b() -> rtc_mesh_core::node::Node {
    use rtc_mesh_core::mesh::MeshConfig;
    use rtc_mesh_core::node::{Node, NodeConfig};
    let t = std::time::Instant::now();
    let mc = MeshConfig::new("z", "room", "00000000000000aa", 1.7e12, t);
    let mut z = Node::new(NodeConfig::new(
        mc,
        vec!["127.0.0.1:40000".parse().unwrap()],
    ))
    .unwrap();
    z.start(t);
    z.handle_signal_connected(t);
    z.handle_signal(
        t,
        r#"/announce|b|{"id":"b","room":"room","incarnation":"00000000000000bb","codecs":["postcard","json"]}"#,
    );
    z
}

/// A peer that vanishes without a word (its process killed) is reported left by the
/// other: within 6 s by the liveness rule when it used to ping, and within 15 s by ICE
/// (`NodeConfig::ice_timeout`) when it never pinged, as a plain scuttlebutt peer would.
#[test]
fn a_vanished_peer_is_reported_left_by_liveness_or_by_ice() {
    use rtc_mesh_sim::node_sim::NodeWorld;
    use std::time::Duration;
    for quiet in [false, true] {
        let mut cfg = NodeSimConfig::new(31);
        cfg.peers = 2;
        cfg.faults = false;
        cfg.loss = 0.0;
        cfg.duplicate = 0.0;
        if quiet {
            cfg.quiet = vec![1];
        }
        let mut w = NodeWorld::new(cfg);
        assert!(w.settle(Duration::from_secs(20)).is_some(), "pair formed");
        w.crash(1);
        let mut waited = Duration::ZERO;
        while w.node(0).unwrap().mesh().peers().count() > 0 && waited < Duration::from_secs(30) {
            w.run_for(Duration::from_millis(100));
            waited += Duration::from_millis(100);
        }
        let bound = if quiet { 15 } else { 6 };
        assert!(
            waited <= Duration::from_secs(bound),
            "quiet {quiet}: reported after {waited:?}"
        );
        if quiet {
            // Found by ICE, not by the silence rule (the quiet peer never pinged).
            assert!(waited > Duration::from_secs(6), "{waited:?}");
        }
    }
}

#[test]
fn a_datagram_path_that_dies_for_3_s_while_signalling_works_recovers_by_an_ice_restart() {
    path_dies_and_recovers(57, 3);
}

/// Down for 5 s: ICE finds the path again about when the restart's time is up, and
/// SCTP, whose retransmission timer backed off meanwhile (1, 2, 4 s), sends its next
/// retransmission only later. The restart is held while the path answers.
#[test]
fn a_datagram_path_that_dies_for_5_s_is_held_until_sctp_retransmits() {
    path_dies_and_recovers(59, 5);
}

fn path_dies_and_recovers(seed: u64, secs: u64) {
    use std::time::Duration;
    let mut w = clean_pair(seed);
    w.partition(0, 1, Duration::from_secs(secs));
    // Never reported gone: the link is held while its restart runs.
    for _ in 0..(secs * 10 + 100) {
        w.run_for(Duration::from_millis(100));
        for i in 0..2 {
            assert_eq!(w.node(i).unwrap().mesh().peers().count(), 1, "node {i}");
        }
    }
    for i in 0..2 {
        let n = w.node(i).unwrap();
        assert!(n.stats().restarts >= 1, "node {i}: {:?}", n.stats());
        assert_eq!(
            n.stats().restarts_recovered,
            n.stats().restarts,
            "node {i}: {:?}",
            n.stats()
        );
        let peer = n.mesh().peers().next().unwrap().0.to_owned();
        assert_eq!(
            n.mesh().link_info(&peer).unwrap().state,
            rtc_mesh_core::mesh::LinkState::Open
        );
    }
    w.write_value(0, "after", &rtc_mesh_core::Value::from(1.0));
    assert!(w.settle(Duration::from_secs(10)).is_some(), "converged");
}

#[test]
fn a_datagram_path_that_stays_dead_is_reported_within_7_s_and_relinked_after_it_heals() {
    use std::time::Duration;
    let mut w = clean_pair(58);
    w.partition(0, 1, Duration::from_secs(20));
    let mut waited = Duration::ZERO;
    while w.node(0).unwrap().mesh().peers().count() > 0 && waited < Duration::from_secs(20) {
        w.run_for(Duration::from_millis(100));
        waited += Duration::from_millis(100);
    }
    // Silent 2 s, the restart's SDP came back over signalling, 4 s more: given up.
    assert!(
        waited <= Duration::from_secs(7),
        "reported after {waited:?}"
    );
    assert!(
        waited >= Duration::from_secs(5),
        "the restart was tried: {waited:?}"
    );
    w.write_value(0, "after", &rtc_mesh_core::Value::from(1.0));
    assert!(
        w.settle(Duration::from_secs(60)).is_some(),
        "relinked and converged"
    );
}

/// Two nodes linked over a network that loses nothing, without injected faults.
fn clean_pair(seed: u64) -> rtc_mesh_sim::node_sim::NodeWorld {
    let mut cfg = NodeSimConfig::new(seed);
    cfg.peers = 2;
    cfg.faults = false;
    cfg.loss = 0.0;
    cfg.duplicate = 0.0;
    let mut w = rtc_mesh_sim::node_sim::NodeWorld::new(cfg);
    assert!(
        w.settle(std::time::Duration::from_secs(20)).is_some(),
        "pair formed"
    );
    w
}
