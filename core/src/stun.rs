//! A sans-IO STUN binding client (RFC 8489 §6, no authentication): asks STUN servers
//! which address the datagrams of our UDP socket come from, for server-reflexive ICE
//! candidates. str0m gathers none itself.
//!
//! The client shares the node's socket: a runtime (or [`Node`](crate::node::Node))
//! offers it each datagram first, through [`StunClient::handle_datagram`], which takes
//! only binding responses from a configured server carrying one of our transaction ids.
//! Requests are retransmitted (RTO doubling from `rto`, at most `max_sends`); a server
//! that never answers, or answers with an error, is reported
//! [`StunEvent::Failed`]. Messages are built and parsed by the `stun-types` crate; the
//! transaction ids come from the client's seeded generator, so a run is repeatable.
//!
//! Drain [`StunClient::poll_output`] until [`StunOutput::Timeout`], as every state
//! machine of core is drained.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use rtc_mesh_core::stun::{StunClient, StunEvent, StunOutput};
//!
//! let server = "127.0.0.1:3478".parse().unwrap();
//! let now = Instant::now();
//! let mut client = StunClient::new(vec![server], 7, now);
//! client.start(now);
//! let StunOutput::Transmit { server: to, data: request } = client.poll_output() else {
//!     panic!("a request first")
//! };
//! assert_eq!(to, server);
//! // ... send `request`; when the answer comes back on the same socket:
//! # let answer = rtc_mesh_core::stun::binding_success(&request, "203.0.113.9:40000".parse().unwrap()).unwrap();
//! assert!(client.handle_datagram(now, server, &answer));
//! assert_eq!(
//!     client.poll_output(),
//!     StunOutput::Event(StunEvent::Mapped { server, mapped: "203.0.113.9:40000".parse().unwrap() })
//! );
//! assert!(matches!(client.poll_output(), StunOutput::Timeout(_)));
//! ```

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stun_types::attribute::XorMappedAddress;
use stun_types::message::{
    Message, MessageClass, MessageType, MessageWrite, MessageWriteVec, TransactionId, BINDING,
};
use stun_types::prelude::*;

/// What the client found out.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StunEvent {
    /// `server` sees our datagrams coming from `mapped`.
    Mapped {
        /// The server asked.
        server: SocketAddr,
        /// Our address as the server sees it.
        mapped: SocketAddr,
    },
    /// `server` did not answer (after every retransmission) or answered with an error.
    Failed {
        /// The server asked.
        server: SocketAddr,
    },
}

/// What [`StunClient::poll_output`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StunOutput {
    /// Send this request to `server` from the node's socket.
    Transmit {
        /// The STUN server.
        server: SocketAddr,
        /// The datagram.
        data: Vec<u8>,
    },
    /// A result.
    Event(StunEvent),
    /// Nothing more until a datagram or this instant (then call `handle_timeout`).
    Timeout(Instant),
}

#[derive(Debug)]
enum State {
    Asking {
        trans: u128,
        sends: u32,
        next: Instant,
        rto: Duration,
    },
    Done,
}

#[derive(Debug)]
struct Server {
    addr: SocketAddr,
    state: State,
}

/// The binding client. See the module docs.
#[derive(Debug)]
pub struct StunClient {
    servers: Vec<Server>,
    out: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<StunEvent>,
    rng: u64,
    /// First retransmission timeout (default 250 ms, doubling).
    pub rto: Duration,
    /// Requests per server before it is reported failed (default 6: about 8 s).
    pub max_sends: u32,
    started: bool,
    /// The latest instant seen.
    now: Instant,
}

impl StunClient {
    /// A client for `servers`, made at `now`; `seed` makes the transaction ids.
    pub fn new(servers: Vec<SocketAddr>, seed: u64, now: Instant) -> Self {
        StunClient {
            servers: servers
                .into_iter()
                .map(|addr| Server {
                    addr,
                    state: State::Done,
                })
                .collect(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            rng: seed ^ 0x5354_554e | 1,
            rto: Duration::from_millis(250),
            max_sends: 6,
            started: false,
            now,
        }
    }

    /// Adds a server (if new), and asks it at once.
    pub fn add(&mut self, now: Instant, addr: SocketAddr) {
        self.now = self.now.max(now);
        if self.servers.iter().any(|s| s.addr == addr) {
            return;
        }
        let state = State::Asking {
            trans: self.next_trans(),
            sends: 0,
            next: now,
            rto: self.rto,
        };
        self.servers.push(Server { addr, state });
        self.started = true;
        self.handle_timeout(now);
    }

    /// Whether a server is still being asked (a request will be retransmitted).
    pub fn is_asking(&self) -> bool {
        self.servers
            .iter()
            .any(|s| matches!(s.state, State::Asking { .. }))
    }

    /// Whether no server is configured.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    fn next_trans(&mut self) -> u128 {
        let mut half = || crate::rng::next(&mut self.rng);
        // 96 bits.
        ((half() as u128) << 32 | (half() >> 32) as u128) & ((1u128 << 96) - 1)
    }

    /// Sends the first requests (again, if called later: a fresh round).
    pub fn start(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.started = true;
        for i in 0..self.servers.len() {
            let trans = self.next_trans();
            self.servers[i].state = State::Asking {
                trans,
                sends: 0,
                next: now,
                rto: self.rto,
            };
        }
        self.handle_timeout(now);
    }

    /// Time passed: retransmits, and gives up on silent servers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let max_sends = self.max_sends;
        for s in &mut self.servers {
            let State::Asking {
                trans,
                sends,
                next,
                rto,
            } = &mut s.state
            else {
                continue;
            };
            if now < *next {
                continue;
            }
            if *sends >= max_sends {
                s.state = State::Done;
                self.events.push_back(StunEvent::Failed { server: s.addr });
                continue;
            }
            let mtype = MessageType::from_class_method(MessageClass::Request, BINDING);
            let msg = Message::builder(mtype, TransactionId::from(*trans), MessageWriteVec::new())
                .finish();
            self.out.push_back((s.addr, msg));
            *sends += 1;
            *next = now + *rto;
            *rto *= 2;
        }
    }

    /// Offers a datagram that arrived from `from`. Returns whether it was ours (a
    /// binding response from a server we are asking, with our transaction id); any
    /// other datagram is left for the caller.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> bool {
        self.now = self.now.max(now);
        // STUN starts with two zero bits; a quick test before parsing.
        if !self.started || data.len() < 20 || data[0] & 0xc0 != 0 {
            return false;
        }
        let Some(s) = self.servers.iter_mut().find(|s| s.addr == from) else {
            return false;
        };
        let State::Asking { trans, .. } = s.state else {
            return false;
        };
        let Ok(msg) = Message::from_bytes(data) else {
            return false;
        };
        let tid = msg.transaction_id();
        if u128::from(tid) != trans || !msg.has_method(BINDING) || !msg.is_response() {
            return false;
        }
        let mapped = if msg.has_class(MessageClass::Success) {
            msg.attribute::<XorMappedAddress>()
                .map(|a| a.addr(tid))
                .ok()
        } else {
            None
        };
        s.state = State::Done;
        self.events.push_back(match mapped {
            Some(mapped) => StunEvent::Mapped {
                server: s.addr,
                mapped,
            },
            None => StunEvent::Failed { server: s.addr },
        });
        true
    }

    /// The next thing to do: requests to send first, then results; a drain ends with
    /// [`StunOutput::Timeout`] (far ahead once no server is being asked).
    pub fn poll_output(&mut self) -> StunOutput {
        if let Some((server, data)) = self.out.pop_front() {
            return StunOutput::Transmit { server, data };
        }
        if let Some(e) = self.events.pop_front() {
            return StunOutput::Event(e);
        }
        let next = self
            .servers
            .iter()
            .filter_map(|s| match s.state {
                State::Asking { next, .. } => Some(next),
                State::Done => None,
            })
            .min();
        StunOutput::Timeout(next.unwrap_or(self.now + crate::signal_client::IDLE))
    }
}

/// The success response a STUN server would send to `request`, reporting `mapped`
/// (for tests and simulations: a STUN server in a few lines). `None` if `request` is
/// not a binding request.
pub fn binding_success(request: &[u8], mapped: SocketAddr) -> Option<Vec<u8>> {
    let req = Message::from_bytes(request).ok()?;
    if !req.has_method(BINDING) || !req.has_class(MessageClass::Request) {
        return None;
    }
    let mut w = Message::builder_success(&req, MessageWriteVec::new());
    w.add_attribute(&XorMappedAddress::new(mapped, req.transaction_id()))
        .ok()?;
    Some(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn transmit(c: &mut StunClient) -> Option<(SocketAddr, Vec<u8>)> {
        match c.poll_output() {
            StunOutput::Transmit { server, data } => Some((server, data)),
            StunOutput::Event(e) => panic!("{e:?} before a request"),
            StunOutput::Timeout(_) => None,
        }
    }

    fn event(c: &mut StunClient) -> Option<StunEvent> {
        match c.poll_output() {
            StunOutput::Event(e) => Some(e),
            StunOutput::Transmit { .. } => panic!("a request before the event"),
            StunOutput::Timeout(_) => None,
        }
    }

    #[test]
    fn asks_every_server_and_reports_the_mapped_address() {
        let (a, b) = (addr("127.0.0.1:3478"), addr("[::1]:3478"));
        let now = Instant::now();
        let mut c = StunClient::new(vec![a, b], 1, now);
        c.start(now);
        let (to_a, req_a) = transmit(&mut c).unwrap();
        let (to_b, req_b) = transmit(&mut c).unwrap();
        assert_eq!((to_a, to_b), (a, b));
        assert_ne!(req_a, req_b, "distinct transaction ids");
        let m = addr("198.51.100.7:5000");
        // The answer to a's request does not count coming from b.
        let ans_a = binding_success(&req_a, m).unwrap();
        assert!(!c.handle_datagram(now, b, &ans_a));
        assert!(c.handle_datagram(now, a, &ans_a));
        assert_eq!(
            event(&mut c),
            Some(StunEvent::Mapped {
                server: a,
                mapped: m
            })
        );
        // A duplicate is no longer ours.
        assert!(!c.handle_datagram(now, a, &ans_a));
        let m6 = addr("[2001:db8::1]:6000");
        assert!(c.handle_datagram(now, b, &binding_success(&req_b, m6).unwrap()));
        assert_eq!(
            event(&mut c),
            Some(StunEvent::Mapped {
                server: b,
                mapped: m6
            })
        );
        assert!(!c.is_asking());
    }

    #[test]
    fn retransmits_with_backoff_then_gives_up() {
        let s = addr("127.0.0.1:3478");
        let t0 = Instant::now();
        let mut c = StunClient::new(vec![s], 2, t0);
        c.start(t0);
        let first = transmit(&mut c).unwrap().1;
        let mut at = t0;
        let mut gaps = Vec::new();
        while c.is_asking() {
            let StunOutput::Timeout(next) = c.poll_output() else {
                panic!("drained")
            };
            gaps.push(next - at);
            at = next;
            c.handle_timeout(at);
            if c.is_asking() {
                let (_, again) = transmit(&mut c).expect("a retransmission");
                assert_eq!(again, first, "a retransmission is the same request");
            }
        }
        let ms: Vec<u128> = gaps.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, [250, 500, 1000, 2000, 4000, 8000]);
        assert_eq!(event(&mut c), Some(StunEvent::Failed { server: s }));
    }

    #[test]
    fn foreign_and_malformed_datagrams_are_left_alone() {
        let s = addr("127.0.0.1:3478");
        let now = Instant::now();
        let mut c = StunClient::new(vec![s], 3, now);
        c.start(now);
        let (_, req) = transmit(&mut c).unwrap();
        // Another transaction's answer, a request, garbage, a truncated answer.
        let mut other = req.clone();
        other[19] ^= 1;
        let other = binding_success(&other, addr("10.0.0.1:1")).unwrap();
        let ours = binding_success(&req, addr("10.0.0.1:1")).unwrap();
        for d in [
            &other[..],
            &req[..],
            &[0u8; 3][..],
            &[0xffu8; 40][..],
            &ours[..ours.len() - 4],
        ] {
            assert!(!c.handle_datagram(now, s, d));
        }
        assert_eq!(event(&mut c), None);
        for n in 0..ours.len() {
            let mut bad = ours.clone();
            bad[n] ^= 0x5a;
            // Never panics; a corrupted answer is ours only if it still parses as one.
            c.handle_datagram(now, s, &bad);
        }
    }
}
