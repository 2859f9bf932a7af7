//! The server: the listening socket, the connection limit, the workers that
//! run connections while they have work and the poller where they wait
//! otherwise, and containment of anything that goes wrong in one.
//!
//! A connection passes through [`login`], then a [`session`] that runs
//! [`commands`] until the client leaves.

pub(crate) mod accounts;
mod admission;
mod arrival;
pub(crate) mod bodies;
pub(crate) mod commands;
mod conn;
mod connection;
pub(crate) mod context;
pub(crate) mod descriptors;
pub(crate) mod echo;
mod fair;
#[cfg(any(test, feature = "testing"))]
pub(crate) mod harness;
pub(crate) mod hooks;
pub(crate) mod hosts;
mod intake;
mod listener;
pub(crate) mod live;
pub(crate) mod login;
mod memory;
pub(crate) mod metrics;
pub(crate) mod order;
pub(crate) mod outcome;
pub(crate) mod poller;
pub(crate) mod quota;
pub(crate) mod recount;
pub(crate) mod reply;
mod serving;
pub(crate) mod session;
pub(crate) mod settings;
pub(crate) mod timings;
pub(crate) mod uploads;
mod waiting;
pub(crate) mod workers;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::logging::{Event, Kind};
use crate::net::readable_within;
use crate::net::tls::ServerIdentity;
use crate::server::accounts::AccountBook;
use crate::server::arrival::Queued;
use crate::server::context::Context;
use crate::server::hosts::{Backoff, RefusalLog, Turns};
pub(crate) use crate::server::listener::{fit_to_fd_limit, Bind};
use crate::server::listener::{is_out_of_fds, listen, open_spare_fd};
use crate::server::poller::Poller;
use crate::server::waiting::Waiting;
use crate::server::workers::Workers;
use crate::wire::frame;
use crate::wire::message::{ErrorCode, ErrorReply, Reply};

/// Stack for each worker thread. Memory is only committed as it is
/// touched, so this bounds the worst case without costing idle connections.
pub(crate) const THREAD_STACK: usize = 512 * 1024;

/// Threads the worker pool may add past `--workers` while every worker is
/// held (by uploads whose bodies come slowly, within `--min-rate`): room
/// for other users' requests, and a bound. Replies never hold a worker.
pub(crate) const EXTRA_WORKERS: usize = 16;

/// Most poller threads, whatever the number of cores.
const MAX_POLLERS: usize = 8;

/// How long the accept loop waits for a connection before it looks at the
/// stop flag again.
const ACCEPT_TICK: Duration = Duration::from_millis(200);

/// What newcomers are told once the server is shutting down.
const SHUTTING_DOWN: &str = "the server is shutting down; try again shortly";

/// How often stale partial uploads are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// What each connection shares: root, limits, policies, logger.
    pub(crate) context: Context,
    /// Who may log in: the accounts in force, which a reload replaces.
    pub(crate) accounts: Arc<AccountBook>,
    /// Most connections served at once; more are answered `busy`.
    pub(crate) max_connections: usize,
    /// Worker threads for connections that have work (a login, a command,
    /// a transfer); more work waits its turn, and more threads are added
    /// only while all of these are stuck.
    pub(crate) workers: usize,
    /// Partial uploads untouched this long are deleted.
    pub(crate) partial_ttl: Duration,
    /// The certificate and key the encrypted dialect uses.
    pub(crate) tls: ServerIdentity,
    /// Refuse the seed's plaintext login; serve only TLS.
    pub(crate) require_tls: bool,
    /// Let clients that skip the login (the seed's FtpClient) upload into
    /// `ROOT/anonymous`, and nothing else, within the anonymous quota.
    pub(crate) anonymous: bool,
    /// Most logins one host may have under way at once; its further
    /// connections wait for a turn (an anonymous client's turn lasts until
    /// its first request is in).
    pub(crate) max_logins_per_address: usize,
    /// Failed logins one host may make in a minute; after that its
    /// connections are refused until the minute is over.
    pub(crate) max_failed_logins: u32,
    /// TLS handshakes one host may start in a second, after a burst of as
    /// many.
    pub(crate) max_handshakes_per_second: u32,
}

struct Shared {
    config: Config,
    active: AtomicUsize,
    backoff: Backoff,
    workers: Workers,
    /// Where connections wait for their peer, one poller per core so that
    /// logins (their cryptography) spread over the cores; set once at
    /// bind. A connection goes to the poller its descriptor number picks.
    pollers: OnceLock<Vec<Poller<Waiting>>>,
    /// Connections a worker is serving now (logging in, or in a command).
    running: AtomicUsize,
    /// Open connections by host (an IPv6 host is its /64).
    per_host: Mutex<HashMap<IpAddr, usize>>,
    /// Logins under way by host, and connections waiting for a turn.
    turns: Turns<Queued>,
    /// When each host's refusals were last logged.
    refusals: RefusalLog,
}

impl Shared {
    fn new(config: Config, workers: Workers) -> Shared {
        Shared {
            backoff: Backoff::new(
                config.max_failed_logins,
                config.max_handshakes_per_second,
                config.context.timings.max_backoff,
            ),
            turns: Turns::new(config.max_logins_per_address),
            config,
            active: AtomicUsize::new(0),
            workers,
            pollers: OnceLock::new(),
            running: AtomicUsize::new(0),
            per_host: Mutex::new(HashMap::new()),
            refusals: RefusalLog::default(),
        }
    }

    /// Parks a connection until its client speaks or `deadline` passes;
    /// gives it back if it cannot.
    fn park(&self, waiting: Waiting, deadline: Instant) -> Option<Waiting> {
        match self.poller_for(&waiting) {
            Some(poller) => poller.park(waiting, deadline),
            None => Some(waiting),
        }
    }

    fn poller_for(&self, waiting: &Waiting) -> Option<&Poller<Waiting>> {
        use crate::server::poller::Parkable;
        use std::os::fd::AsRawFd;
        let pollers = self.pollers.get()?;
        let fd = waiting
            .fd()
            .map_or(0, |fd| fd.as_raw_fd().unsigned_abs() as usize);
        pollers.get(fd % pollers.len().max(1))
    }

    /// Parks a connection until its socket has room to write or
    /// `deadline` passes; gives it back if it cannot.
    fn park_writable(&self, waiting: Waiting, deadline: Instant) -> Option<Waiting> {
        match self.poller_for(&waiting) {
            Some(poller) => poller.park_writable(waiting, deadline),
            None => Some(waiting),
        }
    }

    /// Parks a connection until `deadline`, as a timer.
    fn park_until(&self, waiting: Waiting, deadline: Instant) -> Option<Waiting> {
        match self.poller_for(&waiting) {
            Some(poller) => poller.park_until(waiting, deadline),
            None => Some(waiting),
        }
    }
}

/// A bound server, ready to run.
pub(crate) struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    spare_fd: Mutex<Option<std::fs::File>>,
}

impl Server {
    /// Binds `at` with a large backlog, or takes the socket passed.
    ///
    /// Fails when the address cannot be bound, or what was passed is not
    /// a listening TCP socket.
    pub(crate) fn bind(at: Bind, config: Config) -> Result<Server> {
        // Taken first, so that a server short of descriptors fails to
        // start rather than run without it.
        let spare_fd = open_spare_fd();
        let anonymous = config.anonymous;
        let what = at.to_string();
        let listener = listen(at, anonymous, config.context.timings.idle).map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    " (another program, perhaps another ftp-server, listens there: stop it, or \
                     choose another port with --listen)"
                }
                _ => "",
            };
            Error::io(format!("{what}{hint}"), e)
        })?;
        let workers = Workers::new(THREAD_STACK, config.workers, config.workers + EXTRA_WORKERS);
        let shared = Arc::new(Shared::new(config, workers));
        let cores = thread::available_parallelism().map_or(1, |n| n.get());
        let pollers = (0..cores.min(MAX_POLLERS))
            .map(|_| {
                let (weak, expired) = (Arc::downgrade(&shared), Arc::downgrade(&shared));
                Poller::start(
                    move |waiting| connection::wake(&weak, waiting),
                    move |waiting| connection::expire(&expired, waiting),
                )
            })
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| Error::io("starting the poller", e))?;
        if let Some(first) = pollers.first() {
            let weak = Arc::downgrade(&shared);
            let trimmer = memory::Trimmer::default();
            first.every(admission::TURN_CHECK, move || {
                if let Some(shared) = weak.upgrade() {
                    admission::give_up_overdue_turns(&shared);
                }
                trimmer.now_and_then();
            });
        }
        let _ = shared.pollers.set(pollers);
        Ok(Server {
            listener,
            shared,
            spare_fd: Mutex::new(spare_fd),
        })
    }

    /// The address actually bound: the real port when asked for port 0.
    ///
    /// Fails only if the socket has no address, which a bound one has.
    pub(crate) fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))
    }

    /// Serves the metrics on `addr` (port 0 picks one) from a thread of
    /// their own, and returns the address bound.
    ///
    /// Fails when the address cannot be bound or the thread started.
    pub(crate) fn serve_metrics(&self, addr: SocketAddr) -> Result<SocketAddr> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| Error::io(format!("listening for metrics on {addr}"), e))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::io("reading the metrics address", e))?;
        let metrics = self.shared.config.context.metrics.clone();
        metrics::serve(listener, metrics)
            .map_err(|e| Error::io("starting the metrics thread", e))?;
        Ok(bound)
    }

    /// Serves until `stop` is raised (by SIGTERM, say). Then it drains:
    /// newcomers are answered busy, idle connections are closed, and
    /// running commands get up to `grace` to finish; the partial files of
    /// uploads cut off then stay, for a resume.
    ///
    /// Fails when the listening socket cannot be watched.
    pub(crate) fn run(self, stop: &AtomicBool, grace: Duration) -> Result<()> {
        self.start_sweeper();
        while !stop.load(Ordering::SeqCst) {
            self.accept_one(stop);
        }
        self.listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("watching the listening socket", e))?;
        let closed = self.shared.pollers.get().map_or(0, |p| {
            p.iter().map(|p| p.close_unless(Waiting::is_replying)).sum()
        }) + self.shared.turns.drain().len();
        let running = self.shared.running.load(Ordering::SeqCst);
        Event::new(Kind::Shutdown).info(format_args!(
            "shutting down: closed {closed} idle connections; waiting up to {} s for {running} \
             running",
            grace.as_secs()
        ));
        let deadline = Instant::now() + grace;
        while self.shared.running.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            self.refuse_ready();
        }
        match self.shared.running.load(Ordering::SeqCst) {
            0 => Event::new(Kind::Shutdown).info(format_args!("shut down")),
            left => Event::new(Kind::Shutdown).info(format_args!(
                "shut down; {left} commands cut off (their partial uploads are kept)"
            )),
        }
        Ok(())
    }

    /// Serving: takes the next connection once a worker has room for it.
    /// A blocking accept, one system call per connection; it gives up
    /// after the socket's read timeout (at most a second), so that `stop`
    /// is looked at.
    fn accept_one(&self, stop: &AtomicBool) {
        match self.listener.accept() {
            // Came in after the signal, while accept was blocked.
            Ok((stream, _)) if stop.load(Ordering::SeqCst) => refuse_busy(&stream, SHUTTING_DOWN),
            Ok((stream, addr)) => admission::dispatch(&self.shared, stream, addr),
            Err(e) => self.accept_failed(&e),
        }
    }

    /// Shutting down: waits up to a tick for connections, and turns away
    /// every one waiting.
    fn refuse_ready(&self) {
        if !readable_within(&self.listener, ACCEPT_TICK) {
            return;
        }
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => refuse_busy(&stream, SHUTTING_DOWN),
                Err(e) => return self.accept_failed(&e),
            }
        }
    }

    /// After accept failed: nothing, when it only timed out or was
    /// interrupted.
    fn accept_failed(&self, e: &io::Error) {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted => {}
            _ if is_out_of_fds(e) && self.refuse_with_spare_fd() => {}
            _ => {
                // Out of file descriptors or similar: try again soon,
                // without spinning.
                Event::new(Kind::Internal).warn(format_args!("accept failed: {e}"));
                thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Out of descriptors, with clients waiting in the backlog: closes the
    /// spare descriptor to accept the first of them and tell it `busy`,
    /// then takes the spare again. Without it they would wait, unanswered,
    /// until a descriptor came free. Returns whether one was answered.
    fn refuse_with_spare_fd(&self) -> bool {
        let mut spare = self.spare_fd.lock();
        if spare.take().is_none() {
            *spare = open_spare_fd();
            return false;
        }
        let accepted = self.listener.accept();
        let answered = accepted.is_ok();
        if let Ok((stream, addr)) = accepted {
            self.shared.config.context.metrics.refused_busy.inc();
            Event::new(Kind::Refused)
                .peer(addr)
                .warn(format_args!("refused: out of file descriptors"));
            refuse_busy(
                &stream,
                "server busy: it has run out of file descriptors; try again shortly",
            );
        }
        *spare = open_spare_fd();
        answered
    }

    fn start_sweeper(&self) {
        let config = &self.shared.config;
        let (context, ttl) = (config.context.clone(), config.partial_ttl);
        let _ = thread::Builder::new()
            .name("ftp-sweeper".into())
            .stack_size(THREAD_STACK)
            .spawn(move || loop {
                recount::hourly(&context, ttl);
                thread::sleep(SWEEP_INTERVAL);
            });
    }
}

/// Runs `work(item)` on a worker; when no thread can take it, `refuse`
/// gets the item back here instead, to answer the client.
fn run_or_refuse<T: Send + 'static>(
    shared: &Shared,
    key: workers::JobKey,
    item: T,
    work: impl FnOnce(T) + Send + 'static,
    refuse: impl FnOnce(T, io::Error),
) {
    // The item waits in a cell the job empties, so that a job that never
    // runs leaves it behind.
    let cell = Arc::new(Mutex::new(Some(item)));
    let handed = cell.clone();
    let job = Box::new(move || {
        let taken = handed.lock().take();
        if let Some(item) = taken {
            work(item);
        }
    });
    if let Err(e) = shared.workers.run(key, job) {
        let left = cell.lock().take();
        if let Some(item) = left {
            refuse(item, e);
        }
    }
}

/// Runs one connection's work so that a panic in it is logged and ends
/// only that connection; returns whether it panicked.
fn contain(work: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(()) => false,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Event::new(Kind::Internal).warn(format_args!("connection thread panicked: {what}"));
            true
        }
    }
}

/// Tells a client over the limit why it is turned away. The frame stands
/// where the challenge would; clients of this crate recognise it, and the
/// seed's client fails its login. Written without waiting, into a socket
/// buffer that holds nothing else; the caller closes the stream.
fn refuse_busy(stream: &TcpStream, why: &str) {
    use std::os::fd::AsFd;
    let reply = Reply::<()>::Error(ErrorReply::new(ErrorCode::TooManyConnections, why));
    if let Ok(frame) = frame::encode_json(&reply) {
        let _ = crate::net::now::send_all_now(stream.as_fd(), &frame);
    }
    let _ = stream.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_connection_is_contained() {
        assert!(contain(|| panic!("boom")));
        assert!(!contain(|| {}));
    }
}
