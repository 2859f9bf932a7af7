//! The client's TCP stream: it gives up once no byte has moved for the
//! stall timeout, and stays given up.
//!
//! A socket timeout alone is not enough under TLS. rustls turns a timed-out
//! write (`WouldBlock`) into a read of the same length, and its stream's
//! `write` drops that error and reports the bytes as taken; the next write
//! waits the whole time again. A link that went down thus froze a transfer
//! for several timeouts in a row. Here a timeout becomes `TimedOut`, which
//! rustls passes straight up, and every later call fails at once.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A blocking TCP stream whose reads and writes fail with `TimedOut` once
/// one of them has waited the stall timeout without moving a byte.
#[derive(Debug)]
pub struct StallGuard {
    tcp: TcpStream,
    stall: Duration,
    /// Set by the first stall: nothing more is tried on this stream.
    stalled: bool,
    /// While set, a `WouldBlock` means "nothing yet", not a stall.
    nonblocking: bool,
}

impl StallGuard {
    /// Watches `tcp`, setting its read and write timeouts to `stall`.
    ///
    /// Fails when the timeouts cannot be set.
    pub fn new(tcp: TcpStream, stall: Duration) -> io::Result<StallGuard> {
        let stall = stall.max(Duration::from_millis(1));
        tcp.set_read_timeout(Some(stall))?;
        tcp.set_write_timeout(Some(stall))?;
        Ok(StallGuard {
            tcp,
            stall,
            stalled: false,
            nonblocking: false,
        })
    }

    /// The socket, for shutting it down or asking about it.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Switches to non-blocking calls (to look for what arrived without
    /// waiting) and back.
    ///
    /// Fails when the socket refuses.
    pub fn set_nonblocking(&mut self, on: bool) -> io::Result<()> {
        self.tcp.set_nonblocking(on)?;
        self.nonblocking = on;
        Ok(())
    }

    /// Whether a call has stalled.
    pub fn has_stalled(&self) -> bool {
        self.stalled
    }

    fn stall_error(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "nothing moved for {} s, the stall timeout",
                self.stall.as_secs_f64()
            ),
        )
    }

    fn watch(&mut self, result: io::Result<usize>) -> io::Result<usize> {
        match result {
            Err(e) if is_timeout(&e) && !self.nonblocking => {
                self.stalled = true;
                Err(self.stall_error())
            }
            other => other,
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Read for StallGuard {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stalled {
            return Err(self.stall_error());
        }
        let got = self.tcp.read(buf);
        self.watch(got)
    }
}

impl Write for StallGuard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.stalled {
            return Err(self.stall_error());
        }
        let put = self.tcp.write(buf);
        self.watch(put)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;

    fn pair(stall: Duration) -> (StallGuard, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (StallGuard::new(client, stall).unwrap(), server)
    }

    #[test]
    fn a_silent_peer_stalls_reads_once_and_for_good() {
        let (mut guard, _server) = pair(Duration::from_millis(200));
        let started = Instant::now();
        let err = guard.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            err.to_string(),
            "nothing moved for 0.2 s, the stall timeout"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        let again = Instant::now();
        assert!(guard.write(b"x").is_err() && guard.read(&mut [0u8; 1]).is_err());
        assert!(
            again.elapsed() < Duration::from_millis(100),
            "no second wait"
        );
        assert!(guard.has_stalled());
    }

    #[test]
    fn a_peer_that_reads_nothing_stalls_writes() {
        let (mut guard, _server) = pair(Duration::from_millis(200));
        let chunk = vec![0u8; 1 << 16];
        let started = Instant::now();
        let err = loop {
            if let Err(e) = guard.write(&chunk) {
                break e;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "never stalled");
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[test]
    fn nonblocking_looks_are_not_stalls() {
        let (mut guard, mut server) = pair(Duration::from_secs(5));
        guard.set_nonblocking(true).unwrap();
        let err = guard.read(&mut [0u8; 1]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        guard.set_nonblocking(false).unwrap();
        server.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        guard.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        assert!(!guard.has_stalled());
    }
}
