//! One connection's life. Everything that waits on the peer happens in the
//! poller, through sans-I/O steps that never block: the login (see
//! [`login`]), each request header as it trickles in, the seed's echo
//! dialect, and the close after a refusal. A worker is taken only when a
//! whole request header is in hand, and runs that request.

use std::net::{IpAddr, Shutdown, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{contain, run_or_refuse, Shared, Slot};
use crate::error::Result;
use crate::net::now::recv_now;
use crate::net::Transport;
use crate::server::accounts::{Account, Seat};
use crate::server::echo::{self, Echoed};
use crate::server::intake::{pull, start_echo, Pulled};
use crate::server::login::{Identity, LoggedIn, LoginContext, Next, Pending};
use crate::server::poller::Parkable;
use crate::server::session::{send_error, Flow, Session};
use crate::wire::frame::Incoming;
use crate::wire::message::{ErrorCode, ErrorReply};

/// Most bytes a refused peer may still send while its refusal is read.
const DRAIN_LIMIT: usize = 64 * 1024;
/// How long a refused peer has to read its refusal and close.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// A connection from accept to its close: where it comes from, the slot
/// it holds, its log span, and when it came.
pub(super) struct Arrival {
    ip: IpAddr,
    slot: Slot,
    span: tracing::Span,
    started: Instant,
}

impl Arrival {
    pub(super) fn new(ip: IpAddr, slot: Slot, span: tracing::Span) -> Arrival {
        Arrival {
            ip,
            slot,
            span,
            started: Instant::now(),
        }
    }
}

/// One of a host's login turns ([`super::hosts::Turns`]); the next
/// connection of that host waiting for one starts when it is dropped.
pub(super) struct Turn(Weak<Shared>, IpAddr);

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        if let Some(next) = shared.turns.end(self.1) {
            // Started by the poller, not here: this may run inside
            // another connection's step.
            let next = Waiting::Queued(next);
            if let Some(Waiting::Queued(q)) = shared.park_until(next, Instant::now()) {
                begin_login(&shared, q);
            }
        }
    }
}

/// A connection waiting for one of its host's login turns.
pub(super) struct Queued {
    stream: TcpStream,
    arrival: Arrival,
}

/// A connection in the middle of its login.
pub(super) struct LoggingIn {
    pending: Pending,
    arrival: Arrival,
    turn: Turn,
}

/// A logged-in connection: who it is, where it is, and the request it is
/// receiving.
pub(super) struct Conn {
    pub(super) transport: Box<dyn Transport>,
    identity: Identity,
    /// The account's seat, by whose name the account is looked up afresh
    /// for each request.
    seat: Option<Seat>,
    pub(super) incoming: Incoming,
    /// A plaintext login whose first bytes may be the seed's raw echo.
    pub(super) sniffing: bool,
    /// When one to three text bytes came, on a connection still sniffing.
    pub(super) text_since: Option<Instant>,
    /// When the request now arriving must be whole.
    header_deadline: Instant,
    /// Whether the session's start (its home folder) is done.
    started_session: bool,
    cwd: Vec<String>,
    echoed: u64,
    /// An anonymous client holds its login turn until its first request
    /// is in: it never proves who it is.
    pub(super) turn: Option<Turn>,
    span: tracing::Span,
    pub(super) started: Instant,
    _slot: Slot,
}

/// A refused connection, read from until its peer closes, so that the
/// refusal is not lost to a reset.
pub(super) struct Closing {
    stream: TcpStream,
    drained: usize,
    span: tracing::Span,
}

/// What waits in the poller.
pub(super) enum Waiting {
    /// Its host's login turn came: a timer due now.
    Queued(Queued),
    /// The login, at whichever step it is.
    Login(LoggingIn),
    /// The next request header.
    Request(Conn),
    /// More text in the seed's echo dialect.
    Echo(Conn),
    /// The close after a refusal.
    Closing(Closing),
}

impl Waiting {
    fn span(&self) -> &tracing::Span {
        match self {
            Waiting::Queued(q) => &q.arrival.span,
            Waiting::Login(l) => &l.arrival.span,
            Waiting::Request(conn) | Waiting::Echo(conn) => &conn.span,
            Waiting::Closing(c) => &c.span,
        }
    }
}

impl Parkable for Waiting {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Waiting::Queued(q) => Some(q.stream.as_fd()),
            Waiting::Login(l) => Some(l.pending.socket()),
            Waiting::Request(conn) | Waiting::Echo(conn) => conn.transport.socket(),
            Waiting::Closing(c) => Some(c.stream.as_fd()),
        }
    }
}

/// A connection just accepted, with its slot: its login starts now, or
/// when one of its host's turns comes free.
pub(super) fn accepted(shared: &Arc<Shared>, stream: TcpStream, arrival: Arrival) {
    let host = arrival.slot.1;
    arrival.span.in_scope(|| tracing::info!("connected"));
    match shared.turns.begin(host, Queued { stream, arrival }) {
        Some(queued) => begin_login(shared, queued),
        None => tracing::debug!("waiting for a login turn"),
    }
}

/// Starts the login of a connection that has its host's turn.
fn begin_login(shared: &Arc<Shared>, q: Queued) {
    let _entered = q.arrival.span.clone().entered();
    let turn = Turn(Arc::downgrade(shared), q.arrival.slot.1);
    if q.arrival.started.elapsed() >= shared.config.login_timeout {
        return tracing::info!("left during login: no login turn came in time");
    }
    let next = Pending::begin(&login_context(shared, q.arrival.ip), q.stream);
    follow_login(shared, next, q.arrival, turn);
}

fn login_context(shared: &Shared, ip: IpAddr) -> LoginContext<'_> {
    LoginContext {
        config: &shared.config,
        backoff: &shared.backoff,
        roster: shared.config.accounts.current(),
        ip,
    }
}

/// Acts on what a login step decided.
fn follow_login(shared: &Arc<Shared>, next: Next, arrival: Arrival, turn: Turn) {
    match next {
        Next::Read(pending, at) => park_login(shared, pending, arrival, turn, at, Shared::park),
        Next::Sleep(pending, at) => {
            park_login(shared, pending, arrival, turn, at, Shared::park_until)
        }
        Next::In(logged_in) => {
            let anonymous = logged_in.identity == Identity::Anonymous;
            let turn = anonymous.then_some(turn);
            let conn = Conn::new(shared, logged_in, arrival, turn);
            next_request(shared, conn);
        }
        Next::Refused(stream) => close_after_refusal(shared, stream, arrival.span),
        Next::Gone => {}
    }
}

/// Parks a login until `at`, readable or as a timer (`park`).
fn park_login(
    shared: &Shared,
    pending: Pending,
    arrival: Arrival,
    turn: Turn,
    at: Instant,
    park: fn(&Shared, Waiting, Instant) -> Option<Waiting>,
) {
    let waiting = Waiting::Login(LoggingIn {
        pending,
        arrival,
        turn,
    });
    drop(park(shared, waiting, at));
}

impl Conn {
    fn new(shared: &Shared, logged_in: LoggedIn, arrival: Arrival, turn: Option<Turn>) -> Conn {
        Conn {
            transport: logged_in.transport,
            sniffing: matches!(logged_in.identity, Identity::Plaintext(_)),
            identity: logged_in.identity,
            seat: logged_in.seat,
            incoming: logged_in.incoming,
            text_since: None,
            header_deadline: Instant::now() + shared.config.context.idle_timeout,
            started_session: false,
            cwd: Vec::new(),
            echoed: 0,
            turn,
            span: arrival.span,
            started: arrival.started,
            _slot: arrival.slot,
        }
    }

    /// When the poller should give up waiting: the header's deadline, or
    /// sooner when a few text bytes wait for [`echo::SNIFF_WAIT`].
    fn wake_at(&self) -> Instant {
        match self.text_since {
            Some(at) => (at + echo::SNIFF_WAIT).min(self.header_deadline),
            None => self.header_deadline,
        }
    }
}

/// After a login or a request: the next request if it is here, or the
/// poller until it is.
fn next_request(shared: &Arc<Shared>, conn: Conn) {
    match pull(conn) {
        Pulled::Request(conn, header) => to_worker(shared, conn, header),
        Pulled::Wait(conn) => park_request(shared, conn),
        Pulled::Echo(conn, first) => echo(shared, conn, first),
        Pulled::Ended => {}
    }
}

fn park_request(shared: &Shared, conn: Conn) {
    acknowledge_now(&conn);
    let at = conn.wake_at();
    drop(shared.park(Waiting::Request(conn), at));
}

/// Echoes what came and waits for more.
fn echo(shared: &Shared, mut conn: Conn, first: Vec<u8>) {
    let Some(socket) = conn.transport.socket() else {
        return;
    };
    match echo::echo_now(socket, first, &mut conn.echoed) {
        Ok(Echoed::Open) => {
            let idle = Instant::now() + shared.config.context.idle_timeout;
            drop(shared.park(Waiting::Echo(conn), idle));
        }
        Ok(Echoed::Closed) => tracing::info!("echoed {} bytes", conn.echoed),
        Err(e) => tracing::info!(
            "connection dropped after echoing {} bytes: {e}",
            conn.echoed
        ),
    }
}

/// A whole request goes to a worker, in its turn.
fn to_worker(shared: &Arc<Shared>, conn: Conn, header: Result<Vec<u8>>) {
    let job_shared = shared.clone();
    let work = move |(conn, header): (Conn, Result<Vec<u8>>)| {
        let _entered = conn.span.clone().entered();
        contain(|| serve(&job_shared, conn, header));
    };
    run_or_refuse(shared, (conn, header), work, |(conn, _), e| {
        let _entered = conn.span.enter();
        tracing::warn!("dropped: no thread for the request: {e}");
    });
}

/// On a worker: runs the request, then every one the client already sent
/// behind it, and hands the connection back to the poller.
fn serve(shared: &Arc<Shared>, mut conn: Conn, mut header: Result<Vec<u8>>) {
    let _busy = Running::new(shared);
    loop {
        let flow = match header {
            Ok(h) => with_session(shared, &mut conn, |s, t| s.handle(&h, t)),
            Err(e) => with_session(shared, &mut conn, |s, t| s.refuse_frame(&e, t)),
        };
        match flow {
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) => {
                let secs = conn.started.elapsed().as_secs();
                return tracing::info!("disconnected after {secs} s");
            }
            Err(e) => return tracing::info!("connection dropped: {e}"),
        }
        conn.header_deadline = Instant::now() + shared.config.context.idle_timeout;
        match pull(conn) {
            Pulled::Request(next, h) => (conn, header) = (next, h),
            Pulled::Wait(conn) => return park_request(shared, conn),
            Pulled::Echo(conn, first) => return echo(shared, conn, first),
            Pulled::Ended => return,
        }
    }
}

/// Runs `f` with the connection's session, carrying the current folder
/// from request to request; the session starts (its home is made) before
/// the first.
fn with_session(
    shared: &Shared,
    conn: &mut Conn,
    f: impl FnOnce(&mut Session<'_>, &mut Box<dyn Transport>) -> Result<Flow>,
) -> Result<Flow> {
    let config = &shared.config;
    let anonymous;
    let roster = shared.config.accounts.current();
    let mut session = match conn.identity {
        Identity::Tls(_) | Identity::Plaintext(_) => {
            match conn.seat.as_ref().and_then(|s| roster.find(s.name())) {
                Some(account) => Session::new(&config.context, account),
                None => return removed(conn),
            }
        }
        Identity::Anonymous => {
            anonymous = Account::anonymous(config.anonymous_quota.unwrap_or(0));
            Session::anonymous(&config.context, &anonymous)
        }
    }
    .in_folder(std::mem::take(&mut conn.cwd));
    if !conn.started_session {
        conn.started_session = true;
        if session.start(&mut conn.transport)? == Flow::Close {
            return Ok(Flow::Close);
        }
    }
    let flow = f(&mut session, &mut conn.transport);
    conn.cwd = session.into_cwd();
    flow
}

/// The connection's account was removed by a reload: the client is told
/// so, and the connection ends.
fn removed(conn: &mut Conn) -> Result<Flow> {
    let name = conn
        .seat
        .as_ref()
        .and_then(Seat::name)
        .unwrap_or("(shared secret)");
    tracing::info!("closed: account {name} was removed from the users file");
    let why =
        format!("your account {name} was removed from this server; ask its operator for a new one");
    let _ = send_error(
        &mut conn.transport,
        ErrorReply::new(ErrorCode::AuthFailed, why),
    );
    Ok(Flow::Close)
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

/// Sends the ACK the kernel may be holding back for what the client sent
/// last. A thread blocked in a read gets it sent at once; a socket handed
/// to epoll does not, and a client whose next message waits behind Nagle's
/// algorithm for that ACK (the seed's, which writes its login answer and
/// its command separately) waits longer.
fn acknowledge_now(conn: &Conn) {
    if let Some(fd) = conn.transport.socket() {
        let _ = rustix::net::sockopt::set_tcp_quickack(fd, true);
    }
}

/// After a refusal was sent: no more writing, and reading (a bounded
/// amount, briefly) until the peer closes, since a close with unread input
/// makes the kernel send a reset that can destroy the refusal before the
/// client reads it.
fn close_after_refusal(shared: &Shared, stream: TcpStream, span: tracing::Span) {
    let _ = stream.shutdown(Shutdown::Write);
    let closing = Closing {
        stream,
        drained: 0,
        span,
    };
    drain(shared, closing);
}

fn drain(shared: &Shared, mut c: Closing) {
    let mut sink = [0u8; 4096];
    loop {
        match recv_now(c.stream.as_fd(), &mut sink) {
            Ok(n) if n > 0 && c.drained + n < DRAIN_LIMIT => c.drained += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            _ => return,
        }
    }
    drop(shared.park(Waiting::Closing(c), Instant::now() + DRAIN_WAIT));
}

/// Runs a poller's step for `waiting`, while the server lives, in the
/// connection's log span, with a panic contained to the connection.
fn in_poller(shared: &Weak<Shared>, waiting: Waiting, step: impl FnOnce(Arc<Shared>, Waiting)) {
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let _entered = waiting.span().clone().entered();
    contain(|| step(shared, waiting));
}

/// The poller's `ready`: the socket has something; the step runs here, on
/// the poller's thread, since it never waits.
pub(super) fn wake(shared: &Weak<Shared>, waiting: Waiting) {
    in_poller(shared, waiting, |shared, waiting| match waiting {
        Waiting::Queued(q) => begin_login(&shared, q),
        Waiting::Login(l) => {
            let next = l.pending.readable(&login_context(&shared, l.arrival.ip));
            follow_login(&shared, next, l.arrival, l.turn);
        }
        Waiting::Request(conn) => next_request(&shared, conn),
        Waiting::Echo(conn) => echo(&shared, conn, Vec::new()),
        Waiting::Closing(c) => drain(&shared, c),
    });
}

/// The poller's `expired`: the time a step set came with the socket
/// silent.
pub(super) fn expire(shared: &Weak<Shared>, waiting: Waiting) {
    in_poller(shared, waiting, |shared, waiting| match waiting {
        Waiting::Queued(q) => begin_login(&shared, q),
        Waiting::Login(l) => {
            let next = l.pending.expired(&login_context(&shared, l.arrival.ip));
            follow_login(&shared, next, l.arrival, l.turn);
        }
        Waiting::Request(conn) if conn.text_since.is_some() => {
            let (conn, first) = start_echo(conn);
            echo(&shared, conn, first);
        }
        Waiting::Request(conn) if !conn.incoming.is_empty() => {
            tracing::info!("connection dropped: the request header did not arrive in time")
        }
        Waiting::Request(_) | Waiting::Echo(_) => tracing::info!("closed after the idle timeout"),
        Waiting::Closing(_) => {}
    });
}

/// Turns away a host that failed too many logins this minute; returns
/// whether it did.
pub(super) fn locked_out(shared: &Shared, stream: &TcpStream, ip: IpAddr) -> bool {
    let Some(left) = shared.backoff.locked_out(ip) else {
        return false;
    };
    let why = format!(
        "too many failed logins from your address; try again in {} s",
        left.as_secs().max(1)
    );
    if let Some(skipped) = shared.refusals.should_log(super::hosts::host_key(ip)) {
        tracing::warn!(peer = %ip, skipped, "refused: {why}");
    }
    super::refuse_busy(stream, &why);
    true
}
