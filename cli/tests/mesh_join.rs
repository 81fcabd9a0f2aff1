//! Real peers on real sockets: members of one room on loopback UDP, meshed through our
//! switchboard, converge; a member that leaves is reported left.

mod common;

use common::{member, switchboard, within};

use std::time::Duration;

use rtc_mesh_core::mesh::{LeaveReason, MeshEvent};
use rtc_mesh_core::node::NodeEvent;
use rtc_mesh_core::Value;
use rtc_mesh_smol::mesh::join;

#[test]
fn three_members_mesh_over_udp_and_converge() {
    smol::block_on(async {
        let (server, url) = switchboard().await;
        let mut members = Vec::new();
        let mut events = Vec::new();
        for id in ["m1", "m2", "m3"] {
            let (m, e) = join(member("room", &url, id)).await.unwrap();
            members.push(m);
            events.push(e);
        }
        // Everyone synced with everyone.
        for (i, e) in events.iter().enumerate() {
            within(20, "synced_all", async {
                loop {
                    if let Ok(NodeEvent::Mesh(MeshEvent::SyncedAll { peers })) = e.recv().await {
                        if peers.len() == 2 {
                            return;
                        }
                    }
                }
            })
            .await;
            let _ = i;
        }
        for (i, m) in members.iter().enumerate() {
            m.set(&format!("k{i}"), Value::from(i as f64))
                .await
                .unwrap();
        }
        within(20, "convergence", async {
            loop {
                let mut dumps = Vec::new();
                for m in &members {
                    dumps.push(m.snapshot().await);
                }
                if dumps.iter().all(|d| d.len() == 3 && *d == dumps[0]) {
                    return;
                }
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        })
        .await;
        // m3 leaves politely: the others hear it at once.
        let m3 = members.pop().unwrap();
        m3.close().await;
        within(5, "m3 left", async {
            loop {
                if let Ok(NodeEvent::Mesh(MeshEvent::PeerLeft { peer, reason })) =
                    events[0].recv().await
                {
                    if peer == "m3" {
                        assert_eq!(reason, LeaveReason::Left);
                        return;
                    }
                }
            }
        })
        .await;
        server.shutdown().await;
    });
}

/// The std runtime's members mesh with the smol runtime's.
#[test]
fn std_and_smol_members_interoperate() {
    smol::block_on(async {
        let (server, url) = switchboard().await;
        let (smol_member, _ev) = join(member("mixed", &url, "s1")).await.unwrap();
        let mut std_members = Vec::new();
        for id in ["t1", "t2"] {
            std_members.push(rtc_mesh_std::mesh::join(member("mixed", &url, id)).unwrap());
        }
        smol_member
            .set("from-smol", Value::from(1.0))
            .await
            .unwrap();
        let t1 = std_members.remove(0);
        let t1m = smol::unblock(move || {
            t1.0.set("from-std", Value::from(2.0)).unwrap();
            t1
        })
        .await;
        within(20, "convergence across runtimes", async {
            loop {
                let d = smol_member.snapshot().await;
                if d.len() == 2 {
                    let (a, b) = (t1m.0.snapshot(), std_members[0].0.snapshot());
                    if a == d && b == d {
                        return;
                    }
                }
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        })
        .await;
        within(20, "links to both std members", async {
            loop {
                let peers = smol_member.peers().await;
                if peers.len() == 2 && peers.iter().all(|p| p.is_linked()) {
                    return;
                }
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        })
        .await;
        // A batch from the std side arrives whole on the smol side.
        let t1m = smol::unblock(move || {
            let batch = (0..100)
                .map(|i| (format!("batch{i}"), Value::from(i as f64)))
                .collect();
            t1m.0.set_many(batch).unwrap();
            t1m
        })
        .await;
        within(20, "the batch", async {
            while smol_member.snapshot().await.len() < 102 {
                smol::Timer::after(Duration::from_millis(20)).await;
            }
        })
        .await;
        smol::unblock(move || t1m.0.close()).await;
        smol_member.close().await;
        server.shutdown().await;
    });
}

/// The handle's whole surface: keys, snapshot, link info per peer, announce, and a
/// clear error once the member has left.
#[test]
fn the_member_handle_tells_links_keys_and_attributes() {
    use rtc_mesh_core::mesh::LinkState;
    use rtc_mesh_core::Object;
    use rtc_mesh_smol::mesh::MemberError;
    smol::block_on(async {
        let (server, url) = switchboard().await;
        let mut joined = Vec::new();
        for id in ["a", "b"] {
            joined.push(join(member("handle", &url, id)).await.unwrap());
        }
        let (b, b_events) = joined.pop().unwrap();
        let (a, a_events) = joined.pop().unwrap();
        for e in [&a_events, &b_events] {
            within(20, "synced", async {
                while !matches!(
                    e.recv().await,
                    Ok(NodeEvent::Mesh(MeshEvent::SyncedAll { .. }))
                ) {}
            })
            .await;
        }
        a.set_many(vec![
            ("z".into(), Value::from(1.0)),
            ("y".into(), Value::from(2.0)),
            ("x".into(), Value::from(3.0)),
        ])
        .await
        .unwrap();
        a.delete("y").await.unwrap();
        // b hears all four writes (the delete is an update too).
        within(20, "b has the writes", async {
            let mut n = 0;
            while n < 4 {
                if let Ok(NodeEvent::Mesh(MeshEvent::Update(_))) = b_events.recv().await {
                    n += 1;
                }
            }
        })
        .await;
        assert_eq!(b.keys().await, ["x", "z"]);
        assert_eq!(b.snapshot().await, a.snapshot().await);
        assert_eq!(b.get("x").await, Some(Value::from(3.0)));
        // Link info, both sides.
        let (pa, pb) = (a.peers().await, b.peers().await);
        assert_eq!((pa.len(), pb.len()), (1, 1));
        let (la, lb) = (&pa[0].link, &pb[0].link);
        assert_eq!((pa[0].id.as_str(), pb[0].id.as_str()), ("b", "a"));
        for l in [la, lb] {
            assert_eq!(l.state, LinkState::Open);
            assert!(l.codec.is_some() && l.synced);
            assert!(l.stats.rtt.is_some(), "the first ping is sent at link open");
        }
        assert_eq!(la.stats.updates_out, 4);
        assert_eq!(lb.stats.updates_in, 4);
        assert!(lb.stats.bytes_in > 0 && la.stats.bytes_out > 0);
        // New attributes reach the other side as an event and in peers().
        let mut attrs = Object::new();
        attrs.insert("nick", Value::from("alice"));
        a.announce(attrs).await;
        within(10, "b sees the new attributes", async {
            loop {
                if let Ok(NodeEvent::Mesh(MeshEvent::PeerUpdated { peer, attributes })) =
                    b_events.recv().await
                {
                    assert_eq!(peer, "a");
                    assert_eq!(attributes.get("nick"), Some(&Value::from("alice")));
                    return;
                }
            }
        })
        .await;
        let pb = b.peers().await;
        assert_eq!(pb[0].attributes.get("nick"), Some(&Value::from("alice")));
        // A bad write is a typed error, and nothing is written.
        let long = "k".repeat(100_000);
        assert!(matches!(
            a.set(&long, Value::from(1.0)).await,
            Err(MemberError::Store(_))
        ));
        b.close().await;
        a.close().await;
        server.shutdown().await;
    });
}
