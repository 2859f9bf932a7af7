//! A connection on a worker: its request runs, its reply goes out as far
//! as the socket takes it without waiting, and the requests already sent
//! behind it run next. The connection goes back to the poller when its
//! peer must read (the reply waits for room) or speak (no request is
//! whole); the poller gives it back when the socket has room, and a worker
//! makes the next chunks of a long reply.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::conn::{pull, Conn, Pulled, Running};
use super::waiting::{echo, park_request, Waiting};
use super::{contain, run_or_refuse, Shared};
use crate::error::Result;
use crate::logging::{Event, Kind};
use crate::server::accounts::{Account, Seat};
use crate::server::commands::staged::InGroup;
use crate::server::login::Identity;
use crate::server::outcome::{send_error, Flow};
use crate::server::reply::{Pace, Progress, Replying};
use crate::server::session::{commit_group, Handled, Session};
use crate::wire::message::{parse_request, Request};
use crate::wire::message::{ErrorCode, ErrorReply};

/// What a worker does for a connection.
pub(super) enum Work {
    /// Runs a whole request (or answers a frame that cannot be one).
    Request(Result<Vec<u8>>),
    /// Makes the next chunks of the reply on its way out.
    Reply,
}

/// Work for a connection goes to a worker, in its turn.
pub(super) fn to_worker(shared: &Arc<Shared>, conn: Conn, work: Work) {
    let job_shared = shared.clone();
    let job = move |(conn, work): (Conn, Work)| {
        let _entered = conn.span.clone().entered();
        contain(|| serve(&job_shared, conn, work));
    };
    let key = conn.job_key;
    run_or_refuse(shared, key, (conn, work), job, |(conn, _), e| {
        let _entered = conn.span.enter();
        Event::new(Kind::Internal).warn(format_args!("dropped: no thread for the request: {e}"));
    });
}

/// On a worker: runs the request, sends its reply as far as the socket
/// takes it without waiting, then runs every request the client already
/// sent behind it. The connection goes back to the poller when its peer
/// must read (the reply is blocked) or speak (no request is whole).
pub(super) fn serve(shared: &Arc<Shared>, mut conn: Conn, mut work: Work) {
    let _busy = Running::new(shared);
    let mut turn = 0;
    loop {
        turn += 1;
        if let Work::Request(header) = work {
            if !conn.group.is_empty() {
                conn.outbox.hold();
            }
            match run_request(shared, &mut conn, header) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Close) => conn.close_after_reply = true,
                Err(e) => {
                    return Event::new(Kind::Dropped).info(format_args!("connection dropped: {e}"))
                }
            }
        }
        if !conn.group.is_empty() {
            match grow_group(shared, conn) {
                Grown::Next(next, h) => {
                    (conn, work) = (next, Work::Request(h));
                    continue;
                }
                Grown::Committed(next) => conn = next,
                Grown::Echo(next, first) => return echo(shared, next, first),
                Grown::Ended => return,
            }
        }
        match conn.outbox.drive(&mut *conn.transport, true) {
            Ok(Progress::Blocked) => return park_reply(shared, conn),
            Ok(Progress::Paced(at)) => return park_paced(shared, conn, at),
            Ok(_) if conn.close_after_reply => return closed(&conn),
            Ok(_) => conn.replying = None,
            Err(e) => {
                return Event::new(Kind::Dropped).info(format_args!("connection dropped: {e}"))
            }
        }
        conn.header_deadline = Instant::now() + shared.config.context.timings.idle;
        match pull(conn) {
            // A pipelining client gets a turn, not the worker: its next
            // request waits in its account's line behind other accounts'.
            Pulled::Request(next, h) if turn >= REQUESTS_PER_TURN && next.group.is_empty() => {
                return to_worker(shared, next, Work::Request(h));
            }
            Pulled::Request(next, h) => (conn, work) = (next, Work::Request(h)),
            Pulled::Wait(conn) => return park_request(shared, conn),
            Pulled::Echo(conn, first) => return echo(shared, conn, first),
            Pulled::Ended(_) => return,
        }
    }
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

/// Requests one worker runs for a connection before the connection goes
/// back in line: enough that a pipeline costs few hand-offs, few enough
/// that another account's request waits for a turn of 32 small requests,
/// not for a pipeline of thousands.
const REQUESTS_PER_TURN: usize = 32;

/// Most puts one group commits at once: their replies wait for it.
const MAX_GROUP: usize = 256;

/// Where a connection with staged puts goes next.
enum Grown {
    /// This request comes next (another put, joining the group; or, with
    /// the group committed, anything else).
    Next(Conn, Result<Vec<u8>>),
    /// The group is committed and its replies are in the outbox.
    Committed(Conn),
    /// The group is committed; the seed's echo dialect follows.
    Echo(Conn, Vec<u8>),
    /// The group is committed; the peer is gone.
    Ended,
}

/// A staged put's group grows while the next request, already sent, is
/// another put; anything else (no whole request yet, another command, the
/// peer gone) commits it first (see `commands::staged`).
fn grow_group(shared: &Arc<Shared>, mut conn: Conn) -> Grown {
    if conn.close_after_reply || conn.group.len() >= MAX_GROUP {
        commit_staged(shared, &mut conn);
        return Grown::Committed(conn);
    }
    conn.header_deadline = Instant::now() + shared.config.context.timings.idle;
    match pull(conn) {
        Pulled::Request(next, h) if is_put(&h) => Grown::Next(next, h),
        Pulled::Request(mut next, h) => {
            commit_staged(shared, &mut next);
            Grown::Next(next, h)
        }
        Pulled::Wait(mut next) => {
            commit_staged(shared, &mut next);
            Grown::Committed(next)
        }
        Pulled::Echo(mut next, first) => {
            commit_staged(shared, &mut next);
            Grown::Echo(next, first)
        }
        Pulled::Ended(mut next) => {
            commit_staged(shared, &mut next);
            Grown::Ended
        }
    }
}

/// Whether `header` is a put that may join a group: one that asks for no
/// `ready`, which would have to go out before the group's replies.
fn is_put(header: &Result<Vec<u8>>) -> bool {
    let put = |h: &Vec<u8>| matches!(parse_request(h), Ok(Request::Put(p)) if !p.wants_ready());
    header.as_ref().is_ok_and(put)
}

/// Commits the connection's group of staged puts, their replies into its
/// outbox.
fn commit_staged(shared: &Arc<Shared>, conn: &mut Conn) {
    let group = std::mem::take(&mut conn.group);
    let ctx = &shared.config.context;
    let puts = group.len();
    let mut replying = Replying::new(&mut *conn.transport, &mut conn.outbox, ctx.timings.idle);
    match commit_group(ctx, group, &mut replying) {
        Ok(()) => Event::new(Kind::Commit).info(format_args!(
            "committed a group of {puts} puts with two flushes"
        )),
        Err(e) => Event::new(Kind::Commit).info(format_args!(
            "committed a group of {puts} puts; their replies were cut off: {e}"
        )),
    }
}

/// Runs one request; its reply is in the outbox, the body to come with it.
fn run_request(shared: &Arc<Shared>, conn: &mut Conn, header: Result<Vec<u8>>) -> Result<Flow> {
    let handled = match header {
        Ok(h) => with_session(shared, conn, |s, t| s.handle(&h, t)),
        Err(e) => with_session(shared, conn, |s, t| {
            s.refuse_frame(&e, t).map(Handled::done)
        }),
    }?;
    // While a group waits, what this request wrote waits in its turn.
    if let Some(held) = conn.outbox.take_held().filter(|h| !h.is_empty()) {
        conn.group.push(InGroup::Reply(held));
    }
    if let Some(pending) = handled.commit {
        conn.group.push(InGroup::Put(Box::new(pending)));
    }
    if let Some(body) = handled.body {
        let ctx = &shared.config.context;
        let floor = ctx.live.get().floor;
        let pace = Pace::new(ctx.timings.reply, floor, body.len_hint());
        conn.outbox.set_body(body, pace);
    }
    Ok(handled.flow)
}

fn closed(conn: &Conn) {
    Event::new(Kind::Disconnected).info(format_args!(
        "disconnected after {} s",
        conn.started.elapsed().as_secs()
    ));
}

/// Waits in the poller for room to send more of the reply, counted as
/// running meanwhile.
fn park_reply(shared: &Arc<Shared>, mut conn: Conn) {
    conn.replying.get_or_insert_with(|| Running::new(shared));
    let ctx = &shared.config.context;
    conn.outbox
        .ensure_pace(|| Pace::new(ctx.timings.reply, ctx.live.get().floor, 0));
    let at = conn
        .outbox
        .wake_at()
        .unwrap_or_else(|| Instant::now() + ctx.timings.idle);
    drop(shared.park_writable(Waiting::Reply(conn), at));
}

/// Waits in the poller, as a timer, until the reply's next chunk is due
/// by its account's rate; then a worker makes it.
fn park_paced(shared: &Arc<Shared>, mut conn: Conn, at: Instant) {
    conn.replying.get_or_insert_with(|| Running::new(shared));
    drop(shared.park_until(Waiting::Paced(conn), at));
}

/// In the poller, with room in the socket: sends what the reply has made,
/// and hands it to a worker to make more.
pub(super) fn write_more(shared: &Arc<Shared>, mut conn: Conn) {
    match conn.outbox.drive(&mut *conn.transport, false) {
        Ok(Progress::Blocked) => park_reply(shared, conn),
        Ok(Progress::NeedsBody) => to_worker(shared, conn, Work::Reply),
        Ok(Progress::Paced(at)) => park_paced(shared, conn, at),
        Ok(Progress::Done) if conn.close_after_reply => closed(&conn),
        Ok(Progress::Done) => {
            conn.replying = None;
            conn.header_deadline = Instant::now() + shared.config.context.timings.idle;
            next_request(shared, conn);
        }
        Err(e) => dropped(conn, e),
    }
}

/// Ends a connection whose reply cannot go on, with a reset (see
/// [`Conn::abort`]).
fn dropped(conn: Conn, why: impl std::fmt::Display) {
    Event::new(Kind::Dropped).info(format_args!("connection dropped: {why}"));
    conn.abort();
}

/// In the poller, with the socket still full at the reply's check: the
/// reply goes on waiting if it keeps its pace.
pub(super) fn reply_stalled(shared: &Arc<Shared>, mut conn: Conn) {
    match conn.outbox.check_pace(Instant::now()) {
        Ok(()) => park_reply(shared, conn),
        Err(e) => dropped(conn, e),
    }
}

/// Runs `f` with the connection's session, carrying the current folder
/// from request to request; the session starts (its home is made) before
/// the first. What the session writes goes through the outbox.
fn with_session(
    shared: &Shared,
    conn: &mut Conn,
    f: impl FnOnce(&mut Session<'_>, &mut Replying<'_>) -> Result<Handled>,
) -> Result<Handled> {
    let config = &shared.config;
    let anonymous;
    let roster = shared.config.accounts.current();
    let mut session = match conn.identity {
        Identity::Tls(_) | Identity::Plaintext(_) => {
            match conn.seat.as_ref().and_then(|s| roster.find(s.name())) {
                Some(account) => Session::new(&config.context, account),
                None => return removed(conn).map(Handled::done),
            }
        }
        Identity::Anonymous => {
            anonymous = Account::anonymous(config.context.live.get().anonymous_quota);
            Session::anonymous(&config.context, &anonymous)
        }
    }
    .in_folder(std::mem::take(&mut conn.cwd))
    .with_peer(conn.peer);
    let wait = config.context.timings.idle;
    let mut replying = Replying::new(&mut *conn.transport, &mut conn.outbox, wait);
    if !conn.started_session {
        conn.started_session = true;
        if session.start(&mut replying)? == Flow::Close {
            return Ok(Handled::done(Flow::Close));
        }
    }
    let handled = f(&mut session, &mut replying);
    conn.cwd = session.into_cwd();
    handled
}

/// The connection's account was removed by a reload: the client is told
/// so, and the connection ends.
fn removed(conn: &mut Conn) -> Result<Flow> {
    let name = conn
        .seat
        .as_ref()
        .and_then(Seat::name)
        .unwrap_or("(shared secret)");
    Event::new(Kind::Dropped)
        .result("account_removed")
        .info(format_args!(
            "closed: account {name} was removed from the users file"
        ));
    let why =
        format!("your account {name} was removed from this server; ask its operator for a new one");
    let wait = Duration::ZERO;
    let mut replying = Replying::new(&mut *conn.transport, &mut conn.outbox, wait);
    let _ = send_error(&mut replying, ErrorReply::new(ErrorCode::AuthFailed, why));
    Ok(Flow::Close)
}
