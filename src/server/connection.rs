//! One connection's life, as the poller hands it on. Everything that
//! waits on the peer happens in the poller, through sans-I/O steps that
//! never block: the login (see [`admission`]), each request header as it
//! trickles in (see [`serving`]), the seed's echo dialect, and the close
//! after a refusal. A worker is taken only when a whole request header is
//! in hand, and runs that request. Here each wake-up of the poller goes to
//! the step for what the connection waits in ([`Waiting`]).
//!
//! [`admission`]: super::admission
//! [`serving`]: super::serving

use std::sync::{Arc, Weak};

use super::admission::{begin_login, drain, follow_login, login_context, login_readable};
use super::serving::{next_request, reply_stalled, to_worker, write_more, Work};
use super::waiting::{echo, Waiting};
use super::{contain, Shared};
use crate::logging::{Event, Kind};

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
