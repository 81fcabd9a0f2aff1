//! The room secret, the keys derived from it, and sealed signalling payloads.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{b64url, from_b64url, Entropy};

/// How an invite secret starts: `rm1_` and then 43 base64url characters (256 bits).
pub const INVITE_PREFIX: &str = "rm1_";

/// PBKDF2-HMAC-SHA256 iterations of a passphrase (OWASP's floor for it).
pub const PBKDF2_ROUNDS: u32 = 600_000;

/// The longest passphrase taken, in bytes.
const MAX_PASSPHRASE: usize = 1024;

/// The longest sealed payload [`RoomKey::open`] looks at, in characters: what fits in
/// one signalling frame (64 KiB).
const MAX_SEALED: usize = 64 << 10;

/// Nonce and tag of a sealed payload.
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The most admins an invite names.
pub const MAX_ADMINS: usize = 16;

/// What a member was given to enter a secured room: an invite (random, used as it is)
/// or a passphrase (stretched by [`RoomKey::derive`]).
#[derive(Clone, PartialEq, Eq)]
pub enum RoomSecret {
    /// `rm1_` + base64url of 32 random bytes, as [`RoomSecret::generate`] makes; and the
    /// admins it names, if any ([`RoomSecret::with_admins`]).
    Invite(Zeroizing<[u8; 32]>, Option<Admins>),
    /// Any other text.
    Passphrase(Zeroizing<String>),
}

/// The admins an invite names, signed by its creator (the first of them).
///
/// In the invite's text they follow the secret: `rm1_<secret>.<sig>.<creator>[.<admin>]*`
/// (base64url: 43 characters the secret, 86 the signature, 43 each peer id). The
/// creator signs
///
/// ```text
/// "rtc-mesh/v1/admins" 0x00 ‖ secret(32) ‖ UTF-8("<creator>[.<admin>]*")
/// ```
///
/// and the same ids are part of the room's derivation ([`RoomKey::derive`]): an invite
/// that names other admins (made by a member who knows the secret) is another room,
/// whose members never meet this one's. Admins may write anywhere, `room/` included,
/// and moderate every member's `users/` space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admins {
    ids: Vec<String>,
    sig: [u8; 64],
}

impl Admins {
    /// The admins' peer ids, the creator first.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    fn body(&self) -> String {
        self.ids.join(".")
    }

    fn signing_input(secret: &[u8; 32], body: &str) -> Vec<u8> {
        [b"rtc-mesh/v1/admins\0".as_slice(), secret, body.as_bytes()].concat()
    }

    fn parse(secret: &[u8; 32], text: &str) -> Result<Admins, SecretError> {
        let bad = |why: &str| SecretError::BadAdmins(why.to_owned());
        let (sig, body) = text
            .split_once('.')
            .ok_or_else(|| bad("no admins after the signature"))?;
        let sig: [u8; 64] = from_b64url(sig)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("the signature is not 86 base64url characters"))?;
        let ids: Vec<String> = body.split('.').map(str::to_owned).collect();
        if ids.len() > MAX_ADMINS {
            return Err(bad("more than 16 admins"));
        }
        for id in &ids {
            super::PeerKey::from_peer_id(id).map_err(|_| bad("an admin is not a member's key"))?;
        }
        let creator = super::PeerKey::from_peer_id(&ids[0]).map_err(|_| bad("bad creator"))?;
        creator
            .verify(&Admins::signing_input(secret, body), &sig)
            .map_err(|_| bad("the creator's signature does not check"))?;
        Ok(Admins { ids, sig })
    }
}

/// A secret that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret is empty.
    #[error("the room secret is empty")]
    Empty,
    /// A passphrase longer than 1024 bytes.
    #[error("the room secret is {0} bytes; the maximum is 1024")]
    TooLong(usize),
    /// It starts like an invite (`rm1_`) but is not one.
    #[error("the room secret starts with rm1_ but is not an invite: 43 base64url characters must follow")]
    BadInvite,
    /// The admins after an invite's secret do not check.
    #[error("the invite's admins do not check: {0}")]
    BadAdmins(String),
}

impl RoomSecret {
    /// Reads a secret as given on the command line, in a page's URL fragment or to
    /// `join`: an invite if it starts with `rm1_`, else a passphrase.
    pub fn parse(text: &str) -> Result<RoomSecret, SecretError> {
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        if let Some(body) = text.strip_prefix(INVITE_PREFIX) {
            if text.len() > MAX_PASSPHRASE {
                return Err(SecretError::TooLong(text.len()));
            }
            let (secret, admins) = match body.split_once('.') {
                Some((s, a)) => (s, Some(a)),
                None => (body, None),
            };
            let bytes = from_b64url(secret).ok_or(SecretError::BadInvite)?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| SecretError::BadInvite)?;
            let admins = admins.map(|a| Admins::parse(&key, a)).transpose()?;
            return Ok(RoomSecret::Invite(Zeroizing::new(key), admins));
        }
        if text.len() > MAX_PASSPHRASE {
            return Err(SecretError::TooLong(text.len()));
        }
        Ok(RoomSecret::Passphrase(Zeroizing::new(text.to_owned())))
    }

    /// A fresh invite secret (`rtc-mesh invite`).
    pub fn generate(entropy: &mut Entropy) -> RoomSecret {
        RoomSecret::Invite(Zeroizing::new(entropy.bytes()), None)
    }

    /// This invite naming `creator` and `others` as the room's admins, signed by
    /// `creator` (see [`Admins`]). A passphrase cannot name admins: `None`.
    pub fn with_admins(
        &self,
        creator: &super::Identity,
        others: &[String],
    ) -> Result<RoomSecret, SecretError> {
        let RoomSecret::Invite(k, _) = self else {
            return Err(SecretError::BadAdmins(
                "a passphrase cannot name admins".into(),
            ));
        };
        let mut ids = vec![creator.peer_id().to_owned()];
        for o in others {
            super::PeerKey::from_peer_id(o)
                .map_err(|_| SecretError::BadAdmins(format!("{o:?} is not a member's key")))?;
            if !ids.contains(o) {
                ids.push(o.clone());
            }
        }
        if ids.len() > MAX_ADMINS {
            return Err(SecretError::BadAdmins("more than 16 admins".into()));
        }
        let body = ids.join(".");
        let sig = creator.sign(&Admins::signing_input(k, &body));
        Ok(RoomSecret::Invite(k.clone(), Some(Admins { ids, sig })))
    }

    /// The admins this secret names (none for a passphrase or a plain invite).
    pub fn admins(&self) -> &[String] {
        match self {
            RoomSecret::Invite(_, Some(a)) => a.ids(),
            _ => &[],
        }
    }

    /// The secret as text, for [`RoomSecret::parse`] (an invite's `rm1_...` form).
    pub fn to_text(&self) -> Zeroizing<String> {
        match self {
            RoomSecret::Invite(k, None) => {
                Zeroizing::new(format!("{INVITE_PREFIX}{}", b64url(&k[..])))
            }
            RoomSecret::Invite(k, Some(a)) => Zeroizing::new(format!(
                "{INVITE_PREFIX}{}.{}.{}",
                b64url(&k[..]),
                b64url(&a.sig),
                a.body()
            )),
            RoomSecret::Passphrase(p) => p.clone(),
        }
    }

    /// Whether deriving the room key stretches this secret (a passphrase: about a
    /// second of PBKDF2).
    pub fn is_passphrase(&self) -> bool {
        matches!(self, RoomSecret::Passphrase(_))
    }
}

impl std::fmt::Debug for RoomSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RoomSecret::Invite(_, None) => "RoomSecret::Invite(..)",
            RoomSecret::Invite(_, Some(_)) => "RoomSecret::Invite(.., admins)",
            RoomSecret::Passphrase(_) => "RoomSecret::Passphrase(..)",
        })
    }
}

/// The keys of one secured room, derived from its name and secret.
///
/// ```text
/// S       = the invite's 32 bytes, or
///           PBKDF2-HMAC-SHA256(passphrase, "rtc-mesh/v1/password/" ‖ room, 600000, 32)
/// prk     = HKDF-SHA256(salt = "rtc-mesh/v1/room/" ‖ room, ikm = S ‖ admins)
///           (admins: the invite's "<creator>[.<admin>]*", empty when it names none)
/// room_id = expand(prk, "rtc-mesh/v1/room-id", 16)        in every signature
/// K_0     = expand(prk, "rtc-mesh/v1/epoch-0", 32)     the key of epoch 0
/// then, per epoch e, with HKDF-SHA256(salt = room_id, ikm = K_e):
/// tag     = base64url(expand("rtc-mesh/v1/tag", 16))       the switchboard's room name (22 chars)
/// seal    = expand("rtc-mesh/v1/signal", 32)               the AES-256-GCM key
/// nonce   = expand("rtc-mesh/v1/nonce", 32)                keys the hedged nonces (below)
/// ```
///
/// The same secret under two room names gives two unrelated rooms; an open room with
/// the same name is another room again (its switchboard room is the name itself).
///
/// A removal moves the room to a new *epoch* ([`RoomKey::rotated`]): `K_{e+1}` is 32
/// random bytes, handed to the remaining members over their DTLS links in a signed
/// `REKEY` line ([`crate::security::Rekey`]), and neither the secret nor any earlier
/// key derives it. The room id (and so every signature) stays; the tag, the sealing
/// key and the nonce key change.
#[derive(Clone)]
pub struct RoomKey {
    room_id: [u8; 16],
    epoch: u32,
    epoch_key: Zeroizing<[u8; 32]>,
    tag_raw: [u8; 16],
    tag: String,
    cipher: Aes256Gcm,
    nonce_key: Hmac<Sha256>,
    admins: Vec<String>,
}

/// Why a sealed payload did not open. Nothing of its contents is in the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Longer than a signalling frame.
    #[error("sealed payload of {0} characters; the maximum is 65536")]
    TooLong(usize),
    /// Not base64url, or shorter than a nonce and a tag.
    #[error("the sealed payload is not a base64url nonce, ciphertext and tag")]
    Malformed,
    /// The tag does not check: another key, or another command, sender or target.
    #[error(
        "the sealed payload does not open with this room's key for this command, sender and target"
    )]
    Failed,
}

impl RoomKey {
    /// The keys of `room` under `secret`. A passphrase is stretched here (PBKDF2,
    /// about a second): derive once per room and keep the key.
    pub fn derive(room: &str, secret: &RoomSecret) -> RoomKey {
        let mut s = Zeroizing::new([0u8; 32]);
        match secret {
            RoomSecret::Invite(k, _) => s.copy_from_slice(&k[..]),
            RoomSecret::Passphrase(p) => {
                let salt = [b"rtc-mesh/v1/password/".as_slice(), room.as_bytes()].concat();
                pbkdf2::pbkdf2_hmac::<Sha256>(p.as_bytes(), &salt, PBKDF2_ROUNDS, &mut s[..]);
            }
        }
        let admins = secret.admins().to_vec();
        RoomKey::from_master(room, &s, admins)
    }

    /// The keys from the 32-byte master secret `S` (after stretching), and the admins
    /// the invite names (their ids follow `S` in the HKDF input).
    fn from_master(room: &str, s: &[u8; 32], admins: Vec<String>) -> RoomKey {
        let salt = [b"rtc-mesh/v1/room/".as_slice(), room.as_bytes()].concat();
        let ikm = Zeroizing::new([s.as_slice(), admins.join(".").as_bytes()].concat());
        let prk = Hkdf::<Sha256>::new(Some(&salt), &ikm);
        let room_id: [u8; 16] = expand(&prk, b"rtc-mesh/v1/room-id");
        let k0 = Zeroizing::new(expand::<32>(&prk, b"rtc-mesh/v1/epoch-0"));
        RoomKey::of_epoch(room_id, admins, 0, &k0)
    }

    /// The keys of epoch `epoch`, whose key is `k`.
    fn of_epoch(room_id: [u8; 16], admins: Vec<String>, epoch: u32, k: &[u8; 32]) -> RoomKey {
        let prk = Hkdf::<Sha256>::new(Some(&room_id), &k[..]);
        let tag_raw: [u8; 16] = expand(&prk, b"rtc-mesh/v1/tag");
        let seal = Zeroizing::new(expand::<32>(&prk, b"rtc-mesh/v1/signal"));
        let nonce = Zeroizing::new(expand::<32>(&prk, b"rtc-mesh/v1/nonce"));
        RoomKey {
            room_id,
            epoch,
            epoch_key: Zeroizing::new(*k),
            tag_raw,
            tag: b64url(&tag_raw),
            cipher: Aes256Gcm::new((&*seal).into()),
            nonce_key: <Hmac<Sha256> as Mac>::new_from_slice(&nonce[..])
                .expect("HMAC takes any key length"),
            admins,
        }
    }

    /// The same room in epoch `epoch`, whose key is `k` (from a
    /// [`Rekey`](crate::security::Rekey) line): the room id and the admins are this
    /// key's; the tag, the sealing key and the nonce key are derived from `k`.
    pub fn rotated(&self, epoch: u32, k: &[u8; 32]) -> RoomKey {
        RoomKey::of_epoch(self.room_id, self.admins.clone(), epoch, k)
    }

    /// The epoch: 0 as the secret derives it, one more at every rotation.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The epoch's key `K_e` (what a `REKEY` line hands over). Secret.
    pub fn epoch_key(&self) -> &[u8; 32] {
        &self.epoch_key
    }

    /// The room's admins (named by its invite; none in most rooms).
    pub fn admins(&self) -> &[String] {
        &self.admins
    }

    /// The room's stable id, part of every signature (so none replays into another room).
    pub fn room_id(&self) -> &[u8; 16] {
        &self.room_id
    }

    /// The name the switchboard sees for this room (22 base64url characters).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Seals `plaintext` for the signalling message `command` (say `mesh:sdp`) from
    /// `sender` to `target` (empty for a broadcast such as an announce):
    ///
    /// ```text
    /// sealed = base64url(nonce(12) ‖ AES-256-GCM(seal, nonce, aad, plaintext) ‖ tag(16))
    /// aad    = "rtc-mesh/v1/signal" 0x00 ‖ tag(16 raw bytes) ‖ command 0x00 ‖ sender 0x00 ‖ target
    /// ```
    ///
    /// The nonce is hedged: the first 12 bytes of HMAC-SHA256(nonce key, 16 bytes from
    /// `entropy` ‖ the associated data ‖ plaintext). It is as random as `entropy`, and
    /// even generators that repeat (two meshes cloned from one configuration) give two
    /// payloads the same nonce only if they are the same payload.
    pub fn seal(
        &self,
        entropy: &mut Entropy,
        command: &str,
        sender: &str,
        target: &str,
        plaintext: &[u8],
    ) -> String {
        let mut mac = self.nonce_key.clone();
        mac.update(&entropy.bytes::<16>());
        mac.update(&self.aad(command, sender, target));
        mac.update(plaintext);
        let tag = mac.finalize().into_bytes();
        let nonce: [u8; NONCE_LEN] = tag[..NONCE_LEN].try_into().expect("32 bytes");
        self.seal_with_nonce(nonce, command, sender, target, plaintext)
    }

    /// [`RoomKey::seal`] with a given nonce: for test vectors only (a nonce must never
    /// repeat under one key).
    #[doc(hidden)]
    pub fn seal_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        command: &str,
        sender: &str,
        target: &str,
        plaintext: &[u8],
    ) -> String {
        let aad = self.aad(command, sender, target);
        let ct = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM seals any payload under 64 GiB");
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        b64url(&out)
    }

    /// Opens what [`RoomKey::seal`] made, for the same command, sender and target.
    pub fn open(
        &self,
        sealed: &str,
        command: &str,
        sender: &str,
        target: &str,
    ) -> Result<Vec<u8>, OpenError> {
        if sealed.len() > MAX_SEALED {
            return Err(OpenError::TooLong(sealed.len()));
        }
        let bytes = from_b64url(sealed).ok_or(OpenError::Malformed)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let (nonce, ct) = bytes.split_at(NONCE_LEN);
        let aad = self.aad(command, sender, target);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| OpenError::Failed)
    }

    fn aad(&self, command: &str, sender: &str, target: &str) -> Vec<u8> {
        let mut aad = Vec::with_capacity(40 + command.len() + sender.len() + target.len());
        aad.extend_from_slice(b"rtc-mesh/v1/signal\0");
        aad.extend_from_slice(&self.tag_raw);
        for (i, part) in [command, sender, target].into_iter().enumerate() {
            if i > 0 {
                aad.push(0);
            }
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

impl std::fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomKey")
            .field("epoch", &self.epoch)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

fn expand<const N: usize>(prk: &Hkdf<Sha256>, info: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    prk.expand(info, &mut out)
        .expect("HKDF-SHA256 expands up to 8160 bytes");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invite() -> RoomSecret {
        RoomSecret::generate(&mut Entropy::from_seed([7; 32]))
    }

    #[test]
    fn an_invite_names_admins_signed_by_its_creator_and_they_make_another_room() {
        let s = invite();
        let creator = super::super::Identity::from_seed(&[1; 32]);
        let other = super::super::Identity::from_seed(&[2; 32])
            .peer_id()
            .to_owned();
        let a = s
            .with_admins(&creator, std::slice::from_ref(&other))
            .unwrap();
        assert_eq!(a.admins(), [creator.peer_id().to_owned(), other.clone()]);
        let text = a.to_text().to_string();
        assert_eq!(text.len(), 4 + 43 + 1 + 86 + 1 + 43 + 1 + 43);
        assert_eq!(RoomSecret::parse(&text).unwrap(), a);
        assert_eq!(format!("{a:?}"), "RoomSecret::Invite(.., admins)");
        // The same secret with other admins (or none) is another room.
        let k = RoomKey::derive("r", &a);
        assert_eq!(k.admins(), a.admins());
        assert_ne!(k.tag(), RoomKey::derive("r", &s).tag());
        let mine = s
            .with_admins(&super::super::Identity::from_seed(&[2; 32]), &[])
            .unwrap();
        assert_ne!(RoomKey::derive("r", &mine).tag(), k.tag());
        // Tampered: an admin added, dropped or swapped; a bad signature; a bad id.
        let (head, ids) = text.split_at(4 + 43 + 1 + 86);
        for bad in [
            format!("{text}.{}", "B".repeat(43)),
            format!("{head}.{}", creator.peer_id()),
            format!("{head}.{other}.{}", creator.peer_id()),
            format!("{}{}", &head[..head.len() - 2], "AA") + ids,
            format!("{head}.x"),
            format!("{}.", &text[..4 + 43]),
        ] {
            assert!(
                matches!(RoomSecret::parse(&bad), Err(SecretError::BadAdmins(_))),
                "{bad}"
            );
        }
        assert!(RoomSecret::parse("pass")
            .unwrap()
            .with_admins(&creator, &[])
            .is_err());
    }

    #[test]
    fn an_invite_reads_back_and_anything_else_is_a_passphrase() {
        let s = invite();
        let text = s.to_text();
        assert!(
            text.starts_with(INVITE_PREFIX) && text.len() == 47,
            "{}",
            &*text
        );
        assert_eq!(RoomSecret::parse(&text).unwrap(), s);
        assert!(RoomSecret::parse("correct horse").unwrap().is_passphrase());
        assert_eq!(RoomSecret::parse(""), Err(SecretError::Empty));
        assert_eq!(RoomSecret::parse("rm1_short"), Err(SecretError::BadInvite));
        // 43 characters whose last one has trailing bits set: not canonical.
        let mut bad = text.to_string();
        bad.pop();
        bad.push('B');
        assert_eq!(RoomSecret::parse(&bad), Err(SecretError::BadInvite));
        assert_eq!(
            RoomSecret::parse(&"x".repeat(1025)),
            Err(SecretError::TooLong(1025))
        );
        assert_eq!(format!("{s:?}"), "RoomSecret::Invite(..)");
    }

    #[test]
    fn the_room_name_and_the_secret_each_change_every_key() {
        let s = invite();
        let a = RoomKey::derive("team", &s);
        let b = RoomKey::derive("team", &s);
        assert_eq!(a.tag(), b.tag());
        assert_eq!(a.tag().len(), 22);
        assert_ne!(a.tag(), RoomKey::derive("team2", &s).tag());
        assert_ne!(a.tag(), RoomKey::derive("team", &invite_2()).tag());
        assert_ne!(a.room_id(), RoomKey::derive("team2", &s).room_id());
        assert!(!format!("{a:?}").contains("cipher"));
    }

    fn invite_2() -> RoomSecret {
        RoomSecret::generate(&mut Entropy::from_seed([8; 32]))
    }

    #[test]
    fn a_sealed_payload_opens_only_for_its_command_sender_target_and_key() {
        let k = RoomKey::derive("team", &invite());
        let mut e = Entropy::from_seed([1; 32]);
        let sealed = k.seal(&mut e, "mesh:sdp", "alice", "bob", b"v=0");
        assert_eq!(k.open(&sealed, "mesh:sdp", "alice", "bob").unwrap(), b"v=0");
        for (c, s, t) in [
            ("mesh:candidate", "alice", "bob"),
            ("mesh:sdp", "mallory", "bob"),
            ("mesh:sdp", "alice", "carol"),
            ("mesh:sdp", "alice", ""),
            // The separators are in the associated data: no shifting a byte across.
            ("mesh:sdp", "alic", "ebob"),
        ] {
            assert_eq!(
                k.open(&sealed, c, s, t),
                Err(OpenError::Failed),
                "{c} {s} {t}"
            );
        }
        let other = RoomKey::derive("team", &invite_2());
        assert_eq!(
            other.open(&sealed, "mesh:sdp", "alice", "bob"),
            Err(OpenError::Failed)
        );
        // Any flipped character fails; truncation and junk are malformed or fail.
        let mut flipped = sealed.clone().into_bytes();
        flipped[20] = if flipped[20] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            k.open(&flipped, "mesh:sdp", "alice", "bob"),
            Err(OpenError::Failed)
        );
        assert_eq!(
            k.open("AAAA", "mesh:sdp", "alice", "bob"),
            Err(OpenError::Malformed)
        );
        assert_eq!(
            k.open("not base64!", "mesh:sdp", "alice", "bob"),
            Err(OpenError::Malformed)
        );
        let long = "A".repeat(MAX_SEALED + 1);
        assert_eq!(
            k.open(&long, "mesh:sdp", "alice", "bob"),
            Err(OpenError::TooLong(long.len()))
        );
        // Two seals of the same text differ (fresh nonces).
        assert_ne!(sealed, k.seal(&mut e, "mesh:sdp", "alice", "bob", b"v=0"));
    }
}
