//! Node peers behind simulated NATs (RFC 4787 mapping × filtering) with a simulated
//! STUN/TURN server (`turn-server-proto`, `rtc_mesh_sim::net`): every pair of NAT
//! types links, on the path ICE can find (direct where hole punching works, else
//! through the relay); without TURN, the pairs that need a relay do not link; a
//! relayed link outlives hours of allocation, permission and channel refreshes.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc_mesh_core::mesh::MeshEvent;
use rtc_mesh_core::node::{CandidateType, LinkPath, NodeEvent};
use rtc_mesh_sim::net::{Filtering, Mapping, Nat, NatType};
use rtc_mesh_sim::node_sim::{NetConfig, NodeSimConfig, NodeWorld, SERVER};

fn world(seed: u64, nats: [Option<NatType>; 2], turn: bool) -> NodeWorld {
    world_with(seed, nats, turn, false)
}

fn world_with(seed: u64, nats: [Option<NatType>; 2], turn: bool, relay_only: bool) -> NodeWorld {
    let mut cfg = NodeSimConfig::new(seed);
    cfg.peers = 2;
    cfg.faults = false;
    cfg.loss = 0.01;
    cfg.duplicate = 0.005;
    cfg.net = Some(NetConfig {
        nats: nats.to_vec(),
        stun: true,
        turn,
        relay_only,
    });
    NodeWorld::new(cfg)
}

fn path(w: &NodeWorld, i: usize) -> Option<LinkPath> {
    w.node(i)?.link_path(&format!("n{:03}", 1 - i))
}

fn relayed(p: &LinkPath) -> bool {
    p.local.kind == CandidateType::Relay || p.remote.kind == CandidateType::Relay
}

/// Whether ICE's connectivity checks can find a direct path between a peer behind a
/// NAT of type `a` and one behind `b`, each knowing the other's server-reflexive
/// address: checks go to every known remote address, each request that a NAT lets
/// in makes its source a peer-reflexive candidate of the receiver (checked in turn),
/// and a check succeeds when its response passes the sender's NAT. The response may
/// come from another port than the request went to: str0m matches responses by
/// transaction id alone (RFC 8445 section 7.2.5.2.1 asks for symmetric addresses;
/// browsers are as lenient). Computed on the same NAT model, independently of
/// str0m, to a fixpoint (bounded: a symmetric NAT makes a new port per check).
fn direct_possible(a: NatType, b: NatType) -> bool {
    let now = Instant::now();
    let host = [
        SocketAddr::from(([10, 0, 0, 2], 5000)),
        SocketAddr::from(([10, 0, 1, 2], 5000)),
    ];
    let mut nat = [
        Nat::new([198, 51, 100, 10].into(), a),
        Nat::new([198, 51, 100, 11].into(), b),
    ];
    let srflx = [
        nat[0].outbound(now, host[0], SERVER),
        nat[1].outbound(now, host[1], SERVER),
    ];
    let mut known: [BTreeSet<SocketAddr>; 2] =
        [BTreeSet::from([srflx[1]]), BTreeSet::from([srflx[0]])];
    for _round in 0..8 {
        for x in 0..2 {
            let y = 1 - x;
            for r in known[x].clone() {
                let from = nat[x].outbound(now, host[x], r);
                if nat[y].inbound(now, from, r.port()).is_none() {
                    continue;
                }
                known[y].insert(from);
                let answer = nat[y].outbound(now, host[y], from);
                if nat[x].inbound(now, answer, from.port()).is_some() {
                    return true;
                }
            }
        }
    }
    false
}

fn all_types() -> Vec<NatType> {
    Mapping::ALL
        .iter()
        .flat_map(|&m| Filtering::ALL.iter().map(move |&f| NatType::new(m, f)))
        .collect()
}

fn short(t: NatType) -> String {
    let m = ["EIM", "ADM", "APDM"][t.mapping as usize];
    let f = ["EIF", "ADF", "APDF"][t.filtering as usize];
    format!("{m}/{f}")
}

#[test]
fn the_oracle_knows_the_classic_cases() {
    let t = |m, f| NatType::new(m, f);
    use Filtering as F;
    use Mapping as M;
    let full_cone = t(M::EndpointIndependent, F::EndpointIndependent);
    let port_restricted = t(M::EndpointIndependent, F::AddressAndPortDependent);
    let symmetric = t(M::AddressAndPortDependent, F::AddressAndPortDependent);
    assert!(direct_possible(port_restricted, port_restricted));
    assert!(direct_possible(full_cone, symmetric));
    assert!(!direct_possible(port_restricted, symmetric));
    assert!(!direct_possible(symmetric, symmetric));
}

/// Every pair of the nine NAT types (81, over three seeds): with STUN and TURN the
/// pair links and syncs, directly exactly where [`direct_possible`] says so, else
/// through the relay; both ends agree.
#[test]
fn every_mapping_and_filtering_pair_links_on_the_expected_path() {
    let types = all_types();
    let mut direct = 0;
    let mut failures = Vec::new();
    for (k, (&a, &b)) in types
        .iter()
        .flat_map(|a| types.iter().map(move |b| (a, b)))
        .enumerate()
    {
        let seed = 1 + k as u64 % 3;
        let expect_direct = direct_possible(a, b);
        direct += expect_direct as usize;
        let mut w = world(seed, [Some(a), Some(b)], true);
        let formed = w.settle(Duration::from_secs(20));
        // Let ICE finish its checks and settle on its best pair.
        w.run_for(Duration::from_secs(5));
        w.write_value(0, "after", &"settled".into());
        let synced = w.settle(Duration::from_secs(5));
        let (p0, p1) = (path(&w, 0), path(&w, 1));
        let got = match (&p0, &p1) {
            (Some(p0), Some(p1)) if relayed(p0) == relayed(p1) => Some(!relayed(p0)),
            _ => None,
        };
        if formed.is_none() || synced.is_none() || got != Some(expect_direct) {
            failures.push(format!(
                "{} × {} (seed {seed}): formed {formed:?}, synced {synced:?}, direct expected \
                 {expect_direct}, paths {p0:?} / {p1:?}",
                short(a),
                short(b)
            ));
        }
        assert!(w.failures().is_empty(), "{:?}", w.failures());
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Both outcomes are covered.
    assert!(direct > 0 && direct < 81, "{direct} of 81 direct");
}

/// With STUN alone, the pairs that need a relay never link, and the others link
/// directly as before.
#[test]
fn without_turn_exactly_the_pairs_that_need_a_relay_stay_apart() {
    let types = all_types();
    let mut failures = Vec::new();
    for (k, (&a, &b)) in types
        .iter()
        .flat_map(|a| types.iter().map(move |b| (a, b)))
        .enumerate()
    {
        let seed = 11 + k as u64 % 3;
        let expect = direct_possible(a, b);
        let mut w = world(seed, [Some(a), Some(b)], false);
        let formed = w.settle(Duration::from_secs(20)).is_some();
        if formed != expect {
            failures.push(format!(
                "{} × {} (seed {seed}): linked {formed}, expected {expect}",
                short(a),
                short(b)
            ));
        }
        if !expect {
            assert_eq!(w.server().unwrap().allocations, 0);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Two peers behind symmetric NATs (30 s mapping timeout) on a relayed link for four
/// simulated hours, one write every ten minutes: every write arrives within 2 s, the
/// link never drops, and the two allocations made at the start are the only ones
/// (refreshed, with their permissions and channels, and the server's nonce renewed
/// every hour, all along). Without loss, not even an ICE restart happens; with 1%
/// loss on every hop, at most a restart now and then (two consent checks lost in a
/// row over the four hops of a relayed round trip), never a leave.
#[test]
fn a_relayed_link_survives_four_hours_of_refreshes() {
    for loss in [0.0, 0.01] {
        let r = four_hours(loss);
        assert_eq!(r.leaves, 0, "loss {loss}");
        if loss == 0.0 {
            assert_eq!(r.restarts, 0);
        } else {
            assert!(r.restarts <= 4, "{} restarts in four hours", r.restarts);
        }
    }
}

struct FourHours {
    restarts: u64,
    leaves: usize,
}

fn four_hours(loss: f64) -> FourHours {
    let sym = NatType::new(
        Mapping::AddressAndPortDependent,
        Filtering::AddressAndPortDependent,
    );
    let mut cfg = NodeSimConfig::new(7);
    cfg.peers = 2;
    cfg.faults = false;
    cfg.loss = loss;
    cfg.duplicate = 0.0;
    cfg.net = Some(NetConfig {
        nats: vec![Some(sym), Some(sym)],
        stun: true,
        turn: true,
        relay_only: false,
    });
    let mut w = NodeWorld::new(cfg);
    w.settle(Duration::from_secs(20)).expect("linked");
    w.keep_events();
    let start = path(&w, 0).expect("a path");
    assert!(relayed(&start), "{start:?}");
    let allocations = w.server().unwrap().allocations;
    assert_eq!(allocations, 2);
    for k in 0..24 {
        w.run_for(Duration::from_secs(600));
        let writer = k % 2;
        w.write_value(writer, &format!("k{k}"), &(k as f64).into());
        let took = w.settle(Duration::from_secs(2));
        assert!(
            took.is_some(),
            "write {k} at {:?} did not arrive",
            w.elapsed()
        );
    }
    assert!(w.elapsed() >= Duration::from_secs(4 * 3600));
    // ICE may move between the relayed pairs (they are all valid), never off them.
    assert!(path(&w, 0).is_some_and(|p| relayed(&p)));
    assert_eq!(w.server().unwrap().allocations, allocations);
    let mut restarts = 0;
    for i in 0..2 {
        let n = w.node(i).unwrap();
        restarts += n.stats().restarts;
        assert_eq!(n.mesh().replica().links().count(), 1);
    }
    assert!(w.failures().is_empty(), "{:?}", w.failures());
    let leaves = w
        .events()
        .iter()
        .filter(|(_, _, e)| matches!(e, NodeEvent::Mesh(MeshEvent::PeerLeft { .. })))
        .count();
    FourHours { restarts, leaves }
}

/// A NAT that forgets its mappings under a live link (a new external port from then
/// on): the link recovers within 10 s, by an ICE restart where its path went through
/// the lost mapping, without a leave. On a relay-only link the node's own allocation
/// belonged to the old mapping: a probe finds that out and a new one replaces it.
#[test]
fn a_flushed_nat_under_a_live_link_recovers() {
    let cone = NatType::new(
        Mapping::EndpointIndependent,
        Filtering::AddressAndPortDependent,
    );
    let sym = NatType::new(
        Mapping::AddressAndPortDependent,
        Filtering::AddressAndPortDependent,
    );
    for (ty, relay_only) in [(cone, false), (sym, false), (sym, true)] {
        let mut w = world_with(3, [Some(ty), Some(ty)], true, relay_only);
        w.settle(Duration::from_secs(20)).expect("linked");
        w.run_for(Duration::from_secs(5));
        let before = path(&w, 0).expect("a path");
        w.flush_nat(0);
        w.write_value(0, "after-flush", &"v".into());
        let took = w.settle(Duration::from_secs(10));
        let name = format!(
            "{}{}",
            short(ty),
            if relay_only { " relay-only" } else { "" }
        );
        assert!(took.is_some(), "{name}: not recovered");
        let after = path(&w, 0).expect("a path");
        let n = w.node(0).unwrap();
        assert_eq!(n.mesh().replica().links().count(), 1, "{name}");
        if relay_only {
            assert_ne!(
                after.local.addr, before.local.addr,
                "{name}: a new relayed address"
            );
            assert_eq!(w.server().unwrap().allocations, 3, "{name}");
        }
        assert!(w.failures().is_empty(), "{name}: {:?}", w.failures());
    }
}

/// A NAT that drops everything for 3 s but keeps its mappings: the relay-only link
/// recovers, and the probe of each allocation is refused (437, still ours), so the
/// two allocations stay the only ones and the relayed addresses do not change.
#[test]
fn a_relay_whose_mapping_survived_an_outage_is_kept() {
    let sym = NatType::new(
        Mapping::AddressAndPortDependent,
        Filtering::AddressAndPortDependent,
    );
    let mut w = world_with(5, [Some(sym), Some(sym)], true, true);
    w.settle(Duration::from_secs(20)).expect("linked");
    let before = path(&w, 0).expect("a path");
    w.nat_down(0, Duration::from_secs(3));
    w.run_for(Duration::from_secs(3));
    w.write_value(1, "after-outage", &"v".into());
    let took = w.settle(Duration::from_secs(10));
    assert!(took.is_some(), "not recovered");
    assert!(w.node(0).unwrap().stats().restarts >= 1);
    assert_eq!(path(&w, 0).map(|p| p.local), Some(before.local));
    assert_eq!(w.server().unwrap().allocations, 2);
    assert!(w.failures().is_empty(), "{:?}", w.failures());
}
