//! A store served over many links at once.
//!
//! [`Replica`] owns a [`Store`] and one [`Session`] per link. An update that arrives on
//! link X is applied and offered to every other link (each session sends it only if its
//! remote lacks it, so nothing is echoed back to X); a local write is offered to every
//! link. Sans-IO, like the rest of core:
//!
//! ```
//! use std::time::Instant;
//! use rtc_mesh_core::{Replica, Store, StoreConfig, Codec, Framing, Output, Value};
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
//!             Output::Transmit(_, bytes) => {
//!                 moved = true;
//!                 to.handle_input(link, now, &bytes);
//!             }
//!             Output::Event(event) => println!("{event:?}"),
//!             Output::Timeout(_) => return moved,
//!         }
//!     }
//! }
//! while drain(&mut a, &mut b, lb, t0) | drain(&mut b, &mut a, la, t0) {}
//! assert_eq!(b.store().get("greeting"), Some(Value::from("hello")));
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use crate::session::{Session, SessionConfig, SessionEvent, SessionStats};
use crate::store::{Event, Store, StoreError, Update};
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
    Update(Event),
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
pub enum Output {
    /// Bytes to write to a link (one link message on a message link).
    Transmit(LinkId, Vec<u8>),
    /// An event.
    Event(ReplicaEvent),
    /// Nothing more to do until the next input, or the given instant if any.
    Timeout(Option<Instant>),
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
}

impl Replica {
    /// Serves `store`.
    pub fn new(store: Store) -> Self {
        Replica {
            store,
            links: BTreeMap::new(),
            next_link: 0,
            events: VecDeque::new(),
            dirty: VecDeque::new(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
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
            self.check_all_synced();
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
    pub fn handle_input(&mut self, link: LinkId, now: Instant, bytes: &[u8]) {
        let Some(s) = self.links.get_mut(&link) else {
            return;
        };
        s.handle_input(&mut self.store, now, bytes);
        self.after_input(link);
    }

    /// The byte stream of `link` ended.
    pub fn handle_end(&mut self, link: LinkId, now: Instant) {
        let Some(s) = self.links.get_mut(&link) else {
            return;
        };
        s.handle_end(&mut self.store, now);
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
        if let Some(s) = self.links.get_mut(&link) {
            while let Some(e) = s.poll_event() {
                match e {
                    SessionEvent::RemoteDigest { id } => self
                        .events
                        .push_back(ReplicaEvent::LinkOpened { link, peer: id }),
                    SessionEvent::Synced { id } => {
                        synced = true;
                        self.events
                            .push_back(ReplicaEvent::Synced { link, peer: id });
                    }
                    SessionEvent::Error(error) => self
                        .events
                        .push_back(ReplicaEvent::LinkError { link, error }),
                    SessionEvent::Rejected(_) => {}
                }
            }
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
            };
            for (&id, s) in self.links.iter_mut() {
                if Some(id) != origin && s.send_update(&self.store, u) && !self.dirty.contains(&id)
                {
                    self.dirty.push_back(id);
                }
            }
            self.events.push_back(ReplicaEvent::Update(ev));
        }
    }

    /// Sets `key` to `value` (`null` deletes) and sends it to every link.
    pub fn set(&mut self, now: Instant, key: &str, value: &Value) -> Result<Update, StoreError> {
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
        let u = self.store.delete(now, key)?;
        self.forward(None);
        Ok(u)
    }

    /// Applies an update obtained some other way (not from a link), and forwards it.
    pub fn apply(&mut self, now: Instant, u: Update) -> crate::store::Verdict {
        let v = self.store.apply(now, u);
        self.forward(None);
        v
    }

    /// The next output: link bytes first, then events; `Timeout` when drained.
    pub fn poll_output(&mut self) -> Output {
        while let Some(&link) = self.dirty.front() {
            let store = &self.store;
            let bytes = self
                .links
                .get_mut(&link)
                .and_then(|s| s.poll_transmit(store));
            // Sending the end of the history can complete the sync.
            self.session_events(link);
            if let Some(bytes) = bytes {
                return Output::Transmit(link, bytes);
            }
            self.dirty.pop_front();
        }
        if let Some(e) = self.events.pop_front() {
            return Output::Event(e);
        }
        Output::Timeout(None)
    }
}
