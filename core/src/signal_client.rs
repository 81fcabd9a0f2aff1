//! The signalling client's decisions, sans-IO: when to (re)connect, what to send after
//! a reconnect, what to queue while disconnected.
//!
//! A runtime owns the WebSocket. It connects when [`ClientOutput::Connect`] comes out,
//! reports [`connected`](SignalClient::connected) / [`disconnected`](SignalClient::disconnected)
//! and every received text, sends what [`ClientOutput::Send`] says, and calls
//! [`handle_timeout`](SignalClient::handle_timeout) at [`poll_timeout`](SignalClient::poll_timeout).
//!
//! - Messages sent while disconnected are queued (bounded: the oldest are dropped
//!   and counted past [`ClientConfig::max_queue`]) and go out, in order, after the
//!   announce on the next connection.
//! - The last announce is remembered and sent again first after every reconnect, so
//!   the switchboard knows us again.
//! - Reconnects back off: `min_backoff` doubling to `max_backoff`, with jitter from a
//!   seeded generator; a connection that stays up resets it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::signal::{Signal, SignalError, SignalLimits};

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
    /// Seed for the backoff jitter.
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
    /// Open the WebSocket now (then report `connected` or `disconnected`).
    Connect,
    /// Send this text frame on the open WebSocket.
    Send(String),
    /// A message from the server.
    Message(Signal),
    /// A text from the server that is not a valid message (dropped).
    BadMessage(SignalError),
    /// The connection is up (after any announce and queued messages were handed out).
    Connected,
    /// The connection is down; a reconnect is scheduled.
    Disconnected,
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
}

impl SignalClient {
    /// A client that wants to connect at once.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        SignalClient {
            backoff: config.min_backoff,
            rng: config.seed | 1,
            config,
            state: State::Waiting(now),
            announce: None,
            queue: VecDeque::new(),
            out: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Is the WebSocket up?
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Connected(_))
    }

    /// Messages dropped from a full queue.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Sends `msg` now, or after the next (re)connect.
    pub fn send(&mut self, msg: &Signal) {
        self.send_text(msg.encode());
    }

    /// Sends a text now, or queues it. An `/announce|...` text is an announce (see
    /// [`announce_text`](Self::announce_text)): sent again after every reconnect.
    pub fn send_text(&mut self, text: String) {
        if text.starts_with("/announce|") {
            return self.announce_text(text);
        }
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
        self.announce = Some(text.clone());
        if self.is_connected() {
            self.out.push_back(ClientOutput::Send(text));
        }
    }

    /// The WebSocket opened.
    pub fn connected(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Connected(now);
        if let Some(a) = &self.announce {
            self.out.push_back(ClientOutput::Send(a.clone()));
        }
        // Then what was queued (announces are never queued: the one above is the last).
        while let Some(t) = self.queue.pop_front() {
            self.out.push_back(ClientOutput::Send(t));
        }
        self.out.push_back(ClientOutput::Connected);
    }

    /// The WebSocket failed to open or closed.
    pub fn disconnected(&mut self, now: Instant) {
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

    /// A text frame arrived.
    pub fn handle_text(&mut self, text: &str) {
        match Signal::parse(text, &self.config.limits) {
            Ok(m) => self.out.push_back(ClientOutput::Message(m)),
            Err(e) => self.out.push_back(ClientOutput::BadMessage(e)),
        }
    }

    /// Stops: no more connects; queued messages are dropped.
    pub fn close(&mut self) {
        self.state = State::Closed;
        self.queue.clear();
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Waiting(t) => Some(t),
            _ => None,
        }
    }

    /// Time passed: connects when the backoff delay is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Waiting(t) = self.state {
            if now >= t {
                self.state = State::Connecting;
                self.out.push_back(ClientOutput::Connect);
            }
        }
    }

    /// The next thing to do.
    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.out.pop_front()
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
        std::iter::from_fn(|| c.poll_output()).collect()
    }

    #[test]
    fn queues_while_down_and_reannounces_after_a_reconnect() {
        let t0 = Instant::now();
        let mut c = SignalClient::new(ClientConfig::default(), t0);
        c.handle_timeout(t0);
        assert_eq!(drain(&mut c), [ClientOutput::Connect]);
        let ann = Signal::announce("a", Object::new());
        c.announce(&ann);
        c.send(&Signal::new("x", "a", vec![]));
        c.connected(t0);
        assert_eq!(
            drain(&mut c),
            [
                ClientOutput::Send(ann.encode()),
                ClientOutput::Send("/x|a".into()),
                ClientOutput::Connected
            ]
        );
        c.disconnected(t0);
        assert_eq!(drain(&mut c), [ClientOutput::Disconnected]);
        c.send(&Signal::new("y", "a", vec![]));
        let t = c.poll_timeout().unwrap();
        assert!(t > t0 && t <= t0 + Duration::from_millis(50));
        c.handle_timeout(t);
        assert_eq!(drain(&mut c), [ClientOutput::Connect]);
        // Failing again doubles the delay.
        c.disconnected(t);
        let t2 = c.poll_timeout().unwrap();
        assert!(t2 >= t + Duration::from_millis(50) && t2 <= t + Duration::from_millis(100));
        c.handle_timeout(t2);
        drain(&mut c);
        c.connected(t2);
        assert_eq!(
            drain(&mut c),
            [
                ClientOutput::Send(ann.encode()),
                ClientOutput::Send("/y|a".into()),
                ClientOutput::Connected
            ]
        );
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
        c.handle_timeout(t0);
        c.connected(t0);
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
}
