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
