//! The login on an accepted socket, as one state machine that the poller
//! drives: the seed's challenge, then the dialect the client's answer
//! chooses (TLS with a channel-bound proof, or the seed's plaintext
//! HMAC-MD5), or, with `--anonymous`, a client that sends a frame instead.
//!
//! Every step takes what has arrived and never waits: a peer that sends
//! one byte a minute costs a parked socket and a few bytes, not a thread.
//! Each step consumes the login and returns what comes next ([`Next`]).

use std::io;
use std::net::{IpAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::logging::{logged_in, Event};
use crate::net::now::{recv_now, send_all_now};
use crate::net::tcp::TcpTransport;
use crate::net::tls::ServerHandshake;
use crate::net::Transport;
use crate::server::accounts::{Account, Roster, Seat};
use crate::server::hosts::Backoff;
use crate::server::Config;
use crate::wire::auth::{decode_opening, new_challenge, Challenge, Opening, RESPONSE_LEN};
use crate::wire::binding::{self, find_client, BINDING_LEN};
use crate::wire::frame::{self, Incoming, MAX_HEADER_LEN};
use crate::wire::message::{ErrorCode, ErrorReply, Reply};

/// Who a connection is once logged in. A dialect comes with an account,
/// and only an anonymous client has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The account at this index, over TLS with the channel-bound proof.
    Tls(usize),
    /// The account at this index, with the seed's plaintext HMAC-MD5.
    Plaintext(usize),
    /// No login at all (`--anonymous`): the seed's FtpClient.
    Anonymous,
}

/// What a login needs from the server.
pub struct LoginContext<'a> {
    /// Accounts, TLS identity, policies.
    pub config: &'a Config,
    /// Failed logins by host.
    pub backoff: &'a Backoff,
    /// The accounts in force when this step began, with their answer
    /// keys: a key and its account always come from the same list.
    pub roster: Arc<Roster>,
    /// The peer's address.
    pub ip: IpAddr,
}

/// A connection whose login is under way: its socket and where it stands.
pub struct Pending {
    stream: TcpStream,
    state: State,
    /// When the login must be over.
    deadline: Instant,
}

enum State {
    /// Waiting out the back-off delay before the challenge.
    Delayed,
    /// With `--anonymous`: listening a moment for a client that speaks
    /// first, and taking its first frame if it does.
    Listening(Incoming),
    /// The challenge went out; the client's 16 bytes come in.
    Answer { challenge: Challenge, got: Vec<u8> },
    /// The client asked for TLS; its host's handshakes come faster than
    /// they may, so this one waits for its turn.
    TlsPaced,
    /// The TLS handshake, then the client's tag over its exporter.
    Tls {
        handshake: Box<ServerHandshake>,
        tag: Vec<u8>,
    },
}

/// A finished login.
pub struct LoggedIn {
    /// Who it is.
    pub identity: Identity,
    /// The account's seat, by whose name each request finds the account
    /// in the accounts then in force; `None` for an anonymous client.
    pub seat: Option<Seat>,
    /// The connection, ready for a worker.
    pub transport: Box<dyn Transport>,
    /// The start of the first request, from a client that sent one in
    /// place of a login.
    pub incoming: Incoming,
}

/// What comes after a step.
pub enum Next {
    /// Wait for the socket to be readable; call [`Pending::expired`] at
    /// this instant if it is not.
    Read(Pending, Instant),
    /// Wait until this instant whatever the socket does, then call
    /// [`Pending::expired`].
    Sleep(Pending, Instant),
    /// Logged in.
    In(LoggedIn),
    /// Refused, logged and answered: close once the peer has read it.
    Refused(TcpStream),
    /// The peer left, stalled or broke the protocol; logged.
    Gone,
}

impl Pending {
    /// A login for a socket just accepted: a delay first when `ip` has
    /// earned one, a moment to speak first on an anonymous server, or the
    /// challenge at once.
    pub fn begin(cx: &LoginContext<'_>, stream: TcpStream) -> Next {
        let pending = Pending {
            stream,
            state: State::Delayed,
            deadline: Instant::now() + cx.config.context.timings.login,
        };
        let delay = cx.backoff.delay(cx.ip);
        if delay.is_zero() {
            return pending.after_delay(cx);
        }
        Event::login("delayed").info(format_args!(
            "delaying the challenge {} ms after repeated failed logins",
            delay.as_millis()
        ));
        Next::Sleep(pending, Instant::now() + delay)
    }

    /// The socket, for the poller.
    pub fn socket(&self) -> std::os::fd::BorrowedFd<'_> {
        self.stream.as_fd()
    }

    fn after_delay(mut self, cx: &LoginContext<'_>) -> Next {
        self.deadline = Instant::now() + cx.config.context.timings.login;
        if cx.config.anonymous {
            self.state = State::Listening(Incoming::default());
            let wait = cx.config.context.timings.speak_first;
            return Next::Read(self, Instant::now() + wait);
        }
        self.challenge()
    }

    /// Sends the challenge: 32 bytes into a socket buffer that holds
    /// nothing else yet.
    fn challenge(mut self) -> Next {
        let challenge = new_challenge();
        if let Err(e) = send_all_now(self.stream.as_fd(), &challenge) {
            return gone(format!("sending the challenge: {e}"));
        }
        self.state = State::Answer {
            challenge,
            got: Vec::with_capacity(RESPONSE_LEN),
        };
        let deadline = self.deadline;
        Next::Read(self, deadline)
    }

    /// The time set by the last step came with the socket silent.
    pub fn expired(self, cx: &LoginContext<'_>) -> Next {
        match &self.state {
            State::Delayed => self.after_delay(cx),
            State::TlsPaced => self.start_tls(cx),
            State::Listening(first) if first.is_empty() && Instant::now() < self.deadline => {
                self.challenge()
            }
            State::Tls { .. } => abandoned(cx, "the TLS login took too long"),
            _ => gone("no answer to the challenge in time"),
        }
    }

    /// The socket turned readable: takes what came, and goes as far as it
    /// allows.
    pub fn readable(mut self, cx: &LoginContext<'_>) -> Next {
        let state = std::mem::replace(&mut self.state, State::Delayed);
        match state {
            // A timer wakes early only for an error or a hang-up.
            State::Delayed => gone("closed while its challenge was delayed"),
            State::TlsPaced => abandoned(cx, "closed while its TLS handshake waited"),
            State::Listening(first) => self.spoke_first(cx, first),
            State::Answer { challenge, got } => self.answer(cx, challenge, got),
            State::Tls { handshake, tag } => self.tls(cx, handshake, tag),
        }
    }

    /// Reads up to `want` more bytes into `got`; `None` when the peer
    /// left (logged), `Some(false)` while bytes are missing.
    fn fill(&self, got: &mut Vec<u8>, want: usize) -> Option<bool> {
        let mut buf = [0u8; 64];
        let need = want.min(buf.len());
        match recv_now(self.stream.as_fd(), &mut buf[..need]) {
            Ok(0) => left("closed"),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                Some(n == want)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Some(false),
            Err(e) => left(e),
        }
    }

    fn waiting(self) -> Next {
        let deadline = self.deadline;
        Next::Read(self, deadline)
    }

    /// A client on an anonymous server that sent bytes before any
    /// challenge: the start of a frame, or nothing this server takes.
    fn spoke_first(mut self, cx: &LoginContext<'_>, mut first: Incoming) -> Next {
        let want = match first.wanted(MAX_HEADER_LEN) {
            Ok(n) => n.min(frame::LEN_PREFIX),
            Err(_) => 0,
        };
        let mut got = Vec::new();
        if want > 0 {
            match self.fill(&mut got, want) {
                None => return Next::Gone,
                Some(_) => first.extend(&got),
            }
        }
        if first.received().len() < frame::LEN_PREFIX {
            self.state = State::Listening(first);
            return self.waiting();
        }
        if first.wanted(MAX_HEADER_LEN).is_err() {
            Event::login("refused").warn(format_args!(
                "login refused: the client spoke before the challenge, and not in frames"
            ));
            return Next::Gone;
        }
        if cx.config.require_tls {
            Event::login("refused").warn(format_args!(
                "login refused: anonymous uploads are plaintext, and TLS is required"
            ));
            cx.config.context.metrics.login("failed", "anonymous");
            return self.refuse_plain("this server takes only encrypted logins (--require-tls)");
        }
        anonymous(cx, Box::new(self.transport(cx)), first)
    }

    fn answer(mut self, cx: &LoginContext<'_>, challenge: Challenge, mut got: Vec<u8>) -> Next {
        let want = RESPONSE_LEN - got.len();
        match self.fill(&mut got, want) {
            None => return Next::Gone,
            Some(false) => {
                self.state = State::Answer { challenge, got };
                return self.waiting();
            }
            Some(true) => {}
        }
        match decode_opening(&got) {
            Some(Opening::Tls) => self.pace_tls(cx),
            Some(Opening::Answer(answer)) => self.plaintext(cx, &challenge, answer),
            None => Next::Gone,
        }
    }

    /// Starts the TLS handshake now, or once its host's pace allows (the
    /// ClientHello waits in the socket meanwhile); one that could not
    /// start before the login's deadline is not waited for.
    fn pace_tls(mut self, cx: &LoginContext<'_>) -> Next {
        // A host locked out since its challenge went out costs no more
        // handshakes.
        if let Some(left) = cx.backoff.locked_out(cx.ip) {
            return gone(locked_out(left));
        }
        let wait = cx.backoff.handshake_wait(cx.ip);
        if wait.is_zero() {
            return self.start_tls(cx);
        }
        let at = Instant::now() + wait;
        if at >= self.deadline {
            return abandoned(cx, "its address starts TLS handshakes too fast");
        }
        self.state = State::TlsPaced;
        Next::Sleep(self, at)
    }

    fn start_tls(self, cx: &LoginContext<'_>) -> Next {
        if let Some(left) = cx.backoff.locked_out(cx.ip) {
            return gone(locked_out(left));
        }
        match ServerHandshake::new(cx.config.tls.config.clone()) {
            Ok(handshake) => self.tls(cx, Box::new(handshake), Vec::new()),
            Err(e) => gone(format!("starting TLS: {e}")),
        }
    }

    /// The seed's dialect: the 16 bytes are an HMAC-MD5 answer, or on an
    /// anonymous server the start of a frame.
    fn plaintext(self, cx: &LoginContext<'_>, challenge: &Challenge, answer: [u8; 16]) -> Next {
        let (config, metrics) = (cx.config, &cx.config.context.metrics);
        if config.require_tls {
            Event::login("refused").warn(format_args!(
                "login refused: plaintext logins are off (--require-tls)"
            ));
            metrics.login("failed", "legacy");
            let why = "this server takes only encrypted logins (--require-tls)";
            return self.refuse_plain(why);
        }
        if let Some(left) = cx.backoff.locked_out(cx.ip) {
            return self.refuse_plain(&locked_out(left));
        }
        let accounts = &cx.roster.accounts;
        let found = cx.roster.keys.find(challenge, &answer);
        if let Some((index, account)) = found.and_then(|i| Some((i, accounts.get(i)?))) {
            let Some(seat) = admit(cx, account, "legacy") else {
                return self.refuse_plain("authentication failed");
            };
            let name = account.label();
            logged_in(name).info(format_args!("login ok as {name}; legacy plaintext session"));
            metrics.login("ok", "legacy");
            cx.backoff.forget(cx.ip);
            return Next::In(LoggedIn {
                identity: Identity::Plaintext(index),
                seat: Some(seat),
                transport: Box::new(self.transport(cx)),
                incoming: Incoming::default(),
            });
        }
        if frame::starts_a_frame(&answer) {
            if config.anonymous {
                let first = Incoming::starting_with(&answer);
                return anonymous(cx, Box::new(self.transport(cx)), first);
            }
            Event::login("failed").warn(format_args!(
                "login failed: a frame came instead of the answer to the challenge (a client \
                 that does not log in, such as the seed's FtpClient; --anonymous accepts its \
                 uploads)"
            ));
            metrics.login("failed", "legacy");
            return self.refuse_plain("authentication failed");
        }
        Event::login("failed").warn(format_args!("login failed: wrong answer to the challenge"));
        metrics.login("failed", "legacy");
        cx.backoff.note_failure(cx.ip);
        self.refuse_plain("authentication failed")
    }

    /// The encrypted dialect: the handshake, then the client's tag over
    /// this connection's exporter, then the server's proof.
    fn tls(
        mut self,
        cx: &LoginContext<'_>,
        mut hs: Box<ServerHandshake>,
        mut tag: Vec<u8>,
    ) -> Next {
        match hs.advance(self.stream.as_fd()) {
            Err(e) => return abandoned(cx, format!("in the TLS handshake: {e}")),
            Ok(false) => {
                self.state = State::Tls { handshake: hs, tag };
                return self.waiting();
            }
            Ok(true) => {}
        }
        let mut buf = [0u8; BINDING_LEN];
        let need = BINDING_LEN - tag.len();
        match hs.read_plaintext(&mut buf[..need]) {
            Ok(n) => tag.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return abandoned(cx, format!("in the TLS login: {e}")),
        }
        if tag.len() < BINDING_LEN {
            self.state = State::Tls { handshake: hs, tag };
            return self.waiting();
        }
        self.prove(cx, hs, &tag)
    }

    fn prove(self, cx: &LoginContext<'_>, mut hs: Box<ServerHandshake>, tag: &[u8]) -> Next {
        let (accounts, metrics) = (&cx.roster.accounts, &cx.config.context.metrics);
        if let Some(left) = cx.backoff.locked_out(cx.ip) {
            return self.refuse_tls(hs, &locked_out(left));
        }
        let exporter = match hs.exporter() {
            Ok(e) => e,
            Err(e) => return gone(format!("in the TLS login: {e}")),
        };
        let found = find_client(accounts.secrets(), &exporter, tag);
        let Some((index, account)) = found.and_then(|i| Some((i, accounts.get(i)?))) else {
            Event::login("failed").warn(format_args!("login failed: wrong proof over TLS"));
            metrics.login("failed", "tls");
            cx.backoff.note_failure(cx.ip);
            return self.refuse_tls(hs, "authentication failed");
        };
        let Some(seat) = admit(cx, account, "tls") else {
            return self.refuse_tls(hs, "authentication failed");
        };
        let proof = binding::server_proof(account.secret.as_bytes(), &exporter);
        if let Err(e) = hs.send(self.stream.as_fd(), &proof) {
            return gone(format!("sending the server's proof: {e}"));
        }
        logged_in(account.label()).info(format_args!("login ok as {} over TLS", account.label()));
        metrics.login("ok", "tls");
        cx.backoff.forget(cx.ip);
        let transport = hs.into_transport(self.transport(cx));
        Next::In(LoggedIn {
            identity: Identity::Tls(index),
            seat: Some(seat),
            transport: Box::new(transport),
            incoming: Incoming::default(),
        })
    }

    /// The socket as a worker's transport, with reads bounded by the idle
    /// timeout.
    fn transport(self, cx: &LoginContext<'_>) -> TcpTransport {
        TcpTransport::accepted(self.stream, cx.config.context.timings.idle)
    }

    /// Refuses inside TLS: the error frame, close_notify, and the close.
    fn refuse_tls(self, mut hs: Box<ServerHandshake>, why: &str) -> Next {
        let _ = hs.send(self.stream.as_fd(), &refusal(why));
        let _ = hs.close(self.stream.as_fd());
        Next::Refused(self.stream)
    }

    fn refuse_plain(self, why: &str) -> Next {
        let _ = send_all_now(self.stream.as_fd(), &refusal(why));
        Next::Refused(self.stream)
    }
}

/// The account's rules, once its secret is proved: a seat, or `None`
/// after the log says which rule refused the login. The client is told
/// only that authentication failed, as for a wrong secret, so that the
/// rules of an account are not shown to whoever holds its secret.
fn admit(cx: &LoginContext<'_>, account: &Account, dialect: &'static str) -> Option<Seat> {
    match cx.config.accounts.admit(account, cx.ip) {
        Ok(seat) => Some(seat),
        Err(rule) => {
            Event::login("refused")
                .user(account.label())
                .warn(format_args!("login refused as {}: {rule}", account.label()));
            cx.config.context.metrics.login("refused", dialect);
            None
        }
    }
}

/// An anonymous session, starting with the frame bytes read so far.
fn anonymous(cx: &LoginContext<'_>, transport: Box<dyn Transport>, first: Incoming) -> Next {
    let anonymous = "no login, a frame instead: anonymous session (--anonymous)";
    logged_in("anonymous").info(format_args!("{anonymous}"));
    cx.config.context.metrics.login("ok", "anonymous");
    Next::In(LoggedIn {
        identity: Identity::Anonymous,
        seat: None,
        transport,
        incoming: first,
    })
}

/// Why a locked-out host is refused. A host that used up its failed
/// logins for the minute gets no answer checked, even a right one, until
/// the minute is over.
fn locked_out(left: Duration) -> String {
    Event::login("refused").warn(format_args!(
        "login refused: too many failed logins from this address"
    ));
    format!(
        "too many failed logins from your address; try again in {} s",
        left.as_secs().max(1)
    )
}

/// The `auth_failed` frame a refused login is answered with.
fn refusal(why: &str) -> Vec<u8> {
    let reply = Reply::<()>::Error(ErrorReply::new(ErrorCode::AuthFailed, why));
    frame::encode_json(&reply).unwrap_or_default()
}

fn left<T>(e: impl std::fmt::Display) -> Option<T> {
    log_left(e);
    None
}

/// A TLS login left unfinished: the server may have paid for the
/// handshake, so it counts as a failed login of the host (back-off, and
/// the per-minute cap).
fn abandoned(cx: &LoginContext<'_>, e: impl std::fmt::Display) -> Next {
    cx.backoff.note_failure(cx.ip);
    let why = crate::error::without_os_code(e.to_string());
    gone(format!("{why} (counted as a failed login)"))
}

fn gone(e: impl std::fmt::Display) -> Next {
    log_left(e);
    Next::Gone
}

/// Logs why a login ended early, an OS error's text as a person reads it.
fn log_left(e: impl std::fmt::Display) {
    let why = crate::error::without_os_code(e.to_string());
    Event::login("left").info(format_args!("left during login: {why}"));
}
