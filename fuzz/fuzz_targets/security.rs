//! The secured-room decoders: any text as a room secret, a sealed payload, a peer id,
//! a signature and a `REKEY` line. Each gives a typed error or a value, never a panic; a sealed
//! payload that opens was sealed by this key for this command, sender and target.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_mesh_core::security::{Entropy, Identity, PeerKey, Rekey, RoomKey, RoomSecret};
use rtc_mesh_core::Limits;
use std::sync::OnceLock;

fn key() -> &'static (RoomKey, Identity) {
    static K: OnceLock<(RoomKey, Identity)> = OnceLock::new();
    K.get_or_init(|| {
        let mut e = Entropy::from_seed([9; 32]);
        let secret = RoomSecret::generate(&mut e);
        (RoomKey::derive("fuzz", &secret), Identity::generate(&mut e))
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (k, me) = key();
    // A passphrase would be stretched for a second per input: only parsed here.
    let _ = RoomSecret::parse(&text);
    if let Ok(plain) = k.open(&text, "mesh:sdp", "a", "b") {
        // Opened: then it reseals and opens to the same bytes.
        let mut e = Entropy::from_seed([1; 32]);
        let again = k.seal(&mut e, "mesh:sdp", "a", "b", &plain);
        assert_eq!(k.open(&again, "mesh:sdp", "a", "b").unwrap(), plain);
    }
    if let Ok(r) = Rekey::parse(text.strip_prefix("REKEY ").unwrap_or(&text), &Limits::default()) {
        // Read: it writes back to a line that reads the same, and is checked without a
        // panic (the seeds' line is genuine for this room and passes).
        assert_eq!(Rekey::parse(&r.to_json(), &Limits::default()).as_ref(), Ok(&r));
        let _ = r.check(k, 1_795_713_876_272, |id| id.len() % 2 == 0);
        if r.verify(k).is_ok() {
            let _ = r.key_of(k).tag().len() + r.previous_of(k).tag().len();
        }
    }
    if let Ok(pk) = PeerKey::from_peer_id(&text) {
        assert_eq!(pk.peer_id(), &*text);
    }
    // The bytes as a signature of themselves by a fixed key, and by a key read from them.
    let _ = me.public().verify_text(data, &text);
    if data.len() >= 96 {
        let key: [u8; 32] = data[..32].try_into().unwrap();
        let sig: [u8; 64] = data[32..96].try_into().unwrap();
        if let Ok(pk) = PeerKey::from_bytes(&key) {
            let _ = pk.verify(&data[96..], &sig);
        }
    }
});
