//! Member identities: Ed25519 keys whose public half is the peer id, and the one
//! validity rule for their signatures.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use super::{b64url, from_b64url, Entropy};

/// Length of a key-derived peer id: base64url of a 32-byte Ed25519 public key.
pub const PEER_ID_LEN: usize = 43;

/// How an identity's seed starts as text ([`Identity::to_text`]).
pub const IDENTITY_PREFIX: &str = "rm1id_";

/// Text that is not an identity ([`Identity::parse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an identity: rm1id_ and 43 base64url characters (a 32-byte seed)")]
pub struct BadIdentity;

/// A member's own key. Its peer id is [`Identity::peer_id`]; keep the seed
/// ([`Identity::seed`]) to be the same member after a restart.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
    id: String,
}

/// A member's public key, read from its peer id and checked: a canonical encoding of
/// a point that is not of small order. Only such keys are ever used to verify.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerKey {
    key: VerifyingKey,
    id: String,
}

/// A peer id or public key that is not a usable identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not 43 base64url characters (32 bytes).
    #[error("not a key-derived peer id: 43 base64url characters of an Ed25519 public key")]
    NotAKeyId,
    /// A non-canonical encoding (y ≥ p).
    #[error("the public key is a non-canonical point encoding")]
    NonCanonical,
    /// One of the points of small order (they verify forged signatures).
    #[error("the public key is a point of small order")]
    SmallOrder,
    /// No point has this encoding.
    #[error("the public key is not a point of the curve")]
    NotAPoint,
}

/// Why a signature is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigError {
    /// Not 64 bytes (86 base64url characters as text).
    #[error("a signature is 64 bytes (86 base64url characters)")]
    Malformed,
    /// Its R is a non-canonical encoding.
    #[error("the signature's R is a non-canonical point encoding")]
    NonCanonicalR,
    /// Its R is of small order.
    #[error("the signature's R is a point of small order")]
    SmallOrderR,
    /// Its S is not below the group order.
    #[error("the signature's S is not reduced")]
    ScalarTooLarge,
    /// The equation does not hold: another key, or another message.
    #[error("the signature does not match the key and message")]
    Mismatch,
}

impl Identity {
    /// The identity of this 32-byte seed (RFC 8032's private key).
    pub fn from_seed(seed: &[u8; 32]) -> Identity {
        let key = SigningKey::from_bytes(seed);
        let id = b64url(key.verifying_key().as_bytes());
        Identity { key, id }
    }

    /// A new identity from `entropy`.
    pub fn generate(entropy: &mut Entropy) -> Identity {
        let seed = Zeroizing::new(entropy.bytes::<32>());
        Identity::from_seed(&seed)
    }

    /// The seed to keep, for [`Identity::from_seed`].
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_bytes())
    }

    /// The seed as text: `rm1id_` and 43 base64url characters. It is the private key:
    /// whoever holds it is this member.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{IDENTITY_PREFIX}{}", b64url(&self.seed()[..])))
    }

    /// Reads [`Identity::to_text`]'s form.
    pub fn parse(text: &str) -> Result<Identity, BadIdentity> {
        let body = text.strip_prefix(IDENTITY_PREFIX).ok_or(BadIdentity)?;
        if body.len() != PEER_ID_LEN {
            return Err(BadIdentity);
        }
        let bytes = Zeroizing::new(from_b64url(body).ok_or(BadIdentity)?);
        let seed: &[u8; 32] = bytes.as_slice().try_into().map_err(|_| BadIdentity)?;
        Ok(Identity::from_seed(seed))
    }

    /// The peer id: base64url of the public key (43 characters).
    pub fn peer_id(&self) -> &str {
        &self.id
    }

    /// The public half.
    pub fn public(&self) -> PeerKey {
        PeerKey {
            key: self.key.verifying_key(),
            id: self.id.clone(),
        }
    }

    /// The Ed25519 signature of `msg` (deterministic).
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    /// [`Identity::sign`] as base64url text (86 characters).
    pub fn sign_text(&self, msg: &[u8]) -> String {
        b64url(&self.sign(msg))
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("peer_id", &self.id)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PeerKey({})", self.id)
    }
}

impl PeerKey {
    /// The key a key-derived peer id names, checked.
    pub fn from_peer_id(id: &str) -> Result<PeerKey, KeyError> {
        if id.len() != PEER_ID_LEN {
            return Err(KeyError::NotAKeyId);
        }
        let bytes = from_b64url(id).ok_or(KeyError::NotAKeyId)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::NotAKeyId)?;
        PeerKey::from_bytes(&bytes)
    }

    /// The key of these 32 bytes, if it is canonical and not of small order.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PeerKey, KeyError> {
        match check_point(bytes) {
            Point::NonCanonical => return Err(KeyError::NonCanonical),
            Point::SmallOrder => return Err(KeyError::SmallOrder),
            Point::Fine => {}
        }
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::NotAPoint)?;
        Ok(PeerKey {
            key,
            id: b64url(bytes),
        })
    }

    /// The peer id of this key.
    pub fn peer_id(&self) -> &str {
        &self.id
    }

    /// The 32 bytes of the key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Whether `sig` is this key's signature of `msg`, under the one rule every
    /// implementation applies: R canonical and not of small order, S < L, and the
    /// cofactorless equation ([`ed25519_dalek::VerifyingKey::verify_strict`]).
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> Result<(), SigError> {
        let r: &[u8; 32] = sig[..32].try_into().expect("32 bytes");
        match check_point(r) {
            Point::NonCanonical => return Err(SigError::NonCanonicalR),
            Point::SmallOrder => return Err(SigError::SmallOrderR),
            Point::Fine => {}
        }
        let s: &[u8; 32] = sig[32..].try_into().expect("32 bytes");
        if !below_order(s) {
            return Err(SigError::ScalarTooLarge);
        }
        self.key
            .verify_strict(msg, &Signature::from_bytes(sig))
            .map_err(|_| SigError::Mismatch)
    }

    /// [`PeerKey::verify`] of a signature given as base64url text.
    pub fn verify_text(&self, msg: &[u8], sig: &str) -> Result<(), SigError> {
        if sig.len() != 86 {
            return Err(SigError::Malformed);
        }
        let bytes = from_b64url(sig).ok_or(SigError::Malformed)?;
        let bytes: [u8; 64] = bytes.try_into().map_err(|_| SigError::Malformed)?;
        self.verify(msg, &bytes)
    }
}

enum Point {
    Fine,
    NonCanonical,
    SmallOrder,
}

/// The encodings of the points of small order that are canonical in y (C2SP/CCTV
/// `ed25519/README.md`), including those with the sign bit set on x = 0.
const SMALL_ORDER: [[u8; 32]; 10] = {
    let mut t = [[0u8; 32]; 10];
    // 0 (order 4), and with the sign bit.
    t[1][31] = 0x80;
    // 1 (the identity), and x = -0.
    t[2][0] = 1;
    t[3][0] = 1;
    t[3][31] = 0x80;
    // p - 1 (order 2), and x = -0.
    let mut i = 0;
    while i < 32 {
        t[4][i] = 0xff;
        t[5][i] = 0xff;
        i += 1;
    }
    t[4][0] = 0xec;
    t[4][31] = 0x7f;
    t[5][0] = 0xec;
    // The four points of order 8.
    t[6] = ORDER8_A;
    t[7] = ORDER8_A;
    t[7][31] |= 0x80;
    t[8] = ORDER8_B;
    t[9] = ORDER8_B;
    t[9][31] = 0xfa;
    t
};

/// 26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05
const ORDER8_A: [u8; 32] = [
    0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
    0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
];
/// c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a
const ORDER8_B: [u8; 32] = [
    0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
    0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
];

/// Canonical (y < p = 2^255 - 19) and not of small order.
fn check_point(b: &[u8; 32]) -> Point {
    let y_at_least_p = b[31] & 0x7f == 0x7f && b[1..31].iter().all(|&x| x == 0xff) && b[0] >= 0xed;
    if y_at_least_p {
        Point::NonCanonical
    } else if SMALL_ORDER.contains(b) {
        Point::SmallOrder
    } else {
        Point::Fine
    }
}

/// L = 2^252 + 27742317777372353535851937790883648493, little-endian.
const ORDER: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `s < L`, both little-endian.
fn below_order(s: &[u8; 32]) -> bool {
    for i in (0..32).rev() {
        if s[i] != ORDER[i] {
            return s[i] < ORDER[i];
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_signs_and_its_peer_id_verifies() {
        let me = Identity::from_seed(&[3; 32]);
        assert_eq!(me.peer_id().len(), PEER_ID_LEN);
        let pk = PeerKey::from_peer_id(me.peer_id()).unwrap();
        assert_eq!(pk, me.public());
        let sig = me.sign(b"hello");
        assert_eq!(pk.verify(b"hello", &sig), Ok(()));
        assert_eq!(pk.verify(b"hellO", &sig), Err(SigError::Mismatch));
        assert_eq!(pk.verify_text(b"hello", &me.sign_text(b"hello")), Ok(()));
        assert_eq!(pk.verify_text(b"hello", "short"), Err(SigError::Malformed));
        // Deterministic, and the seed gives the same member back.
        assert_eq!(Identity::from_seed(&me.seed()).sign(b"hello"), sig);
        // So does its text form, and nothing else reads as one.
        let text = me.to_text();
        assert!(
            text.starts_with(IDENTITY_PREFIX) && text.len() == 49,
            "{}",
            *text
        );
        assert_eq!(Identity::parse(&text).unwrap().peer_id(), me.peer_id());
        for bad in [
            "",
            "rm1id_",
            &text[1..],
            &text[..48],
            &format!("{}A", *text),
            &text.replace('_', "="),
        ] {
            assert_eq!(
                Identity::parse(bad).map(|_| ()),
                Err(BadIdentity),
                "{bad:?}"
            );
        }
        assert!(!format!("{me:?}").contains("key:"));
    }

    #[test]
    fn small_order_and_non_canonical_keys_and_r_are_refused() {
        for bad in SMALL_ORDER {
            assert_eq!(PeerKey::from_bytes(&bad), Err(KeyError::SmallOrder));
        }
        let mut p = [0xff; 32];
        p[31] = 0x7f;
        p[0] = 0xed; // y = p: the identity's other encoding
        assert_eq!(PeerKey::from_bytes(&p), Err(KeyError::NonCanonical));
        assert_eq!(PeerKey::from_peer_id("not an id"), Err(KeyError::NotAKeyId));
        let me = Identity::from_seed(&[4; 32]);
        let pk = me.public();
        let mut sig = me.sign(b"m");
        sig[..32].copy_from_slice(&SMALL_ORDER[2]);
        assert_eq!(pk.verify(b"m", &sig), Err(SigError::SmallOrderR));
        sig[..32].copy_from_slice(&p);
        assert_eq!(pk.verify(b"m", &sig), Err(SigError::NonCanonicalR));
        // S + L verifies under some libraries; here it is refused before the equation.
        let mut sig = me.sign(b"m");
        let mut carry = 0u16;
        for i in 0..32 {
            let v = sig[32 + i] as u16 + ORDER[i] as u16 + carry;
            sig[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(pk.verify(b"m", &sig), Err(SigError::ScalarTooLarge));
    }

    #[test]
    fn the_order_compares_as_little_endian() {
        assert!(!below_order(&ORDER));
        let mut s = ORDER;
        s[0] -= 1;
        assert!(below_order(&s));
        assert!(below_order(&[0; 32]));
        assert!(!below_order(&[0xff; 32]));
    }
}
