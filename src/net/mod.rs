//! Streams the server reads and writes with limits on time: the
//! [`Transport`] trait and its TCP implementation.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

pub(crate) mod now;
pub mod stall;
pub mod tcp;
pub mod tls;
pub(crate) mod tls_server;

/// Whether `fd` has bytes to read (or a connection to accept) within
/// `wait`; a zero `wait` asks without waiting.
pub(crate) fn readable_within(fd: impl AsFd, wait: Duration) -> bool {
    ready_within(fd, rustix::event::PollFlags::IN, wait)
}

/// Whether `fd` has room to write within `wait`.
pub(crate) fn writable_within(fd: impl AsFd, wait: Duration) -> bool {
    ready_within(fd, rustix::event::PollFlags::OUT, wait)
}

fn ready_within(fd: impl AsFd, flags: rustix::event::PollFlags, wait: Duration) -> bool {
    use rustix::event::{poll, PollFd, Timespec};
    let wait = Timespec {
        tv_sec: wait.as_secs() as i64,
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    let mut fds = [PollFd::new(&fd, flags)];
    matches!(poll(&mut fds, Some(&wait)), Ok(1))
}

/// A stream that can be told to give up reading at a point in time, and
/// parked in the poller between commands.
pub(crate) trait Transport: Read + Write + Send {
    /// Makes reads fail with `TimedOut` after `deadline`; `None` restores the
    /// idle timeout for each read.
    fn set_deadline(&mut self, _deadline: Option<Instant>) {}

    /// The socket underneath, for the poller to watch; `None` for streams
    /// that are not sockets (tests), which are never parked.
    fn socket(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// Reads what has already arrived, never waiting: `WouldBlock` when
    /// nothing has, `Ok(0)` at the end. This is how the poller takes a
    /// request header as it trickles in, while the worker's reads block.
    ///
    /// Fails when the stream does. Streams that are not sockets (tests)
    /// never wait anyway, and read as usual.
    fn read_now(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.read(buf)
    }

    /// Writes what the socket takes now, never waiting: `WouldBlock` when
    /// it takes nothing. This is how a reply goes out without holding a
    /// thread for the peer's pace.
    ///
    /// Fails when the stream does. Streams that are not sockets (tests)
    /// write as usual.
    fn write_now(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write(buf)
    }

    /// Sends what the stream itself still holds (encrypted records),
    /// never waiting; `Ok(true)` once nothing is left.
    ///
    /// Fails when the stream does.
    fn flush_now(&mut self) -> std::io::Result<bool> {
        self.flush().map(|()| true)
    }
}

/// A connection whose dialect was chosen at login: plain TCP or TLS.
impl<T: Transport + ?Sized> Transport for Box<T> {
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        (**self).set_deadline(deadline);
    }
    fn socket(&self) -> Option<BorrowedFd<'_>> {
        (**self).socket()
    }
    fn read_now(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (**self).read_now(buf)
    }
    fn write_now(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (**self).write_now(buf)
    }
    fn flush_now(&mut self) -> std::io::Result<bool> {
        (**self).flush_now()
    }
}
