//! Signalling server addresses: `ws://HOST[:PORT][/PATH]`, parsed by the `http` crate's
//! URI parser. Looking the host up is I/O, so it is the caller's: [`WsUrl::resolve`]
//! takes the resolver (std's `ToSocketAddrs`, an async one, or a fixed table in tests).
//!
//! ```
//! use rtc_mesh_core::url::WsUrl;
//!
//! let url = WsUrl::parse("ws://[::1]:3000/").unwrap();
//! assert_eq!(url.host_port(), "[::1]:3000");
//! assert_eq!(url.port(), 3000);
//! assert!(WsUrl::parse("http://example.org/").is_err());
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Why a signalling URL is not usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not `ws://HOST[:PORT][/PATH]`.
    #[error("bad signalling url {0:?}: expected ws://HOST:PORT/")]
    Bad(String),
    /// The host did not resolve.
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, io::Error),
}

/// A parsed `ws://` URL of a signalling server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsUrl {
    text: String,
    /// As written in the URL: IPv6 addresses keep their brackets.
    host: String,
    port: u16,
}

impl WsUrl {
    /// Parses `ws://HOST[:PORT][/PATH]` (port 80 when absent). `wss://`, user
    /// information and an empty host are refused.
    pub fn parse(text: &str) -> Result<WsUrl, UrlError> {
        let bad = || UrlError::Bad(text.to_owned());
        let uri: http::Uri = text.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("ws") {
            return Err(bad());
        }
        let authority = uri.authority().ok_or_else(bad)?;
        if authority.as_str().contains('@') || authority.host().is_empty() {
            return Err(bad());
        }
        // What follows the host: nothing, or `:PORT` (http's parser forgets a port
        // that does not fit 16 bits instead of refusing it).
        let port = match authority.as_str().strip_prefix(authority.host()) {
            Some("") => 80,
            Some(p) => p
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .ok_or_else(bad)?,
            None => return Err(bad()),
        };
        Ok(WsUrl {
            text: text.to_owned(),
            host: authority.host().to_owned(),
            port,
        })
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host, as written (IPv6 addresses in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (80 when the URL names none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `HOST:PORT`, the form `ToSocketAddrs` takes.
    pub fn host_port(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The server's address, from `resolve(HOST:PORT)` (the first address it gives).
    pub fn resolve(
        &self,
        resolve: impl FnOnce(&str) -> io::Result<Option<SocketAddr>>,
    ) -> Result<SocketAddr, UrlError> {
        let hp = self.host_port();
        match resolve(&hp) {
            Ok(Some(a)) => Ok(a),
            Ok(None) => Err(UrlError::Resolve(
                hp,
                io::Error::new(io::ErrorKind::NotFound, "no address"),
            )),
            Err(e) => Err(UrlError::Resolve(hp, e)),
        }
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_refuses_the_rest() {
        for (text, hp) in [
            ("ws://127.0.0.1:3000/", "127.0.0.1:3000"),
            ("ws://localhost/", "localhost:80"),
            ("ws://localhost", "localhost:80"),
            ("ws://[::1]:9/room?x=1", "[::1]:9"),
            ("ws://[::1]/", "[::1]:80"),
        ] {
            assert_eq!(WsUrl::parse(text).unwrap().host_port(), hp, "{text}");
        }
        for text in [
            "",
            "127.0.0.1:3000",
            "http://127.0.0.1/",
            "wss://127.0.0.1/",
            "ws://",
            "ws:///x",
            "ws://user@host/",
            "ws://host:99999/",
            "ws://ho st/",
        ] {
            assert!(
                matches!(WsUrl::parse(text), Err(UrlError::Bad(_))),
                "{text}"
            );
        }
    }

    #[test]
    fn resolution_is_the_callers() {
        let url = WsUrl::parse("ws://signal.test:3000/").unwrap();
        let addr: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        assert_eq!(
            url.resolve(|hp| {
                assert_eq!(hp, "signal.test:3000");
                Ok(Some(addr))
            })
            .unwrap(),
            addr
        );
        assert!(matches!(
            url.resolve(|_| Ok(None)),
            Err(UrlError::Resolve(..))
        ));
    }
}
