//! Two machines on a LAN (two network namespaces joined by a veth pair, the switchboard
//! on one of them) mesh with `rtc-mesh join ROOM --signal ws://HOST:PORT/` and no other
//! flag: the default binds every interface address and offers each as a host candidate.
//! Loopback cannot cross between the namespaces, so the LAN addresses carry the link.

mod common;

use common::netns;
use common::Peer;
use serde_json::{json, Value};

#[test]
fn two_hosts_on_a_lan_mesh_with_no_bind_flag() {
    let (a, b) = netns::lan("rmlan");
    let bin = env!("CARGO_BIN_EXE_rtc-mesh");
    let mut serve = a.command(bin);
    serve.args(["serve", "--listen", "10.77.0.1:3000", "--json"]);
    let mut serve = Peer::spawn("serve", serve);
    serve.wait_event("ready");
    let url = "ws://10.77.0.1:3000/";
    for runtime in ["smol", "std"] {
        let room = format!("lan-{runtime}");
        let join = |ns: &netns::Netns, id: &str| {
            let mut c = ns.command(bin);
            c.args(["join", &room, "--signal", url, "--id", id, "--json"])
                .args(["--runtime", runtime]);
            Peer::spawn(id, c)
        };
        let mut pa = join(&a, "pa");
        let mut pb = join(&b, "pb");
        for (p, lan) in [(&mut pa, "10.77.0.1:"), (&mut pb, "10.77.0.2:")] {
            let ready = p.wait_event("ready");
            let addrs: Vec<&str> = ready["addrs"]
                .as_array()
                .expect("ready lists its addresses")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                addrs.iter().any(|x| x.starts_with(lan)),
                "{runtime}: {addrs:?}"
            );
            assert!(
                addrs.iter().any(|x| x.starts_with("127.0.0.1:")),
                "{runtime}: {addrs:?}"
            );
        }
        pa.wait_event("synced");
        pb.wait_event("synced");
        pa.send(json!({"op":"set","key":"from-a","value":1}));
        pb.wait_update("from-a", &json!(1));
        pb.send(json!({"op":"set","key":"from-b","value":2}));
        pa.wait_update("from-b", &json!(2));
        // Host to host, over the LAN.
        pa.send(json!({"op":"peers"}));
        let peers = pa.wait_event("peers");
        let path = &peers["peers"][0]["path"];
        assert_eq!(path["local"]["type"], json!("host"), "{peers}");
        assert!(
            path["local"]["addr"]
                .as_str()
                .unwrap()
                .starts_with("10.77.0.1:"),
            "{peers}"
        );
        assert_eq!(path["remote"]["type"], json!("host"), "{peers}");
        assert!(
            path["remote"]["addr"]
                .as_str()
                .unwrap()
                .starts_with("10.77.0.2:"),
            "{peers}"
        );
        pa.close();
        pb.close();
    }
}
