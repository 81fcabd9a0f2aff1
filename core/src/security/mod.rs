//! Secured rooms: a room secret, sealed signalling and member identities.
//!
//! An open room (no secret) is what rtc-mesh always was: anyone who knows the room
//! name joins, and the switchboard sees every SDP. A *secured* room adds two layers,
//! each pure functions over bytes (no clock, no randomness of its own: nonces and new
//! keys come from [`Entropy`], which the runtimes fill from the operating system):
//!
//! 1. **The room secret** ([`RoomSecret`], [`RoomKey`]). An invite secret
//!    (`rtc-mesh invite`, [`RoomSecret::generate`]) is 256 random bits and needs no
//!    stretching; any other text is a passphrase, stretched once with
//!    PBKDF2-HMAC-SHA256 (600,000 iterations, salted with the room name). From it: a
//!    *tag* the switchboard sees instead of the room name, and a key that seals every
//!    signalling payload with AES-256-GCM, its associated data binding the command,
//!    the sender and the target (a relay that re-routes a `/to` or rewrites its
//!    sender makes [`RoomKey::open`] fail).
//! 2. **Identities** ([`Identity`], [`PeerKey`]). Each member of a secured room has an
//!    Ed25519 key, and its peer id is the key itself (base64url, 43 characters), so
//!    an id cannot be claimed without the key. Announces, leaves and SDP are signed
//!    inside the sealed payload ([`signing`]): a DTLS fingerprint then belongs to a
//!    member, not to "someone who knows the secret", and a switchboard (even one run
//!    by a member) cannot swap fingerprints, replay an old offer or forge a leave.
//! 3. **Signed updates** ([`updates`]). Every write carries its writer's signature, and
//!    a store checks it and the room's write rules before the update touches anything:
//!    no member writes under another's name or into another's `users/` space, and an
//!    update stamped more than a minute ahead is held back until its time.
//! 4. **Key epochs** ([`Rekey`]). When an admin removes a member, the room moves to a
//!    new epoch: 32 random bytes that neither the secret nor any earlier key derives,
//!    handed to the remaining members in a signed `REKEY` line over their DTLS links.
//!    The tag and the sealing key change; the room id (in every signature) stays.
//!
//! ## One validity rule for signatures
//!
//! Replicas that disagree on which signatures are valid split for good, so every
//! implementation (this crate, the browser client over WebCrypto) applies the same
//! rule, [`PeerKey::from_bytes`] and [`PeerKey::verify`]: the key and the signature's
//! `R` are canonical encodings (y < p) and not of small order, `S < L`, and the
//! cofactorless equation holds (ed25519-dalek's `verify_strict`; never batch
//! verification). `core/tests/ed25519_vectors.rs` holds every edge case of the
//! C2SP/CCTV vector set to one accept/reject bitmap, which the browser client's tests
//! hold Chromium and Firefox to as well.
//!
//! The formats (key derivations, the sealed envelope, the signing inputs) are
//! specified beside each function; `core/tests/vectors/security.json` has their
//! vectors, written by `core/tests/security_vectors.rs`.

mod identity;
mod rekey;
mod room;
pub mod signing;
pub mod token;
pub mod updates;

pub use identity::{
    BadIdentity, Identity, KeyError, PeerKey, SigError, IDENTITY_PREFIX, PEER_ID_LEN,
};
pub use rekey::{Rekey, RekeyError, MAX_EPOCH_JUMP, MAX_GRACE_MS, MAX_REMOVED};
pub use room::{OpenError, RoomKey, RoomSecret, SecretError, INVITE_PREFIX, PBKDF2_ROUNDS};

use rand_chacha::rand_core::{RngCore, SeedableRng};

/// 256 bits of real entropy, the seed of a secured member's random draws (nonces,
/// identity keys). Runtimes fill it from the operating system, pages from
/// `crypto.getRandomValues`; simulations derive it from their seed, so they replay.
/// Never build one from a guessable value on a real network.
#[derive(Clone)]
pub struct Entropy(rand_chacha::ChaCha20Rng);

impl Entropy {
    /// A generator over these 32 bytes (ChaCha20).
    pub fn from_seed(seed: [u8; 32]) -> Entropy {
        Entropy(rand_chacha::ChaCha20Rng::from_seed(seed))
    }

    /// Fills `out` with the next random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        self.0.fill_bytes(out);
    }

    /// The next `N` random bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0; N];
        self.fill(&mut b);
        b
    }
}

impl std::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Entropy(..)")
    }
}

/// base64url without padding, the text form of every key, tag and sealed payload.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding; `None` for anything else (padding, other
/// alphabets, non-canonical trailing bits).
pub(crate) fn from_b64url(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
}
