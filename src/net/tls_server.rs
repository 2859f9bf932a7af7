//! The server's end of TLS: a handshake that the poller drives without
//! waiting, and the stream a worker reads and writes once it is done.

use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};

use crate::net::now::{send_all_now, Now};
use crate::net::tcp::TcpTransport;
use crate::net::tls::{exporter, handshake};
use crate::net::{readable_within, Transport};
use crate::wire::binding::Tag;

/// Most socket reads one step of a handshake makes, so that a peer that
/// keeps sending cannot keep the poller to itself; the socket stays
/// readable and the next round goes on.
const READS_PER_STEP: usize = 16;

/// A server handshake fed from a socket without ever waiting on it: each
/// [`ServerHandshake::advance`] takes what has arrived and sends what is
/// due. Then the client's first application bytes (its login tag) are
/// read the same way.
pub struct ServerHandshake {
    conn: ServerConnection,
}

impl ServerHandshake {
    /// A handshake about to start.
    ///
    /// Fails when the configuration is unusable.
    pub fn new(config: Arc<ServerConfig>) -> io::Result<ServerHandshake> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(ServerHandshake { conn })
    }

    /// Feeds the records that have arrived and sends the answers due.
    /// Returns whether the handshake is over.
    ///
    /// Fails when the peer closes, breaks the protocol (after its alert
    /// was sent), or leaves the server's flight unread.
    pub fn advance(&mut self, socket: BorrowedFd<'_>) -> io::Result<bool> {
        let result = self.take_records(socket);
        // Sent even after an error: it may be the alert that says why.
        let sent = self.send_due(socket);
        result.and(sent)?;
        Ok(!self.conn.is_handshaking())
    }

    fn take_records(&mut self, socket: BorrowedFd<'_>) -> io::Result<()> {
        for _ in 0..READS_PER_STEP {
            match self.conn.read_tls(&mut Now(socket)) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {
                    self.conn
                        .process_new_packets()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn send_due(&mut self, socket: BorrowedFd<'_>) -> io::Result<()> {
        while self.conn.wants_write() {
            let mut flight = Vec::new();
            self.conn.write_tls(&mut flight)?;
            send_all_now(socket, &flight)?;
        }
        Ok(())
    }

    /// Decrypted application bytes that have arrived, into `buf`;
    /// `WouldBlock` when none has.
    ///
    /// Fails when the peer closed.
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.conn.reader().read(buf) {
            Ok(0) => Err(io::ErrorKind::UnexpectedEof.into()),
            other => other,
        }
    }

    /// Encrypts `bytes` and sends them, without waiting.
    ///
    /// Fails when they do not fit the socket's buffer now.
    pub fn send(&mut self, socket: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<()> {
        self.conn.writer().write_all(bytes)?;
        self.send_due(socket)
    }

    /// This connection's channel-binding value.
    ///
    /// Fails only before the handshake is complete.
    pub fn exporter(&self) -> io::Result<Tag> {
        exporter(&self.conn)
    }

    /// Sends close_notify, without waiting.
    ///
    /// Fails when it does not fit the socket's buffer now.
    pub fn close(&mut self, socket: BorrowedFd<'_>) -> io::Result<()> {
        self.conn.send_close_notify();
        self.send_due(socket)
    }

    /// The stream a worker uses from now on, over `transport`'s socket.
    pub fn into_transport(self, transport: TcpTransport) -> TlsTransport {
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

    /// This connection's channel-binding value.
    ///
    /// Fails only before the handshake is complete.
    pub fn exporter(&self) -> io::Result<Tag> {
        exporter(&self.stream.conn)
    }

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
