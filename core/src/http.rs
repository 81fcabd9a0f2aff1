//! The little HTTP a switchboard port speaks, as pure functions both runtimes' servers
//! call: a request head parsed with `httparse` and routed ([`parse_head`] gives a
//! [`Route`]: a WebSocket upgrade, `GET /health`, the demo page and its browser client
//! from the `rtc-mesh-web` package (`GET /`, `GET /mesh.js`, `GET /lib/NAME.js`), or a
//! refusal), and the responses as text. The WebSocket accept key is computed by the server's WebSocket
//! crate and handed to [`upgrade_response`].

use std::time::Duration;

/// Longest request head accepted, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;

/// How long a new connection may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// A WebSocket upgrade, with the `Sec-WebSocket-Key`.
    Upgrade {
        /// The client's key.
        key: String,
        /// The `token` parameter of the URL's query, if any (see
        /// [`crate::security::token`]).
        token: Option<String>,
    },
    /// `GET /health`.
    Health,
    /// An embedded file: the demo page or the browser client.
    Asset(Asset),
    /// Anything else: answer with this status line and close.
    Refuse(&'static str),
}

/// A file of the web package, served on the switchboard's port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset {
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its text.
    pub body: &'static str,
}

/// The demo page (`GET /`, `GET /index.html`): pick a room with `?room=NAME`.
pub static INDEX_HTML: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: rtc_mesh_web::INDEX_HTML,
};

/// The browser client, an ES module (`GET /mesh.js`).
pub static MESH_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: rtc_mesh_web::MESH_JS,
};

/// Parses a request head from `buf`: `Ok(None)` while incomplete, else the request
/// and the head's length (bytes after it belong to the WebSocket).
pub fn parse_head(buf: &[u8]) -> Result<Option<(Route, usize)>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err("431 Request Header Fields Too Large")
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("400 Bad Request"),
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let (path, query) = req
        .path
        .unwrap_or("/")
        .split_once('?')
        .unwrap_or((req.path.unwrap_or("/"), ""));
    if req.method != Some("GET") {
        return Ok(Some((Route::Refuse("405 Method Not Allowed"), n)));
    }
    let upgrade = header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    if upgrade {
        return Ok(Some((
            match header("sec-websocket-key") {
                Some(k) if header("sec-websocket-version") == Some("13") => Route::Upgrade {
                    key: k.trim().to_owned(),
                    token: query_param(query, "token"),
                },
                _ => Route::Refuse("400 Bad Request"),
            },
            n,
        )));
    }
    Ok(Some((
        match path {
            "/health" => Route::Health,
            "/" | "/index.html" => Route::Asset(INDEX_HTML),
            "/mesh.js" => Route::Asset(MESH_JS),
            _ => match rtc_mesh_web::MODULES.iter().find(|(p, _)| *p == path) {
                Some((_, body)) => Route::Asset(Asset {
                    content_type: MESH_JS.content_type,
                    body,
                }),
                None => Route::Refuse("404 Not Found"),
            },
        },
        n,
    )))
}

/// The value of `name` in a URL query (`a=1&token=T`), verbatim (a token's
/// characters, base64url and `.`, need no escaping); the first one counts.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| v.to_owned())
    })
}

/// A status as a status line's text (`401 Unauthorized`), as a client reports a
/// refused upgrade.
pub fn status_line(status: http::StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
}

/// The `101 Switching Protocols` answer to an upgrade, given the accept key derived
/// from the client's `Sec-WebSocket-Key` (tungstenite's `derive_accept_key`).
pub fn upgrade_response(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}

/// A complete response with a JSON body (the connection closes after it).
pub fn json_response(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A complete response carrying `asset` (the connection closes after it).
pub fn asset_response(asset: &Asset) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n{}",
        asset.content_type,
        asset.body.len(),
        asset.body
    )
}

/// A complete error response.
pub fn error_response(status: &str) -> String {
    let body = format!("{status}\n");
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The WebSocket settings of a switchboard connection: small buffers (most connections
/// are idle), and frames up to four times the switchboard's limit (larger ones close
/// the connection; smaller oversize ones are counted and dropped by the switchboard).
/// Each server maps them onto its WebSocket crate's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WsLimits {
    /// Read buffer, in bytes.
    pub read_buffer: usize,
    /// Write buffer, in bytes (0: write each frame at once).
    pub write_buffer: usize,
    /// Most bytes waiting to be written before a write fails.
    pub max_write_buffer: usize,
    /// Largest message and largest frame read.
    pub max_frame: usize,
}

impl WsLimits {
    /// The limits for a switchboard whose largest message is `max_message` bytes.
    pub fn for_switchboard(max_message: usize) -> Self {
        WsLimits {
            read_buffer: 1024,
            write_buffer: 0,
            max_write_buffer: 16 << 20,
            max_frame: 4 * max_message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upgrades_health_and_junk() {
        let up = b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nxy";
        let (r, n) = parse_head(up).unwrap().unwrap();
        assert_eq!(
            r,
            Route::Upgrade {
                key: "dGhlIHNhbXBsZSBub25jZQ==".into(),
                token: None,
            }
        );
        let with_token = String::from_utf8_lossy(up).replace("GET / ", "GET /?room=x&token=a.b.c ");
        let (r, _) = parse_head(with_token.as_bytes()).unwrap().unwrap();
        assert!(matches!(r, Route::Upgrade { token: Some(t), .. } if t == "a.b.c"));
        assert_eq!(query_param("token", "token"), Some(String::new()));
        assert_eq!(
            query_param("a=1&token=x&token=y", "token"),
            Some("x".into())
        );
        assert_eq!(query_param("tokens=x", "token"), None);
        assert_eq!(&up[n..], b"xy");
        assert!(upgrade_response("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            .contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
        let h = b"GET /health HTTP/1.1\r\n\r\n";
        assert_eq!(parse_head(h).unwrap().unwrap().0, Route::Health);
        for (path, asset) in [
            ("/", INDEX_HTML),
            ("/?room=x", INDEX_HTML),
            ("/mesh.js", MESH_JS),
        ] {
            let h = format!("GET {path} HTTP/1.1\r\n\r\n");
            assert_eq!(
                parse_head(h.as_bytes()).unwrap().unwrap().0,
                Route::Asset(asset)
            );
        }
        assert!(asset_response(&MESH_JS).contains("Content-Type: text/javascript"));
        // Every module mesh.js imports is served, and nothing beside them.
        let imports: Vec<&str> = MESH_JS
            .body
            .lines()
            .filter_map(|l| l.split_once(" from '.").map(|(_, p)| p))
            .collect();
        assert_eq!(imports.len(), rtc_mesh_web::MODULES.len());
        for rest in imports {
            let path = rest.split('\'').next().unwrap();
            let h = format!("GET {path} HTTP/1.1\r\n\r\n");
            let Route::Asset(a) = parse_head(h.as_bytes()).unwrap().unwrap().0 else {
                panic!("{path} is not served")
            };
            assert!(a.body.contains("export"), "{path}");
        }
        let h = b"GET /lib/../mesh.js HTTP/1.1\r\n\r\n";
        assert_eq!(
            parse_head(h).unwrap().unwrap().0,
            Route::Refuse("404 Not Found")
        );
        assert_eq!(parse_head(b"GET /he").unwrap(), None);
        assert!(parse_head(b"\x00\x01garbage\r\n\r\n").is_err());
        assert_eq!(
            parse_head(b"POST / HTTP/1.1\r\n\r\n").unwrap().unwrap().0,
            Route::Refuse("405 Method Not Allowed")
        );
        assert_eq!(
            parse_head(b"GET /x HTTP/1.1\r\n\r\n").unwrap().unwrap().0,
            Route::Refuse("404 Not Found")
        );
    }
}
