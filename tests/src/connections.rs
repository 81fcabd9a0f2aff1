//! What both simulators share of signalling: each peer's current connection to the
//! switchboard, and which peer a connection belongs to.

use std::collections::BTreeMap;
use std::time::Instant;

use rtc_mesh_core::switchboard::{Admission, ConnId, Switchboard};

/// The signalling connections of a world's peers (at most one open per peer).
#[derive(Debug, Default)]
pub(crate) struct Connections {
    of_peer: BTreeMap<usize, ConnId>,
    peer_of: BTreeMap<ConnId, usize>,
    next: u64,
}

impl Connections {
    /// Peer `i`'s open connection.
    pub(crate) fn of(&self, i: usize) -> Option<ConnId> {
        self.of_peer.get(&i).copied()
    }

    /// The peer a connection (open or not) belonged to.
    pub(crate) fn peer(&self, c: ConnId) -> Option<usize> {
        self.peer_of.get(&c).copied()
    }

    /// Peer `i`'s new connection opens at `board` (a fresh id).
    pub(crate) fn open(&mut self, board: &mut Switchboard, now: Instant, i: usize) -> ConnId {
        self.next += 1;
        let c = ConnId(self.next);
        self.of_peer.insert(i, c);
        self.peer_of.insert(c, i);
        board.handle_open(now, c, Admission::ungated());
        c
    }

    /// Peer `i` has no connection any more (it closed, or crashed): the one it had.
    pub(crate) fn take(&mut self, i: usize) -> Option<ConnId> {
        self.of_peer.remove(&i)
    }

    /// Peer `i` notices `c` dropped: whether that was its open connection (then it has
    /// none).
    pub(crate) fn lost(&mut self, i: usize, c: ConnId) -> bool {
        if self.of(i) == Some(c) {
            self.of_peer.remove(&i);
            true
        } else {
            false
        }
    }

    /// The open connections, by peer.
    pub(crate) fn open_ones(&self) -> Vec<(usize, ConnId)> {
        self.of_peer.iter().map(|(&i, &c)| (i, c)).collect()
    }
}
