//! Key epochs in the mesh (secured rooms): when a removal lands, the room moves to a
//! key the removed member cannot derive, and every remaining member takes it over its
//! links. The line, its checks and its order are [`crate::security::Rekey`]'s; this
//! is who sends what, and when.
//!
//! - **Rotating.** A removal lands (`room/revoked/<id>`) that the current epoch's line
//!   does not list: an admin rotates at once; any other member that is not removed
//!   waits [`Security::rekey_wait`] (jittered) for someone else's line, then rotates
//!   itself. The new line lists every removal in the store.
//! - **Handing over.** The line goes on every open link to a peer that is not
//!   removed (never on an attached stream), and on every link that opens later. A
//!   member takes a line that passes [`Rekey::check`] and [`beats`](Rekey::beats) its
//!   epoch, then relays it; a line that lists a removal it has not seen is held until
//!   the removal arrives; a line that loses to ours is answered with ours.
//! - **The grace period.** Until the line's `until`, the room stays on the previous
//!   epoch's tag, and a member that comes back with the previous key is answered
//!   under it (and handed the line once its link opens). Then every member
//!   announces on the new tag ([`MeshEvent::Rekeyed`] said which epoch).

use super::*;
use crate::security::{Rekey, RekeyError, MAX_REMOVED};

impl Mesh {
    /// The room's key epoch: 0 in an open room and before the first rotation.
    pub fn epoch(&self) -> u32 {
        self.config.security.as_ref().map_or(0, |s| s.key.epoch())
    }

    /// The current epoch's `REKEY` line, to keep across a restart
    /// ([`Security::resume`]); none in epoch 0. [`MeshEvent::Rekeyed`] says when it
    /// changes.
    pub fn rekey_line(&self) -> Option<String> {
        self.config.security.as_ref()?.rekey().map(Rekey::to_line)
    }

    /// A `REKEY` line from the peer on `link`.
    pub(super) fn on_rekey(&mut self, link: LinkId, json: &str) {
        let Some(peer) = self.links.get(&link).cloned() else {
            return;
        };
        let Some(sec) = self.config.security.as_ref() else {
            return;
        };
        let r = match Rekey::parse(json, &self.config.limits) {
            Ok(r) => r,
            Err(_) => {
                self.stats.rekeys_refused += 1;
                return;
            }
        };
        let wall = self.wall_ms(self.last_now);
        let store = self.replica.store();
        match r.check(&sec.key, wall, |id| store.is_removed(id)) {
            Ok(()) => {}
            Err(RekeyError::UnknownRemoval) => {
                // Its removal is on the way: kept (the best one) until it lands.
                if self.held_rekey.as_ref().is_none_or(|h| r.outranks(h)) {
                    self.held_rekey = Some(r);
                }
                return;
            }
            Err(_) => {
                self.stats.rekeys_refused += 1;
                return;
            }
        }
        if r.beats(&sec.key) {
            self.adopt(r, Some(&peer));
        } else if let Some(ours) = sec.rekey().filter(|ours| *ours != &r) {
            // It is behind us, or lost a race to ours: it gets ours.
            let line = ours.to_line();
            self.replica.send_control(link, &Control::Other(line));
        } else {
            // It has our epoch.
            self.behind.remove(&peer);
        }
    }

    /// Takes `r`'s epoch (it passed [`Rekey::check`] and beats ours), hands it on to
    /// every open link but `origin`'s, and reports it.
    fn adopt(&mut self, r: Rekey, origin: Option<&str>) {
        let wall = self.wall_ms(self.last_now);
        let until = r.until();
        let (epoch, by, line) = (r.epoch(), PeerId::checked(r.by()), r.to_line());
        let removed: Vec<String> = r.removed().to_vec();
        let Some(sec) = self.config.security.as_mut() else {
            return;
        };
        let door = sec.door().to_owned();
        sec.take(r, until > wall);
        let moved = door != sec.door();
        // (An end past what an Instant holds is never reached.)
        self.grace_until = (until > wall)
            .then(|| {
                self.last_now
                    .checked_add(Duration::from_millis(until - wall))
            })
            .flatten();
        self.stats.rekeys += 1;
        // Every peer but the line's sender is in the epoch we leave until it shows it
        // has the new key (what it seals opens under it): in the grace period, what
        // goes to it is sealed under the previous key, which it has.
        self.behind = if until > wall {
            let origin = origin.unwrap_or_default();
            self.peers
                .keys()
                .filter(|p| *p != origin)
                .cloned()
                .collect()
        } else {
            BTreeSet::new()
        };
        if self
            .held_rekey
            .as_ref()
            .is_some_and(|h| !h.beats(&self.config.security.as_ref().expect("secured").key))
        {
            self.held_rekey = None;
        }
        let to: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(_, p)| Some(p.as_str()) != origin && self.may_hold(p, &removed))
            .map(|(l, _)| *l)
            .collect();
        for link in to {
            self.replica
                .send_control(link, &Control::Other(line.clone()));
        }
        self.event(MeshEvent::Rekeyed { epoch, by, line });
        if moved {
            self.start(self.last_now);
        }
    }

    /// A link to `peer` opened: it gets the current epoch's line (a member that was
    /// away during the rotation comes back in the grace period with the old key).
    pub(super) fn rekey_on_open(&mut self, link: LinkId, peer: &str) {
        let Some(line) = self.rekey_line() else {
            return;
        };
        let sec = self
            .config
            .security
            .as_ref()
            .expect("a line in a secured room");
        let listed = sec.rekey().map_or(&[][..], |r| r.removed());
        if self.may_hold(peer, listed) {
            self.replica.send_control(link, &Control::Other(line));
        }
    }

    /// Whether `peer` may be handed a line that lists `removed`: neither that list
    /// nor our store removes it.
    fn may_hold(&self, peer: &str, removed: &[String]) -> bool {
        removed.binary_search_by(|r| r.as_str().cmp(peer)).is_err()
            && !self.replica.store().is_removed(peer)
    }

    /// A removal landed: a line held for it may be taken now, and an epoch that does
    /// not list it is rotated (at once by an admin, after the wait by anyone else).
    pub(super) fn rekey_after_removal(&mut self) {
        let Some(sec) = self.config.security.as_ref() else {
            return;
        };
        if let Some(h) = self.held_rekey.take() {
            let wall = self.wall_ms(self.last_now);
            let store = self.replica.store();
            match h.check(&sec.key, wall, |id| store.is_removed(id)) {
                Ok(()) if h.beats(&sec.key) => self.adopt(h, None),
                Err(RekeyError::UnknownRemoval) => self.held_rekey = Some(h),
                _ => {}
            }
        }
        if !self.needs_rotation() {
            return;
        }
        let sec = self.config.security.as_ref().expect("secured");
        let admin = sec.key.admins().contains(&self.config.id);
        let wait = sec.rekey_wait;
        if admin {
            self.rotate();
        } else if self.rotate_at.is_none() {
            let wait = self.jitter(wait.saturating_mul(2));
            self.rotate_at = self.last_now.checked_add(wait);
        }
    }

    /// Whether the store holds a removal that the current epoch does not list (and we
    /// are not removed ourselves, and the line can still list more).
    fn needs_rotation(&self) -> bool {
        let Some(sec) = self.config.security.as_ref() else {
            return false;
        };
        let store = self.replica.store();
        if cfg!(feature = "bug-no-rekey") || store.is_removed(&self.config.id) {
            return false;
        }
        let listed = sec.rekey().map_or(&[][..], |r| r.removed());
        listed.len() < MAX_REMOVED
            && store
                .revoked()
                .any(|(id, _)| listed.binary_search_by(|r| r.as_str().cmp(id)).is_err())
    }

    /// Makes the next epoch, listing every removal in the store, and takes it.
    fn rotate(&mut self) {
        self.rotate_at = None;
        if !self.needs_rotation() {
            return;
        }
        let wall = self.wall_ms(self.last_now);
        let removed: Vec<String> = self
            .replica
            .store()
            .revoked()
            .map(|(id, _)| id.to_owned())
            .collect();
        let sec = self.config.security.as_mut().expect("secured");
        let until = wall.saturating_add(sec.rekey_grace.as_millis() as u64);
        let Some(r) = Rekey::rotate(&sec.key, removed, until, &sec.identity, &mut sec.entropy)
        else {
            return;
        };
        self.adopt(r, None);
    }

    /// Time passed: a rotation that came due, a grace period that ended.
    pub(super) fn rekey_timeout(&mut self, now: Instant) {
        if self.rotate_at.is_some_and(|t| now >= t) {
            self.rotate();
        }
        if self.grace_until.is_some_and(|t| now >= t) {
            self.grace_until = None;
            let ended = self
                .config
                .security
                .as_mut()
                .is_some_and(Security::end_grace);
            if ended {
                // The room moves to the current tag.
                self.behind.clear();
                self.start(now);
            }
        }
    }

    /// When [`Mesh::rekey_timeout`] next has work.
    pub(super) fn rekey_deadline(&self) -> Option<Instant> {
        self.rotate_at.into_iter().chain(self.grace_until).min()
    }
}
