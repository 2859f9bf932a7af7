//! A reader or writer held to a number of bytes per second, and a floor
//! that a transfer must keep above.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A rate in bytes per second that several transfers share: each books
/// the bytes it moves on one schedule, and waits for its turn on it, so
/// that together they move no more than the rate (an account's
/// connections, say). Time nobody used is not banked for a later burst.
#[derive(Debug)]
pub(crate) struct SharedRate {
    per_second: u64,
    next: Mutex<Option<Instant>>,
}

impl SharedRate {
    /// A schedule of `per_second` bytes per second (at least 1).
    pub(crate) fn new(per_second: u64) -> SharedRate {
        SharedRate {
            per_second: per_second.max(1),
            next: Mutex::new(None),
        }
    }

    /// The rate, in bytes per second.
    pub(crate) fn per_second(&self) -> u64 {
        self.per_second
    }

    /// Books `n` bytes just moved, and returns how long their mover must
    /// wait before it moves more: until the schedule, with every transfer
    /// that shares it, has made room for them.
    pub(crate) fn book(&self, n: usize) -> Duration {
        let now = Instant::now();
        let mut next = self.next.lock();
        let start = next.map_or(now, |t| t.max(now));
        let end = start + Duration::from_secs_f64(n as f64 / self.per_second as f64);
        *next = Some(end);
        end.saturating_duration_since(now)
    }
}

/// Wraps a reader or writer so that it moves at most a rate of bytes per
/// second, its own or one it shares with others ([`SharedRate`]). It
/// sleeps after each call for as long as the bytes it moved are due, so
/// the peer's flow control slows the other end to match. Each call moves
/// at most a tenth of a second's worth, so the rate holds over short
/// spans too.
#[derive(Debug)]
pub(crate) struct Throttle<T> {
    inner: T,
    rate: Arc<SharedRate>,
}

impl<T> Throttle<T> {
    /// Holds `inner` to `rate` bytes per second (at least 1).
    pub(crate) fn new(inner: T, rate: u64) -> Throttle<T> {
        Throttle::shared(inner, Arc::new(SharedRate::new(rate)))
    }

    /// Holds `inner` to a rate it shares with other throttles.
    pub(crate) fn shared(inner: T, rate: Arc<SharedRate>) -> Throttle<T> {
        Throttle { inner, rate }
    }

    /// The wrapped reader or writer.
    #[cfg(test)]
    pub(crate) fn into_inner(self) -> T {
        self.inner
    }

    /// Most bytes one call may move.
    fn slice(&self, wanted: usize) -> usize {
        let tenth = (self.rate.per_second / 10).max(1);
        wanted.min(usize::try_from(tenth).unwrap_or(usize::MAX))
    }

    /// Books `n` bytes moved and sleeps until the schedule catches up.
    fn account(&mut self, n: usize) {
        thread::sleep(self.rate.book(n));
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
/// over each `window`. A peer that trickles a body, or reads a reply,
/// slower than that holds a slot (and an upload's name) for nothing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateFloor {
    rate: u64,
    window: Duration,
    started: Instant,
    moved: u64,
}

/// A window that went by below the floor: what moved in it, over how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shortfall {
    /// Bytes moved in the window.
    pub(crate) moved: u64,
    /// How long the window lasted.
    pub(crate) over: Duration,
}

impl RateFloor {
    /// A floor of `rate` bytes per second over `window`, from now.
    pub(crate) fn new(rate: u64, window: Duration) -> RateFloor {
        RateFloor::starting(rate, window, Instant::now())
    }

    /// A floor of `rate` bytes per second over `window`, from `at`.
    pub(crate) fn starting(rate: u64, window: Duration, at: Instant) -> RateFloor {
        RateFloor {
            rate,
            window,
            started: at,
            moved: 0,
        }
    }

    /// The floor, in bytes per second.
    pub(crate) fn rate(&self) -> u64 {
        self.rate
    }

    /// When the window under way ends: the first time a check can fail.
    pub(crate) fn window_ends(&self) -> Instant {
        self.started + self.window
    }

    /// Counts `n` more bytes at `now`; once a whole window went by, judges
    /// it and starts the next.
    ///
    /// Fails with what the window moved when that is below the floor.
    pub(crate) fn note_at(&mut self, n: u64, now: Instant) -> Result<(), Shortfall> {
        self.moved = self.moved.saturating_add(n);
        let over = now.saturating_duration_since(self.started);
        if over < self.window {
            return Ok(());
        }
        let wanted = (self.rate as f64 * over.as_secs_f64()) as u64;
        if self.moved < wanted {
            return Err(Shortfall {
                moved: self.moved,
                over,
            });
        }
        (self.started, self.moved) = (now, 0);
        Ok(())
    }

    /// Counts `n` more bytes of a body; fails with `TimedOut` when a whole
    /// window went by below the floor.
    pub(crate) fn note(&mut self, n: usize) -> io::Result<()> {
        self.note_at(n as u64, Instant::now()).map_err(|s| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the body came at {} bytes/s, below the server's floor of {} bytes/s",
                    (s.moved as f64 / s.over.as_secs_f64()) as u64,
                    self.rate
                ),
            )
        })
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
    fn throttles_sharing_a_rate_move_no_more_than_it_together() {
        let rate = Arc::new(SharedRate::new(20_000));
        let started = Instant::now();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let rate = rate.clone();
                thread::spawn(move || {
                    let data = vec![1u8; 4000];
                    let mut out = Vec::new();
                    Throttle::shared(&data[..], rate)
                        .read_to_end(&mut out)
                        .unwrap();
                    out.len()
                })
            })
            .collect();
        let moved: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
        assert_eq!(moved, 8000);
        // 8,000 bytes at 20,000/s together: 0.4 s; each alone would be
        // done in 0.2 s.
        assert!(
            started.elapsed() >= Duration::from_millis(380),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn time_unused_is_not_banked_for_a_burst() {
        let rate = SharedRate::new(1000);
        assert_eq!(rate.book(0), Duration::ZERO);
        thread::sleep(Duration::from_millis(50));
        let wait = rate.book(100);
        assert!(wait > Duration::from_millis(90), "{wait:?}");
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
