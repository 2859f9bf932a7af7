//! A connection from accept to the start of its login: the slot it takes,
//! its host's login turn (a host has so many logins under way at once;
//! the rest wait, and one that waits longer than [`Timings::turn`] is told
//! `busy` before its client stops waiting for a challenge), and the close
//! after a refusal.
//!
//! [`Timings::turn`]: crate::server::timings::Timings::turn

use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::connection::{follow_login, login_context, Waiting};
use super::hosts::host_key;
use super::Shared;
use crate::logging::{connection_span, Event, Kind};
use crate::net::now::recv_now;
use crate::server::login::Login;

/// Most bytes a refused peer may still send while its refusal is read.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Releases a connection slot when the connection ends, however it ends.
pub(super) struct Slot(Arc<Shared>, pub(super) IpAddr);

impl Slot {
    /// Takes a slot for a connection from `host`, if the server and that
    /// host are under their limits; says which limit is reached if not.
    pub(super) fn take(shared: &Arc<Shared>, host: IpAddr) -> std::result::Result<Slot, String> {
        let config = &shared.config;
        let max = config.max_connections;
        if shared.active.fetch_add(1, Ordering::SeqCst) >= max {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            return Err(format!(
                "server busy: it is serving its limit of {max} connections; try again shortly"
            ));
        }
        let mut hosts = shared.per_host.lock();
        let count = hosts.entry(host).or_insert(0);
        let max_per_address = config.context.live.get().max_per_address;
        if *count >= max_per_address {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            return Err(format!(
                "server busy: your address has its limit of {} connections open; close one or \
                 try again shortly",
                max_per_address
            ));
        }
        *count += 1;
        config.context.metrics.connections_active.inc();
        Ok(Slot(shared.clone(), host))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut hosts = self.0.per_host.lock();
        if let Some(count) = hosts.get_mut(&self.1) {
            *count -= 1;
            if *count == 0 {
                hosts.remove(&self.1);
            }
        }
        drop(hosts);
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.config.context.metrics.connections_active.dec();
    }
}

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

/// A connection from accept to its close: where it comes from, the slot
/// it holds, its log span, and when it came.
pub(super) struct Arrival {
    pub(super) ip: IpAddr,
    pub(super) slot: Slot,
    pub(super) span: tracing::Span,
    pub(super) started: Instant,
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
    pub(super) stream: TcpStream,
    pub(super) arrival: Arrival,
}

/// A refused connection, read from until its peer closes, so that the
/// refusal is not lost to a reset.
pub(super) struct Closing {
    pub(super) stream: TcpStream,
    drained: usize,
    pub(super) span: tracing::Span,
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
