//! The server's view of a TCP connection: reads bounded by the idle
//! timeout and by per-message deadlines.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::net::Transport;

/// How long one blocking read waits before the transport checks its
/// limits: the most by which a deadline can be overrun.
const PROBE: Duration = Duration::from_secs(1);

/// A TCP stream whose reads fail after the idle timeout, or at a deadline
/// however the bytes trickle in, so a slowloris peer is dropped too.
///
/// The socket's own timeout is set once, to [`PROBE`]; longer waits are
/// made of several probes, so the hot path costs no extra system calls.
pub struct TcpTransport {
    stream: TcpStream,
    idle: Duration,
    deadline: Option<Instant>,
    /// The socket's usual timeout.
    probe: Duration,
    /// The timeout set on the socket now.
    timeout: Duration,
}

/// The socket read timeout a transport with this idle timeout uses.
fn probe_for(idle: Duration) -> Duration {
    PROBE.min(idle).max(Duration::from_millis(1))
}

/// Sets on a listening socket what every connection it accepts needs, so
/// that accepted sockets inherit it (Linux copies these options) and a
/// connection costs no system call for them: no Nagle delay, writes that
/// give up after the idle timeout, the read timeout [`TcpTransport`]
/// expects, and keepalive, so that a peer whose host vanished frees its
/// slot (and its upload's name) in about two and a half minutes (60 s,
/// then the kernel's probes every 10 s), not only at the idle timeout.
///
/// Fails when an option cannot be set.
pub(crate) fn configure_listener(socket: &socket2::Socket, idle: Duration) -> io::Result<()> {
    socket.set_tcp_nodelay(true)?;
    socket.set_write_timeout(Some(idle))?;
    socket.set_read_timeout(Some(probe_for(idle)))?;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10));
    socket.set_tcp_keepalive(&keepalive)
}

impl TcpTransport {
    #[cfg(any(test, feature = "testing"))]
    /// Wraps a stream, setting its read timeout.
    ///
    /// Fails when the socket's timeout cannot be set.
    pub fn new(stream: TcpStream, idle: Duration) -> io::Result<TcpTransport> {
        stream.set_read_timeout(Some(probe_for(idle)))?;
        Ok(TcpTransport::accepted(stream, idle))
    }

    /// Wraps a stream accepted from a listener set up by
    /// [`configure_listener`] with the same idle timeout, which gave it its
    /// read timeout already.
    pub(crate) fn accepted(stream: TcpStream, idle: Duration) -> TcpTransport {
        let probe = probe_for(idle);
        TcpTransport {
            stream,
            idle,
            deadline: None,
            probe,
            timeout: probe,
        }
    }

    /// The socket, for asking about it without reading.
    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.stream
    }

    /// The stream, for closing it gracefully.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn into_inner(self) -> TcpStream {
        self.stream
    }
}

impl TcpTransport {
    /// A deadline closer than one probe shortens the socket's timeout to
    /// it, so that short waits (telling a dialect apart) end on time; the
    /// probe is restored afterwards. Costs a system call only then.
    fn fit_timeout(&mut self, limit: Instant) -> io::Result<()> {
        let left = limit.saturating_duration_since(Instant::now());
        let wanted = match left < self.probe {
            true => left.max(Duration::from_millis(1)),
            false => self.probe,
        };
        if wanted != self.timeout {
            self.stream.set_read_timeout(Some(wanted))?;
            self.timeout = wanted;
        }
        Ok(())
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Read for TcpTransport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let limit = self.deadline.unwrap_or_else(|| Instant::now() + self.idle);
        loop {
            if Instant::now() >= limit {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the peer was silent for too long",
                ));
            }
            self.fit_timeout(limit)?;
            match self.stream.read(buf) {
                Err(e) if is_timeout(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(n) => return Ok(n),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for TcpTransport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Transport for TcpTransport {
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }
    fn socket(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        Some(self.stream.as_fd())
    }
    fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::fd::AsFd;
        crate::net::now::recv_now(self.stream.as_fd(), buf)
    }
    fn write_now(&mut self, buf: &[u8]) -> io::Result<usize> {
        use std::os::fd::AsFd;
        crate::net::now::send_now(self.stream.as_fd(), buf)
    }
    fn flush_now(&mut self) -> io::Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn reads_stop_at_the_deadline_even_when_bytes_trickle() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            for _ in 0..40 {
                if s.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let (stream, _) = listener.accept().unwrap();
        let mut t = TcpTransport::new(stream, Duration::from_secs(30)).unwrap();
        t.set_deadline(Some(Instant::now() + Duration::from_millis(500)));
        let started = Instant::now();
        let mut buf = [0u8; 1];
        let mut got = 0;
        let err = loop {
            match t.read(&mut buf) {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert!(got >= 1, "the trickled bytes were read until the deadline");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(t);
        writer.join().unwrap();
    }
}
