//! The login on an accepted socket: the seed's challenge, then the dialect
//! the client's answer chooses (TLS with a channel-bound proof, or the
//! seed's plaintext HMAC-MD5), with a growing delay for addresses that keep
//! failing.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::net::prefixed::Prefixed;
use crate::net::tcp::TcpTransport;
use crate::net::tls::TlsTransport;
use crate::net::Transport;
use crate::server::metrics::Metrics;
use crate::server::session::send_error;
use crate::server::Config;
use crate::wire::auth::{
    find_key, new_challenge, read_opening, send_challenge, Challenge, Opening, Response,
    RESPONSE_LEN,
};
use crate::wire::binding::{self, find_client, BINDING_LEN};
use crate::wire::frame::{read_full, MAX_HEADER_LEN};
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

/// The host an address belongs to, for limits and back-off: an IPv4
/// address, or the /64 an IPv6 address is in (one host often has many).
pub fn host_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Failed logins by host, and the delay they earn.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

impl Backoff {
    /// How long to wait before challenging `ip`.
    pub fn delay(&self, ip: IpAddr) -> Duration {
        let ip = host_key(ip);
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
        let ip = host_key(ip);
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED_ADDRESSES && !map.contains_key(&ip) {
            map.retain(|_, f| f.last.elapsed() < FAILURE_MEMORY);
            // Still full: forget the host that failed longest ago, not all
            // of them (which would let every one start afresh).
            if map.len() >= MAX_TRACKED_ADDRESSES {
                let oldest = map.iter().min_by_key(|(_, f)| f.last).map(|(ip, _)| *ip);
                if let Some(oldest) = oldest {
                    map.remove(&oldest);
                }
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
        let ip = host_key(ip);
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&ip);
    }
}

/// A connection that was sent the seed's challenge and waits for the
/// client's 16 bytes.
pub struct Greeted {
    transport: TcpTransport,
    challenge: Challenge,
    /// When the whole login, TLS included, must be over.
    pub deadline: Instant,
}

impl Greeted {
    /// The socket the answer comes on.
    pub fn socket(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.transport.socket()
    }
}

/// Readies an accepted socket and sends it the challenge: 32 bytes into an
/// empty socket buffer, which never wait.
pub fn greet(config: &Config, stream: TcpStream) -> Option<Greeted> {
    greet_on(config, accepted(config, stream))
}

/// The transport of an accepted stream, whose socket options the listener
/// set (`tcp::configure_listener`).
fn accepted(config: &Config, stream: TcpStream) -> TcpTransport {
    TcpTransport::accepted(stream, config.context.idle_timeout)
}

fn greet_on(config: &Config, mut transport: TcpTransport) -> Option<Greeted> {
    let deadline = Instant::now() + config.login_timeout;
    transport.set_deadline(Some(deadline));
    let challenge = new_challenge();
    match send_challenge(&mut transport, &challenge) {
        Ok(()) => Some(Greeted {
            transport,
            challenge,
            deadline,
        }),
        Err(e) => left(e),
    }
}

/// The whole login on this thread, after the back-off delay `ip` has
/// earned: the seed's challenge, then either TLS with a channel-bound
/// proof or, unless TLS is required, the seed's plaintext HMAC-MD5 answer.
/// Returns the account's index and the connection to serve; a failed login
/// is answered `auth_failed` and closed.
pub fn login(config: &Config, backoff: &Backoff, stream: TcpStream, ip: IpAddr) -> Option<Login> {
    tracing::info!("connected");
    let delay = backoff.delay(ip);
    if !delay.is_zero() {
        tracing::info!(
            "delaying the challenge {} ms after repeated failed logins",
            delay.as_millis()
        );
        thread::sleep(delay);
    }
    let mut transport = accepted(config, stream);
    if config.anonymous_quota.is_some() {
        match speaks_first(&mut transport, config.login_timeout) {
            Ok(Some(first)) => return anonymous_login(config, transport, first),
            Ok(None) => {}
            Err(e) => return left(e),
        }
    }
    answer(config, backoff, greet_on(config, transport)?, ip)
}

/// The rest of the login, once the client's 16 bytes are on their way:
/// the dialect they choose, and its proof.
pub fn answer(config: &Config, backoff: &Backoff, greeted: Greeted, ip: IpAddr) -> Option<Login> {
    let Greeted {
        mut transport,
        challenge,
        ..
    } = greeted;
    let result = match read_opening(&mut transport) {
        Ok(Opening::Tls) => tls_login(config, transport),
        Ok(Opening::Answer(_)) if config.require_tls => {
            tracing::warn!("login refused: plaintext logins are off (--require-tls)");
            config.context.metrics.login("failed", "legacy");
            return None;
        }
        Ok(Opening::Answer(answer)) => legacy_login(config, transport, &challenge, answer),
        Err(e) => return left(e),
    };
    match result {
        LoginResult::Ok(mut login) => {
            if login.dialect != Dialect::Anonymous {
                backoff.forget(ip);
            }
            login.transport.set_deadline(None);
            Some(login)
        }
        LoginResult::Refused(refusal) => {
            // Counted first: the same address may be back at once.
            backoff.note_failure(ip);
            refusal.close(&config.context.metrics);
            None
        }
        LoginResult::Gone => None,
    }
}

/// Which dialect a connection logged in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// TLS with the channel-bound proof.
    Tls,
    /// The seed's plaintext HMAC-MD5 login.
    Plaintext,
    /// No login at all (`--anonymous`): the seed's FtpClient.
    Anonymous,
}

/// A connection that passed the login.
pub struct Login {
    /// The account's index; `None` for an anonymous client.
    pub index: Option<usize>,
    /// The connection, with any bytes read past the login put back.
    pub transport: Box<dyn Transport>,
    /// How it logged in.
    pub dialect: Dialect,
}

fn left<T>(e: impl std::fmt::Display) -> Option<T> {
    tracing::info!("left during login: {e}");
    None
}

/// How a dialect's login ended.
enum LoginResult {
    Ok(Login),
    /// Wrong secret: counts towards the back-off, then is answered.
    Refused(Refusal),
    /// The peer left or broke the protocol.
    Gone,
}

/// The seed's dialect: the 16 bytes are an HMAC-MD5 answer.
fn legacy_login(
    config: &Config,
    transport: TcpTransport,
    challenge: &Challenge,
    answer: Response,
) -> LoginResult {
    let accounts = &config.accounts;
    let metrics = &config.context.metrics;
    match find_key(accounts.secrets(), challenge, &answer) {
        Some(index) => {
            let name = accounts.get(index).map_or("?", |a| a.label());
            tracing::Span::current().record("user", name);
            tracing::info!("login ok as {name}; legacy plaintext session");
            metrics.login("ok", "legacy");
            LoginResult::Ok(Login {
                index: Some(index),
                transport: Box::new(transport),
                dialect: Dialect::Plaintext,
            })
        }
        None if starts_a_frame(&answer) && config.anonymous_quota.is_some() => {
            LoginResult::Ok(anonymous(config, transport, answer.to_vec()))
        }
        None if starts_a_frame(&answer) => {
            tracing::warn!(
                "login failed: a frame came instead of the answer to the challenge (a client \
                 that does not log in, such as the seed's FtpClient; --anonymous accepts its \
                 uploads)"
            );
            metrics.login("failed", "legacy");
            LoginResult::Refused(Refusal::Explained(transport))
        }
        None => LoginResult::Refused(Refusal::Plain(transport)),
    }
}

/// The encrypted dialect: a TLS handshake, then the client's tag over this
/// connection's exporter, then the server's proof.
fn tls_login(config: &Config, transport: TcpTransport) -> LoginResult {
    let metrics = &config.context.metrics;
    let mut tls = match TlsTransport::accept(config.tls.config.clone(), transport) {
        Ok(t) => t,
        Err(e) => {
            tracing::info!("left during the TLS handshake: {e}");
            return LoginResult::Gone;
        }
    };
    let mut tag = [0u8; BINDING_LEN];
    let exporter = tls.exporter();
    let read = read_full(&mut tls, &mut tag);
    let (Ok(exporter), Ok(BINDING_LEN)) = (exporter, read) else {
        tracing::info!("left during the TLS login");
        return LoginResult::Gone;
    };
    let accounts = &config.accounts;
    let Some(index) = find_client(accounts.secrets(), &exporter, &tag) else {
        return LoginResult::Refused(Refusal::Tls(Box::new(tls)));
    };
    let Some(account) = accounts.get(index) else {
        return LoginResult::Gone;
    };
    let proof = binding::server_proof(account.secret.as_bytes(), &exporter);
    if tls.write_all(&proof).and_then(|()| tls.flush()).is_err() {
        return LoginResult::Gone;
    }
    tracing::Span::current().record("user", account.label());
    tracing::info!("login ok as {} over TLS", account.label());
    metrics.login("ok", "tls");
    LoginResult::Ok(Login {
        index: Some(index),
        transport: Box::new(tls),
        dialect: Dialect::Tls,
    })
}

/// A connection whose login failed, still to be answered `auth_failed`.
enum Refusal {
    /// Logged and counted already, with its own reason.
    Explained(TcpTransport),
    Plain(TcpTransport),
    Tls(Box<TlsTransport>),
}

impl Refusal {
    /// Logs and counts the failure, sends the `auth_failed` reply and
    /// closes.
    fn close(self, metrics: &Metrics) {
        let reply = ErrorReply::new(ErrorCode::AuthFailed, "authentication failed");
        let stream = match self {
            Refusal::Explained(mut t) => {
                let _ = send_error(&mut t, reply);
                t.into_inner()
            }
            Refusal::Plain(mut t) => {
                tracing::warn!("login failed: wrong answer to the challenge");
                metrics.login("failed", "legacy");
                let _ = send_error(&mut t, reply);
                t.into_inner()
            }
            Refusal::Tls(mut t) => {
                tracing::warn!("login failed: wrong proof over TLS");
                metrics.login("failed", "tls");
                let _ = send_error(&mut t, reply);
                t.close()
            }
        };
        linger_close(stream);
    }
}

/// How long a server with `--anonymous` waits, before it sends the
/// challenge, for a client that speaks first (the seed's FtpClient does).
/// Such a client never reads a challenge, and if one sits unread when it
/// closes, its kernel resets the connection and drops what it had not sent
/// yet; so it is better never to send one.
pub const SPEAK_FIRST_WAIT: Duration = Duration::from_millis(100);

/// The first bytes of a client that spoke before the challenge, if it did.
fn speaks_first(transport: &mut TcpTransport, idle: Duration) -> io::Result<Option<Response>> {
    let mut first = [0u8; RESPONSE_LEN];
    transport.set_deadline(Some(Instant::now() + SPEAK_FIRST_WAIT));
    let got = transport.read(&mut first);
    transport.set_deadline(Some(Instant::now() + idle));
    let mut n = match got {
        Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(None),
        Err(e) => return Err(e),
    };
    while n < RESPONSE_LEN {
        match transport.read(&mut first[n..])? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            got => n += got,
        }
    }
    Ok(Some(first))
}

/// A client that spoke before the challenge: anonymous if it sent a frame.
fn anonymous_login(config: &Config, mut transport: TcpTransport, first: Response) -> Option<Login> {
    if !starts_a_frame(&first) {
        tracing::warn!("login refused: the client spoke before the challenge, and not in frames");
        return None;
    }
    transport.set_deadline(None);
    Some(anonymous(config, transport, first.to_vec()))
}

/// An anonymous session, with the bytes read so far put back.
fn anonymous(config: &Config, transport: TcpTransport, read: Vec<u8>) -> Login {
    tracing::Span::current().record("user", "anonymous");
    tracing::info!("no login, a frame instead: anonymous session (--anonymous)");
    config.context.metrics.login("ok", "anonymous");
    Login {
        index: None,
        transport: Box::new(Prefixed::new(read, transport)),
        dialect: Dialect::Anonymous,
    }
}

/// Whether the 16 bytes in place of an answer have the shape of a frame:
/// a small little-endian length, then `{`.
fn starts_a_frame(bytes: &Response) -> bool {
    let len = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    (1..=MAX_HEADER_LEN as i32).contains(&len) && bytes[4] == b'{'
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

    #[test]
    fn an_ipv6_host_is_its_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(host_key(a), host_key(b));
        assert_ne!(host_key(a), host_key(other));
        let backoff = Backoff::default();
        for _ in 0..FREE_FAILURES + 1 {
            backoff.note_failure(a);
        }
        assert!(backoff.delay(b) > Duration::ZERO, "same /64, same back-off");
        assert_eq!(backoff.delay(other), Duration::ZERO);
    }
}
