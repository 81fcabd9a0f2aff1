//! A signalling client on std threads: a WebSocket to a switchboard, driven by the
//! sans-IO [`SignalClient`] of core (queue while disconnected, reconnect with backoff,
//! re-announce after a reconnect).
//!
//! ```no_run
//! use rtc_mesh_core::signal::Signal;
//! use rtc_mesh_core::Object;
//! use rtc_mesh_std::signal::{SignalEvent, Signaller};
//!
//! let s = Signaller::connect("ws://127.0.0.1:3000/", Default::default()).unwrap();
//! let mut attrs = Object::new();
//! attrs.insert("room", "lobby".into());
//! s.announce(&Signal::announce("alice", attrs));
//! for ev in s.events() {
//!     if let SignalEvent::Message(m) = ev {
//!         println!("{m}");
//!     }
//! }
//! ```

use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rtc_mesh_core::signal::Signal;
pub use rtc_mesh_core::signal_client::SignalEvent;
use rtc_mesh_core::signal_client::{ClientConfig, ClientOutput, SignalClient};
pub use rtc_mesh_core::url::UrlError;
use rtc_mesh_core::url::WsUrl;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

use crate::ws::ReadHalf;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the connection of one generation reports to its driver.
pub(crate) enum WsEvent {
    /// It opened: the writing side.
    Open(Box<Writer>),
    /// A text frame.
    Text(String),
    /// Bytes the reading side wants written (pongs, a close reply).
    Raw(Vec<u8>),
    /// It failed to open, or closed.
    Closed,
    /// The server answered the upgrade with this HTTP status.
    Refused(String),
}

/// What a [`WsEvent`] means to the driver, once [`Signalling::handle`] has taken it.
pub(crate) enum WsChange {
    /// The connection opened.
    Up,
    /// A text arrived.
    Text(String),
    /// The connection failed to open, or closed.
    Down,
    /// The server refused the upgrade with this HTTP status (`401 Unauthorized`).
    Refused(String),
}

/// Hands a connection's reports (tagged with its generation) to the driver's queue;
/// false once the driver is gone.
pub(crate) type Forward = Arc<dyn Fn(u64, WsEvent) -> bool + Send + Sync>;

/// The WebSocket side of a driver thread: at most one connection to the switchboard.
/// A thread of its own opens it (so a slow connect never holds the driver up) and then
/// reads it; the driver writes. Each [`connect`](Self::connect) starts a new
/// generation; reports of older ones are dropped (an older connection that opens late
/// is shut at once). The member driver and the [`Signaller`] both run on it.
pub(crate) struct Signalling {
    /// The switchboard's URL and address (none for a member without a room).
    server: Option<(String, SocketAddr)>,
    gen: u64,
    ws: Option<Writer>,
    forward: Forward,
}

impl Signalling {
    /// Resolves `url` (`ws://host:port/`); connects nothing yet.
    pub(crate) fn new(url: &str, forward: Forward) -> Result<Signalling, UrlError> {
        let addr = WsUrl::parse(url)?.resolve(crate::mesh::resolve)?;
        Ok(Signalling {
            server: Some((url.to_owned(), addr)),
            gen: 0,
            ws: None,
            forward,
        })
    }

    /// No switchboard (a member without a room): a connection never opens.
    pub(crate) fn none(forward: Forward) -> Signalling {
        Signalling {
            server: None,
            gen: 0,
            ws: None,
            forward,
        }
    }

    /// Starts opening a new connection (dropping any other).
    pub(crate) fn connect(&mut self) {
        self.drop_ws();
        self.gen += 1;
        let (gen, forward) = (self.gen, self.forward.clone());
        let Some((url, addr)) = self.server.clone() else {
            forward(gen, WsEvent::Closed);
            return;
        };
        let spawned = thread::Builder::new()
            .name("signal-ws".into())
            .spawn(move || run(&url, addr, gen, forward));
        if spawned.is_err() {
            (self.forward)(gen, WsEvent::Closed);
        }
    }

    /// Takes a report; what it means, if it is about the current connection.
    pub(crate) fn handle(&mut self, gen: u64, event: WsEvent) -> Option<WsChange> {
        if gen != self.gen {
            if let WsEvent::Open(w) = event {
                let _ = w.get_ref().shutdown(Shutdown::Both);
            }
            return None;
        }
        match event {
            WsEvent::Open(w) => {
                self.ws = Some(*w);
                Some(WsChange::Up)
            }
            WsEvent::Text(t) => Some(WsChange::Text(t)),
            WsEvent::Raw(b) => {
                if let Some(w) = self.ws.as_mut() {
                    let _ = w.get_mut().write_all(&b);
                }
                None
            }
            WsEvent::Closed => {
                self.drop_ws();
                Some(WsChange::Down)
            }
            WsEvent::Refused(status) => {
                self.drop_ws();
                Some(WsChange::Refused(status))
            }
        }
    }

    /// Sends a text; false if there is no connection or it failed (then it is gone).
    pub(crate) fn send(&mut self, text: String) -> bool {
        let ok = self
            .ws
            .as_mut()
            .is_some_and(|w| w.send(Message::text(text)).is_ok());
        if !ok {
            self.drop_ws();
        }
        ok
    }

    /// Sends a close frame and shuts the connection; one still opening is given up.
    pub(crate) fn close(&mut self) {
        self.gen += 1;
        if let Some(mut w) = self.ws.take() {
            let _ = w.close(None);
            let _ = w.flush();
            let _ = w.get_ref().shutdown(Shutdown::Both);
        }
    }

    fn drop_ws(&mut self) {
        if let Some(w) = self.ws.take() {
            let _ = w.get_ref().shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Signalling {
    fn drop(&mut self) {
        self.drop_ws();
    }
}

pub(crate) type Writer = WebSocket<TcpStream>;

/// One connection's thread: opens it, reports it, then reads it until it ends.
fn run(url: &str, addr: SocketAddr, gen: u64, forward: Forward) {
    let (stream, write) = match open(url, addr) {
        Ok(s) => s,
        Err(Some(status)) => {
            forward(gen, WsEvent::Refused(status));
            return;
        }
        Err(None) => {
            forward(gen, WsEvent::Closed);
            return;
        }
    };
    if !forward(
        gen,
        WsEvent::Open(Box::new(WebSocket::from_raw_socket(
            write,
            Role::Client,
            None,
        ))),
    ) {
        return;
    }
    let raw = forward.clone();
    let half = ReadHalf {
        stream,
        forward: move |b| raw(gen, WsEvent::Raw(b)),
    };
    let mut ws = WebSocket::from_raw_socket(half, Role::Client, None);
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                if !forward(gen, WsEvent::Text(t.as_str().to_owned())) {
                    return;
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    forward(gen, WsEvent::Closed);
}

/// Connects and does the handshake; the socket and a clone for writing, or the
/// HTTP status the server refused the upgrade with.
fn open(url: &str, addr: SocketAddr) -> Result<(TcpStream, TcpStream), Option<String>> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|_| None)?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(CONNECT_TIMEOUT));
    let (ws, _) = tungstenite::client(url, stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r)) => {
            Some(rtc_mesh_core::http::status_line(r.status()))
        }
        _ => None,
    })?;
    let stream = ws.into_inner();
    let _ = stream.set_read_timeout(None);
    let write = stream.try_clone().map_err(|_| None)?;
    Ok((stream, write))
}

enum Input {
    Send(String),
    Announce(String),
    Ws(u64, WsEvent),
    Stop,
}

/// A signalling connection without a room, driven by a thread: [`SignalClient`]'s
/// queue, backoff and re-announce over a WebSocket. [`Signaller::close`] ends it.
pub struct Signaller {
    tx: Sender<Input>,
    events: Receiver<SignalEvent>,
    thread: Option<JoinHandle<()>>,
}

impl Signaller {
    /// Starts connecting to `url` (`ws://host:port/`).
    pub fn connect(url: &str, config: ClientConfig) -> Result<Signaller, UrlError> {
        let (tx, rx) = mpsc::channel();
        let itx = tx.clone();
        let forward: Forward = Arc::new(move |g, e| itx.send(Input::Ws(g, e)).is_ok());
        let ws = Signalling::new(url, forward)?;
        let (ev_tx, events) = mpsc::channel();
        let client = SignalClient::new(config, Instant::now());
        let thread = thread::Builder::new()
            .name("signaller".into())
            .spawn(move || drive(ws, client, rx, ev_tx))
            .map_err(|e| UrlError::Resolve(url.to_owned(), e))?;
        Ok(Signaller {
            tx,
            events,
            thread: Some(thread),
        })
    }

    /// Sends a message (queued while disconnected).
    pub fn send(&self, msg: &Signal) {
        let _ = self.tx.send(Input::Send(msg.encode()));
    }

    /// Sends a raw text frame (queued while disconnected).
    pub fn send_text(&self, text: String) {
        let _ = self.tx.send(Input::Send(text));
    }

    /// Announces, now and after every reconnect.
    pub fn announce(&self, msg: &Signal) {
        let _ = self.tx.send(Input::Announce(msg.encode()));
    }

    /// Announces an already encoded `/announce|...` text, now and after every reconnect.
    pub fn announce_text(&self, text: String) {
        let _ = self.tx.send(Input::Announce(text));
    }

    /// The events.
    pub fn events(&self) -> &Receiver<SignalEvent> {
        &self.events
    }

    /// Sends what is pending, closes the connection (with a close frame) and waits for
    /// the thread to end.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.tx.send(Input::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Signaller {
    fn drop(&mut self) {
        self.stop();
    }
}

fn drive(
    mut ws: Signalling,
    mut client: SignalClient,
    inputs: Receiver<Input>,
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
                    ws.close();
                    return;
                }
                ClientOutput::Message(m) => {
                    let _ = events.send(SignalEvent::Message(m));
                }
                ClientOutput::Connected => {
                    let _ = events.send(SignalEvent::Connected);
                }
                ClientOutput::Disconnected => {
                    let _ = events.send(SignalEvent::Disconnected);
                }
                ClientOutput::BadMessage(_) => {}
                ClientOutput::Timeout(t) => break t,
            }
        };
        let input = match inputs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(i) => Some(i),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let now = Instant::now();
        match input {
            None => client.handle_timeout(now),
            Some(Input::Send(t)) => client.send_text(t),
            Some(Input::Announce(a)) => client.announce_text(a),
            Some(Input::Ws(g, e)) => match ws.handle(g, e) {
                Some(WsChange::Up) => client.handle_connected(now),
                Some(WsChange::Text(t)) => client.handle_text(now, &t),
                Some(WsChange::Down | WsChange::Refused(_)) => client.handle_disconnected(now),
                None => {}
            },
            // What is pending goes first, then the close frame.
            Some(Input::Stop) => client.close(),
        }
    }
}
