//! A logged-in connection: who it is, where it is, the request it is
//! receiving and the reply on its way out; and [`pull`], which takes what
//! has arrived of its next request without ever waiting (the poller calls
//! it when the socket turns readable, a worker after each request, for the
//! next one already sent behind it).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::arrival::{Arrival, Slot, Turn};
use super::intake::{Intake, Wanted};
use super::Shared;
use crate::error::Result;
use crate::logging::{Event, Kind};
use crate::net::Transport;
use crate::server::accounts::Seat;
use crate::server::commands::staged::InGroup;
use crate::server::login::{Identity, LoggedIn};
use crate::server::reply::Outbox;
use crate::server::workers::JobKey;

/// Most reads one step of a header makes before the connection waits its
/// turn again, so that one fast peer cannot keep the poller to itself.
const READS_PER_STEP: usize = 16;

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

impl Conn {
    /// Closes a connection whose peer stopped reading, with a reset: a
    /// plain close would leave the socket to the kernel with its unsent
    /// bytes (up to the 128 KiB the unsent cap lets through) still owed to
    /// a peer that reads a byte a second, for as long as the peer likes.
    /// A reset throws them away at once.
    pub(super) fn abort(self) {
        if let Some(fd) = self.transport.socket() {
            let _ = rustix::net::sockopt::set_socket_linger(fd, Some(Duration::ZERO));
        }
    }

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
    pub(super) fn wake_at(&self, sniff: Duration) -> Instant {
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

/// What reading a request without waiting came to.
pub(super) enum Pulled {
    /// A whole header (or a frame that cannot be one), for a worker.
    Request(Conn, Result<Vec<u8>>),
    /// The rest has not come yet.
    Wait(Conn),
    /// The seed's echo dialect, starting with these bytes.
    Echo(Conn, Vec<u8>),
    /// The connection is over (logged); what it still holds (a group of
    /// staged puts) is the caller's to finish.
    Ended(Conn),
}

/// Takes what has arrived of the next request, never waiting.
pub(super) fn pull(mut conn: Conn) -> Pulled {
    let mut buf = [0u8; 16 * 1024];
    for _ in 0..READS_PER_STEP {
        let room = match conn.intake.wanted() {
            Wanted::Header(header) => {
                conn.turn = None;
                return Pulled::Request(conn, header);
            }
            Wanted::Bytes(n) => n.min(buf.len()),
        };
        let n = match conn.transport.read_now(&mut buf[..room]) {
            Ok(0) => return ended(conn),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Pulled::Wait(conn),
            Err(e) => {
                Event::new(Kind::Dropped).info(format_args!(
                    "connection dropped: {}",
                    crate::error::reason(&e)
                ));
                return Pulled::Ended(conn);
            }
        };
        if let Some(first) = conn.intake.received_bytes(&buf[..n], Instant::now()) {
            return Pulled::Echo(conn, first);
        }
    }
    Pulled::Wait(conn)
}

/// The peer closed while a request was expected.
fn ended(conn: Conn) -> Pulled {
    match conn.intake.is_empty() {
        true => Event::new(Kind::Disconnected).info(format_args!(
            "disconnected after {} s",
            conn.started.elapsed().as_secs()
        )),
        false => Event::new(Kind::Dropped).info(format_args!(
            "connection dropped: closed in the middle of a request header"
        )),
    }
    Pulled::Ended(conn)
}

/// Counts a connection as running (in a worker, or sending a reply) while
/// it lives: a shutdown gives those their grace.
pub(super) struct Running(Arc<Shared>);

impl Running {
    pub(super) fn new(shared: &Arc<Shared>) -> Running {
        shared
            .running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Running(shared.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}
