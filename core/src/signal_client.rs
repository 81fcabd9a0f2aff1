//! The signalling client's decisions, sans-IO: when to (re)connect, what to send after
//! a reconnect, what to queue while disconnected.
//!
//! A runtime owns the WebSocket. It opens one when [`ClientOutput::Connect`] comes out
//! and reports [`handle_connected`](SignalClient::handle_connected) or
//! [`handle_disconnected`](SignalClient::handle_disconnected); it gives every received
//! text to [`handle_text`](SignalClient::handle_text), sends what [`ClientOutput::Send`]
//! says, closes the socket at [`ClientOutput::Close`], and calls
//! [`handle_timeout`](SignalClient::handle_timeout) at the instant of
//! [`ClientOutput::Timeout`], which ends every drain of
//! [`poll_output`](SignalClient::poll_output).
//!
//! A [`Mesh`](crate::mesh::Mesh) holds one: a member's runtime moves the Mesh's
//! signalling outputs to a WebSocket and nothing else. The runtimes' `Signaller` drives
//! one on its own, for programs that speak to a switchboard without joining a room.
//!
//! - Messages sent while disconnected are queued (bounded: the oldest are dropped
//!   and counted past [`ClientConfig::max_queue`]) and go out, in order, after the
//!   announce on the next connection.
//! - The last announce ([`announce`](SignalClient::announce)) is remembered and sent
//!   again first after every reconnect, so the switchboard knows us again.
//! - Reconnects back off: `min_backoff` doubling to `max_backoff`, with jitter from a
//!   seeded generator; a connection that stays up resets it.
//! - [`close`](SignalClient::close) sends what is pending on an open connection, then
//!   [`ClientOutput::Close`]; nothing is sent or connected after it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::signal::{Signal, SignalError, SignalLimits};

/// How far ahead a state machine with nothing scheduled asks to be woken
/// (`poll_output` always ends in a `Timeout` instant).
pub(crate) const IDLE: Duration = Duration::from_secs(3600);

/// Timers and bounds of a [`SignalClient`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// First reconnect delay (default 50 ms, as rtc-signaller).
    pub min_backoff: Duration,
    /// Longest reconnect delay (default 5 s).
    pub max_backoff: Duration,
    /// Most messages queued while disconnected (default 4,096).
    pub max_queue: usize,
    /// Seed for the backoff jitter (a [`Mesh`](crate::mesh::Mesh) derives it from its
    /// own seed).
    pub seed: u64,
    /// Bounds on received messages.
    pub limits: SignalLimits,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            min_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(5),
            max_queue: 4096,
            seed: 0x5eed,
            limits: SignalLimits::default(),
        }
    }
}

/// What the runtime must do, or what arrived.
#[derive(Clone, Debug, PartialEq)]
pub enum ClientOutput {
    /// Open the WebSocket now (then report `handle_connected` or `handle_disconnected`).
    Connect,
    /// Send this text frame on the open WebSocket.
    Send(String),
    /// Close the WebSocket (after sending what came before), or give up opening it:
    /// the client was closed.
    Close,
    /// A message from the server.
    Message(Signal),
    /// A text from the server that is not a valid message (dropped).
    BadMessage(SignalError),
    /// The connection is up (after any announce and queued messages were handed out).
    Connected,
    /// The connection is down; a reconnect is scheduled.
    Disconnected,
    /// Nothing more until an input or this instant (then call `handle_timeout`).
    Timeout(Instant),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting to connect at this instant.
    Waiting(Instant),
    Connecting,
    Connected(Instant),
    Closed,
}

/// See the module docs.
#[derive(Debug)]
pub struct SignalClient {
    config: ClientConfig,
    state: State,
    backoff: Duration,
    rng: u64,
    announce: Option<String>,
    queue: VecDeque<String>,
    out: VecDeque<ClientOutput>,
    dropped: u64,
    /// The latest instant seen.
    now: Instant,
    /// Connections that opened.
    connections: u64,
}

impl SignalClient {
    /// A client that connects at once: the first output is [`ClientOutput::Connect`].
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        SignalClient {
            backoff: config.min_backoff,
            rng: config.seed | 1,
            config,
            state: State::Connecting,
            announce: None,
            queue: VecDeque::new(),
            out: VecDeque::from([ClientOutput::Connect]),
            dropped: 0,
            now,
            connections: 0,
        }
    }

    /// Is the WebSocket up?
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected(_))
    }

    /// Has [`close`](Self::close) been called?
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// How many times a connection opened (so a second one is a reconnect).
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// Messages dropped from a full queue.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Sends `msg` now, or after the next (re)connect.
    pub fn send(&mut self, msg: &Signal) {
        self.send_text(msg.encode());
    }

    /// Sends a text now, or queues it.
    pub fn send_text(&mut self, text: String) {
        match self.state {
            State::Connected(_) => self.out.push_back(ClientOutput::Send(text)),
            State::Closed => {}
            _ => {
                if self.queue.len() == self.config.max_queue {
                    self.queue.pop_front();
                    self.dropped += 1;
                }
                self.queue.push_back(text);
            }
        }
    }

    /// Sends `msg` (an `/announce`) and sends it again first after every reconnect.
    pub fn announce(&mut self, msg: &Signal) {
        self.announce_text(msg.encode());
    }

    /// [`announce`](Self::announce) for an already encoded `/announce|...` text.
    pub fn announce_text(&mut self, text: String) {
        if self.is_closed() {
            return;
        }
        if self.is_connected() {
            self.out.push_back(ClientOutput::Send(text.clone()));
        }
        self.announce = Some(text);
    }

    /// The WebSocket opened.
    pub fn handle_connected(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.is_closed() {
            // Opened after we gave up: close it.
            self.out.push_back(ClientOutput::Close);
            return;
        }
        self.state = State::Connected(now);
        self.connections += 1;
        if let Some(a) = &self.announce {
            self.out.push_back(ClientOutput::Send(a.clone()));
        }
        // Then what was queued (announces are never queued: the one above is the last).
        while let Some(t) = self.queue.pop_front() {
            self.out.push_back(ClientOutput::Send(t));
        }
        self.out.push_back(ClientOutput::Connected);
    }

    /// The WebSocket failed to open, or closed.
    pub fn handle_disconnected(&mut self, now: Instant) {
        self.now = self.now.max(now);
        match self.state {
            State::Closed | State::Waiting(_) => return,
            State::Connected(since)
                if now.saturating_duration_since(since) >= self.config.max_backoff =>
            {
                // It was up for a while: start over from the shortest delay.
                self.backoff = self.config.min_backoff;
            }
            _ => {}
        }
        let was_connected = self.is_connected();
        // Jitter: 50-100% of the delay.
        let delay = crate::rng::jitter(&mut self.rng, self.backoff);
        self.backoff = (self.backoff * 2).min(self.config.max_backoff);
        self.state = State::Waiting(now + delay);
        if was_connected {
            self.out.push_back(ClientOutput::Disconnected);
        }
    }

    /// A text frame arrived: out comes [`ClientOutput::Message`] (or `BadMessage`).
    pub fn handle_text(&mut self, now: Instant, text: &str) {
        self.now = self.now.max(now);
        match Signal::parse(text, &self.config.limits) {
            Ok(m) => self.out.push_back(ClientOutput::Message(m)),
            Err(e) => self.out.push_back(ClientOutput::BadMessage(e)),
        }
    }

    /// Stops: what is pending goes out on an open connection, then
    /// [`ClientOutput::Close`]; queued messages of a closed connection are dropped.
    pub fn close(&mut self) {
        if self.is_closed() {
            return;
        }
        self.state = State::Closed;
        self.queue.clear();
        self.out.push_back(ClientOutput::Close);
    }

    /// Time passed: connects when the backoff delay is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if let State::Waiting(t) = self.state {
            if now >= t {
                self.state = State::Connecting;
                self.out.push_back(ClientOutput::Connect);
            }
        }
    }

    /// The next thing to do; a drain ends with [`ClientOutput::Timeout`].
    pub fn poll_output(&mut self) -> ClientOutput {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        ClientOutput::Timeout(match self.state {
            State::Waiting(t) => t,
            _ => self.now + IDLE,
        })
    }

    /// Whether [`poll_output`](Self::poll_output) has something before its `Timeout`.
    pub(crate) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }
}

/// What a runtime's signalling connection reports to its user.
#[derive(Clone, Debug, PartialEq)]
pub enum SignalEvent {
    /// Connected (and the last announce, then queued messages, were sent).
    Connected,
    /// The connection dropped; reconnecting.
    Disconnected,
    /// A message from the server.
    Message(Signal),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Object;

    fn drain(c: &mut SignalClient) -> Vec<ClientOutput> {
        let mut v = Vec::new();
        loop {
            match c.poll_output() {
                ClientOutput::Timeout(_) => return v,
                o => v.push(o),
            }
        }
    }

    fn timeout(c: &mut SignalClient) -> Instant {
        match c.poll_output() {
            ClientOutput::Timeout(t) => t,
            o => panic!("{o:?} before the timeout"),
        }
    }

    #[test]
    fn queues_while_down_and_reannounces_after_a_reconnect() {
        let t0 = Instant::now();
        let mut c = SignalClient::new(ClientConfig::default(), t0);
        assert_eq!(drain(&mut c), [ClientOutput::Connect]);
        let ann = Signal::announce("a", Object::new());
        c.announce(&ann);
        c.send(&Signal::new("x", "a", vec![]));
        c.handle_connected(t0);
        assert_eq!(
            drain(&mut c),
            [
                ClientOutput::Send(ann.encode()),
                ClientOutput::Send("/x|a".into()),
                ClientOutput::Connected
            ]
        );
        c.handle_disconnected(t0);
        assert_eq!(drain(&mut c), [ClientOutput::Disconnected]);
        c.send(&Signal::new("y", "a", vec![]));
        let t = timeout(&mut c);
        assert!(t > t0 && t <= t0 + Duration::from_millis(50));
        c.handle_timeout(t);
        assert_eq!(drain(&mut c), [ClientOutput::Connect]);
        // Failing again doubles the delay.
        c.handle_disconnected(t);
        let t2 = timeout(&mut c);
        assert!(t2 >= t + Duration::from_millis(50) && t2 <= t + Duration::from_millis(100));
        c.handle_timeout(t2);
        drain(&mut c);
        c.handle_connected(t2);
        assert_eq!(
            drain(&mut c),
            [
                ClientOutput::Send(ann.encode()),
                ClientOutput::Send("/y|a".into()),
                ClientOutput::Connected
            ]
        );
        assert_eq!(c.connections(), 2);
        // Nothing scheduled: a far timeout, never none.
        assert!(timeout(&mut c) >= t2 + IDLE);
    }

    #[test]
    fn the_queue_is_bounded() {
        let t0 = Instant::now();
        let cfg = ClientConfig {
            max_queue: 2,
            ..ClientConfig::default()
        };
        let mut c = SignalClient::new(cfg, t0);
        for i in 0..5 {
            c.send_text(format!("/m|a|{i}"));
        }
        assert_eq!(c.dropped(), 3);
        c.handle_connected(t0);
        assert_eq!(
            drain(&mut c),
            [
                ClientOutput::Connect,
                ClientOutput::Send("/m|a|3".into()),
                ClientOutput::Send("/m|a|4".into()),
                ClientOutput::Connected
            ]
        );
    }

    #[test]
    fn close_sends_what_is_pending_then_closes() {
        let t0 = Instant::now();
        let mut c = SignalClient::new(ClientConfig::default(), t0);
        c.handle_connected(t0);
        drain(&mut c);
        c.send_text("/leave|a".into());
        c.close();
        c.send_text("/late|a".into());
        assert_eq!(
            drain(&mut c),
            [ClientOutput::Send("/leave|a".into()), ClientOutput::Close]
        );
        // A connection that opens after the close is closed again; nothing reconnects.
        c.handle_disconnected(t0);
        c.handle_connected(t0);
        assert_eq!(drain(&mut c), [ClientOutput::Close]);
        c.handle_timeout(t0 + Duration::from_secs(60));
        assert_eq!(drain(&mut c), []);
    }

    #[test]
    fn closing_while_down_drops_the_queue() {
        let t0 = Instant::now();
        let mut c = SignalClient::new(ClientConfig::default(), t0);
        drain(&mut c);
        c.send_text("/x|a".into());
        c.close();
        assert_eq!(drain(&mut c), [ClientOutput::Close]);
    }

    #[test]
    fn texts_are_parsed_once_and_bad_ones_reported() {
        let t0 = Instant::now();
        let mut c = SignalClient::new(ClientConfig::default(), t0);
        drain(&mut c);
        c.handle_text(t0, "/x|a");
        c.handle_text(t0, "");
        let out = drain(&mut c);
        assert!(matches!(&out[0], ClientOutput::Message(m) if m.command == "x"));
        assert!(matches!(&out[1], ClientOutput::BadMessage(_)));
    }
}
