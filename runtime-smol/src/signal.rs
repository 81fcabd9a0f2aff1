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

enum Cmd {
    Send(String),
    Announce(String),
}

/// A signalling connection. Dropping it closes the connection.
pub struct Signaller {
    cmds: Sender<Cmd>,
    events: Receiver<SignalEvent>,
    task: Task<()>,
}

impl Signaller {
    /// Starts connecting to `url` (`ws://host:port/`) on smol's global executor.
    pub fn connect(url: &str, config: ClientConfig) -> Result<Signaller, UrlError> {
        let addr = WsUrl::parse(url)?.resolve(resolve)?;
        let (cmds, cmd_rx) = channel::unbounded();
        let (ev_tx, events) = channel::unbounded();
        let client = SignalClient::new(config, Instant::now());
        let task = smol::spawn(drive(url.to_owned(), addr, client, cmd_rx, ev_tx));
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

    /// Closes the connection (with a close frame) and waits for the driver to end.
    pub async fn close(self) {
        drop(self.cmds);
        self.task.await;
    }

    /// The event channel, to select on.
    pub fn events(&self) -> &Receiver<SignalEvent> {
        &self.events
    }
}

type Ws = WebSocketStream<TcpStream>;

async fn open(url: &str, addr: SocketAddr) -> Option<Ws> {
    async {
        let stream = TcpStream::connect(addr).await.ok()?;
        let _ = stream.set_nodelay(true);
        let (ws, _) = async_tungstenite::client_async(url, stream).await.ok()?;
        Some(ws)
    }
    .or(async {
        Timer::after(CONNECT_TIMEOUT).await;
        None
    })
    .await
}

enum Wake {
    Cmd(Option<Cmd>),
    Ws(Option<Message>),
    Timer,
}

async fn drive(
    url: String,
    addr: SocketAddr,
    mut client: SignalClient,
    cmds: Receiver<Cmd>,
    events: Sender<SignalEvent>,
) {
    let mut ws: Option<Ws> = None;
    loop {
        while let Some(o) = client.poll_output() {
            match o {
                ClientOutput::Connect => match open(&url, addr).await {
                    Some(w) => {
                        ws = Some(w);
                        client.connected(Instant::now());
                    }
                    None => client.disconnected(Instant::now()),
                },
                ClientOutput::Send(t) => {
                    let ok = match ws.as_mut() {
                        Some(w) => w.send(Message::text(t)).await.is_ok(),
                        None => false,
                    };
                    if !ok {
                        ws = None;
                        client.disconnected(Instant::now());
                    }
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
            }
        }
        let deadline = client.poll_timeout();
        let wake = async { Wake::Cmd(cmds.recv().await.ok()) }
            .or(async {
                match ws.as_mut() {
                    Some(w) => loop {
                        match w.next().await {
                            Some(Ok(Message::Text(t))) => {
                                break Wake::Ws(Some(Message::Text(t)));
                            }
                            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                                break Wake::Ws(None)
                            }
                            Some(Ok(_)) => continue,
                        }
                    },
                    None => smol::future::pending().await,
                }
            })
            .or(async {
                match deadline {
                    Some(t) => Timer::at(t).await,
                    None => smol::future::pending().await,
                };
                Wake::Timer
            })
            .await;
        match wake {
            Wake::Cmd(None) => {
                // The handle was dropped: close politely.
                client.close();
                if let Some(mut w) = ws.take() {
                    let _ = w.close(None).await;
                }
                return;
            }
            Wake::Cmd(Some(Cmd::Send(t))) => client.send_text(t),
            Wake::Cmd(Some(Cmd::Announce(a))) => client.announce_text(a),
            Wake::Ws(Some(Message::Text(t))) => client.handle_text(t.as_str()),
            Wake::Ws(_) => {
                ws = None;
                client.disconnected(Instant::now());
            }
            Wake::Timer => client.handle_timeout(Instant::now()),
        }
    }
}
