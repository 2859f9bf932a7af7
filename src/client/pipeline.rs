//! Many requests in flight on one connection.
//!
//! Across a link with latency, waiting for each reply before the next
//! request costs one round trip per file. A [`Pipe`] instead gathers
//! requests (and small bodies) into large writes and takes replies as they
//! come, in order; the [`Window`] bounds how much is in flight, so that
//! neither side ever blocks writing what the other is not reading. The
//! server answers pipelined requests strictly in order (docs/PROTOCOL.md,
//! "Pipelining").

use std::io::{self, Read, Write};

use crate::client::stream::ClientStream;

/// Pending output is written once it reaches this many bytes.
const FLUSH_BYTES: usize = 256 * 1024;
/// ...or holds this many requests, so that replies start to flow early.
const FLUSH_REQUESTS: usize = 64;
/// Replies read ahead are held up to this many bytes.
const READ_AHEAD: usize = 256 * 1024;

/// A connection's two directions with a write buffer and a read-ahead
/// buffer. Reading first sends whatever is pending, so a request is never
/// waited on before it went out.
pub(crate) struct Pipe<'a> {
    stream: &'a mut ClientStream,
    out: Vec<u8>,
    requests_out: usize,
    input: Vec<u8>,
    taken: usize,
}

impl<'a> Pipe<'a> {
    pub(crate) fn new(stream: &'a mut ClientStream) -> Pipe<'a> {
        Pipe {
            stream,
            out: Vec::with_capacity(FLUSH_BYTES),
            requests_out: 0,
            input: Vec::new(),
            taken: 0,
        }
    }

    /// Queues one request (a header, and a small body with its digest
    /// frame) and writes the queue when it is large enough.
    pub(crate) fn send_request(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        self.requests_out += 1;
        if self.out.len() >= FLUSH_BYTES || self.requests_out >= FLUSH_REQUESTS {
            self.flush_out()?;
        }
        Ok(())
    }

    /// Writes everything queued, then takes in the replies that have
    /// arrived meanwhile.
    pub(crate) fn flush_out(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out)?;
            self.out.clear();
            self.requests_out = 0;
        }
        self.read_ahead()
    }

    /// Moves replies that have already arrived into the read-ahead buffer,
    /// without waiting, up to its bound.
    fn read_ahead(&mut self) -> io::Result<()> {
        if self.taken == self.input.len() {
            self.input.clear();
            self.taken = 0;
        }
        while self.input.len() < READ_AHEAD {
            let start = self.input.len();
            self.input.resize(READ_AHEAD, 0);
            let got = self.stream.read_arrived(&mut self.input[start..]);
            match got {
                Ok(Some(n)) if n > 0 => self.input.truncate(start + n),
                // Nothing more now, or the end: a blocking read will say which.
                Ok(_) => {
                    self.input.truncate(start);
                    break;
                }
                Err(e) => {
                    self.input.truncate(start);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The stream itself, for what bypasses the buffers: a large body.
    /// Pending requests are written first, so the order holds.
    pub(crate) fn direct(&mut self) -> io::Result<&mut ClientStream> {
        self.flush_out()?;
        Ok(self.stream)
    }

    /// Whether replies wait in the read-ahead buffer.
    pub(crate) fn has_input(&self) -> bool {
        self.taken < self.input.len()
    }
}

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.has_input() {
            if !self.out.is_empty() {
                self.flush_out()?;
            }
            if !self.has_input() {
                return self.stream.read(buf);
            }
        }
        let n = buf.len().min(self.input.len() - self.taken);
        buf[..n].copy_from_slice(&self.input[self.taken..self.taken + n]);
        self.taken += n;
        Ok(n)
    }
}

/// How much a batch may have in flight: requests whose replies have not
/// been read. Replies are estimated from what they echo (the path), so
/// that all of them fit in the socket buffers between the two ends even if
/// the client reads none of them for a while.
#[derive(Debug)]
pub(crate) struct Window {
    requests: usize,
    reply_bytes: usize,
}

/// Most requests in flight.
const MAX_REQUESTS: usize = 1024;
/// Most reply bytes in flight: below the smallest receive plus send
/// buffer Linux starts a connection with (128 KiB + 16 KiB).
const MAX_REPLY_BYTES: usize = 96 * 1024;

impl Window {
    pub(crate) fn new() -> Window {
        Window {
            requests: 0,
            reply_bytes: 0,
        }
    }

    /// The reply to a request about `path` is counted from when it is sent.
    pub(crate) fn cost(path: &str) -> usize {
        // A reply's fixed fields with a digest, in its own TLS record, and
        // the path twice over (a name's quotes and backslashes are escaped).
        192 + 2 * path.len()
    }

    /// Whether one more request of this cost may go out now.
    pub(crate) fn has_room(&self, cost: usize) -> bool {
        self.requests == 0
            || (self.requests < MAX_REQUESTS && self.reply_bytes + cost <= MAX_REPLY_BYTES)
    }

    pub(crate) fn sent(&mut self, cost: usize) {
        self.requests += 1;
        self.reply_bytes += cost;
    }

    pub(crate) fn answered(&mut self, cost: usize) {
        self.requests -= 1;
        self.reply_bytes -= cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_bounds_requests_and_reply_bytes_but_always_lets_one_through() {
        let mut w = Window::new();
        let huge = Window::cost(&"x".repeat(50_000));
        assert!(w.has_room(huge), "an empty window takes any request");
        w.sent(huge);
        assert!(!w.has_room(Window::cost("a")));
        w.answered(huge);
        let small = Window::cost("a.txt");
        let mut n = 0;
        while w.has_room(small) {
            w.sent(small);
            n += 1;
        }
        assert!(n <= MAX_REQUESTS && n * small <= MAX_REPLY_BYTES, "{n}");
        assert!(n >= 250, "{n} requests of a short name should fit");
    }
}
