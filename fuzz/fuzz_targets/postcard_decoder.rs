//! The postcard frame decoder: whole frames (message links) and a byte stream.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_mesh_core::{Codec, Decoder, Encoder, Framing, Limits, Message};

fuzz_target!(|data: &[u8]| {
    // As one frame of a message link: whatever decodes must re-encode and decode the same.
    let mut d = Decoder::new(Codec::Postcard, Framing::Messages, Limits::default());
    d.push(data);
    let mut msgs: Vec<Message> = Vec::new();
    while let Some(m) = d.poll_message() {
        if let Ok(m) = m {
            msgs.push(m);
        }
    }
    let mut e = Encoder::new(Codec::Postcard, Framing::Messages);
    for m in &msgs {
        e.message(m);
    }
    let mut d2 = Decoder::new(Codec::Postcard, Framing::Messages, Limits::default());
    while let Some(chunk) = e.poll_transmit() {
        d2.push(&chunk);
    }
    let mut again = Vec::new();
    while let Some(m) = d2.poll_message() {
        again.push(m.expect("our own encoding decodes"));
    }
    assert_eq!(again, msgs);

    // As a stream, after the magic, in two pieces.
    let mut s = Decoder::new(Codec::Postcard, Framing::Stream, Limits::default());
    s.push(b"RMP1");
    let (a, b) = data.split_at(data.len() / 2);
    s.push(a);
    s.push(b);
    while s.poll_message().is_some() {}
});
