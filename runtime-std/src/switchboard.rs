//! The switchboard (signalling server) hosted over WebSocket with std threads.
//!
//! Each connection has a reading thread and a writing thread (small stacks); a timer
//! thread pings idle connections and closes dead ones; all share the sans-IO
//! [`Switchboard`] behind a mutex. The same port answers `GET /health`.
//!
//! ```no_run
//! let server = rtc_mesh_std::switchboard::Server::bind(
//!     "127.0.0.1:3000".parse().unwrap(),
//!     Default::default(),
//! )
//! .unwrap();
//! println!("signalling on ws://{}/", server.local_addr());
//! // ... later:
//! server.shutdown();
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rtc_mesh_core::switchboard::{CloseReason, Counters, Switchboard, SwitchboardConfig};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role};
use tungstenite::{Message, WebSocket};

use crate::ws::ReadHalf;
use rtc_mesh_core::hosting::{ConnOut, ConnWriter, Hosted, MAX_QUEUED};
use rtc_mesh_core::http::{self, Route, WsLimits};

/// Stack size of connection threads.
const STACK: usize = 128 * 1024;

/// Most connections this server holds at once, whatever the configuration says: each
/// takes two threads, and a process runs out of memory mappings for thread stacks
/// somewhat above 10,000 threads (more connections get `503`).
pub const MAX_CONNECTIONS: usize = 5_000;

enum Out {
    /// From the switchboard.
    Conn(ConnOut),
    /// Bytes the reading side's WebSocket wants written (pongs, close replies).
    Raw(Vec<u8>),
}

/// The writer of a connection: a channel to its thread, and how many frames wait.
struct Conn {
    tx: Sender<Out>,
    queued: Arc<AtomicUsize>,
}

impl ConnWriter for Conn {
    fn push(&self, out: ConnOut) -> bool {
        let close = matches!(out, ConnOut::Close(_));
        if !close && self.queued.load(Ordering::Relaxed) >= MAX_QUEUED {
            return false;
        }
        if !close {
            self.queued.fetch_add(1, Ordering::Relaxed);
        }
        self.tx.send(Out::Conn(out)).is_ok()
    }
    fn abort(&self) {
        let _ = self.tx.send(Out::Conn(ConnOut::Close(CloseReason::Dead)));
    }
}

type Inner = Hosted<Conn>;

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running switchboard server; [`Server::shutdown`] stops it and closes every
/// connection.
pub struct Server {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` and starts serving.
    pub fn bind(addr: SocketAddr, config: SwitchboardConfig) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let max_frame = config.max_frame;
        let max_conns = config.max_connections.min(MAX_CONNECTIONS);
        let active = Arc::new(AtomicUsize::new(0));
        let inner = Arc::new(Mutex::new(Inner::new(Switchboard::new(
            config,
            Instant::now(),
        ))));
        let stop = Arc::new(AtomicBool::new(false));
        let (i, s) = (inner.clone(), stop.clone());
        let accept = thread::Builder::new()
            .name("switchboard-accept".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if s.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(mut stream) = stream else {
                        thread::sleep(Duration::from_millis(50));
                        continue;
                    };
                    if active.load(Ordering::Relaxed) >= max_conns {
                        let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
                        let _ = stream
                            .write_all(http::error_response("503 Service Unavailable").as_bytes());
                        continue;
                    }
                    active.fetch_add(1, Ordering::Relaxed);
                    let (i, a) = (i.clone(), active.clone());
                    let spawned = thread::Builder::new().stack_size(STACK).spawn(move || {
                        connection(stream, i, max_frame);
                        a.fetch_sub(1, Ordering::Relaxed);
                    });
                    if spawned.is_err() {
                        active.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            })?;
        let (i, s) = (inner.clone(), stop.clone());
        let timer = thread::Builder::new()
            .name("switchboard-timer".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    let next = lock(&i).next_timeout();
                    let wait = next
                        .map(|t| t.saturating_duration_since(Instant::now()))
                        .unwrap_or(Duration::from_millis(200))
                        .min(Duration::from_millis(200));
                    thread::sleep(wait);
                    let now = Instant::now();
                    let mut g = lock(&i);
                    g.board.handle_timeout(now);
                    g.dispatch(now);
                }
            })?;
        Ok(Server {
            addr,
            inner,
            stop,
            threads: vec![accept, timer],
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The switchboard's counters now.
    pub fn counters(&self) -> Counters {
        lock(&self.inner).board.counters().clone()
    }

    /// Stops accepting and closes every connection (each gets a close frame).
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let conns: Vec<Conn> = lock(&self.inner).conns.drain().map(|(_, c)| c).collect();
        for c in conns {
            c.push(ConnOut::Close(CloseReason::Dead));
        }
    }
}

fn connection(mut stream: TcpStream, inner: Arc<Mutex<Inner>>, max_frame: usize) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(http::HEAD_TIMEOUT));
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (req, rest) = loop {
        let n = match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        match http::parse_head(&buf) {
            Ok(None) => continue,
            Ok(Some((req, len))) => break (req, buf.split_off(len)),
            Err(status) => {
                let _ = stream.write_all(http::error_response(status).as_bytes());
                return;
            }
        }
    };
    let (key, token) = match req {
        Route::Upgrade { key, token } => (key, token),
        Route::Health => {
            let body = serde_json::to_string(lock(&inner).board.counters()).unwrap_or_default();
            let _ = stream.write_all(http::json_response(&body).as_bytes());
            return;
        }
        Route::Asset(asset) => {
            let _ = stream.write_all(http::asset_response(&asset).as_bytes());
            return;
        }
        Route::Refuse(status) => {
            let _ = stream.write_all(http::error_response(status).as_bytes());
            return;
        }
    };
    let admitted = lock(&inner).admit(Instant::now(), stream.peer_addr(), token.as_deref());
    let admission = match admitted {
        Ok(a) => a,
        Err(status) => {
            let _ = stream.write_all(http::error_response(status).as_bytes());
            return;
        }
    };
    let _ = stream.set_read_timeout(None);
    let upgraded = stream
        .write_all(
            http::upgrade_response(&tungstenite::handshake::derive_accept_key(key.as_bytes()))
                .as_bytes(),
        )
        .and_then(|()| stream.try_clone());
    let Ok(write_stream) = upgraded else {
        lock(&inner).board.release(admission);
        return;
    };
    let (tx, rx) = mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let id = lock(&inner).open(
        Instant::now(),
        Conn {
            tx: tx.clone(),
            queued: queued.clone(),
        },
        admission,
    );
    let config = ws_config(WsLimits::for_switchboard(max_frame));
    let writer = thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || write_loop(write_stream, rx, queued, config));
    if writer.is_err() {
        lock(&inner).closed(Instant::now(), id);
        return;
    }
    let half = ReadHalf {
        stream,
        forward: move |bytes| tx.send(Out::Raw(bytes)).is_ok(),
    };
    let mut ws = WebSocket::from_partially_read(half, rest, Role::Server, Some(config));
    loop {
        let m = match ws.read() {
            Ok(m) => m,
            Err(_) => break,
        };
        let now = Instant::now();
        let mut g = lock(&inner);
        match m {
            Message::Text(t) => g.board.handle_text(now, id, t.as_str()),
            Message::Binary(_) => g.board.handle_binary(now, id),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                g.board.handle_activity(now, id)
            }
            Message::Close(_) => {
                drop(g);
                break;
            }
        }
        g.dispatch(now);
    }
    let now = Instant::now();
    let mut g = lock(&inner);
    if let Some(conn) = g.conns.get(&id) {
        conn.push(ConnOut::Close(CloseReason::Dead));
    }
    g.closed(now, id);
}

fn write_loop(
    stream: TcpStream,
    rx: Receiver<Out>,
    queued: Arc<AtomicUsize>,
    config: tungstenite::protocol::WebSocketConfig,
) {
    let mut ws = WebSocket::from_raw_socket(stream, Role::Server, Some(config));
    while let Ok(out) = rx.recv() {
        let r = match out {
            Out::Conn(ConnOut::Text(t)) => {
                queued.fetch_sub(1, Ordering::Relaxed);
                ws.send(Message::text(&*t))
            }
            Out::Conn(ConnOut::Ping) => {
                queued.fetch_sub(1, Ordering::Relaxed);
                ws.send(Message::Ping(Default::default()))
            }
            Out::Raw(bytes) => ws.get_mut().write_all(&bytes).map_err(Into::into),
            Out::Conn(ConnOut::Close(reason)) => {
                let (code, why) = match reason {
                    CloseReason::Replaced => (CloseCode::Normal, "replaced"),
                    CloseReason::Abuse => (CloseCode::Policy, "abuse"),
                    CloseReason::Dead => (CloseCode::Away, "closing"),
                };
                let _ = ws.close(Some(CloseFrame {
                    code,
                    reason: why.into(),
                }));
                let _ = ws.flush();
                break;
            }
        };
        if r.is_err() {
            break;
        }
    }
    let _ = ws.get_ref().shutdown(Shutdown::Both);
}

/// The WebSocket configuration for `l`.
fn ws_config(l: WsLimits) -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(l.read_buffer)
        .write_buffer_size(l.write_buffer)
        .max_write_buffer_size(l.max_write_buffer)
        .max_message_size(Some(l.max_frame))
        .max_frame_size(Some(l.max_frame))
}
