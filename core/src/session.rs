//! One sync conversation over one ordered, reliable link.
//!
//! A [`Session`] is sans-IO: bytes from the link go in with [`Session::handle_input`],
//! bytes for the link come out of [`Session::poll_transmit`], and what happened comes
//! out of [`Session::poll_event`]. It works on a [`Store`] that the caller lends to each
//! call, so one store can serve many sessions (see [`crate::replica::Replica`], which
//! does that bookkeeping).
//!
//! The conversation, on each side:
//!
//! 1. send the digest: our id and clock;
//! 2. on the remote digest, send the history the remote lacks (in timestamp order),
//!    then the `SYNC` marker;
//! 3. then live updates, each only if the remote lacks it: an update is never sent
//!    back to the link it came from, nor twice on one link.
//!
//! Both sides are synced once each has sent and received `SYNC`. A `PING` is answered
//! with `PONG`. Reconnecting sends only what the other side lacks, because the digest
//! says what it has.
//!
//! Between our own peers, more control strings (scuttlebutt ignores them):
//! `"CLOCK {json clock}"` says what the sender has now (the receiver then sends what it
//! lacks, as after a digest, without a second `SYNC`); in a secured room, once synced,
//! each side sends `"SUMS {..}"`, and a source whose sums differ while the clocks cover
//! each other's writes is repaired: each side sends every write of that source it holds (see
//! [`crate::control::SourceSum`]: a relay that reordered a writer's updates can leave
//! a clock ahead of what arrived). Any other control string (such as the replica's
//! `"LINKS ..."`) is reported as [`SessionEvent::Control`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::control::Control;
use crate::store::{HistoryItem, SourceIx, Store, UpdateRef, Verdict};

/// How far ahead of the link the history is encoded, in bytes.
const STREAM_AHEAD: usize = 64 * 1024;

/// The most keys a peer's history size hint makes a store reserve room for.
const MAX_RESERVE: u64 = 1 << 20;
use crate::wire::{Codec, DecodeError, Decoder, Encoder, Framing, Message};

/// Session configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// The codec both sides speak.
    pub codec: Codec,
    /// Stream (TCP) or messages (data channel).
    pub framing: Framing,
}

impl SessionConfig {
    /// A configuration for `codec` over `framing`.
    pub fn new(codec: Codec, framing: Framing) -> Self {
        SessionConfig { codec, framing }
    }
}

/// Something a session reports.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The remote's digest arrived: its source id.
    RemoteDigest {
        /// The remote's source id.
        id: String,
    },
    /// Both sides have sent and received `SYNC`.
    Synced {
        /// The remote's source id.
        id: String,
    },
    /// A line or frame from the remote could not be decoded and was skipped. When the
    /// error [`is_fatal`](DecodeError::is_fatal), the link must be closed.
    Error(DecodeError),
    /// The remote sent an update the store rejected as invalid.
    Rejected(crate::store::Rejection),
    /// The remote sent [`MAX_STRIKES`] updates a secured store refused (forged, unsigned,
    /// into another's space) within the forgiveness of one per [`STRIKE_FORGIVEN`]: the
    /// link must be closed. Reported once; `reason` is the last refusal's code.
    Misbehaved {
        /// `bad_sig`, `unsigned`, `bad_source` or `not_owner`.
        reason: &'static str,
    },
    /// The remote sent a control line this session does not handle itself.
    Control(Control),
}

/// Counters for one link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Bytes handed to the link.
    pub bytes_out: u64,
    /// Bytes received from the link.
    pub bytes_in: u64,
    /// Updates encoded for the link.
    pub updates_out: u64,
    /// Updates decoded from the link.
    pub updates_in: u64,
    /// Lines or frames that failed to decode.
    pub errors: u64,
    /// `PING`s the remote sent (a remote that pings is held to the liveness rule).
    pub pings_in: u64,
    /// The time from our last answered `PING` to its `PONG` (includes the time the
    /// `PING` waited behind data already queued on the link).
    pub rtt: Option<Duration>,
    /// Updates a secured store refused (see [`SessionEvent::Misbehaved`]).
    pub refused: u64,
    /// Sources whose sums differed from the remote's while the clocks covered each
    /// other's writes (each repaired by sending every write of it we hold).
    pub repairs: u64,
    /// Updates sent in those repairs.
    pub repaired: u64,
}

/// Refused updates after which a link is closed (see [`SessionEvent::Misbehaved`]).
pub const MAX_STRIKES: u32 = 16;

/// One strike is forgiven per this much time.
pub const STRIKE_FORGIVEN: Duration = Duration::from_secs(4);

/// One sync conversation. See the module docs.
#[derive(Debug)]
pub struct Session {
    enc: Encoder,
    dec: Decoder,
    remote_id: Option<String>,
    /// What the remote has, per source of the store.
    remote_clock: Vec<f64>,
    started: bool,
    /// Sending the history the remote lacks (then `SYNC`).
    streaming: bool,
    history: VecDeque<HistoryItem>,
    sent_sync: bool,
    recv_sync: bool,
    synced: bool,
    events: VecDeque<SessionEvent>,
    stats: SessionStats,
    codec: Codec,
    /// When the unanswered `PING` was queued.
    ping_sent: Option<Instant>,
    /// Strikes for refused updates, as of `strike_at` (one forgiven per
    /// [`STRIKE_FORGIVEN`]).
    strikes: Option<(f64, Instant)>,
    /// Reported misbehaving: nothing more of its is applied.
    misbehaved: bool,
    /// A byte stream (TCP replication) or a data channel.
    framing: Framing,
    /// The writes of a repair still to send (see the module docs), whatever the
    /// remote's clock says.
    repair: VecDeque<HistoryItem>,
    /// The remote's latest `SUMS` that came during a repair, answered after it.
    pending_sums: Option<Vec<crate::control::SourceSum>>,
}

impl Session {
    /// Starts a session: the digest of `store` is queued at once.
    pub fn new(store: &Store, config: SessionConfig) -> Self {
        let mut enc = Encoder::new(config.codec, config.framing);
        let clock = store.clock();
        enc.digest(store.id(), clock.iter());
        Session {
            enc,
            dec: Decoder::new(config.codec, config.framing, store.limits().clone()),
            remote_id: None,
            remote_clock: Vec::new(),
            started: false,
            streaming: false,
            history: VecDeque::new(),
            sent_sync: false,
            recv_sync: false,
            synced: false,
            events: VecDeque::new(),
            stats: SessionStats::default(),
            codec: config.codec,
            ping_sent: None,
            strikes: None,
            misbehaved: false,
            framing: config.framing,
            repair: VecDeque::new(),
            pending_sums: None,
        }
    }

    /// The codec this session speaks.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The remote's source id, once its digest arrived.
    pub fn remote_id(&self) -> Option<&str> {
        self.remote_id.as_deref()
    }

    /// Have both sides sent and received `SYNC`?
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Has a fatal decode error stopped this session? The link should be closed.
    pub fn failed(&self) -> bool {
        self.dec.failed()
    }

    /// Counters.
    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    fn remote(&self, ix: SourceIx) -> f64 {
        self.remote_clock.get(ix.0 as usize).copied().unwrap_or(0.0)
    }

    fn raise_remote(&mut self, ix: SourceIx, ts: f64) {
        let i = ix.0 as usize;
        if self.remote_clock.len() <= i {
            self.remote_clock.resize(i + 1, 0.0);
        }
        if self.remote_clock[i] < ts {
            self.remote_clock[i] = ts;
        }
    }

    /// Feeds bytes received from the link: decodes them and applies updates to
    /// `store` (whose events then tell what changed).
    pub fn handle_input(&mut self, now: Instant, store: &mut Store, bytes: &[u8]) {
        self.stats.bytes_in += bytes.len() as u64;
        self.dec.push(bytes);
        self.drain_decoder(store, now);
    }

    /// The link's byte stream ended (a partial last line is decoded, as scuttlebutt does).
    pub fn handle_end(&mut self, now: Instant, store: &mut Store) {
        self.dec.finish();
        self.drain_decoder(store, now);
    }

    fn drain_decoder(&mut self, store: &mut Store, now: Instant) {
        while let Some(m) = self.dec.poll_message() {
            match m {
                Ok(m) => self.handle_message(store, now, m),
                Err(e) => {
                    self.stats.errors += 1;
                    self.events.push_back(SessionEvent::Error(e));
                }
            }
        }
    }

    fn handle_message(&mut self, store: &mut Store, now: Instant, m: Message) {
        match m {
            Message::Digest { id, clock } => {
                // Sources we hold nothing of cannot lower what we send: they are not
                // kept, so digests cannot grow the store's tables.
                for (s, t) in clock.iter() {
                    if let Some(ix) = store.source_ix(s) {
                        self.raise_remote(ix, t);
                    }
                }
                if self.remote_id.is_none() {
                    self.events
                        .push_back(SessionEvent::RemoteDigest { id: id.clone() });
                    self.remote_id = Some(id);
                }
                if !self.started {
                    // The history is streamed by poll_transmit, a few frames at a time.
                    self.started = true;
                    self.history = store.history_slots(&self.remote_clock).into();
                    self.enc.history_size(self.history.len() as u64);
                    self.streaming = true;
                }
            }
            Message::Update(u) => {
                self.stats.updates_in += 1;
                if self.misbehaved {
                    // Closing: nothing more of its is checked (a flood costs at most
                    // MAX_STRIKES verifications per forgiveness).
                    return;
                }
                let key = u.key.clone();
                match store.apply_inner(now, u.as_ref(), Some(key)) {
                    (Verdict::Rejected(r), _) => {
                        if let crate::store::Rejection::Refused(why) = &r {
                            self.stats.refused += 1;
                            // A stream's peer may be a stock scuttlebutt relay, which keeps
                            // and resends its own (unsigned, keyless) writes: only forgeries
                            // count against it there.
                            use crate::security::updates::UpdateRefusal as R;
                            // A removed member's late writes are no one's fault.
                            if (self.framing == Framing::Messages && *why != R::Revoked)
                                || matches!(why, R::BadSignature | R::NotOwner)
                            {
                                self.strike(now, why.code());
                            }
                        }
                        self.events.push_back(SessionEvent::Rejected(r))
                    }
                    (_, Some(ix)) if !cfg!(feature = "bug-echo") => self.raise_remote(ix, u.ts),
                    _ => {}
                }
            }
            Message::Sync => {
                self.recv_sync = true;
                self.check_synced(store);
            }
            Message::Ping => {
                self.stats.pings_in += 1;
                self.enc.control(&Control::Pong.encode());
            }
            Message::HistorySize(n) => {
                // A hint from the peer: bounded, so that it cannot make us reserve much
                // more than a peer could fill anyway.
                store.reserve(n.min(MAX_RESERVE) as usize);
            }
            Message::Control(text) => match Control::decode(&text, store.limits()) {
                Ok(Control::Clock(clock)) => self.refresh(store, &clock),
                Ok(Control::Sums(sums)) => self.repair(store, sums),
                Ok(Control::Want(keys)) => {
                    // What we hold of them goes out whatever the clocks say (the keys
                    // were voided there: any write of ours wins over that).
                    // At most the store's size is queued at once, so a remote that
                    // keeps asking cannot grow the queue past what it could fetch anyway.
                    if store.is_secured() {
                        let room = (store.len().max(1024)).saturating_sub(self.repair.len());
                        let items = keys.iter().filter_map(|k| store.item_of(k)).take(room);
                        self.repair.extend(items);
                    }
                }
                Ok(control) => self.events.push_back(SessionEvent::Control(control)),
                Err(_) => self.stats.errors += 1,
            },
            Message::Pong => {
                if let Some(sent) = self.ping_sent.take() {
                    self.stats.rtt = Some(now.saturating_duration_since(sent));
                }
            }
        }
    }

    fn strike(&mut self, now: Instant, reason: &'static str) {
        let (n, at) = self.strikes.unwrap_or((0.0, now));
        let forgiven =
            now.saturating_duration_since(at).as_secs_f64() / STRIKE_FORGIVEN.as_secs_f64();
        let n = (n - forgiven).max(0.0) + 1.0;
        self.strikes = Some((n, now));
        if n >= f64::from(MAX_STRIKES) && !self.misbehaved {
            self.misbehaved = true;
            self.events.push_back(SessionEvent::Misbehaved { reason });
        }
    }

    /// The remote says what it has now: send what it lacks (the catch-up pass of
    /// the history stream, without another `SYNC`).
    fn refresh(&mut self, store: &Store, clock: &[(String, f64)]) {
        for (s, t) in clock {
            if let Some(ix) = store.source_ix(s) {
                self.raise_remote(ix, *t);
            }
        }
        if self.started && !self.streaming {
            self.streaming = true;
        }
    }

    /// Sends a control line (`BYE`, `LINKS ...`; scuttlebutt ignores strings other
    /// than `SYNC`).
    pub fn send_control(&mut self, control: &Control) {
        self.enc.control(&control.encode());
    }

    /// Tells the remote what we have now (`CLOCK {...}`), so that it sends what we lack.
    pub fn send_clock(&mut self, store: &Store) {
        let clock = store
            .clock()
            .iter()
            .map(|(s, t)| (s.to_owned(), t))
            .collect();
        self.enc.control(&Control::Clock(clock).encode());
    }

    /// The remote's `SUMS`: every source whose sums differ from ours while the remote's
    /// clock covers every write of it we hold, and ours covers what the remote has seen
    /// (our latest write of it <= its clock <= ours: nothing is in flight either way),
    /// is sent whole. (Clocks can stay apart for good: a write overwritten before it
    /// reached a replica never reaches it, and nor does its timestamp.) One arriving
    /// while a repair is still being sent waits until it is (the latest only): repairs
    /// cost a link at most what it can carry, as digests of nothing on every reconnect
    /// would.
    fn repair(&mut self, store: &Store, theirs: Vec<crate::control::SourceSum>) {
        if !store.is_secured() || cfg!(feature = "bug-trust-source-clock") {
            return;
        }
        if !self.repair.is_empty() {
            self.pending_sums = Some(theirs);
            return;
        }
        let ours: std::collections::HashMap<String, crate::control::SourceSum> = store
            .sums()
            .into_iter()
            .map(|s| (s.source.clone(), s))
            .collect();
        let latest = store.latest_writes();
        let mut flagged = Vec::new();
        for t in &theirs {
            let Some(o) = ours.get(&t.source) else {
                continue;
            };
            let Some(ix) = store.source_ix(&t.source) else {
                continue;
            };
            let covered = latest.get(ix.0 as usize).is_some_and(|&l| l <= t.ts) && t.ts <= o.ts;
            if covered && (o.count, o.lanes) != (t.count, t.lanes) {
                let i = ix.0 as usize;
                if flagged.len() <= i {
                    flagged.resize(i + 1, false);
                }
                flagged[i] = true;
                self.stats.repairs += 1;
            }
        }
        if !flagged.is_empty() {
            self.repair = store.history_of(&flagged).into();
        }
    }

    /// Secured stores: asks the remote for these keys (`WANT`), which a removal voided
    /// here; sent on a link that has started (its remote knows us).
    pub(crate) fn send_want(&mut self, store: &Store, keys: &[smol_str::SmolStr]) {
        if store.is_secured() && self.started {
            for chunk in keys.chunks(1024) {
                let keys = chunk.iter().map(|k| k.to_string()).collect();
                self.enc
                    .control(&crate::control::Control::Want(keys).encode());
            }
        }
    }

    /// Secured stores: tells the remote what we hold per source (`SUMS`), once synced.
    pub(crate) fn send_sums(&mut self, store: &Store) {
        if store.is_secured() && self.synced {
            self.enc
                .control(&crate::control::Control::Sums(store.sums()).encode());
        }
    }

    fn check_synced(&mut self, store: &Store) {
        if self.sent_sync && self.recv_sync && !self.synced {
            self.synced = true;
            self.send_sums(store);
            let id = self.remote_id.clone().unwrap_or_default();
            self.events.push_back(SessionEvent::Synced { id });
        }
    }

    /// Offers a live update held by `store` (made locally or received on another link).
    /// It is sent only if the remote lacks it. Returns whether it was sent.
    pub fn send_update(&mut self, store: &Store, u: UpdateRef<'_>) -> bool {
        if !self.started || self.streaming {
            // The history being sent (or its catch-up pass) will include it: sending it
            // now could put a source's newer write before its older ones.
            return false;
        }
        let Some(ix) = store.source_ix(u.source) else {
            return false;
        };
        if u.ts <= self.remote(ix) {
            return false;
        }
        self.raise_remote(ix, u.ts);
        self.enc.update(u);
        self.stats.updates_out += 1;
        true
    }

    /// Sends an update that was applied late (below its writer's clock: see
    /// [`crate::store::StoreStats::late`]). The remote's clock cannot tell whether it
    /// lacks it, so it is sent whatever the clock says (a remote that has it finds it
    /// stale). Returns whether it was sent.
    pub(crate) fn send_late(&mut self, u: UpdateRef<'_>) -> bool {
        if !self.started {
            return false;
        }
        self.enc.update(u);
        self.stats.updates_out += 1;
        true
    }

    /// Queues a `PING` (the remote answers `PONG`); its answer measures
    /// [`SessionStats::rtt`]. While one is unanswered, the next measures from the
    /// first, so a stalled link shows a growing round trip rather than none.
    pub fn ping(&mut self, now: Instant) {
        self.ping_sent.get_or_insert(now);
        self.enc.control(&Control::Ping.encode());
    }

    /// The next chunk of bytes for the link. While the history is being sent, each call
    /// encodes a little more of it from `store`, so memory stays bounded and a driver
    /// can stop polling a link that cannot take more.
    pub fn poll_transmit(&mut self, store: &Store) -> Option<Vec<u8>> {
        if self.streaming && self.enc.pending_bytes() < STREAM_AHEAD {
            self.stream_history(store);
        }
        while !self.repair.is_empty() && self.enc.pending_bytes() < STREAM_AHEAD {
            let Some(h) = self.repair.pop_front() else {
                break;
            };
            // Overwritten since: the new write went out live.
            if let Some((_, u)) = store.slot(h.slot).filter(|(_, u)| u.ts == h.ts) {
                self.enc.update(u);
                self.stats.updates_out += 1;
                self.stats.repaired += 1;
            }
        }
        if self.repair.is_empty() {
            if let Some(theirs) = self.pending_sums.take() {
                self.repair(store, theirs);
            }
        }
        let c = self.enc.poll_transmit()?;
        self.stats.bytes_out += c.len() as u64;
        Some(c)
    }

    /// Is the history still being sent?
    pub fn is_sending_history(&self) -> bool {
        self.streaming
    }

    fn stream_history(&mut self, store: &Store) {
        while self.enc.pending_bytes() < STREAM_AHEAD {
            let Some(h) = self.history.pop_front() else {
                // Catch up with what changed while streaming, then say SYNC.
                let more = store.history_slots(&self.remote_clock);
                if more.is_empty() {
                    self.streaming = false;
                    if !self.sent_sync {
                        self.enc.sync();
                        self.sent_sync = true;
                        self.check_synced(store);
                    }
                    return;
                }
                self.history = more.into();
                continue;
            };
            let Some((ix, u)) = store.slot(h.slot) else {
                continue;
            };
            // Overwritten since the list was made: the catch-up pass sends the new write
            // in its place in timestamp order. Or the remote has it already.
            if u.ts != h.ts || u.ts <= self.remote(ix) {
                continue;
            }
            self.raise_remote(ix, u.ts);
            self.enc.update(u);
            self.stats.updates_out += 1;
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }
}
