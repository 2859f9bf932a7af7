//! One connection's life. Everything that waits on the peer happens in the
//! poller, through sans-I/O steps that never block: the login (see
//! [`login`]), each request header as it trickles in, the seed's echo
//! dialect, and the close after a refusal. A worker is taken only when a
//! whole request header is in hand, and runs that request.

use std::net::{IpAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::admission::Slot;
use super::admission::{begin_login, close_after_refusal, drain, Arrival, Closing, Queued, Turn};
use super::serving::{reply_stalled, to_worker, write_more, Running, Work};
use super::{contain, Shared};
use crate::logging::{Event, Kind};
use crate::net::now::{recv_now, send_all_now};
use crate::net::tcp::TcpTransport;
use crate::net::Transport;
use crate::server::accounts::Seat;
use crate::server::commands::staged::InGroup;
use crate::server::echo::{self, Echoed};
use crate::server::intake::{pull, Intake, Pulled};
use crate::server::login::{self, Admitted, Identity, LoggedIn, Login, LoginContext, Next, Step};
use crate::server::poller::Parkable;
use crate::server::reply::Outbox;
use crate::server::workers::JobKey;

/// A connection in the middle of its login: the socket is here, the
/// login's state machine beside it never touches it.
pub(super) struct LoggingIn {
    stream: TcpStream,
    login: Login,
    arrival: Arrival,
    turn: Turn,
}

/// A logged-in connection: who it is, where it is, and the request it is
/// receiving.
pub(super) struct Conn {
    pub(super) transport: Box<dyn Transport>,
    pub(super) identity: Identity,
    /// The account's seat, by whose name the account is looked up afresh
    /// for each request.
    pub(super) seat: Option<Seat>,
    /// The next request as it arrives.
    pub(super) intake: Intake,
    /// When the request now arriving must be whole.
    pub(super) header_deadline: Instant,
    /// Whether the session's start (its home folder) is done.
    pub(super) started_session: bool,
    pub(super) cwd: Vec<String>,
    /// The client's address, for the hooks' events.
    pub(super) peer: std::net::IpAddr,
    /// Whose line its work waits in: one account's requests never queue
    /// ahead of another's more than a turn.
    pub(super) job_key: JobKey,
    /// The reply on its way out; the next request is read only once it is
    /// empty, so a peer that pipelines requests without reading the
    /// replies stops being read.
    pub(super) outbox: Outbox,
    /// Close once the reply is out (it refused a frame that leaves the
    /// stream out of step).
    pub(super) close_after_reply: bool,
    /// Puts staged for their group's commit, whose replies come then.
    pub(super) group: Vec<InGroup>,
    /// Counts the connection as running while its reply goes out.
    pub(super) replying: Option<Running>,
    pub(super) echoed: u64,
    /// An anonymous client holds its login turn until its first request
    /// is in: it never proves who it is.
    pub(super) turn: Option<Turn>,
    pub(super) span: tracing::Span,
    pub(super) started: Instant,
    pub(super) _slot: Slot,
}

/// What waits in the poller.
pub(super) enum Waiting {
    /// Its host's login turn came: a timer due now.
    Queued(Queued),
    /// The login, at whichever step it is.
    Login(LoggingIn),
    /// The next request header.
    Request(Conn),
    /// Room to send more of a reply.
    Reply(Conn),
    /// The time its reply's next chunk is due (the account's rate).
    Paced(Conn),
    /// More text in the seed's echo dialect.
    Echo(Conn),
    /// The close after a refusal.
    Closing(Closing),
}

impl Waiting {
    /// Whether a reply is under way: a shutdown lets it finish within its
    /// grace, as it does a running command.
    pub(super) fn is_replying(&self) -> bool {
        matches!(self, Waiting::Reply(_) | Waiting::Paced(_))
    }

    fn span(&self) -> &tracing::Span {
        match self {
            Waiting::Queued(q) => &q.arrival.span,
            Waiting::Login(l) => &l.arrival.span,
            Waiting::Request(conn)
            | Waiting::Reply(conn)
            | Waiting::Paced(conn)
            | Waiting::Echo(conn) => &conn.span,
            Waiting::Closing(c) => &c.span,
        }
    }
}

impl Parkable for Waiting {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Waiting::Queued(q) => Some(q.stream.as_fd()),
            Waiting::Login(l) => Some(l.stream.as_fd()),
            Waiting::Request(conn)
            | Waiting::Reply(conn)
            | Waiting::Paced(conn)
            | Waiting::Echo(conn) => conn.transport.socket(),
            Waiting::Closing(c) => Some(c.stream.as_fd()),
        }
    }
}

pub(super) fn login_context(shared: &Shared, ip: IpAddr) -> LoginContext<'_> {
    LoginContext {
        config: &shared.config,
        backoff: &shared.backoff,
        roster: shared.config.accounts.current(),
        ip,
    }
}

/// How a login waits: for its socket ([`Shared::park`]) or for a timer
/// ([`Shared::park_until`]).
type Park = fn(&Shared, Waiting, Instant) -> Option<Waiting>;

/// Acts on what a login step decided: sends its bytes, then parks the
/// login, starts the session, or closes.
pub(super) fn follow_login(
    shared: &Arc<Shared>,
    stream: TcpStream,
    step: Step,
    arrival: Arrival,
    turn: Turn,
) {
    let sent = send_all_now(stream.as_fd(), &step.send);
    let (login, at, park): (_, _, Park) = match (step.next, sent) {
        (Next::Read(login, at), Ok(())) => (login, at, Shared::park),
        (Next::Sleep(login, at), Ok(())) => (login, at, Shared::park_until),
        (Next::Read(login, _) | Next::Sleep(login, _), Err(e)) => {
            return drop(login.unsent(&login_context(shared, arrival.ip), e));
        }
        (Next::In(admitted), Ok(())) => {
            return start_session(shared, stream, admitted, arrival, turn);
        }
        (Next::In(_), Err(e)) => {
            let why = crate::error::reason(&e);
            let left = Event::login("left");
            return left.info(format_args!(
                "left during login: sending to the client: {why}"
            ));
        }
        (Next::Refused, _) => return close_after_refusal(shared, stream, arrival.span),
        (Next::Gone, _) => return,
    };
    let waiting = Waiting::Login(LoggingIn {
        stream,
        login,
        arrival,
        turn,
    });
    drop(park(shared, waiting, at));
}

/// A login's socket turned readable: passes on what the login wants of
/// what came.
fn login_readable(shared: &Arc<Shared>, l: LoggingIn) {
    let cx = login_context(shared, l.arrival.ip);
    let mut buf = [0u8; login::MOST_READ];
    let step = match l.login.wants() {
        // A timer wakes early only for an error or a hang-up.
        None => l.login.ended(&cx, "closed"),
        Some(want) => match recv_now(l.stream.as_fd(), &mut buf[..want.min(login::MOST_READ)]) {
            Ok(0) => l.login.ended(&cx, "closed"),
            Ok(n) => l.login.received(&cx, &buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => l.login.still_waiting(),
            Err(e) => l.login.ended(&cx, e),
        },
    };
    follow_login(shared, l.stream, step, l.arrival, l.turn);
}

/// The session of a finished login, on the socket it came over (through
/// its TLS session, if it has one).
fn start_session(
    shared: &Arc<Shared>,
    stream: TcpStream,
    admitted: Admitted,
    arrival: Arrival,
    turn: Turn,
) {
    let tcp = TcpTransport::accepted(stream, shared.config.context.timings.idle);
    let transport: Box<dyn Transport> = match admitted.tls {
        Some(tls) => Box::new(tls.into_transport(tcp)),
        None => Box::new(tcp),
    };
    let anonymous = admitted.identity == Identity::Anonymous;
    let logged_in = LoggedIn {
        identity: admitted.identity,
        seat: admitted.seat,
        transport,
        incoming: admitted.incoming,
    };
    let conn = Conn::new(shared, logged_in, arrival, anonymous.then_some(turn));
    next_request(shared, conn);
}

impl Conn {
    pub(super) fn new(
        shared: &Shared,
        logged_in: LoggedIn,
        arrival: Arrival,
        turn: Option<Turn>,
    ) -> Conn {
        // Before its first reply: the kernel then holds little unsent for
        // a peer that falls behind, whatever its send buffer grows to.
        if let Some(fd) = logged_in.transport.socket() {
            crate::net::now::cap_unsent(fd);
        }
        let job_key = job_key(logged_in.seat.as_ref(), arrival.ip);
        Conn {
            transport: logged_in.transport,
            intake: Intake::new(
                logged_in.incoming,
                matches!(logged_in.identity, Identity::Plaintext(_)),
            ),
            identity: logged_in.identity,
            seat: logged_in.seat,
            header_deadline: Instant::now() + shared.config.context.timings.idle,
            started_session: false,
            cwd: Vec::new(),
            peer: arrival.ip,
            job_key,
            outbox: Outbox::default(),
            close_after_reply: false,
            group: Vec::new(),
            replying: None,
            echoed: 0,
            turn,
            span: arrival.span,
            started: arrival.started,
            _slot: arrival.slot,
        }
    }

    /// When the poller should give up waiting: the header's deadline, or
    /// sooner when a few text bytes wait to be told apart (`sniff`).
    fn wake_at(&self, sniff: Duration) -> Instant {
        self.intake.wake_at(sniff, self.header_deadline)
    }
}

/// The worker line of a connection: its account's, or where clients share
/// one secret or log in anonymously, its host's (an IPv6 /64).
fn job_key(seat: Option<&Seat>, ip: IpAddr) -> JobKey {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    match seat.and_then(Seat::name) {
        Some(name) => name.hash(&mut hasher),
        None => crate::server::hosts::host_key(ip).hash(&mut hasher),
    }
    hasher.finish()
}

/// After a login or a request: the next request if it is here, or the
/// poller until it is.
pub(super) fn next_request(shared: &Arc<Shared>, conn: Conn) {
    match pull(conn) {
        Pulled::Request(conn, header) => to_worker(shared, conn, Work::Request(header)),
        Pulled::Wait(conn) => park_request(shared, conn),
        Pulled::Echo(conn, first) => echo(shared, conn, first),
        Pulled::Ended(conn) => drop(conn),
    }
}

pub(super) fn park_request(shared: &Shared, conn: Conn) {
    acknowledge_now(&conn);
    let at = conn.wake_at(shared.config.context.timings.sniff);
    drop(shared.park(Waiting::Request(conn), at));
}

/// Echoes what came and waits for more.
pub(super) fn echo(shared: &Shared, mut conn: Conn, first: Vec<u8>) {
    let Some(socket) = conn.transport.socket() else {
        return;
    };
    match echo::echo_now(socket, first, &mut conn.echoed) {
        Ok(Echoed::Open) => {
            let idle = Instant::now() + shared.config.context.timings.idle;
            drop(shared.park(Waiting::Echo(conn), idle));
        }
        Ok(Echoed::Closed) => {
            Event::new(Kind::Echo).info(format_args!("echoed {} bytes", conn.echoed))
        }
        Err(e) => Event::new(Kind::Dropped).info(format_args!(
            "connection dropped after echoing {} bytes: {e}",
            conn.echoed
        )),
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
        Waiting::Login(l) => login_readable(&shared, l),
        Waiting::Request(conn) => next_request(&shared, conn),
        Waiting::Reply(conn) => write_more(&shared, conn),
        // A timer wakes early only for an error or a hang-up, which the
        // next write meets.
        Waiting::Paced(conn) => to_worker(&shared, conn, Work::Reply),
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
            let step = l.login.expired(&login_context(&shared, l.arrival.ip));
            follow_login(&shared, l.stream, step, l.arrival, l.turn);
        }
        Waiting::Request(mut conn) if conn.intake.has_text() => {
            let first = conn.intake.start_echo();
            echo(&shared, conn, first);
        }
        Waiting::Request(conn) if !conn.intake.is_empty() => Event::new(Kind::Dropped)
            .result("header_timeout")
            .info(format_args!(
                "connection dropped: the request header did not arrive in time"
            )),
        Waiting::Reply(conn) => reply_stalled(&shared, conn),
        Waiting::Paced(conn) => to_worker(&shared, conn, Work::Reply),
        Waiting::Request(_) | Waiting::Echo(_) => {
            let idle = Event::new(Kind::Dropped).result("idle_timeout");
            idle.info(format_args!("closed after the idle timeout"))
        }
        Waiting::Closing(_) => {}
    });
}
