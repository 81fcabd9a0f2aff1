//! Durable members (`--data DIR`): acknowledged writes survive `kill -9` at any moment,
//! one process holds a directory, damage is named and `--repair` keeps the prefix, and
//! a member that comes back with its directory serves a newcomer everything.
//!
//! The kill loop runs `RTC_MESH_KILLS` lives of `RTC_MESH_BURST` writes each (default
//! 40 of 300; the README's figure: 1000 of 40): each life restores the directory, checks that every write an
//! earlier life acknowledged (its `update` event with `local: true` printed) is there
//! with its value, writes a burst, and is killed (SIGKILL) after a varying number of
//! acknowledgements, in the middle of its writes. Lives alternate runtimes and
//! durability levels.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{rtc_mesh, Peer};
use serde_json::{json, Value};

fn data_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rtc-mesh-durable-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Whether `held` is the acknowledged write `acked` or a later one of the same key
/// (a write may be durable before its acknowledgement is printed).
fn holds(held: Option<&Value>, acked: &Value) -> bool {
    let at = |v: &Value| (v["life"].as_u64(), v["j"].as_u64());
    held.is_some_and(|h| at(h) >= at(acked))
}

fn replicate(name: &str, dir: &std::path::Path, extra: &[&str]) -> Peer {
    let mut c = rtc_mesh();
    c.args(["replicate", "--listen", "127.0.0.1:0", "--json", "--data"])
        .arg(dir)
        .args(extra);
    Peer::spawn(name, c)
}

#[test]
fn acknowledged_writes_survive_kill_9_at_any_moment() {
    let lives: u64 = std::env::var("RTC_MESH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let dir = data_dir("kills");
    let mut acked: BTreeMap<String, Value> = BTreeMap::new();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // Writes per life (RTC_MESH_BURST, default 300).
    let burst: u64 = std::env::var("RTC_MESH_BURST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    // Lives that started from a snapshot (the log compacted under the kills).
    let mut from_snapshot = 0;
    // Acknowledgements seen, over all lives (`acked` keeps the last of each key).
    let mut acks = 0u64;
    for life in 0..lives {
        let snapshot = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("snap-")));
        from_snapshot += u64::from(snapshot);
        let runtime = if life % 2 == 0 { "smol" } else { "std" };
        let level = if life % 4 < 2 { "process" } else { "power" };
        let mut p = replicate(
            &format!("life {life}"),
            &dir,
            &["--runtime", runtime, "--durability", level],
        );
        p.wait_event("ready");
        let held = p.dump();
        for (k, v) in &acked {
            assert!(
                holds(held.get(k), v),
                "life {life} ({runtime}, {level}): acknowledged {k} = {v} lost (held {:?})",
                held.get(k)
            );
        }
        // A burst in one write; killed after `stop` acknowledgements.
        let stop = next() % burst;
        let lines: Vec<String> = (0..burst)
            .map(|j| {
                // Half new keys, half overwrites (garbage for compaction).
                let key = if j % 2 == 0 {
                    format!("w{life}-{j}")
                } else {
                    format!("o{}", j % 50)
                };
                json!({"op": "set", "key": key, "value": {"life": life, "j": j}}).to_string()
            })
            .collect();
        p.send_raw(&lines.join("\n"));
        let mut seen = 0;
        while seen < stop {
            let e = p.wait_for("an acknowledged write", |v| {
                v["event"] == "update" && v["local"] == true
            });
            acked.insert(e["key"].as_str().unwrap().to_owned(), e["value"].clone());
            seen += 1;
            acks += 1;
        }
        p.kill();
    }
    // The last life's writes, once more.
    let mut p = replicate("after", &dir, &[]);
    p.wait_event("ready");
    let held = p.dump();
    let lost = acked
        .iter()
        .filter(|(k, v)| !holds(held.get(k.as_str()), v))
        .count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} keys lost an acknowledged write",
        acked.len()
    );
    eprintln!(
        "durable: {lives} lives killed at random moments ({from_snapshot} started from a snapshot), {acks} acknowledged writes to {} keys, 0 lost",
        acked.len()
    );
    if lives >= 10 {
        assert!(from_snapshot > 0, "the log was never compacted");
    }
    p.close();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts a replicator on `dir` that must refuse to start: its error.
fn refused(dir: &std::path::Path) -> String {
    let out = rtc_mesh()
        .args(["replicate", "--listen", "127.0.0.1:0", "--json", "--data"])
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}

#[test]
fn one_process_per_directory_damage_is_named_and_repair_keeps_the_prefix() {
    let dir = data_dir("damage");
    let mut a = replicate("first", &dir, &[]);
    a.wait_event("ready");
    a.send(json!({"op": "set", "key": "k", "value": 1}));
    a.wait_update("k", &json!(1));
    // A second process on the directory: refused, naming it.
    let err = refused(&dir);
    assert!(
        err.contains("in use by another process") && err.contains(&*dir.to_string_lossy()),
        "{err}"
    );
    assert!(a.close().success());
    // A second life: the first life's segment is sealed now.
    let mut b = replicate("second", &dir, &[]);
    b.wait_event("ready");
    b.send(json!({"op": "set", "key": "j", "value": 2}));
    b.wait_update("j", &json!(2));
    assert!(b.close().success());
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    let first = &segs[0];
    let mut bytes = std::fs::read(first).unwrap();
    let at = bytes.len() - 5;
    bytes[at] ^= 0xff;
    std::fs::write(first, &bytes).unwrap();
    let err = refused(&dir);
    assert!(
        err.contains(&*first.to_string_lossy())
            && err.contains("damaged at byte")
            && err.contains("--repair"),
        "{err}"
    );
    // Repaired: what came before the damage is kept, the rest goes.
    let mut c = replicate("repaired", &dir, &["--repair"]);
    c.wait_event("ready");
    assert_eq!(c.dump(), json!({}), "k's record was the damaged one");
    assert!(c.close().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_member_back_with_its_directory_serves_a_newcomer_everything() {
    let dir = data_dir("empty-room");
    let mut a = replicate("a", &dir, &["--durability", "power"]);
    a.wait_event("ready");
    for i in 0..50 {
        a.send(json!({"op": "set", "key": format!("k{i}"), "value": i}));
    }
    a.wait_update("k49", &json!(49));
    let want = a.dump();
    // Everyone leaves; the room is empty.
    assert!(a.close().success());
    let mut a = replicate("a again", &dir, &[]);
    let addr = a.ready_addr();
    assert_eq!(a.dump(), want);
    let mut c = rtc_mesh();
    c.args(["replicate", "--connect", &addr, "--json"]);
    let mut newcomer = Peer::spawn("newcomer", c);
    newcomer.wait_event("ready");
    newcomer.wait_update("k49", &json!(49));
    assert_eq!(newcomer.dump(), want);
    assert!(newcomer.close().success());
    assert!(a.close().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A room member with a data directory (`join --data`): every member leaves, one comes
/// back with its directory, alone, and has the room's data at once; a member that joins
/// then gets it from that one, only the difference for a member with its own directory.
#[test]
fn a_room_member_keeps_the_room_s_data_across_an_empty_room() {
    let (_server, url) = common::serve();
    let (da, db) = (data_dir("room-a"), data_dir("room-b"));
    let join = |name: &str, dir: Option<&std::path::Path>, runtime: &str| {
        let mut c = rtc_mesh();
        c.args(["join", "vault", "--signal", &url, "--runtime", runtime]);
        c.args(["--json", "--bind", "127.0.0.1:0"]);
        if let Some(d) = dir {
            c.arg("--data").arg(d);
        }
        Peer::spawn(name, c)
    };
    let mut a = join("a", Some(&da), "smol");
    let mut b = join("b", Some(&db), "std");
    a.wait_event("ready");
    b.wait_event("ready");
    a.send(json!({"op": "set", "key": "from-a", "value": 1}));
    b.send(json!({"op": "set", "key": "from-b", "value": 2}));
    a.wait_update("from-b", &json!(2));
    b.wait_update("from-a", &json!(1));
    assert!(a.close().success());
    assert!(b.close().success());
    // The room is empty. a comes back alone: the data is there before any peer.
    let mut a = join("a again", Some(&da), "std");
    a.wait_event("ready");
    assert_eq!(a.dump(), json!({"from-a": 1, "from-b": 2}));
    a.send(json!({"op": "set", "key": "while-b-away", "value": 3}));
    a.wait_update("while-b-away", &json!(3));
    // A newcomer (no directory) gets everything from a.
    let mut n = join("newcomer", None, "smol");
    n.wait_update("while-b-away", &json!(3));
    assert_eq!(
        n.dump(),
        json!({"from-a": 1, "from-b": 2, "while-b-away": 3})
    );
    // b comes back with its directory: it has its old data, and is sent only what it
    // lacks (one update from a, and one from the newcomer, which has it too).
    let mut b = join("b again", Some(&db), "smol");
    b.wait_event("ready");
    assert_eq!(b.dump(), json!({"from-a": 1, "from-b": 2}));
    b.wait_update("while-b-away", &json!(3));
    b.send(json!({"op": "stats"}));
    let st = b.wait_event("stats");
    let applied = st["store"]["applied"].as_u64().unwrap();
    assert_eq!(applied, 1, "only the difference is applied: {st}");
    for p in [a, b, n] {
        assert!(p.close().success());
    }
    let _ = std::fs::remove_dir_all(&da);
    let _ = std::fs::remove_dir_all(&db);
}

/// A full disk (a 1 MiB tmpfs): the member stops with an error naming the file and the
/// cause, and every write it acknowledged before is there when it starts again (the
/// disk given room).
#[test]
fn a_full_disk_stops_the_member_with_a_clear_error_and_loses_nothing_acknowledged() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::process::{Command, Stdio};
    let dir = data_dir("full");
    std::fs::create_dir_all(&dir).unwrap();
    let mount = |args: &[&str]| {
        let s = Command::new("mount").args(args).arg(&dir).status().unwrap();
        assert!(s.success(), "mount {args:?} failed (the tests run as root)");
    };
    /// Unmounts and removes the directory, however the test ends.
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    mount(&["-t", "tmpfs", "-o", "size=1m", "tmpfs"]);
    let _unmount = Unmount(dir.clone());
    let mut child = rtc_mesh()
        .args([
            "replicate",
            "--listen",
            "127.0.0.1:0",
            "--json",
            "--durability",
            "power",
            "--data",
        ])
        .arg(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // About 5 MB of writes for 1 MiB of disk, in bursts; the process may be gone
    // before they are all taken.
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let filler = "x".repeat(200);
        for burst in 0..100 {
            let lines: Vec<String> = (0..200)
                .map(|j| {
                    json!({"op": "set", "key": format!("f{burst}-{j}"), "value": filler})
                        .to_string()
                })
                .collect();
            if writeln!(stdin, "{}", lines.join("\n")).is_err() {
                return;
            }
        }
    });
    let mut acked = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let Ok(v) = serde_json::from_str::<Value>(&line.unwrap()) else {
            continue;
        };
        if v["event"] == "update" && v["local"] == true {
            acked.push(v["key"].as_str().unwrap().to_owned());
        }
    }
    let status = child.wait().unwrap();
    let _ = feeder.join();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("No space left on device") && err.contains(&*dir.to_string_lossy()),
        "{err}"
    );
    assert!(
        !acked.is_empty() && acked.len() < 20_000,
        "{} acknowledged",
        acked.len()
    );
    // Given room, it starts again with every acknowledged write.
    mount(&["-o", "remount,size=64m"]);
    let mut p = replicate("after the full disk", &dir, &[]);
    p.wait_event("ready");
    let held = p.dump();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|k| held.get(k.as_str()).is_none())
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {lost:?}",
        lost.len(),
        acked.len()
    );
    eprintln!(
        "full disk: stopped after {} acknowledged writes ({}), none lost",
        acked.len(),
        err.trim()
    );
    p.close();
}
