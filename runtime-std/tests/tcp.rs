//! The std runtime's API over TCP on loopback.

use std::net::TcpListener;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use rtc_mesh_core::member::MemberError;
use rtc_mesh_core::mesh::MeshEvent;
use rtc_mesh_core::node::NodeEvent;
use rtc_mesh_core::{Codec, Value};
use rtc_mesh_std::{Replicator, ReplicatorOptions};

/// Waits (bounded) for the update of `key`.
fn wait_update(events: &Receiver<NodeEvent>, key: &str) -> Value {
    loop {
        match events.recv_timeout(Duration::from_secs(30)) {
            Ok(NodeEvent::Mesh(MeshEvent::Update(u))) if &*u.key == key => {
                return u.value.to_value().unwrap()
            }
            Ok(_) => {}
            Err(e) => panic!("no update of {key}: {e}"),
        }
    }
}

#[test]
fn two_replicators_sync_and_close_frees_the_port() {
    for codec in [Codec::Json, Codec::Postcard] {
        let (a, a_events) = Replicator::start(ReplicatorOptions::new("a", codec)).unwrap();
        let (b, b_events) = Replicator::start(ReplicatorOptions::new("b", codec)).unwrap();
        a.set("before", &Value::from("x")).unwrap();
        let addr = a.listen("127.0.0.1:0".parse().unwrap()).unwrap();
        b.connect(addr).unwrap();
        assert_eq!(wait_update(&b_events, "before"), Value::from("x"));
        b.set("from-b", &Value::from(2.0)).unwrap();
        assert_eq!(wait_update(&a_events, "from-b"), Value::from(2.0));
        assert_eq!(a.dump(), b.dump());
        assert_eq!(a.get("from-b"), Some(Value::from(2.0)));
        a.close(Duration::from_secs(2));
        b.close(Duration::from_secs(2));
        // Nothing of `a` holds its port any more.
        TcpListener::bind(addr).expect("the port is free after close");
    }
}

#[test]
fn a_closed_replicator_refuses_writes_with_closed() {
    let (r, _events) = Replicator::start(ReplicatorOptions::new("a", Codec::Json)).unwrap();
    r.set("k", &Value::from(1.0)).unwrap();
    r.close(Duration::from_secs(1));
    assert!(matches!(
        r.set("k", &Value::from(2.0)),
        Err(MemberError::Closed)
    ));
    assert!(matches!(r.delete("k"), Err(MemberError::Closed)));
    assert_eq!(r.get("k"), None);
    r.close(Duration::from_secs(1));
}
