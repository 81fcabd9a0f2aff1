//! Debian's coturn (scripts/test.sh installs it) on a free loopback port, killed on
//! drop, and ready once it answers a STUN Binding.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rtc_mesh_core::stun::{StunClient, StunEvent, StunOutput};

pub struct Coturn {
    child: Child,
    pub addr: SocketAddr,
    _dir: TempDir,
}

/// A directory for coturn's pid file and user database, removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Coturn {
    /// STUN only.
    pub fn stun() -> Coturn {
        Coturn::start(&["--stun-only", "-z"])
    }

    /// A TURN server with one long-term user, relaying on loopback.
    pub fn turn(user: &str, password: &str) -> Coturn {
        let args = turn_args(user, password, "127.0.0.1");
        Coturn::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// A TURN server with one long-term user in the namespace `ns`, listening and
    /// relaying on `ip` port 3478; up once it listens.
    pub fn turn_in(ns: &super::netns::Netns, ip: &str, user: &str, password: &str) -> Coturn {
        Coturn::in_ns(ns, ip, &turn_args(user, password, ip))
    }

    /// As [`Coturn::turn_in`], but taking short-lived credentials signed with `secret`
    /// (`--use-auth-secret`, the "TURN REST API") instead of a user.
    pub fn rest_in(ns: &super::netns::Netns, ip: &str, secret: &str) -> Coturn {
        let secret = format!("--static-auth-secret={secret}");
        Coturn::in_ns(ns, ip, &relay_args(&["--use-auth-secret", &secret], ip))
    }

    fn in_ns(ns: &super::netns::Netns, ip: &str, args: &[String]) -> Coturn {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, dir) = Coturn::spawn(ns.command("turnserver"), &ns.name, ip, 3478, &args);
        ns.await_udp_listener(3478);
        Coturn {
            child,
            addr: SocketAddr::new(ip.parse().unwrap(), 3478),
            _dir: dir,
        }
    }

    fn spawn(mut cmd: Command, tag: &str, ip: &str, port: u16, args: &[&str]) -> (Child, TempDir) {
        let dir = std::env::temp_dir().join(format!(
            "rtc-mesh-coturn-{}-{tag}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        // For debugging a test: RTC_MESH_COTURN_LOG=DIR keeps coturn's verbose log there.
        let log = match std::env::var_os("RTC_MESH_COTURN_LOG") {
            Some(d) => {
                cmd.arg("-V");
                let f = std::path::Path::new(&d).join(format!("coturn-{tag}-{port}.log"));
                Stdio::from(std::fs::File::create(f).expect("coturn log file"))
            }
            None => Stdio::null(),
        };
        let child = cmd
            .args(["-n", "-L", ip, "-p", &port.to_string()])
            .args(["--no-tls", "--no-dtls", "--no-cli"])
            .args(["--log-file", "stdout", "--no-software-attribute"])
            .arg("--pidfile")
            .arg(dir.join("turnserver.pid"))
            .arg("--userdb")
            .arg(dir.join("turndb"))
            .args(args)
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver (Debian package coturn) runs; scripts/test.sh installs it");
        (child, TempDir(dir))
    }

    fn start(args: &[&str]) -> Coturn {
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (child, dir) = Coturn::spawn(Command::new("turnserver"), "lo", "127.0.0.1", port, args);
        let c = Coturn {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        };
        // Up once it answers (retransmissions cover its start-up).
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut client = StunClient::new(vec![c.addr], 7, Instant::now());
        client.max_sends = 8;
        assert!(
            matches!(ask(&mut client, &probe), StunEvent::Mapped { .. }),
            "coturn answers"
        );
        c
    }
}

/// coturn's arguments for a TURN server with one long-term user, relaying on `ip`
/// (to loopback peers too: on loopback, and to its own relays).
fn turn_args(user: &str, password: &str, ip: &str) -> Vec<String> {
    let user = format!("{user}:{password}");
    relay_args(&["--lt-cred-mech", "--user", &user], ip)
}

/// `auth`, then what every TURN server of the tests takes.
fn relay_args(auth: &[&str], ip: &str) -> Vec<String> {
    let common = [
        "--realm",
        "rtc-mesh.test",
        "--fingerprint",
        "--relay-ip",
        ip,
        "--allow-loopback-peers",
        "--no-tcp-relay",
    ];
    auth.iter().chain(&common).map(|a| a.to_string()).collect()
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Drives a StunClient over a real socket until it reports.
pub fn ask(client: &mut StunClient, sock: &UdpSocket) -> StunEvent {
    let mut buf = [0u8; 1500];
    client.start(Instant::now());
    loop {
        let deadline = loop {
            match client.poll_output() {
                StunOutput::Transmit { server, data } => {
                    sock.send_to(&data, server).unwrap();
                }
                StunOutput::Event(e) => return e,
                StunOutput::Timeout(t) => break t,
            }
        };
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        sock.set_read_timeout(Some(wait)).unwrap();
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                client.handle_datagram(Instant::now(), from, &buf[..n]);
            }
            Err(_) => client.handle_timeout(Instant::now()),
        }
    }
}
