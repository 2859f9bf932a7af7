//! The server's own request path, driven over bytes in memory: a logged-in
//! connection as the server builds it, whose requests are taken by the
//! poller's header decoder and run by the worker's loop (replies through
//! the outbox, long bodies, durable groups), on a stream that is a buffer.
//! The unit tests, the property tests and the fuzz target use it, so they
//! test the path the running server takes.

use std::io::{self, Cursor, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use super::arrival::{Arrival, Slot};
use super::conn::{pull, Conn, Pulled};
use super::serving::{serve, Work};
use super::workers::Workers;
use super::{Config, Shared, THREAD_STACK};
use crate::config::secret::Secret;
use crate::net::tls::ServerIdentity;
use crate::net::Transport;
use crate::server::accounts::{Account, AccountBook, Accounts};
use crate::server::context::Context;
use crate::server::hosts::Backoff;
use crate::server::login::{Identity, LoggedIn, Login, LoginContext, Next};
use crate::wire::frame::Incoming;

/// A stream over a buffer whose output the harness keeps after the
/// connection that owns the stream is gone.
struct Buffered {
    input: Cursor<Vec<u8>>,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Read for Buffered {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Buffered {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Buffered {}

/// The TLS identity the harness's configuration carries: never used on
/// this path, made once per process.
fn identity() -> ServerIdentity {
    static IDENTITY: OnceLock<ServerIdentity> = OnceLock::new();
    IDENTITY
        .get_or_init(|| ServerIdentity::ephemeral().unwrap_or_else(|e| panic!("{e}")))
        .clone()
}

/// A server's settings around `ctx` and its accounts, at the smallest
/// limits: what the harness and the login's tests run with.
pub(crate) fn config(ctx: &Context, accounts: Arc<AccountBook>) -> Config {
    Config {
        context: ctx.clone(),
        accounts,
        max_connections: 1,
        workers: 1,
        partial_ttl: std::time::Duration::from_secs(3600),
        tls: identity(),
        require_tls: false,
        anonymous: false,
        max_logins_per_address: 1,
        max_failed_logins: 1,
        max_handshakes_per_second: 1,
    }
}

/// Runs `input` (everything a client sends after its login) through the
/// server's request path on a connection of the single account, and
/// returns what the server sent. Never panics for any input: that is what
/// the fuzz target checks.
pub fn serve_bytes(ctx: &Context, input: &[u8]) -> Vec<u8> {
    let secret = Secret::new(b"test secret".to_vec()).unwrap_or_else(|_| unreachable!());
    let book = Arc::new(AccountBook::new(Accounts::single(secret)));
    let config = config(ctx, book.clone());
    let shared = Arc::new(Shared::new(config, Workers::new(THREAD_STACK, 1, 1)));
    let output = Arc::new(Mutex::new(Vec::new()));
    let stream = Buffered {
        input: Cursor::new(input.to_vec()),
        output: output.clone(),
    };
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let account = Account::shared(Secret::new(b"-".to_vec()).unwrap_or_else(|_| unreachable!()));
    let (Ok(slot), Ok(seat)) = (Slot::take(&shared, ip), book.admit(&account, ip)) else {
        return Vec::new();
    };
    let logged_in = LoggedIn {
        identity: Identity::Tls(0),
        seat: Some(seat),
        transport: Box::new(stream),
        incoming: Incoming::default(),
    };
    let arrival = Arrival::new(ip, slot, tracing::Span::none());
    let conn = Conn::new(&shared, logged_in, arrival, None);
    // As the poller takes the first header, then the worker's loop.
    if let Pulled::Request(conn, header) = pull(conn) {
        serve(&shared, conn, Work::Request(header));
    }
    let sent = std::mem::take(&mut *output.lock());
    sent
}

/// How a login fed bytes in memory ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginEnd {
    /// It waits for more bytes.
    Waiting,
    /// Logged in.
    In,
    /// Refused with an `auth_failed` frame.
    Refused,
    /// Dropped: the peer broke the protocol.
    Gone,
}

/// Runs the login's state machine (the one the poller drives) over
/// `input`, all a client sends from its first byte, `piece` bytes at a
/// time and never more than the login takes, with the timers it sets
/// taken as passed. Returns what the server sent and how the login ended.
/// Never panics for any input: that is what the fuzz target checks.
pub fn login_bytes(
    ctx: &Context,
    anonymous: bool,
    input: &[u8],
    piece: usize,
) -> (Vec<u8>, LoginEnd) {
    let secret = Secret::new(b"test secret".to_vec()).unwrap_or_else(|_| unreachable!());
    let mut config = config(ctx, Arc::new(AccountBook::new(Accounts::single(secret))));
    config.anonymous = anonymous;
    let backoff = Backoff::new(u32::MAX, u32::MAX, std::time::Duration::ZERO);
    let cx = LoginContext {
        config: &config,
        backoff: &backoff,
        roster: config.accounts.current(),
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let (mut sent, mut rest) = (Vec::new(), input);
    let mut step = Login::begin(&cx);
    loop {
        sent.append(&mut step.send);
        step = match step.next {
            Next::Read(..) if rest.is_empty() => return (sent, LoginEnd::Waiting),
            Next::Read(login, _) => {
                let n = login.wants().unwrap_or(0).min(piece.max(1)).min(rest.len());
                let (now, later) = rest.split_at(n);
                rest = later;
                login.received(&cx, now)
            }
            Next::Sleep(login, _) => login.expired(&cx),
            Next::In(_) => return (sent, LoginEnd::In),
            Next::Refused => return (sent, LoginEnd::Refused),
            Next::Gone => return (sent, LoginEnd::Gone),
        };
    }
}
