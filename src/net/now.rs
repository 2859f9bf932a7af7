//! Reads and writes that never wait: what the poller uses on a socket that
//! stays in blocking mode for the workers. `MSG_DONTWAIT` makes one call
//! non-blocking without switching the socket back and forth.

use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;

use rustix::net::{recv, send, RecvFlags, SendFlags};

/// Reads what has arrived, up to `buf.len()` bytes; `WouldBlock` when
/// nothing has, `Ok(0)` when the peer closed.
///
/// Fails when the socket does.
pub(crate) fn recv_now(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match recv(fd, &mut *buf, RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Ok(n),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes what fits in the socket's buffer now; `WouldBlock` when nothing
/// does.
///
/// Fails when the socket does (a reset peer among other reasons).
pub(crate) fn send_now(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    loop {
        match send(fd, buf, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes all of `buf` if the socket's buffer has room for it now. Meant
/// for the few bytes of a login (a challenge, a TLS flight, an error
/// reply) into a buffer that holds only what this server wrote: a peer
/// that leaves that much unread is not waited for.
///
/// Fails with `WouldBlock` when the peer has not read enough for it to fit.
pub(crate) fn send_all_now(fd: BorrowedFd<'_>, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        match send_now(fd, buf)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => buf = &buf[n..],
        }
    }
    Ok(())
}

/// Unsent bytes a socket may hold once a reply has had to wait for its
/// peer. What the peer has not acknowledged is bounded by its receive
/// window; this bounds the rest, so a thousand peers that read nothing
/// hold a few hundred kilobytes of kernel memory each, not the four
/// megabytes an autotuned send buffer grows to.
pub(crate) const NOTSENT_LOWAT: u32 = 128 * 1024;

/// Caps the bytes `fd` holds unsent at [`NOTSENT_LOWAT`]: past it, a send
/// says `WouldBlock` and epoll reports no room, however large the send
/// buffer. Best effort: a kernel without the option keeps its buffer.
pub(crate) fn cap_unsent(fd: BorrowedFd<'_>) {
    use std::os::fd::AsRawFd;
    let value = NOTSENT_LOWAT as libc::c_int;
    // SAFETY: a valid socket, an option that takes an int, and a pointer
    // to one that outlives the call.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// A socket as a `Read + Write` whose calls never wait, for a sans-I/O
/// state machine such as rustls' `read_tls`/`write_tls`.
pub(crate) struct Now<'a>(pub BorrowedFd<'a>);

impl Read for Now<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_now(self.0, buf)
    }
}

impl Write for Now<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_now(self.0, buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn reads_never_wait_and_tell_nothing_from_a_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut buf = [0u8; 8];
        let err = recv_now(server.as_fd(), &mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        client.write_all(b"abc").unwrap();
        let mut got = 0;
        for _ in 0..1000 {
            match recv_now(server.as_fd(), &mut buf) {
                Ok(n) => {
                    got = n;
                    break;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        assert_eq!(&buf[..got], b"abc");
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(recv_now(server.as_fd(), &mut buf).unwrap(), 0);
    }
}
