//! What a member signs in a secured room: the exact bytes, the same in every
//! implementation. Each input starts with its own domain string, so a signature made
//! for one kind of message never checks as another.
//!
//! Announces and leaves are signed over what the switchboard sees (the tag, the id,
//! the ciphertext's hash), so that it can check an announcer holds the key without
//! knowing the room key. SDP is signed over the room id, both ends, the incarnation
//! and the exact SDP text: the DTLS fingerprint inside belongs to the signer, and the
//! signature does not move to another peer, room or negotiation.

use sha2::{Digest, Sha256};

/// `"rtc-mesh/v1/announce" 0x00 ‖ tag 0x00 ‖ id 0x00 ‖ ts (u64, big-endian) ‖ SHA-256(sealed)`
pub fn announce(tag: &str, id: &str, ts: u64, sealed: &str) -> Vec<u8> {
    let mut m = start(b"rtc-mesh/v1/announce", &[tag, id]);
    m.extend_from_slice(&ts.to_be_bytes());
    m.extend_from_slice(&Sha256::digest(sealed.as_bytes()));
    m
}

/// `"rtc-mesh/v1/leave" 0x00 ‖ tag 0x00 ‖ id 0x00 ‖ incarnation 0x00 ‖ ts (u64, big-endian)`
pub fn leave(tag: &str, id: &str, incarnation: &str, ts: u64) -> Vec<u8> {
    let mut m = start(b"rtc-mesh/v1/leave", &[tag, id, incarnation]);
    m.extend_from_slice(&ts.to_be_bytes());
    m
}

/// `"rtc-mesh/v1/sdp" 0x00 ‖ room_id (16) ‖ sender 0x00 ‖ target 0x00 ‖ incarnation 0x00 ‖
/// ts (u64, big-endian) ‖ kind 0x00 ‖ SHA-256(sdp)`, where `kind` is `offer` or `answer`.
pub fn sdp(
    room_id: &[u8; 16],
    sender: &str,
    target: &str,
    incarnation: &str,
    ts: u64,
    kind: &str,
    sdp: &str,
) -> Vec<u8> {
    let mut m = b"rtc-mesh/v1/sdp\0".to_vec();
    m.extend_from_slice(room_id);
    for part in [sender, target, incarnation] {
        m.extend_from_slice(part.as_bytes());
        m.push(0);
    }
    m.extend_from_slice(&ts.to_be_bytes());
    m.extend_from_slice(kind.as_bytes());
    m.push(0);
    m.extend_from_slice(&Sha256::digest(sdp.as_bytes()));
    m
}

/// `"rtc-mesh/v1/rekey" 0x00 ‖ room_id (16) ‖ epoch (u32, big-endian) ‖ SHA-256(key) ‖
/// SHA-256(prev) ‖ until (u64, big-endian) ‖ (removed id 0x00)*`: a `REKEY` line
/// ([`crate::security::Rekey`]).
pub fn rekey(
    room_id: &[u8; 16],
    epoch: u32,
    key: &[u8; 32],
    prev: &[u8; 32],
    until: u64,
    removed: &[String],
) -> Vec<u8> {
    let mut m = b"rtc-mesh/v1/rekey\0".to_vec();
    m.extend_from_slice(room_id);
    m.extend_from_slice(&epoch.to_be_bytes());
    m.extend_from_slice(&Sha256::digest(key));
    m.extend_from_slice(&Sha256::digest(prev));
    m.extend_from_slice(&until.to_be_bytes());
    for r in removed {
        m.extend_from_slice(r.as_bytes());
        m.push(0);
    }
    m
}

/// The domain, then each part followed by 0x00.
fn start(domain: &[u8], parts: &[&str]) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + 128);
    m.extend_from_slice(domain);
    m.push(0);
    for p in parts {
        m.extend_from_slice(p.as_bytes());
        m.push(0);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_in_the_input_and_the_kinds_never_collide() {
        let a = announce("tag", "id", 1, "sealed");
        assert_ne!(a, announce("tag", "id", 2, "sealed"));
        assert_ne!(a, announce("tag", "id", 1, "sealeD"));
        assert_ne!(a, announce("ta", "gid", 1, "sealed"));
        assert_ne!(leave("t", "i", "inc", 1), leave("t", "i", "inc2", 1));
        let r = [1; 16];
        let s = sdp(&r, "a", "b", "i", 5, "offer", "v=0");
        assert_ne!(s, sdp(&r, "a", "c", "i", 5, "offer", "v=0"));
        assert_ne!(s, sdp(&r, "a", "b", "i", 5, "answer", "v=0"));
        assert_ne!(s, sdp(&[2; 16], "a", "b", "i", 5, "offer", "v=0"));
        assert!(a.starts_with(b"rtc-mesh/v1/announce\0"));
        assert!(s.starts_with(b"rtc-mesh/v1/sdp\0"));
    }
}
