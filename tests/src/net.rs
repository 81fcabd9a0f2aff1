//! A simulated internet for [`node_sim`](crate::node_sim): NATs with the behaviours of
//! RFC 4787 and one public STUN/TURN server on `turn-server-proto`.
//!
//! A [`Nat`] has a mapping behaviour (which outbound destinations share one external
//! port), a filtering behaviour (which inbound sources an external port lets in) and a
//! mapping timeout (refreshed by outbound traffic only, the stricter reading of RFC 4787
//! REQ-6): the nine combinations of [`Mapping`] × [`Filtering`] cover "full cone"
//! (endpoint-independent both), "port-restricted cone" (endpoint-independent mapping,
//! address-and-port-dependent filtering) and "symmetric" (address-and-port-dependent
//! both). There is no hairpinning: one private network per NAT, and a datagram to a
//! private address of another network vanishes, as on the real internet.
//!
//! [`SimTurn`] is a TURN server (RFC 8656, UDP, long-term credentials) that also answers
//! STUN binding requests; the simulation hands it every datagram for its address or one
//! of its relayed addresses, with the simulated time.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use turn_server_proto::api::{TurnServerApi, TurnServerPollRet};
use turn_server_proto::server::TurnServer;
use turn_server_proto::stun::agent::Transmit;
use turn_server_proto::stun::types::TransportType;

/// Which outbound destinations share one external address (RFC 4787 section 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mapping {
    /// One external port for every destination.
    EndpointIndependent,
    /// One per destination address.
    AddressDependent,
    /// One per destination address and port ("symmetric").
    AddressAndPortDependent,
}

/// Which inbound sources an external port lets in (RFC 4787 section 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Filtering {
    /// Anyone.
    EndpointIndependent,
    /// Addresses the mapping has sent to.
    AddressDependent,
    /// Addresses and ports the mapping has sent to.
    AddressAndPortDependent,
}

impl Mapping {
    /// All three.
    pub const ALL: [Mapping; 3] = [
        Mapping::EndpointIndependent,
        Mapping::AddressDependent,
        Mapping::AddressAndPortDependent,
    ];
}

impl Filtering {
    /// All three.
    pub const ALL: [Filtering; 3] = [
        Filtering::EndpointIndependent,
        Filtering::AddressDependent,
        Filtering::AddressAndPortDependent,
    ];
}

/// A NAT's behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatType {
    /// Its mapping behaviour.
    pub mapping: Mapping,
    /// Its filtering behaviour.
    pub filtering: Filtering,
    /// How long a mapping (and each destination it let in) lives without outbound
    /// traffic.
    pub timeout: Duration,
}

impl NatType {
    /// `mapping` × `filtering` with a 30 s timeout (RFC 4787 REQ-5 asks for at least
    /// two minutes; home routers often keep 30 s).
    pub fn new(mapping: Mapping, filtering: Filtering) -> NatType {
        NatType {
            mapping,
            filtering,
            timeout: Duration::from_secs(30),
        }
    }
}

struct NatMapping {
    internal: SocketAddr,
    /// The destination part it is keyed by (none, the address, or address and port).
    key: Option<SocketAddr>,
    port: u16,
    last_out: Instant,
    /// Where it sent to, and when last.
    sent: BTreeMap<SocketAddr, Instant>,
}

/// One NAT: a private network behind one public address.
pub struct Nat {
    public: IpAddr,
    ty: NatType,
    next_port: u16,
    mappings: Vec<NatMapping>,
}

impl Nat {
    /// A NAT of type `ty` on `public`.
    pub fn new(public: IpAddr, ty: NatType) -> Nat {
        Nat {
            public,
            ty,
            next_port: 20_000,
            mappings: Vec::new(),
        }
    }

    /// Its public address.
    pub fn public(&self) -> IpAddr {
        self.public
    }

    fn key(&self, dst: SocketAddr) -> Option<SocketAddr> {
        match self.ty.mapping {
            Mapping::EndpointIndependent => None,
            Mapping::AddressDependent => Some(SocketAddr::new(dst.ip(), 0)),
            Mapping::AddressAndPortDependent => Some(dst),
        }
    }

    fn expire(&mut self, now: Instant) {
        let t = self.ty.timeout;
        self.mappings.retain_mut(|m| {
            m.sent.retain(|_, at| now.duration_since(*at) <= t);
            now.duration_since(m.last_out) <= t
        });
    }

    /// A datagram from `src` inside to `dst` outside: the external source it leaves
    /// with (a new mapping if none fits).
    pub fn outbound(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr) -> SocketAddr {
        self.expire(now);
        let key = self.key(dst);
        let i = match self
            .mappings
            .iter()
            .position(|m| m.internal == src && m.key == key)
        {
            Some(i) => i,
            None => {
                let port = self.next_port;
                self.next_port = self.next_port.checked_add(1).unwrap_or(20_000);
                self.mappings.push(NatMapping {
                    internal: src,
                    key,
                    port,
                    last_out: now,
                    sent: BTreeMap::new(),
                });
                self.mappings.len() - 1
            }
        };
        let m = &mut self.mappings[i];
        m.last_out = now;
        m.sent.insert(dst, now);
        SocketAddr::new(self.public, m.port)
    }

    /// A datagram from `src` outside to external port `port`: the inside address it goes
    /// to, or `None` where no mapping lets it in.
    pub fn inbound(&mut self, now: Instant, src: SocketAddr, port: u16) -> Option<SocketAddr> {
        self.expire(now);
        let m = self.mappings.iter().find(|m| m.port == port)?;
        let allowed = match self.ty.filtering {
            Filtering::EndpointIndependent => true,
            Filtering::AddressDependent => m.sent.keys().any(|d| d.ip() == src.ip()),
            Filtering::AddressAndPortDependent => m.sent.contains_key(&src),
        };
        allowed.then_some(m.internal)
    }

    /// Forgets every mapping (a router reboot, or `conntrack -D`).
    pub fn flush(&mut self) {
        self.mappings.clear();
    }

    /// Mappings alive now.
    pub fn mappings(&mut self, now: Instant) -> usize {
        self.expire(now);
        self.mappings.len()
    }
}

/// The simulated TURN server's realm.
pub const REALM: &str = "nodesim";
/// Its one user.
pub const USER: &str = "sim";
/// That user's password.
pub const PASSWORD: &str = "sim-secret";

/// A public STUN and TURN server.
pub struct SimTurn {
    server: TurnServer,
    addr: SocketAddr,
    epoch: Instant,
    next_port: u16,
    relayed: Vec<SocketAddr>,
    timer: Option<Instant>,
    /// Allocations made.
    pub allocations: u64,
    /// Datagrams it received.
    pub received: u64,
}

impl SimTurn {
    /// A server listening on `addr` (UDP) with [`USER`]/[`PASSWORD`].
    pub fn new(addr: SocketAddr, epoch: Instant) -> SimTurn {
        let mut server = TurnServer::new(TransportType::Udp, addr, REALM.into());
        server.add_user(USER.into(), PASSWORD.into());
        SimTurn {
            server,
            addr,
            epoch,
            next_port: 49_152,
            relayed: Vec::new(),
            timer: None,
            allocations: 0,
            received: 0,
        }
    }

    /// Its listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether `a` is its address or one of its relayed addresses.
    pub fn owns(&self, a: SocketAddr) -> bool {
        a == self.addr || self.relayed.contains(&a)
    }

    /// When it next wants [`SimTurn::poll`].
    pub fn timer(&self) -> Option<Instant> {
        self.timer
    }

    fn at(&self, now: Instant) -> turn_server_proto::stun::Instant {
        let nanos = now.duration_since(self.epoch).as_nanos();
        turn_server_proto::stun::Instant::from_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
    }

    fn instant(&self, at: turn_server_proto::stun::Instant) -> Instant {
        let nanos = at.as_nanos().max(0) as u64;
        self.epoch + Duration::from_nanos(nanos)
    }

    /// A datagram from `from` to `to` (its address or a relayed one): what it sends in
    /// answer, as (source, destination, bytes).
    pub fn recv(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
    ) -> Vec<(SocketAddr, SocketAddr, Vec<u8>)> {
        self.received += 1;
        let at = self.at(now);
        let mut out = Vec::new();
        if let Some(t) = self
            .server
            .recv(Transmit::new(data, TransportType::Udp, from, to), at)
        {
            let t = t.build();
            // turn-server-proto 0.7.3 addresses its Binding responses to its own
            // address (`handle_stun_binding` sends to `transmit.to`); a reply goes back
            // to whoever asked.
            let dest = if t.to == self.addr { from } else { t.to };
            out.push((t.from, dest, t.data));
        }
        self.poll(now, &mut out);
        out
    }

    /// Its timers (allocation, permission and nonce expiry) and whatever it has to send.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
        let at = self.at(now);
        loop {
            match self.server.poll(at) {
                TurnServerPollRet::WaitUntil(t) => {
                    self.timer = Some(self.instant(t).max(now + Duration::from_millis(1)));
                    break;
                }
                TurnServerPollRet::AllocateSocket {
                    transport,
                    listen_addr,
                    client_addr,
                    allocation_transport,
                    family,
                } => {
                    let relayed = SocketAddr::new(self.addr.ip(), self.next_port);
                    self.next_port = self.next_port.wrapping_add(1).max(49_152);
                    self.relayed.push(relayed);
                    self.allocations += 1;
                    self.server.allocated_socket(
                        transport,
                        listen_addr,
                        client_addr,
                        allocation_transport,
                        family,
                        Ok(relayed),
                        at,
                    );
                }
                TurnServerPollRet::SocketClose { listen_addr, .. } => {
                    self.relayed.retain(|a| *a != listen_addr);
                }
                // UDP only: no TCP allocations.
                TurnServerPollRet::TcpConnect { .. } | TurnServerPollRet::TcpClose { .. } => {}
            }
        }
        while let Some(t) = self.server.poll_transmit(at) {
            out.push((t.from, t.to, t.data));
        }
    }
}
