//! Value decoders: the binary encoding (canonical: decode then encode gives the same
//! bytes) and JSON text.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_mesh_core::{EncodedValue, Limits, Value};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(e) = EncodedValue::from_bytes(data, &limits) {
        let v = e.to_value().expect("checked bytes decode");
        assert_eq!(EncodedValue::from_value(&v).as_bytes(), data);
        let json = e.to_json();
        assert_eq!(Value::from_json(&json).expect("our JSON parses"), v);
    }
    if let Ok(v) = Value::from_json_with(data, &limits) {
        let json = v.to_json();
        assert_eq!(Value::from_json(&json).expect("our JSON parses"), v);
    }
});
