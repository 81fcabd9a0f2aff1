//! A replica's link fed arbitrary bytes: no panic, and the store stays consistent. The
//! first byte picks the codec (bit 0), the framing (bit 1), the piece size (bits 2-6)
//! and a secured store (bit 7: signed updates, checked; every entry must then hold a
//! signature that checks for its writer).
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use rtc_mesh_core::{Codec, Framing, Replica, ReplicaOutput, Store, StoreConfig};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let codec = if mode & 1 == 0 {
        Codec::Json
    } else {
        Codec::Postcard
    };
    let framing = if mode & 2 == 0 {
        Framing::Stream
    } else {
        Framing::Messages
    };
    let t0 = Instant::now();
    let secured = mode & 0x80 != 0;
    let me = rtc_mesh_core::security::Identity::from_seed(&[5; 32]);
    let mut config = StoreConfig::new("fuzz", 1_795_713_876_272.0, t0);
    if secured {
        config = StoreConfig::new(format!("{}.fuzz", me.peer_id()), 1_795_713_876_272.0, t0);
        config.guard = Some(rtc_mesh_core::security::updates::UpdateGuard::new([3; 16], me));
    }
    let store = Store::new(config).unwrap();
    let mut r = Replica::new(store);
    r.set(t0, "mine", &1.0.into()).unwrap();
    let link = r.open_link(codec, framing);
    let other = r.open_link(Codec::Json, Framing::Stream);
    for (i, piece) in rest.chunks(1 + ((mode >> 2) & 0x1f) as usize * 8).enumerate() {
        r.handle_input(t0 + Duration::from_millis(i as u64), link, piece);
        while !matches!(r.poll_output(), ReplicaOutput::Timeout(_)) {}
    }
    r.handle_end(t0, link);
    while !matches!(r.poll_output(), ReplicaOutput::Timeout(_)) {}
    let s = r.store();
    assert_eq!(s.keys().count(), s.len());
    assert!(s.get("mine").is_some() || s.entry("mine").is_some());
    if secured {
        use rtc_mesh_core::security::updates::{signing_input, writer_of};
        for k in s.keys() {
            let e = s.entry(k).expect("listed");
            let key = rtc_mesh_core::security::PeerKey::from_peer_id(writer_of(e.source).expect("a writer"))
                .expect("a key");
            key.verify(&signing_input(&[3; 16], e), e.sig.expect("signed"))
                .expect("signed by its writer");
        }
    }
    let _ = other;
});
