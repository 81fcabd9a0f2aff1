//! A Node asks STUN servers for its server-reflexive address: the answer becomes a
//! `srflx` candidate, in the SDP of later connections and trickled to present ones.
//! (A simulated STUN server answering a made-up mapped address, so a NAT is in
//! between; `cli/tests/coturn.rs` asks a real one.)

use std::net::SocketAddr;
use std::time::Instant;

use rtc_mesh_core::mesh::MeshConfig;
use rtc_mesh_core::node::{Node, NodeConfig, NodeEvent, NodeOutput};
use rtc_mesh_core::stun::{binding_success, StunEvent};

const LOCAL: &str = "127.0.0.1:40000";
const SERVER: &str = "127.0.0.1:3478";
const MAPPED: &str = "203.0.113.5:61000";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn node(id: &str) -> Node {
    let mc = MeshConfig::new(id, "room", "00000000000000aa", 1.7e12, Instant::now());
    let mut cfg = NodeConfig::new(mc, vec![addr(LOCAL)]);
    cfg.stun_servers = vec![addr(SERVER)];
    Node::new(cfg).unwrap()
}

fn drain(n: &mut Node) -> Vec<NodeOutput> {
    let mut v = Vec::new();
    loop {
        match n.poll_output() {
            NodeOutput::Timeout(_) => return v,
            o => v.push(o),
        }
    }
}

/// The STUN request among `out`, answered by a server seeing `MAPPED`.
fn answer(out: &[NodeOutput]) -> Vec<u8> {
    let req = out
        .iter()
        .find_map(|o| match o {
            NodeOutput::Transmit {
                source,
                destination,
                data,
            } if *destination == addr(SERVER) => {
                assert_eq!(*source, addr(LOCAL));
                Some(data.clone())
            }
            _ => None,
        })
        .expect("a binding request to the STUN server");
    binding_success(&req, addr(MAPPED)).expect("a binding request")
}

fn signals(out: &[NodeOutput]) -> Vec<&str> {
    out.iter()
        .filter_map(|o| match o {
            NodeOutput::Signal(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

const PEER_B: &str = r#"/announce|b|{"id":"b","room":"room","incarnation":"00000000000000bb","codecs":["postcard","json"]}"#;

#[test]
fn a_mapped_address_is_in_the_sdp_of_later_connections() {
    let t = Instant::now();
    let mut z = node("z");
    z.start(t);
    z.handle_signal_connected(t);
    let out = drain(&mut z);
    z.handle_datagram(t, addr(SERVER), addr(LOCAL), &answer(&out));
    let out = drain(&mut z);
    assert!(out.iter().any(|o| matches!(
        o,
        NodeOutput::Event(NodeEvent::Stun(StunEvent::Mapped { mapped, .. })) if *mapped == addr(MAPPED)
    )));
    assert_eq!(z.reflexive_addrs(), &[(addr(MAPPED), addr(LOCAL))]);
    // b arrives; z (the higher id) offers, with the srflx candidate in its SDP.
    z.handle_signal(t, PEER_B);
    let out = drain(&mut z);
    let offer = signals(&out)
        .into_iter()
        .find(|s| s.contains("/mesh:sdp|z|"))
        .expect("an offer");
    assert!(
        offer.contains("203.0.113.5 61000 typ srflx raddr"),
        "{offer}"
    );
}

#[test]
fn a_mapped_address_found_later_is_trickled_to_present_connections() {
    let t = Instant::now();
    let mut z = node("z");
    z.start(t);
    z.handle_signal_connected(t);
    let first = drain(&mut z);
    z.handle_signal(t, PEER_B);
    let out = drain(&mut z);
    let offer = signals(&out)
        .into_iter()
        .find(|s| s.contains("/mesh:sdp|z|"))
        .expect("an offer")
        .to_owned();
    // The SDP travels as JSON text: its line ends are escaped.
    let mid = offer
        .split("a=mid:")
        .nth(1)
        .and_then(|rest| rest.split('\\').next())
        .expect("a mid");
    z.handle_datagram(t, addr(SERVER), addr(LOCAL), &answer(&first));
    let out = drain(&mut z);
    let trickled = signals(&out)
        .into_iter()
        .find(|s| s.starts_with("/to|b|/mesh:candidate|z|"))
        .expect("a trickled candidate");
    assert!(trickled.contains("typ srflx"), "{trickled}");
    assert!(
        trickled.contains(&format!(r#""sdpMid":"{mid}""#)),
        "{trickled}"
    );
    assert!(trickled.contains(r#""usernameFragment":""#), "{trickled}");
}

#[test]
fn a_silent_stun_server_is_reported_and_the_mesh_goes_on() {
    let t = Instant::now();
    let mut z = node("z");
    z.start(t);
    z.handle_signal_connected(t);
    let mut now = t;
    let mut failed = false;
    for _ in 0..100 {
        let out = drain(&mut z);
        failed |= out.iter().any(|o| {
            matches!(
                o,
                NodeOutput::Event(NodeEvent::Stun(StunEvent::Failed { .. }))
            )
        });
        if failed {
            break;
        }
        now += std::time::Duration::from_millis(500);
        z.handle_timeout(now);
    }
    assert!(failed, "the silent server is reported");
    assert!(z.reflexive_addrs().is_empty());
}
