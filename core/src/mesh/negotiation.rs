//! Negotiation: who offers, with which codec, and the routing of SDP and candidates
//! between the link layer and signalling (early ones kept until their announce).

use super::*;

impl Mesh {
    pub(super) fn we_offer(&self, peer: &str) -> bool {
        self.config.id.as_str() > peer
    }

    pub(super) fn codec_with(&self, peer: &Peer) -> Codec {
        self.config
            .codecs
            .iter()
            .copied()
            .find(|c| peer.codecs.contains(c))
            .unwrap_or(Codec::Json)
    }

    /// Starts a negotiation as offerer.
    pub(super) fn offer(&mut self, peer: &str, now: Instant) {
        if !self.peers.contains_key(peer) {
            return;
        }
        self.stats.offers += 1;
        self.start_negotiation(peer, now, true);
    }

    /// Drops the negotiation in progress with `peer` and offers afresh.
    pub(super) fn restart_offer(&mut self, peer: &str, now: Instant) {
        self.stats.offers_restarted += 1;
        self.drop_conn(peer, None);
        self.offer(peer, now);
    }

    /// Marks `peer` negotiating and tells the link layer to open a connection to it, in
    /// `offerer`'s role, with the best common codec.
    pub(super) fn start_negotiation(&mut self, peer: &str, now: Instant, offerer: bool) {
        let codec = self
            .peers
            .get(peer)
            .map_or(Codec::Json, |p| self.codec_with(p));
        if let Some(p) = self.peers.get_mut(peer) {
            p.conn = Conn::Negotiating {
                since: now,
                offerer,
            };
        }
        self.out.push_back(MeshOutput::Link(LinkCommand::Open {
            peer: PeerId::checked(peer),
            offerer,
            codec,
        }));
    }

    pub(super) fn on_negotiation(&mut self, now: Instant, from: &str, msg: &Signal) {
        if self.config.security.is_some() {
            if let Some(m) = self.open_negotiation(now, from, msg) {
                self.on_opened_negotiation(now, from, &m);
            }
        } else {
            self.on_opened_negotiation(now, from, msg);
        }
    }

    fn on_opened_negotiation(&mut self, now: Instant, from: &str, msg: &Signal) {
        match msg.command.as_str() {
            "mesh:sdp" => {
                let Some(o) = msg.object() else { return };
                let (Some(Value::String(kind)), Some(Value::String(sdp))) =
                    (o.get("type"), o.get("sdp"))
                else {
                    return;
                };
                let sdp = sdp.clone();
                let open = matches!(
                    self.peers.get(from).map(|p| &p.conn),
                    Some(Conn::Open { .. })
                );
                if open && o.get("restart") == Some(&Value::Bool(true)) {
                    // An ICE restart of the open link: the link stays.
                    let kind = match kind.as_str() {
                        "offer" => SdpKind::Offer,
                        "answer" => SdpKind::Answer,
                        _ => return,
                    };
                    self.out
                        .push_back(MeshOutput::Link(LinkCommand::RestartSdp {
                            peer: PeerId::checked(from),
                            kind,
                            sdp,
                        }));
                    return;
                }
                match kind.as_str() {
                    "offer" => {
                        let negotiating_as_offerer = matches!(
                            self.peers.get(from).map(|p| &p.conn),
                            Some(Conn::Negotiating { offerer: true, .. })
                        );
                        if negotiating_as_offerer {
                            // Both offered (it should not, by the rule): ours stands.
                            return;
                        }
                        // A fresh offer replaces whatever was there. Over an open link it
                        // means the remote lost that link: reported as a closed link is
                        // (the peer joins again when the new one opens).
                        let was_open = matches!(
                            self.peers.get(from).map(|p| &p.conn),
                            Some(Conn::Open { .. })
                        );
                        self.drop_conn(from, None);
                        if was_open {
                            self.set_present(from, false, LeaveReason::Closed);
                            self.check_all_synced();
                        }
                        self.start_negotiation(from, now, false);
                        self.out.push_back(MeshOutput::Link(LinkCommand::RemoteSdp {
                            peer: PeerId::checked(from),
                            kind: SdpKind::Offer,
                            sdp,
                        }));
                    }
                    "answer" => {
                        if matches!(
                            self.peers.get(from).map(|p| &p.conn),
                            Some(Conn::Negotiating { offerer: true, .. })
                        ) {
                            self.out.push_back(MeshOutput::Link(LinkCommand::RemoteSdp {
                                peer: PeerId::checked(from),
                                kind: SdpKind::Answer,
                                sdp,
                            }));
                        }
                    }
                    _ => {}
                }
            }
            "mesh:candidate" | "mesh:candidates" => {
                if !matches!(
                    self.peers.get(from).map(|p| &p.conn),
                    Some(Conn::Negotiating { .. } | Conn::Open { .. })
                ) {
                    return;
                }
                let mut cands = Vec::new();
                for part in &msg.args {
                    match part {
                        Part::Json(Value::Object(o)) => cands.push(o.clone()),
                        Part::Json(Value::Array(a)) => {
                            for c in a {
                                if let Value::Object(o) = c {
                                    cands.push(o.clone());
                                }
                            }
                        }
                        _ => {}
                    }
                }
                for candidate in cands {
                    self.out
                        .push_back(MeshOutput::Link(LinkCommand::RemoteCandidate {
                            peer: PeerId::checked(from),
                            candidate,
                        }));
                }
            }
            _ => {}
        }
    }

    /// The link layer made our SDP for `peer`: route it through signalling.
    pub fn local_sdp(&mut self, _now: Instant, peer: &str, kind: SdpKind, sdp: &str) {
        self.send_sdp(peer, kind, sdp, false);
    }

    /// The link layer made an SDP for an ICE restart of the open link to `peer`
    /// (`"restart": true` beside the usual fields; see [`LinkCommand::RestartSdp`]). A
    /// peer that does not know restarts takes the offer as a fresh one.
    pub fn local_restart_sdp(&mut self, _now: Instant, peer: &str, kind: SdpKind, sdp: &str) {
        self.send_sdp(peer, kind, sdp, true);
    }

    fn send_sdp(&mut self, peer: &str, kind: SdpKind, sdp: &str, restart: bool) {
        let mut o = Object::new();
        o.insert("type", Value::from(kind.name()));
        o.insert("sdp", Value::from(sdp));
        o.insert("incarnation", Value::from(self.config.incarnation.as_str()));
        if restart {
            o.insert("restart", Value::Bool(true));
        }
        let me = self.config.id.clone();
        self.signal(Signal::new("mesh:sdp", &me, vec![o.into()]).to(peer));
    }

    /// The open link to `peer` is held by the link layer: its silence does not count
    /// against it up to `now`, which may be an earlier instant than the last input's
    /// (the last datagram heard on a path whose data stalls). The link layer calls this
    /// while an ICE restart lasts or SCTP retransmits, and gives up with
    /// [`Mesh::link_closed`].
    pub fn link_alive(&mut self, now: Instant, peer: &str) {
        self.last_now = self.last_now.max(now);
        if let Some(Conn::Open { last_heard, .. }) = self.peers.get_mut(peer).map(|p| &mut p.conn) {
            *last_heard = (*last_heard).max(now);
        }
    }

    /// The link layer found a local candidate for `peer` (trickled).
    pub fn local_candidate(&mut self, _now: Instant, peer: &str, candidate: Object) {
        let me = self.config.id.clone();
        self.signal(Signal::new("mesh:candidate", &me, vec![candidate.into()]).to(peer));
    }
}
