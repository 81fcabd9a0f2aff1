//! Secured rooms in the mesh ([`MeshConfig::security`]): every signal goes to the
//! switchboard sealed (and announces, leaves and SDP signed), and every signal from it
//! is opened and checked here before any rule of the mesh sees it. The rules then run
//! on the opened messages exactly as in an open room.
//!
//! On the wire (any part not shown is as in an open room):
//!
//! ```text
//! /announce|<pk43>|{"id":"<pk43>","room":"<tag>","sec":1,"ts":<ms>,"sig":"<b64url>","v":1,"sealed":"<b64url>"}
//!       sealed ⇒ {"incarnation":"..","codecs":[..],"agent":"..","attrs":{..user attributes}}
//! /to|<peer>|/mesh:sdp|<me>|{"v":1,"sealed":"<b64url>"}
//!       sealed ⇒ deflate-raw of {"type":"offer"|"answer","sdp":"..","incarnation":"..","ts":<ms>,"sig":"<b64url>"[,"restart":true]}
//! /to|<peer>|/mesh:candidate|<me>|{"v":1,"sealed":"<b64url>"}     sealed ⇒ [the candidate objects]
//! /leave|<pk43>|{"id":"<pk43>","incarnation":"..","ts":<ms>,"sig":"<b64url>"}
//! ```
//!
//! What is refused, and counted in [`MeshStats`]: anything unsealed or unsigned on a
//! secured tag (`unsecured_signals`); payloads that do not open for their command,
//! sender and target (`unseal_failures`); signatures that do not check
//! (`bad_signatures`); announces, leaves and SDP older than the last of their kind
//! from the same member, or further than [`Security::max_signal_age`] from our clock
//! (`stale_signals`). A leave without a valid signature is taken as the switchboard's
//! `disconnected`: the link, if open, decides.
//!
//! The SDP is compressed (raw DEFLATE, RFC 1951) before it is sealed: sealed and
//! base64url'd, a signed SDP would be 1.6 times its open size; compressed, it is
//! smaller than the open one. Compressing before encrypting leaks the compressed
//! length, which matters where an attacker can put chosen text beside a secret in
//! one payload (CRIME); no part of an SDP is chosen by anyone but its author. Opened
//! payloads inflate to at most [`MAX_SDP_PLAIN`] bytes.

use super::membership::reserved_attribute;
use super::*;
use crate::security::{signing, Entropy, Identity, PeerKey, Rekey, RekeyError, RoomKey};

/// A member's part in a secured room.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Security {
    /// The room's keys ([`RoomKey::derive`]); after a rotation, the current epoch's
    /// (see [`Rekey`] and [`Security::resume`]).
    pub key: RoomKey,
    /// Our identity: [`MeshConfig::id`] must be its peer id.
    pub identity: Identity,
    /// Our random draws (nonces). One per mesh.
    pub entropy: Entropy,
    /// How far a signed announce, leave or SDP may be from our clock (default 5 min).
    pub max_signal_age: Duration,
    /// After a removal lands, how long a member that is not an admin waits for an
    /// admin's rotation before it rotates the key itself: between this and twice this,
    /// drawn from the mesh's seed (default 10 s).
    pub rekey_wait: Duration,
    /// How long the room keeps the previous epoch's tag after a rotation this member
    /// makes (default 7 days; see [`Rekey`]).
    pub rekey_grace: Duration,
    /// The line of the current epoch (none in epoch 0).
    rekey: Option<Rekey>,
    /// The previous epoch's keys, while the room keeps its tag (the grace period).
    previous: Option<RoomKey>,
}

impl Security {
    /// Default [`Security::max_signal_age`].
    pub const DEFAULT_MAX_SIGNAL_AGE: Duration = Duration::from_secs(300);

    /// A secured member with this room key, identity and entropy.
    pub fn new(key: RoomKey, identity: Identity, entropy: Entropy) -> Security {
        Security {
            key,
            identity,
            entropy,
            max_signal_age: Security::DEFAULT_MAX_SIGNAL_AGE,
            rekey_wait: Security::DEFAULT_REKEY_WAIT,
            rekey_grace: Security::DEFAULT_REKEY_GRACE,
            rekey: None,
            previous: None,
        }
    }

    /// Default [`Security::rekey_wait`].
    pub const DEFAULT_REKEY_WAIT: Duration = Duration::from_secs(10);

    /// Default [`Security::rekey_grace`].
    pub const DEFAULT_REKEY_GRACE: Duration = Duration::from_secs(7 * 86_400);

    /// This member in the epoch that `line` (a `REKEY` line as [`Mesh::rekey_line`]
    /// gave it, kept across a restart) makes, if it is of this room and later than
    /// ours. Its grace period is kept: the mesh stays on the old tag until it ends.
    pub fn resume(mut self, line: &str) -> Result<Security, RekeyError> {
        let json = line.trim().strip_prefix("REKEY ").unwrap_or(line.trim());
        let r = Rekey::parse(json, &crate::limits::Limits::default())?;
        r.verify(&self.key)?;
        if r.beats(&self.key) {
            // The mesh ends the grace period at its start if it is over.
            self.take(r, true);
        }
        Ok(self)
    }

    /// The current epoch's line (none in epoch 0).
    pub fn rekey(&self) -> Option<&Rekey> {
        self.rekey.as_ref()
    }

    /// The tag we announce on: the previous epoch's during its grace period.
    pub(super) fn door(&self) -> &str {
        self.previous.as_ref().unwrap_or(&self.key).tag()
    }

    /// The keys that seal for a peer (the previous epoch's for one that is behind).
    pub(super) fn sealing(&self, behind: bool) -> &RoomKey {
        match &self.previous {
            Some(p) if behind => p,
            _ => &self.key,
        }
    }

    /// Takes `r`'s epoch.
    pub(super) fn take(&mut self, r: Rekey, in_grace: bool) {
        self.previous = in_grace.then(|| r.previous_of(&self.key));
        self.key = r.key_of(&self.key);
        self.rekey = Some(r);
    }

    /// Opens `sealed` under the current keys, or the previous epoch's in its grace
    /// period (then `true`: the sender is behind).
    pub(super) fn open_any(
        &self,
        sealed: &str,
        command: &str,
        sender: &str,
        target: &str,
    ) -> Option<(Vec<u8>, bool)> {
        if let Ok(p) = self.key.open(sealed, command, sender, target) {
            return Some((p, false));
        }
        let p = self
            .previous
            .as_ref()?
            .open(sealed, command, sender, target)
            .ok()?;
        Some((p, true))
    }

    /// Whether the room still keeps the previous epoch's tag.
    pub(super) fn in_grace(&self) -> bool {
        self.previous.is_some()
    }

    /// The grace period is over: the room moves to the current tag.
    pub(super) fn end_grace(&mut self) -> bool {
        self.previous.take().is_some()
    }
}

/// Kinds of signed signals, for the freshness rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Signed {
    Announce,
    Leave,
    Sdp,
}

/// The most bytes an opened SDP payload inflates to.
pub const MAX_SDP_PLAIN: usize = 64 << 10;

/// The most members whose last signed timestamps are kept.
const MAX_FRESH: usize = 4096;

/// The shortest time between two announces made again for announces that did not
/// open (see `answer_unopened`).
pub const REANNOUNCE_GAP: Duration = Duration::from_secs(5);

impl Mesh {
    /// Wall-clock milliseconds at `now` (the store's clock).
    pub(super) fn wall_ms(&self, now: Instant) -> u64 {
        self.replica.store().wall_ms(now).max(0.0) as u64
    }

    /// A timestamp for our next signature: wall time, strictly after the last one.
    fn next_sig_ts(&mut self, now: Instant) -> u64 {
        let ts = self.wall_ms(now).max(self.sig_ts + 1);
        self.sig_ts = ts;
        ts
    }

    /// Whether `from` is still in the previous epoch (what it sealed opened only under
    /// the previous key), so that what goes to it is sealed under that key.
    pub(super) fn mark_behind(&mut self, from: &str, behind: bool) {
        if behind {
            if self.peers.contains_key(from) || self.behind.len() < MAX_FRESH {
                self.behind.insert(from.to_owned());
            }
        } else {
            self.behind.remove(from);
        }
    }

    /// `s` as it goes to the switchboard (sealed and signed in a secured room).
    pub(super) fn secure_out(&mut self, now: Instant, s: Signal) -> Signal {
        if self.config.security.is_none() {
            return s;
        }
        let signed = matches!(s.command.as_str(), "announce" | "leave" | "mesh:sdp");
        let ts = if signed { self.next_sig_ts(now) } else { 0 };
        let me = self.config.id.as_str();
        let inc = self.config.incarnation.as_str();
        let target = s.to.as_deref().unwrap_or_default();
        // A peer that came in under the previous epoch's key (the grace period) is
        // answered under it.
        let behind = !target.is_empty() && self.behind.contains(target);
        let sec = self.config.security.as_mut().expect("secured");
        let door = sec.door().to_owned();
        let key = sec.sealing(behind).clone();
        let args = match s.command.as_str() {
            "announce" => {
                let mut inner = Object::new();
                let mut user = Object::new();
                for (k, v) in s.object().into_iter().flat_map(Object::iter) {
                    match k {
                        "incarnation" | "codecs" | "agent" => inner.insert(k, v.clone()),
                        k if reserved_attribute(k) => {}
                        _ => user.insert(k, v.clone()),
                    }
                }
                inner.insert("attrs", Value::Object(user));
                let plain = Value::Object(inner).to_json();
                let sealed = key.seal(&mut sec.entropy, "announce", me, target, plain.as_bytes());
                let tag = door.as_str();
                let sig = sec
                    .identity
                    .sign_text(&signing::announce(tag, me, ts, &sealed));
                let mut o = Object::new();
                o.insert("id", Value::from(me));
                o.insert("room", Value::from(tag));
                o.insert("sec", Value::from(1.0));
                o.insert("ts", Value::from(ts as f64));
                o.insert("sig", Value::from(sig));
                o.insert("v", Value::from(1.0));
                o.insert("sealed", Value::from(sealed));
                o.into()
            }
            "leave" => {
                let sig = sec.identity.sign_text(&signing::leave(&door, me, inc, ts));
                let mut o = Object::new();
                o.insert("id", Value::from(me));
                o.insert("incarnation", Value::from(inc));
                o.insert("ts", Value::from(ts as f64));
                o.insert("sig", Value::from(sig));
                o.into()
            }
            "mesh:sdp" => {
                let mut inner = s.object().cloned().unwrap_or_default();
                let text = |k: &str| match inner.get(k) {
                    Some(Value::String(t)) => t.clone(),
                    _ => String::new(),
                };
                let (kind, sdp) = (text("type"), text("sdp"));
                let input = signing::sdp(key.room_id(), me, target, inc, ts, &kind, &sdp);
                inner.insert("incarnation", Value::from(inc));
                inner.insert("ts", Value::from(ts as f64));
                inner.insert("sig", Value::from(sec.identity.sign_text(&input)));
                let plain = Value::Object(inner).to_json();
                let packed = miniz_oxide::deflate::compress_to_vec(plain.as_bytes(), 1);
                wrapped(key.seal(&mut sec.entropy, "mesh:sdp", me, target, &packed))
            }
            "mesh:candidate" | "mesh:candidates" => {
                let parts: Vec<Value> = s
                    .args
                    .iter()
                    .map(|p| match p {
                        Part::Json(v) => v.clone(),
                        Part::Text(t) => Value::from(t.as_str()),
                    })
                    .collect();
                let plain = Value::Array(parts).to_json();
                wrapped(key.seal(&mut sec.entropy, &s.command, me, target, plain.as_bytes()))
            }
            _ => return s,
        };
        Signal {
            args: vec![args],
            ..s
        }
    }

    /// Whether `sig` is `from`'s signature of `input` (counted in `bad_signatures` if
    /// not, or if `from` is no key).
    fn signed_by(&mut self, from: &str, input: &[u8], sig: &str) -> bool {
        self.signed_by_any(from, &[input], sig)
    }

    /// [`Mesh::signed_by`] for any one of `inputs` (counted once if none).
    fn signed_by_any(&mut self, from: &str, inputs: &[impl AsRef<[u8]>], sig: &str) -> bool {
        let ok = PeerKey::from_peer_id(from).is_ok_and(|k| {
            inputs
                .iter()
                .any(|i| k.verify_text(i.as_ref(), sig).is_ok())
        });
        if !ok {
            self.stats.bad_signatures += 1;
        }
        ok
    }

    /// Whether `incarnation` is the one `from` announced (counted in `stale_signals`
    /// if not).
    fn is_current(&mut self, from: &str, incarnation: &str) -> bool {
        let ok = self.peers.get(from).and_then(|p| p.incarnation.as_deref()) == Some(incarnation);
        if !ok {
            self.stats.stale_signals += 1;
        }
        ok
    }

    /// An announce or leave from the switchboard, opened and checked (`None`: refused,
    /// and counted). Anything else passes as it is.
    pub(super) fn secure_in(&mut self, now: Instant, from: &str, msg: Signal) -> Option<Signal> {
        if self.config.security.is_none() {
            return Some(msg);
        }
        if msg.command != "leave" && self.replica.store().is_removed(from) {
            // Removed by an admin: no new links (its leave still drops an old one).
            self.stats.removed_signals += 1;
            return None;
        }
        match msg.command.as_str() {
            "announce" => self.open_announce(now, from, msg),
            "leave" => Some(self.check_leave(now, from, msg)),
            _ => Some(msg),
        }
    }

    fn open_announce(&mut self, now: Instant, from: &str, msg: Signal) -> Option<Signal> {
        let o = msg.object()?;
        let sec = self.config.security.as_ref()?;
        let (Some(Value::String(sealed)), Some(Value::String(sig)), Some(Value::Number(ts))) =
            (o.get("sealed"), o.get("sig"), o.get("ts"))
        else {
            self.stats.unsecured_signals += 1;
            return None;
        };
        // Our door, or the current tag (a member whose grace period ended first).
        let room = match o.get("room") {
            Some(Value::String(r)) if **r == *sec.door() || **r == *sec.key.tag() => r.clone(),
            _ => {
                self.stats.unsecured_signals += 1;
                return None;
            }
        };
        if o.get("v") != Some(&Value::from(1.0)) {
            self.stats.unsecured_signals += 1;
            return None;
        }
        let ts = *ts as u64;
        let target = msg.to.clone().unwrap_or_default();
        let Some((plain, behind)) = sec.open_any(sealed, "announce", from, &target) else {
            self.stats.unseal_failures += 1;
            if msg.to.is_none() {
                self.answer_unopened(now);
            }
            return None;
        };
        let input = signing::announce(&room, from, ts, sealed);
        if !self.signed_by(from, &input, sig) {
            return None;
        }
        let Ok(Value::Object(inner)) = Value::from_json_with(&plain, &self.config.limits) else {
            self.stats.unseal_failures += 1;
            return None;
        };
        if !self.fresh(now, from, Signed::Announce, ts) {
            return None;
        }
        self.mark_behind(from, behind);
        let mut attrs = Object::new();
        attrs.insert("id", Value::from(from));
        attrs.insert("room", Value::from(self.config.room.as_str()));
        for k in ["agent", "incarnation", "codecs"] {
            if let Some(v) = inner.get(k) {
                attrs.insert(k, v.clone());
            }
        }
        if let Some(Value::Object(user)) = inner.get("attrs") {
            for (k, v) in user.iter() {
                if !reserved_attribute(k) {
                    attrs.insert(k, v.clone());
                }
            }
        }
        Some(Signal {
            args: vec![attrs.into()],
            ..msg
        })
    }

    /// A member's announce to the room that does not open: it may be of a later epoch
    /// than ours (we came back without the line, or were away, and it joined after our
    /// announce), so it cannot see us either until we announce again. We do, at most
    /// once per [`REANNOUNCE_GAP`]: it opens ours in its grace period and answers under
    /// our key, and the link that follows hands us the line. (A stranger's junk on our
    /// tag costs at most one announce per gap.)
    fn answer_unopened(&mut self, now: Instant) {
        if self
            .reannounced_at
            .is_some_and(|t| now.saturating_duration_since(t) < REANNOUNCE_GAP)
        {
            return;
        }
        self.reannounced_at = Some(now);
        self.start(now);
    }

    /// A leave: the member's own, signed and fresh, passes as such (its links drop at
    /// once); any other becomes the switchboard's `disconnected`.
    fn check_leave(&mut self, now: Instant, from: &str, msg: Signal) -> Signal {
        let unsigned = Signal::leave(from, Some("unsigned"));
        let Some(o) = msg.object() else {
            return unsigned;
        };
        if o.get("reason").is_some() {
            return msg;
        }
        let (Some(Value::String(inc)), Some(Value::String(sig)), Some(Value::Number(ts))) =
            (o.get("incarnation"), o.get("sig"), o.get("ts"))
        else {
            self.stats.unsecured_signals += 1;
            return unsigned;
        };
        let ts = *ts as u64;
        let Some(sec) = self.config.security.as_ref() else {
            return msg;
        };
        // Signed on our door, or on the current tag (a member whose grace period ended
        // first).
        let mut inputs = vec![signing::leave(sec.door(), from, inc, ts)];
        if sec.door() != sec.key.tag() {
            inputs.push(signing::leave(sec.key.tag(), from, inc, ts));
        }
        if !self.signed_by_any(from, &inputs, sig)
            || !self.is_current(from, inc)
            || !self.fresh(now, from, Signed::Leave, ts)
        {
            return unsigned;
        }
        Signal::leave(from, None)
    }

    /// An SDP or candidates message from a peer whose announce we have, opened and
    /// checked (`None`: refused, and counted).
    pub(super) fn open_negotiation(
        &mut self,
        now: Instant,
        from: &str,
        msg: &Signal,
    ) -> Option<Signal> {
        let sec = self.config.security.as_ref()?;
        let me = self.config.id.clone();
        let Some(Value::String(sealed)) = msg.object().and_then(|o| o.get("sealed")) else {
            self.stats.unsecured_signals += 1;
            return None;
        };
        let Some((mut plain, behind)) = sec.open_any(sealed, &msg.command, from, &me) else {
            self.stats.unseal_failures += 1;
            return None;
        };
        self.mark_behind(from, behind);
        if msg.command == "mesh:sdp" {
            match miniz_oxide::inflate::decompress_to_vec_with_limit(&plain, MAX_SDP_PLAIN) {
                Ok(p) => plain = p,
                Err(_) => {
                    self.stats.unseal_failures += 1;
                    return None;
                }
            }
        }
        let Ok(v) = Value::from_json_with(&plain, &self.config.limits) else {
            self.stats.unseal_failures += 1;
            return None;
        };
        match (msg.command.as_str(), v) {
            ("mesh:sdp", Value::Object(inner)) => {
                let (
                    Some(Value::String(kind)),
                    Some(Value::String(sdp)),
                    Some(Value::String(inc)),
                    Some(Value::String(sig)),
                    Some(Value::Number(ts)),
                ) = (
                    inner.get("type"),
                    inner.get("sdp"),
                    inner.get("incarnation"),
                    inner.get("sig"),
                    inner.get("ts"),
                )
                else {
                    self.stats.unsecured_signals += 1;
                    return None;
                };
                let ts = *ts as u64;
                let room_id = self.config.security.as_ref()?.key.room_id();
                let input = signing::sdp(room_id, from, &me, inc, ts, kind, sdp);
                if !self.signed_by(from, &input, sig)
                    || !self.is_current(from, inc)
                    || !self.fresh(now, from, Signed::Sdp, ts)
                {
                    return None;
                }
                let mut o = Object::new();
                for k in ["type", "sdp", "restart"] {
                    if let Some(v) = inner.get(k) {
                        o.insert(k, v.clone());
                    }
                }
                Some(with_args(msg, vec![o.into()]))
            }
            ("mesh:candidate" | "mesh:candidates", Value::Array(parts)) => {
                Some(with_args(msg, parts.into_iter().map(Part::Json).collect()))
            }
            _ => {
                self.stats.unsecured_signals += 1;
                None
            }
        }
    }

    /// The freshness rule: within `max_signal_age` of our clock, and after the last
    /// accepted one of its kind from `from` (then recorded). Counts what fails it.
    fn fresh(&mut self, now: Instant, from: &str, kind: Signed, ts: u64) -> bool {
        let wall = self.wall_ms(now);
        let age = self
            .config
            .security
            .as_ref()
            .map_or(0, |s| s.max_signal_age.as_millis() as u64);
        let key = (from.to_owned(), kind);
        let newer = self.fresh_ts.get(&key).is_none_or(|last| ts > *last);
        if wall.abs_diff(ts) > age || !newer {
            self.stats.stale_signals += 1;
            return false;
        }
        if self.fresh_ts.len() >= MAX_FRESH && !self.fresh_ts.contains_key(&key) {
            if let Some(oldest) = self
                .fresh_ts
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(k, _)| k.clone())
            {
                self.fresh_ts.remove(&oldest);
            }
        }
        self.fresh_ts.insert(key, ts);
        true
    }
}

/// `msg`'s routing (target, command, sender) with other arguments.
fn with_args(msg: &Signal, args: Vec<Part>) -> Signal {
    Signal {
        to: msg.to.clone(),
        command: msg.command.clone(),
        sender: msg.sender.clone(),
        args,
    }
}

fn wrapped(sealed: String) -> Part {
    let mut o = Object::new();
    o.insert("v", Value::from(1.0));
    o.insert("sealed", Value::from(sealed));
    o.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::RoomSecret;

    const EPOCH: f64 = 1_795_713_876_272.0;

    fn member(seed: u8, secret: &str, now: Instant) -> Mesh {
        let identity = Identity::from_seed(&[seed; 32]);
        let key = RoomKey::derive("team", &RoomSecret::parse(secret).unwrap());
        let mut c = MeshConfig::new(
            identity.peer_id(),
            "team",
            format!("{seed:016x}"),
            EPOCH,
            now,
        );
        c.security = Some(Security::new(key, identity, Entropy::from_seed([seed; 32])));
        let mut m = Mesh::new(c).unwrap();
        m.handle_signal_connected(now);
        m.start(now);
        m
    }

    /// The signalling texts `m` sends.
    fn sent(m: &mut Mesh) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match m.poll_output() {
                MeshOutput::Signal(t) => out.push(t),
                MeshOutput::Timeout(_) => return out,
                _ => {}
            }
        }
    }

    const SECRET: &str = "rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    #[test]
    fn only_sealed_signed_fresh_announces_of_the_room_are_taken() {
        let now = Instant::now();
        let mut a = member(1, SECRET, now);
        let mut b = member(2, SECRET, now);
        let mut other = member(3, "another secret", now);
        let _ = sent(&mut a);
        let b_announce = sent(&mut b).remove(0);
        assert!(
            b_announce.contains("\"sealed\"") && !b_announce.contains("incarnation"),
            "{b_announce}"
        );
        // Unsealed, on the room's tag: ignored.
        let tag = a.config.security.as_ref().unwrap().key.tag().to_owned();
        let bid = b.config.id.clone();
        a.handle_signal(
            now,
            &format!("/announce|{bid}|{{\"id\":\"{bid}\",\"room\":\"{tag}\"}}"),
        );
        // Sealed under another secret (and a tag swapped in): does not open.
        let o = sent(&mut other).remove(0);
        let oid = other.config.id.clone();
        let other_tag = other.config.security.as_ref().unwrap().key.tag().to_owned();
        a.handle_signal(now, &o.replace(&other_tag, &tag));
        // B's announce with its sender rewritten: does not open for that sender.
        a.handle_signal(
            now,
            &b_announce.replace(&format!("|{bid}|"), &format!("|{oid}|")),
        );
        assert_eq!(a.peers().count(), 0);
        let s = a.stats().clone();
        assert_eq!((s.unsecured_signals, s.unseal_failures), (1, 2), "{s:?}");
        // The real one: B joins, with its attributes opened.
        a.handle_signal(now, &b_announce);
        assert_eq!(a.peers().count(), 1);
        let (_, attrs) = a.peers().next().unwrap();
        assert_eq!(
            attrs.get("incarnation"),
            Some(&Value::from("0000000000000002"))
        );
        // Replayed: stale, ignored.
        a.handle_signal(now, &b_announce);
        assert_eq!(a.stats().stale_signals, 1);
        // A forged leave (no signature) is the switchboard's disconnected; B's own
        // signed leave counts.
        let texts = sent(&mut a);
        assert!(
            texts.iter().all(|t| !t.contains("0000000000000001")),
            "nothing in the clear: {texts:?}"
        );
        b.close(now);
        let b_leave = sent(&mut b)
            .into_iter()
            .find(|t| t.starts_with("/leave|"))
            .unwrap();
        assert!(b_leave.contains("\"sig\""));
        let forged = format!("/leave|{bid}|{{\"id\":\"{bid}\",\"incarnation\":\"0000000000000002\",\"ts\":1,\"sig\":\"x\"}}");
        a.handle_signal(now, &forged);
        assert_eq!(
            a.stats().bad_signatures,
            1,
            "taken as the switchboard's disconnected"
        );
        a.handle_signal(now, &b_leave);
        assert_eq!(a.peers().count(), 0);
    }

    /// A member in the grace period announces under the new key, which a member still
    /// in the previous epoch (back without the line, and there before it) cannot open:
    /// that one announces again (at most once per `REANNOUNCE_GAP`), the other opens it
    /// under the previous key and answers under it, and the two meet.
    #[test]
    fn an_announce_that_does_not_open_is_answered_with_ours_again() {
        let now = Instant::now();
        let admin = Identity::from_seed(&[9; 32]);
        let secret = RoomSecret::parse(SECRET).unwrap();
        let key = RoomKey::derive("team", &secret);
        let mut entropy = Entropy::from_seed([7; 32]);
        let until = EPOCH as u64 + 3_600_000;
        let line = Rekey::rotate(&key, ["gone".to_owned()], until, &admin, &mut entropy)
            .unwrap()
            .to_line();
        // a: in epoch 1's grace period; b: in epoch 0.
        let identity = Identity::from_seed(&[1; 32]);
        let mut c = MeshConfig::new(identity.peer_id(), "team", "01", EPOCH, now);
        c.security = Some(
            Security::new(key, identity, Entropy::from_seed([1; 32]))
                .resume(&line)
                .unwrap(),
        );
        let mut a = Mesh::new(c).unwrap();
        a.handle_signal_connected(now);
        a.start(now);
        assert_eq!(a.epoch(), 1);
        let mut b = member(2, SECRET, now);
        let _ = sent(&mut b);
        let a_announce = sent(&mut a).remove(0);
        b.handle_signal(now, &a_announce);
        assert_eq!((b.peers().count(), b.stats().unseal_failures), (0, 1));
        let again = sent(&mut b);
        assert_eq!(again.len(), 1, "announced again: {again:?}");
        assert!(again[0].starts_with("/announce|"));
        // Not again within the gap, for however many.
        b.handle_signal(now + Duration::from_secs(1), &a_announce);
        assert!(sent(&mut b).is_empty());
        // a takes it under the previous key and answers b under it: b meets a.
        a.handle_signal(now, &again[0]);
        assert_eq!(a.peers().count(), 1);
        let reply: Vec<String> = sent(&mut a)
            .into_iter()
            .filter(|t| t.starts_with("/to|"))
            .collect();
        assert!(!reply.is_empty());
        for t in &reply {
            b.handle_signal(now, t);
        }
        assert_eq!(b.peers().count(), 1, "{:?}", b.stats());
        // After the gap, an announce that does not open is answered again.
        b.handle_signal(now + REANNOUNCE_GAP, &a_announce);
        assert_eq!(sent(&mut b).len(), 1);
    }

    #[test]
    fn sdp_opens_only_for_its_target_and_with_its_signature() {
        let now = Instant::now();
        let mut a = member(1, SECRET, now);
        let mut b = member(2, SECRET, now);
        let ba = sent(&mut b).remove(0);
        let aa = sent(&mut a).remove(0);
        a.handle_signal(now, &ba);
        b.handle_signal(now, &aa);
        let (aid, bid) = (a.config.id.clone(), b.config.id.clone());
        let off_announce = if aid > bid { aa.clone() } else { ba.clone() };
        // The higher id offers.
        let (off, ans) = if aid > bid {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let oid = off.config.id.clone();
        let aid2 = ans.config.id.clone();
        let _ = sent(off);
        off.local_sdp(
            now,
            &aid2,
            SdpKind::Offer,
            "v=0\r\na=fingerprint:sha-256 AA\r\n",
        );
        let offer = sent(off)
            .into_iter()
            .find(|t| t.contains("mesh:sdp"))
            .unwrap();
        assert!(!offer.contains("fingerprint"), "sealed: {offer}");
        let _ = sent(ans);
        // Re-targeted by the switchboard to another member: it does not open there.
        let mut c = member(4, SECRET, now);
        c.handle_signal(now, &off_announce);
        let cid = c.config.id.clone();
        c.handle_signal(
            now,
            &offer.replacen(&format!("/to|{aid2}|"), &format!("/to|{cid}|"), 1),
        );
        assert_eq!(c.stats().unseal_failures, 1);
        ans.handle_signal(now, &offer);
        let link_opened = |m: &mut Mesh| {
            let mut n = 0;
            loop {
                match m.poll_output() {
                    MeshOutput::Link(LinkCommand::RemoteSdp { sdp, .. }) => {
                        assert!(sdp.contains("fingerprint:sha-256 AA"));
                        n += 1;
                    }
                    MeshOutput::Timeout(_) => return n,
                    _ => {}
                }
            }
        };
        assert_eq!(link_opened(ans), 1, "the genuine offer opens");
        // Replayed: stale.
        ans.handle_signal(now, &offer);
        assert_eq!(link_opened(ans), 0);
        assert_eq!(ans.stats().stale_signals, 1);
        // A relay that knows the room key re-seals the SDP with its own fingerprint:
        // the signature inside no longer matches.
        let sec = ans.config.security.clone().unwrap();
        let plain = Value::Object({
            let mut o = Object::new();
            o.insert("type", Value::from("offer"));
            o.insert("sdp", Value::from("v=0\r\na=fingerprint:sha-256 EVIL\r\n"));
            o.insert("incarnation", Value::from(off.config.incarnation.as_str()));
            o.insert("ts", Value::from((EPOCH + 10_000.0).floor()));
            o.insert("sig", Value::from("A".repeat(86)));
            o
        })
        .to_json();
        let mut e = Entropy::from_seed([9; 32]);
        let packed = miniz_oxide::deflate::compress_to_vec(plain.as_bytes(), 1);
        let sealed = sec.key.seal(&mut e, "mesh:sdp", &oid, &aid2, &packed);
        ans.handle_signal(
            now,
            &format!("/to|{aid2}|/mesh:sdp|{oid}|{{\"v\":1,\"sealed\":\"{sealed}\"}}"),
        );
        assert_eq!(link_opened(ans), 0);
        assert_eq!(ans.stats().bad_signatures, 1);
    }
}
