//! A writer that stops when a flag is raised: how Ctrl-C ends a transfer
//! between two chunks without ending the program.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

// The error and its test live beside the crate's error type, which tells
// an interruption apart without importing this module.
pub(crate) use crate::error::{is_interruption, Interrupted};

/// Passes writes through until `flag` is set, then fails every write with
/// [`Interrupted`].
#[derive(Debug)]
pub(crate) struct Interruptible<W> {
    inner: W,
    flag: Arc<AtomicBool>,
}

impl<W> Interruptible<W> {
    /// Watches `flag` for writes to `inner`.
    pub(crate) fn new(inner: W, flag: Arc<AtomicBool>) -> Interruptible<W> {
        Interruptible { inner, flag }
    }
}

impl<W: Write> Write for Interruptible<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.flag.load(Ordering::SeqCst) {
            return Err(io::Error::other(Interrupted));
        }
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_stop_once_the_flag_is_up() {
        let flag = Arc::new(AtomicBool::new(false));
        let mut w = Interruptible::new(Vec::new(), flag.clone());
        w.write_all(b"before").unwrap();
        flag.store(true, Ordering::SeqCst);
        let e = w.write_all(b"after").unwrap_err();
        assert!(is_interruption(&e));
        assert!(!is_interruption(&io::Error::other("disk full")));
        assert_eq!(w.inner, b"before");
    }
}
