//! The smol runtime's API over TCP on loopback.

use std::net::TcpListener;
use std::time::Duration;

use rtc_mesh_core::member::MemberError;
use rtc_mesh_core::mesh::MeshEvent;
use rtc_mesh_core::node::NodeEvent;
use rtc_mesh_core::{Codec, Value};
use rtc_mesh_smol::{Replicator, ReplicatorOptions};
use smol::channel::Receiver;

/// Waits (bounded) for the update of `key`.
async fn wait_update(events: &Receiver<NodeEvent>, key: &str) -> Value {
    let deadline = async {
        smol::Timer::after(Duration::from_secs(30)).await;
        panic!("no update of {key} within 30 s");
    };
    let wait = async {
        loop {
            if let Ok(NodeEvent::Mesh(MeshEvent::Update(u))) = events.recv().await {
                if &*u.key == key {
                    return u.value.to_value().unwrap();
                }
            }
        }
    };
    smol::future::or(wait, deadline).await
}

#[test]
fn two_replicators_sync_and_close_frees_the_port() {
    smol::block_on(async {
        for codec in [Codec::Json, Codec::Postcard] {
            let (a, a_events) = Replicator::start(ReplicatorOptions::new("a", codec)).unwrap();
            let (b, b_events) = Replicator::start(ReplicatorOptions::new("b", codec)).unwrap();
            a.set("before", &Value::from("x")).await.unwrap();
            let addr = a.listen("127.0.0.1:0".parse().unwrap()).await.unwrap();
            b.connect(addr).await.unwrap();
            assert_eq!(wait_update(&b_events, "before").await, Value::from("x"));
            b.set("from-b", &Value::from(2.0)).await.unwrap();
            assert_eq!(wait_update(&a_events, "from-b").await, Value::from(2.0));
            assert_eq!(a.dump().await, b.dump().await);
            a.close(Duration::from_secs(2)).await;
            b.close(Duration::from_secs(2)).await;
            TcpListener::bind(addr).expect("the port is free after close");
        }
    });
}

#[test]
fn a_closed_replicator_refuses_writes_with_closed() {
    smol::block_on(async {
        let (r, _events) = Replicator::start(ReplicatorOptions::new("a", Codec::Json)).unwrap();
        r.set("k", &Value::from(1.0)).await.unwrap();
        r.close(Duration::from_secs(1)).await;
        assert!(matches!(
            r.set("k", &Value::from(2.0)).await,
            Err(MemberError::Closed)
        ));
        assert!(matches!(r.delete("k").await, Err(MemberError::Closed)));
        assert_eq!(r.get("k").await, None);
        r.close(Duration::from_secs(1)).await;
    });
}

#[test]
fn a_request_right_after_close_is_refused_and_never_left_waiting() {
    // Found in CI: a request queued while the driver was ending waited forever.
    smol::block_on(async {
        for _ in 0..200 {
            let (r, _events) = Replicator::start(ReplicatorOptions::new("a", Codec::Json)).unwrap();
            r.close(Duration::from_secs(1)).await;
            let v = Value::from(2.0);
            let refused = smol::future::or(async { Some(r.set("k", &v).await) }, async {
                smol::Timer::after(Duration::from_secs(10)).await;
                None
            })
            .await;
            assert!(
                matches!(refused, Some(Err(MemberError::Closed))),
                "{refused:?}"
            );
        }
    });
}
