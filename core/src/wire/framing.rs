//! Framing: chunk sizes, the postcard byte stream (the `RMP1` magic, then
//! `varint(length) frame`), and whole frames from message links.

use super::{Codec, DecodeError, Decoder, Encoder, Framing};
use crate::value::put_varint;

/// Largest chunk an encoder writes on a message link, and the postcard frame size.
pub const FRAME_SIZE: usize = 16 * 1024;

/// The smallest chunk size an encoder accepts: room for any one clock entry.
pub const MIN_FRAME: usize = 512;

/// The magic that opens a postcard byte stream.
pub const MAGIC: &[u8; 4] = b"RMP1";

impl Encoder {
    /// Closes the chunk being filled (a postcard frame ends here).
    pub(super) fn finish_chunk(&mut self) {
        if self.cur.is_empty() {
            return;
        }
        let body = std::mem::take(&mut self.cur);
        let chunk = match (self.codec, self.framing) {
            (Codec::Postcard, Framing::Stream) => {
                let mut c = Vec::with_capacity(body.len() + 8);
                if !self.magic_sent {
                    c.extend_from_slice(MAGIC);
                    self.magic_sent = true;
                }
                put_varint(body.len() as u64, &mut c);
                c.extend_from_slice(&body);
                c
            }
            _ => body,
        };
        self.frame.reset();
        self.ready.push_back(chunk);
    }
}

impl Decoder {
    pub(super) fn push_stream(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        let mut pos = 0;
        if !self.magic_seen {
            if self.buf.len() < MAGIC.len() {
                if !MAGIC.starts_with(&self.buf) {
                    self.fail(DecodeError::BadMagic);
                }
                return;
            }
            if &self.buf[..4] != MAGIC {
                self.fail(DecodeError::BadMagic);
                return;
            }
            self.magic_seen = true;
            pos = 4;
        }
        loop {
            let rest = &self.buf[pos..];
            let (len, used) = match read_varint_prefix(rest) {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(()) => {
                    self.fail(DecodeError::FrameTooLong {
                        len: u64::MAX,
                        max: self.limits.max_frame_len,
                    });
                    return;
                }
            };
            if len > self.limits.max_frame_len as u64 {
                self.fail(DecodeError::FrameTooLong {
                    len,
                    max: self.limits.max_frame_len,
                });
                return;
            }
            let len = len as usize;
            if rest.len() < used + len {
                break;
            }
            let frame = rest[used..used + len].to_vec();
            pos += used + len;
            self.frame(&frame);
        }
        self.buf.drain(..pos);
    }

    /// Decodes one whole postcard frame: all its messages, or one error.
    pub(super) fn frame(&mut self, frame: &[u8]) {
        if frame.len() > self.limits.max_frame_len {
            self.out.push_back(Err(DecodeError::FrameTooLong {
                len: frame.len() as u64,
                max: self.limits.max_frame_len,
            }));
            return;
        }
        // All of the frame's messages, or none: roll back on error.
        let before = self.out.len();
        if let Err(e) = self.decode_frame(frame) {
            self.out.truncate(before);
            self.frag = None;
            self.digest = None;
            self.out.push_back(Err(e));
        }
    }
}

/// Reads a varint length prefix: `Ok(None)` when more bytes are needed.
fn read_varint_prefix(b: &[u8]) -> Result<Option<(u64, usize)>, ()> {
    let mut v: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((v, i + 1)));
        }
    }
    if b.len() >= 10 {
        Err(())
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Limits;

    #[test]
    fn postcard_stream_rejects_bad_magic_and_huge_frames() {
        let mut d = Decoder::new(Codec::Postcard, Framing::Stream, Limits::default());
        d.push(b"XXXX");
        assert_eq!(d.poll_message(), Some(Err(DecodeError::BadMagic)));
        assert!(d.failed());
        let mut d = Decoder::new(Codec::Postcard, Framing::Stream, Limits::default());
        d.push(b"RMP1\xff\xff\xff\xff\x0f");
        assert!(matches!(
            d.poll_message(),
            Some(Err(DecodeError::FrameTooLong { .. }))
        ));
    }
}
