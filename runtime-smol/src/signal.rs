//! A signalling client on smol: a WebSocket to a switchboard, driven by the sans-IO
//! [`SignalClient`] of core (queue while disconnected, reconnect with backoff,
//! re-announce after a reconnect).
//!
//! ```no_run
//! use rtc_mesh_core::signal::Signal;
//! use rtc_mesh_core::Object;
//! use rtc_mesh_smol::signal::{Signaller, SignalEvent};
//!
//! smol::block_on(async {
//!     let s = Signaller::connect("ws://127.0.0.1:3000/", Default::default()).unwrap();
//!     let mut attrs = Object::new();
//!     attrs.insert("room", "lobby".into());
//!     s.announce(&Signal::announce("alice", attrs));
//!     while let Some(ev) = s.recv().await {
//!         if let SignalEvent::Message(m) = ev {
//!             println!("{m}");
//!         }
//!     }
//! });
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use async_tungstenite::WebSocketStream;
use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use smol::net::TcpStream;
use smol::stream::StreamExt;
use smol::{Task, Timer};

use rtc_mesh_core::signal::Signal;
use rtc_mesh_core::signal_client::{ClientConfig, ClientOutput, SignalClient};

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub use rtc_mesh_core::signal_client::SignalEvent;
pub use rtc_mesh_core::url::UrlError;
use rtc_mesh_core::url::WsUrl;

/// Looks `HOST:PORT` up (blocking, once per join; the first address).
pub(crate) fn resolve(host_port: &str) -> std::io::Result<Option<SocketAddr>> {
    use std::net::ToSocketAddrs;
    Ok(host_port.to_socket_addrs()?.next())
}

/// What the connection of one generation reports to its driver.
pub(crate) enum WsEvent {
    /// It opened.
    Open,
    /// A text frame.
    Text(String),
    /// It failed to open, or closed.
    Closed,
    /// The server answered the upgrade with this HTTP status.
    Refused(String),
}

/// The WebSocket side of a driver: at most one connection to the switchboard, opened
/// and run by a task of its own, so that a slow connect never holds the driver up.
/// Each [`connect`](Self::connect) starts a new generation; reports of older ones are
/// dropped. The member driver and the [`Signaller`] both run on it.
pub(crate) struct Signalling {
    /// The switchboard's URL and address (none for a member without a room).
    server: Option<(String, SocketAddr)>,
    gen: u64,
    /// The texts to send on the current connection, and its task.
    conn: Option<(Sender<String>, Task<()>)>,
    /// Whether the current connection has opened.
    open: bool,
    events_tx: Sender<(u64, WsEvent)>,
    events: Receiver<(u64, WsEvent)>,
}

impl Signalling {
    /// Resolves `url` (`ws://host:port/`); connects nothing yet.
    pub(crate) fn new(url: &str) -> Result<Signalling, UrlError> {
        let addr = WsUrl::parse(url)?.resolve(resolve)?;
        Ok(Self::with(Some((url.to_owned(), addr))))
    }

    /// No switchboard (a member without a room): a connection never opens.
    pub(crate) fn none() -> Signalling {
        Self::with(None)
    }

    fn with(server: Option<(String, SocketAddr)>) -> Signalling {
        let (events_tx, events) = channel::unbounded();
        Signalling {
            server,
            gen: 0,
            conn: None,
            open: false,
            events_tx,
            events,
        }
    }

    /// Starts opening a new connection (dropping any other).
    pub(crate) fn connect(&mut self) {
        self.gen += 1;
        self.open = false;
        self.conn = None;
        let Some((url, addr)) = self.server.clone() else {
            let _ = self.events_tx.try_send((self.gen, WsEvent::Closed));
            return;
        };
        let (tx, rx) = channel::unbounded();
        let task = smol::spawn(run(url, addr, self.gen, rx, self.events_tx.clone()));
        self.conn = Some((tx, task));
    }

    /// Sends a text on the current connection; false if there is none.
    pub(crate) fn send(&mut self, text: String) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|(tx, _)| tx.try_send(text).is_ok())
    }

    /// Sends what is pending and a close frame, and waits for the connection to end;
    /// a connection still being opened is given up.
    pub(crate) async fn close(&mut self) {
        self.gen += 1;
        if let Some((tx, task)) = self.conn.take() {
            drop(tx);
            if self.open {
                task.await;
            }
        }
        self.open = false;
    }

    /// The next report of the current connection.
    pub(crate) async fn recv(&mut self) -> WsEvent {
        loop {
            match self.events.recv().await {
                Ok((g, e)) if g == self.gen => {
                    self.open = matches!(e, WsEvent::Open | WsEvent::Text(_));
                    return e;
                }
                Ok(_) => {}
                Err(_) => return smol::future::pending().await,
            }
        }
    }
}

type Ws = WebSocketStream<TcpStream>;

/// Connects and does the handshake; the WebSocket, or the HTTP status the server
/// refused the upgrade with.
async fn open(url: &str, addr: SocketAddr) -> Result<Ws, Option<String>> {
    async {
        let stream = TcpStream::connect(addr).await.map_err(|_| None)?;
        let _ = stream.set_nodelay(true);
        let (ws, _) = async_tungstenite::client_async(url, stream)
            .await
            .map_err(|e| match e {
                async_tungstenite::tungstenite::Error::Http(r) => {
                    Some(rtc_mesh_core::http::status_line(r.status()))
                }
                _ => None,
            })?;
        Ok(ws)
    }
    .or(async {
        Timer::after(CONNECT_TIMEOUT).await;
        Err(None)
    })
    .await
}

/// One connection: opens it, then moves texts both ways until either side ends it.
/// The end of `texts` (the driver closing) sends a close frame.
async fn run(
    url: String,
    addr: SocketAddr,
    gen: u64,
    texts: Receiver<String>,
    events: Sender<(u64, WsEvent)>,
) {
    let mut ws = match open(&url, addr).await {
        Ok(ws) => ws,
        Err(refused) => {
            let e = refused.map_or(WsEvent::Closed, WsEvent::Refused);
            let _ = events.send((gen, e)).await;
            return;
        }
    };
    if events.send((gen, WsEvent::Open)).await.is_err() {
        return;
    }
    enum Wake {
        Send(Option<String>),
        Got(Option<String>),
    }
    loop {
        let wake = async { Wake::Send(texts.recv().await.ok()) }
            .or(async {
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => break Wake::Got(Some(t.as_str().to_owned())),
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break Wake::Got(None),
                        Some(Ok(_)) => continue,
                    }
                }
            })
            .await;
        match wake {
            Wake::Send(Some(t)) => {
                if ws.send(Message::text(t)).await.is_err() {
                    break;
                }
            }
            Wake::Send(None) => {
                // Closed by the driver, after every text it sent.
                let _ = ws.close(None).await;
                return;
            }
            Wake::Got(Some(t)) => {
                if events.send((gen, WsEvent::Text(t))).await.is_err() {
                    return;
                }
            }
            Wake::Got(None) => break,
        }
    }
    let _ = events.send((gen, WsEvent::Closed)).await;
}

enum Cmd {
    Send(String),
    Announce(String),
}

/// A signalling connection, without a room: [`SignalClient`]'s queue, backoff and
/// re-announce over a WebSocket. Dropping it closes the connection.
pub struct Signaller {
    cmds: Sender<Cmd>,
    events: Receiver<SignalEvent>,
    task: Task<()>,
}

impl Signaller {
    /// Starts connecting to `url` (`ws://host:port/`) on smol's global executor.
    pub fn connect(url: &str, config: ClientConfig) -> Result<Signaller, UrlError> {
        let ws = Signalling::new(url)?;
        let (cmds, cmd_rx) = channel::unbounded();
        let (ev_tx, events) = channel::unbounded();
        let client = SignalClient::new(config, Instant::now());
        let task = smol::spawn(drive(ws, client, cmd_rx, ev_tx));
        Ok(Signaller { cmds, events, task })
    }

    /// Sends a message (queued while disconnected).
    pub fn send(&self, msg: &Signal) {
        let _ = self.cmds.try_send(Cmd::Send(msg.encode()));
    }

    /// Sends a raw text frame (queued while disconnected).
    pub fn send_text(&self, text: String) {
        let _ = self.cmds.try_send(Cmd::Send(text));
    }

    /// Announces, now and after every reconnect.
    pub fn announce(&self, msg: &Signal) {
        let _ = self.cmds.try_send(Cmd::Announce(msg.encode()));
    }

    /// Announces an already encoded `/announce|...` text, now and after every reconnect.
    pub fn announce_text(&self, text: String) {
        let _ = self.cmds.try_send(Cmd::Announce(text));
    }

    /// The next event; `None` once the client is dropped.
    pub async fn recv(&self) -> Option<SignalEvent> {
        self.events.recv().await.ok()
    }

    /// Sends what is pending, closes the connection (with a close frame) and waits for
    /// the driver to end.
    pub async fn close(self) {
        drop(self.cmds);
        self.task.await;
    }

    /// The event channel, to select on.
    pub fn events(&self) -> &Receiver<SignalEvent> {
        &self.events
    }
}

enum Wake {
    Cmd(Option<Cmd>),
    Ws(WsEvent),
    Timer,
}

async fn drive(
    mut ws: Signalling,
    mut client: SignalClient,
    cmds: Receiver<Cmd>,
    events: Sender<SignalEvent>,
) {
    loop {
        let deadline = loop {
            match client.poll_output() {
                ClientOutput::Connect => ws.connect(),
                ClientOutput::Send(t) => {
                    if !ws.send(t) {
                        client.handle_disconnected(Instant::now());
                    }
                }
                ClientOutput::Close => {
                    ws.close().await;
                    return;
                }
                ClientOutput::Message(m) => {
                    let _ = events.send(SignalEvent::Message(m)).await;
                }
                ClientOutput::Connected => {
                    let _ = events.send(SignalEvent::Connected).await;
                }
                ClientOutput::Disconnected => {
                    let _ = events.send(SignalEvent::Disconnected).await;
                }
                ClientOutput::BadMessage(_) => {}
                ClientOutput::Timeout(t) => break t,
            }
        };
        let wake = async { Wake::Cmd(cmds.recv().await.ok()) }
            .or(async { Wake::Ws(ws.recv().await) })
            .or(async {
                Timer::at(deadline).await;
                Wake::Timer
            })
            .await;
        let now = Instant::now();
        match wake {
            // The handle was dropped: close politely (what is pending goes first).
            Wake::Cmd(None) => client.close(),
            Wake::Cmd(Some(Cmd::Send(t))) => client.send_text(t),
            Wake::Cmd(Some(Cmd::Announce(a))) => client.announce_text(a),
            Wake::Ws(WsEvent::Open) => client.handle_connected(now),
            Wake::Ws(WsEvent::Text(t)) => client.handle_text(now, &t),
            Wake::Ws(WsEvent::Closed | WsEvent::Refused(_)) => client.handle_disconnected(now),
            Wake::Timer => client.handle_timeout(now),
        }
    }
}
