//! What waits in the poller: a connection before its login turn, in its
//! login, between requests, in a reply, in the seed's echo dialect, or
//! closing after a refusal; and the steps that park a logged-in
//! connection until its peer speaks again.

use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use super::arrival::{Arrival, Closing, Queued, Turn};
use super::conn::Conn;
use super::Shared;
use crate::logging::{Event, Kind};
use crate::server::echo::{self, Echoed};
use crate::server::login::Login;
use crate::server::poller::Parkable;

/// A connection in the middle of its login: the socket is here, the
/// login's state machine beside it never touches it.
pub(super) struct LoggingIn {
    pub(super) stream: TcpStream,
    pub(super) login: Login,
    pub(super) arrival: Arrival,
    pub(super) turn: Turn,
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

    pub(super) fn span(&self) -> &tracing::Span {
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

/// Waits in the poller for the rest of the next request, or for the
/// text bytes that came to be told apart.
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
