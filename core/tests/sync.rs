//! Sync sessions between replicas over in-memory links: no echo, forwarding across
//! links, reconnection deltas.

use std::time::{Duration, Instant};

mod common;

use common::wires::{connect, run, Wire};
use rtc_mesh_core::{
    Codec, Framing, LinkId, Replica, ReplicaEvent, ReplicaOutput, Store, StoreConfig, Value,
};

const EPOCH: f64 = 1_795_713_876_272.0;

fn replica(id: &str, t0: Instant) -> Replica {
    Replica::new(Store::new(StoreConfig::new(id, EPOCH, t0)).unwrap())
}

fn updates_out(r: &Replica, l: LinkId) -> u64 {
    r.link_stats(l).unwrap().updates_out
}

#[test]
fn no_update_is_echoed_to_its_sender() {
    for codec in [Codec::Json, Codec::Postcard] {
        let t0 = Instant::now();
        let mut a = replica("a", t0);
        let mut b = replica("b", t0);
        a.set(t0, "pre", &1.0.into()).unwrap();
        let w = connect(&mut a, &mut b, codec);
        run(&mut [&mut a, &mut b], &[(0, 1, &w)], t0);
        a.set(t0, "live", &2.0.into()).unwrap();
        let (_, events) = run(&mut [&mut a, &mut b], &[(0, 1, &w)], t0);
        assert_eq!(b.store().get("live"), Some(2.0.into()));
        // a sent its two writes once; b sent nothing back.
        assert_eq!(updates_out(&a, w.a), 2);
        assert_eq!(updates_out(&b, w.b), 0);
        assert!(events[1]
            .iter()
            .any(|e| matches!(e, ReplicaEvent::Update(u) if &*u.key == "live" && !u.local)));
    }
}

#[test]
fn updates_cross_a_chain_and_reach_everyone() {
    let t0 = Instant::now();
    let (mut a, mut b, mut c) = (replica("a", t0), replica("b", t0), replica("c", t0));
    let ab = connect(&mut a, &mut b, Codec::Postcard);
    let bc = connect(&mut b, &mut c, Codec::Json);
    a.set(t0, "from-a", &"x".into()).unwrap();
    c.set(t0, "from-c", &"y".into()).unwrap();
    let (_, events) = run(
        &mut [&mut a, &mut b, &mut c],
        &[(0, 1, &ab), (1, 2, &bc)],
        t0,
    );
    for r in [&a, &b, &c] {
        assert_eq!(r.store().len(), 2, "{}", r.store().id());
    }
    // b reports all its links synced.
    assert!(events[1]
        .iter()
        .any(|e| matches!(e, ReplicaEvent::SyncedAll { peers } if peers.len() == 2)));
    // b forwarded a's write to c only, and c's to a only.
    assert_eq!(updates_out(&b, ab.b), 1);
    assert_eq!(updates_out(&b, bc.a), 1);
}

#[test]
fn concurrent_writes_converge_on_the_larger_timestamp_and_source() {
    let t0 = Instant::now();
    let mut a = replica("a", t0);
    let mut b = replica("b", t0);
    a.set(t0, "k", &"from-a".into()).unwrap();
    b.set(t0, "k", &"from-b".into()).unwrap();
    let w = connect(&mut a, &mut b, Codec::Json);
    run(&mut [&mut a, &mut b], &[(0, 1, &w)], t0);
    // Same wall clock, same timestamp: "b" > "a" wins on both.
    assert_eq!(a.store().get("k"), Some("from-b".into()));
    assert_eq!(b.store().get("k"), Some("from-b".into()));
}

#[test]
fn reconnecting_moves_only_the_delta() {
    for codec in [Codec::Json, Codec::Postcard] {
        let t0 = Instant::now();
        let mut a = replica("aaaaaaaaaaaaaaaa", t0);
        let mut b = replica("bbbbbbbbbbbbbbbb", t0);
        let n = 10_000;
        for i in 0..n {
            let v = Value::from_json(&format!(r#"{{"n":{i},"s":"v{i}"}}"#)).unwrap();
            a.set(t0, &format!("key-{i:010}"), &v).unwrap();
        }
        let w = connect(&mut a, &mut b, codec);
        let (full, _) = run(&mut [&mut a, &mut b], &[(0, 1, &w)], t0);
        let full = full[0].0 + full[0].1;
        assert_eq!(b.store().len(), n);
        a.close_link(w.a);
        b.close_link(w.b);

        // 1% of the keys change while apart, half on each side.
        let t1 = t0 + Duration::from_millis(5);
        for i in (0..n).step_by(100) {
            let r = if i % 200 == 0 { &mut a } else { &mut b };
            r.set(t1, &format!("key-{i:010}"), &Value::from(i as f64))
                .unwrap();
        }
        let w = connect(&mut a, &mut b, codec);
        let (delta, _) = run(&mut [&mut a, &mut b], &[(0, 1, &w)], t1);
        let delta = delta[0].0 + delta[0].1;
        assert_eq!(a.store().dump(), b.store().dump());
        assert!(
            delta * 50 <= full,
            "{codec}: delta {delta} bytes is more than 2% of the full sync's {full}"
        );
    }
}

#[test]
fn a_bad_message_changes_nothing_and_the_link_goes_on() {
    let t0 = Instant::now();
    let mut a = replica("a", t0);
    let l = a.open_link(Codec::Json, Framing::Stream);
    while !matches!(a.poll_output(), ReplicaOutput::Timeout(_)) {}
    a.handle_input(t0, l,
        b"{\"id\":\"P\",\"clock\":{}}\n[null,1795713876272,\"P\"]\n[[\"ok\",1],1795713876273,\"P\"]\n");
    let mut errors = 0;
    loop {
        match a.poll_output() {
            ReplicaOutput::Event(ReplicaEvent::LinkError { .. }) => errors += 1,
            ReplicaOutput::Timeout(_) => break,
            _ => {}
        }
    }
    assert_eq!(errors, 1);
    // The rejected update did not advance P's clock, so the next one applied.
    assert_eq!(a.store().get("ok"), Some(1.0.into()));
    assert_eq!(a.store().clock().get("P"), Some(1795713876273.0));
}

#[test]
fn writes_made_while_the_history_streams_keep_each_sources_order() {
    let t0 = Instant::now();
    let mut a = replica("a", t0);
    let mut b = replica("b", t0);
    let n = 20_000;
    for i in 0..n {
        a.set(t0, &format!("k{i:06}"), &Value::from(i as f64))
            .unwrap();
    }
    let w = connect(&mut a, &mut b, Codec::Postcard);
    // b's digest reaches a; a starts streaming its history.
    loop {
        match b.poll_output() {
            ReplicaOutput::Transmit(_, d) => a.handle_input(t0, w.a, &d),
            ReplicaOutput::Event(_) => {}
            ReplicaOutput::Timeout(_) => break,
        }
    }
    // Deliver only the first few chunks, then write: keys early and late in the
    // history being sent, and a new key.
    for _ in 0..3 {
        if let ReplicaOutput::Transmit(_, d) = a.poll_output() {
            b.handle_input(t0, w.b, &d);
        }
    }
    assert!(a.session(w.a).unwrap().is_sending_history());
    let t1 = t0 + Duration::from_millis(3);
    a.set(t1, "k000001", &"early, rewritten".into()).unwrap();
    a.set(t1, &format!("k{:06}", n - 1), &"late, rewritten".into())
        .unwrap();
    a.set(t1, "new", &"new".into()).unwrap();
    run(&mut [&mut a, &mut b], &[(0, 1, &w)], t1);
    assert_eq!(a.store().dump(), b.store().dump());
    assert_eq!(b.store().len(), n + 1);
    // Nothing arrived out of its source's order.
    assert_eq!(b.store().stats().stale, 0);
    assert!(b.session(w.b).unwrap().is_synced());
}

#[test]
fn digests_naming_unknown_sources_do_not_grow_the_store() {
    let t0 = Instant::now();
    let mut a = replica("a", t0);
    let l = a.open_link(Codec::Json, Framing::Stream);
    while !matches!(a.poll_output(), ReplicaOutput::Timeout(_)) {}
    let clock: Vec<String> = (0..1000).map(|i| format!("\"s{i}\":1")).collect();
    let digest = format!("{{\"id\":\"p\",\"clock\":{{{}}}}}\n", clock.join(","));
    for _ in 0..3 {
        a.handle_input(t0, l, digest.as_bytes());
    }
    while !matches!(a.poll_output(), ReplicaOutput::Timeout(_)) {}
    assert_eq!(a.store().clock().len(), 0);
}

/// All updates encoded on every link of every replica.
fn total_updates_out(reps: &[&mut Replica]) -> u64 {
    reps.iter()
        .map(|r| r.links().map(|l| updates_out(r, l)).sum::<u64>())
        .sum()
}

#[test]
fn a_write_in_a_healthy_full_mesh_costs_n_minus_1_messages() {
    for codec in [Codec::Json, Codec::Postcard] {
        let t0 = Instant::now();
        let n = 5;
        let mut reps: Vec<Replica> = (0..n).map(|i| replica(&format!("p{i}"), t0)).collect();
        let mut wires = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                let (x, y) = reps.split_at_mut(j);
                wires.push((i, j, connect(&mut x[i], &mut y[0], codec)));
            }
        }
        let wref: Vec<(usize, usize, &Wire)> = wires.iter().map(|(i, j, w)| (*i, *j, w)).collect();
        let mut refs: Vec<&mut Replica> = reps.iter_mut().collect();
        run(&mut refs, &wref, t0);
        let before = total_updates_out(&refs);
        for k in 0..10 {
            let t = t0 + Duration::from_millis(k);
            refs[(k % 5) as usize]
                .set(t, &format!("k{k}"), &Value::from(k as f64))
                .unwrap();
            run(&mut refs, &wref, t);
        }
        assert_eq!(
            total_updates_out(&refs) - before,
            10 * (n as u64 - 1),
            "{codec:?}"
        );
        let dump = refs[0].store().dump();
        assert!(refs.iter().all(|r| r.store().dump() == dump));
    }
}

#[test]
fn a_peer_that_loses_its_link_to_a_writer_still_gets_its_writes() {
    // Triangle a-b-c; the a-c link goes away: c gets a's writes through b, including
    // one made just before the link closed, whose bytes to c were lost.
    let t0 = Instant::now();
    let (mut a, mut b, mut c) = (replica("a", t0), replica("b", t0), replica("c", t0));
    let ab = connect(&mut a, &mut b, Codec::Postcard);
    let bc = connect(&mut b, &mut c, Codec::Postcard);
    let ac = connect(&mut a, &mut c, Codec::Postcard);
    run(
        &mut [&mut a, &mut b, &mut c],
        &[(0, 1, &ab), (1, 2, &bc), (0, 2, &ac)],
        t0,
    );
    // A write whose copy to c is lost with the link.
    a.set(t0, "lost", &1.0.into()).unwrap();
    run(
        &mut [&mut a, &mut b, &mut c],
        &[(0, 1, &ab), (1, 2, &bc)],
        t0,
    );
    loop {
        match a.poll_output() {
            ReplicaOutput::Timeout(_) => break,
            _ => continue,
        }
    }
    assert_eq!(
        c.store().get("lost"),
        None,
        "b did not forward: c hears a directly"
    );
    a.close_link(ac.a);
    c.close_link(ac.b);
    run(
        &mut [&mut a, &mut b, &mut c],
        &[(0, 1, &ab), (1, 2, &bc)],
        t0,
    );
    assert_eq!(c.store().get("lost"), Some(1.0.into()));
    let t1 = t0 + Duration::from_millis(5);
    a.set(t1, "later", &2.0.into()).unwrap();
    run(
        &mut [&mut a, &mut b, &mut c],
        &[(0, 1, &ab), (1, 2, &bc)],
        t1,
    );
    assert_eq!(c.store().get("later"), Some(2.0.into()));
}
