//! A connection from accept to the start of its session: the slot it
//! takes, its host's login turn (a host has so many logins under way at
//! once; the rest wait, and one that waits longer than [`Timings::turn`]
//! is told `busy` before its client stops waiting for a challenge), the
//! login's steps as the poller drives them (see [`login`]), and the close
//! after a refusal.
//!
//! [`Timings::turn`]: crate::server::timings::Timings::turn

use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::arrival::{Arrival, Closing, Queued, Slot, Turn};
use super::conn::Conn;
use super::hosts::host_key;
use super::serving::next_request;
use super::waiting::{LoggingIn, Waiting};
use super::Shared;
use crate::logging::{connection_span, Event, Kind};
use crate::net::now::{recv_now, send_all_now};
use crate::net::tcp::TcpTransport;
use crate::net::Transport;
use crate::server::login::{self, Admitted, Identity, LoggedIn, Login, LoginContext, Next, Step};

/// Most bytes a refused peer may still send while its refusal is read.
const DRAIN_LIMIT: usize = 64 * 1024;

/// A connection just accepted, on the accept thread: its slot, then its
/// login, which the poller drives from here on.
pub(super) fn dispatch(shared: &Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let metrics = &shared.config.context.metrics;
    metrics.connections.inc();
    let host = host_key(addr.ip());
    let slot = match Slot::take(shared, host) {
        Ok(slot) => slot,
        Err(why) => {
            metrics.refused_busy.inc();
            if let Some(skipped) = shared.refusals.should_log(host) {
                Event::new(Kind::Refused)
                    .peer(addr)
                    .skipped(skipped)
                    .warn(format_args!("refused: {why}"));
            }
            return super::refuse_busy(&stream, &why);
        }
    };
    if locked_out(shared, &stream, addr.ip()) {
        metrics.refused_busy.inc();
        return;
    }
    let span = connection_span(addr);
    accepted(shared, stream, Arrival::new(addr.ip(), slot, span));
}

/// A connection just accepted, with its slot: its login starts now, or
/// when one of its host's turns comes free.
pub(super) fn accepted(shared: &Arc<Shared>, stream: TcpStream, arrival: Arrival) {
    let host = arrival.slot.1;
    arrival
        .span
        .in_scope(|| Event::new(Kind::Connected).info(format_args!("connected")));
    match shared.turns.begin(host, Queued { stream, arrival }) {
        Some(queued) => begin_login(shared, queued),
        None => Event::new(Kind::Debug).debug(format_args!("waiting for a login turn")),
    }
}

/// Starts the login of a connection that has its host's turn.
pub(super) fn begin_login(shared: &Arc<Shared>, q: Queued) {
    let _entered = q.arrival.span.clone().entered();
    let turn = Turn(Arc::downgrade(shared), q.arrival.slot.1);
    if q.arrival.started.elapsed() >= shared.config.context.timings.login {
        return Event::login("left").info(format_args!(
            "left during login: no login turn came in time"
        ));
    }
    let step = Login::begin(&login_context(shared, q.arrival.ip));
    follow_login(shared, q.stream, step, q.arrival, turn);
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
pub(super) fn login_readable(shared: &Arc<Shared>, l: LoggingIn) {
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

/// The end of a login turn starts its host's next waiting login. The
/// turn is a plain value in `arrival` (a connection carries it through its
/// login, an anonymous one to its first request); this is its end's step.
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

/// After a refusal was sent: no more writing, and reading (a bounded
/// amount, briefly) until the peer closes, since a close with unread input
/// makes the kernel send a reset that can destroy the refusal before the
/// client reads it.
pub(super) fn close_after_refusal(shared: &Shared, stream: TcpStream, span: tracing::Span) {
    let _ = stream.shutdown(Shutdown::Write);
    let closing = Closing {
        stream,
        drained: 0,
        span,
    };
    drain(shared, closing);
}

pub(super) fn drain(shared: &Shared, mut c: Closing) {
    let mut sink = [0u8; 4096];
    loop {
        match recv_now(c.stream.as_fd(), &mut sink) {
            Ok(n) if n > 0 && c.drained + n < DRAIN_LIMIT => c.drained += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            _ => return,
        }
    }
    let drain = shared.config.context.timings.refusal_drain;
    drop(shared.park(Waiting::Closing(c), Instant::now() + drain));
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
        Event::new(Kind::Refused)
            .peer(ip)
            .skipped(skipped)
            .warn(format_args!("refused: {why}"));
    }
    super::refuse_busy(stream, &why);
    true
}

/// How often waiting connections are looked at for a turn they have
/// waited too long for.
pub(super) const TURN_CHECK: Duration = Duration::from_millis(250);

/// Answers `busy` to each connection that has waited [`Timings::turn`]
/// for its host's login turn.
///
/// [`Timings::turn`]: crate::server::timings::Timings::turn
pub(super) fn give_up_overdue_turns(shared: &Shared) {
    let wait = shared.config.context.timings.turn;
    for (q, running) in shared.turns.overdue(wait) {
        let _entered = q.arrival.span.enter();
        shared.config.context.metrics.refused_busy.inc();
        let why = format!(
            "server busy: your address has {running} logins under way and this one waited {} s \
             for its turn; try again shortly",
            wait.as_secs()
        );
        Event::new(Kind::Refused).info(format_args!("refused: {why}"));
        super::refuse_busy(&q.stream, &why);
    }
}
