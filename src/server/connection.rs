//! One connection's life: the challenge, the login and then each command
//! on a worker, with every wait for the client (for an answer slower than
//! a few milliseconds, for its next command) spent in the poller, holding
//! no thread.

use std::net::{IpAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{contain, run_or_refuse, Shared, Slot};
use crate::error::Result;
use crate::net::prefixed::Prefixed;
use crate::net::{readable_within, Transport};
use crate::server::accounts::Account;
use crate::server::echo;
use crate::server::login::{self, Dialect, Greeted, Login};
use crate::server::poller::Parkable;
use crate::server::session::{send_error, Flow, Session};
use crate::wire::message::{ErrorCode, ErrorReply};

/// Whose connection it is.
#[derive(Debug, Clone, Copy)]
enum Who {
    Account(usize),
    Anonymous,
}

/// A logged-in connection between commands: all it needs to go on, and no
/// buffer it does not need.
pub(super) struct Conn {
    transport: Box<dyn Transport>,
    who: Who,
    /// A plaintext connection whose first bytes are still to be told apart:
    /// frames, or the seed's raw echo.
    unsniffed: bool,
    cwd: Vec<String>,
    span: tracing::Span,
    started: Instant,
    _slot: Slot,
}

/// A connection before its login is over: where it comes from, the slot
/// it holds, its log span, and when it came.
struct Arrival {
    ip: IpAddr,
    slot: Slot,
    span: tracing::Span,
    started: Instant,
}

/// A connection that was sent its challenge and waits for the answer.
pub(super) struct Answering {
    greeted: Greeted,
    arrival: Arrival,
}

/// A new connection whose address has earned a delay before its
/// challenge (failed logins).
pub(super) struct Delayed {
    stream: TcpStream,
    arrival: Arrival,
}

/// What waits in the poller.
pub(super) enum Waiting {
    /// The back-off delay before the challenge: a timer, holding no
    /// thread either.
    Challenge(Delayed),
    /// The answer to the challenge.
    Answer(Answering),
    /// The next command.
    Command(Conn),
}

impl Waiting {
    /// The connection's log span.
    fn span(&self) -> &tracing::Span {
        match self {
            Waiting::Challenge(d) => &d.arrival.span,
            Waiting::Answer(a) => &a.arrival.span,
            Waiting::Command(conn) => &conn.span,
        }
    }
}

impl Parkable for Waiting {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Waiting::Challenge(d) => Some(d.stream.as_fd()),
            Waiting::Answer(a) => a.greeted.socket(),
            Waiting::Command(conn) => conn.transport.socket(),
        }
    }
}

/// From accept to the first command, all on this thread: the login, the
/// dialect, the home folder. `None` when the connection ends there.
fn open(shared: &Shared, stream: TcpStream, arrival: Arrival) -> Option<Conn> {
    let login = login::login(&shared.config, &shared.backoff, stream, arrival.ip)?;
    establish(shared, login, arrival)
}

/// The answer came: the rest of the login and the first command.
fn answered(shared: &Shared, a: Answering) -> Option<Conn> {
    let login = login::answer(&shared.config, &shared.backoff, a.greeted, a.arrival.ip)?;
    establish(shared, login, a.arrival)
}

/// A connection that passed its login, with its session started.
fn establish(shared: &Shared, login: Login, arrival: Arrival) -> Option<Conn> {
    let who = match (login.dialect, login.index) {
        (Dialect::Anonymous, _) => Who::Anonymous,
        (_, Some(index)) => Who::Account(index),
        (_, None) => return None,
    };
    let mut conn = Conn {
        transport: login.transport,
        who,
        unsniffed: login.dialect == Dialect::Plaintext,
        cwd: Vec::new(),
        span: arrival.span,
        started: arrival.started,
        _slot: arrival.slot,
    };
    let started = with_session(shared, &mut conn, |s, t| s.start(t));
    (started.ok()? == Flow::Continue).then_some(conn)
}

/// After a plaintext login, once bytes came: the seed's echo client is
/// answered here, to the end; anyone else goes on in frames.
fn frames_or_echo(shared: &Shared, conn: &mut Conn) -> Option<()> {
    let idle = shared.config.context.idle_timeout;
    let mut transport = std::mem::replace(&mut conn.transport, Box::new(Gone));
    match echo::sniff(&mut transport, idle) {
        Ok(echo::Opening::Frames(head)) => {
            conn.transport = Box::new(Prefixed::new(head, transport));
            Some(())
        }
        Ok(echo::Opening::Echo(first)) => {
            tracing::info!("raw text instead of a frame: the seed's echo dialect");
            match echo::serve(&mut transport, first) {
                Ok(n) => tracing::info!("echoed {n} bytes"),
                Err(e) => tracing::info!("connection dropped: {e}"),
            }
            None
        }
        Ok(echo::Opening::Closed) => None,
        Err(e) => {
            tracing::info!("connection dropped: {e}");
            None
        }
    }
}

/// Runs `f` with the connection's session, carrying the current folder
/// from command to command.
fn with_session(
    shared: &Shared,
    conn: &mut Conn,
    f: impl FnOnce(&mut Session<'_>, &mut Box<dyn Transport>) -> Result<Flow>,
) -> Result<Flow> {
    let config = &shared.config;
    let anonymous;
    let mut session = match conn.who {
        Who::Account(i) => match config.accounts.get(i) {
            Some(account) => Session::new(&config.context, account),
            None => return Ok(Flow::Close),
        },
        Who::Anonymous => {
            anonymous = Account::anonymous(config.anonymous_quota.unwrap_or(0));
            Session::anonymous(&config.context, &anonymous)
        }
    }
    .in_folder(std::mem::take(&mut conn.cwd));
    let flow = f(&mut session, &mut conn.transport);
    conn.cwd = session.into_cwd();
    flow
}

/// Runs commands while the client keeps sending, and parks the connection
/// in the poller, giving the thread back, whenever it goes quiet.
pub(super) fn run(shared: &Shared, mut conn: Conn) {
    let _busy = Running::new(shared);
    loop {
        if !conn.transport.has_buffered() && !readable_now(&conn) {
            acknowledge_now(&conn);
            let idle = Instant::now() + shared.config.context.idle_timeout;
            match shared.park(Waiting::Command(conn), idle) {
                None => return,
                // Not a socket the poller can watch: wait here instead.
                Some(Waiting::Command(back)) => conn = back,
                Some(_) => return,
            }
        }
        if conn.unsniffed {
            conn.unsniffed = false;
            if frames_or_echo(shared, &mut conn).is_none() {
                return;
            }
        }
        match with_session(shared, &mut conn, |s, t| s.serve_one(t)) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) => {
                let secs = conn.started.elapsed().as_secs();
                return tracing::info!("disconnected after {secs} s");
            }
            Err(e) => return tracing::info!("connection dropped: {e}"),
        }
    }
}

/// Counts a connection as running (in a worker) while it lives.
struct Running<'a>(&'a Shared);

impl<'a> Running<'a> {
    fn new(shared: &'a Shared) -> Running<'a> {
        shared
            .running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Running(shared)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Stands in for a transport taken out for a moment: a closed stream.
struct Gone;

impl std::io::Read for Gone {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Ok(0)
    }
}

impl std::io::Write for Gone {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::NotConnected.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Transport for Gone {}

/// Whether the client's next command has already arrived.
fn readable_now(conn: &Conn) -> bool {
    conn.transport
        .socket()
        .is_none_or(|fd| readable_within(fd, Duration::ZERO))
}

/// Sends the ACK the kernel may be holding back for what the client sent
/// last. A thread blocked in a read gets it sent at once; a socket handed
/// to epoll does not, and a client whose next message waits behind Nagle's
/// algorithm for that ACK (the seed's, which writes its login answer and
/// its command separately) waits longer. Measured over 200 serial
/// seed-style puts: p50 0.33 ms without, 0.26 ms with.
fn acknowledge_now(conn: &Conn) {
    if let Some(fd) = conn.transport.socket() {
        let _ = rustix::net::sockopt::set_tcp_quickack(fd, true);
    }
}

/// The client spoke (or the socket could not be parked): a worker takes
/// the connection, in its turn.
pub(super) fn resume(shared: &Arc<Shared>, waiting: Waiting) {
    let job_shared = shared.clone();
    let work = move |waiting: Waiting| {
        let _entered = waiting.span().clone().entered();
        contain(|| match waiting {
            Waiting::Challenge(d) => challenge(&job_shared, d.stream, d.arrival),
            Waiting::Command(conn) => run(&job_shared, conn),
            Waiting::Answer(answering) => {
                log_in_then_run(&job_shared, || answered(&job_shared, answering))
            }
        });
    };
    run_or_refuse(shared, waiting, work, |waiting, e| {
        let _entered = waiting.span().clone().entered();
        match waiting {
            Waiting::Command(mut conn) => {
                tracing::warn!("dropped: no thread for the next command: {e}");
                let why = "server busy: it cannot start a thread now; try again shortly";
                let _ = send_error(&mut conn.transport, ErrorReply::new(ErrorCode::Busy, why));
            }
            _ => tracing::warn!("dropped during login: no thread to finish it: {e}"),
        }
    });
}

/// The poller's `ready`: [`resume`] while the server lives.
pub(super) fn wake(shared: &Weak<Shared>, waiting: Waiting) {
    if let Some(shared) = shared.upgrade() {
        resume(&shared, waiting);
    }
}

/// The poller's `expired`: the deadline passed. Ends a connection whose
/// client stayed silent; a delayed challenge is due now instead.
pub(super) fn expire(shared: &Weak<Shared>, waiting: Waiting) {
    let _entered = waiting.span().clone().entered();
    match waiting {
        Waiting::Challenge(_) => wake(shared, waiting),
        Waiting::Command(_) => tracing::info!("closed after the idle timeout"),
        Waiting::Answer(_) => {
            tracing::info!("left during login: no answer to the challenge in time")
        }
    }
}

/// How long a worker that sent the challenge waits for the answer before
/// it parks the connection in the poller and takes other work: a client
/// nearby answers well within it, and one that does not costs a worker no
/// more than this.
const ANSWER_WAIT: Duration = Duration::from_millis(10);

/// A new connection on the worker it was dispatched to: the challenge, the
/// login, then its commands until it goes quiet. A client slow to answer
/// the challenge waits for its answer in the poller.
pub(super) fn start(
    shared: &Arc<Shared>,
    stream: TcpStream,
    ip: IpAddr,
    slot: Slot,
    span: tracing::Span,
) {
    let arrival = Arrival {
        ip,
        slot,
        span,
        started: Instant::now(),
    };
    if shared.config.anonymous_quota.is_some() {
        // A client may speak first: the whole login here, as it comes.
        return log_in_then_run(shared, || open(shared, stream, arrival));
    }
    tracing::info!("connected");
    let delay = shared.backoff.delay(ip);
    if delay.is_zero() {
        return challenge(shared, stream, arrival);
    }
    tracing::info!(
        "delaying the challenge {} ms after repeated failed logins",
        delay.as_millis()
    );
    let delayed = Waiting::Challenge(Delayed { stream, arrival });
    if let Some(unparked) = shared.park_until(delayed, Instant::now() + delay) {
        resume(shared, unparked);
    }
}

/// Sends the challenge and, when the answer comes soon, goes on with the
/// login and the commands; otherwise parks the connection until it comes.
fn challenge(shared: &Arc<Shared>, stream: TcpStream, arrival: Arrival) {
    log_in_then_run(shared, || {
        let greeted = login::greet(&shared.config, stream)?;
        let answer_came = greeted
            .socket()
            .is_none_or(|fd| readable_within(fd, ANSWER_WAIT));
        let answering = Answering { greeted, arrival };
        if !answer_came {
            let deadline = answering.greeted.deadline;
            if let Some(unparked) = shared.park(Waiting::Answer(answering), deadline) {
                resume(shared, unparked);
            }
            return None;
        }
        answered(shared, answering)
    });
}

/// Runs `login`, counted as running for a graceful shutdown, then the
/// connection's commands if it logged in.
fn log_in_then_run(shared: &Shared, login: impl FnOnce() -> Option<Conn>) {
    let opened = {
        let _busy = Running::new(shared);
        login()
    };
    if let Some(conn) = opened {
        run(shared, conn);
    }
}
