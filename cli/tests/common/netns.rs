//! Network namespaces for the tests that need more than loopback (tests and CI run as
//! root): each made by the test, with private or documentation addresses that exist
//! only inside it, and deleted when dropped (after the processes started in it, which
//! the test's `Peer`s kill first).

use std::process::Command;

/// A network namespace with `lo` up, deleted on drop.
pub struct Netns {
    pub name: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip {args:?} (iproute2, as root): {e}"));
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// A fresh namespace `<prefix>-<pid>-<tag>` (a stale one of that name goes first).
    pub fn new(prefix: &str, tag: &str) -> Netns {
        let name = format!("{prefix}-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs `ip ARGS` inside.
    pub fn ip(&self, args: &[&str]) {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all);
    }

    /// `program args` to be run inside.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Two hosts on one LAN: namespaces joined by a veth pair, `10.77.0.1/24` and
/// `10.77.0.2/24` (a private range, inside these namespaces only).
pub fn lan(prefix: &str) -> (Netns, Netns) {
    let a = Netns::new(prefix, "a");
    let b = Netns::new(prefix, "b");
    a.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &b.name,
    ]);
    for (ns, addr) in [(&a, "10.77.0.1/24"), (&b, "10.77.0.2/24")] {
        ns.ip(&["addr", "add", addr, "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
    }
    (a, b)
}

/// The NAT test bed of `turn-and-nat.md`: an "internet" namespace (`inet`, a bridge at
/// `198.51.100.1/24`, a documentation range) and two peers, each behind its own router
/// (`nat-a` at `198.51.100.101`, `nat-b` at `.102`) that masquerades its LAN
/// (`10.0.1.0/24`, `10.0.2.0/24`, peers at `.2`) and drops unsolicited inbound traffic.
/// `symmetric`: `masquerade random` (a fresh port per destination: only a relay
/// crosses); else plain `masquerade` (port-restricted cone: hole punching works).
pub struct NatBed {
    pub inet: Netns,
    pub nat_a: Netns,
    pub nat_b: Netns,
    pub peer_a: Netns,
    pub peer_b: Netns,
    /// A third router (`.103`, LAN `10.0.3.0/24`) and peer, alike.
    pub nat_c: Netns,
    pub peer_c: Netns,
}

/// The "internet" address of the bed's servers.
pub const INET: &str = "198.51.100.1";

impl NatBed {
    pub fn new(prefix: &str, symmetric: bool) -> NatBed {
        let bed = NatBed {
            inet: Netns::new(prefix, "inet"),
            nat_a: Netns::new(prefix, "nat-a"),
            nat_b: Netns::new(prefix, "nat-b"),
            peer_a: Netns::new(prefix, "peer-a"),
            peer_b: Netns::new(prefix, "peer-b"),
            nat_c: Netns::new(prefix, "nat-c"),
            peer_c: Netns::new(prefix, "peer-c"),
        };
        let inet = &bed.inet;
        inet.ip(&["link", "add", "br0", "type", "bridge"]);
        inet.ip(&["addr", "add", "198.51.100.1/24", "dev", "br0"]);
        inet.ip(&["link", "set", "br0", "up"]);
        // The rest of the internet: a default route out of a link whose far end takes
        // nothing, so datagrams to unknown (say, private) addresses vanish as they do
        // out there, instead of failing with "network unreachable" (which makes coturn
        // close the allocation that sent one). (A veth pair: minimal kernels lack the
        // dummy link type.)
        inet.ip(&[
            "link", "add", "world", "type", "veth", "peer", "name", "void",
        ]);
        inet.ip(&["link", "set", "world", "up"]);
        inet.ip(&["link", "set", "void", "up"]);
        inet.ip(&[
            "route",
            "add",
            "default",
            "via",
            "192.0.2.1",
            "dev",
            "world",
            "onlink",
        ]);
        inet.ip(&[
            "neigh",
            "add",
            "192.0.2.1",
            "lladdr",
            "02:00:00:00:00:01",
            "dev",
            "world",
            "nud",
            "permanent",
        ]);
        let masq = if symmetric {
            "masquerade random"
        } else {
            "masquerade"
        };
        let routers = [
            (&bed.nat_a, &bed.peer_a),
            (&bed.nat_b, &bed.peer_b),
            (&bed.nat_c, &bed.peer_c),
        ];
        for (i, (nat, peer)) in routers.into_iter().enumerate() {
            let n = i + 1;
            let w = format!("w{n}");
            inet.ip(&[
                "link", "add", &w, "type", "veth", "peer", "name", "wan", "netns", &nat.name,
            ]);
            inet.ip(&["link", "set", &w, "master", "br0", "up"]);
            nat.ip(&[
                "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", &peer.name,
            ]);
            nat.ip(&["addr", "add", &format!("198.51.100.10{n}/24"), "dev", "wan"]);
            nat.ip(&["addr", "add", &format!("10.0.{n}.1/24"), "dev", "lan"]);
            nat.ip(&["link", "set", "wan", "up"]);
            nat.ip(&["link", "set", "lan", "up"]);
            nat.ip(&["route", "add", "default", "via", "198.51.100.1"]);
            // (Each namespace has its own; without sysctl(8), which a minimal system
            // may lack.)
            run(nat
                .command("sh")
                .args(["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]));
            peer.ip(&["addr", "add", &format!("10.0.{n}.2/24"), "dev", "eth0"]);
            peer.ip(&["link", "set", "eth0", "up"]);
            peer.ip(&["route", "add", "default", "via", &format!("10.0.{n}.1")]);
            let rules = format!(
                "table ip nat {{
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    oifname \"wan\" {masq}
  }}
}}
table ip filter {{
  chain input {{
    type filter hook input priority filter; policy drop;
    iif \"lo\" accept
    ct state established,related accept
  }}
  chain forward {{
    type filter hook forward priority filter; policy drop;
    iifname \"lan\" oifname \"wan\" accept
    iifname \"wan\" oifname \"lan\" ct state established,related accept
  }}
}}
"
            );
            nat.nft(&rules);
        }
        bed
    }
}

impl Netns {
    /// Loads nftables `rules` (`nft -f -`) in here.
    pub fn nft(&self, rules: &str) {
        let mut nft = self.command(nft_path());
        nft.args(["-f", "-"]).stdin(std::process::Stdio::piped());
        let mut child = nft.spawn().expect("nft (Debian package nftables) runs");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .unwrap();
        assert!(
            child.wait().unwrap().success(),
            "nft rules for {}: {rules}",
            self.name
        );
    }

    /// A router that loses `percent` % of the UDP datagrams it forwards, each way.
    pub fn lose_udp(&self, percent: u32) {
        self.nft(&format!(
            "table ip loss {{
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    meta l4proto udp numgen random mod 100 < {percent} drop
  }}
}}
"
        ));
    }

    /// A router that forgets every UDP mapping it holds (`conntrack -D -p udp`, Debian
    /// package conntrack), its TCP connections kept: the next datagram out gets a new
    /// mapping.
    pub fn flush_udp_mappings(&self) {
        let tool = if std::path::Path::new("/usr/sbin/conntrack").exists() {
            "/usr/sbin/conntrack"
        } else {
            "conntrack"
        };
        let out = self
            .command(tool)
            .args(["-D", "-p", "udp"])
            .output()
            .expect("conntrack (Debian package conntrack) runs; scripts/test.sh installs it");
        // (It exits 1 when there was nothing to delete.)
        assert!(
            out.status.success() || out.status.code() == Some(1),
            "conntrack -D in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A router whose UDP mappings expire after `secs` idle seconds (`stream`: of
    /// flows that saw traffic both ways).
    pub fn udp_mapping_timeout(&self, secs: u32, stream: u32) {
        for (file, v) in [
            ("nf_conntrack_udp_timeout", secs),
            ("nf_conntrack_udp_timeout_stream", stream),
        ] {
            run(self
                .command("sh")
                .args(["-c", &format!("echo {v} > /proc/sys/net/netfilter/{file}")]));
        }
    }
}

fn nft_path() -> &'static str {
    if std::path::Path::new("/usr/sbin/nft").exists() {
        "/usr/sbin/nft"
    } else {
        "nft"
    }
}

fn run(c: &mut Command) {
    let out = c.output().expect("run");
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Waits until something in here listens on UDP `port` (a server started in the
    /// namespace, which the test cannot probe from outside).
    pub fn await_udp_listener(&self, port: u16) {
        let t0 = std::time::Instant::now();
        loop {
            let out = self
                .command("ss")
                .args(["-Huln", &format!("sport = :{port}")])
                .output()
                .expect("ss (iproute2) runs");
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            assert!(
                t0.elapsed() < super::PATIENCE,
                "nothing listens on UDP {port} in {}",
                self.name
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
