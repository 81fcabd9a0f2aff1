//! The simulator finds real bugs: each variant of core built with one planted bug
//! (a test-only cargo feature of rtc-mesh-core) fails the CI seed list.
//!
//! Planted, and caught:
//! - `bug-tie-by-arrival`: equal timestamps resolved by arrival order (replicas diverge);
//! - `bug-echo`: an update sent back on the link it came from (more than N-1 messages
//!   per write in a healthy mesh);
//! - `bug-drop-early-sdp`: SDP that precedes its sender's announce dropped. The
//!   Mesh-level network has relays that let a later direct (`/to`) message overtake an
//!   earlier one, so an offer can arrive before the offerer's direct announce; dropped,
//!   the offerer waits out its negotiation timeout with no fault to excuse it, and the
//!   link is missing from the healthy mesh (more than N-1 messages per write);
//! - `bug-block-returning`: a peer that comes back with a new incarnation is ignored
//!   (it never links again);
//! - `bug-drop-on-full`: a frame dropped when str0m's send buffer is full (writes go
//!   missing; Node level);
//! - `bug-skip-update-check`: a secured store applies updates without checking their
//!   signatures and write rules (the Byzantine member's forgeries land);
//! - `bug-trust-source-clock`: a secured store takes an update below its writer's clock
//!   as stale and never compares sums, as scuttlebutt's clocks do (a Byzantine member
//!   that replays a writer's later update ahead of its earlier ones hides those where
//!   they had not arrived: honest writes go missing);
//! - `bug-no-want`: a replica that voids a removed member's writes does not ask its
//!   links for those keys (what the writes had superseded stays lost where no later
//!   write came: honest writes go missing);
//! - `bug-keep-removed`: the mesh keeps its link to a removed member (it is still
//!   someone's peer at the end);
//! - `bug-no-rekey`: no member rotates the room's key after a removal (the room stays
//!   in key epoch 0, which the removed member has);
//! - `bug-ack-before-sync`: a durable member gives its outputs, a local write's
//!   acknowledgement among them, before its disk reports the change synced (a power
//!   loss then takes acknowledged writes).

use std::path::PathBuf;
use std::process::Command;

fn target_dir() -> PathBuf {
    // .../target/<profile>/deps/planted_bugs-xxxx -> .../target
    let exe = std::env::current_exe().expect("own path");
    exe.ancestors().nth(3).expect("target dir").to_path_buf()
}

/// Builds the simulator with `feature` and runs it with `args`; returns its exit code.
fn run_with_bug(feature: &str, args: &[&str]) -> i32 {
    // The workspace's own target folder: only core and the simulator are rebuilt
    // (their artifacts for each feature set live side by side).
    let target = target_dir();
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "-p",
            "rtc-mesh-sim",
            "--bin",
            "rtc-mesh-sim",
            "--features",
        ])
        .arg(format!("rtc-mesh-core/{feature}"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building with {feature} failed");
    let out = Command::new(target.join("debug").join("rtc-mesh-sim"))
        .args(args)
        .output()
        .expect("run the simulator");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{feature}: {}", text.lines().last().unwrap_or(""));
    out.status.code().unwrap_or(-1)
}

#[test]
fn the_seed_lists_fail_on_every_planted_bug() {
    for (feature, args) in [
        ("bug-tie-by-arrival", &["--seeds", "200"][..]),
        ("bug-echo", &["--seeds", "200"][..]),
        ("bug-drop-early-sdp", &["--seeds", "200"][..]),
        ("bug-block-returning", &["--seeds", "200"][..]),
        ("bug-drop-on-full", &["--nodes", "20"][..]),
        (
            "bug-skip-update-check",
            &["--seeds", "4", "--byzantine"][..],
        ),
        (
            "bug-trust-source-clock",
            &["--seeds", "180", "--byzantine"][..],
        ),
        ("bug-no-want", &["--seeds", "4", "--removal"][..]),
        ("bug-keep-removed", &["--seeds", "4", "--removal"][..]),
        ("bug-no-rekey", &["--seeds", "4", "--removal"][..]),
        ("bug-ack-before-sync", &["--seeds", "20", "--power"][..]),
    ] {
        assert_eq!(run_with_bug(feature, args), 1, "{feature} was not caught");
    }
}
