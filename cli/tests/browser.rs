//! Browser peers: the browser client's own tests in Node (the encoding vectors the Rust
//! implementation passes, and the store's rules), then Debian's Chromium and Firefox ESR,
//! headless, meshing with native `rtc-mesh join` processes through `rtc-mesh serve`
//! (web/tests/browser/browser-mesh.js says what is proven, a hostile switchboard among it:
//! web/tests/browser/hostile.js). scripts/test.sh installs the
//! browsers and the npm packages that drive them.

mod common;

use std::path::PathBuf;
use std::process::Command;

fn web_dir() -> PathBuf {
    common::repo().join("web")
}

#[test]
fn the_browser_client_passes_the_shared_vectors_in_node() {
    let out = Command::new("node")
        .current_dir(web_dir())
        .args(["--test", "tests/"])
        .output()
        .expect("node runs (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("# fail 0"), "{text}");
}

#[test]
fn the_type_declarations_check_and_the_package_ships_its_modules() {
    let tsc = Command::new("node")
        .current_dir(web_dir())
        .args(["node_modules/typescript/bin/tsc", "-p", "tsconfig.json"])
        .output()
        .expect("node runs (scripts/test.sh installs typescript with npm ci)");
    assert!(
        tsc.status.success(),
        "tsc: {}{}",
        String::from_utf8_lossy(&tsc.stdout),
        String::from_utf8_lossy(&tsc.stderr)
    );
    let pack = Command::new("npm")
        .current_dir(web_dir())
        .args(["pack", "--dry-run", "--json", "--loglevel=error"])
        .output()
        .expect("npm runs");
    let listing = String::from_utf8_lossy(&pack.stdout);
    assert!(pack.status.success(), "{listing}");
    let files: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.trim().strip_prefix("\"path\": \""))
        .map(|p| p.trim_end_matches(['"', ',']))
        .collect();
    for (path, _) in rtc_mesh_web::MODULES {
        assert!(files.contains(&&path[1..]), "{path} not packed: {files:?}");
    }
    for f in ["mesh.js", "mesh.d.ts", "index.html", "README.md"] {
        assert!(files.contains(&f), "{f} not packed: {files:?}");
    }
}

#[test]
fn chromium_firefox_and_native_peers_mesh() {
    let shots = std::env::temp_dir().join(format!("rtc-mesh-shots-{}", std::process::id()));
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .current_dir(common::browser_dir())
        .arg("browser-mesh.js")
        .args(["--rtc-mesh", env!("CARGO_BIN_EXE_rtc-mesh")])
        .arg("--shots")
        .arg(&shots)
        .output()
        .expect("node runs (scripts/test.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "{text}\n{err}");
    for proof in [
        "chromium: security vectors match core; 43 of 914 CCTV Ed25519 edge cases accepted",
        "firefox: security vectors match core; 43 of 914 CCTV Ed25519 edge cases accepted",
        "secured room: a native, a Chromium demo page (#secret=) and a Firefox page converged on 3 keys",
        "every update signed by its writer and checked by the others (WebCrypto and dalek), none refused",
        "a Chromium and a Firefox page with another secret met nobody and got nothing",
        "open room, native victim: linked to \"bob\" through the hostile switchboard",
        "open room, chromium victim: linked to \"bob\" through the hostile switchboard",
        "open room, firefox victim: linked to \"bob\" through the hostile switchboard",
        "secured room, native victim: 1 forged announce and 1 forged SDP",
        "secured room, chromium victim: 1 forged announce and 1 forged SDP",
        "secured room, firefox victim: 1 forged announce and 1 forged SDP",
        "a forging member (a Chromium page): its unsigned, not-owner and 20 forged updates were refused by the native and a Firefox page alike",
        "trio converged on 4 keys",
        "every link of the trio speaks postcard",
        "each page reports its links' paths",
        "chromium demo page: table",
        "firefox demo page: table",
        "page with 100,000 keys",
        "late native peer received all 4 keys",
        "a scuttlebutt Model over TCP to a native peer synced with the Chromium page both ways",
        "native reported it left",
        "never-pinging page closed: native reported it left",
        "network path of a native peer cut for 3 s: every link restarted, no leave",
        "network path of a native peer cut: the other native reported it left",
        "pages alone synced through each other",
        "close() sent its last 2000 writes first",
    ] {
        assert!(text.contains(proof), "missing {proof:?}:\n{text}\n{err}");
    }
    for engine in ["chromium", "firefox"] {
        let shot = shots.join(format!("demo-page-three-peers-{engine}.png"));
        assert!(std::fs::metadata(&shot).unwrap().len() > 1000, "a real PNG");
    }
    let _ = std::fs::remove_dir_all(&shots);
}
