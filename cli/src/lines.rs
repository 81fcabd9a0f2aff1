//! The line loop `replicate` and `join` share: stdin lines and runtime events on one
//! channel, and reports written to stdout.

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

pub(crate) struct Out {
    pub(crate) json: bool,
}

impl Out {
    pub(crate) fn emit(&self, r: &Report<'_>) {
        let line = if self.json {
            r.to_json_line()
        } else {
            r.to_human()
        };
        let mut o = io::stdout().lock();
        let _ = writeln!(o, "{line}");
        let _ = o.flush();
    }
}
