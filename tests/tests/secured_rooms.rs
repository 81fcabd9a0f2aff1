//! Secured rooms at Mesh level, in simulated worlds: members whose ids are their keys
//! meet through the switchboard with every signal sealed and signed, form the full
//! mesh and sync; with faults (crashes, partitions, switchboard restarts, lost and
//! reordered signals) the invariants hold as in open rooms, and nothing is refused.

use std::time::Duration;

use rtc_mesh_sim::mesh_sim::{run, SimConfig, World};

const SECRET: &str = "correct horse battery staple";

#[test]
fn secured_members_form_the_mesh_and_sync() {
    let mut cfg = SimConfig::new(11);
    cfg.peers = 5;
    cfg.faults = false;
    cfg.secret = Some(SECRET.into());
    let mut w = World::new(cfg);
    let t = w.run_until_true(Duration::from_secs(10), |w| w.is_converged());
    assert!(t.is_some(), "the mesh did not form");
    for i in 0..5 {
        w.write(i, &format!("k{i}"), i as f64);
    }
    w.run_for(Duration::from_secs(1));
    assert!(w.is_converged());
    for i in 0..5 {
        let m = w.mesh(i).unwrap();
        assert_eq!(m.peers().count(), 4, "peer {i}");
        let s = m.stats();
        assert_eq!(
            (
                s.unsecured_signals,
                s.unseal_failures,
                s.bad_signatures,
                s.stale_signals
            ),
            (0, 0, 0, 0),
            "peer {i}: {s:?}"
        );
        assert_eq!(m.replica().store().len(), 5);
    }
}

#[test]
fn secured_runs_with_faults_keep_every_invariant() {
    for seed in [21, 22, 23] {
        let mut cfg = SimConfig::new(seed);
        cfg.secret = Some("rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".into());
        let r = run(cfg);
        assert!(r.failures.is_empty(), "seed {seed}: {:?}", r.failures);
    }
}

/// A Byzantine member (peer 0) among honest ones, with the usual faults: it forges,
/// mutates, replays (also out of order: seeds 123 and 177 are where that would hide an
/// honest write without the late rule and the SUMS repair), writes unsigned, into
/// another's space and an hour ahead, and floods. The honest replicas stay equal, every
/// honest write is present (its own too), and every stored update is signed by its
/// writer.
#[test]
fn a_byzantine_member_changes_nothing_the_others_keep() {
    for seed in [31, 32, 33, 34, 123, 177] {
        let mut cfg = SimConfig::new(seed);
        cfg.secret = Some("rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".into());
        cfg.byzantine = true;
        let r = run(cfg);
        assert!(r.failures.is_empty(), "seed {seed}: {:?}", r.failures);
        assert!(r.faults.forgeries > 20, "seed {seed}: {:?}", r.faults);
        assert!(r.refused > 10, "seed {seed}: {} refused", r.refused);
    }
}

/// A member removed by the admin (peer 1 removes peer 2 halfway through) during a
/// write storm, with faults and peers 2 and 3 cut off from the rest around the
/// removal: every replica refuses the removed member's later writes, those that landed
/// before the removal arrived are voided, and the keys they had superseded get back
/// what they held (`WANT`); the others close their links to it and ignore its
/// announces and offers. The replicas end equal and no honest write is lost. (Seed 128
/// is where a replica whose clock of a writer stayed behind for good, a write of it
/// having been overwritten before it arrived, was never repaired while the `SUMS`
/// repair asked for equal clocks.)
#[test]
fn a_member_removed_during_a_write_storm_leaves_equal_replicas() {
    const PLAIN: &str = "rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let (mut revoked, mut voided, mut ignored) = (0, 0, 0);
    for seed in [41, 42, 43, 44, 128] {
        let mut cfg = SimConfig::new(seed);
        cfg.secret = Some(rtc_mesh_sim::mesh_sim::removal_secret(seed, PLAIN));
        cfg.removal = true;
        let r = run(cfg);
        assert!(r.failures.is_empty(), "seed {seed}: {:?}", r.failures);
        revoked += r.revoked;
        voided += r.voided;
        ignored += r.removed_signals;
    }
    assert!(revoked > 10, "{revoked} writes refused as revoked");
    assert!(voided > 0, "{voided} writes voided");
    // Cut off: the check says no one links with it; its signals were ignored.
    assert!(
        ignored > 0,
        "{ignored} signals of the removed member ignored"
    );
}

/// A removal moves the room to a new key epoch: the admin rotates at once, the line
/// reaches every other member over its links, and the removed member never has it. A
/// member that was down through the rotation comes back with the old key within the
/// grace period (the room still on the old tag), is answered under the old key and
/// takes the new one once its link opens. When the grace period ends, the room moves
/// to the new tag at the switchboard, and a member that comes back with the old key
/// finds no one there.
#[test]
fn a_removal_moves_the_room_to_a_key_the_removed_member_does_not_have() {
    const PLAIN: &str = "rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    let seed = 5;
    let mut cfg = SimConfig::new(seed);
    cfg.peers = 5;
    cfg.faults = false;
    cfg.secret = Some(rtc_mesh_sim::mesh_sim::removal_secret(seed, PLAIN));
    cfg.rekey_grace = Some(Duration::from_secs(60));
    let mut w = World::new(cfg);
    let t = w.run_until_true(Duration::from_secs(10), |w| w.is_converged());
    assert!(t.is_some(), "the mesh did not form");
    let old_tag = w.switchboard_room(0).expect("in the room");
    // Peer 4 is down through the rotation.
    w.crash(4);
    w.run_for(Duration::from_secs(1));
    w.remove(1, 2);
    let t = w.run_until_true(Duration::from_secs(5), |w| {
        [0, 1, 3].iter().all(|&i| w.mesh(i).unwrap().epoch() == 1)
    });
    assert!(t.is_some(), "the line did not reach every member");
    assert_eq!(
        w.mesh(2).unwrap().epoch(),
        0,
        "the removed member has the key"
    );
    for i in [0, 1, 3] {
        let m = w.mesh(i).unwrap();
        assert_eq!(m.stats().rekeys, 1, "peer {i}: {:?}", m.stats());
        assert_eq!(m.stats().rekeys_refused, 0);
        assert!(m
            .rekey_line()
            .is_some_and(|l| l.starts_with("REKEY {\"epoch\":1,")));
        // The grace period: the room stays on the old tag.
        assert_eq!(w.switchboard_room(i).as_deref(), Some(&*old_tag));
    }
    // Back within the grace period, with the old key (and no state): answered under
    // it, handed the line, in the room again.
    w.restart(4);
    let t = w.run_until_true(Duration::from_secs(10), |w| {
        w.mesh(4).is_some_and(|m| m.epoch() == 1) && w.is_converged()
    });
    assert!(t.is_some(), "the returning member did not take the new key");
    assert_eq!(w.mesh(4).unwrap().peers().count(), 3);
    assert!(w.failures().is_empty(), "{:?}", w.failures());
    // The grace period ends: every member announces on the new tag.
    w.run_for(Duration::from_secs(61));
    let new_tag = w.switchboard_room(0).expect("in the room");
    assert_ne!(new_tag, old_tag);
    for i in [1, 3, 4] {
        assert_eq!(
            w.switchboard_room(i).as_deref(),
            Some(&*new_tag),
            "peer {i}"
        );
    }
    assert!(w.is_converged(), "{:?}", w.failures());
    // A member back with the old key now finds no one.
    w.crash(3);
    w.run_for(Duration::from_secs(1));
    w.restart(3);
    w.run_for(Duration::from_secs(10));
    let m = w.mesh(3).unwrap();
    assert_eq!((m.epoch(), m.peers().count()), (0, 0));
    assert_eq!(w.switchboard_room(3).as_deref(), Some(&*old_tag));
}
