//! Streams the server reads and writes with limits on time: the
//! [`Transport`] trait and its TCP implementation.

use std::io::{Read, Write};
use std::os::fd::BorrowedFd;
use std::time::Instant;

pub mod prefixed;
pub mod tcp;
pub mod tls;

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
