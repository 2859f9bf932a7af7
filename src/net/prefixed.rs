//! A stream with some bytes already read from it put back in front: what
//! the server read to tell a dialect apart still belongs to the session.

use std::io::{self, Read, Write};
use std::time::Instant;

use crate::net::Transport;

/// Reads `prefix` first, then the stream; writes go to the stream.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` to be read again first.
    pub fn new(prefix: Vec<u8>, inner: S) -> Prefixed<S> {
        Prefixed {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: Read> Read for Prefixed<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at < self.prefix.len() {
            let n = (self.prefix.len() - self.at).min(buf.len());
            buf[..n].copy_from_slice(&self.prefix[self.at..self.at + n]);
            self.at += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Prefixed<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<S: Transport> Transport for Prefixed<S> {
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.inner.set_deadline(deadline);
    }
    fn socket(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.inner.socket()
    }
    fn has_buffered(&mut self) -> bool {
        self.at < self.prefix.len() || self.inner.has_buffered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_comes_back_first() {
        let mut p = Prefixed::new(b"ab".to_vec(), &b"cd"[..]);
        let mut all = String::new();
        p.read_to_string(&mut all).unwrap();
        assert_eq!(all, "abcd");
    }
}
