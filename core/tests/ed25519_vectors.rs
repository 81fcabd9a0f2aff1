//! Every Ed25519 edge case of C2SP/CCTV (`tests/vectors/cctv/`) gets the decision of the
//! one rule secured rooms share with the browser client: accepted exactly when the
//! vector's only flags are low-order *components* (points with a prime-order part,
//! which no blocklist can see and the cofactorless equation decides the same way
//! everywhere); every small-order, non-canonical or cofactor-only vector refused.

use rtc_mesh_core::security::PeerKey;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn the_cctv_vectors_get_the_shared_decision() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/cctv/ed25519vectors.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let vectors: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(vectors.len(), 914);
    let (mut accepted, mut refused) = (0, 0);
    for v in &vectors {
        let flags: Vec<&str> = v["flags"]
            .as_array()
            .map(|a| a.iter().map(|f| f.as_str().unwrap()).collect())
            .unwrap_or_default();
        let expect = flags
            .iter()
            .all(|f| matches!(*f, "low_order_component_A" | "low_order_component_R"));
        let key: [u8; 32] = unhex(v["key"].as_str().unwrap()).try_into().unwrap();
        let sig: [u8; 64] = unhex(v["sig"].as_str().unwrap()).try_into().unwrap();
        let msg = v["msg"].as_str().unwrap().as_bytes();
        let got = PeerKey::from_bytes(&key).is_ok_and(|k| k.verify(msg, &sig).is_ok());
        assert_eq!(got, expect, "vector {} {flags:?}", v["number"]);
        if got {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    // The split itself is part of the rule: a change of it must be deliberate.
    assert_eq!((accepted, refused), (ACCEPTED, 914 - ACCEPTED));
}

/// How many of the 914 vectors the rule accepts.
const ACCEPTED: usize = 43;
