//! The scuttlebutt JSON-lines decoder, fed arbitrary bytes split into link messages.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_mesh_core::{Codec, Decoder, Framing, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let framing = if split & 1 == 0 {
        Framing::Stream
    } else {
        Framing::Messages
    };
    let mut d = Decoder::new(Codec::Json, framing, Limits::default());
    // Feed in pieces of a size chosen by the first byte: lines may span pieces.
    for piece in rest.chunks(1 + split as usize) {
        d.push(piece);
        while d.poll_message().is_some() {}
    }
    d.finish();
    while d.poll_message().is_some() {}
});
