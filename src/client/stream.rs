//! The client's connection, plain (the seed's dialect) or TLS.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::net::stall::StallGuard;
use crate::net::tls::ClientTls;

/// A logged-in connection in the dialect the login chose, failing once
/// nothing moved for the stall timeout.
pub(crate) enum ClientStream {
    /// The seed's plaintext dialect (only with `--allow-unproven-server`).
    Plain(StallGuard),
    /// TLS 1.3, the default.
    Tls(Box<ClientTls<StallGuard>>),
}

impl ClientStream {
    fn sock(&mut self) -> &mut StallGuard {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(t) => &mut t.sock,
        }
    }

    /// Starts a new budget for a command (see [`StallGuard::restart`]).
    pub(crate) fn restart(&mut self, grace: Duration, rate: Option<u64>) {
        self.sock().restart(grace, rate);
    }

    /// Stops any wait on the server once `flag` is raised.
    pub(crate) fn set_interrupt(&mut self, flag: Option<Arc<AtomicBool>>) {
        self.sock().set_interrupt(flag);
    }

    /// Says goodbye: TLS close_notify, so the server sees a clean end.
    /// Nothing is tried on a stalled connection.
    pub(crate) fn close(&mut self) {
        if self.sock().has_stalled() {
            return;
        }
        if let ClientStream::Tls(t) = self {
            t.conn.send_close_notify();
            let _ = t.conn.complete_io(&mut t.sock);
        }
    }

    /// Bytes read, and bytes written, since the connection was made.
    pub(crate) fn totals(&mut self) -> [u64; 2] {
        self.sock().totals()
    }

    /// Whether the connection was given up for a stall or a late reply.
    pub(crate) fn has_stalled(&mut self) -> bool {
        self.sock().has_stalled()
    }

    /// Closes both directions at once, without waiting.
    pub(crate) fn shutdown(&mut self) {
        let _ = self.sock().tcp().shutdown(Shutdown::Both);
    }

    /// Reads what the server sent before the connection broke, without
    /// writing anything more (TLS would try to flush first, and fail):
    /// how a refusal that came mid-upload is still heard. A stalled
    /// connection has nothing to say and is not waited for again.
    pub(crate) fn salvage(&mut self) -> Vec<u8> {
        let mut got = Vec::new();
        if self.sock().has_stalled() {
            return got;
        }
        match self {
            ClientStream::Plain(s) => {
                let _ = s.take(1 << 16).read_to_end(&mut got);
            }
            ClientStream::Tls(t) => {
                while matches!(t.conn.read_tls(&mut t.sock), Ok(n) if n > 0) {}
                let _ = t.conn.process_new_packets();
                let _ = t.conn.reader().take(1 << 16).read_to_end(&mut got);
            }
        }
        got
    }

    /// Whether the server has closed this idle connection (after its idle
    /// timeout, say). Anything that arrives unasked also counts: between
    /// commands the stream would be out of step.
    pub(crate) fn peer_closed(&mut self) -> bool {
        let mut probe = [0u8; 1];
        !matches!(self.read_arrived(&mut probe), Ok(None))
    }
}

impl ClientStream {
    /// Reads what has already arrived, without waiting: `None` when
    /// nothing has. A pipelined batch takes its replies this way between
    /// writes, so that the server never blocks on a reply the client has
    /// not read while the client blocks on a request the server has not.
    pub(crate) fn read_arrived(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        if let ClientStream::Tls(t) = self {
            match t.conn.reader().read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(plain_eof(e)),
            }
        }
        self.sock().set_nonblocking(true)?;
        let got = match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(t) => match t.conn.read_tls(&mut t.sock) {
                Ok(0) => Ok(0),
                Ok(_) => match t.conn.process_new_packets() {
                    Ok(_) => match t.conn.reader().read(buf) {
                        // Only a part of a record came: nothing to hand over yet.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            Err(io::ErrorKind::WouldBlock.into())
                        }
                        other => other.map_err(plain_eof),
                    },
                    Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
                },
                Err(e) => Err(e),
            },
        };
        self.sock().set_nonblocking(false)?;
        match got {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl ClientStream {
    /// Writes what it can of `buf` without waiting: how many bytes were
    /// taken (0 when the socket is full). Under TLS the bytes taken may
    /// still wait in the session ([`ClientStream::wants_write`]).
    pub(crate) fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock().set_nonblocking(true)?;
        let taken = match self {
            ClientStream::Plain(s) => would_block_is_none(s.write(buf)),
            ClientStream::Tls(t) => {
                let flushed = flush_tls(t)?;
                let taken = match flushed {
                    true => t.conn.writer().write(buf)?,
                    false => 0,
                };
                flush_tls(t)?;
                Ok(Some(taken))
            }
        };
        self.sock().set_nonblocking(false)?;
        Ok(taken?.unwrap_or(0))
    }

    /// Whether bytes taken by [`ClientStream::write_now`] still wait to go.
    pub(crate) fn wants_write(&self) -> bool {
        match self {
            ClientStream::Plain(_) => false,
            ClientStream::Tls(t) => t.conn.wants_write(),
        }
    }

    /// Whether decrypted bytes wait to be read, with no need to wait on
    /// the socket.
    fn has_plaintext(&mut self) -> bool {
        match self {
            ClientStream::Plain(_) => false,
            ClientStream::Tls(t) => t
                .conn
                .process_new_packets()
                .is_ok_and(|s| s.plaintext_bytes_to_read() > 0),
        }
    }

    /// Waits until the server sent something, or until the socket takes
    /// more when `write`; at once when decrypted bytes wait already.
    ///
    /// Fails at the stall timeout, the command's budget, or Ctrl-C.
    pub(crate) fn wait(&mut self, write: bool) -> io::Result<()> {
        if self.has_plaintext() {
            return Ok(());
        }
        self.sock().wait(write)
    }
}

/// Sends the TLS records the session holds, without waiting; whether all
/// of them went.
fn flush_tls(t: &mut ClientTls<StallGuard>) -> io::Result<bool> {
    while t.conn.wants_write() {
        match t.conn.write_tls(&mut t.sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn would_block_is_none(r: io::Result<usize>) -> io::Result<Option<usize>> {
    match r {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(t) => t.read(buf).map_err(plain_eof),
        }
    }
}

/// A server that hangs up without TLS's goodbye (its idle timeout, a
/// crash) is a closed connection to the user: rustls's own text for it
/// names the protocol's alert and a documentation link.
fn plain_eof(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ),
        _ => e,
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.write(buf),
            ClientStream::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush(),
            ClientStream::Tls(t) => t.flush(),
        }
    }
}
