//! A writer that stops when a flag is raised: how Ctrl-C ends a transfer
//! between two chunks without ending the program.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The error an [`Interruptible`] writer fails with once its flag is up.
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Whether `e` came from a raised flag rather than from the writer.
pub fn is_interruption(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Interrupted>())
}

/// Passes writes through until `flag` is set, then fails every write with
/// [`Interrupted`].
#[derive(Debug)]
pub struct Interruptible<W> {
    inner: W,
    flag: Arc<AtomicBool>,
}

impl<W> Interruptible<W> {
    /// Watches `flag` for writes to `inner`.
    pub fn new(inner: W, flag: Arc<AtomicBool>) -> Interruptible<W> {
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
