//! A replica's link fed arbitrary bytes: no panic, and the store stays consistent.
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
    let store = Store::new(StoreConfig::new("fuzz", 1_795_713_876_272.0, t0)).unwrap();
    let mut r = Replica::new(store);
    r.set(t0, "mine", &1.0.into()).unwrap();
    let link = r.open_link(codec, framing);
    let other = r.open_link(Codec::Json, Framing::Stream);
    for (i, piece) in rest.chunks(1 + (mode >> 2) as usize * 8).enumerate() {
        r.handle_input(t0 + Duration::from_millis(i as u64), link, piece);
        while !matches!(r.poll_output(), ReplicaOutput::Timeout(_)) {}
    }
    r.handle_end(t0, link);
    while !matches!(r.poll_output(), ReplicaOutput::Timeout(_)) {}
    let s = r.store();
    assert_eq!(s.keys().count(), s.len());
    assert!(s.get("mine").is_some() || s.entry("mine").is_some());
    let _ = other;
});
