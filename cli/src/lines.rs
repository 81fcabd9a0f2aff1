//! The line loop `replicate` and `join` share: stdin lines and runtime events on one
//! channel, and reports written to stdout.

use std::cell::{Cell, RefCell};
use std::io::{self, BufRead, Write};
use std::sync::mpsc;

use crate::control::Report;

/// What the main loop of `replicate` and `join` waits for: a line of stdin, its end, an
/// event of the runtime, or (for `join --listen`) an accepted TCP link.
pub(crate) enum Msg<E> {
    Line(String),
    Eof,
    Event(E),
    Accepted(std::net::TcpStream),
}

/// Forwards `events` (until they end, or the main loop is gone) on a thread.
pub(crate) fn forward_events<E: Send + 'static>(
    events: impl Iterator<Item = E> + Send + 'static,
    tx: mpsc::Sender<Msg<E>>,
) {
    std::thread::spawn(move || {
        for e in events {
            if tx.send(Msg::Event(e)).is_err() {
                return;
            }
        }
    });
}

/// Forwards the lines of stdin, then its end, on a thread.
pub(crate) fn forward_stdin<E: Send + 'static>(tx: mpsc::Sender<Msg<E>>) {
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if tx.send(Msg::Line(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = tx.send(Msg::Eof);
    });
}

/// Where reports go: stdout, one line each. Lines are written at once, except while the
/// main loop holds them ([`Out::hold`]) to write a burst in one go.
pub(crate) struct Out {
    json: bool,
    buf: RefCell<Vec<u8>>,
    held: Cell<bool>,
}

impl Out {
    pub(crate) fn new(json: bool) -> Out {
        Out {
            json,
            buf: RefCell::new(Vec::new()),
            held: Cell::new(false),
        }
    }

    pub(crate) fn emit(&self, r: &Report<'_>) {
        let line = if self.json {
            r.to_json_line()
        } else {
            r.to_human()
        };
        let mut buf = self.buf.borrow_mut();
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        let full = buf.len() >= 64 * 1024;
        drop(buf);
        if !self.held.get() || full {
            self.write_out();
        }
    }

    /// Keeps lines until [`Out::release`] (or 64 KiB of them).
    pub(crate) fn hold(&self) {
        self.held.set(true);
    }

    /// Writes what was held, and writes at once again.
    pub(crate) fn release(&self) {
        self.held.set(false);
        self.write_out();
    }

    fn write_out(&self) {
        let mut buf = self.buf.borrow_mut();
        if buf.is_empty() {
            return;
        }
        let mut o = io::stdout().lock();
        let _ = o.write_all(&buf);
        let _ = o.flush();
        buf.clear();
    }
}
