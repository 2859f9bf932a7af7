//! Many requests in flight on one connection.
//!
//! Across a link with latency, waiting for each reply before the next
//! request costs one round trip per file. A [`Pipe`] instead gathers
//! requests (and small bodies) into large writes and takes replies as they
//! come, in order; the [`Window`] bounds how much is in flight. The server
//! answers pipelined requests strictly in order (docs/PROTOCOL.md,
//! "Pipelining").
//!
//! The two ends can never block each other: the pipe never waits to write
//! while the server waits for it to read. Its writes do not block (what
//! the socket does not take stays queued), and whenever it waits, it waits
//! for the socket to be readable or writable, whichever comes, and reads
//! what came.

use std::io::{self, Read};

use crate::client::stream::ClientStream;

/// Queued output is handed to the socket once it reaches this many bytes.
const FLUSH_BYTES: usize = 256 * 1024;
/// ...or holds this many requests, so that replies start to flow early.
const FLUSH_REQUESTS: usize = 64;
/// Replies read ahead are held up to this many bytes.
const READ_AHEAD: usize = 256 * 1024;
/// Past this much output the socket has not taken, the batch answers
/// replies before it queues more, so the queue stays bounded.
const BACKLOG: usize = 4 << 20;

/// A connection's two directions with a write queue and a read-ahead
/// buffer. Reading first hands over whatever is queued, so a request is
/// never waited on before it went out.
pub(crate) struct Pipe<'a> {
    stream: &'a mut ClientStream,
    out: Vec<u8>,
    /// How much of `out` the stream has taken.
    sent: usize,
    requests_out: usize,
    input: Vec<u8>,
    taken: usize,
    ended: bool,
}

impl<'a> Pipe<'a> {
    pub(crate) fn new(stream: &'a mut ClientStream) -> Pipe<'a> {
        Pipe {
            stream,
            out: Vec::with_capacity(FLUSH_BYTES),
            sent: 0,
            requests_out: 0,
            input: Vec::new(),
            taken: 0,
            ended: false,
        }
    }

    /// Queues one request (a header, and a small body with its digest
    /// frame) and hands the queue to the socket when it is large enough.
    pub(crate) fn send_request(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(bytes);
        self.requests_out += 1;
        if self.unsent() >= FLUSH_BYTES || self.requests_out >= FLUSH_REQUESTS {
            self.push()?;
        }
        Ok(())
    }

    fn unsent(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Whether the socket has not taken so much that the batch should
    /// answer replies before it queues more.
    pub(crate) fn backlogged(&self) -> bool {
        self.unsent() > BACKLOG
    }

    /// Hands the socket what it takes now, then takes in the replies that
    /// have arrived meanwhile; never waits.
    fn push(&mut self) -> io::Result<()> {
        while self.sent < self.out.len() || self.stream.wants_write() {
            let n = self.stream.write_now(&self.out[self.sent..])?;
            if n == 0 {
                break;
            }
            self.sent += n;
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
        } else if self.sent >= FLUSH_BYTES {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        self.requests_out = 0;
        self.read_ahead()
    }

    /// Waits until the socket has taken everything queued, reading what
    /// comes meanwhile.
    pub(crate) fn flush_out(&mut self) -> io::Result<()> {
        loop {
            self.push()?;
            if self.unsent() == 0 && !self.stream.wants_write() {
                return Ok(());
            }
            self.stream.wait(true)?;
        }
    }

    /// Moves replies that have already arrived into the read-ahead buffer,
    /// without waiting, up to its bound; notes the end of the stream.
    fn read_ahead(&mut self) -> io::Result<()> {
        if self.taken == self.input.len() {
            self.input.clear();
            self.taken = 0;
        }
        while self.input.len() < READ_AHEAD && !self.ended {
            let start = self.input.len();
            self.input.resize(READ_AHEAD, 0);
            let got = self.stream.read_arrived(&mut self.input[start..]);
            match got {
                Ok(Some(0)) => {
                    self.input.truncate(start);
                    self.ended = true;
                }
                Ok(Some(n)) => self.input.truncate(start + n),
                Ok(None) => {
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
    /// Everything queued goes first, so the order holds.
    pub(crate) fn direct(&mut self) -> io::Result<&mut ClientStream> {
        self.flush_out()?;
        Ok(self.stream)
    }

    /// The stream, to change how it is watched (not to read or write it).
    pub(crate) fn stream(&mut self) -> &mut ClientStream {
        self.stream
    }

    /// Whether replies wait in the read-ahead buffer.
    pub(crate) fn has_input(&self) -> bool {
        self.taken < self.input.len()
    }
}

impl Read for Pipe<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while !self.has_input() {
            self.push()?;
            if self.has_input() {
                break;
            }
            if self.ended {
                return Ok(0);
            }
            let queued = self.unsent() > 0 || self.stream.wants_write();
            self.stream.wait(queued)?;
        }
        let n = buf.len().min(self.input.len() - self.taken);
        buf[..n].copy_from_slice(&self.input[self.taken..self.taken + n]);
        self.taken += n;
        Ok(n)
    }
}

/// How much a batch may have in flight: requests whose replies have not
/// been read, and the replies' bytes as estimated from what they echo (the
/// path). It bounds what a batch keeps track of; the pipe itself cannot
/// block, however much is in flight.
#[derive(Debug)]
pub(crate) struct Window {
    requests: usize,
    reply_bytes: usize,
}

/// Most requests in flight: 16 MiB of 4 KiB files, which keeps a link of
/// 100 ms round trip busy at 160 MB/s.
const MAX_REQUESTS: usize = 4096;
/// Most reply bytes in flight.
const MAX_REPLY_BYTES: usize = 2 << 20;

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
        let huge = Window::cost(&"x".repeat(1_100_000));
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
        assert!(n >= 4000, "{n} requests of a short name should fit");
    }
}
