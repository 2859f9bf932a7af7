//! Streams the server reads and writes with limits on time: the
//! [`Transport`] trait and its TCP implementation.

use std::io::{Read, Write};
use std::time::Instant;

pub mod prefixed;
pub mod tcp;
pub mod tls;

/// A stream that can be told to give up reading at a point in time.
pub trait Transport: Read + Write {
    /// Makes reads fail with `TimedOut` after `deadline`; `None` restores the
    /// idle timeout for each read.
    fn set_deadline(&mut self, _deadline: Option<Instant>) {}
}

/// A connection whose dialect was chosen at login: plain TCP or TLS.
impl<T: Transport + ?Sized> Transport for Box<T> {
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        (**self).set_deadline(deadline);
    }
}
