//! # rtc-mesh-web
//!
//! The browser client of rtc-mesh (`mesh.js`, an ES module, and the modules under
//! `lib/` it re-exports) and its demo page (`index.html`), as the text a switchboard
//! serves on its port (`GET /mesh.js`, `GET /lib/NAME.js`, `GET /`). The files are this
//! package's own, so they travel with it when it is packaged; `web/README.md` documents
//! the client's API.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// The browser client, an ES module.
pub const MESH_JS: &str = include_str!("../mesh.js");

/// The client's modules, each under the path `mesh.js` imports it from.
pub const MODULES: &[(&str, &str)] = &[
    ("/lib/values.js", include_str!("../lib/values.js")),
    ("/lib/store.js", include_str!("../lib/store.js")),
    ("/lib/codecs.js", include_str!("../lib/codecs.js")),
    ("/lib/postcard.js", include_str!("../lib/postcard.js")),
    ("/lib/session.js", include_str!("../lib/session.js")),
    ("/lib/replica.js", include_str!("../lib/replica.js")),
    ("/lib/signal.js", include_str!("../lib/signal.js")),
    (
        "/lib/signal-client.js",
        include_str!("../lib/signal-client.js"),
    ),
    ("/lib/mesh.js", include_str!("../lib/mesh.js")),
    ("/lib/member.js", include_str!("../lib/member.js")),
    ("/lib/security.js", include_str!("../lib/security.js")),
    ("/lib/secured.js", include_str!("../lib/secured.js")),
    ("/lib/updates.js", include_str!("../lib/updates.js")),
    ("/lib/rekeying.js", include_str!("../lib/rekeying.js")),
    ("/lib/persist.js", include_str!("../lib/persist.js")),
    ("/lib/storage.js", include_str!("../lib/storage.js")),
];

/// The demo page; it loads `/mesh.js` and picks a room with `?room=NAME`.
pub const INDEX_HTML: &str = include_str!("../index.html");

#[cfg(test)]
mod tests {
    #[test]
    fn every_module_under_lib_is_served() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/lib");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| format!("/lib/{}", e.unwrap().file_name().to_string_lossy()))
            .filter(|p| p.ends_with(".js"))
            .collect();
        files.sort();
        let mut served: Vec<String> = super::MODULES.iter().map(|(p, _)| p.to_string()).collect();
        served.sort();
        assert_eq!(files, served);
    }
}
