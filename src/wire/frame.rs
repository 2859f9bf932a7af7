//! Framing: a 4-byte little-endian signed length, then that many bytes of a
//! UTF-8 JSON object.
//!
//! This is the seed's `struct.pack('i', len(header))` followed by the header.
//! Nothing here knows about sockets: readers and writers are any `Read` or
//! `Write`, so tests run on byte buffers.

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::wire::error::{Result, WireError};

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Largest header the server accepts from a client. Checked before anything
/// is allocated.
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// Largest reply the client accepts from a server: a listing of many files
/// is the biggest reply there is.
pub const MAX_REPLY_LEN: usize = 16 * 1024 * 1024;

/// Encodes `body` as one frame: the length prefix followed by the body.
///
/// Fails when the body does not fit the signed 32-bit length.
pub fn encode(body: &[u8]) -> Result<Vec<u8>> {
    let len = i32::try_from(body.len()).map_err(|_| WireError::FrameTooLarge {
        len: body.len() as u64,
        max: i32::MAX as u64,
    })?;
    let mut out = Vec::with_capacity(LEN_PREFIX + body.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Serializes `value` as JSON and encodes it as one frame.
pub fn encode_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let body = serde_json::to_vec(value).map_err(|e| WireError::Malformed(e.to_string()))?;
    encode(&body)
}

/// Writes `value` as one JSON frame with a single `write_all`, so that a frame
/// is never split across two small TCP segments by us.
///
/// Fails when the writer fails.
pub fn write_json<W: Write, T: Serialize>(writer: &mut W, value: &T) -> Result<()> {
    let frame = encode_json(value)?;
    writer
        .write_all(&frame)
        .and_then(|()| writer.flush())
        .map_err(|e| WireError::io("sending a message", e))
}

/// Reads one frame's body, at most `max` bytes long.
///
/// Returns `Ok(None)` when the reader is at its end before the first byte
/// of a frame: the peer hung up between messages. Fails with
/// [`WireError::NegativeLength`] or [`WireError::FrameTooLarge`] before reading or
/// allocating the body, and with [`WireError::Truncated`] if the peer stops
/// inside the frame.
pub fn read<R: Read>(reader: &mut R, max: usize) -> Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; LEN_PREFIX];
    let got = read_full(reader, &mut prefix)?;
    if got == 0 {
        return Ok(None);
    }
    whole("frame length", got, LEN_PREFIX)?;
    let len = body_len(prefix, max)?;
    let mut body = vec![0u8; len];
    let got = read_full(reader, &mut body)?;
    whole("frame", got, len)?;
    Ok(Some(body))
}

/// What the bytes of a frame received so far amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// This many more bytes finish the part under way (the length, then
    /// the body). Reading exactly that many never takes a byte past the
    /// frame from the stream, so what follows stays there for whoever
    /// reads next.
    Need(usize),
    /// The frame is whole: its body is everything after the length.
    Whole,
}

/// Decodes the start of a frame without any I/O: `buf` holds the bytes
/// received so far, never more than one frame.
///
/// Fails with [`WireError::NegativeLength`] or [`WireError::FrameTooLarge`] as soon
/// as the length is in, before anything is allocated for the body.
pub fn decode(buf: &[u8], max: usize) -> Result<Decoded> {
    let Some(prefix) = buf.first_chunk::<LEN_PREFIX>() else {
        return Ok(Decoded::Need(LEN_PREFIX - buf.len()));
    };
    let len = body_len(*prefix, max)?;
    let have = buf.len() - LEN_PREFIX;
    Ok(match have < len {
        true => Decoded::Need(len - have),
        false => Decoded::Whole,
    })
}

/// The body length a prefix announces, if it is acceptable.
fn body_len(prefix: [u8; LEN_PREFIX], max: usize) -> Result<usize> {
    let len = i32::from_le_bytes(prefix);
    if len < 0 {
        return Err(WireError::NegativeLength(len));
    }
    let len = len as usize;
    if len > max {
        return Err(WireError::FrameTooLarge {
            len: len as u64,
            max: max as u64,
        });
    }
    Ok(len)
}

/// Whether bytes that stand where a login answer should (16 of them) are
/// the start of a frame instead: a small length, at least as long as those
/// bytes so that all of them belong to the header, then `{`.
pub fn starts_a_frame(bytes: &[u8]) -> bool {
    let Some(prefix) = bytes.first_chunk::<LEN_PREFIX>() else {
        return false;
    };
    let shortest = bytes.len().saturating_sub(LEN_PREFIX).max(1);
    body_len(*prefix, MAX_HEADER_LEN).is_ok_and(|len| len >= shortest)
        && bytes.get(LEN_PREFIX) == Some(&b'{')
}

/// One frame arriving in pieces, for a poller that reads whatever has
/// come and a worker that wants the whole header: memory grows with the
/// bytes that arrived, never with the length a peer claims.
#[derive(Debug, Default)]
pub struct Incoming {
    buf: Vec<u8>,
}

impl Incoming {
    /// A frame whose first bytes (read to tell a dialect apart) are `start`.
    pub fn starting_with(start: &[u8]) -> Incoming {
        Incoming {
            buf: start.to_vec(),
        }
    }

    /// How many bytes to read next (0 when the frame is whole), under the
    /// limit `max`.
    ///
    /// Fails like [`decode`].
    pub fn wanted(&self, max: usize) -> Result<usize> {
        Ok(match decode(&self.buf, max)? {
            Decoded::Need(n) => n,
            Decoded::Whole => 0,
        })
    }

    /// Appends bytes that arrived.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether no byte of the frame has come yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Bytes received so far, for telling a dialect apart.
    pub fn received(&self) -> &[u8] {
        &self.buf
    }

    /// The body of a whole frame.
    pub fn into_body(mut self) -> Vec<u8> {
        self.buf.drain(..LEN_PREFIX.min(self.buf.len()));
        self.buf
    }
}

/// Reads one frame and parses it as JSON into `T`.
///
/// Fails like [`read`], with [`WireError::Closed`] at a clean end of input, and
/// with [`WireError::Malformed`] when the body is not the expected JSON.
pub fn read_json<R: Read, T: DeserializeOwned>(reader: &mut R, max: usize) -> Result<T> {
    let body = read(reader, max)?.ok_or(WireError::Closed)?;
    serde_json::from_slice(&body).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Fails with [`WireError::Truncated`] unless `got` bytes of `what` are all
/// `expected`: what follows a [`read_full`] that needed every byte.
pub(crate) fn whole(what: &'static str, got: usize, expected: usize) -> Result<()> {
    if got < expected {
        return Err(WireError::Truncated {
            what,
            expected: expected as u64,
            got: got as u64,
        });
    }
    Ok(())
}

/// Fills `buf` as far as the reader allows; returns how many bytes arrived.
/// Short only at end of input.
///
/// Fails when the reader does.
pub fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(WireError::io("reading from the connection", e)),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn frame(len: i32, body: &[u8]) -> Vec<u8> {
        let mut v = len.to_le_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn encodes_like_python_struct_pack_i() {
        // struct.pack('i', 5) == b'\x05\x00\x00\x00'
        assert_eq!(encode(b"hello").unwrap(), b"\x05\x00\x00\x00hello");
    }

    #[test]
    fn reads_back_what_it_writes() {
        let mut buf = Vec::new();
        write_json(&mut buf, &serde_json::json!({"cmd": "echo", "text": "hi"})).unwrap();
        let mut cur = Cursor::new(buf);
        let v: serde_json::Value = read_json(&mut cur, MAX_HEADER_LEN).unwrap();
        assert_eq!(v["text"], "hi");
        assert!(read(&mut cur, MAX_HEADER_LEN).unwrap().is_none());
    }

    #[test]
    fn two_frames_back_to_back() {
        let mut buf = frame(2, b"{}");
        buf.extend(frame(7, b"{\"a\":1}"));
        let mut cur = Cursor::new(buf);
        assert_eq!(read(&mut cur, 100).unwrap().unwrap(), b"{}");
        assert_eq!(read(&mut cur, 100).unwrap().unwrap(), b"{\"a\":1}");
        assert!(read(&mut cur, 100).unwrap().is_none());
    }

    #[test]
    fn oversized_is_refused_before_reading_the_body() {
        let err = read(&mut Cursor::new(frame(100_000_000, b"")), MAX_HEADER_LEN).unwrap_err();
        assert_eq!(err.to_string(), "frame too large: 100000000 > 65536 bytes");
    }

    #[test]
    fn negative_length_is_refused() {
        let err = read(&mut Cursor::new(frame(-1, b"")), MAX_HEADER_LEN).unwrap_err();
        assert!(matches!(err, WireError::NegativeLength(-1)), "{err}");
    }

    #[test]
    fn truncated_prefix_and_body_are_reported() {
        let err = read(&mut Cursor::new(vec![1u8, 0]), 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "connection closed in the middle of the frame length: got 2 of 4 bytes"
        );
        let err = read(&mut Cursor::new(frame(10, b"{\"a\"")), 100).unwrap_err();
        assert_eq!(
            err.to_string(),
            "connection closed in the middle of the frame: got 4 of 10 bytes"
        );
    }

    #[test]
    fn malformed_json_is_an_error_not_a_panic() {
        let err =
            read_json::<_, serde_json::Value>(&mut Cursor::new(frame(3, b"{x}")), 100).unwrap_err();
        assert!(matches!(err, WireError::Malformed(_)), "{err}");
    }

    #[test]
    fn zero_length_frame_reads_as_empty_body() {
        assert_eq!(
            read(&mut Cursor::new(frame(0, b"")), 100).unwrap().unwrap(),
            b""
        );
    }

    #[test]
    fn exactly_max_is_accepted() {
        let body = vec![b' '; 16];
        assert!(read(&mut Cursor::new(frame(16, &body)), 16)
            .unwrap()
            .is_some());
        assert!(read(&mut Cursor::new(frame(17, &body)), 16).is_err());
    }

    #[test]
    fn the_decoder_asks_for_exactly_what_finishes_each_part() {
        let bytes = frame(7, b"{\"a\":1}");
        assert_eq!(decode(&[], 100).unwrap(), Decoded::Need(4));
        assert_eq!(decode(&bytes[..3], 100).unwrap(), Decoded::Need(1));
        assert_eq!(decode(&bytes[..4], 100).unwrap(), Decoded::Need(7));
        assert_eq!(decode(&bytes[..9], 100).unwrap(), Decoded::Need(2));
        assert_eq!(decode(&bytes, 100).unwrap(), Decoded::Whole);
    }

    #[test]
    fn a_frame_fed_byte_by_byte_or_at_once_is_the_same_frame() {
        let bytes = frame(7, b"{\"a\":1}");
        let mut one_by_one = Incoming::default();
        let mut reads = 0;
        while one_by_one.wanted(100).unwrap() > 0 {
            one_by_one.extend(&bytes[reads..reads + 1]);
            reads += 1;
        }
        assert_eq!(reads, bytes.len(), "never asks past the frame");
        let mut at_once = Incoming::default();
        let mut at = 0;
        while let n @ 1.. = at_once.wanted(100).unwrap() {
            at_once.extend(&bytes[at..at + n]);
            at += n;
        }
        assert_eq!(one_by_one.into_body(), b"{\"a\":1}");
        assert_eq!(at_once.into_body(), b"{\"a\":1}");
    }

    #[test]
    fn the_decoder_refuses_a_bad_length_before_the_body() {
        let err = decode(&frame(100_000_000, b""), MAX_HEADER_LEN).unwrap_err();
        assert_eq!(err.to_string(), "frame too large: 100000000 > 65536 bytes");
        assert!(matches!(
            Incoming::starting_with(&frame(-5, b"")).wanted(10),
            Err(WireError::NegativeLength(-5))
        ));
    }
}
