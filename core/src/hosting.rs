//! What both runtimes' switchboard servers share: the switchboard, the table of
//! connections, and handing the switchboard's outputs to each connection's writer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::switchboard::{Admission, CloseReason, ConnId, SwitchOutput, Switchboard};

/// A connection whose outgoing queue holds this many frames is too slow: closed.
pub const MAX_QUEUED: usize = 4096;

/// What a connection's writer is told to do.
#[derive(Debug)]
pub enum ConnOut {
    /// Send a text frame.
    Text(Arc<str>),
    /// Send a ping.
    Ping,
    /// Send a close frame and end.
    Close(CloseReason),
}

/// A connection's writer, as seen by the dispatcher.
pub trait ConnWriter {
    /// Queues `out`; false if the writer is gone or has `MAX_QUEUED` frames waiting.
    fn push(&self, out: ConnOut) -> bool;
    /// Ends the writer at once (its connection was too slow).
    fn abort(&self);
}

/// The switchboard and its connections' writers.
pub struct Hosted<W> {
    /// The switchboard.
    pub board: Switchboard,
    /// Open connections.
    pub conns: HashMap<ConnId, W>,
    next_id: u64,
    /// When the switchboard next wants `handle_timeout`.
    next_timeout: Option<Instant>,
}

impl<W: ConnWriter> Hosted<W> {
    /// A host for `board`.
    pub fn new(board: Switchboard) -> Self {
        Hosted {
            board,
            conns: HashMap::new(),
            next_id: 0,
            next_timeout: None,
        }
    }

    /// When the switchboard next wants `handle_timeout`, as of the last
    /// [`dispatch`](Self::dispatch) (`None` before the first).
    pub fn next_timeout(&self) -> Option<Instant> {
        self.next_timeout
    }

    /// Whether a connection from `peer` (its address, as the socket tells it)
    /// presenting `token` may be upgraded ([`Switchboard::admit`]); if not, the
    /// status line to answer with.
    pub fn admit(
        &mut self,
        now: Instant,
        peer: std::io::Result<std::net::SocketAddr>,
        token: Option<&str>,
    ) -> Result<Admission, &'static str> {
        match peer {
            Ok(peer) => self
                .board
                .admit(now, peer.ip(), token)
                .map_err(|r| r.status()),
            Err(_) => Err("400 Bad Request"),
        }
    }

    /// Registers a new connection, let in by the switchboard's
    /// [`admit`](Switchboard::admit), and tells the switchboard.
    pub fn open(&mut self, now: Instant, writer: W, admission: Admission) -> ConnId {
        let id = ConnId(self.next_id);
        self.next_id += 1;
        self.conns.insert(id, writer);
        self.board.handle_open(now, id, admission);
        id
    }

    /// The connection's transport ended: the switchboard hears of it (unless it
    /// closed the connection itself).
    pub fn closed(&mut self, now: Instant, id: ConnId) {
        if self.conns.remove(&id).is_some() {
            self.board.handle_close(now, id);
            self.dispatch(now);
        }
    }

    /// Hands the switchboard's outputs to the writers; a writer that cannot keep up
    /// is aborted and its connection closed.
    pub fn dispatch(&mut self, now: Instant) {
        loop {
            let slow = self.dispatch_once();
            if slow.is_empty() {
                return;
            }
            for c in slow {
                if let Some(w) = self.conns.remove(&c) {
                    w.abort();
                }
                // Its room hears it left (dispatched on the next round).
                self.board.handle_close(now, c);
            }
        }
    }

    fn dispatch_once(&mut self) -> Vec<ConnId> {
        let mut slow = Vec::new();
        loop {
            let (c, out) = match self.board.poll_output() {
                SwitchOutput::Timeout(t) => {
                    self.next_timeout = Some(t);
                    return slow;
                }
                SwitchOutput::Send(c, t) => (c, ConnOut::Text(t)),
                SwitchOutput::Ping(c) => (c, ConnOut::Ping),
                SwitchOutput::Close(c, r) => {
                    if let Some(w) = self.conns.remove(&c) {
                        w.push(ConnOut::Close(r));
                    }
                    continue;
                }
            };
            if let Some(w) = self.conns.get(&c) {
                if !w.push(out) {
                    slow.push(c);
                }
            }
        }
    }
}
