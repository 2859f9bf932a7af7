//! The server's network side: the listening socket, the connection limit,
//! one thread per connection, the login handshake with back-off for failed
//! attempts, and containment of anything that goes wrong in a connection.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::accounts::Accounts;
use crate::auth::{new_challenge, server_handshake};
use crate::error::{Error, Result};
use crate::frame;
use crate::log::Logger;
use crate::protocol::{ErrorCode, ErrorReply, Reply};
use crate::session::{send_error, Context, Session, Transport};
use crate::store;
use crate::transport::TcpTransport;
use crate::workers::Workers;

/// Pending connections the kernel queues for us (capped by
/// `net.core.somaxconn`). std's default of 128 drops bursts of clients.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Stack for each connection thread. Memory is only committed as it is
/// touched, so this bounds the worst case without costing idle connections.
pub const THREAD_STACK: usize = 512 * 1024;

/// Failed logins from one address that are answered without delay.
const FREE_FAILURES: u32 = 3;
/// Longest delay before a challenge to an address that keeps failing.
const MAX_AUTH_DELAY: Duration = Duration::from_secs(8);
/// How long an address's failures are remembered.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Most addresses remembered at once.
const MAX_TRACKED_ADDRESSES: usize = 65_536;

/// How often stale partial uploads are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// What each connection shares: root, limits, policies, logger.
    pub context: Context,
    /// Who may log in.
    pub accounts: Accounts,
    /// Most connections served at once; more are answered `busy`.
    pub max_connections: usize,
    /// Partial uploads untouched this long are deleted.
    pub partial_ttl: Duration,
}

struct Shared {
    config: Config,
    active: AtomicUsize,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    workers: Workers,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// A bound server, ready to run.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Creates the root folder if needed and binds `addr` with a large
    /// backlog.
    ///
    /// Fails when the root cannot be created or the address cannot be bound.
    pub fn bind(addr: SocketAddr, config: Config) -> Result<Server> {
        let root = &config.context.root;
        std::fs::create_dir_all(root)
            .map_err(|e| Error::io(format!("creating the upload root {}", root.display()), e))?;
        let listener = listen(addr).map_err(|e| Error::io(format!("listening on {addr}"), e))?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                config,
                active: AtomicUsize::new(0),
                failures: Mutex::new(HashMap::new()),
                workers: Workers::new(THREAD_STACK),
            }),
        })
    }

    /// The address actually bound: the real port when asked for port 0.
    ///
    /// Fails only if the socket has no address, which a bound one has.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))
    }

    /// Serves forever, one thread per connection.
    pub fn run(self) -> ! {
        self.start_sweeper();
        let log = self.shared.config.context.log;
        loop {
            match self.listener.accept() {
                Ok((stream, addr)) => dispatch(&self.shared, stream, addr),
                Err(e) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    log.warn(format_args!("accept failed: {e}"));
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    fn start_sweeper(&self) {
        let config = &self.shared.config;
        let (root, ttl, log) = (
            config.context.root.clone(),
            config.partial_ttl,
            config.context.log,
        );
        let depth = if config.accounts.is_multi_user() {
            34
        } else {
            33
        };
        let _ = thread::Builder::new()
            .name("ftp-sweeper".into())
            .stack_size(THREAD_STACK)
            .spawn(move || loop {
                let removed = store::sweep_partials(&root, ttl, depth);
                if removed > 0 {
                    log.info(format_args!(
                        "removed {removed} partial uploads untouched for {} s",
                        ttl.as_secs()
                    ));
                }
                thread::sleep(SWEEP_INTERVAL);
            });
    }
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Releases a connection slot when the connection ends, however it ends.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

fn dispatch(shared: &Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let log = shared.config.context.log;
    let peer = addr.to_string();
    let max = shared.config.max_connections;
    if shared.active.fetch_add(1, Ordering::SeqCst) >= max {
        shared.active.fetch_sub(1, Ordering::SeqCst);
        log.warn(format_args!(
            "{peer} refused: at the limit of {max} connections"
        ));
        refuse_busy(stream, max);
        return;
    }
    let slot = Slot(shared.clone());
    let job = Box::new(move || {
        let shared = slot.0.clone();
        contain(shared.config.context.log, &peer, || {
            handle(&shared, stream, addr.ip(), &peer)
        });
        drop(slot);
    });
    if let Err(e) = shared.workers.run(job) {
        // The job, and with it the slot and the stream, was dropped.
        log.warn(format_args!("cannot start a connection thread: {e}"));
    }
}

/// Runs one connection's work so that a panic in it is logged and ends
/// only that connection; returns whether it panicked.
fn contain(log: Logger, peer: &str, work: impl FnOnce()) -> bool {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(()) => false,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            log.warn(format_args!("{peer} connection thread panicked: {what}"));
            true
        }
    }
}

/// Tells a client over the limit why it is turned away. The frame stands
/// where the challenge would; clients of this crate recognise it, and the
/// seed's client fails its login.
fn refuse_busy(mut stream: TcpStream, max: usize) {
    let _ = stream.set_nonblocking(true);
    let reply = Reply::<()>::Error(ErrorReply::new(
        ErrorCode::TooManyConnections,
        format!("server busy: it is serving its limit of {max} connections; try again shortly"),
    ));
    if let Ok(frame) = frame::encode_json(&reply) {
        let _ = stream.write_all(&frame);
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// One connection from accept to close. Kept small and split in parts
/// that are not inlined: an idle connection's thread waits below this
/// frame, and 10,000 of them should hold as little stack as possible.
#[inline(never)]
fn handle(shared: &Shared, stream: TcpStream, ip: IpAddr, peer: &str) {
    let started = Instant::now();
    let Some((index, mut transport)) = login(shared, stream, ip, peer) else {
        return;
    };
    let Some(account) = shared.config.accounts.get(index) else {
        return;
    };
    let log = shared.config.context.log;
    let result = Session::new(&shared.config.context, account, peer).serve(&mut transport);
    match result {
        Ok(()) => log.info(format_args!(
            "{peer} disconnected after {} s",
            started.elapsed().as_secs()
        )),
        Err(e) => log.info(format_args!("{peer} connection dropped: {e}")),
    }
}

/// The seed's handshake, with the back-off for addresses that keep
/// failing. Returns the account's index and the connection on success.
#[inline(never)]
fn login(
    shared: &Shared,
    stream: TcpStream,
    ip: IpAddr,
    peer: &str,
) -> Option<(usize, TcpTransport)> {
    let ctx = &shared.config.context;
    let log = ctx.log;
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(ctx.idle_timeout));
    log.info(format_args!("{peer} connected"));
    let delay = shared.auth_delay(ip);
    if !delay.is_zero() {
        log.info(format_args!(
            "{peer} delaying the challenge {} ms after repeated failed logins",
            delay.as_millis()
        ));
        thread::sleep(delay);
    }
    let mut transport = match TcpTransport::new(stream, ctx.idle_timeout) {
        Ok(t) => t,
        Err(e) => {
            log.info(format_args!("{peer} dropped: cannot set a timeout: {e}"));
            return None;
        }
    };
    transport.set_deadline(Some(Instant::now() + ctx.idle_timeout));
    let accounts = &shared.config.accounts;
    let result = server_handshake(&mut transport, accounts.secrets(), &new_challenge());
    transport.set_deadline(None);
    match result {
        Ok(Some(index)) => {
            shared.forget_failures(ip);
            let name = accounts.get(index).map_or("?", |a| a.label());
            log.info(format_args!("{peer} login ok as {name}"));
            Some((index, transport))
        }
        Ok(None) => {
            shared.note_failure(ip);
            log.warn(format_args!(
                "{peer} login failed: wrong answer to the challenge"
            ));
            let reply = ErrorReply::new(ErrorCode::AuthFailed, "authentication failed");
            let _ = send_error(&mut transport, reply);
            linger_close(transport.into_inner());
            None
        }
        Err(e) => {
            log.info(format_args!("{peer} left during login: {e}"));
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

impl Shared {
    fn auth_delay(&self, ip: IpAddr) -> Duration {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&ip) {
            Some(f) if f.count >= FREE_FAILURES && f.last.elapsed() < FAILURE_MEMORY => {
                let shift = (f.count - FREE_FAILURES).min(6);
                Duration::from_millis(125 << shift).min(MAX_AUTH_DELAY)
            }
            _ => Duration::ZERO,
        }
    }

    fn note_failure(&self, ip: IpAddr) {
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

    fn forget_failures(&self, ip: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::Level;

    #[test]
    fn a_panic_in_a_connection_is_contained() {
        let log = Logger::new(Level::Quiet);
        assert!(contain(log, "peer", || panic!("boom")));
        assert!(!contain(log, "peer", || {}));
    }

    #[test]
    fn failed_logins_slow_down_only_their_address() {
        let shared = Shared {
            config: Config {
                context: crate::testing::context(std::path::Path::new("/nonexistent")),
                accounts: Accounts::single(crate::secret::Secret::new(b"k".to_vec()).unwrap()),
                max_connections: 1,
                partial_ttl: Duration::from_secs(1),
            },
            active: AtomicUsize::new(0),
            failures: Mutex::new(HashMap::new()),
            workers: Workers::new(THREAD_STACK),
        };
        let bad: IpAddr = "10.0.0.1".parse().unwrap();
        let good: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            assert_eq!(shared.auth_delay(bad), Duration::ZERO);
            shared.note_failure(bad);
        }
        assert_eq!(shared.auth_delay(bad), Duration::from_millis(125));
        for _ in 0..20 {
            shared.note_failure(bad);
        }
        assert_eq!(shared.auth_delay(bad), MAX_AUTH_DELAY);
        assert_eq!(shared.auth_delay(good), Duration::ZERO);
        shared.forget_failures(bad);
        assert_eq!(shared.auth_delay(bad), Duration::ZERO);
    }
}
