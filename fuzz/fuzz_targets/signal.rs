//! The signalling codec fed arbitrary text (the bytes, lossily made UTF-8): it never
//! panics, and whatever parses re-encodes to text that parses back to the same message
//! and re-encodes to the same text (our encoding is canonical). Tighter limits only
//! refuse: a message they accept parses as it does with the default limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_mesh_core::signal::{Signal, SignalLimits};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let limits = SignalLimits::default();
    let parsed = Signal::parse(&text, &limits);
    if let Ok(s) = &parsed {
        let once = s.encode();
        let back = Signal::parse(&once, &limits)
            .unwrap_or_else(|e| panic!("our encoding {once:?} of {text:?} does not parse: {e}"));
        assert_eq!(&back, s, "round trip of {text:?} through {once:?}");
        assert_eq!(back.encode(), once, "not canonical: {text:?}");
    }
    let mut tight = SignalLimits::default();
    tight.max_len = 256;
    tight.max_parts = 8;
    tight.max_depth = 3;
    if let Ok(s) = Signal::parse(&text, &tight) {
        assert_eq!(
            parsed.as_ref(),
            Ok(&s),
            "tighter limits changed the parse of {text:?}"
        );
    }
});
