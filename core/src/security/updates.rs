//! Signed updates: in a secured room every write carries its writer's Ed25519
//! signature, and a store checks it (and the room's write rules) before the update
//! touches anything.
//!
//! The signing input is defined on the logical update, so that every codec and every
//! language rebuilds it from what it decoded:
//!
//! ```text
//! "rtc-mesh/v1/update" 0x00 ‖ room id (16 bytes) ‖ UTF-8(JSON.stringify([[key, value], ts, source]))
//! ```
//!
//! The JSON text is what scuttlebutt 5.6 signs in its own `sign` hook (the 3-element
//! update array), written as [`crate::value`] writes JSON (JavaScript's number text and
//! key order), so a scuttlebutt plugin can take part. JSON has no −0, and neither has
//! our binary encoding (a number with no fraction is an integer there; −0 read from
//! JSON is 0): a relay that flips 0 and −0 changes nothing a replica keeps.
//!
//! A writer is the member whose key is the first 43 characters of the source id
//! (`<peer id>.<incarnation>` in a mesh; the peer id is the key in a secured room).
//! On receipt, in order ([`UpdateGuard::check`]): the source names a usable key
//! ([`UpdateRefusal::BadSource`]), a signature is present ([`UpdateRefusal::Unsigned`]),
//! it verifies under the one validity rule of [`crate::security::PeerKey::verify`]
//! ([`UpdateRefusal::BadSignature`]), the write rules allow it
//! ([`UpdateRefusal::NotOwner`]). The store then holds back an update stamped more than
//! [`MAX_FUTURE`] ahead of its clock, and only then applies last-writer-wins.
//!
//! Write rules (policy v1): a key `users/<id>` or `users/<id>/...` may be written or
//! deleted only by the writer whose peer id is `<id>`; keys under `room/` are the
//! room's admins' (none can be named yet, so `room/` is read-only); every other key is
//! any member's.

use std::collections::HashMap;
use std::time::Duration;

use smol_str::SmolStr;

use super::identity::{Identity, PeerKey, PEER_ID_LEN};
use crate::store::UpdateRef;
use crate::value::{write_number, write_string};

/// Length of an update's signature.
pub const SIG_LEN: usize = 64;

/// An update's Ed25519 signature.
pub type UpdateSig = [u8; SIG_LEN];

/// How far ahead of a secured store's wall clock an update may be stamped and still be
/// applied; a later one is held back until it is within range (so nobody owns a key
/// for longer than this by stamping it in the future).
pub const MAX_FUTURE: Duration = Duration::from_secs(60);

/// The most writers' keys a guard keeps decoded.
const MAX_KEYS: usize = 4096;

/// The prefix of keys owned by one member.
pub const USERS_PREFIX: &str = "users/";

/// The prefix of the room admins' keys (read-only while a room names no admins).
pub const ROOM_PREFIX: &str = "room/";

/// The keys of removals: `room/revoked/<peer id>` = `{"after": ts}`, written by an
/// admin, refuses that member's updates stamped after `ts` (see [`revocation`]).
pub const REVOKED_PREFIX: &str = "room/revoked/";

/// The member a key of [`REVOKED_PREFIX`] removes and the time its value names, if the
/// key and value have that form (`{"after": <number>}`; anything else removes no one).
/// The room's admins cannot be removed.
pub fn revocation<'a>(
    key: &'a str,
    value: &crate::value::EncodedValue,
    admins: &[String],
) -> Option<(&'a str, f64)> {
    let id = key.strip_prefix(REVOKED_PREFIX)?;
    if id.len() != PEER_ID_LEN || writer_of(id) != Some(id) || admins.iter().any(|a| a == id) {
        return None;
    }
    match value.to_value().ok()? {
        crate::value::Value::Object(o) => match o.get("after") {
            Some(crate::value::Value::Number(t)) if t.is_finite() => Some((id, *t)),
            _ => None,
        },
        _ => None,
    }
}

/// Why a secured store refuses an update from a peer (nothing changes; the link that
/// sent it gets a strike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpdateRefusal {
    /// The source does not start with a usable key (43 base64url characters of a
    /// canonical point not of small order, then the end or `.`).
    #[error("the source is not a member's key")]
    BadSource,
    /// No signature.
    #[error("the update is not signed")]
    Unsigned,
    /// The signature does not check for this writer, room and update.
    #[error("the update's signature does not check")]
    BadSignature,
    /// The writer may not write this key (another member's `users/` space).
    #[error("the writer may not write this key")]
    NotOwner,
    /// The writer was removed from the room (`room/revoked/<id>`) before this update's
    /// time. Not a strike: an honest relay may pass on what it took before it learnt of
    /// the removal.
    #[error("the writer was removed from the room")]
    Revoked,
}

impl UpdateRefusal {
    /// A short code: `bad_source`, `unsigned`, `bad_sig`, `not_owner`, `revoked`.
    pub fn code(self) -> &'static str {
        match self {
            UpdateRefusal::BadSource => "bad_source",
            UpdateRefusal::Unsigned => "unsigned",
            UpdateRefusal::BadSignature => "bad_sig",
            UpdateRefusal::NotOwner => "not_owner",
            UpdateRefusal::Revoked => "revoked",
        }
    }
}

/// The writer's peer id in `source`: its first 43 characters, when they are base64url
/// and followed by nothing or by `.`.
pub fn writer_of(source: &str) -> Option<&str> {
    let id = source.get(..PEER_ID_LEN)?;
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    match source.as_bytes().get(PEER_ID_LEN) {
        None | Some(b'.') => Some(id),
        _ => None,
    }
}

/// Whether the member `writer` (a peer id) may write or delete `key` (policy v1): the
/// room's `admins` anything, the others neither `room/` nor another's `users/` space.
pub fn may_write(key: &str, writer: &str, admins: &[String]) -> bool {
    if admins.iter().any(|a| a == writer) {
        return true;
    }
    if key.starts_with(ROOM_PREFIX) {
        return false;
    }
    match key.strip_prefix(USERS_PREFIX) {
        None => true,
        Some(rest) => rest.split('/').next() == Some(writer),
    }
}

/// `JSON.stringify([[key, value], ts, source])` of `u`, appended to `out`: the text the
/// json codec sends and the signed part of the signing input.
pub fn write_update_json(u: UpdateRef<'_>, out: &mut String) {
    out.push_str("[[");
    write_string(u.key, out, false);
    out.push(',');
    u.value.write_json(out, false);
    out.push_str("],");
    write_number(u.ts, out);
    out.push(',');
    write_string(u.source, out, false);
    out.push(']');
}

/// The signing input of `u` in the room `room_id` (see the module docs).
pub fn signing_input(room_id: &[u8; 16], u: UpdateRef<'_>) -> Vec<u8> {
    let mut text = String::with_capacity(u.key.len() + u.value.len() + u.source.len() + 40);
    write_update_json(u, &mut text);
    let mut m = Vec::with_capacity(19 + 16 + text.len());
    m.extend_from_slice(b"rtc-mesh/v1/update\0");
    m.extend_from_slice(room_id);
    m.extend_from_slice(text.as_bytes());
    m
}

/// A secured store's part: the room, our identity (which signs our writes) and the
/// keys of the writers seen.
#[derive(Clone, Debug)]
pub struct UpdateGuard {
    room_id: [u8; 16],
    identity: Identity,
    keys: HashMap<SmolStr, PeerKey>,
    admins: Vec<String>,
}

impl UpdateGuard {
    /// A guard for the room `room_id` ([`crate::security::RoomKey::room_id`]), signing
    /// as `identity`.
    pub fn new(room_id: [u8; 16], identity: Identity) -> UpdateGuard {
        UpdateGuard {
            room_id,
            identity,
            keys: HashMap::new(),
            admins: Vec::new(),
        }
    }

    /// The guard of a secured room: its id and the admins its invite names.
    pub fn for_room(key: &crate::security::RoomKey, identity: Identity) -> UpdateGuard {
        UpdateGuard::new(*key.room_id(), identity).with_admins(key.admins().to_vec())
    }

    /// With these admins (peer ids), who may write anywhere (see [`may_write`]).
    pub fn with_admins(mut self, admins: Vec<String>) -> UpdateGuard {
        self.admins = admins;
        self
    }

    /// The room's admins.
    pub fn admins(&self) -> &[String] {
        &self.admins
    }

    /// May we write `key`?
    pub fn may_write(&self, key: &str) -> bool {
        may_write(key, self.writer(), &self.admins)
    }

    /// The room id signed into every update.
    pub fn room_id(&self) -> &[u8; 16] {
        &self.room_id
    }

    /// Our peer id (the writer of our updates).
    pub fn writer(&self) -> &str {
        self.identity.peer_id()
    }

    /// Our signature of `u`.
    pub fn sign(&self, u: UpdateRef<'_>) -> UpdateSig {
        self.identity.sign(&signing_input(&self.room_id, u))
    }

    /// Checks an update from a peer, in the order of the module docs.
    pub fn check(&mut self, u: UpdateRef<'_>) -> Result<(), UpdateRefusal> {
        let writer = writer_of(u.source).ok_or(UpdateRefusal::BadSource)?;
        let sig = u.sig.ok_or(UpdateRefusal::Unsigned)?;
        let key = match self.keys.get(writer) {
            Some(k) => k,
            None => {
                let k = PeerKey::from_peer_id(writer).map_err(|_| UpdateRefusal::BadSource)?;
                if self.keys.len() >= MAX_KEYS {
                    self.keys.clear();
                }
                self.keys.entry(writer.into()).or_insert(k)
            }
        };
        key.verify(&signing_input(&self.room_id, u), sig)
            .map_err(|_| UpdateRefusal::BadSignature)?;
        if !may_write(u.key, writer, &self.admins) {
            return Err(UpdateRefusal::NotOwner);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::EncodedValue;

    #[test]
    fn writers_and_their_keys() {
        let id = "A".repeat(43);
        assert_eq!(writer_of(&id), Some(id.as_str()));
        assert_eq!(
            writer_of(&format!("{id}.0123456789abcdef")),
            Some(id.as_str())
        );
        assert_eq!(writer_of(&format!("{id}x")), None);
        assert_eq!(writer_of("short.0123"), None);
        let none: &[String] = &[];
        assert!(may_write("shared", &id, none));
        assert!(may_write(&format!("users/{id}"), &id, none));
        assert!(may_write(&format!("users/{id}/profile"), &id, none));
        assert!(!may_write(&format!("users/{id}x/profile"), &id, none));
        assert!(!may_write("users/", &id, none));
        assert!(!may_write("room/name", &id, none));
        assert!(may_write("rooms/x", &id, none));
        let other = format!("users/{}/p", "B".repeat(43));
        assert!(!may_write(&other, &id, none));
        // An admin writes anywhere; naming others admins changes nothing for it.
        let admins = [id.clone()];
        assert!(may_write("room/name", &id, &admins));
        assert!(may_write(&other, &id, &admins));
        assert!(!may_write("room/name", &"B".repeat(43), &admins));
    }

    #[test]
    fn a_signed_update_checks_and_any_change_does_not() {
        let me = Identity::from_seed(&[7; 32]);
        let source = format!("{}.0123456789abcdef", me.peer_id());
        let value = EncodedValue::from_value(&crate::Value::from(1.5));
        let u = UpdateRef {
            key: "k",
            value: &value,
            ts: 1.8e12,
            source: &source,
            sig: None,
        };
        let mut g = UpdateGuard::new([1; 16], me.clone());
        let sig = g.sign(u);
        assert_eq!(g.check(u), Err(UpdateRefusal::Unsigned));
        let signed = UpdateRef {
            sig: Some(&sig),
            ..u
        };
        assert_eq!(g.check(signed), Ok(()));
        let other = EncodedValue::from_value(&crate::Value::from(2.0));
        for bad in [
            UpdateRef { key: "j", ..signed },
            UpdateRef {
                value: &other,
                ..signed
            },
            UpdateRef {
                ts: 1.8e12 + 1.0,
                ..signed
            },
        ] {
            assert_eq!(g.check(bad), Err(UpdateRefusal::BadSignature));
        }
        // Another room.
        let mut elsewhere = UpdateGuard::new([2; 16], me);
        assert_eq!(elsewhere.check(signed), Err(UpdateRefusal::BadSignature));
        // A source that is no key.
        assert_eq!(
            g.check(UpdateRef {
                source: "alice.0123",
                ..signed
            }),
            Err(UpdateRefusal::BadSource)
        );
        // The input is the json codec's line, prefixed.
        let input = signing_input(&[1; 16], u);
        assert!(input.starts_with(b"rtc-mesh/v1/update\0\x01"));
        assert!(input.ends_with(format!("[[\"k\",1.5],1800000000000,\"{source}\"]").as_bytes()));
    }
}
