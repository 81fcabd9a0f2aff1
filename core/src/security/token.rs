//! Admission tokens for a switchboard: JSON Web Tokens (RFC 7519) in the compact JWS
//! form, MAC'd with HS256 (HMAC-SHA-256) under a secret the switchboard's operator
//! holds (`rtc-mesh serve --token-secret K`; `rtc-mesh token` issues them).
//!
//! A token names one room and an expiry, `{"room":ROOM,"exp":UNIX_SECONDS}` (the room
//! as the switchboard sees it: the tag of a secured room, the name of an open one).
//! Clients send it as `?token=` on the WebSocket URL, since a page cannot set headers
//! on a WebSocket; the switchboard checks it before the upgrade (and the room at the
//! announce).
//!
//! [`TokenKey::verify`] is strict and bounded: at most [`MAX_TOKEN_LEN`] bytes, three
//! base64url parts without padding, a header whose `alg` is exactly `HS256` (so
//! `none`, another algorithm and an unknown `crit` are refused before any MAC is
//! computed), the MAC compared in constant time, claims with a `room` and an integer
//! `exp` still in the future. The parts are decoded by the `base64` and `serde_json`
//! crates and the MAC is RustCrypto's `hmac`; `jsonwebtoken` was weighed and left
//! out, because its crypto is a process-wide provider an embedding program may
//! already have chosen, and its RustCrypto provider builds RSA and ECDSA for this
//! one MAC.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{b64url, from_b64url};

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 2048;

/// Shortest token secret accepted, in bytes (RFC 7518 §3.2 asks for a key at least
/// as long as the hash, 32 bytes).
pub const MIN_SECRET_LEN: usize = 32;

/// What a token grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The room (as the switchboard sees it: a secured room's tag).
    pub room: String,
    /// Expiry, in seconds since the Unix epoch: the token is refused from then on.
    pub exp: u64,
}

/// Why a token is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token longer than {MAX_TOKEN_LEN} bytes")]
    TooLong,
    /// Not three base64url parts with a JSON header and JSON claims.
    #[error("malformed token")]
    Malformed,
    /// The header names another algorithm than HS256 (`none` included), or a
    /// critical extension.
    #[error("token algorithm {0:?} refused: only HS256")]
    Algorithm(String),
    /// The MAC does not check (another secret, or the token was changed).
    #[error("token signature does not check")]
    Signature,
    /// Past its `exp`.
    #[error("token expired")]
    Expired,
    /// Valid, but for another room.
    #[error("token is for another room")]
    OtherRoom,
    /// A secret shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("token secret shorter than {MIN_SECRET_LEN} bytes")]
    WeakSecret,
}

impl TokenError {
    /// A short stable name, for counters and error events.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::TooLong | TokenError::Malformed => "token_malformed",
            TokenError::Algorithm(_) => "token_algorithm",
            TokenError::Signature => "token_signature",
            TokenError::Expired => "token_expired",
            TokenError::OtherRoom => "token_other_room",
            TokenError::WeakSecret => "token_weak_secret",
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// The secret tokens are made and checked with.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key over these secret bytes, at least [`MIN_SECRET_LEN`] of them.
    pub fn new(secret: &[u8]) -> Result<TokenKey, TokenError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(TokenError::WeakSecret);
        }
        Ok(TokenKey(Zeroizing::new(secret.to_vec())))
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }

    /// A token for these claims: `{"alg":"HS256","typ":"JWT"}`, the claims, the MAC.
    pub fn issue(&self, claims: &Claims) -> String {
        let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = b64url(&serde_json::to_vec(claims).expect("claims serialise"));
        let signing_input = format!("{header}.{body}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{signing_input}.{}", b64url(&tag))
    }

    /// The claims of `token` if it is valid at `unix_secs` (see the module docs for
    /// the rules, in the order they are applied).
    pub fn verify(&self, token: &str, unix_secs: u64) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLong);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(b), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = from_b64url(h)
            .and_then(|j| serde_json::from_slice(&j).ok())
            .ok_or(TokenError::Malformed)?;
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm(header.alg.chars().take(32).collect()));
        }
        if header.crit.is_some() {
            return Err(TokenError::Algorithm("HS256 with crit".into()));
        }
        let sig = from_b64url(s).ok_or(TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(&token.as_bytes()[..h.len() + 1 + b.len()]);
        mac.verify_slice(&sig).map_err(|_| TokenError::Signature)?;
        let claims: Claims = from_b64url(b)
            .and_then(|j| serde_json::from_slice(&j).ok())
            .ok_or(TokenError::Malformed)?;
        if unix_secs >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(&[7; 32]).unwrap()
    }

    fn claims() -> Claims {
        Claims {
            room: "lobby".into(),
            exp: 2_000,
        }
    }

    /// A token with this header and claims text, MAC'd with `key`.
    fn forged(key: &TokenKey, header: &str, claims: &str) -> String {
        let input = format!(
            "{}.{}",
            b64url(header.as_bytes()),
            b64url(claims.as_bytes())
        );
        let mut mac = key.mac();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64url(&mac.finalize().into_bytes()))
    }

    #[test]
    fn a_token_checks_until_it_expires() {
        let t = key().issue(&claims());
        assert_eq!(key().verify(&t, 1_999), Ok(claims()));
        assert_eq!(key().verify(&t, 2_000), Err(TokenError::Expired));
        // RFC 7515's example shape: three parts, a JSON header naming HS256.
        assert_eq!(t.split('.').count(), 3);
        assert!(t.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
    }

    #[test]
    fn none_other_algorithms_tampering_and_other_secrets_are_refused() {
        let k = key();
        let body = r#"{"room":"lobby","exp":2000}"#;
        // alg none, with and without a signature part.
        let none = format!(
            "{}.{}.",
            b64url(br#"{"alg":"none"}"#),
            b64url(body.as_bytes())
        );
        assert_eq!(
            k.verify(&none, 0),
            Err(TokenError::Algorithm("none".into()))
        );
        let none_sig = forged(&k, r#"{"alg":"none"}"#, body);
        assert!(matches!(
            k.verify(&none_sig, 0),
            Err(TokenError::Algorithm(_))
        ));
        for alg in ["HS512", "hs256", "RS256", "EdDSA"] {
            let t = forged(&k, &format!(r#"{{"alg":"{alg}"}}"#), body);
            assert_eq!(k.verify(&t, 0), Err(TokenError::Algorithm(alg.into())));
        }
        let crit = forged(&k, r#"{"alg":"HS256","crit":["b64"]}"#, body);
        assert!(matches!(k.verify(&crit, 0), Err(TokenError::Algorithm(_))));
        // Tampered claims under the old MAC.
        let t = k.issue(&claims());
        let mut p: Vec<&str> = t.split('.').collect();
        let other = b64url(br#"{"room":"other","exp":2000}"#);
        p[1] = &other;
        assert_eq!(k.verify(&p.join("."), 0), Err(TokenError::Signature));
        // Another secret.
        let k2 = TokenKey::new(&[8; 32]).unwrap();
        assert_eq!(k2.verify(&t, 0), Err(TokenError::Signature));
        // A truncated or another MAC.
        assert!(k.verify(&t[..t.len() - 2], 0).is_err());
        let (input, _) = t.rsplit_once('.').unwrap();
        for other in [b64url(&[0; 32]), b64url(&[0; 16]), String::new()] {
            let t = format!("{input}.{other}");
            assert_eq!(k.verify(&t, 0), Err(TokenError::Signature));
        }
        // Shapes.
        for bad in ["", "a", "a.b", "a.b.c.d", "..", "e30.e30.", "!!.e30.AA"] {
            assert!(k.verify(bad, 0).is_err(), "{bad:?}");
        }
        assert_eq!(
            k.verify(&"a".repeat(MAX_TOKEN_LEN + 1), 0),
            Err(TokenError::TooLong)
        );
        // Claims of the wrong types, or duplicated.
        for body in [
            r#"{"room":"lobby","exp":"2000"}"#,
            r#"{"room":1,"exp":2000}"#,
            r#"{"room":"lobby"}"#,
            r#"{"room":"lobby","exp":2000.5}"#,
            r#"{"room":"lobby","exp":-1}"#,
            r#"{"room":"a","room":"b","exp":2000}"#,
        ] {
            let t = forged(&k, r#"{"alg":"HS256"}"#, body);
            assert_eq!(k.verify(&t, 0), Err(TokenError::Malformed), "{body}");
        }
        assert_eq!(TokenKey::new(&[1; 31]).err(), Some(TokenError::WeakSecret));
    }
}
