//! Our STUN binding client against a real STUN server: Debian's coturn, on loopback.
//! (scripts/test.sh installs it.) On loopback no NAT is in between, so the mapped
//! address a server reports is our own socket's address.

mod common;

use common::coturn::{ask, Coturn};
use common::{member, switchboard, within};

use std::net::UdpSocket;
use std::time::Instant;

use rtc_mesh_core::mesh::MeshEvent;
use rtc_mesh_core::node::NodeEvent;
use rtc_mesh_core::stun::{StunClient, StunEvent};
use rtc_mesh_core::Value;
use rtc_mesh_smol::mesh::{join, JoinOptions};

#[test]
fn coturn_tells_our_client_its_address() {
    let coturn = Coturn::stun();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut client = StunClient::new(vec![coturn.addr], 42, Instant::now());
    // Retransmissions cover coturn's start-up.
    client.max_sends = 8;
    let e = ask(&mut client, &sock);
    assert_eq!(
        e,
        StunEvent::Mapped {
            server: coturn.addr,
            mapped: sock.local_addr().unwrap()
        }
    );
}

#[test]
fn members_with_a_stun_server_learn_their_address_and_mesh() {
    let coturn = Coturn::stun();
    // coturn is up once it answers.
    let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut c = StunClient::new(vec![coturn.addr], 7, Instant::now());
    c.max_sends = 8;
    assert!(matches!(ask(&mut c, &probe), StunEvent::Mapped { .. }));
    smol::block_on(async {
        let (server, url) = switchboard().await;
        let mut members = Vec::new();
        for id in ["s1", "s2"] {
            let mut o = member("stun", &url, id);
            // Either spelling.
            o.stun_servers = vec![if id == "s1" {
                format!("stun:{}", coturn.addr)
            } else {
                coturn.addr.to_string()
            }];
            members.push(join(o).await.unwrap());
        }
        for (m, events) in &members {
            let local = m.local_addr();
            let (mut mapped, mut synced) = (false, false);
            within(20, "stun answer and sync", async {
                while !(mapped && synced) {
                    match events.recv().await.unwrap() {
                        NodeEvent::Stun(StunEvent::Mapped { mapped: a, server }) => {
                            assert_eq!((a, server), (local, coturn.addr));
                            mapped = true;
                        }
                        NodeEvent::Stun(other) => panic!("{other:?}"),
                        NodeEvent::Mesh(MeshEvent::SyncedAll { .. }) => synced = true,
                        _ => {}
                    }
                }
            })
            .await;
        }
        members[0].0.set("k", Value::from(1.0)).await.unwrap();
        within(10, "the write", async {
            while members[1].0.get("k").await.is_none() {
                members[1].1.recv().await.unwrap();
            }
        })
        .await;
        for (m, _) in members {
            m.close().await;
        }
        server.shutdown().await;
    });
}

#[test]
fn a_stun_server_that_does_not_resolve_is_a_join_error() {
    smol::block_on(async {
        let mut o = JoinOptions::new("stun", "ws://127.0.0.1:9/");
        o.bind = vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))];
        o.stun_servers = vec!["stun:no-port-given".into()];
        let err = join(o).await.err().expect("refused");
        assert!(err.to_string().contains("no-port-given"), "{err}");
    });
}
