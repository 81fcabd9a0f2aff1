//! A million seals across many senders of one room never repeat a (key, nonce) pair:
//! AES-GCM's one fatal misuse. Senders draw from their own generators, some of them
//! cloned from one seed (two meshes made from one configuration), and seal payloads
//! proptest chooses; the hedged nonce (HMAC of fresh bytes, the associated data and
//! the plaintext) keeps them apart unless the payload is the very same.

use std::collections::HashSet;

use proptest::prelude::*;
use rtc_mesh_core::security::{Entropy, RoomKey, RoomSecret};

/// The nonce of a sealed payload: its first 12 bytes.
fn nonce(sealed: &str) -> [u8; 12] {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sealed)
        .expect("base64url");
    raw[..12].try_into().unwrap()
}

const SENDERS: usize = 1_000;
const SEALS_EACH: usize = 1_000;

proptest! {
    #![proptest_config(ProptestConfig { cases: 1, ..ProptestConfig::default() })]

    #[test]
    fn a_million_seals_never_repeat_a_nonce(
        seed in any::<[u8; 32]>(),
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 16),
    ) {
        let key = RoomKey::derive("nonces", &RoomSecret::parse("rm1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap());
        let mut seen: HashSet<[u8; 12]> = HashSet::with_capacity(SENDERS * SEALS_EACH);
        for s in 0..SENDERS {
            // Every tenth sender is a clone of the one before it: the same generator.
            let base = if s % 10 == 9 { s - 1 } else { s };
            let mut sender_seed = seed;
            sender_seed[..2].copy_from_slice(&(base as u16).to_be_bytes());
            let mut e = Entropy::from_seed(sender_seed);
            let id = format!("sender-{s}");
            for i in 0..SEALS_EACH {
                let mut p = payloads[i % payloads.len()].clone();
                p.extend_from_slice(&(i as u32).to_be_bytes());
                let sealed = key.seal(&mut e, "mesh:candidate", &id, "target", &p);
                prop_assert!(seen.insert(nonce(&sealed)), "nonce repeated at sender {} seal {}", s, i);
            }
        }
        prop_assert_eq!(seen.len(), SENDERS * SEALS_EACH);
    }
}
