//! # rtc-mesh-core
//!
//! The sans-IO core of rtc-mesh: a replicated key/value store kept equal across peers
//! by the scuttlebutt anti-entropy protocol (per-source clocks, last writer wins per
//! key), with scuttlebutt-compatible JSON lines and a compact postcard codec.
//!
//! Nothing here does I/O: no sockets, threads, async, clock reads or unseeded
//! randomness. Bytes and commands go in together with `now: Instant`; bytes to send
//! and events come out of `poll_output()`, drained until it returns
//! [`ReplicaOutput::Timeout`]. Runtimes (`rtc-mesh-smol`, `rtc-mesh-std`) or your own event
//! loop move the bytes.
//!
//! - [`value`]: JSON values with JavaScript semantics, and their compact encoding.
//! - [`store`]: the replicated map ([`Store`]): updates, clocks, history, events.
//! - [`wire`]: the two sync codecs ([`Codec::Json`], [`Codec::Postcard`]).
//! - [`session`]: one sync conversation over one link ([`Session`]).
//! - [`replica`]: a store served over many links ([`Replica`]).
//! - [`control`]: the link control lines (`PING`, `CLOCK`, `LINKS`, `BYE`, ...).
//! - [`signal`], [`signal_client`], [`switchboard`]: rtc-signaller 6.x messages, the
//!   client side of signalling, and the switchboard server as a state machine.
//! - [`mesh`]: a peer in a room ([`mesh::Mesh`]): who links to whom, leaves, retries,
//!   link info; links are abstract.
//! - [`node`] (feature `webrtc`, default): a [`mesh::Mesh`] over real WebRTC data
//!   channels (str0m), with UDP datagrams in and out; its docs show a custom event loop.
//! - [`member`] (feature `webrtc`): what every driver of a room member shares: join
//!   options, the handle's requests and answers, fresh ids and incarnations.
//! - [`security`]: secured rooms: the room secret and its keys, sealed signalling
//!   payloads, Ed25519 member identities and the one rule for their signatures.
//! - [`stun`]: the STUN binding client for server-reflexive candidates.
//! - [`url`], [`http`], [`hosting`]: signalling URLs, the switchboard port's HTTP
//!   routes and responses, and the table of a hosted switchboard's connections.
//!
//! ## A driving loop
//!
//! Two replicas joined by an in-memory stream:
//!
//! ```
//! use std::time::Instant;
//! use rtc_mesh_core::{Codec, Framing, ReplicaOutput, Replica, ReplicaEvent, Store, StoreConfig, Value};
//!
//! let now = Instant::now();
//! // Wall-clock time is given, never read: epoch (ms since 1970) at `now`.
//! let epoch_ms = 1_795_713_876_272.0;
//! let mut a = Replica::new(Store::new(StoreConfig::new("alice", epoch_ms, now)).unwrap());
//! let mut b = Replica::new(Store::new(StoreConfig::new("bob", epoch_ms, now)).unwrap());
//! a.set(now, "k", &Value::from_json(r#"{"nested":[1,"x"]}"#).unwrap()).unwrap();
//! let (la, lb) = (a.open_link(Codec::Postcard, Framing::Stream), b.open_link(Codec::Postcard, Framing::Stream));
//! // Drain one replica's output into the other; true if any bytes moved.
//! fn pump(from: &mut Replica, to: &mut Replica, link: rtc_mesh_core::LinkId,
//!         now: Instant, synced: &mut u32) -> bool {
//!     let mut moved = false;
//!     loop {
//!         match from.poll_output() {
//!             ReplicaOutput::Transmit(_, bytes) => { to.handle_input(now, link, &bytes); moved = true; }
//!             ReplicaOutput::Event(ReplicaEvent::Synced { .. }) => *synced += 1,
//!             ReplicaOutput::Event(_) => {}
//!             ReplicaOutput::Timeout(_) => return moved,
//!         }
//!     }
//! }
//! let mut synced = 0;
//! while pump(&mut a, &mut b, lb, now, &mut synced) | pump(&mut b, &mut a, la, now, &mut synced) {}
//! assert_eq!(synced, 2);
//! assert_eq!(b.store().get("k"), a.store().get("k"));
//! ```
//!
//! ## Time and randomness
//!
//! Every timestamp derives from the epoch and start instant in [`StoreConfig`] plus the
//! `now` passed with each input. Core draws no random numbers.
//!
//! ## Panics
//!
//! Bytes from peers never cause a panic: every decoder is bounded by [`Limits`] and
//! returns a typed error. A panic in this crate means a broken internal invariant, a bug.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod control;
pub mod hosting;
pub mod http;
mod key_index;
pub mod limits;
#[cfg(feature = "webrtc")]
pub mod member;
pub mod mesh;
#[cfg(feature = "webrtc")]
pub mod node;
pub mod persist;
pub mod replica;
mod rng;
pub mod security;
#[cfg(feature = "webrtc")]
mod seeded_dtls;
pub mod session;
pub mod signal;
pub mod signal_client;
pub mod store;
pub mod stun;
pub mod switchboard;
#[cfg(feature = "webrtc")]
pub mod turn;
pub mod url;
pub mod value;
pub mod wire;

pub use limits::Limits;
pub use replica::{LinkId, Replica, ReplicaEvent, ReplicaOutput};
pub use session::{Session, SessionConfig, SessionEvent, SessionStats};
pub use signal::PeerId;
pub use smol_str::SmolStr;
pub use store::{Clock, Store, StoreConfig, StoreError, StoreEvent, Update, UpdateRef, Verdict};
pub use value::{EncodedValue, Object, PostcardValue, Value, ValueError};
pub use wire::{Codec, DecodeError, Decoder, Encoder, Framing, Message};
