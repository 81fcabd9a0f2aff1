//! `rtc-mesh-sim`: runs the deterministic Mesh-level simulation.
//!
//! ```text
//! rtc-mesh-sim --seed S [--peers N]      replay one seed; exit 1 if an invariant fails
//! rtc-mesh-sim --seeds N [--peers P]     seeds 0..N with faults (CI runs a fixed list)
//! rtc-mesh-sim --scale [SIZES]           full meshes without faults (default 10,50,200)
//! rtc-mesh-sim --nodes N [--peers P]     Node-level seeds 0..N (real str0m, simulated UDP)
//! rtc-mesh-sim --node-seed S [--peers P] replay one Node-level seed; exit 1 if it fails
//! rtc-mesh-sim --node-scale P            one Node-level full mesh of P peers, measured
//! ```
//! Every run prints its seed, the faults it injected and a trace digest (the same seed
//! gives the same digest, at both levels).

use std::process::ExitCode;
use std::time::Instant;

use rtc_mesh_sim::mesh_sim::{run, SimConfig, SimReport};
use rtc_mesh_sim::node_sim::{run_nodes, NodeSimConfig};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn print(seed: u64, r: &SimReport) {
    let f = &r.faults;
    println!(
        "seed {seed}: {} | trace {:016x} | faults: drops {} delays {} partitions {} crashes {} restarts {} switchboard-restarts {} signal-drops {} signal-stalls {} signal-reorders {} early-sdp {} forgeries {} refused {} late {} revoked {} voided {} removed-signals {} rekeys {} epoch {} | settled {:.2} s",
        if r.failures.is_empty() { "ok" } else { "FAILED" },
        r.trace,
        f.drops,
        f.delays,
        f.partitions,
        f.crashes,
        f.restarts,
        f.switchboard_restarts,
        f.signal_drops,
        f.signal_stalls,
        f.signal_reorders,
        f.early_sdp,
        f.forgeries,
        r.refused,
        r.late,
        r.revoked,
        r.voided,
        r.removed_signals,
        r.rekeys,
        r.epoch,
        r.converge.as_secs_f64()
    );
    for e in &r.failures {
        println!("    {e}");
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut seed = None;
    let mut seeds = None;
    let mut peers = 6;
    let mut scale = None;
    let mut nodes = None;
    let mut node_scale = None;
    let mut node_seed = None;
    let mut byzantine = false;
    let mut removal = false;
    let mut power = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()),
            "--seeds" => seeds = args.next().and_then(|v| v.parse().ok()),
            "--nodes" => nodes = args.next().and_then(|v| v.parse::<u64>().ok()),
            "--node-seed" => node_seed = args.next().and_then(|v| v.parse::<u64>().ok()),
            "--node-scale" => node_scale = args.next().and_then(|v| v.parse::<usize>().ok()),
            "--peers" => peers = args.next().and_then(|v| v.parse().ok()).unwrap_or(6),
            "--byzantine" => byzantine = true,
            "--removal" => removal = true,
            "--power" => power = true,
            "--scale" => {
                scale = Some(
                    args.next()
                        .unwrap_or_else(|| "10,50,200".into())
                        .split(',')
                        .filter_map(|n| n.parse().ok())
                        .collect::<Vec<usize>>(),
                )
            }
            _ => {
                eprintln!(
                    "usage: rtc-mesh-sim (--seed S | --seeds N | --scale [N,N..] | --nodes N | --node-seed S | --node-scale P) [--peers N] [--byzantine] [--removal] [--power]"
                );
                return ExitCode::from(2);
            }
        }
    }
    if let Some(n) = node_scale {
        let mut cfg = NodeSimConfig::new(1);
        cfg.peers = n;
        cfg.faults = false;
        cfg.loss = 0.0;
        cfg.duplicate = 0.0;
        let t = Instant::now();
        let r = run_nodes(cfg);
        println!(
            "node mesh of {n}: formed in {:.2} s (simulated), {} datagrams; converged {:.2} s after the last write; wall {:.1} s, peak RSS {:.0} MiB{}",
            r.formed.map_or(f64::NAN, |d| d.as_secs_f64()),
            r.datagrams,
            r.converge.map_or(f64::NAN, |d| d.as_secs_f64()),
            t.elapsed().as_secs_f64(),
            peak_rss_mib(),
            if r.failures.is_empty() { String::new() } else { format!(" FAILED: {:?}", r.failures) }
        );
        return ExitCode::SUCCESS;
    }
    let node_seeds: Option<Vec<u64>> = node_seed
        .map(|s| vec![s])
        .or(nodes.map(|n| (0..n).collect()));
    if let Some(seeds) = node_seeds {
        let mut failed = Vec::new();
        for s in seeds {
            let mut cfg = NodeSimConfig::new(s);
            cfg.peers = if peers == 6 { 4 } else { peers };
            let r = run_nodes(cfg);
            println!(
                "node seed {s}: {} | trace {:016x} | faults: drops {} duplicates {} partitions {} crashes {} restarts {} switchboard-restarts {} | formed {:?} converged {:?}",
                if r.failures.is_empty() { "ok" } else { "FAILED" },
                r.trace,
                r.faults.drops,
                r.duplicates,
                r.faults.partitions,
                r.faults.crashes,
                r.faults.restarts,
                r.faults.switchboard_restarts,
                r.formed,
                r.converge
            );
            for e in &r.failures {
                println!("    {e}");
            }
            if !r.failures.is_empty() {
                failed.push(s);
            }
        }
        if failed.is_empty() {
            println!("all node seeds passed");
            return ExitCode::SUCCESS;
        }
        println!("failed node seeds: {failed:?}");
        return ExitCode::from(1);
    }
    if let Some(sizes) = scale {
        for n in sizes {
            let mut cfg = SimConfig::new(1);
            cfg.peers = n;
            cfg.faults = false;
            cfg.writes = 0;
            cfg.mixed_codecs = false;
            let t = Instant::now();
            let r = run(cfg);
            println!(
                "full mesh of {n:>3}: converged {:.3} s (simulated) after a burst of {n} writes; {:.1} messages and {:.0} bytes per update (N-1 = {}); wall {:.1} s, peak RSS {:.0} MiB{}",
                r.converge.as_secs_f64(),
                r.messages_per_update,
                r.bytes_per_update,
                n - 1,
                t.elapsed().as_secs_f64(),
                peak_rss_mib(),
                if r.failures.is_empty() { String::new() } else { format!(" FAILED: {:?}", r.failures) }
            );
        }
        return ExitCode::SUCCESS;
    }
    let list: Vec<u64> = match (seed, seeds) {
        (Some(s), _) => vec![s],
        (None, Some(n)) => (0..n).collect(),
        (None, None) => (0..20).collect(),
    };
    let mut failed = Vec::new();
    let mut totals = rtc_mesh_sim::mesh_sim::FaultCounts::default();
    for s in list {
        let mut cfg = SimConfig::new(s);
        cfg.peers = peers;
        if byzantine {
            // A secured room with a Byzantine member (peer 0).
            cfg.secret = Some("rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8".into());
            cfg.byzantine = true;
        }
        if removal {
            // A secured room whose admin (peer 1) removes peer 2 mid-storm.
            let plain = "rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
            cfg.secret = Some(rtc_mesh_sim::mesh_sim::removal_secret(s, plain));
            cfg.removal = true;
        }
        // Durable members at `power`, crashes being power losses.
        cfg.power = power;
        let r = run(cfg);
        print(s, &r);
        let f = &r.faults;
        totals.drops += f.drops;
        totals.delays += f.delays;
        totals.partitions += f.partitions;
        totals.crashes += f.crashes;
        totals.restarts += f.restarts;
        totals.switchboard_restarts += f.switchboard_restarts;
        totals.signal_drops += f.signal_drops;
        totals.early_sdp += f.early_sdp;
        totals.signal_stalls += f.signal_stalls;
        totals.signal_reorders += f.signal_reorders;
        totals.forgeries += f.forgeries;
        totals.acknowledged += f.acknowledged;
        totals.bytes_lost += f.bytes_lost;
        totals.snapshots += f.snapshots;
        totals.snapshot_starts += f.snapshot_starts;
        if !r.failures.is_empty() {
            failed.push(s);
        }
    }
    println!("faults in all: {totals:?}");
    if failed.is_empty() {
        println!("all seeds passed");
        ExitCode::SUCCESS
    } else {
        println!("failed seeds: {failed:?} (replay: rtc-mesh-sim --seed S --peers {peers})");
        ExitCode::from(1)
    }
}
