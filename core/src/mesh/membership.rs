//! Membership: our announce and its attributes, the room's announces and leaves, who
//! is present.

use super::*;

/// The announce attributes the mesh sets itself; user attributes of these names are
/// dropped.
pub(super) fn reserved_attribute(k: &str) -> bool {
    matches!(k, "id" | "room" | "agent" | "incarnation" | "codecs")
}

impl Mesh {
    /// Our announce attributes.
    pub(super) fn attributes(&self) -> Object {
        let c = &self.config;
        let mut o = Object::new();
        o.insert("id", Value::from(c.id.as_str()));
        o.insert("room", Value::from(c.room.as_str()));
        o.insert("agent", Value::from(c.agent.as_str()));
        o.insert("incarnation", Value::from(c.incarnation.as_str()));
        o.insert(
            "codecs",
            Value::Array(c.codecs.iter().map(|k| Value::from(k.name())).collect()),
        );
        for (k, v) in c.attributes.iter() {
            if !reserved_attribute(k) {
                o.insert(k, v.clone());
            }
        }
        o
    }

    /// Sends `s` through the signalling client (queued while it is disconnected).
    pub(super) fn signal(&mut self, s: Signal) {
        if !self.config.in_room {
            return;
        }
        let s = self.secure_out(self.last_now, s);
        self.client.send(&s);
        self.pump_signal();
    }

    /// Moves the signalling client's outputs out, in order.
    pub(super) fn pump_signal(&mut self) {
        if !self.config.in_room {
            // No room, no switchboard: the client never connects.
            self.client_at = self.last_now + IDLE;
            return;
        }
        loop {
            match self.client.poll_output() {
                ClientOutput::Connect => self.out.push_back(MeshOutput::SignalConnect),
                ClientOutput::Send(t) => self.out.push_back(MeshOutput::Signal(t)),
                ClientOutput::Close => self.out.push_back(MeshOutput::SignalClose),
                ClientOutput::Timeout(t) => {
                    self.client_at = t;
                    return;
                }
                // Texts are parsed by the mesh itself; the connection's state is known
                // from the calls that changed it.
                ClientOutput::Message(_)
                | ClientOutput::BadMessage(_)
                | ClientOutput::Connected
                | ClientOutput::Disconnected => {}
            }
        }
    }

    /// The signalling connection opened: the client sends our announce, then what was
    /// queued. On a reconnect, offers in flight may have been lost: they start again.
    pub fn handle_signal_connected(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        if !self.config.in_room {
            return;
        }
        let again = self.client.connections() > 0;
        if again && self.config.security.is_some() {
            // A fresh signature: the last announce would be a replay.
            let a = Signal::announce(&self.config.id, self.attributes());
            let a = self.secure_out(now, a);
            self.client.announce(&a);
        }
        self.client.handle_connected(now);
        self.pump_signal();
        if again && !self.closed {
            let offering: Vec<String> = self
                .peers
                .iter()
                .filter(|(_, p)| matches!(p.conn, Conn::Negotiating { offerer: true, .. }))
                .map(|(id, _)| id.clone())
                .collect();
            for peer in offering {
                self.restart_offer(&peer, now);
            }
        }
    }

    /// The signalling connection failed to open or dropped: the client reconnects after
    /// its backoff ([`MeshOutput::SignalConnect`] again) and queues what is sent until
    /// then.
    pub fn handle_signal_disconnected(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        if !self.config.in_room {
            return;
        }
        if self.client.is_connected() {
            self.stats.signal_disconnects += 1;
        }
        self.client.handle_disconnected(now);
        self.pump_signal();
    }

    /// The switchboard refused our connection before the upgrade, with this HTTP
    /// status (`401 Unauthorized`, say): reported as [`MeshEvent::Refused`]
    /// (`http_401`), then taken as a lost connection.
    pub fn handle_signal_refused(&mut self, now: Instant, status: &str) {
        let code = status.split(' ').next().unwrap_or_default();
        self.event(MeshEvent::Refused {
            reason: format!("http_{code}"),
        });
        self.handle_signal_disconnected(now);
    }

    pub(super) fn set_present(&mut self, peer: &str, present: bool, reason: LeaveReason) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        if p.present == present {
            return;
        }
        p.present = present;
        let e = if present {
            MeshEvent::PeerJoined {
                peer: PeerId::checked(peer),
                attributes: p.attributes.clone(),
            }
        } else {
            MeshEvent::PeerLeft {
                peer: PeerId::checked(peer),
                reason,
            }
        };
        self.event(e);
    }

    /// A text from the switchboard (parsed here, once; an invalid one is counted in
    /// [`MeshStats::bad_signals`] and dropped).
    pub fn handle_signal(&mut self, now: Instant, text: &str) {
        self.last_now = self.last_now.max(now);
        if !self.config.in_room {
            return;
        }
        match Signal::parse(text, &self.config.signalling.limits) {
            Ok(msg) => self.on_message(now, msg),
            Err(_) => self.stats.bad_signals += 1,
        }
    }

    fn on_message(&mut self, now: Instant, msg: Signal) {
        if self.closed {
            return;
        }
        if let Some(t) = &msg.to {
            if t != &self.config.id {
                return;
            }
        }
        if msg.command == "roominfo" {
            if !self.online {
                self.online = true;
                self.event(MeshEvent::Online);
            }
            return;
        }
        let Some(from) = msg.sender.clone() else {
            if msg.command == crate::switchboard::REFUSED_COMMAND {
                let reason = match msg.object().and_then(|o| o.get("reason")) {
                    Some(Value::String(r)) => r.chars().take(64).collect(),
                    _ => "unknown".into(),
                };
                self.event(MeshEvent::Refused { reason });
            }
            return;
        };
        if from == self.config.id {
            return;
        }
        let Some(msg) = self.secure_in(now, &from, msg) else {
            return;
        };
        match msg.command.as_str() {
            "announce" => self.on_announce(now, &from, &msg),
            "leave" => self.on_leave(now, &from, &msg),
            "mesh:sdp" | "mesh:candidate" | "mesh:candidates" => {
                if self.peers.get(&from).is_some_and(|p| p.in_room) {
                    self.on_negotiation(now, &from, &msg);
                } else if !cfg!(feature = "bug-drop-early-sdp")
                    && (self.early.len() < MAX_EARLY_PEERS || self.early.contains_key(&from))
                {
                    // Before its announce: keep it for then.
                    self.stats.early += 1;
                    let q = self.early.entry(from).or_default();
                    if q.len() < MAX_EARLY {
                        q.push(msg);
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn on_announce(&mut self, now: Instant, from: &str, msg: &Signal) {
        let Some(attrs) = msg.object().cloned() else {
            return;
        };
        if attrs.get("room") != Some(&Value::from(self.config.room.as_str())) {
            return;
        }
        let incarnation = match attrs.get("incarnation") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        if msg.to.is_none() {
            // A newcomer's broadcast: answer directly, as rtc-signaller does.
            let me = self.config.id.clone();
            let reply = Signal::announce(&me, self.attributes()).to(from);
            self.signal(reply);
        }
        let codecs = codecs_of(&attrs);
        let returning = match self.peers.get(from) {
            Some(p) => p.incarnation != incarnation,
            None => false,
        };
        if returning && cfg!(feature = "bug-block-returning") {
            return;
        }
        if returning {
            // A new life: its old link (if any) is of no use.
            self.drop_conn(from, None);
            self.set_present(from, false, LeaveReason::Left);
        }
        let p = self.peers.entry(from.to_owned()).or_insert_with(|| Peer {
            attributes: Object::new(),
            incarnation: None,
            codecs: Vec::new(),
            present: false,
            in_room: true,
            conn: Conn::Idle { retry_at: None },
            failures: 0,
            synced: false,
        });
        let changed = p.present && !returning && p.attributes != attrs;
        if changed {
            self.out
                .push_back(MeshOutput::Event(MeshEvent::PeerUpdated {
                    peer: PeerId::checked(from),
                    attributes: attrs.clone(),
                }));
        }
        p.attributes = attrs;
        p.incarnation = incarnation;
        p.codecs = codecs;
        p.in_room = true;
        if returning {
            p.failures = 0;
        }
        self.set_present(from, true, LeaveReason::Left);
        let conn = &self.peers[from].conn;
        let idle = matches!(conn, Conn::Idle { .. });
        let offering = matches!(conn, Conn::Negotiating { offerer: true, .. });
        if idle && self.we_offer(from) {
            self.offer(from, now);
        } else if offering && msg.to.is_none() && !returning {
            // It announced again by broadcast (its signalling reconnected): what we
            // sent it, or it sent us, may be lost.
            self.restart_offer(from, now);
        }
        if let Some(early) = self.early.remove(from) {
            for m in early {
                self.on_negotiation(now, from, &m);
            }
        }
    }

    pub(super) fn on_leave(&mut self, _now: Instant, from: &str, msg: &Signal) {
        let reason = msg.object().and_then(|o| match o.get("reason") {
            Some(Value::String(r)) => Some(r.clone()),
            _ => None,
        });
        self.early.remove(from);
        let Some(p) = self.peers.get_mut(from) else {
            return;
        };
        p.in_room = false;
        let open = matches!(p.conn, Conn::Open { .. });
        if reason.is_some() && open {
            // The switchboard lost its connection; the link decides.
            return;
        }
        let why = if reason.is_some() {
            LeaveReason::Closed
        } else {
            LeaveReason::Left
        };
        self.forget_peer(from, why);
        self.check_all_synced();
    }
}
