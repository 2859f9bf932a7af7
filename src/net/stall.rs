//! The client's TCP stream, watched three ways: it gives up once no byte
//! has moved for the stall timeout, once a reply has taken longer than
//! its budget, and, within a fraction of a second, once Ctrl-C raised the
//! interrupt flag. Each of these stays given up.
//!
//! A socket timeout alone is not enough under TLS. rustls turns a timed-out
//! write (`WouldBlock`) into a read of the same length, and its stream's
//! `write` drops that error and reports the bytes as taken; the next write
//! waits the whole time again. A link that went down thus froze a transfer
//! for several timeouts in a row. Here a timeout becomes `TimedOut`, which
//! rustls passes straight up, and every later call fails at once.
//!
//! Nor does the stall timeout bound a reply: a server that sends one byte
//! just inside it, again and again, kept a `get` or an `ls` running for
//! ever. The budget does: the time spent waiting on the peer since
//! [`StallGuard::restart`] may not pass a grace period plus, when a rate
//! is given, one second for each `rate` bytes moved. Time the client
//! spends elsewhere (asking the user, reading its own disk) is not counted.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::io::interrupt::Interrupted;

/// How often a blocked call looks at the interrupt flag.
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// A blocking TCP stream whose reads and writes fail with `TimedOut` once
/// one of them has waited the stall timeout without moving a byte, or the
/// reply under way has used up its budget; and with [`Interrupted`] once
/// the interrupt flag is up.
#[derive(Debug)]
pub(crate) struct StallGuard {
    tcp: TcpStream,
    stall: Duration,
    /// Set by the first stall: nothing more is tried on this stream.
    stalled: bool,
    /// Set once the budget ran out: likewise.
    expired: bool,
    /// While set, a `WouldBlock` means "nothing yet", not a stall.
    nonblocking: bool,
    budget: Budget,
    interrupt: Option<Arc<AtomicBool>>,
    /// The socket timeouts last set, read and write, to set each only when
    /// it changes.
    timeouts: [Option<Duration>; 2],
    /// Bytes read and written in the stream's life, never reset: whether
    /// a request met any answer at all, and how much it had sent.
    totals: [u64; 2],
}

/// What one reply may take: time spent waiting on the peer, counted since
/// the last restart.
#[derive(Debug, Clone, Copy)]
struct Budget {
    grace: Duration,
    /// Bytes per second that earn more time; `None` for a flat deadline.
    rate: Option<u64>,
    waited: Duration,
    moved: u64,
}

impl Budget {
    fn allowed(&self) -> Duration {
        let earned = match self.rate {
            Some(rate) => Duration::from_secs_f64(self.moved as f64 / rate.max(1) as f64),
            None => Duration::ZERO,
        };
        self.grace.saturating_add(earned)
    }

    fn left(&self, waiting: Duration) -> Duration {
        self.allowed().saturating_sub(self.waited + waiting)
    }
}

/// Which way a call goes.
#[derive(Clone, Copy)]
enum Way {
    Read = 0,
    Write = 1,
}

impl StallGuard {
    /// Watches `tcp` with a stall timeout of `stall`, and a budget of
    /// `grace` (flat) until the first [`StallGuard::restart`].
    ///
    /// Fails when the timeouts cannot be set.
    pub(crate) fn new(tcp: TcpStream, stall: Duration, grace: Duration) -> io::Result<StallGuard> {
        let mut guard = StallGuard {
            tcp,
            stall: stall.max(Duration::from_millis(1)),
            stalled: false,
            expired: false,
            nonblocking: false,
            budget: Budget {
                grace,
                rate: None,
                waited: Duration::ZERO,
                moved: 0,
            },
            interrupt: None,
            timeouts: [None, None],
            totals: [0, 0],
        };
        guard.set_timeout(Way::Read, guard.stall)?;
        guard.set_timeout(Way::Write, guard.stall)?;
        Ok(guard)
    }

    /// Starts a new budget: from now on the time spent waiting on the peer
    /// may not pass `grace`, plus one second per `rate` bytes moved when
    /// a rate is given.
    pub(crate) fn restart(&mut self, grace: Duration, rate: Option<u64>) {
        self.budget = Budget {
            grace,
            rate,
            waited: Duration::ZERO,
            moved: 0,
        };
    }

    /// Sets the stall timeout (the login waits for a challenge less long
    /// than a command waits for a byte).
    pub(crate) fn set_stall(&mut self, stall: Duration) {
        self.stall = stall.max(Duration::from_millis(1));
    }

    /// Stops blocked calls within [`TICK`] once `flag` is raised.
    pub(crate) fn set_interrupt(&mut self, flag: Option<Arc<AtomicBool>>) {
        self.interrupt = flag;
    }

    /// Bytes moved either way since the last restart.
    pub(crate) fn moved(&self) -> u64 {
        self.budget.moved
    }

    /// Bytes read, and bytes written, since the stream was made.
    pub(crate) fn totals(&self) -> [u64; 2] {
        self.totals
    }

    /// The socket, for shutting it down or asking about it.
    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The socket, no longer watched.
    pub(crate) fn into_inner(self) -> TcpStream {
        self.tcp
    }

    /// Switches to non-blocking calls (to look for what arrived without
    /// waiting) and back.
    ///
    /// Fails when the socket refuses.
    pub(crate) fn set_nonblocking(&mut self, on: bool) -> io::Result<()> {
        self.tcp.set_nonblocking(on)?;
        self.nonblocking = on;
        Ok(())
    }

    /// Whether a call has stalled or run out of budget.
    pub(crate) fn has_stalled(&self) -> bool {
        self.stalled || self.expired
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

    fn late_error(&self) -> io::Error {
        let per = match self.budget.rate {
            Some(rate) if rate % 1024 == 0 => format!(" and 1 s per {} KiB moved", rate / 1024),
            Some(rate) => format!(" and 1 s per {rate} bytes moved"),
            None => String::new(),
        };
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the server took longer than its time for this reply ({} s{per})",
                self.budget.grace.as_secs_f64()
            ),
        )
    }

    fn set_timeout(&mut self, way: Way, wait: Duration) -> io::Result<()> {
        // A zero timeout would mean none at all.
        let wait = Some(wait.max(Duration::from_millis(1)));
        if self.timeouts[way as usize] != wait {
            match way {
                Way::Read => self.tcp.set_read_timeout(wait)?,
                Way::Write => self.tcp.set_write_timeout(wait)?,
            }
            self.timeouts[way as usize] = wait;
        }
        Ok(())
    }

    /// Waits until the socket can be read, or written as well when
    /// `write`, under the same stall timeout, budget and interrupt flag as
    /// a blocking call: how a pipelined batch, whose calls never block,
    /// waits for the server.
    ///
    /// Fails like a blocking call that waited as long.
    pub(crate) fn wait(&mut self, write: bool) -> io::Result<()> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let began = Instant::now();
        let result = loop {
            if self.stalled {
                break Err(self.stall_error());
            }
            if self.expired {
                break Err(self.late_error());
            }
            if self.interrupted() {
                break Err(io::Error::other(Interrupted));
            }
            let waiting = began.elapsed();
            let stall_left = self.stall.saturating_sub(waiting);
            let budget_left = self.budget.left(waiting);
            if stall_left.is_zero() {
                self.stalled = true;
                continue;
            }
            if budget_left.is_zero() {
                self.expired = true;
                continue;
            }
            let slice = stall_left.min(budget_left).min(TICK);
            let timeout = Timespec {
                tv_sec: slice.as_secs() as i64,
                tv_nsec: i64::from(slice.subsec_nanos()),
            };
            let flags = match write {
                true => PollFlags::IN | PollFlags::OUT,
                false => PollFlags::IN,
            };
            let mut fds = [PollFd::new(&self.tcp, flags)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => {}
                Ok(_) => break Ok(()),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => break Err(e.into()),
            }
        };
        self.budget.waited += began.elapsed();
        result
    }

    fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// One read or write, cut into slices short enough to see the stall
    /// timeout, the budget and the interrupt flag in time.
    fn call(
        &mut self,
        way: Way,
        mut op: impl FnMut(&mut TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.stalled {
            return Err(self.stall_error());
        }
        if self.expired {
            return Err(self.late_error());
        }
        if self.interrupted() {
            return Err(io::Error::other(Interrupted));
        }
        if self.nonblocking {
            let got = op(&mut self.tcp);
            self.count(way, *got.as_ref().unwrap_or(&0));
            return got;
        }
        let began = Instant::now();
        let result = loop {
            let waiting = began.elapsed();
            let stall_left = self.stall.saturating_sub(waiting);
            if stall_left.is_zero() {
                self.stalled = true;
                break Err(self.stall_error());
            }
            let budget_left = self.budget.left(waiting);
            if budget_left.is_zero() {
                self.expired = true;
                break Err(self.late_error());
            }
            let mut slice = stall_left.min(budget_left);
            if self.interrupt.is_some() {
                slice = slice.min(TICK);
            }
            self.set_timeout(way, slice)?;
            match op(&mut self.tcp) {
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {
                    if self.interrupted() {
                        break Err(io::Error::other(Interrupted));
                    }
                }
                other => break other,
            }
        };
        self.budget.waited += began.elapsed();
        if let Ok(n) = result {
            self.count(way, n);
        }
        result
    }

    fn count(&mut self, way: Way, n: usize) {
        self.budget.moved += n as u64;
        self.totals[way as usize] += n as u64;
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
        self.call(Way::Read, |tcp| tcp.read(buf))
    }
}

impl Write for StallGuard {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.call(Way::Write, |tcp| tcp.write(buf))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair(stall: Duration) -> (StallGuard, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (
            StallGuard::new(client, stall, Duration::from_secs(600)).unwrap(),
            server,
        )
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
    fn a_trickle_inside_the_stall_timeout_meets_the_budget() {
        let (mut guard, mut server) = pair(Duration::from_millis(300));
        guard.restart(Duration::from_millis(800), Some(1024));
        let dripper = std::thread::spawn(move || {
            for _ in 0..40 {
                if server.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let started = Instant::now();
        let mut buf = [0u8; 64];
        let err = loop {
            match guard.read(&mut buf) {
                Ok(0) => panic!("the drip ended first"),
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        let took = started.elapsed();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("0.8 s and 1 s per 1 KiB"), "{err}");
        assert!(took < Duration::from_millis(1500), "{took:?}");
        assert!(guard.has_stalled() && guard.read(&mut buf).is_err());
        dripper.join().unwrap();
    }

    #[test]
    fn a_raised_flag_stops_a_blocked_read_within_a_tick() {
        let (mut guard, _server) = pair(Duration::from_secs(30));
        let flag = Arc::new(AtomicBool::new(false));
        guard.set_interrupt(Some(flag.clone()));
        let raiser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, Ordering::SeqCst);
        });
        let started = Instant::now();
        let err = guard.read(&mut [0u8; 8]).unwrap_err();
        assert!(crate::io::interrupt::is_interruption(&err), "{err}");
        assert!(started.elapsed() < Duration::from_millis(300) + TICK * 2);
        raiser.join().unwrap();
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
