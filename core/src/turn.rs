//! TURN relays for a node (RFC 8656 over UDP, long-term credentials), sans-IO, on the
//! `turn-client-proto` crate: one allocation per server, shared by every link of the
//! node, made from the node's own socket.
//!
//! The [`Node`](crate::node::Node) asks [`Relays`] to allocate at start; once a server
//! answers, its relayed address becomes a `relay` candidate of every connection (in the
//! SDP of later ones, trickled to the present ones). str0m then sends from the relayed
//! address: such a transmit is wrapped here (a Send indication, or ChannelData once a
//! channel is bound) and goes to the server from the node's socket. What the server
//! relays back is unwrapped here and handed to str0m as a datagram that came to the
//! relayed address. Permissions are installed for each remote candidate's address
//! (and on a send to an address without one); `turn-client-proto` refreshes the
//! allocation, its permissions and channels.
//!
//! A server that refuses us (bad credentials) or does not answer within
//! [`ALLOCATE_TIMEOUT`] is reported ([`TurnEvent::Failed`]) and dropped; the node goes on
//! with its other candidates.
//!
//! An allocation belongs to the 5-tuple it was made from. When our NAT forgets its
//! mapping and gives us a new external port, the server drops what we send (and, to a
//! refresh, answers 437, which `turn-client-proto` takes as success), so the relay
//! dies quietly. [`Relays::probe`] (called when a link goes quiet) asks each server for
//! a second allocation from the same socket: if the 5-tuple is still the one of our
//! allocation, the server refuses (437) and all is well; if the server grants it, our
//! mapping changed, and the new allocation replaces the old one (a new `relay`
//! candidate, [`TurnEvent::Allocated`] again).
//!
//! Randomness: `turn-client-proto` draws STUN transaction ids from the operating system,
//! as str0m draws DTLS randoms: datagram bytes differ between runs, the timeline does
//! not.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use turn_client_proto::api::{TurnConfig, TurnEvent as ProtoEvent, TurnPollRet, TurnRecvRet};
use turn_client_proto::prelude::*;
use turn_client_proto::stun::agent::Transmit;
use turn_client_proto::types::{TransportType, TurnCredentials};
use turn_client_proto::udp::TurnClientUdp;

/// The longest an allocation may take before its server is reported failed.
pub const ALLOCATE_TIMEOUT: Duration = Duration::from_secs(8);

/// A TURN server to relay through: its address and long-term credentials (what a
/// browser's `RTCIceServer` gives as `urls`, `username` and `credential`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TurnServer {
    /// The server's UDP address.
    pub addr: SocketAddr,
    /// The username.
    pub username: String,
    /// The password.
    pub credential: String,
}

/// Why a TURN server gives us no relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TurnFailure {
    /// It refused the allocation (bad credentials, quota, or a policy of the server).
    Refused,
    /// It did not answer within [`ALLOCATE_TIMEOUT`].
    Timeout,
    /// We have no local address of its family to reach it from.
    Unreachable,
}

impl TurnFailure {
    /// Its name in the line protocol: `refused`, `timeout`, `unreachable`.
    pub fn name(self) -> &'static str {
        match self {
            TurnFailure::Refused => "refused",
            TurnFailure::Timeout => "timeout",
            TurnFailure::Unreachable => "unreachable",
        }
    }
}

/// What happened with a TURN server.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TurnEvent {
    /// It gave us a relayed address (now a `relay` candidate of every connection).
    Allocated {
        /// The server.
        server: SocketAddr,
        /// The relayed address on it.
        relayed: SocketAddr,
    },
    /// It gives us no relay (the node goes on without it).
    Failed {
        /// The server.
        server: SocketAddr,
        /// Why.
        failure: TurnFailure,
    },
}

/// A failed allocation: refused if the server answered, else a timeout.
fn refusal(heard: bool) -> TurnFailure {
    if heard {
        TurnFailure::Refused
    } else {
        TurnFailure::Timeout
    }
}

/// What [`Relays::recv`] made of a datagram.
pub(crate) enum Received {
    /// Not from a TURN server of ours: handle it as usual.
    NotOurs,
    /// TURN's own traffic, taken.
    Taken,
    /// Data a peer sent to our relayed address.
    Peer {
        /// The peer.
        from: SocketAddr,
        /// Our relayed address it came to.
        relayed: SocketAddr,
        /// The data.
        data: Vec<u8>,
    },
}

/// A datagram for the node's socket.
pub(crate) struct Datagram {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub data: Vec<u8>,
}

/// Whether a datagram is DTLS (first byte 20-63, RFC 7983): once ICE has chosen a
/// pair, DTLS and the SCTP it carries go on that pair only.
pub(crate) fn is_dtls(data: &[u8]) -> bool {
    data.first().is_some_and(|b| (20..64).contains(b))
}

/// Moves a probe of `r` on: the relayed address of its allocation once the server
/// granted it (the probe's client then is `r`'s), else none. A probe refused (437: the
/// old allocation is still ours) or unanswered is dropped.
fn probe_progress(
    r: &mut Relay,
    at: turn_client_proto::stun::Instant,
    now: Instant,
    out: &mut Vec<Datagram>,
    next: &mut Option<Instant>,
    epoch: Instant,
) -> Option<SocketAddr> {
    let (probe, deadline) = r.probe.as_mut()?;
    let deadline = *deadline;
    let wait = match probe.poll(at) {
        TurnPollRet::WaitUntil(t) => Some(t),
        _ => None,
    };
    let mut granted = None;
    let mut done = wait.is_none() || now >= deadline;
    while let Some(e) = probe.poll_event() {
        match e {
            ProtoEvent::AllocationCreated(TransportType::Udp, relayed) => granted = Some(relayed),
            ProtoEvent::AllocationCreateFailed(_) => done = true,
            _ => {}
        }
    }
    drain(probe, at, out);
    if let Some(relayed) = granted {
        let (client, _) = r.probe.take()?;
        r.client = client;
        return Some(relayed);
    }
    if done {
        r.probe = None;
    } else if let Some(t) = wait {
        let t = epoch + Duration::from_nanos(u64::try_from(t.as_nanos()).unwrap_or(0));
        let t = t.min(deadline);
        *next = Some(next.map_or(t, |n| n.min(t)));
    }
    None
}

/// Moves what `client` has to send to its server into `out`.
fn drain(
    client: &mut TurnClientUdp,
    at: turn_client_proto::stun::Instant,
    out: &mut Vec<Datagram>,
) {
    while let Some(t) = client.poll_transmit(at) {
        out.push(Datagram {
            source: t.from,
            destination: t.to,
            data: t.data.to_vec(),
        });
    }
}

struct Relay {
    server: SocketAddr,
    client: TurnClientUdp,
    relayed: Option<SocketAddr>,
    /// Peer addresses a channel was asked for (once each: coturn refuses a second
    /// number for the same peer).
    channels: BTreeSet<SocketAddr>,
    deadline: Instant,
    /// Whether the server ever answered (a failure without an answer is a timeout).
    heard: bool,
    /// What the allocation was made with, for a probe.
    config: TurnConfig,
    /// A second allocation asked for by [`Relays::probe`], until this instant.
    probe: Option<(TurnClientUdp, Instant)>,
}

/// The node's TURN allocations. See the module docs.
pub(crate) struct Relays {
    epoch: Instant,
    relays: Vec<Relay>,
    events: Vec<TurnEvent>,
    /// Addresses of remote candidates: permitted on every allocation, also on those
    /// made after they came.
    permitted: BTreeSet<IpAddr>,
    /// A request (permission, channel) was made since the last [`Relays::progress`],
    /// which sends it.
    asked: bool,
}

impl Relays {
    /// Allocations on `servers`, each from `base_for(server)`, our address of its family.
    pub(crate) fn new(
        servers: &[TurnServer],
        base_for: impl Fn(SocketAddr) -> Option<SocketAddr>,
        now: Instant,
    ) -> Relays {
        let mut relays = Relays {
            epoch: now,
            relays: Vec::new(),
            events: Vec::new(),
            permitted: BTreeSet::new(),
            asked: false,
        };
        relays.add(servers, base_for, now);
        relays
    }

    /// Starts an allocation on each server not asked yet (one of the same address is
    /// skipped); one we have no address to reach is reported failed.
    pub(crate) fn add(
        &mut self,
        servers: &[TurnServer],
        base_for: impl Fn(SocketAddr) -> Option<SocketAddr>,
        now: Instant,
    ) {
        for s in servers {
            if self.relays.iter().any(|r| r.server == s.addr) {
                continue;
            }
            let Some(local) = base_for(s.addr) else {
                self.events.push(TurnEvent::Failed {
                    server: s.addr,
                    failure: TurnFailure::Unreachable,
                });
                continue;
            };
            let mut config = TurnConfig::new(TurnCredentials::new(&s.username, &s.credential));
            config.set_request_retransmits(
                Duration::from_millis(250),
                Duration::from_secs(2),
                5,
                Duration::from_secs(2),
            );
            self.relays.push(Relay {
                server: s.addr,
                client: TurnClientUdp::allocate(local, s.addr, config.clone()),
                relayed: None,
                channels: BTreeSet::new(),
                deadline: now + ALLOCATE_TIMEOUT,
                heard: false,
                config,
                probe: None,
            });
            self.asked = true;
        }
    }

    /// Checks that each allocation still belongs to our socket's present mapping (see
    /// the module docs); one probe per allocation at a time. Sets [`Relays::asked`].
    pub(crate) fn probe(&mut self, now: Instant) {
        for r in &mut self.relays {
            if r.relayed.is_some() && r.probe.is_none() {
                let local = r.client.local_addr();
                let client = TurnClientUdp::allocate(local, r.server, r.config.clone());
                r.probe = Some((client, now + ALLOCATE_TIMEOUT));
                self.asked = true;
            }
        }
    }

    fn at(&self, now: Instant) -> turn_client_proto::stun::Instant {
        let nanos = now.saturating_duration_since(self.epoch).as_nanos();
        turn_client_proto::stun::Instant::from_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
    }

    /// Whether a request was made that [`Relays::progress`] has to send.
    pub(crate) fn asked(&self) -> bool {
        self.asked
    }

    /// Whether no allocation is made or under way.
    pub(crate) fn is_empty(&self) -> bool {
        self.relays.is_empty()
    }

    /// Our relayed addresses, each with the local address its server is reached from.
    pub(crate) fn relayed(&self) -> impl Iterator<Item = (SocketAddr, SocketAddr)> + '_ {
        self.relays
            .iter()
            .filter_map(|r| r.relayed.map(|a| (a, r.client.local_addr())))
    }

    /// Whether `addr` is one of our relayed addresses.
    pub(crate) fn is_relayed(&self, addr: SocketAddr) -> bool {
        self.relays.iter().any(|r| r.relayed == Some(addr))
    }

    /// Lets `ip` send to us through every allocation (a remote candidate's address),
    /// now and on the allocations still to come.
    pub(crate) fn permit(&mut self, now: Instant, ip: IpAddr) {
        if ip.is_unspecified() || !self.permitted.insert(ip) {
            return;
        }
        if ip.is_loopback() && !self.relays.iter().any(|r| r.server.ip().is_loopback()) {
            // A server off this host cannot relay to our loopback (coturn refuses).
            return;
        }
        let at = self.at(now);
        for r in &mut self.relays {
            if r.relayed.is_some_and(|a| a.is_ipv4() == ip.is_ipv4()) {
                let _ = r.client.create_permission(TransportType::Udp, ip, at);
                self.asked = true;
            }
        }
    }

    /// str0m's transmit from our relayed address `source`: the datagram to send to the
    /// server, or none (no permission for `destination` yet: one is asked for, and ICE
    /// retransmits). A request made here (a permission, a channel) sets
    /// [`Relays::asked`].
    pub(crate) fn send(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        data: &[u8],
    ) -> Option<Datagram> {
        let at = self.at(now);
        let r = self.relays.iter_mut().find(|r| r.relayed == Some(source))?;
        if destination.ip().is_loopback() && !r.server.ip().is_loopback() {
            return None;
        }
        match r.client.send_to(TransportType::Udp, destination, data, at) {
            Ok(Some(t)) => {
                let t = t.build();
                // A channel (4 bytes of framing instead of 36) for the selected path
                // only: DTLS goes nowhere else. Binding one for every checked address
                // made coturn drop the allocation.
                if is_dtls(data) && r.channels.insert(destination) {
                    let _ = r.client.bind_channel(TransportType::Udp, destination, at);
                    self.asked = true;
                }
                Some(Datagram {
                    source: t.from,
                    destination: t.to,
                    data: t.data,
                })
            }
            Ok(None) => None,
            Err(_) => {
                let _ = r
                    .client
                    .create_permission(TransportType::Udp, destination.ip(), at);
                self.asked = true;
                None
            }
        }
    }

    /// A datagram that came from `from` to our `to`.
    pub(crate) fn recv(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        data: &[u8],
    ) -> Received {
        let at = self.at(now);
        let Some(r) = self
            .relays
            .iter_mut()
            .find(|r| r.server == from && r.client.local_addr() == to)
        else {
            return Received::NotOurs;
        };
        let relayed = r.relayed;
        r.heard = true;
        match r
            .client
            .recv(Transmit::new(data, TransportType::Udp, from, to), at)
        {
            TurnRecvRet::Handled | TurnRecvRet::PeerIcmp { .. } => Received::Taken,
            // An answer to a probe (same 5-tuple, its own transactions).
            TurnRecvRet::Ignored(_) => match r
                .probe
                .as_mut()
                .map(|(p, _)| p.recv(Transmit::new(data, TransportType::Udp, from, to), at))
            {
                Some(TurnRecvRet::Handled) => {
                    self.asked = true;
                    Received::Taken
                }
                _ => Received::NotOurs,
            },
            TurnRecvRet::PeerData(d) => match relayed {
                Some(relayed) => Received::Peer {
                    from: d.peer,
                    relayed,
                    data: d.data().to_vec(),
                },
                None => Received::Taken,
            },
        }
    }

    /// Time passed, or something came in: the datagrams to send, and the events (an
    /// allocation made, a server given up). Returns when it next wants to be asked.
    pub(crate) fn progress(
        &mut self,
        now: Instant,
        out: &mut Vec<Datagram>,
        events: &mut Vec<TurnEvent>,
    ) -> Option<Instant> {
        events.append(&mut self.events);
        self.asked = false;
        let at = self.at(now);
        let epoch = self.epoch;
        let mut next: Option<Instant> = None;
        let mut failed = Vec::new();
        for (i, r) in self.relays.iter_mut().enumerate() {
            let wait = match r.client.poll(at) {
                TurnPollRet::WaitUntil(t) => Some(t),
                TurnPollRet::Closed => {
                    if r.relayed.is_none() {
                        failed.push((i, refusal(r.heard)));
                    }
                    None
                }
                _ => None,
            };
            while let Some(e) = r.client.poll_event() {
                match e {
                    ProtoEvent::AllocationCreated(TransportType::Udp, relayed)
                        if r.relayed.is_none() =>
                    {
                        r.relayed = Some(relayed);
                        for ip in &self.permitted {
                            if ip.is_ipv4() == relayed.is_ipv4() {
                                let _ = r.client.create_permission(TransportType::Udp, *ip, at);
                            }
                        }
                        events.push(TurnEvent::Allocated {
                            server: r.server,
                            relayed,
                        });
                    }
                    ProtoEvent::AllocationCreateFailed(_) if r.relayed.is_none() => {
                        failed.push((i, refusal(r.heard)));
                    }
                    _ => {}
                }
            }
            drain(&mut r.client, at, out);
            if let Some(relayed) = probe_progress(r, at, now, out, &mut next, epoch) {
                // Our mapping changed: the new allocation is the one that works.
                r.relayed = Some(relayed);
                r.channels.clear();
                for ip in &self.permitted {
                    if ip.is_ipv4() == relayed.is_ipv4() {
                        let _ = r.client.create_permission(TransportType::Udp, *ip, at);
                    }
                }
                drain(&mut r.client, at, out);
                events.push(TurnEvent::Allocated {
                    server: r.server,
                    relayed,
                });
            }
            if r.relayed.is_none() && now >= r.deadline {
                failed.push((i, TurnFailure::Timeout));
            }
            if let Some(t) = wait {
                let t = epoch + Duration::from_nanos(u64::try_from(t.as_nanos()).unwrap_or(0));
                let t = if r.relayed.is_none() {
                    t.min(r.deadline)
                } else {
                    t
                };
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        failed.dedup_by_key(|f| f.0);
        for (i, failure) in failed.into_iter().rev() {
            let r = self.relays.remove(i);
            events.push(TurnEvent::Failed {
                server: r.server,
                failure,
            });
        }
        next
    }

    /// Gives the allocations back (best effort, on close).
    pub(crate) fn delete(&mut self, now: Instant, out: &mut Vec<Datagram>) {
        let at = self.at(now);
        for r in &mut self.relays {
            if r.relayed.is_some() && r.client.delete(at).is_ok() {
                drain(&mut r.client, at, out);
            }
        }
        self.relays.clear();
    }
}
