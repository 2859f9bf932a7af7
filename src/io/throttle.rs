//! A reader or writer held to a number of bytes per second, and a floor
//! that a transfer must keep above.

use std::io::{self, Read, Write};
use std::thread;
use std::time::{Duration, Instant};

/// Wraps a reader or writer so that it moves at most `rate` bytes per
/// second, averaged from the first byte. It sleeps after each call that
/// got ahead of the schedule, so the peer's flow control slows the other
/// end to match. Each call moves at most a tenth of a second's worth, so
/// the rate holds over short spans too.
#[derive(Debug)]
pub struct Throttle<T> {
    inner: T,
    rate: u64,
    started: Option<Instant>,
    moved: u64,
}

impl<T> Throttle<T> {
    /// Holds `inner` to `rate` bytes per second (at least 1).
    pub fn new(inner: T, rate: u64) -> Throttle<T> {
        Throttle {
            inner,
            rate: rate.max(1),
            started: None,
            moved: 0,
        }
    }

    /// The wrapped reader or writer.
    pub fn into_inner(self) -> T {
        self.inner
    }

    /// Most bytes one call may move.
    fn slice(&self, wanted: usize) -> usize {
        let tenth = (self.rate / 10).max(1);
        wanted.min(usize::try_from(tenth).unwrap_or(usize::MAX))
    }

    /// Counts `n` bytes moved and sleeps until the schedule catches up.
    fn account(&mut self, n: usize) {
        let started = *self.started.get_or_insert_with(Instant::now);
        self.moved = self.moved.saturating_add(n as u64);
        let due = Duration::from_secs_f64(self.moved as f64 / self.rate as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            thread::sleep(wait);
        }
    }
}

impl<R: Read> Read for Throttle<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = self.slice(buf.len());
        let n = self.inner.read(&mut buf[..len])?;
        self.account(n);
        Ok(n)
    }
}

impl<W: Write> Write for Throttle<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let len = self.slice(buf.len());
        let n = self.inner.write(&buf[..len])?;
        self.account(n);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The least a transfer must keep up: `rate` bytes per second averaged
/// over each `window`. A peer that trickles a body slower than that holds
/// a slot and an upload's name for nothing.
#[derive(Debug)]
pub struct RateFloor {
    rate: u64,
    window: Duration,
    started: Instant,
    moved: u64,
}

impl RateFloor {
    /// A floor of `rate` bytes per second over `window`.
    pub fn new(rate: u64, window: Duration) -> RateFloor {
        RateFloor {
            rate,
            window,
            started: Instant::now(),
            moved: 0,
        }
    }

    /// Counts `n` more bytes; fails with `TimedOut` when a whole window
    /// went by below the floor.
    pub fn note(&mut self, n: usize) -> io::Result<()> {
        self.moved = self.moved.saturating_add(n as u64);
        let elapsed = self.started.elapsed();
        if elapsed < self.window {
            return Ok(());
        }
        let wanted = (self.rate as f64 * elapsed.as_secs_f64()) as u64;
        if self.moved < wanted {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the body came at {} bytes/s, below the server's floor of {} bytes/s",
                    (self.moved as f64 / elapsed.as_secs_f64()) as u64,
                    self.rate
                ),
            ));
        }
        (self.started, self.moved) = (Instant::now(), 0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_everything_at_the_rate() {
        let data = vec![7u8; 3000];
        let mut t = Throttle::new(&data[..], 10_000);
        let started = Instant::now();
        let mut out = Vec::new();
        t.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        // 3,000 bytes at 10,000/s take at least 0.3 s, less the first slice.
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[test]
    fn writes_pass_through_whole() {
        let mut t = Throttle::new(Vec::new(), 1_000_000);
        t.write_all(b"hello").unwrap();
        t.flush().unwrap();
        assert_eq!(t.into_inner(), b"hello");
    }

    #[test]
    fn a_trickle_falls_through_the_floor() {
        let mut floor = RateFloor::new(1000, Duration::from_millis(50));
        floor.note(10).unwrap();
        thread::sleep(Duration::from_millis(60));
        let e = floor.note(10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let mut fast = RateFloor::new(1000, Duration::from_millis(50));
        thread::sleep(Duration::from_millis(60));
        fast.note(1000).unwrap();
    }
}
