//! Helpers for tests that drive `rtc-mesh` (and JavaScript peers) as processes through
//! the stdin/stdout line protocol.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod bed;
pub mod coturn;
pub mod netns;

/// How long any one awaited event may take before the test fails (a safety bound: the
/// tests never sleep, they wait for events).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Awaits `f`, failing the test as `what` if it takes more than `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    use smol::future::FutureExt;
    f.or(async {
        smol::Timer::after(Duration::from_secs(secs)).await;
        panic!("timed out: {what}")
    })
    .await
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// The npm package `folder` of the repository, failing the test with what to run when
/// its packages (checked by `probe`) are not installed.
fn npm_package(folder: &str, probe: &str) -> PathBuf {
    let d = repo().join(folder);
    assert!(
        d.join("node_modules").join(probe).is_dir(),
        "the npm packages in {folder}/ are missing: run scripts/test.sh (or `npm ci` there)"
    );
    d
}

/// The interop scripts' folder, with its npm packages installed.
pub fn interop_dir() -> PathBuf {
    npm_package("interop", "scuttlebutt")
}

/// The browser tests' folder (in the web client's package), with the npm packages that
/// drive the browsers installed.
pub fn browser_dir() -> PathBuf {
    npm_package("web", "playwright-core").join("tests/browser")
}

/// A `rtc-mesh` command.
pub fn rtc_mesh() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rtc-mesh"))
}

/// A process speaking the line protocol.
pub struct Peer {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line seen, for failure messages.
    pub seen: Vec<String>,
}

impl Peer {
    pub fn spawn(name: &str, mut cmd: Command) -> Peer {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Peer {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Sends one command.
    pub fn send(&mut self, cmd: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{cmd}").expect("write command");
        stdin.flush().expect("flush command");
    }

    /// Sends a raw line.
    pub fn send_raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write line");
        stdin.flush().expect("flush");
    }

    /// The next event; `None` at end of output.
    pub fn next_event(&mut self) -> Option<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) => {
                    self.seen.push(l.clone());
                    match serde_json::from_str::<Value>(&l) {
                        Ok(v) => return Some(v),
                        Err(_) => continue, // not an event line
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: no event within {PATIENCE:?}; output so far:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Reads events until one satisfies `pred`, and returns it.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            match self.next_event() {
                Some(v) if pred(&v) => return v,
                Some(_) => {}
                None => panic!(
                    "{}: output ended while waiting for {what}; output:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// How many events of this name were read so far.
    #[allow(dead_code)]
    pub fn count_events(&self, name: &str) -> usize {
        self.seen
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["event"] == name)
            .count()
    }

    /// Waits for an event by name.
    pub fn wait_event(&mut self, name: &str) -> Value {
        self.wait_for(name, |v| v["event"] == name)
    }

    /// Waits for the update of `key` (from anyone) with this value; an update seen
    /// earlier counts too.
    pub fn wait_update(&mut self, key: &str, value: &Value) -> Value {
        let is_it = |v: &Value| v["event"] == "update" && v["key"] == key && &v["value"] == value;
        for l in &self.seen {
            if let Ok(v) = serde_json::from_str::<Value>(l) {
                if is_it(&v) {
                    return v;
                }
            }
        }
        let what = format!("update {key} = {value}");
        self.wait_for(&what, is_it)
    }

    /// The `ready` address.
    pub fn ready_addr(&mut self) -> String {
        let v = self.wait_event("ready");
        v["addr"].as_str().expect("addr").to_owned()
    }

    /// Asks for a dump and returns its data.
    pub fn dump(&mut self) -> Value {
        self.send(serde_json::json!({"op": "dump"}));
        self.wait_event("dump")["data"].clone()
    }

    /// Kills the process at once (SIGKILL): no goodbye of any kind.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `close`, waits for `closed` and the exit.
    pub fn close(mut self) -> ExitStatus {
        self.send(serde_json::json!({"op": "close"}));
        self.wait_event("closed");
        self.wait()
    }

    /// Closes stdin and waits for the process to exit.
    pub fn wait(mut self) -> ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                return s;
            }
            // Drain output so the child never blocks on a full pipe.
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(50)) {
                self.seen.push(l);
            }
            assert!(
                Instant::now() < deadline,
                "{}: did not exit within {PATIENCE:?}",
                self.name
            );
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `rtc-mesh serve` process on a free loopback port, and its WebSocket URL.
#[allow(dead_code)] // not every test file uses it
pub fn serve() -> (Peer, String) {
    let mut server = rtc_mesh();
    server.args(["serve", "--listen", "127.0.0.1:0", "--json"]);
    let mut server = Peer::spawn("serve", server);
    let url = format!("ws://{}/", server.ready_addr());
    (server, url)
}

/// The original rtc-switchboard 3.2.0 (`interop/switchboard-server.js`) on a free
/// loopback port, and its WebSocket URL.
#[allow(dead_code)] // not every test file uses it
pub fn rtc_switchboard() -> (Peer, String) {
    let mut cmd = Command::new("node");
    cmd.current_dir(interop_dir()).arg("switchboard-server.js");
    let mut server = Peer::spawn("rtc-switchboard", cmd);
    let port = server.wait_event("ready")["port"].as_u64().expect("port");
    (server, format!("ws://127.0.0.1:{port}/"))
}

/// A switchboard on a free loopback port, and its WebSocket URL.
pub async fn switchboard() -> (rtc_mesh_smol::switchboard::Server, String) {
    let server = rtc_mesh_smol::switchboard::Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        Default::default(),
    )
    .await
    .expect("bind a switchboard on loopback");
    let url = format!("ws://{}/", server.local_addr());
    (server, url)
}

/// Options for member `id` joining `room` through the switchboard at `url`.
pub fn member(room: &str, url: &str, id: &str) -> rtc_mesh_smol::mesh::JoinOptions {
    let mut o = rtc_mesh_smol::mesh::JoinOptions::new(room, url.to_owned());
    o.id = Some(id.into());
    // Tests keep to loopback.
    o.bind = vec![std::net::SocketAddr::from(([127, 0, 0, 1], 0))];
    o
}

/// A loopback TCP port that nothing listens on (bound, then freed).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The next message a signalling client gets (skipping connection events), or a panic
/// after 10 s.
#[allow(dead_code)] // not every test file uses it
pub async fn next_message(s: &rtc_mesh_smol::signal::Signaller) -> rtc_mesh_core::signal::Signal {
    within(10, "a signalling message", async {
        loop {
            match s.recv().await {
                Some(rtc_mesh_smol::signal::SignalEvent::Message(m)) => return m,
                Some(_) => continue,
                None => panic!("client ended"),
            }
        }
    })
    .await
}
