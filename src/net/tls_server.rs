//! The server's end of TLS: a handshake that the poller drives without
//! waiting, and the stream a worker reads and writes once it is done.

use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::net::now::Now;
use crate::net::tcp::TcpTransport;
use crate::net::tls::exporter;
#[cfg(any(test, feature = "testing"))]
use crate::net::tls::handshake;
use crate::net::{readable_within, Transport};
use crate::wire::binding::Tag;

/// Most socket reads one step of a handshake makes, so that a peer that
/// keeps sending cannot keep the poller to itself; the socket stays
/// readable and the next round goes on.
const READS_PER_STEP: usize = 16;

/// A server handshake over bytes, with no socket inside: the login feeds
/// it what arrived ([`ServerHandshake::feed`]) and sends what it writes
/// into an output buffer, so that it can be driven by the poller and
/// tested one byte at a time. Then the client's first application bytes
/// (its login tag) are read the same way.
pub struct ServerHandshake {
    conn: ServerConnection,
}

impl ServerHandshake {
    /// A handshake about to start.
    ///
    /// Fails when the configuration is unusable.
    pub(crate) fn new(config: Arc<ServerConfig>) -> io::Result<ServerHandshake> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(ServerHandshake { conn })
    }

    /// Takes the records in `bytes` (all of them: rustls buffers a partial
    /// record) and appends the answers due to `out`. Returns whether the
    /// handshake is over.
    ///
    /// Fails when the peer breaks the protocol; the alert that says why is
    /// in `out` all the same.
    pub(crate) fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<u8>) -> io::Result<bool> {
        let mut result = Ok(());
        while !bytes.is_empty() && result.is_ok() {
            result = self.conn.read_tls(&mut bytes).and_then(|_| {
                self.conn
                    .process_new_packets()
                    .map(drop)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
            });
        }
        // Written even after an error: it may be the alert that says why.
        self.flight(out)?;
        result?;
        Ok(!self.conn.is_handshaking())
    }

    fn flight(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(out)?;
        }
        Ok(())
    }

    /// Decrypted application bytes that have arrived, into `buf`;
    /// `WouldBlock` when none has.
    ///
    /// Fails when the peer closed.
    pub(crate) fn read_plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.conn.reader().read(buf) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            other => other,
        }
    }

    /// Encrypts `bytes` into `out`.
    ///
    /// Fails only when rustls refuses to (a closed connection).
    pub(crate) fn send(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        self.conn.writer().write_all(bytes)?;
        self.flight(out)
    }

    /// This connection's channel-binding value.
    ///
    /// Fails only before the handshake is complete.
    pub(crate) fn exporter(&self) -> io::Result<Tag> {
        exporter(&self.conn)
    }

    /// Appends close_notify to `out`.
    pub(crate) fn close(&mut self, out: &mut Vec<u8>) {
        self.conn.send_close_notify();
        let _ = self.flight(out);
    }

    /// The stream a worker uses from now on, over `transport`'s socket.
    pub(crate) fn into_transport(self, transport: TcpTransport) -> TlsTransport {
        TlsTransport {
            stream: StreamOwned::new(self.conn, transport),
        }
    }
}

/// The server end: TLS over the deadline-bound TCP transport, so that a
/// peer that stalls inside TLS is dropped like any other.
pub struct TlsTransport {
    stream: StreamOwned<ServerConnection, TcpTransport>,
}

impl TlsTransport {
    #[cfg(any(test, feature = "testing"))]
    /// Accepts TLS on `transport` and finishes the handshake, blocking:
    /// for benchmarks and tests that want a plain TLS server.
    ///
    /// Fails when the handshake fails or times out.
    pub fn accept(config: Arc<ServerConfig>, transport: TcpTransport) -> io::Result<TlsTransport> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        let mut stream = StreamOwned::new(conn, transport);
        handshake(&mut *stream.conn, &mut stream.sock)?;
        Ok(TlsTransport { stream })
    }

    #[cfg(any(test, feature = "testing"))]
    /// This connection's channel-binding value.
    ///
    /// Fails only before the handshake is complete.
    pub fn exporter(&self) -> io::Result<Tag> {
        exporter(&self.stream.conn)
    }

    #[cfg(any(test, feature = "testing"))]
    /// Sends close_notify and gives back the TCP stream, for a graceful
    /// close after an error reply.
    pub fn close(mut self) -> std::net::TcpStream {
        self.stream.conn.send_close_notify();
        let _ = self.stream.conn.complete_io(&mut self.stream.sock);
        self.stream.sock.into_inner()
    }

    /// Pulls the records that have arrived into rustls, without waiting.
    /// Returns false at the end of the stream.
    fn pull_now(&mut self) -> io::Result<bool> {
        let Some(socket) = self.stream.sock.socket() else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let got = self.stream.conn.read_tls(&mut Now(socket))?;
        if got == 0 {
            return Ok(false);
        }
        let state = self.stream.conn.process_new_packets();
        // A record rustls answers (a key update, say) is sent at once.
        if self.stream.conn.wants_write() {
            let _ = self.stream.conn.write_tls(&mut Now(socket));
        }
        state.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(true)
    }
}

impl Read for TlsTransport {
    /// Waits for at least one record, then takes every record that has
    /// already arrived, without waiting for more. A TLS stream otherwise
    /// yields one 16 KiB record per read, and an upload would pay a write
    /// into the page cache for each; this keeps writes as large as a plain
    /// TCP read would make them, and bytes still land as soon as they come.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = match self.stream.read(buf) {
            // A close without close_notify reads as a plain close, as over
            // TCP: between commands it is how many clients leave, and in
            // the middle of a message it is a truncation either way, which
            // never commits an upload.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            other => other?,
        };
        while n > 0 && n < buf.len() {
            match self.stream.conn.reader().read(&mut buf[n..]) {
                Ok(got) if got > 0 => n += got,
                _ if readable_within(self.stream.sock.tcp(), Duration::ZERO) => {
                    // Errors stay with the connection and surface on the
                    // next read; what was decrypted so far is good.
                    let read = self.stream.conn.read_tls(&mut self.stream.sock);
                    if !matches!(read, Ok(got) if got > 0)
                        || self.stream.conn.process_new_packets().is_err()
                    {
                        break;
                    }
                }
                _ => break,
            }
        }
        Ok(n)
    }
}

impl Write for TlsTransport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Transport for TlsTransport {
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.stream.sock.set_deadline(deadline);
    }
    fn socket(&self) -> Option<BorrowedFd<'_>> {
        self.stream.sock.socket()
    }
    /// Bounded like a handshake step: a peer streaming records that hold
    /// no data (empty ones, say) gets `WouldBlock` after a while, and its
    /// socket, still readable, comes back in the poller's next round.
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // The last round only reads: what its pull decrypted is taken
        // before giving up, since the socket may never turn readable again
        // for it.
        for pulls_left in (0..=READS_PER_STEP).rev() {
            match self.stream.conn.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                other => return other,
            }
            if pulls_left == 0 {
                break;
            }
            if !self.pull_now()? {
                return Ok(0);
            }
        }
        Err(io::ErrorKind::WouldBlock.into())
    }

    /// Takes at most what rustls buffers (64 KiB of records by default),
    /// and only once the records before are out, so the bytes a slow
    /// peer leaves waiting stay bounded.
    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.flush_now()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = self.stream.conn.writer().write(buf)?;
        self.flush_now()?;
        match taken {
            0 if !buf.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    fn flush_now(&mut self) -> io::Result<bool> {
        let Some(socket) = self.stream.sock.socket() else {
            return Ok(true);
        };
        while self.stream.conn.wants_write() {
            match self.stream.conn.write_tls(&mut Now(socket)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}
