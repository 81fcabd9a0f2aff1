//! Secured rooms measured beside open ones, in one invocation:
//!
//! - pair join until synced on loopback (in-process smol members through an
//!   in-process switchboard; the second member's `join` until both report `synced`),
//!   open and secured rounds interleaved; an invite secret, so nothing is stretched;
//! - the passphrase stretch (PBKDF2-HMAC-SHA256, 600,000 rounds), natively, apart;
//! - the size of an SDP offer and answer as the switchboard relays them, open and
//!   sealed (real SDP from two Nodes exchanging signals in memory);
//! - seal + open of one SDP payload, and signing + verifying its signature.
//!
//! ```text
//! cargo run --release -p rtc-mesh-bench --bin bench-secured -- [--rounds N]
//! ```
//! The switchboard relay rate with tokens is `bench-signal`'s `tokens` row.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc_mesh_core::mesh::MeshEvent;
use rtc_mesh_core::node::{NodeEvent, NodeOutput};
use rtc_mesh_core::security::{signing, Entropy, Identity, RoomKey, RoomSecret};
use rtc_mesh_smol::mesh::{join, JoinOptions};
use rtc_mesh_smol::switchboard::Server;

const INVITE: &str = "rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

fn options(room: &str, url: &str, id: &str, secret: Option<&RoomSecret>) -> JoinOptions {
    let mut o = JoinOptions::new(room, url.to_owned());
    o.bind = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    match secret {
        Some(s) => o.secret = Some(s.clone()),
        None => o.id = Some(id.into()),
    }
    o
}

/// One pair join: the time from the second `join` until both members are synced.
fn pair_join(round: usize, secret: Option<&RoomSecret>) -> Duration {
    smol::block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), Default::default())
            .await
            .expect("bind a switchboard");
        let url = format!("ws://{}/", server.local_addr());
        let room = format!("pair{round}");
        let (a, ae) = join(options(&room, &url, "a", secret)).await.unwrap();
        // a is in the room before b starts.
        while !matches!(ae.recv().await, Ok(NodeEvent::Mesh(MeshEvent::Online))) {}
        let t = Instant::now();
        let (b, be) = join(options(&room, &url, "b", secret)).await.unwrap();
        let synced = |e: &NodeEvent| matches!(e, NodeEvent::Mesh(MeshEvent::Synced { .. }));
        loop {
            if synced(&be.recv().await.unwrap()) {
                break;
            }
        }
        loop {
            if synced(&ae.recv().await.unwrap()) {
                break;
            }
        }
        let took = t.elapsed();
        b.close().await;
        a.close().await;
        server.shutdown().await;
        took
    })
}

/// The `/mesh:sdp` texts (offer, answer) two Nodes send each other, in memory.
fn sdp_texts(secret: Option<&RoomSecret>) -> Vec<String> {
    let now = Instant::now();
    let mk = |id: &str, port: u16| {
        let mut o = options("sizes", "ws://127.0.0.1:9/", id, secret);
        o.bind = Vec::new();
        let local = SocketAddr::from(([127, 0, 0, 1], port));
        let (mut n, _) = o
            .node(
                vec![local],
                Vec::new(),
                Vec::new(),
                rtc_mesh_smol::entropy(),
            )
            .unwrap();
        n.start(now);
        n.handle_signal_connected(now);
        n
    };
    let mut nodes = [mk("a", 40_000), mk("b", 40_001)];
    let mut sdp = Vec::new();
    for _ in 0..20 {
        for i in 0..2 {
            let mut texts = Vec::new();
            loop {
                match nodes[i].poll_output() {
                    NodeOutput::Signal(t) => texts.push(t),
                    NodeOutput::Timeout(_) => break,
                    _ => {}
                }
            }
            for t in texts {
                if t.contains("/mesh:sdp|") {
                    sdp.push(t.clone());
                }
                nodes[1 - i].handle_signal(now, &t);
            }
        }
        if sdp.len() >= 2 {
            break;
        }
    }
    assert!(sdp.len() >= 2, "no offer and answer");
    sdp.truncate(2);
    sdp
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let mut rounds = 15usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(rounds),
            _ => {
                eprintln!("usage: bench-secured [--rounds N]");
                std::process::exit(2);
            }
        }
    }
    let invite = RoomSecret::parse(INVITE).unwrap();
    println!("bench-secured: secured rooms beside open ones, this machine, one invocation");
    // Join until synced.
    let (mut open, mut secured) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        open.push(pair_join(2 * r, None));
        secured.push(pair_join(2 * r + 1, Some(&invite)));
    }
    let (mo, ms) = (median(&mut open), median(&mut secured));
    println!(
        "pair join until synced, median of {rounds}: open {:.1} ms, secured {:.1} ms, difference {:+.1} ms (p90 {:.1} / {:.1} ms)",
        mo.as_secs_f64() * 1e3,
        ms.as_secs_f64() * 1e3,
        (ms.as_secs_f64() - mo.as_secs_f64()) * 1e3,
        open[open.len() * 9 / 10].as_secs_f64() * 1e3,
        secured[secured.len() * 9 / 10].as_secs_f64() * 1e3,
    );
    // The stretch of a passphrase, apart.
    let pass = RoomSecret::parse("correct horse battery staple").unwrap();
    let t = Instant::now();
    let key = RoomKey::derive("room", &pass);
    println!(
        "passphrase stretch (PBKDF2-HMAC-SHA256, 600,000 rounds): {:.0} ms natively (once per room and join)",
        t.elapsed().as_secs_f64() * 1e3
    );
    // Sizes.
    let plain = sdp_texts(None);
    let sealed = sdp_texts(Some(&invite));
    for (i, kind) in ["offer", "answer"].iter().enumerate() {
        println!(
            "{kind} as relayed: open {} bytes, sealed {} bytes = {:.2}x",
            plain[i].len(),
            sealed[i].len(),
            sealed[i].len() as f64 / plain[i].len() as f64
        );
    }
    // Seal + open, sign + verify, on an SDP-sized payload.
    let payload = plain[0]
        .split_once("|{")
        .map_or(plain[0].as_str(), |(_, p)| p);
    let payload = format!("{{{payload}");
    let mut e = Entropy::from_seed([7; 32]);
    let n = 20_000;
    let t = Instant::now();
    for _ in 0..n {
        let s = key.seal(&mut e, "mesh:sdp", "sender", "target", payload.as_bytes());
        let p = key.open(&s, "mesh:sdp", "sender", "target").unwrap();
        assert_eq!(p.len(), payload.len());
    }
    println!(
        "seal + open of a {} byte SDP payload: {:.2} us per message",
        payload.len(),
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let t = Instant::now();
    for _ in 0..n {
        let packed = miniz_oxide::deflate::compress_to_vec(payload.as_bytes(), 1);
        let s = key.seal(&mut e, "mesh:sdp", "sender", "target", &packed);
        let p = key.open(&s, "mesh:sdp", "sender", "target").unwrap();
        let p = miniz_oxide::inflate::decompress_to_vec_with_limit(&p, 1 << 16).unwrap();
        assert_eq!(p.len(), payload.len());
    }
    println!(
        "deflate + seal + open + inflate of the same (the SDP's way): {:.2} us per message",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    let me = Identity::from_seed(&[3; 32]);
    let pk = me.public();
    let input = signing::sdp(&[1; 16], "a", "b", "inc", 1, "offer", &payload);
    let n = 5_000;
    let t = Instant::now();
    for _ in 0..n {
        let sig = me.sign_text(&input);
        pk.verify_text(&input, &sig).unwrap();
    }
    println!(
        "sign + verify an SDP signature (Ed25519): {:.1} us per message",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}
