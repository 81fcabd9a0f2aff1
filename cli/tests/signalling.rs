//! Our signalling client against our switchboard, over real WebSockets on loopback.

mod common;

use std::time::Duration;

use common::{next_message, switchboard};

use rtc_mesh_core::signal::{Part, Signal};
use rtc_mesh_core::Object;
use rtc_mesh_smol::signal::{SignalEvent, Signaller};
use rtc_mesh_smol::switchboard::Server;

fn attrs(id: &str, room: &str) -> Object {
    let mut o = Object::new();
    o.insert("id", id.into());
    o.insert("room", room.into());
    o
}

#[test]
fn clients_meet_in_a_room_and_hear_leaves() {
    smol::block_on(async {
        let (server, url) = switchboard().await;
        let a = Signaller::connect(&url, Default::default()).unwrap();
        a.announce(&Signal::announce("a", attrs("a", "r")));
        assert_eq!(next_message(&a).await, Signal::roominfo(1));
        let b = Signaller::connect(&url, Default::default()).unwrap();
        b.announce(&Signal::announce("b", attrs("b", "r")));
        assert_eq!(next_message(&b).await, Signal::roominfo(2));
        let seen = next_message(&a).await;
        assert_eq!(
            (seen.command.as_str(), seen.sender.as_deref()),
            ("announce", Some("b"))
        );
        // Directed both ways, with a '|' inside JSON.
        let mut o = Object::new();
        o.insert("sdp", "v=0|x".into());
        let m = Signal::new("mesh:sdp", "a", vec![Part::from(o)]).to("b");
        a.send(&m);
        assert_eq!(next_message(&b).await, m);
        let back = Signal::new("hello", "b", vec!["text".into()]).to("a");
        b.send(&back);
        assert_eq!(next_message(&a).await, back);
        // b's connection closes: a hears it left.
        b.close().await;
        assert_eq!(
            next_message(&a).await,
            Signal::leave("b", Some("disconnected"))
        );
        let c = server.counters();
        assert_eq!((c.directed, c.announces, c.leaves), (2, 2, 1));
        server.shutdown().await;
    });
}

#[test]
fn a_client_reconnects_and_announces_again_after_a_server_restart() {
    smol::block_on(async {
        let server = Server::bind("127.0.0.1:0".parse().unwrap(), Default::default())
            .await
            .unwrap();
        let addr = server.local_addr();
        let url = format!("ws://{addr}/");
        let a = Signaller::connect(&url, Default::default()).unwrap();
        a.announce(&Signal::announce("a", attrs("a", "r")));
        assert_eq!(next_message(&a).await, Signal::roominfo(1));
        server.shutdown().await;
        // Wait for the client to notice, then bring the server back on the same port.
        loop {
            if a.recv().await == Some(SignalEvent::Disconnected) {
                break;
            }
        }
        // Sent while disconnected: queued.
        a.send(&Signal::new("hello", "a", vec![]));
        let server = Server::bind(addr, Default::default()).await.unwrap();
        assert_eq!(next_message(&a).await, Signal::roominfo(1));
        let b = Signaller::connect(&url, Default::default()).unwrap();
        b.announce(&Signal::announce("b", attrs("b", "r")));
        assert_eq!(next_message(&b).await, Signal::roominfo(2));
        assert_eq!(next_message(&a).await.sender.as_deref(), Some("b"));
        assert_eq!(server.counters().announces, 2);
        server.shutdown().await;
    });
}

/// The next message of a std client (skipping connection events), or a panic after 10 s.
fn std_next(s: &rtc_mesh_std::signal::Signaller) -> Signal {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match s.events().recv_timeout(left) {
            Ok(SignalEvent::Message(m)) => return m,
            Ok(_) => continue,
            Err(e) => panic!("no message within 10 s: {e}"),
        }
    }
}

#[test]
fn the_std_server_and_client_work_with_the_smol_ones() {
    // std server; a std client and a smol client meet there.
    let server =
        rtc_mesh_std::switchboard::Server::bind("127.0.0.1:0".parse().unwrap(), Default::default())
            .unwrap();
    let url = format!("ws://{}/", server.local_addr());
    let a = rtc_mesh_std::signal::Signaller::connect(&url, Default::default()).unwrap();
    a.announce(&Signal::announce("a", attrs("a", "r")));
    assert_eq!(std_next(&a), Signal::roominfo(1));
    smol::block_on(async {
        let b = Signaller::connect(&url, Default::default()).unwrap();
        b.announce(&Signal::announce("b", attrs("b", "r")));
        assert_eq!(next_message(&b).await, Signal::roominfo(2));
        assert_eq!(std_next(&a).sender.as_deref(), Some("b"));
        let m = Signal::new("x", "a", vec!["1".into()]).to("b");
        a.send(&m);
        assert_eq!(next_message(&b).await, m);
        let m = Signal::new("y", "b", vec![]).to("a");
        b.send(&m);
        assert_eq!(std_next(&a), m);
        b.close().await;
    });
    assert_eq!(std_next(&a), Signal::leave("b", Some("disconnected")));
    a.close();
    server.shutdown();

    // smol server; a std client.
    smol::block_on(async {
        let (server, url) = switchboard().await;
        let a = rtc_mesh_std::signal::Signaller::connect(&url, Default::default()).unwrap();
        a.announce(&Signal::announce("a", attrs("a", "r")));
        let a = smol::unblock(move || {
            assert_eq!(std_next(&a), Signal::roominfo(1));
            a
        })
        .await;
        a.close();
        server.shutdown().await;
    });
}
