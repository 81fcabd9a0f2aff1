//! Link routing: a link opens, carries bytes, pauses, closes; the replica's events
//! become mesh events, and "all synced" is reported.

use super::*;

impl Mesh {
    /// Closes the connection to `peer` (if any); with `retry`, the offerer tries again
    /// after a backoff.
    pub(super) fn drop_conn(&mut self, peer: &str, retry: Option<Instant>) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        let old = std::mem::replace(&mut p.conn, Conn::Idle { retry_at: retry });
        p.synced = false;
        match old {
            Conn::Open { link, .. } => {
                self.links.remove(&link);
                self.replica.close_link(link);
                self.out.push_back(MeshOutput::Link(LinkCommand::Close {
                    peer: PeerId::checked(peer),
                }));
            }
            Conn::Negotiating { .. } => {
                self.out.push_back(MeshOutput::Link(LinkCommand::Close {
                    peer: PeerId::checked(peer),
                }));
            }
            Conn::Idle { .. } => {}
        }
    }

    /// `peer` is gone for good (it left, or was removed): its connection closes, it
    /// is reported left for `reason`, and it is forgotten.
    pub(super) fn forget_peer(&mut self, peer: &str, reason: LeaveReason) {
        self.drop_conn(peer, None);
        self.set_present(peer, false, reason);
        self.peers.remove(peer);
        self.behind.remove(peer);
    }

    /// The link to `peer` is lost (closed, silent, or never established): the
    /// connection goes, the peer is reported left for `reason`, the offerer retries at
    /// `retry`, and a peer the switchboard no longer has is forgotten.
    pub(super) fn lose_link(&mut self, peer: &str, retry: Instant, reason: LeaveReason) {
        self.drop_conn(peer, Some(retry));
        self.set_present(peer, false, reason);
        if self.peers.get(peer).is_some_and(|p| !p.in_room) {
            self.peers.remove(peer);
        }
    }

    /// The data channel to `peer` opened, speaking `codec`.
    pub fn link_open(&mut self, now: Instant, peer: &str, codec: Codec) {
        self.last_now = self.last_now.max(now);
        let Some(p) = self.peers.get(peer) else {
            // Not a peer we know (any more): the link layer must close it.
            if let Ok(peer) = PeerId::new(peer) {
                self.out
                    .push_back(MeshOutput::Link(LinkCommand::Close { peer }));
            }
            return;
        };
        if matches!(p.conn, Conn::Open { .. }) {
            return;
        }
        let link = self.replica.open_link(codec, Framing::Messages);
        // A first PING right behind the digest: the round trip is known at once.
        if self.config.ping {
            self.replica.ping(now, link);
        }
        self.links.insert(link, peer.to_owned());
        let ping = self.config.ping_interval;
        if let Some(p) = self.peers.get_mut(peer) {
            p.conn = Conn::Open {
                link,
                last_heard: now,
                next_ping: now + ping,
            };
            p.failures = 0;
        }
        self.rekey_on_open(link, peer);
        self.set_present(peer, true, LeaveReason::Left);
    }

    /// The link layer's buffer for `peer` is full (`paused`), or has room again: the
    /// mesh encodes the history no faster than the link can take it.
    pub fn link_paused(&mut self, peer: &str, paused: bool) {
        if let Some(link) = self.link_of(peer) {
            self.replica.pause_link(link, paused);
        }
    }

    /// Bytes from the data channel to `peer`.
    pub fn link_data(&mut self, now: Instant, peer: &str, data: &[u8]) {
        self.last_now = self.last_now.max(now);
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        let Conn::Open {
            link, last_heard, ..
        } = &mut p.conn
        else {
            return;
        };
        *last_heard = now;
        let link = *link;
        self.replica.handle_input(now, link, data);
    }

    /// The connection to `peer` closed or failed.
    pub fn link_closed(&mut self, now: Instant, peer: &str) {
        self.last_now = self.last_now.max(now);
        if self.closed {
            // We are closing: the remote read our goodbye and closed the link.
            self.drop_conn(peer, None);
            self.check_closing();
            return;
        }
        let Some(p) = self.peers.get(peer) else {
            return;
        };
        let was_open = matches!(p.conn, Conn::Open { .. });
        let failures = p.failures + 1;
        let retry = now + self.backoff(failures);
        if let Some(p) = self.peers.get_mut(peer) {
            p.failures = failures;
        }
        let reason = if was_open {
            LeaveReason::Closed
        } else {
            LeaveReason::Failed
        };
        self.lose_link(peer, retry, reason);
        self.check_all_synced();
    }

    pub(super) fn on_replica_event(&mut self, e: ReplicaEvent) {
        match e {
            ReplicaEvent::Update(ev) => {
                let removal = ev.key.starts_with(crate::security::updates::REVOKED_PREFIX);
                self.event(MeshEvent::Update(ev));
                if removal && !cfg!(feature = "bug-keep-removed") {
                    self.cut_off_removed();
                }
                if removal {
                    self.rekey_after_removal();
                }
            }
            ReplicaEvent::Synced { link, peer: source } if self.streams.contains(&link) => {
                self.event(MeshEvent::StreamSynced { link, source });
            }
            ReplicaEvent::SyncedAll { peers } if !self.config.in_room => {
                self.event(MeshEvent::StreamsSynced { sources: peers });
            }
            ReplicaEvent::LinkError { link, error } if self.streams.contains(&link) => {
                let fatal = error.is_fatal();
                self.event(MeshEvent::StreamError { link, error });
                if fatal {
                    self.detach(link);
                }
            }
            ReplicaEvent::Synced { link, .. } => {
                if let Some(peer) = self.links.get(&link).cloned() {
                    if let Some(p) = self.peers.get_mut(&peer) {
                        p.synced = true;
                    }
                    self.event(MeshEvent::Synced {
                        peer: PeerId::checked(&peer),
                    });
                    self.check_all_synced();
                }
            }
            ReplicaEvent::Control {
                link,
                control: Control::Bye,
            } => {
                if let Some(peer) = self.links.get(&link).cloned() {
                    // It is leaving: as its own `/leave`.
                    self.forget_peer(&peer, LeaveReason::Left);
                    self.check_all_synced();
                    self.check_closing();
                }
            }
            ReplicaEvent::Misbehaved { link, reason } if self.streams.contains(&link) => {
                self.replica.refuse_link(link, reason);
                self.flush_replica();
                self.event(MeshEvent::StreamMisbehaved {
                    link,
                    reason: reason.to_owned(),
                });
                self.detach(link);
            }
            ReplicaEvent::Misbehaved { link, reason } => {
                if let Some(peer) = self.links.get(&link).cloned() {
                    self.replica.refuse_link(link, reason);
                    self.flush_replica();
                    self.event(MeshEvent::PeerMisbehaved {
                        peer: PeerId::checked(&peer),
                        reason: reason.to_owned(),
                    });
                    let at = self.last_now + self.backoff(4);
                    self.lose_link(&peer, at, LeaveReason::Failed);
                    self.check_all_synced();
                }
            }
            ReplicaEvent::Control {
                link,
                control: Control::Other(text),
            } if text.starts_with("REKEY ") => self.on_rekey(link, &text["REKEY ".len()..]),
            ReplicaEvent::Control {
                link,
                control: Control::Other(text),
            } if text.starts_with("REFUSED ") => {
                if let Some(peer) = self.links.get(&link).cloned() {
                    let reason: String = text["REFUSED ".len()..].chars().take(64).collect();
                    self.event(MeshEvent::RefusedByPeer {
                        peer: PeerId::checked(&peer),
                        reason,
                    });
                }
            }
            ReplicaEvent::LinkError { link, error } if error.is_fatal() => {
                if let Some(peer) = self.links.get(&link).cloned() {
                    // A peer that sends what cannot be decoded: closed, retried later.
                    let at = self.last_now + self.backoff(4);
                    self.drop_conn(&peer, Some(at));
                    self.set_present(&peer, false, LeaveReason::Failed);
                }
            }
            _ => {}
        }
    }

    /// Secured rooms, after a removal landed: the links to removed members close, and
    /// they are forgotten; what they still send through the switchboard is ignored
    /// ([`MeshStats::removed_signals`]).
    fn cut_off_removed(&mut self) {
        let removed: Vec<String> = self
            .peers
            .keys()
            .filter(|p| self.replica.store().is_removed(p))
            .cloned()
            .collect();
        for peer in removed {
            self.forget_peer(&peer, LeaveReason::Removed);
            self.early.remove(&peer);
        }
        self.check_all_synced();
    }

    pub(super) fn check_all_synced(&mut self) {
        self.sync_dirty = true;
    }

    pub(super) fn report_all_synced(&mut self) {
        if !std::mem::take(&mut self.sync_dirty) {
            return;
        }
        let present: Vec<&String> = self
            .peers
            .iter()
            .filter(|(_, p)| p.present)
            .map(|(k, _)| k)
            .collect();
        if present.is_empty() {
            return;
        }
        if present.iter().all(|k| self.peers[*k].synced) {
            let peers = present.into_iter().map(|p| PeerId::checked(p)).collect();
            self.event(MeshEvent::SyncedAll { peers });
        }
    }
}
