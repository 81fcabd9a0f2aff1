//! Real networks, measured in the NAT test bed of `cli/tests/nat.rs` (network
//! namespaces, nftables routers, Debian's coturn; run as root):
//!
//! - join until synced, for each NAT case: two `rtc-mesh join` peers each behind its
//!   own router, the time from starting the second until both report `synced`;
//! - small updates (100-byte values) and bulk (10 KiB values) from one peer to the
//!   other, over a direct (server-reflexive) link and over a relayed one, in the same
//!   run: updates per second and MB/s end to end, until the last one arrives;
//! - keep-alives: UDP datagrams per second through one router for an idle link (no
//!   writes), counted by nftables, each way together.
//!
//! ```text
//! cargo bench -p rtc-mesh --bench nat -- [--repeat N] [--small N] [--bulk N]
//! ```

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::bed::{join, TURN};
use common::coturn::Coturn;
use common::netns::{NatBed, Netns};
use common::Peer;
use serde_json::json;

struct Case {
    name: &'static str,
    symmetric: bool,
    args: Vec<&'static str>,
}

fn cases() -> Vec<Case> {
    let mut relay_only = TURN.to_vec();
    relay_only.push("--relay-only");
    vec![
        Case {
            name: "cone NATs, STUN (srflx-srflx)",
            symmetric: false,
            args: vec!["--stun", "198.51.100.1:3478"],
        },
        Case {
            name: "symmetric NATs, TURN (through the relay)",
            symmetric: true,
            args: TURN.to_vec(),
        },
        Case {
            name: "symmetric NATs, TURN, --relay-only",
            symmetric: true,
            args: relay_only,
        },
    ]
}

/// One bed per case, its coturn and switchboard.
struct Bed {
    bed: NatBed,
    _coturn: Coturn,
    _serve: Peer,
}

fn bed(prefix: &str, symmetric: bool) -> Bed {
    let (bed, coturn, serve) = common::bed::start(prefix, symmetric);
    Bed {
        bed,
        _coturn: coturn,
        _serve: serve,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Writes `n` values of `size` bytes from `a`; the seconds until `b` has the last.
fn transfer(a: &mut Peer, b: &mut Peer, tag: &str, n: usize, size: usize) -> f64 {
    let value = "x".repeat(size);
    let t0 = Instant::now();
    for i in 0..n {
        a.send(json!({"op":"set","key":format!("{tag}{i}"),"value":value}));
    }
    b.wait_update(&format!("{tag}{}", n - 1), &json!(value));
    t0.elapsed().as_secs_f64()
}

/// UDP datagrams per second forwarded by `router` over `secs` seconds.
fn datagrams_per_sec(router: &Netns, secs: u64) -> f64 {
    router.nft(
        "table ip count {
  chain forward {
    type filter hook forward priority filter - 20; policy accept;
    meta l4proto udp counter
  }
}
",
    );
    let read = || {
        let out = router
            .command("nft")
            .args(["list", "table", "ip", "count"])
            .output()
            .expect("nft");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let packets = text
            .split("packets ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse::<f64>().ok())
            .expect("an nft counter");
        packets
    };
    let before = read();
    std::thread::sleep(Duration::from_secs(secs));
    let after = read();
    router.nft("delete table ip count\n");
    (after - before) / secs as f64
}

fn main() {
    let mut repeat = 3;
    let mut small = 20_000;
    let mut bulk = 2_000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = || args.next().and_then(|v| v.parse().ok()).expect("a number");
        match a.as_str() {
            "--repeat" => repeat = num(),
            "--small" => small = num(),
            "--bulk" => bulk = num(),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    println!("NAT test bed: two peers, each behind its own router; coturn and the switchboard on the \"internet\"");
    for (i, case) in cases().into_iter().enumerate() {
        let b = bed(&format!("rmbench{i}"), case.symmetric);
        let mut joins = Vec::new();
        let mut last = None;
        for r in 0..repeat {
            let room = format!("r{r}");
            let mut a = join(&b.bed.peer_a, &room, &format!("a{r}"), &case.args);
            a.wait_event("ready");
            let t0 = Instant::now();
            let mut p = join(&b.bed.peer_b, &room, &format!("b{r}"), &case.args);
            a.wait_event("synced");
            p.wait_event("synced");
            joins.push(t0.elapsed().as_secs_f64() * 1000.0);
            if let Some((x, y)) = last.replace((a, p)) {
                let (x, y): (Peer, Peer) = (x, y);
                x.close();
                y.close();
            }
        }
        let (mut a, mut p) = last.expect("a pair");
        a.send(json!({"op":"peers"}));
        let path = a.wait_event("peers")["peers"][0]["path"].clone();
        println!("\n{}: path {}", case.name, path);
        println!(
            "  join until synced: median {:.0} ms of {repeat} ({:?})",
            median(joins.clone()),
            joins.iter().map(|j| j.round() as u64).collect::<Vec<_>>()
        );
        let s = transfer(&mut a, &mut p, "s", small, 100);
        println!(
            "  small updates (100 B): {small} in {s:.2} s = {:.0} updates/s",
            small as f64 / s
        );
        let s = transfer(&mut a, &mut p, "b", bulk, 10 << 10);
        println!(
            "  bulk (10 KiB values): {bulk} in {s:.2} s = {:.1} MB/s",
            (bulk * (10 << 10)) as f64 / s / 1e6
        );
        let idle = datagrams_per_sec(&b.bed.nat_a, 20);
        println!("  idle link: {idle:.1} UDP datagrams/s through one router (both ways)");
        a.close();
        p.close();
    }
}
