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
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
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

enum Input {
    Send(String),
    Announce(String),
    /// From the reader of connection `gen`.
    Text(u64, String),
    Raw(u64, Vec<u8>),
    Closed(u64),
    Stop,
}

/// A signalling connection driven by a thread. [`Signaller::close`] ends it.
pub struct Signaller {
    tx: Sender<Input>,
    events: Receiver<SignalEvent>,
    thread: Option<JoinHandle<()>>,
}

impl Signaller {
    /// Starts connecting to `url` (`ws://host:port/`).
    pub fn connect(url: &str, config: ClientConfig) -> Result<Signaller, UrlError> {
        let (ev_tx, events) = mpsc::channel();
        Self::connect_with(url, config, events, move |e| ev_tx.send(e).is_ok())
    }

    /// Like [`connect`](Self::connect), but every event goes to `on_event` (on the
    /// client's thread) instead of [`events`](Self::events), which stays empty.
    pub fn connect_with_handler(
        url: &str,
        config: ClientConfig,
        on_event: impl FnMut(SignalEvent) -> bool + Send + 'static,
    ) -> Result<Signaller, UrlError> {
        let (_, events) = mpsc::channel();
        Self::connect_with(url, config, events, on_event)
    }

    fn connect_with(
        url: &str,
        config: ClientConfig,
        events: Receiver<SignalEvent>,
        on_event: impl FnMut(SignalEvent) -> bool + Send + 'static,
    ) -> Result<Signaller, UrlError> {
        let addr = WsUrl::parse(url)?.resolve(crate::mesh::resolve)?;
        let (tx, rx) = mpsc::channel();
        let client = SignalClient::new(config, Instant::now());
        let (url, itx) = (url.to_owned(), tx.clone());
        let thread = thread::Builder::new()
            .name("signaller".into())
            .spawn(move || drive(url, addr, client, rx, itx, on_event))
            .map_err(|e| UrlError::Resolve(addr.to_string(), e))?;
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

    /// Closes the connection (with a close frame) and waits for the thread to end.
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

type Writer = WebSocket<TcpStream>;

/// Opens a connection; its reader thread feeds `inputs` tagged with `gen`.
fn open(url: &str, addr: SocketAddr, gen: u64, inputs: &Sender<Input>) -> Option<Writer> {
    let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).ok()?;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(CONNECT_TIMEOUT));
    let (ws, _) = tungstenite::client(url, stream).ok()?;
    let stream = ws.into_inner();
    let _ = stream.set_read_timeout(None);
    let write = stream.try_clone().ok()?;
    let (itx, rtx) = (inputs.clone(), inputs.clone());
    let half = ReadHalf {
        stream,
        forward: move |b| itx.send(Input::Raw(gen, b)).is_ok(),
    };
    thread::Builder::new()
        .name("signaller-read".into())
        .spawn(move || {
            let mut ws = WebSocket::from_raw_socket(half, Role::Client, None);
            loop {
                match ws.read() {
                    Ok(Message::Text(t)) => {
                        if rtx.send(Input::Text(gen, t.as_str().to_owned())).is_err() {
                            return;
                        }
                    }
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let _ = rtx.send(Input::Closed(gen));
        })
        .ok()?;
    Some(WebSocket::from_raw_socket(write, Role::Client, None))
}

fn drive(
    url: String,
    addr: SocketAddr,
    mut client: SignalClient,
    inputs: Receiver<Input>,
    itx: Sender<Input>,
    mut events: impl FnMut(SignalEvent) -> bool,
) {
    let mut ws: Option<Writer> = None;
    let mut gen = 0u64;
    let drop_ws = |ws: &mut Option<Writer>| {
        if let Some(w) = ws.take() {
            let _ = w.get_ref().shutdown(std::net::Shutdown::Both);
        }
    };
    loop {
        while let Some(o) = client.poll_output() {
            match o {
                ClientOutput::Connect => {
                    gen += 1;
                    match open(&url, addr, gen, &itx) {
                        Some(w) => {
                            ws = Some(w);
                            client.connected(Instant::now());
                        }
                        None => client.disconnected(Instant::now()),
                    }
                }
                ClientOutput::Send(t) => {
                    let ok = ws
                        .as_mut()
                        .is_some_and(|w| w.send(Message::text(t)).is_ok());
                    if !ok {
                        drop_ws(&mut ws);
                        client.disconnected(Instant::now());
                    }
                }
                ClientOutput::Message(m) => {
                    let _ = events(SignalEvent::Message(m));
                }
                ClientOutput::Connected => {
                    let _ = events(SignalEvent::Connected);
                }
                ClientOutput::Disconnected => {
                    let _ = events(SignalEvent::Disconnected);
                }
                ClientOutput::BadMessage(_) => {}
            }
        }
        let input = match client.poll_timeout() {
            Some(t) => match inputs.recv_timeout(t.saturating_duration_since(Instant::now())) {
                Ok(i) => Some(i),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match inputs.recv() {
                Ok(i) => Some(i),
                Err(_) => return,
            },
        };
        match input {
            None => client.handle_timeout(Instant::now()),
            Some(Input::Send(t)) => client.send_text(t),
            Some(Input::Announce(a)) => client.announce_text(a),
            Some(Input::Text(g, t)) if g == gen => client.handle_text(&t),
            Some(Input::Raw(g, b)) if g == gen => {
                if let Some(w) = ws.as_mut() {
                    let _ = w.get_mut().write_all(&b);
                }
            }
            Some(Input::Closed(g)) if g == gen => {
                drop_ws(&mut ws);
                client.disconnected(Instant::now());
            }
            Some(Input::Stop) => {
                client.close();
                if let Some(mut w) = ws.take() {
                    let _ = w.close(None);
                    let _ = w.flush();
                    let _ = w.get_ref().shutdown(std::net::Shutdown::Both);
                }
                return;
            }
            Some(_) => {}
        }
    }
}
