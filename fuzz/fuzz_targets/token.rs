//! The switchboard's gate decoders: any text as an admission token (an HS256 JWT) and
//! any bytes as a request head (whose query carries it). Each gives a typed error or
//! a value, never a panic; a token that checks names claims that issue a token that
//! checks too, and only a token of the key checks.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rtc_mesh_core::http::{parse_head, Route};
use rtc_mesh_core::security::token::TokenKey;

fuzz_target!(|data: &[u8]| {
    let key = TokenKey::new(&[7; 32]).unwrap();
    let text = String::from_utf8_lossy(data);
    if let Ok(claims) = key.verify(&text, 1_000) {
        assert!(claims.exp > 1_000);
        assert!(key.verify(&key.issue(&claims), 1_000).is_ok());
        let other = TokenKey::new(&[8; 32]).unwrap();
        assert!(other.verify(&text, 1_000).is_err());
    }
    if let Ok(Some((Route::Upgrade { token: Some(t), .. }, n))) = parse_head(data) {
        assert!(n <= data.len());
        let _ = key.verify(&t, 0);
    }
});
