//! Liveness and recovery: the common tick, pings, dead links, negotiation deadlines,
//! retries with jittered backoff.

use super::*;

impl Mesh {
    /// Time passed: pings, dead links, negotiation timeouts, retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        // Held-back updates that came due (secured rooms).
        self.replica.handle_timeout(now);
        if now >= self.client_at {
            self.client.handle_timeout(now);
            self.pump_signal();
        }
        if self.closed {
            self.check_closing();
            return;
        }
        self.rekey_timeout(now);
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + self.tick();
        let (ping, dead, negotiate) = (
            self.config.ping_interval,
            self.config.dead_after,
            self.config.negotiate_timeout,
        );
        let mut to_ping = Vec::new();
        let mut timed_out = Vec::new();
        let mut failed = Vec::new();
        let mut retry = Vec::new();
        let replica = &self.replica;
        for (id, p) in self.peers.iter_mut() {
            match &mut p.conn {
                Conn::Open {
                    link,
                    last_heard,
                    next_ping,
                } => {
                    // DESIGN: once a remote has sent a PING, a link silent for
                    // `dead_after` is dead, whatever the remote is (ours, a page, a
                    // foreign client without an incarnation). One that never pinged is
                    // left to ICE.
                    let pings = replica
                        .session(*link)
                        .is_some_and(|s| s.stats().pings_in > 0);
                    if pings && now.saturating_duration_since(*last_heard) >= dead {
                        timed_out.push(id.clone());
                    } else if now >= *next_ping {
                        to_ping.push(*link);
                        *next_ping = now + ping;
                    }
                }
                Conn::Negotiating { since, .. } => {
                    if now.saturating_duration_since(*since) >= negotiate {
                        failed.push(id.clone());
                    }
                }
                Conn::Idle { retry_at } => {
                    if retry_at.is_some_and(|t| now >= t) {
                        *retry_at = None;
                        retry.push(id.clone());
                    }
                }
            }
        }
        if self.config.ping {
            for l in to_ping {
                self.replica.ping(now, l);
            }
        }
        self.replica.flush_link_reports();
        self.stats.link_timeouts += timed_out.len() as u64;
        self.stats.negotiation_timeouts += failed.len() as u64;
        for id in timed_out {
            let at = now + self.backoff(self.peers[&id].failures);
            self.lose_link(&id, at, LeaveReason::Timeout);
        }
        for id in failed {
            let failures = self.peers[&id].failures + 1;
            if let Some(p) = self.peers.get_mut(&id) {
                p.failures = failures;
            }
            let at = now + self.backoff(failures);
            self.lose_link(&id, at, LeaveReason::Failed);
        }
        for id in retry {
            if self.we_offer(&id) && self.peers.get(&id).is_some_and(|p| p.in_room) {
                self.offer(&id, now);
            }
        }
    }

    pub(super) fn tick(&self) -> Duration {
        (self.config.ping_interval / 4).max(Duration::from_millis(10))
    }

    /// The tick only matters while there are peers (their pings, deadlines and
    /// retries); the signalling client's backoff always does.
    pub(super) fn next_timeout(&self) -> Instant {
        let t = if self.peers.is_empty() {
            self.client_at
        } else {
            self.next_tick.min(self.client_at)
        };
        let t = self.rekey_deadline().map_or(t, |r| r.min(t));
        self.replica.poll_timeout().map_or(t, |h| h.min(t))
    }

    pub(super) fn jitter(&mut self, d: Duration) -> Duration {
        crate::rng::jitter(&mut self.rng, d)
    }

    pub(super) fn backoff(&mut self, failures: u32) -> Duration {
        let d = self
            .config
            .retry_min
            .saturating_mul(1 << failures.min(16))
            .min(self.config.retry_max);
        self.jitter(d)
    }
}
