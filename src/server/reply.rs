//! A reply on its way out, as Apache httpd's event MPM completes a write:
//! the bytes a command produced wait in the connection's outbox, and the
//! rest of a long reply (a file, a listing) comes from a [`Body`] one
//! bounded chunk at a time. Nothing here waits on the peer: bytes go out
//! as the socket takes them, and whoever drives the outbox (a worker, or
//! the poller once the socket has room again) learns whether the reply is
//! done, blocked on the peer, or needs its next chunk made.
//!
//! So a peer that reads slowly, or not at all, holds its outbox (at most
//! one chunk and what the TLS layer buffers) and the body's open file,
//! never a thread; and a reply must keep to a floor and a deadline.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::io::throttle::RateFloor;
use crate::logging::{Event, Kind};
use crate::net::{writable_within, Transport};

/// The most a body makes at a time, and so the most a blocked reply keeps
/// in memory besides the TLS layer's own 64 KiB.
pub(crate) const BODY_CHUNK: usize = 64 * 1024;

/// Where the rest of a long reply comes from. Made on a worker, since
/// making a chunk may read a disk or an object store; never waits on the
/// peer.
pub(crate) trait Body: Send {
    /// Appends the reply's next bytes to `out`, at most about
    /// [`BODY_CHUNK`]. Returns false, appending nothing, once the reply is
    /// complete.
    ///
    /// Fails when the source fails: the reply cannot be finished, so the
    /// connection closes.
    fn next(&mut self, out: &mut Vec<u8>) -> Result<bool>;

    /// How many bytes it will still make, when known: what the deadline
    /// of the whole reply allows for.
    fn len_hint(&self) -> u64 {
        0
    }

    /// When its next chunk is due, if it keeps to a rate and the chunk is
    /// not due yet.
    fn due_at(&self) -> Option<Instant> {
        None
    }
}

/// What driving an outbox came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Everything is out.
    Done,
    /// The socket takes nothing more now: wait until it has room.
    Blocked,
    /// The bytes made so far are out; the body must make its next chunk.
    NeedsBody,
    /// The bytes made so far are out; the next chunk is due at this
    /// instant (the account's rate).
    Paced(Instant),
}

/// How a reply must keep moving: the deadline of the whole, and a floor
/// on its rate averaged over a window, as for an upload's body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    started: Instant,
    deadline: Instant,
    within: Duration,
    floor: Option<RateFloor>,
    /// Bytes sent that the floor has counted.
    counted: u64,
}

impl Pace {
    /// A reply of about `len` body bytes, starting now: the whole must be
    /// read within `reply_timeout` plus the time `len` takes at the floor
    /// (at least 1 KiB/s, when there is no floor).
    pub(crate) fn new(reply_timeout: Duration, floor: Option<(u64, Duration)>, len: u64) -> Pace {
        Pace::starting(reply_timeout, floor, len, Instant::now())
    }

    /// [`Pace::new`], for a reply that started at `at`.
    fn starting(
        reply_timeout: Duration,
        floor: Option<(u64, Duration)>,
        len: u64,
        at: Instant,
    ) -> Pace {
        let rate = floor.map_or(1024, |(rate, _)| rate.max(1024));
        let within = reply_timeout.saturating_add(Duration::from_secs(len / rate));
        Pace {
            started: at,
            deadline: at + within,
            within,
            floor: floor.map(|(rate, window)| RateFloor::starting(rate, window, at)),
            counted: 0,
        }
    }

    /// When the pace must be checked next.
    pub(crate) fn next_check(&self) -> Instant {
        self.floor
            .map_or(self.deadline, |f| f.window_ends().min(self.deadline))
    }

    /// Checks the reply at `now`, `sent` bytes in.
    ///
    /// Fails with `TimedOut` when the deadline has passed, or when the
    /// last window moved less than the floor allows.
    pub(crate) fn check(&mut self, now: Instant, sent: u64) -> io::Result<()> {
        if now >= self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the peer did not take the whole reply within {} s",
                    self.within.as_secs_f64()
                ),
            ));
        }
        let Some(floor) = self.floor.as_mut() else {
            return Ok(());
        };
        let new = sent - self.counted;
        self.counted = sent;
        floor.note_at(new, now).map_err(|short| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the peer read {} bytes of the reply in {} s, below the floor of {} \
                     bytes/s",
                    short.moved,
                    short.over.as_secs(),
                    floor.rate()
                ),
            )
        })
    }
}

/// A connection's reply in flight: bytes made and not yet sent, and the
/// body that makes more.
#[derive(Default)]
pub(crate) struct Outbox {
    pending: Vec<u8>,
    /// How much of `pending` is out.
    from: usize,
    body: Option<Box<dyn Body>>,
    /// Bytes sent since the reply began, for its pace.
    sent: u64,
    pace: Option<Pace>,
    /// Whether the reply had a body, whose end the log tells.
    had_body: bool,
    /// Replies held back behind those of a group of staged puts, which
    /// come first ([`Outbox::hold`]).
    held: Option<Vec<u8>>,
}

impl Outbox {
    /// Queues bytes a command wrote.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        match &mut self.held {
            Some(held) => held.extend_from_slice(bytes),
            None => self.pending.extend_from_slice(bytes),
        }
    }

    /// Holds back what is written from now on: the replies of requests
    /// run while earlier puts wait for their group's commit, whose replies
    /// must go first.
    pub(crate) fn hold(&mut self) {
        self.held.get_or_insert_with(Vec::new);
    }

    /// Stops holding, and gives back what was held: to be written after
    /// the group's replies.
    pub(crate) fn take_held(&mut self) -> Option<Vec<u8>> {
        self.held.take()
    }

    /// Gives the reply its body, and its pace.
    pub(crate) fn set_body(&mut self, body: Box<dyn Body>, pace: Pace) {
        self.body = Some(body);
        self.pace = Some(pace);
        self.had_body = true;
    }

    /// Gives a reply that waits for its peer a pace, if it has none yet:
    /// a short one must keep to the floor and the deadline too.
    pub(crate) fn ensure_pace(&mut self, pace: impl FnOnce() -> Pace) {
        if self.pace.is_none() {
            self.pace = Some(pace());
        }
    }

    /// Whether nothing waits to be sent or made.
    pub(crate) fn is_empty(&self) -> bool {
        self.from == self.pending.len() && self.body.is_none()
    }

    /// Checks the reply's pace at `now`.
    ///
    /// Fails as [`Pace::check`] does.
    pub(crate) fn check_pace(&mut self, now: Instant) -> io::Result<()> {
        let sent = self.sent;
        match &mut self.pace {
            Some(pace) => pace.check(now, sent),
            None => Ok(()),
        }
    }

    /// When the poller must look at this reply again even if the socket
    /// stays full: its pace's next check.
    pub(crate) fn wake_at(&self) -> Option<Instant> {
        self.pace.map(|p| p.next_check())
    }

    /// Sends what the transport takes without waiting; with `make`, the
    /// body makes its chunks as they are needed.
    ///
    /// Fails when the transport or the body does; the reply is then cut
    /// off.
    pub(crate) fn drive(&mut self, t: &mut dyn Transport, make: bool) -> Result<Progress> {
        loop {
            while self.from < self.pending.len() {
                match t.write_now(&self.pending[self.from..]) {
                    Ok(0) => {
                        return Err(Error::io(
                            "sending the reply",
                            io::ErrorKind::WriteZero.into(),
                        ))
                    }
                    Ok(n) => {
                        self.from += n;
                        self.sent += n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(Progress::Blocked)
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Error::io("sending the reply", e)),
                }
            }
            self.pending.clear();
            self.from = 0;
            if !t
                .flush_now()
                .map_err(|e| Error::io("sending the reply", e))?
            {
                return Ok(Progress::Blocked);
            }
            let Some(body) = self.body.as_mut() else {
                return Ok(self.finished());
            };
            if let Some(at) = body.due_at().filter(|at| *at > Instant::now()) {
                return Ok(Progress::Paced(at));
            }
            if !make {
                return Ok(Progress::NeedsBody);
            }
            if !body.next(&mut self.pending)? {
                self.body = None;
            }
        }
    }

    /// The reply is out: its memory goes, so that an idle connection
    /// keeps none. The end of a long one is logged, since its command's
    /// line was written when it began.
    fn finished(&mut self) -> Progress {
        if let (Some(pace), true) = (self.pace, self.had_body) {
            let took = pace.started.elapsed();
            let (sent, ms) = (self.sent, took.as_millis());
            Event::new(Kind::Reply)
                .bytes(sent)
                .took(took)
                .info(format_args!("reply sent: {sent} bytes in {ms} ms"));
        }
        // What is held waits for its group, not for this reply.
        let held = self.held.take();
        *self = Outbox {
            held,
            ..Outbox::default()
        };
        Progress::Done
    }

    /// Drives the outbox to its end, waiting for room up to `wait` at a
    /// time: for a command that must read its peer's next bytes only after
    /// its reply so far is out (a put's `ready`), and for streams that are
    /// not sockets.
    ///
    /// Fails when the peer takes nothing for `wait`, or as [`Outbox::drive`].
    pub(crate) fn drive_to_end(&mut self, t: &mut dyn Transport, wait: Duration) -> Result<()> {
        loop {
            match self.drive(t, true)? {
                Progress::Done | Progress::NeedsBody => return Ok(()),
                Progress::Paced(at) => std::thread::sleep(at - Instant::now()),
                Progress::Blocked => {
                    let room = t.socket().is_none_or(|fd| writable_within(fd, wait));
                    if !room {
                        return Err(Error::io(
                            "sending the reply",
                            io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!("the peer read nothing for {} s", wait.as_secs()),
                            ),
                        ));
                    }
                }
            }
        }
    }
}

/// The transport as a command sees it: what the command writes goes out
/// at once when the socket takes it, and waits in the outbox otherwise;
/// before the command reads from its peer again, what waits goes out.
pub(crate) struct Replying<'a> {
    transport: &'a mut dyn Transport,
    outbox: &'a mut Outbox,
    /// How long a read may wait for the peer to take what waits.
    wait: Duration,
}

impl<'a> Replying<'a> {
    /// The transport `t` replying through `outbox`.
    pub(crate) fn new(t: &'a mut dyn Transport, outbox: &'a mut Outbox, wait: Duration) -> Self {
        Replying {
            transport: t,
            outbox,
            wait,
        }
    }
}

impl Read for Replying<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.outbox.is_empty() {
            self.outbox
                .drive_to_end(self.transport, self.wait)
                .map_err(io::Error::other)?;
        }
        self.transport.read(buf)
    }
}

impl io::Write for Replying<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outbox.push(buf);
        self.outbox
            .drive(self.transport, false)
            .map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Replying<'_> {
    fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.transport.set_deadline(deadline);
    }
    fn socket(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.transport.socket()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryStream;

    /// A body that makes `n` chunks of one byte each.
    struct Bytes(u8);

    impl Body for Bytes {
        fn next(&mut self, out: &mut Vec<u8>) -> Result<bool> {
            if self.0 == 0 {
                return Ok(false);
            }
            self.0 -= 1;
            out.push(b'0' + self.0);
            Ok(true)
        }
    }

    #[test]
    fn an_outbox_sends_what_was_written_then_its_body() {
        let mut outbox = Outbox::default();
        let mut stream = MemoryStream::default();
        outbox.push(b"head:");
        let pace = Pace::new(Duration::from_secs(1), None, 0);
        outbox.set_body(Box::new(Bytes(3)), pace);
        assert_eq!(
            outbox.drive(&mut stream, false).unwrap(),
            Progress::NeedsBody
        );
        assert_eq!(stream.output, b"head:");
        assert_eq!(outbox.drive(&mut stream, true).unwrap(), Progress::Done);
        assert_eq!(stream.output, b"head:210");
        assert!(outbox.is_empty());
    }

    #[test]
    fn a_pace_below_its_floor_or_past_its_deadline_fails() {
        let floor = Some((1000, Duration::from_secs(10)));
        let start = Instant::now();
        let mut pace = Pace::starting(Duration::from_secs(300), floor, 0, start);
        assert!(pace.check(start + Duration::from_secs(5), 0).is_ok());
        let e = pace
            .check(start + Duration::from_secs(10), 9_999)
            .unwrap_err();
        assert!(e.to_string().contains("9999 bytes"), "{e}");
        let mut pace = Pace::starting(Duration::from_secs(300), floor, 0, start);
        assert!(pace.check(start + Duration::from_secs(10), 10_000).is_ok());
        assert_eq!(pace.next_check(), start + Duration::from_secs(20));
        let e = pace.check(start + Duration::from_secs(301), u64::MAX / 2);
        assert!(e.unwrap_err().to_string().contains("within 300 s"));
    }

    #[test]
    fn a_big_body_has_time_for_its_length_at_the_floor() {
        let pace = Pace::new(
            Duration::from_secs(300),
            Some((1 << 20, Duration::from_secs(60))),
            100 << 20,
        );
        assert_eq!(pace.within, Duration::from_secs(400));
    }
}
