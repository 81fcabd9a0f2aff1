//! A store served over many links at once.
//!
//! [`Replica`] owns a [`Store`] and one [`Session`] per link. An update that arrives on
//! link X is applied and offered to every other link (each session sends it only if its
//! remote lacks it, so nothing is echoed back to X); a local write is offered to every
//! link.
//!
//! In a full mesh that would cost N^2 messages per write. So replicas tell each link
//! which writers they hear directly (`"LINKS [source ids]"`, a control string that
//! scuttlebutt ignores), and an update is not forwarded to a link whose remote hears
//! its writer directly: a healthy full mesh costs N-1 messages per write. When a link
//! closes, the replica sends `"CLOCK {...}"` on every other link, so that its
//! neighbours send it what the closed link may have left out, and forward later writes.
//! Sans-IO, like the rest of core:
//!
//! ```
//! use std::time::Instant;
//! use rtc_mesh_core::{Replica, Store, StoreConfig, Codec, Framing, ReplicaOutput, Value};
//!
//! let t0 = Instant::now();
//! let mut a = Replica::new(Store::new(StoreConfig::new("a", 1.7e12, t0)).unwrap());
//! let mut b = Replica::new(Store::new(StoreConfig::new("b", 1.7e12, t0)).unwrap());
//! a.set(t0, "greeting", &Value::from("hello")).unwrap();
//! let la = a.open_link(Codec::Json, Framing::Stream);
//! let lb = b.open_link(Codec::Json, Framing::Stream);
//! // A driving loop: move bytes between the two until neither has any to send.
//! fn drain(from: &mut Replica, to: &mut Replica, link: rtc_mesh_core::LinkId, now: Instant) -> bool {
//!     let mut moved = false;
//!     loop {
//!         match from.poll_output() {
//!             ReplicaOutput::Transmit(_, bytes) => {
//!                 moved = true;
//!                 to.handle_input(now, link, &bytes);
//!             }
//!             ReplicaOutput::Event(event) => println!("{event:?}"),
//!             ReplicaOutput::Timeout(_) => return moved,
//!         }
//!     }
//! }
//! while drain(&mut a, &mut b, lb, t0) | drain(&mut b, &mut a, la, t0) {}
//! assert_eq!(b.store().get("greeting"), Some(Value::from("hello")));
//! ```

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use crate::control::{Control, LinksChange};
use crate::session::{Session, SessionConfig, SessionEvent, SessionStats};
use crate::store::{Store, StoreError, StoreEvent, Update};
use crate::value::{EncodedValue, Value};
use crate::wire::{Codec, DecodeError, Framing};

/// A link, as named by the replica that opened it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub u64);

/// Something that happened in a replica.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ReplicaEvent {
    /// The store changed (a local write, or an update from a link).
    Update(StoreEvent),
    /// A link's remote sent its digest.
    LinkOpened {
        /// The link.
        link: LinkId,
        /// The remote's source id.
        peer: String,
    },
    /// A link's two sides are synced.
    Synced {
        /// The link.
        link: LinkId,
        /// The remote's source id.
        peer: String,
    },
    /// Every open link is synced (reported again after each newly synced link).
    SyncedAll {
        /// The remote source ids of all open links.
        peers: Vec<String>,
    },
    /// A link's remote sent a control line the replica does not handle.
    Control {
        /// The link.
        link: LinkId,
        /// The line.
        control: Control,
    },
    /// A link's remote sent [`crate::session::MAX_STRIKES`] updates our secured store
    /// refused: close it (the remote is told why by [`Replica::refuse_link`]).
    Misbehaved {
        /// The link.
        link: LinkId,
        /// The last refusal's code (`bad_sig`, `unsigned`, `bad_source`, `not_owner`).
        reason: &'static str,
    },
    /// A link sent something that could not be decoded; it was skipped. A
    /// [fatal](DecodeError::is_fatal) error means the link must be closed.
    LinkError {
        /// The link.
        link: LinkId,
        /// What was wrong.
        error: DecodeError,
    },
}

/// What [`Replica::poll_output`] returns.
#[derive(Debug)]
pub enum ReplicaOutput {
    /// Bytes to write to a link (one link message on a message link).
    Transmit(LinkId, Vec<u8>),
    /// An event.
    Event(ReplicaEvent),
    /// Nothing more to do until the next input or this instant. A replica has no
    /// timers of its own, so the instant is far ahead; its owner pings links (a
    /// [`Mesh`](crate::mesh::Mesh) does).
    Timeout(Instant),
}

/// A store plus one sync session per link. See the module docs.
#[derive(Debug)]
pub struct Replica {
    store: Store,
    links: BTreeMap<LinkId, Session>,
    next_link: u64,
    events: VecDeque<ReplicaEvent>,
    /// Links with output possibly pending, polled in order.
    dirty: VecDeque<LinkId>,
    /// Per link, the writers (source ids) its remote says it hears directly.
    reaches: BTreeMap<LinkId, BTreeSet<String>>,
    /// The writers every link has been told we hear directly.
    reported: Vec<String>,
    /// Report new links only on [`Replica::flush_link_reports`].
    batch_reports: bool,
    /// Links whose transport cannot take more now.
    paused: BTreeSet<LinkId>,
    /// The latest instant seen.
    now: Instant,
}

impl Replica {
    /// Serves `store`.
    pub fn new(store: Store) -> Self {
        Replica {
            links: BTreeMap::new(),
            next_link: 0,
            events: VecDeque::new(),
            dirty: VecDeque::new(),
            reaches: BTreeMap::new(),
            reported: Vec::new(),
            batch_reports: false,
            paused: BTreeSet::new(),
            now: store.start(),
            store,
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store, to take what it has for a durable member's log (nothing that changes
    /// what it holds: that goes through the replica, so the links hear of it).
    pub(crate) fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// A durable member: the store's changes since the last call, as log records (see
    /// [`Store::poll_persist`]).
    pub fn poll_persist(&mut self) -> Option<crate::store::PersistBatch> {
        self.store.poll_persist()
    }

    /// Opens a link: its digest is queued at once.
    pub fn open_link(&mut self, codec: Codec, framing: Framing) -> LinkId {
        let id = LinkId(self.next_link);
        self.next_link += 1;
        let s = Session::new(&self.store, SessionConfig::new(codec, framing));
        self.links.insert(id, s);
        self.mark(id);
        id
    }

    /// Forgets a link (its transport closed). Pending bytes for it are dropped.
    pub fn close_link(&mut self, link: LinkId) {
        if self.links.remove(&link).is_some() {
            self.reaches.remove(&link);
            self.paused.remove(&link);
            self.check_all_synced();
            // What that link would have brought may now have to come from the others.
            let ids: Vec<LinkId> = self.links.keys().copied().collect();
            for id in ids {
                if let Some(s) = self.links.get_mut(&id) {
                    if s.remote_id().is_some() {
                        s.send_clock(&self.store);
                        self.mark(id);
                    }
                }
            }
            self.report_links();
        }
    }

    /// The writers a link's remote says it hears directly (its last `LINKS` report).
    pub fn link_reaches(&self, link: LinkId) -> Option<&BTreeSet<String>> {
        self.reaches.get(&link)
    }

    /// Sends `PING` on a link (the remote answers `PONG`).
    pub fn ping(&mut self, now: Instant, link: LinkId) {
        self.now = self.now.max(now);
        if let Some(s) = self.links.get_mut(&link) {
            s.ping(now);
            self.mark(link);
        }
    }

    /// Sends a control string on a link.
    pub fn send_control(&mut self, link: LinkId, control: &Control) {
        if let Some(s) = self.links.get_mut(&link) {
            s.send_control(control);
            self.mark(link);
        }
    }

    /// Tells every link which writers we hear directly, if that changed.
    fn report_links(&mut self) {
        self.report_links_now(!self.batch_reports);
    }

    /// Sends what changed in the set of writers we hear directly since the last report,
    /// to every link: losses at once (a neighbour must start forwarding to us before it
    /// drops anything), gains only when `gains` (they only save messages, so a mesh
    /// batches them; see [`Replica::batch_link_reports`]).
    fn report_links_now(&mut self, gains: bool) {
        let ids: Vec<String> = self
            .links
            .values()
            .filter_map(|s| s.remote_id().map(str::to_owned))
            .collect();
        let lost: Vec<String> = self
            .reported
            .iter()
            .filter(|r| !ids.contains(r))
            .cloned()
            .collect();
        let gained: Vec<String> = if gains {
            ids.iter()
                .filter(|i| !self.reported.contains(i))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        if lost.is_empty() && gained.is_empty() {
            return;
        }
        let mut reports = Vec::new();
        for (change, list) in [(LinksChange::Lost, &lost), (LinksChange::Gained, &gained)] {
            if !list.is_empty() {
                reports.push(Control::Links(change, list.clone()));
            }
        }
        self.reported.retain(|r| !lost.contains(r));
        self.reported.extend(gained);
        let links: Vec<LinkId> = self.links.keys().copied().collect();
        for id in links {
            if let Some(s) = self.links.get_mut(&id) {
                if s.remote_id().is_some() {
                    for r in &reports {
                        s.send_control(r);
                    }
                    self.mark(id);
                }
            }
        }
    }

    /// Stops (or resumes) taking bytes for `link` from its session: a transport whose
    /// buffer is full pauses the link, so that the history is encoded only as fast as
    /// it can be sent. Live updates still queue in the session meanwhile.
    pub fn pause_link(&mut self, link: LinkId, paused: bool) {
        if paused {
            self.paused.insert(link);
        } else if self.paused.remove(&link) {
            self.mark(link);
        }
    }

    /// Batch link reports: new links are reported by [`Replica::flush_link_reports`]
    /// (a mesh calls it on its timer), so that a mesh forming does not send a report
    /// per link per link. Lost links are always reported at once.
    pub fn batch_link_reports(&mut self, batch: bool) {
        self.batch_reports = batch;
    }

    /// Sends the link report now if it changed.
    pub fn flush_link_reports(&mut self) {
        self.report_links_now(true);
    }

    /// A remote's link report: `LINKS [..]` (all), `LINKS+ [..]`, `LINKS- [..]`.
    fn handle_links(&mut self, link: LinkId, change: LinksChange, ids: Vec<String>) {
        let set = self.reaches.entry(link).or_default();
        match change {
            LinksChange::Gained => set.extend(ids),
            LinksChange::Lost => {
                for i in ids {
                    set.remove(&i);
                }
            }
            LinksChange::All => *set = ids.into_iter().collect(),
        }
        // Bounded by what a peer can claim (4,096 writers).
        while set.len() > 4096 {
            set.pop_last();
        }
    }

    /// Open links.
    pub fn links(&self) -> impl Iterator<Item = LinkId> + '_ {
        self.links.keys().copied()
    }

    /// A link's session (remote id, sync state, counters).
    pub fn session(&self, link: LinkId) -> Option<&Session> {
        self.links.get(&link)
    }

    /// A link's counters.
    pub fn link_stats(&self, link: LinkId) -> Option<&SessionStats> {
        self.links.get(&link).map(Session::stats)
    }

    fn mark(&mut self, link: LinkId) {
        if !self.dirty.contains(&link) {
            self.dirty.push_back(link);
        }
    }

    /// Bytes arrived on `link`.
    pub fn handle_input(&mut self, now: Instant, link: LinkId, bytes: &[u8]) {
        self.now = self.now.max(now);
        // Held-back updates that came due go first: a newer update of their writer must
        // not make them look stale.
        self.handle_timeout(now);
        let Some(s) = self.links.get_mut(&link) else {
            return;
        };
        s.handle_input(now, &mut self.store, bytes);
        self.after_input(link);
    }

    /// The byte stream of `link` ended.
    pub fn handle_end(&mut self, now: Instant, link: LinkId) {
        self.now = self.now.max(now);
        let Some(s) = self.links.get_mut(&link) else {
            return;
        };
        s.handle_end(now, &mut self.store);
        self.after_input(link);
    }

    fn after_input(&mut self, link: LinkId) {
        self.mark(link);
        self.forward(Some(link));
        self.session_events(link);
    }

    /// Moves a session's events to the replica's queue.
    fn session_events(&mut self, link: LinkId) {
        let mut synced = false;
        let mut opened = false;
        let mut controls = Vec::new();
        if let Some(s) = self.links.get_mut(&link) {
            while let Some(e) = s.poll_event() {
                match e {
                    SessionEvent::RemoteDigest { id } => {
                        opened = true;
                        self.events
                            .push_back(ReplicaEvent::LinkOpened { link, peer: id })
                    }
                    SessionEvent::Control(control) => controls.push(control),
                    SessionEvent::Synced { id } => {
                        synced = true;
                        self.events
                            .push_back(ReplicaEvent::Synced { link, peer: id });
                    }
                    SessionEvent::Error(error) => self
                        .events
                        .push_back(ReplicaEvent::LinkError { link, error }),
                    SessionEvent::Rejected(_) => {}
                    SessionEvent::Misbehaved { reason } => self
                        .events
                        .push_back(ReplicaEvent::Misbehaved { link, reason }),
                }
            }
        }
        for control in controls {
            match control {
                Control::Links(change, ids) => self.handle_links(link, change, ids),
                control => self
                    .events
                    .push_back(ReplicaEvent::Control { link, control }),
            }
        }
        if opened {
            // The new link hears our report too (even if unchanged for the others).
            if let Some(s) = self.links.get_mut(&link) {
                s.send_control(&Control::Links(LinksChange::All, self.reported.clone()));
            }
            self.report_links();
        }
        if synced {
            self.check_all_synced();
        }
    }

    fn check_all_synced(&mut self) {
        if !self.links.is_empty() && self.links.values().all(Session::is_synced) {
            let peers = self
                .links
                .values()
                .map(|s| s.remote_id().unwrap_or_default().to_owned())
                .collect();
            self.events.push_back(ReplicaEvent::SyncedAll { peers });
        }
    }

    /// Offers every store change to the links (but the one it came from) and reports it.
    fn forward(&mut self, origin: Option<LinkId>) {
        while let Some(ev) = self.store.poll_event() {
            let u = crate::store::UpdateRef {
                key: &ev.key,
                value: &ev.value,
                ts: ev.ts,
                source: &ev.source,
                sig: ev.sig.as_ref(),
            };
            // Voided by a removal: reported, never sent (see Store::take_voided).
            if ev.ts == 0.0 {
                self.events.push_back(ReplicaEvent::Update(ev));
                continue;
            }
            // Below its writer's clock: it came after a later one of the same writer
            // (see StoreStats::late), so the links' clocks cannot tell who lacks it.
            let late = !ev.local && self.store.is_late(u.source, u.ts);
            for (&id, s) in self.links.iter_mut() {
                if Some(id) == origin && !cfg!(feature = "bug-echo") {
                    continue;
                }
                // Its remote hears this writer directly: it gets the update from there.
                let echo_bug = cfg!(feature = "bug-echo") && Some(id) == origin;
                if origin.is_some()
                    && !echo_bug
                    && (s.remote_id() == Some(&*ev.source)
                        || self
                            .reaches
                            .get(&id)
                            .is_some_and(|r| r.contains(&*ev.source)))
                {
                    continue;
                }
                let sent = if late {
                    s.send_late(u)
                } else {
                    s.send_update(&self.store, u)
                };
                if sent && !self.dirty.contains(&id) {
                    self.dirty.push_back(id);
                }
            }
            self.events.push_back(ReplicaEvent::Update(ev));
        }
        // A removal voided writes: the keys they held should get back what they had
        // superseded, from whichever link holds it.
        let voided = self.store.take_voided();
        if !voided.is_empty() && !cfg!(feature = "bug-no-want") {
            for (&id, s) in self.links.iter_mut() {
                s.send_want(&self.store, &voided);
                if !self.dirty.contains(&id) {
                    self.dirty.push_back(id);
                }
            }
        }
    }

    /// Sets `key` to `value` (`null` deletes) and sends it to every link.
    pub fn set(&mut self, now: Instant, key: &str, value: &Value) -> Result<Update, StoreError> {
        self.now = self.now.max(now);
        let u = self.store.set(now, key, value)?;
        self.forward(None);
        Ok(u)
    }

    /// Sets `key` to an already encoded value.
    pub fn set_encoded(
        &mut self,
        now: Instant,
        key: &str,
        value: EncodedValue,
    ) -> Result<Update, StoreError> {
        let u = self.store.set_encoded(now, key, value)?;
        self.forward(None);
        Ok(u)
    }

    /// Deletes `key`.
    pub fn delete(&mut self, now: Instant, key: &str) -> Result<Update, StoreError> {
        self.now = self.now.max(now);
        let u = self.store.delete(now, key)?;
        self.forward(None);
        Ok(u)
    }

    /// Time passed: held-back updates that came due (secured stores) are applied and
    /// forwarded.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.store.release_held(now) > 0 {
            self.forward(None);
        }
    }

    /// When [`Replica::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.store.next_held_due()
    }

    /// Tells a link's remote why we close it (`REFUSED <reason>`, a control line
    /// scuttlebutt ignores); close it next.
    pub fn refuse_link(&mut self, link: LinkId, reason: &str) {
        self.send_control(link, &Control::Other(format!("REFUSED {reason}")));
    }

    /// Applies an update obtained some other way (not from a link), and forwards it.
    pub fn apply(&mut self, now: Instant, u: Update) -> crate::store::Verdict {
        self.now = self.now.max(now);
        self.handle_timeout(now);
        let v = self.store.apply(now, u);
        self.forward(None);
        v
    }

    /// The next output: link bytes first, then events; `Timeout` when drained.
    pub fn poll_output(&mut self) -> ReplicaOutput {
        while let Some(&link) = self.dirty.front() {
            if self.paused.contains(&link) {
                // Resumed links are marked again by `pause_link(.., false)`.
                self.dirty.pop_front();
                continue;
            }
            let store = &self.store;
            let bytes = self
                .links
                .get_mut(&link)
                .and_then(|s| s.poll_transmit(store));
            // Sending the end of the history can complete the sync.
            self.session_events(link);
            if let Some(bytes) = bytes {
                return ReplicaOutput::Transmit(link, bytes);
            }
            self.dirty.pop_front();
        }
        if let Some(e) = self.events.pop_front() {
            return ReplicaOutput::Event(e);
        }
        ReplicaOutput::Timeout(self.now + crate::signal_client::IDLE)
    }
}
