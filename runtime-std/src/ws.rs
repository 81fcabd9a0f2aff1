//! WebSocket plumbing for threads: one thread blocks reading, another writes.
//!
//! tungstenite keeps reading and writing in one object, and a reader answers pings
//! and close frames by writing. So the reading side gets a [`ReadHalf`]: its reads
//! come from the socket, and its writes (whole frames, already encoded) go as bytes
//! to the writing thread, which puts them on the socket between its own frames.

use std::io::{self, Read, Write};
use std::net::TcpStream;

/// The stream of the reading side: reads from the socket, hands writes to `forward`.
pub struct ReadHalf<F: FnMut(Vec<u8>) -> bool> {
    /// The socket.
    pub stream: TcpStream,
    /// Takes bytes the reader's WebSocket wants written; false if the writer is gone.
    pub forward: F,
}

impl<F: FnMut(Vec<u8>) -> bool> Read for ReadHalf<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }
}

impl<F: FnMut(Vec<u8>) -> bool> Write for ReadHalf<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if (self.forward)(buf.to_vec()) {
            Ok(buf.len())
        } else {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
