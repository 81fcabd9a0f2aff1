//! Key epochs: a removal moves a secured room to a key the removed member cannot
//! derive.
//!
//! When an admin removes a member (`room/revoked/<id>`), the room's key (its tag on
//! the switchboard, its sealing key) must change, or the removed member keeps
//! reading announces and sealing its way back in. A *rotation* makes epoch `e+1`
//! with 32 random bytes `K_{e+1}` ([`RoomKey::rotated`]) and hands them to every
//! remaining member in a signed `REKEY` line over the DTLS links, which only the two
//! ends of each link read:
//!
//! ```text
//! REKEY {"epoch":e,"key":"<K_e>","prev":"<K_(e-1)>","until":<ms>,"removed":["<pk43>",..],"by":"<pk43>","sig":"<86>"}
//! signed: "rtc-mesh/v1/rekey" 0x00 ‖ room_id (16) ‖ epoch (u32, big-endian) ‖ SHA-256(K_e) ‖
//!         SHA-256(K_(e-1)) ‖ until (u64, big-endian) ‖ (removed id 0x00)*
//! ```
//!
//! (keys: 43 base64url characters.) `removed` lists, sorted, every member removed
//! when the epoch was made (at most [`MAX_REMOVED`]); no member hands the key over a
//! link to any of them.
//!
//! **The grace period.** Until `until` (wall-clock milliseconds; the rotation's time
//! and 7 days by default), the room stays on the previous epoch's *tag* at the
//! switchboard, while everything is sealed with the new key: a member that was
//! offline during the rotation comes back with `K_(e-1)`, announces on the old tag,
//! and is answered under the old key (only if it is not removed) and handed the line
//! as soon as a link opens. A removed member can read nothing sealed in the new
//! epoch and is never answered; what it still sees until `until` is who is at the
//! switchboard, and when. After `until` the room moves to the new tag, and a member
//! that comes back with an old key needs a new invite.
//!
//! Who rotates, and which epoch wins ([`Rekey::check`], [`Rekey::beats`]):
//!
//! - An admin rotates as soon as its store holds a removal that its epoch does not
//!   list; any other member that is not removed does the same after a wait (10 s by
//!   default), so that the room moves even when no admin is online.
//! - A line is taken only if its signer is an admin or a member, is not removed, and
//!   every member it lists is removed in the taker's own store (a line that lists one
//!   whose removal has not arrived yet is held until it does). A line from a member
//!   that is not an admin must list at least one removal.
//! - Of two lines, the higher epoch wins; at the same epoch (two members rotated at
//!   once), the smaller key. Every member thus ends on the same epoch, and one that
//!   took the loser moves again.
//!
//! A member offline during a rotation comes back with the old key: it finds no one
//! on the old tag, and needs the current key from a member (see the DESIGN notes).

use zeroize::Zeroizing;

use super::{b64url, from_b64url, Entropy, Identity, PeerKey, RoomKey};
use crate::limits::Limits;
use crate::value::{Object, Value};

/// The most removed members one `REKEY` line lists (what fits in a link's frame).
pub const MAX_REMOVED: usize = 512;

/// How far ahead of ours an epoch may jump in one line (so a member cannot spend the
/// epochs: a line may skip ones its taker missed, not four billion).
pub const MAX_EPOCH_JUMP: u32 = 1024;

/// How far past the taker's clock a line's grace period may end (30 days).
pub const MAX_GRACE_MS: u64 = 30 * 86_400_000;

/// A signed `REKEY` line: the key of one epoch of a secured room.
#[derive(Clone, PartialEq, Eq)]
pub struct Rekey {
    epoch: u32,
    key: Zeroizing<[u8; 32]>,
    prev: Zeroizing<[u8; 32]>,
    until: u64,
    removed: Vec<String>,
    by: String,
    sig: [u8; 64],
}

/// Why a `REKEY` line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RekeyError {
    /// Not the JSON object above, or a field of the wrong form.
    #[error("bad REKEY line: {0}")]
    Malformed(String),
    /// The signature does not check for this room and this signer.
    #[error("the REKEY line's signature does not check for this room")]
    BadSignature,
    /// Its signer may not rotate the room's key: removed, or a member that is not an
    /// admin rotating when no one was removed.
    #[error("the REKEY line's signer may not rotate this room's key")]
    NotAllowed,
    /// It lists a member whose removal this store does not hold (yet).
    #[error("the REKEY line lists a removal this store does not hold")]
    UnknownRemoval,
    /// Its epoch is too far ahead of ours.
    #[error("the REKEY line's epoch {0} is too far ahead")]
    TooFarAhead(u32),
    /// Its grace period ends more than 30 days after our clock.
    #[error("the REKEY line's grace period ends too far ahead")]
    GraceTooLong,
}

impl Rekey {
    /// A rotation by `by`: epoch `current.epoch() + 1` with a fresh key from `entropy`,
    /// a grace period ending at `until` (wall-clock ms), listing `removed` (sorted and
    /// cut to [`MAX_REMOVED`] here). `None` once the epochs are spent (`u32::MAX`).
    pub fn rotate(
        current: &RoomKey,
        removed: impl IntoIterator<Item = String>,
        until: u64,
        by: &Identity,
        entropy: &mut Entropy,
    ) -> Option<Rekey> {
        let epoch = current.epoch().checked_add(1)?;
        let key = Zeroizing::new(entropy.bytes::<32>());
        let prev = Zeroizing::new(*current.epoch_key());
        let mut removed: Vec<String> = removed.into_iter().collect();
        removed.sort();
        removed.dedup();
        removed.truncate(MAX_REMOVED);
        let input = super::signing::rekey(current.room_id(), epoch, &key, &prev, until, &removed);
        let sig = by.sign(&input);
        Some(Rekey {
            epoch,
            key,
            prev,
            until,
            removed,
            by: by.peer_id().to_owned(),
            sig,
        })
    }

    /// Reads the JSON after `REKEY ` within `limits`. Only the form is checked here:
    /// [`Rekey::check`] decides whether it may be taken.
    pub fn parse(json: &str, limits: &Limits) -> Result<Rekey, RekeyError> {
        let bad = |why: &str| RekeyError::Malformed(why.to_owned());
        let o = match Value::from_json_with(json.as_bytes(), limits) {
            Ok(Value::Object(o)) => o,
            Ok(_) => return Err(bad("not an object")),
            Err(e) => return Err(RekeyError::Malformed(e.to_string())),
        };
        let epoch = match o.get("epoch") {
            Some(Value::Number(n)) if n.fract() == 0.0 && *n >= 1.0 && *n <= u32::MAX as f64 => {
                *n as u32
            }
            _ => return Err(bad("epoch is not a whole number from 1 to 2^32-1")),
        };
        let text = |k: &str| match o.get(k) {
            Some(Value::String(s)) => Ok(s.to_string()),
            _ => Err(RekeyError::Malformed(format!("{k} is not a string"))),
        };
        let key32 = |k: &str| -> Result<[u8; 32], RekeyError> {
            from_b64url(&text(k)?)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| RekeyError::Malformed(format!("{k} is not 43 base64url characters")))
        };
        let (key, prev) = (key32("key")?, key32("prev")?);
        let until = match o.get("until") {
            Some(Value::Number(n)) if n.fract() == 0.0 && *n >= 0.0 && *n <= 9.007e15 => *n as u64,
            _ => return Err(bad("until is not a whole number of milliseconds")),
        };
        let sig: [u8; 64] = from_b64url(&text("sig")?)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("sig is not 86 base64url characters"))?;
        let by = text("by")?;
        PeerKey::from_peer_id(&by).map_err(|_| bad("by is not a member's key"))?;
        let Some(Value::Array(items)) = o.get("removed") else {
            return Err(bad("removed is not an array"));
        };
        if items.len() > MAX_REMOVED {
            return Err(bad("removed lists more than 512 members"));
        }
        let mut removed = Vec::with_capacity(items.len());
        for v in items {
            match v {
                Value::String(s) if removed.last().is_none_or(|l: &String| l.as_str() < &**s) => {
                    removed.push(s.to_string())
                }
                _ => return Err(bad("removed is not a sorted list of distinct ids")),
            }
        }
        Ok(Rekey {
            epoch,
            key: Zeroizing::new(key),
            prev: Zeroizing::new(prev),
            until,
            removed,
            by,
            sig,
        })
    }

    /// The line's JSON (after `REKEY `).
    pub fn to_json(&self) -> String {
        let mut o = Object::new();
        o.insert("epoch", Value::Number(self.epoch as f64));
        o.insert("key", Value::from(b64url(&self.key[..]).as_str()));
        o.insert("prev", Value::from(b64url(&self.prev[..]).as_str()));
        o.insert("until", Value::Number(self.until as f64));
        o.insert(
            "removed",
            Value::Array(
                self.removed
                    .iter()
                    .map(|r| Value::from(r.as_str()))
                    .collect(),
            ),
        );
        o.insert("by", Value::from(self.by.as_str()));
        o.insert("sig", Value::from(b64url(&self.sig).as_str()));
        Value::Object(o).to_json()
    }

    /// The whole control line, `REKEY {..}`.
    pub fn to_line(&self) -> String {
        format!("REKEY {}", self.to_json())
    }

    /// Whether the signature checks for `room` (any epoch of it: the room id is the
    /// same in all).
    pub fn verify(&self, room: &RoomKey) -> Result<(), RekeyError> {
        let input = super::signing::rekey(
            room.room_id(),
            self.epoch,
            &self.key,
            &self.prev,
            self.until,
            &self.removed,
        );
        PeerKey::from_peer_id(&self.by)
            .ok()
            .and_then(|k| k.verify(&input, &self.sig).ok())
            .ok_or(RekeyError::BadSignature)
    }

    /// Whether a member at `current`, whose clock reads `wall_ms`, may take this line,
    /// given who is removed (the taker's store): the signature, the signer's right, the
    /// listed removals, the epoch's jump, the grace period's end. Whether it *beats*
    /// the current epoch is [`Rekey::beats`].
    pub fn check(
        &self,
        current: &RoomKey,
        wall_ms: u64,
        is_removed: impl Fn(&str) -> bool,
    ) -> Result<(), RekeyError> {
        self.verify(current)?;
        if self.until > wall_ms.saturating_add(MAX_GRACE_MS) {
            return Err(RekeyError::GraceTooLong);
        }
        let admin = current.admins().contains(&self.by);
        if is_removed(&self.by) || (!admin && self.removed.is_empty()) {
            return Err(RekeyError::NotAllowed);
        }
        if self.epoch > current.epoch().saturating_add(MAX_EPOCH_JUMP) {
            return Err(RekeyError::TooFarAhead(self.epoch));
        }
        if !self.removed.iter().all(|r| is_removed(r)) {
            return Err(RekeyError::UnknownRemoval);
        }
        Ok(())
    }

    /// Whether this line's epoch wins over `current`'s: a higher epoch, or the same
    /// epoch with a smaller key.
    pub fn beats(&self, current: &RoomKey) -> bool {
        self.epoch > current.epoch()
            || (self.epoch == current.epoch() && self.key[..] < current.epoch_key()[..])
    }

    /// Whether this line wins over `other` (as [`Rekey::beats`], between two lines).
    pub fn outranks(&self, other: &Rekey) -> bool {
        self.epoch > other.epoch || (self.epoch == other.epoch && self.key[..] < other.key[..])
    }

    /// `room` in this line's epoch.
    pub fn key_of(&self, room: &RoomKey) -> RoomKey {
        room.rotated(self.epoch, &self.key)
    }

    /// `room` in the epoch before this line's (whose tag the room keeps until
    /// [`Rekey::until`]).
    pub fn previous_of(&self, room: &RoomKey) -> RoomKey {
        room.rotated(self.epoch - 1, &self.prev)
    }

    /// When the grace period ends (wall-clock milliseconds): the room moves to the
    /// new tag then.
    pub fn until(&self) -> u64 {
        self.until
    }

    /// The epoch this line makes.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The members removed when it was made (sorted).
    pub fn removed(&self) -> &[String] {
        &self.removed
    }

    /// Who made it.
    pub fn by(&self) -> &str {
        &self.by
    }
}

impl std::fmt::Debug for Rekey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rekey")
            .field("epoch", &self.epoch)
            .field("removed", &self.removed.len())
            .field("by", &self.by)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::RoomSecret;

    const WALL: u64 = 1_795_713_876_272;

    fn id(n: u8) -> Identity {
        Identity::from_seed(&[n; 32])
    }

    /// A room whose invite names member 1 admin.
    fn room() -> RoomKey {
        let plain = RoomSecret::generate(&mut Entropy::from_seed([7; 32]));
        RoomKey::derive("team", &plain.with_admins(&id(1), &[]).unwrap())
    }

    fn line(by: u8, removed: &[u8]) -> Rekey {
        let removed = removed.iter().map(|n| id(*n).peer_id().to_owned());
        let mut e = Entropy::from_seed([by; 32]);
        Rekey::rotate(&room(), removed, WALL + 1000, &id(by), &mut e).unwrap()
    }

    #[test]
    fn a_line_reads_back_and_moves_the_room_to_a_new_tag_and_key() {
        let k = room();
        let r = line(1, &[4, 3]);
        let back = Rekey::parse(&r.to_json(), &Limits::default()).unwrap();
        assert_eq!(back, r);
        assert_eq!(r.to_line(), format!("REKEY {}", r.to_json()));
        assert_eq!(back.check(&k, WALL, |w| w != id(1).peer_id()), Ok(()));
        let next = r.key_of(&k);
        assert_eq!((next.epoch(), next.room_id()), (1, k.room_id()));
        assert_ne!(next.tag(), k.tag());
        assert_eq!(r.previous_of(&k).tag(), k.tag());
        // Sealed in the new epoch: the old key cannot open it.
        let sealed = next.seal(&mut Entropy::from_seed([9; 32]), "announce", "a", "", b"hi");
        assert!(k.open(&sealed, "announce", "a", "").is_err());
        assert_eq!(next.open(&sealed, "announce", "a", "").unwrap(), b"hi");
        let mut sorted = vec![id(3).peer_id().to_owned(), id(4).peer_id().to_owned()];
        sorted.sort();
        assert_eq!(r.removed(), sorted);
        let dbg = format!("{r:?}");
        assert!(
            dbg.contains("epoch: 1") && !dbg.contains(&b64url(&r.key[..])),
            "{dbg}"
        );
    }

    #[test]
    fn only_a_signed_line_of_an_allowed_signer_listing_known_removals_is_taken() {
        let k = room();
        let (four, two) = (id(4).peer_id().to_owned(), id(2).peer_id().to_owned());
        let removed = |who: &str| who == four;
        // A member that is not an admin may rotate only for a removal.
        assert_eq!(line(2, &[4]).check(&k, WALL, removed), Ok(()));
        assert_eq!(
            line(2, &[]).check(&k, WALL, removed),
            Err(RekeyError::NotAllowed)
        );
        assert_eq!(line(1, &[]).check(&k, WALL, removed), Ok(()));
        // A removed signer may not.
        assert_eq!(
            line(4, &[4]).check(&k, WALL, removed),
            Err(RekeyError::NotAllowed)
        );
        // A removal the store has not seen: held.
        assert_eq!(
            line(1, &[2, 4]).check(&k, WALL, removed),
            Err(RekeyError::UnknownRemoval)
        );
        assert_eq!(
            line(1, &[2, 4]).check(&k, WALL, |w| w == four || w == two),
            Ok(())
        );
        // Another room's line, or a rewritten one: the signature fails.
        let other = RoomKey::derive("other", &RoomSecret::parse("some passphrase").unwrap());
        assert_eq!(
            line(1, &[]).check(&other, WALL, removed),
            Err(RekeyError::BadSignature)
        );
        let j = line(1, &[])
            .to_json()
            .replace(&format!("{}", WALL + 1000), "1");
        let r = Rekey::parse(&j, &Limits::default()).unwrap();
        assert_eq!(r.check(&k, WALL, removed), Err(RekeyError::BadSignature));
        // A grace period past 30 days of our clock.
        let mut e = Entropy::from_seed([1; 32]);
        let long = Rekey::rotate(&k, [], WALL + MAX_GRACE_MS + 1, &id(1), &mut e).unwrap();
        assert_eq!(long.check(&k, WALL, removed), Err(RekeyError::GraceTooLong));
        // An epoch too far ahead.
        let far = k.rotated(MAX_EPOCH_JUMP, &[5; 32]);
        let r = Rekey::rotate(&far, [], WALL, &id(1), &mut e).unwrap();
        assert_eq!(
            r.check(&k, WALL, removed),
            Err(RekeyError::TooFarAhead(MAX_EPOCH_JUMP + 1))
        );
        assert_eq!(r.check(&far, WALL, removed), Ok(()));
    }

    #[test]
    fn the_higher_epoch_wins_and_of_two_at_once_the_smaller_key() {
        let k = room();
        let (a, b) = (line(1, &[]), line(2, &[4]));
        assert!(a.beats(&k) && b.beats(&k));
        assert_ne!(a.outranks(&b), b.outranks(&a));
        let winner = if a.outranks(&b) { &a } else { &b };
        let loser = if a.outranks(&b) { &b } else { &a };
        // A member that took the loser moves to the winner; not the other way.
        assert!(winner.beats(&loser.key_of(&k)));
        assert!(!loser.beats(&winner.key_of(&k)));
        assert!(!winner.beats(&winner.key_of(&k)));
        // The next epoch beats either.
        let mut e = Entropy::from_seed([3; 32]);
        let next = Rekey::rotate(&loser.key_of(&k), [], WALL, &id(1), &mut e).unwrap();
        assert_eq!(next.epoch(), 2);
        assert!(next.beats(&winner.key_of(&k)) && next.outranks(winner));
        // The epochs end.
        let last = k.rotated(u32::MAX, &[1; 32]);
        assert!(Rekey::rotate(&last, [], WALL, &id(1), &mut e).is_none());
    }

    #[test]
    fn malformed_lines_are_refused_by_name_without_a_panic() {
        let good = line(1, &[3, 4]).to_json();
        let lim = Limits::default();
        let cases = [
            ("[]", "not an object"),
            ("{", "json"),
            (&*good.replace("\"epoch\":1", "\"epoch\":0"), "epoch"),
            (&*good.replace("\"epoch\":1", "\"epoch\":1.5"), "epoch"),
            (&*good.replace("\"epoch\":1", "\"epoch\":\"1\""), "epoch"),
            (&*good.replace("\"key\":\"", "\"key\":\"A"), "key"),
            (&*good.replace("\"until\":", "\"until\":-"), "until"),
            (&*good.replace("\"sig\":\"", "\"sig\":\"AA"), "sig"),
            (&*good.replace("\"by\":\"", "\"by\":\"x"), "by"),
            (
                &*good.replace("\"removed\":[", "\"removed\":[1,"),
                "removed",
            ),
        ];
        for (json, why) in cases {
            match Rekey::parse(json, &lim) {
                Err(RekeyError::Malformed(m)) => {
                    assert!(why == "json" || m.contains(why), "{json}: {m}")
                }
                other => panic!("{json}: {other:?}"),
            }
        }
        // Unsorted or repeated removals.
        let r = line(1, &[3, 4]);
        let (x, y) = (&r.removed()[0], &r.removed()[1]);
        let swapped = good.replace(&format!("[\"{x}\",\"{y}\"]"), &format!("[\"{y}\",\"{x}\"]"));
        assert!(matches!(
            Rekey::parse(&swapped, &lim),
            Err(RekeyError::Malformed(_))
        ));
        let twice = good.replace(&format!("[\"{x}\",\"{y}\"]"), &format!("[\"{x}\",\"{x}\"]"));
        assert!(matches!(
            Rekey::parse(&twice, &lim),
            Err(RekeyError::Malformed(_))
        ));
        // Too many removals.
        let many: Vec<String> = (0..=MAX_REMOVED).map(|i| format!("\"{i:05}\"")).collect();
        let big = good.replace(
            &format!("[\"{x}\",\"{y}\"]"),
            &format!("[{}]", many.join(",")),
        );
        assert!(
            matches!(Rekey::parse(&big, &lim), Err(RekeyError::Malformed(m)) if m.contains("512"))
        );
    }
}
