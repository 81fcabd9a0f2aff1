//! # rtc-mesh-web
//!
//! The browser client of rtc-mesh (`mesh.js`, an ES module) and its demo page
//! (`index.html`), as the text a switchboard serves on its port (`GET /mesh.js`,
//! `GET /`). The files are this package's own, so they travel with it when it is
//! packaged; `web/README.md` documents the client's API.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The browser client, an ES module.
pub const MESH_JS: &str = include_str!("../mesh.js");

/// The demo page; it loads `/mesh.js` and picks a room with `?room=NAME`.
pub const INDEX_HTML: &str = include_str!("../index.html");
