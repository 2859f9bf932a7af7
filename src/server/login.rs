//! The login: the seed's challenge-response on an accepted socket, with a
//! growing delay for addresses that keep failing.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::net::tcp::TcpTransport;
use crate::net::Transport;
use crate::server::accounts::Accounts;
use crate::server::context::Context;
use crate::server::session::send_error;
use crate::wire::auth::{new_challenge, server_handshake};
use crate::wire::message::{ErrorCode, ErrorReply};

/// Failed logins from one address that are answered without delay.
const FREE_FAILURES: u32 = 3;
/// Longest delay before a challenge to an address that keeps failing.
const MAX_AUTH_DELAY: Duration = Duration::from_secs(8);
/// How long an address's failures are remembered.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Most addresses remembered at once.
const MAX_TRACKED_ADDRESSES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failed logins by address, and the delay they earn.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Backoff {
    /// How long to wait before challenging `ip`.
    pub fn delay(&self, ip: IpAddr) -> Duration {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&ip) {
            Some(f) if f.count >= FREE_FAILURES && f.last.elapsed() < FAILURE_MEMORY => {
                let shift = (f.count - FREE_FAILURES).min(6);
                Duration::from_millis(125 << shift).min(MAX_AUTH_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    /// Records a failed login from `ip`.
    pub fn note_failure(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED_ADDRESSES && !map.contains_key(&ip) {
            map.retain(|_, f| f.last.elapsed() < FAILURE_MEMORY);
            if map.len() >= MAX_TRACKED_ADDRESSES {
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert(Failures {
            count: 0,
            last: Instant::now(),
        });
        if entry.last.elapsed() >= FAILURE_MEMORY {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = Instant::now();
    }

    /// Forgets `ip`'s failures after a good login.
    pub fn forget(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&ip);
    }
}

/// The seed's handshake, after the back-off delay `ip` has earned. Returns
/// the account's index and the connection on success; a wrong answer gets
/// an `auth_failed` reply and a close.
pub fn login(
    ctx: &Context,
    accounts: &Accounts,
    backoff: &Backoff,
    stream: TcpStream,
    ip: IpAddr,
) -> Option<(usize, TcpTransport)> {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(ctx.idle_timeout));
    tracing::info!("connected");
    let delay = backoff.delay(ip);
    if !delay.is_zero() {
        tracing::info!(
            "delaying the challenge {} ms after repeated failed logins",
            delay.as_millis()
        );
        thread::sleep(delay);
    }
    let mut transport = match TcpTransport::new(stream, ctx.idle_timeout) {
        Ok(t) => t,
        Err(e) => {
            tracing::info!("dropped: cannot set a timeout: {e}");
            return None;
        }
    };
    transport.set_deadline(Some(Instant::now() + ctx.idle_timeout));
    let result = server_handshake(&mut transport, accounts.secrets(), &new_challenge());
    transport.set_deadline(None);
    match result {
        Ok(Some(index)) => {
            backoff.forget(ip);
            ctx.metrics.login("ok", "legacy");
            let name = accounts.get(index).map_or("?", |a| a.label());
            tracing::Span::current().record("user", name);
            tracing::info!("login ok as {name}");
            Some((index, transport))
        }
        Ok(None) => {
            backoff.note_failure(ip);
            ctx.metrics.login("failed", "legacy");
            tracing::warn!("login failed: wrong answer to the challenge");
            let reply = ErrorReply::new(ErrorCode::AuthFailed, "authentication failed");
            let _ = send_error(&mut transport, reply);
            linger_close(transport.into_inner());
            None
        }
        Err(e) => {
            tracing::info!("left during login: {e}");
            None
        }
    }
}

/// Closes after an error reply without losing it: a close with unread
/// input makes the kernel send a reset, which can destroy the reply before
/// the client reads it. So stop writing, and read until the client closes
/// (briefly, and a bounded amount).
fn linger_close(mut stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < 64 * 1024 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_logins_slow_down_only_their_address() {
        let backoff = Backoff::default();
        let bad: IpAddr = "10.0.0.1".parse().unwrap();
        let good: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            assert_eq!(backoff.delay(bad), Duration::ZERO);
            backoff.note_failure(bad);
        }
        assert_eq!(backoff.delay(bad), Duration::from_millis(125));
        for _ in 0..20 {
            backoff.note_failure(bad);
        }
        assert_eq!(backoff.delay(bad), MAX_AUTH_DELAY);
        assert_eq!(backoff.delay(good), Duration::ZERO);
        backoff.forget(bad);
        assert_eq!(backoff.delay(bad), Duration::ZERO);
    }
}
