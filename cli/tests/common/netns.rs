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
