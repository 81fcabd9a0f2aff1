//! The signalling codec: never panics, and whatever parses re-encodes to text that
//! parses back to the same message, and re-encodes to the same text (canonical).
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_mesh_core::signal::{Signal, SignalLimits};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let limits = SignalLimits::default();
    if let Ok(s) = Signal::parse(&text, &limits) {
        let once = s.encode();
        let back = Signal::parse(&once, &limits).expect("our own encoding parses");
        assert_eq!(back, s, "round trip of {text:?}");
        assert_eq!(back.encode(), once, "not canonical: {text:?}");
    }
});
