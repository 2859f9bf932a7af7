//! What a connection carries from accept to its close, before and beside
//! its session: the slot it holds, where it comes from and its log span,
//! its host's login turn, and the states it waits in before its login
//! (for a turn) or after a refusal (closing).

use std::net::{IpAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::Shared;

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
/// connection of that host waiting for one starts when it is dropped
/// (its `Drop` is with the login's start, in `admission`).
pub(super) struct Turn(pub(super) Weak<Shared>, pub(super) IpAddr);

/// A connection waiting for one of its host's login turns.
pub(super) struct Queued {
    pub(super) stream: TcpStream,
    pub(super) arrival: Arrival,
}

/// A refused connection, read from until its peer closes, so that the
/// refusal is not lost to a reset.
pub(super) struct Closing {
    pub(super) stream: TcpStream,
    pub(super) drained: usize,
    pub(super) span: tracing::Span,
}
