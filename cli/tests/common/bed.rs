//! Peers and servers in the NAT test bed ([`NatBed`]): `rtc-mesh join` behind a router,
//! coturn and `rtc-mesh serve` on the bed's "internet".

use super::coturn::Coturn;
use super::netns::{NatBed, Netns, INET};
use super::Peer;

/// The long-term TURN user of the bed's coturn ([`start`]), as `join` flags.
pub const TURN: [&str; 6] = [
    "--turn",
    "198.51.100.1:3478",
    "--turn-user",
    "mesh",
    "--turn-credential",
    "secret",
];

/// `rtc-mesh join ROOM` in `ns`, through the bed's switchboard.
pub fn join(ns: &Netns, room: &str, id: &str, extra: &[&str]) -> Peer {
    let mut c = ns.command(env!("CARGO_BIN_EXE_rtc-mesh"));
    c.args([
        "join",
        room,
        "--signal",
        &format!("ws://{INET}:3000/"),
        "--id",
        id,
        "--json",
    ])
    .args(extra);
    Peer::spawn(id, c)
}

/// `rtc-mesh serve` on the bed's "internet", port 3000, with `extra` flags; up once ready.
pub fn serve(bed: &NatBed, extra: &[&str]) -> Peer {
    let mut c = bed.inet.command(env!("CARGO_BIN_EXE_rtc-mesh"));
    c.args(["serve", "--listen", &format!("{INET}:3000"), "--json"])
        .args(extra);
    let mut serve = Peer::spawn("serve", c);
    serve.wait_event("ready");
    serve
}

/// A bed, its coturn (the [`TURN`] user) and a switchboard.
pub fn start(prefix: &str, symmetric: bool) -> (NatBed, Coturn, Peer) {
    let bed = NatBed::new(prefix, symmetric);
    let coturn = Coturn::turn_in(&bed.inet, INET, "mesh", "secret");
    let serve = serve(&bed, &[]);
    (bed, coturn, serve)
}
