//! A writer held to one deadline for a whole reply, however many calls it
//! takes. The socket's own send timeout bounds each call only, so a peer
//! that takes a byte now and then could stretch a long reply, and the
//! worker thread that sends it, without end.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use rustix::net::sockopt::{set_socket_timeout, socket_timeout, Timeout};

use crate::net::Transport;

/// Writes to a stream until a deadline, then fails with `TimedOut`.
///
/// Before each call it sets the socket's send timeout to the time left, so
/// a call blocked on a peer that does not read ends at the deadline too;
/// the timeout the socket had is put back on drop. Streams that are not
/// sockets (tests) are checked between calls only.
pub struct ReplyWriter<'s, S: Transport> {
    stream: &'s mut S,
    within: Duration,
    deadline: Instant,
    /// The socket's send timeout before the reply, once it was changed.
    saved: Option<Option<Duration>>,
}

impl<'s, S: Transport> ReplyWriter<'s, S> {
    /// A writer that must be done `within` from now.
    pub fn new(stream: &'s mut S, within: Duration) -> ReplyWriter<'s, S> {
        ReplyWriter {
            stream,
            within,
            deadline: Instant::now() + within,
            saved: None,
        }
    }

    /// Fails once the deadline has passed; else fits the socket's send
    /// timeout to the time left.
    fn arm(&mut self) -> io::Result<()> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.late());
        }
        if let Some(fd) = self.stream.socket() {
            if self.saved.is_none() {
                self.saved = Some(socket_timeout(fd, Timeout::Send)?);
            }
            // A zero timeout would mean none at all.
            set_socket_timeout(fd, Timeout::Send, Some(left.max(Duration::from_millis(1))))?;
        }
        Ok(())
    }

    fn late(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the peer did not take the whole reply within {} s",
                self.within.as_secs_f64()
            ),
        )
    }

    /// A send that timed out reads as the deadline it met.
    fn check(&self, e: io::Error) -> io::Error {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.late(),
            _ => e,
        }
    }
}

impl<S: Transport> Write for ReplyWriter<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        self.stream.write(buf).map_err(|e| self.check(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.arm()?;
        self.stream.flush().map_err(|e| self.check(e))
    }
}

impl<S: Transport> Drop for ReplyWriter<'_, S> {
    fn drop(&mut self) {
        if let (Some(saved), Some(fd)) = (self.saved, self.stream.socket()) {
            // Failing here leaves the shorter timeout, which only ends a
            // later reply sooner; there is nobody to tell.
            let _ = set_socket_timeout(fd, Timeout::Send, saved);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::tcp::TcpTransport;
    use crate::testing::MemoryStream;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::thread;

    /// A server-side transport, with the peer's end of the connection.
    fn pair() -> (TcpTransport, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        (
            TcpTransport::new(stream, Duration::from_secs(30)).unwrap(),
            peer,
        )
    }

    /// Writes 64 KiB at a time until the writer fails; returns the error
    /// and how long it took.
    fn write_until_refused(w: &mut impl Write) -> (io::Error, Duration) {
        let started = Instant::now();
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..100_000 {
            if let Err(e) = w.write_all(&chunk) {
                return (e, started.elapsed());
            }
        }
        panic!("a gigabyte went through");
    }

    #[test]
    fn a_peer_that_never_reads_meets_the_deadline_not_the_idle_timeout() {
        let (mut server, _peer) = pair();
        let mut w = ReplyWriter::new(&mut server, Duration::from_millis(400));
        let (e, took) = write_until_refused(&mut w);
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(e.to_string().contains("within 0.4 s"), "{e}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        drop(w);
        assert_eq!(
            server.tcp().write_timeout().unwrap(),
            Some(Duration::from_secs(30)),
            "the socket's own timeout is back"
        );
    }

    #[test]
    fn a_peer_that_trickles_meets_the_deadline_for_the_whole_reply() {
        let (mut server, mut peer) = pair();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Each read comes well inside any per-call timeout.
            while !stopped.load(Ordering::SeqCst) && peer.read(&mut buf).is_ok_and(|n| n > 0) {
                thread::sleep(Duration::from_millis(20));
            }
        });
        let mut w = ReplyWriter::new(&mut server, Duration::from_millis(600));
        let (e, took) = write_until_refused(&mut w);
        stop.store(true, Ordering::SeqCst);
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(took < Duration::from_secs(3), "{took:?}");
        reader.join().unwrap();
    }

    #[test]
    fn past_the_deadline_nothing_more_is_written() {
        let mut stream = MemoryStream::default();
        let mut w = ReplyWriter::new(&mut stream, Duration::ZERO);
        assert_eq!(
            w.write(b"late").unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        drop(w);
        assert!(stream.output.is_empty());
    }
}
