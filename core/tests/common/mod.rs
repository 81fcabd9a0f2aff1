//! What the vector, trace, sync and signed-update tests share.

#![allow(dead_code)] // each test file uses a part

pub mod wires;

use serde_json::Value as J;

/// Writes `doc` to `tests/vectors/<name>` (indented if `pretty`) with
/// `RTC_MESH_WRITE_TRACES` set; then, and always, checks that the stored file says
/// the same: what core does now is what the browser client is held to.
pub fn check_or_write(name: &str, doc: &J, pretty: bool) {
    let text = if pretty {
        serde_json::to_string_pretty(doc)
    } else {
        serde_json::to_string(doc)
    }
    .expect("JSON")
        + "\n";
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("RTC_MESH_WRITE_TRACES").is_some() {
        std::fs::write(&path, &text).expect("write the vectors");
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    let same = serde_json::from_str::<J>(&stored).is_ok_and(|a| &a == doc);
    assert!(
        same,
        "core no longer does what tests/vectors/{name} records; if that is meant, rewrite \
         it with RTC_MESH_WRITE_TRACES=1 and let the browser client's tests judge"
    );
}
