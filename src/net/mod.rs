//! Streams the server reads and writes with limits on time: the
//! [`Transport`] trait and its TCP implementation.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

pub mod prefixed;
pub mod tcp;
pub mod tls;

/// Whether `fd` has bytes to read (or a connection to accept) within
/// `wait`; a zero `wait` asks without waiting.
pub fn readable_within(fd: impl AsFd, wait: Duration) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let wait = Timespec {
        tv_sec: wait.as_secs() as i64,
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    matches!(poll(&mut fds, Some(&wait)), Ok(1))
}

/// A stream that can be told to give up reading at a point in time, and
/// parked in the poller between commands.
pub trait Transport: Read + Write + Send {
    /// Makes reads fail with `TimedOut` after `deadline`; `None` restores the
    /// idle timeout for each read.
    fn set_deadline(&mut self, _deadline: Option<Instant>) {}

    /// The socket underneath, for the poller to watch; `None` for streams
    /// that are not sockets (tests), which are never parked.
    fn socket(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    /// Whether bytes already read from the socket wait in a buffer here (a
    /// put-back prefix, decrypted TLS records): then the socket may never
    /// turn readable for them, and the connection must not be parked.
    fn has_buffered(&mut self) -> bool {
        false
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
    fn has_buffered(&mut self) -> bool {
        (**self).has_buffered()
    }
}
