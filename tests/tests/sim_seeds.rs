//! The CI seed list of the Mesh-level simulation: every seed passes its invariants,
//! faults are really injected, and a seed replays identically.

use rtc_mesh_sim::mesh_sim::{run, SimConfig};

#[test]
fn the_ci_seed_list_passes_with_faults() {
    let mut failed = Vec::new();
    let mut faults = (0, 0, 0, 0, 0, 0, 0);
    for seed in 0..200 {
        let r = run(SimConfig::new(seed));
        if !r.failures.is_empty() {
            failed.push((seed, r.failures.clone()));
        }
        faults.0 += r.faults.drops;
        faults.1 += r.faults.partitions;
        faults.2 += r.faults.crashes;
        faults.3 += r.faults.switchboard_restarts;
        faults.4 += r.faults.signal_reorders;
        faults.5 += r.faults.early_sdp;
        faults.6 += r.faults.signal_drops;
    }
    assert!(
        failed.is_empty(),
        "failed seeds (replay with rtc-mesh-sim --seed S): {failed:?}"
    );
    assert!(
        faults.0 > 0
            && faults.1 > 0
            && faults.2 > 0
            && faults.3 > 0
            && faults.4 > 0
            && faults.5 > 0
            && faults.6 > 0,
        "{faults:?}"
    );
}

#[test]
fn a_seed_replays_identically() {
    let a = run(SimConfig::new(42));
    let b = run(SimConfig::new(42));
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.faults, b.faults);
    let c = run(SimConfig::new(43));
    assert_ne!(a.trace, c.trace);
}

/// At `power` on simulated disks (a crash is a power loss, several just after a write):
/// every acknowledged write is in the store that comes back and, at the end, everywhere.
/// The CI subset of the 10,000 seeds (`rtc-mesh-sim --seeds 10000 --power`).
#[test]
fn the_ci_seed_list_loses_no_acknowledged_write_at_power() {
    let mut failed = Vec::new();
    let (mut acked, mut lost, mut crashes) = (0, 0, 0);
    for seed in 0..300 {
        let mut cfg = SimConfig::new(seed);
        cfg.power = true;
        let r = run(cfg);
        if !r.failures.is_empty() {
            failed.push((seed, r.failures.clone()));
        }
        acked += r.faults.acknowledged;
        lost += r.faults.bytes_lost;
        crashes += r.faults.crashes;
    }
    assert!(
        failed.is_empty(),
        "failed seeds (replay with rtc-mesh-sim --power --seed S): {failed:?}"
    );
    // Power losses took unsynced bytes, and writes were acknowledged before them.
    assert!(
        acked > 0 && lost > 0 && crashes > 0,
        "{acked} {lost} {crashes}"
    );
}
