//! One connection's life: the login on a worker, then each command on a
//! worker, with every wait between commands spent in the poller, holding
//! no thread.

use std::net::{IpAddr, TcpStream};
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{contain, Shared, Slot};
use crate::error::Result;
use crate::net::prefixed::Prefixed;
use crate::net::{readable_within, Transport};
use crate::server::accounts::Account;
use crate::server::echo;
use crate::server::login::{login, Dialect};
use crate::server::poller::Parkable;
use crate::server::session::{Flow, Session};

/// Whose connection it is.
#[derive(Debug, Clone, Copy)]
enum Who {
    Account(usize),
    Anonymous,
}

/// A logged-in connection between commands: all it needs to go on, and no
/// buffer it does not need.
pub(super) struct Conn {
    transport: Box<dyn Transport>,
    who: Who,
    /// A plaintext connection whose first bytes are still to be told apart:
    /// frames, or the seed's raw echo.
    unsniffed: bool,
    cwd: Vec<String>,
    span: tracing::Span,
    started: Instant,
    _slot: Slot,
}

impl Parkable for Conn {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.transport.socket()
    }
}

/// From accept to the first command: the login, the dialect, the home
/// folder. `None` when the connection ends there.
pub(super) fn open(
    shared: &Shared,
    stream: TcpStream,
    ip: IpAddr,
    slot: Slot,
    span: tracing::Span,
) -> Option<Conn> {
    let started = Instant::now();
    let config = &shared.config;
    let login = login(config, &shared.backoff, stream, ip)?;
    let who = match (login.dialect, login.index) {
        (Dialect::Anonymous, _) => Who::Anonymous,
        (_, Some(index)) => Who::Account(index),
        (_, None) => return None,
    };
    let mut conn = Conn {
        transport: login.transport,
        who,
        unsniffed: login.dialect == Dialect::Plaintext,
        cwd: Vec::new(),
        span,
        started,
        _slot: slot,
    };
    let started = with_session(shared, &mut conn, |s, t| s.start(t));
    (started.ok()? == Flow::Continue).then_some(conn)
}

/// After a plaintext login, once bytes came: the seed's echo client is
/// answered here, to the end; anyone else goes on in frames.
fn frames_or_echo(shared: &Shared, conn: &mut Conn) -> Option<()> {
    let idle = shared.config.context.idle_timeout;
    let mut transport = std::mem::replace(&mut conn.transport, Box::new(Gone));
    match echo::sniff(&mut transport, idle) {
        Ok(echo::Opening::Frames(head)) => {
            conn.transport = Box::new(Prefixed::new(head, transport));
            Some(())
        }
        Ok(echo::Opening::Echo(first)) => {
            tracing::info!("raw text instead of a frame: the seed's echo dialect");
            match echo::serve(&mut transport, first) {
                Ok(n) => tracing::info!("echoed {n} bytes"),
                Err(e) => tracing::info!("connection dropped: {e}"),
            }
            None
        }
        Ok(echo::Opening::Closed) => None,
        Err(e) => {
            tracing::info!("connection dropped: {e}");
            None
        }
    }
}

/// Runs `f` with the connection's session, carrying the current folder
/// from command to command.
fn with_session(
    shared: &Shared,
    conn: &mut Conn,
    f: impl FnOnce(&mut Session<'_>, &mut Box<dyn Transport>) -> Result<Flow>,
) -> Result<Flow> {
    let config = &shared.config;
    let anonymous;
    let mut session = match conn.who {
        Who::Account(i) => match config.accounts.get(i) {
            Some(account) => Session::new(&config.context, account),
            None => return Ok(Flow::Close),
        },
        Who::Anonymous => {
            anonymous = Account::anonymous(config.anonymous_quota.unwrap_or(0));
            Session::anonymous(&config.context, &anonymous)
        }
    }
    .in_folder(std::mem::take(&mut conn.cwd));
    let flow = f(&mut session, &mut conn.transport);
    conn.cwd = session.into_cwd();
    flow
}

/// Runs commands while the client keeps sending, and parks the connection
/// in the poller, giving the thread back, whenever it goes quiet.
pub(super) fn run(shared: &Shared, mut conn: Conn) {
    let _busy = Running::new(shared);
    loop {
        if !conn.transport.has_buffered() && !readable_now(&conn) {
            match shared.park(conn) {
                None => return,
                // Not a socket the poller can watch: wait here instead.
                Some(back) => conn = back,
            }
        }
        if conn.unsniffed {
            conn.unsniffed = false;
            if frames_or_echo(shared, &mut conn).is_none() {
                return;
            }
        }
        match with_session(shared, &mut conn, |s, t| s.serve_one(t)) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) => {
                let secs = conn.started.elapsed().as_secs();
                return tracing::info!("disconnected after {secs} s");
            }
            Err(e) => return tracing::info!("connection dropped: {e}"),
        }
    }
}

/// Counts a connection as running (in a worker) while it lives.
struct Running<'a>(&'a Shared);

impl<'a> Running<'a> {
    fn new(shared: &'a Shared) -> Running<'a> {
        shared
            .running
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Running(shared)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Stands in for a transport taken out for a moment: a closed stream.
struct Gone;

impl std::io::Read for Gone {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Ok(0)
    }
}

impl std::io::Write for Gone {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::NotConnected.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Transport for Gone {}

/// Whether the client's next command has already arrived.
fn readable_now(conn: &Conn) -> bool {
    conn.fd()
        .is_none_or(|fd| readable_within(fd, Duration::ZERO))
}

/// The poller found the connection readable: a worker takes it.
pub(super) fn resume(shared: &Weak<Shared>, conn: Conn) {
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let job_shared = shared.clone();
    let job = Box::new(move || {
        let span = conn.span.clone();
        let _entered = span.enter();
        contain(|| run(&job_shared, conn));
    });
    if let Err(e) = shared.workers.run(job) {
        tracing::warn!("cannot start a connection thread: {e}");
    }
}

/// The poller found the connection silent for the idle timeout.
pub(super) fn expire(conn: Conn) {
    let _entered = conn.span.enter();
    tracing::info!("closed after the idle timeout");
}

/// A new connection on the worker it was dispatched to: the login, then
/// its commands until it goes quiet.
pub(super) fn start(
    shared: &Arc<Shared>,
    stream: TcpStream,
    ip: IpAddr,
    slot: Slot,
    span: tracing::Span,
) {
    let opened = {
        let _busy = Running::new(shared);
        open(shared, stream, ip, slot, span)
    };
    if let Some(conn) = opened {
        run(shared, conn);
    }
}
