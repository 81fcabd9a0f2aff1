//! The switchboard (signalling server) hosted over WebSocket on smol.
//!
//! One task per connection moves frames between its WebSocket and the shared sans-IO
//! [`Switchboard`]; a timer task pings idle connections and closes dead ones. The same
//! port answers `GET /health` with the counters as JSON.
//!
//! ```no_run
//! smol::block_on(async {
//!     let server = rtc_mesh_smol::switchboard::Server::bind(
//!         "127.0.0.1:3000".parse().unwrap(),
//!         Default::default(),
//!     )
//!     .await
//!     .unwrap();
//!     println!("signalling on ws://{}/", server.local_addr());
//!     server.run_until(smol::future::pending::<()>()).await;
//! });
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::stream::StreamExt;
use smol::{Task, Timer};

use rtc_mesh_core::hosting::{ConnOut, ConnWriter, Hosted, MAX_QUEUED};
use rtc_mesh_core::http::{self, Route, WsLimits};
use rtc_mesh_core::switchboard::{CloseReason, ConnId, Counters, Switchboard, SwitchboardConfig};

/// The writer of a connection: a channel to its task.
struct Writer(Sender<ConnOut>);

impl ConnWriter for Writer {
    fn push(&self, out: ConnOut) -> bool {
        self.0.len() < MAX_QUEUED && self.0.try_send(out).is_ok()
    }
    fn abort(&self) {
        self.0.close();
    }
}

type Inner = Hosted<Writer>;

/// A running switchboard server. Dropping it stops accepting; [`Server::shutdown`]
/// also closes every connection.
pub struct Server {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    tasks: Vec<Task<()>>,
}

impl Server {
    /// Binds `addr` and starts serving on smol's global executor.
    pub async fn bind(addr: SocketAddr, config: SwitchboardConfig) -> io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let max_frame = config.max_frame;
        let max_conns = config.max_connections;
        let inner = Arc::new(Mutex::new(Inner::new(Switchboard::new(
            config,
            Instant::now(),
        ))));
        let accept = smol::spawn(accept_loop(listener, inner.clone(), max_frame, max_conns));
        let timers = smol::spawn(timer_loop(inner.clone()));
        Ok(Server {
            addr,
            inner,
            tasks: vec![accept, timers],
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

    /// Serves until `stop` completes, then shuts down.
    pub async fn run_until<F: std::future::Future>(self, stop: F) -> F::Output {
        let out = stop.await;
        self.shutdown().await;
        out
    }

    /// Stops accepting and closes every connection (each gets a close frame).
    pub async fn shutdown(mut self) {
        for t in self.tasks.drain(..) {
            t.cancel().await;
        }
        let conns: Vec<Writer> = lock(&self.inner).conns.drain().map(|(_, w)| w).collect();
        for w in conns {
            w.push(ConnOut::Close(CloseReason::Dead));
        }
    }
}

fn lock(m: &Mutex<Inner>) -> std::sync::MutexGuard<'_, Inner> {
    // A panic while holding the lock would be a bug in core; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn accept_loop(
    listener: TcpListener,
    inner: Arc<Mutex<Inner>>,
    max_frame: usize,
    max_conns: usize,
) {
    let active = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        match listener.accept().await {
            Ok((mut stream, _)) if active.load(Ordering::Relaxed) >= max_conns => {
                let busy = http::error_response("503 Service Unavailable");
                smol::spawn(async move {
                    let _ = stream.write_all(busy.as_bytes()).await;
                })
                .detach();
            }
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                active.fetch_add(1, Ordering::Relaxed);
                let (inner, active) = (inner.clone(), active.clone());
                smol::spawn(async move {
                    connection(stream, inner, max_frame).await;
                    active.fetch_sub(1, Ordering::Relaxed);
                })
                .detach();
            }
            // Out of file descriptors and the like: wait a little, keep serving.
            Err(_) => {
                Timer::after(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn timer_loop(inner: Arc<Mutex<Inner>>) {
    loop {
        // At least every 500 ms: a connection opened meanwhile may want a sweep sooner
        // than the deadline of the last dispatch.
        let cap = Instant::now() + Duration::from_millis(500);
        let next = lock(&inner).next_timeout().map_or(cap, |t| t.min(cap));
        Timer::at(next).await;
        let now = Instant::now();
        let mut g = lock(&inner);
        g.board.handle_timeout(now);
        g.dispatch(now);
    }
}

/// Reads the request head (bounded in size and time).
async fn read_head(stream: &mut TcpStream) -> Option<(Route, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let deadline = Instant::now() + http::HEAD_TIMEOUT;
    loop {
        let n = async { stream.read(&mut chunk).await.ok() }
            .or(async {
                Timer::at(deadline).await;
                None
            })
            .await?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        match http::parse_head(&buf) {
            Ok(None) => continue,
            Ok(Some((req, len))) => return Some((req, buf.split_off(len))),
            Err(status) => {
                let _ = stream
                    .write_all(http::error_response(status).as_bytes())
                    .await;
                return None;
            }
        }
    }
}

async fn connection(mut stream: TcpStream, inner: Arc<Mutex<Inner>>, max_frame: usize) {
    let Some((req, rest)) = read_head(&mut stream).await else {
        return;
    };
    let (key, token) = match req {
        Route::Upgrade { key, token } => (key, token),
        Route::Health => {
            let body = serde_json::to_string(lock(&inner).board.counters()).unwrap_or_default();
            let _ = stream
                .write_all(http::json_response(&body).as_bytes())
                .await;
            return;
        }
        Route::Asset(asset) => {
            let _ = stream
                .write_all(http::asset_response(&asset).as_bytes())
                .await;
            return;
        }
        Route::Refuse(status) => {
            let _ = stream
                .write_all(http::error_response(status).as_bytes())
                .await;
            return;
        }
    };
    let admitted = lock(&inner).admit(Instant::now(), stream.peer_addr(), token.as_deref());
    let admission = match admitted {
        Ok(a) => a,
        Err(status) => {
            let _ = stream
                .write_all(http::error_response(status).as_bytes())
                .await;
            return;
        }
    };
    if stream
        .write_all(
            http::upgrade_response(
                &async_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()),
            )
            .as_bytes(),
        )
        .await
        .is_err()
    {
        lock(&inner).board.release(admission);
        return;
    }
    let ws = WebSocketStream::from_partially_read(
        stream,
        rest,
        Role::Server,
        Some(ws_config(WsLimits::for_switchboard(max_frame))),
    )
    .await;
    let (tx, rx) = channel::unbounded();
    let id = lock(&inner).open(Instant::now(), Writer(tx), admission);
    serve(ws, id, &inner, rx).await;
    lock(&inner).closed(Instant::now(), id);
}

/// Moves frames both ways until either side ends.
async fn serve(
    ws: WebSocketStream<TcpStream>,
    id: ConnId,
    inner: &Mutex<Inner>,
    rx: Receiver<ConnOut>,
) {
    let (mut sink, mut stream) = ws.split();
    let reader = async {
        while let Some(Ok(m)) = stream.next().await {
            let now = Instant::now();
            let mut g = lock(inner);
            match m {
                Message::Text(t) => g.board.handle_text(now, id, t.as_str()),
                Message::Binary(_) => g.board.handle_binary(now, id),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                    g.board.handle_activity(now, id)
                }
                Message::Close(_) => break,
            }
            g.dispatch(now);
        }
    };
    let writer = async {
        while let Ok(out) = rx.recv().await {
            let r = match out {
                ConnOut::Text(t) => sink.send(Message::text(&*t)).await,
                ConnOut::Ping => sink.send(Message::Ping(Default::default())).await,
                ConnOut::Close(reason) => {
                    let (code, why) = match reason {
                        CloseReason::Replaced => (CloseCode::Normal, "replaced"),
                        CloseReason::Abuse => (CloseCode::Policy, "abuse"),
                        CloseReason::Dead => (CloseCode::Away, "closing"),
                    };
                    let _ = sink
                        .close(Some(CloseFrame {
                            code,
                            reason: why.into(),
                        }))
                        .await;
                    break;
                }
            };
            if r.is_err() {
                break;
            }
        }
    };
    reader.or(writer).await;
}

/// The WebSocket configuration for `l`.
fn ws_config(l: WsLimits) -> async_tungstenite::tungstenite::protocol::WebSocketConfig {
    async_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(l.read_buffer)
        .write_buffer_size(l.write_buffer)
        .max_write_buffer_size(l.max_write_buffer)
        .max_message_size(Some(l.max_frame))
        .max_frame_size(Some(l.max_frame))
}
