//! The login on an accepted socket, as one state machine that the poller
//! drives: the seed's challenge, then the dialect the client's answer
//! chooses (TLS with a channel-bound proof, or the seed's plaintext
//! HMAC-MD5), or, with `--anonymous`, a client that sends a frame instead.
//!
//! The machine does no I/O, as rustls and postgres-protocol do not: the
//! bytes that came go in ([`Login::received`]), and each step returns the
//! bytes to send and what comes next ([`Step`]). The poller owns the socket
//! (`admission.rs`), so a peer that sends one byte a minute costs a parked
//! socket and a few bytes, not a thread, and the tests feed recorded logins
//! one byte at a time.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::logging::{logged_in, Event};
use crate::net::tls::ServerHandshake;
use crate::net::Transport;
use crate::server::accounts::{Account, Roster, Seat};
use crate::server::hosts::Backoff;
use crate::server::Config;
use crate::wire::auth::{decode_opening, new_challenge, Challenge, Opening, RESPONSE_LEN};
use crate::wire::binding::{self, find_client, BINDING_LEN};
use crate::wire::frame::{self, Incoming, MAX_HEADER_LEN};
use crate::wire::message::{ErrorCode, ErrorReply, Reply};

#[cfg(test)]
mod tests;

/// The most any step takes from the socket at once, as a TLS step does: a
/// whole record (16 KiB of payload, its header and the cipher's overhead).
pub(crate) const MOST_READ: usize = 18 * 1024;

/// Who a connection is once logged in. A dialect comes with an account,
/// and only an anonymous client has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Identity {
    /// The account at this index, over TLS with the channel-bound proof.
    Tls(usize),
    /// The account at this index, with the seed's plaintext HMAC-MD5.
    Plaintext(usize),
    /// No login at all (`--anonymous`): the seed's FtpClient.
    Anonymous,
}

/// What a login needs from the server.
pub(crate) struct LoginContext<'a> {
    /// Accounts, TLS identity, policies.
    pub(crate) config: &'a Config,
    /// Failed logins by host.
    pub(crate) backoff: &'a Backoff,
    /// The accounts in force when this step began, with their answer
    /// keys: a key and its account always come from the same list.
    pub(crate) roster: Arc<Roster>,
    /// The peer's address.
    pub(crate) ip: IpAddr,
}

/// A login under way: where it stands and when it must be over. It owns
/// no socket.
pub(crate) struct Login {
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

/// A finished login, before it has a socket again.
pub(crate) struct Admitted {
    /// Who it is.
    pub(crate) identity: Identity,
    /// The account's seat, by whose name each request finds the account
    /// in the accounts then in force; `None` for an anonymous client.
    pub(crate) seat: Option<Seat>,
    /// The finished TLS session, which the socket's bytes go through from
    /// now on; `None` for the plaintext dialects.
    pub(crate) tls: Option<Box<ServerHandshake>>,
    /// The start of the first request, from a client that sent one in
    /// place of a login.
    pub(crate) incoming: Incoming,
}

/// A logged-in connection as a worker takes it.
pub(crate) struct LoggedIn {
    /// Who it is.
    pub(crate) identity: Identity,
    /// See [`Admitted::seat`].
    pub(crate) seat: Option<Seat>,
    /// The connection, ready for a worker.
    pub(crate) transport: Box<dyn Transport>,
    /// See [`Admitted::incoming`].
    pub(crate) incoming: Incoming,
}

/// What a step decided: bytes to send first, then what comes next.
pub(crate) struct Step {
    /// For the socket, before anything else; a TLS alert may come with
    /// [`Next::Gone`].
    pub(crate) send: Vec<u8>,
    /// What the connection does then.
    pub(crate) next: Next,
}

/// What comes after a step.
pub(crate) enum Next {
    /// Wait for the socket to be readable, then pass on at most
    /// [`Login::wants`] bytes; call [`Login::expired`] at this instant if
    /// it is not.
    Read(Login, Instant),
    /// Wait until this instant whatever the socket does, then call
    /// [`Login::expired`].
    Sleep(Login, Instant),
    /// Logged in.
    In(Admitted),
    /// Refused, logged and answered (in `send`): close once the peer has
    /// read it.
    Refused,
    /// The peer left, stalled or broke the protocol; logged.
    Gone,
}

impl Step {
    fn next(next: Next) -> Step {
        Step {
            send: Vec::new(),
            next,
        }
    }

    fn gone(e: impl std::fmt::Display) -> Step {
        log_left(e);
        Step::next(Next::Gone)
    }

    fn refused(send: Vec<u8>) -> Step {
        Step {
            send,
            next: Next::Refused,
        }
    }
}

impl Login {
    /// A login for a connection just accepted: a delay first when `ip` has
    /// earned one, a moment to speak first on an anonymous server, or the
    /// challenge at once.
    pub(crate) fn begin(cx: &LoginContext<'_>) -> Step {
        let login = Login {
            state: State::Delayed,
            deadline: Instant::now() + cx.config.context.timings.login,
        };
        let delay = cx.backoff.delay(cx.ip);
        if delay.is_zero() {
            return login.after_delay(cx);
        }
        Event::login("delayed").info(format_args!(
            "delaying the challenge {} ms after repeated failed logins",
            delay.as_millis()
        ));
        Step::next(Next::Sleep(login, Instant::now() + delay))
    }

    /// The most bytes the next step takes, so that what belongs to the
    /// session (the seed's echo text, a first request) stays in the socket
    /// for it; `None` while the login waits on a timer, not on the peer.
    pub(crate) fn wants(&self) -> Option<usize> {
        match &self.state {
            State::Delayed | State::TlsPaced => None,
            State::Listening(first) => {
                Some(frame::LEN_PREFIX.saturating_sub(first.received().len()))
            }
            State::Answer { got, .. } => Some(RESPONSE_LEN - got.len()),
            State::Tls { .. } => Some(MOST_READ),
        }
    }

    fn after_delay(mut self, cx: &LoginContext<'_>) -> Step {
        self.deadline = Instant::now() + cx.config.context.timings.login;
        if cx.config.anonymous {
            self.state = State::Listening(Incoming::default());
            let wait = cx.config.context.timings.speak_first;
            return Step::next(Next::Read(self, Instant::now() + wait));
        }
        self.challenge()
    }

    /// The challenge: 32 bytes into a socket buffer that holds nothing
    /// else yet.
    fn challenge(mut self) -> Step {
        let challenge = new_challenge();
        let send = challenge.to_vec();
        self.state = State::Answer {
            challenge,
            got: Vec::with_capacity(RESPONSE_LEN),
        };
        Step {
            send,
            next: self.waiting(),
        }
    }

    /// The time set by the last step came with the socket silent.
    pub(crate) fn expired(self, cx: &LoginContext<'_>) -> Step {
        match &self.state {
            State::Delayed => self.after_delay(cx),
            State::TlsPaced => self.start_tls(cx),
            State::Listening(first) if first.is_empty() && Instant::now() < self.deadline => {
                self.challenge()
            }
            State::Tls { .. } => abandoned(cx, "the TLS login took too long"),
            _ => Step::gone("no answer to the challenge in time"),
        }
    }

    /// The peer closed, or its socket failed (`why`). A login that woke
    /// on a timer's socket woke early for that alone.
    pub(crate) fn ended(self, cx: &LoginContext<'_>, why: impl std::fmt::Display) -> Step {
        match self.state {
            State::Delayed => Step::gone("closed while its challenge was delayed"),
            State::TlsPaced => abandoned(cx, "closed while its TLS handshake waited"),
            State::Tls { .. } => abandoned(cx, format!("in the TLS handshake: {why}")),
            _ => Step::gone(why),
        }
    }

    /// The socket could not take what the last step sent: a peer that
    /// leaves a login's few bytes unread is not waited for.
    pub(crate) fn unsent(self, cx: &LoginContext<'_>, e: io::Error) -> Step {
        self.ended(cx, format!("sending to the client: {e}"))
    }

    /// What came from the peer (at most [`Login::wants`] bytes): the login
    /// goes as far as it allows.
    pub(crate) fn received(mut self, cx: &LoginContext<'_>, bytes: &[u8]) -> Step {
        let state = std::mem::replace(&mut self.state, State::Delayed);
        match state {
            // Not read while on a timer: the driver honours `wants`.
            State::Delayed | State::TlsPaced => {
                self.state = state;
                self.ended(cx, "bytes came while the login waited on a timer")
            }
            State::Listening(mut first) => {
                first.extend(bytes);
                self.spoke_first(cx, first)
            }
            State::Answer { challenge, mut got } => {
                got.extend_from_slice(bytes);
                self.answer(cx, challenge, got)
            }
            State::Tls { handshake, tag } => self.tls(cx, handshake, tag, bytes),
        }
    }

    /// Nothing came after all: the same wait goes on.
    pub(crate) fn still_waiting(self) -> Step {
        match self.state {
            State::Delayed | State::TlsPaced => Step::next(Next::Sleep(self, Instant::now())),
            _ => Step::next(self.waiting()),
        }
    }

    fn waiting(self) -> Next {
        let deadline = self.deadline;
        Next::Read(self, deadline)
    }

    /// A client on an anonymous server that sent bytes before any
    /// challenge: the start of a frame, or nothing this server takes.
    fn spoke_first(mut self, cx: &LoginContext<'_>, first: Incoming) -> Step {
        if first.received().len() < frame::LEN_PREFIX {
            self.state = State::Listening(first);
            return Step::next(self.waiting());
        }
        if first.wanted(MAX_HEADER_LEN).is_err() {
            Event::login("refused").warn(format_args!(
                "login refused: the client spoke before the challenge, and not in frames"
            ));
            return Step::next(Next::Gone);
        }
        if cx.config.require_tls {
            Event::login("refused").warn(format_args!(
                "login refused: anonymous uploads are plaintext, and TLS is required"
            ));
            cx.config.context.metrics.login("failed", "anonymous");
            return refuse_plain("this server takes only encrypted logins (--require-tls)");
        }
        anonymous(cx, first)
    }

    fn answer(mut self, cx: &LoginContext<'_>, challenge: Challenge, got: Vec<u8>) -> Step {
        if got.len() < RESPONSE_LEN {
            self.state = State::Answer { challenge, got };
            return Step::next(self.waiting());
        }
        match decode_opening(&got) {
            Some(Opening::Tls) => self.pace_tls(cx),
            Some(Opening::Answer(answer)) => plaintext(cx, &challenge, answer),
            None => Step::next(Next::Gone),
        }
    }

    /// Starts the TLS handshake now, or once its host's pace allows (the
    /// ClientHello waits in the socket meanwhile); one that could not
    /// start before the login's deadline is not waited for.
    fn pace_tls(mut self, cx: &LoginContext<'_>) -> Step {
        // A host locked out since its challenge went out costs no more
        // handshakes.
        if let Some(left) = cx.backoff.locked_out(cx.ip) {
            return Step::gone(locked_out(left));
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
        Step::next(Next::Sleep(self, at))
    }

    fn start_tls(mut self, cx: &LoginContext<'_>) -> Step {
        if let Some(left) = cx.backoff.locked_out(cx.ip) {
            return Step::gone(locked_out(left));
        }
        match ServerHandshake::new(cx.config.tls.config.clone()) {
            Ok(handshake) => {
                self.state = State::Tls {
                    handshake: Box::new(handshake),
                    tag: Vec::new(),
                };
                Step::next(self.waiting())
            }
            Err(e) => Step::gone(format!("starting TLS: {e}")),
        }
    }

    /// The encrypted dialect: the handshake, then the client's tag over
    /// this connection's exporter, then the server's proof.
    fn tls(
        mut self,
        cx: &LoginContext<'_>,
        mut hs: Box<ServerHandshake>,
        mut tag: Vec<u8>,
        bytes: &[u8],
    ) -> Step {
        let mut send = Vec::new();
        let done = match hs.feed(bytes, &mut send) {
            Ok(done) => done,
            Err(e) => {
                let mut step = abandoned(cx, format!("in the TLS handshake: {e}"));
                step.send = send;
                return step;
            }
        };
        if done {
            let mut buf = [0u8; BINDING_LEN];
            let need = BINDING_LEN - tag.len();
            match hs.read_plaintext(&mut buf[..need]) {
                Ok(n) => tag.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return abandoned(cx, format!("in the TLS login: {e}")),
            }
        }
        if !done || tag.len() < BINDING_LEN {
            self.state = State::Tls { handshake: hs, tag };
            return Step {
                send,
                next: self.waiting(),
            };
        }
        let mut step = prove(cx, hs, &tag);
        send.append(&mut step.send);
        step.send = send;
        step
    }
}

/// The seed's dialect: the 16 bytes are an HMAC-MD5 answer, or on an
/// anonymous server the start of a frame.
fn plaintext(cx: &LoginContext<'_>, challenge: &Challenge, answer: [u8; 16]) -> Step {
    let (config, metrics) = (cx.config, &cx.config.context.metrics);
    if config.require_tls {
        Event::login("refused").warn(format_args!(
            "login refused: plaintext logins are off (--require-tls)"
        ));
        metrics.login("failed", "legacy");
        return refuse_plain("this server takes only encrypted logins (--require-tls)");
    }
    if let Some(left) = cx.backoff.locked_out(cx.ip) {
        return refuse_plain(&locked_out(left));
    }
    let accounts = &cx.roster.accounts;
    let found = cx.roster.keys.find(challenge, &answer);
    if let Some((index, account)) = found.and_then(|i| Some((i, accounts.get(i)?))) {
        let Some(seat) = admit(cx, account, "legacy") else {
            return refuse_plain("authentication failed");
        };
        let name = account.label();
        logged_in(name).info(format_args!("login ok as {name}; legacy plaintext session"));
        metrics.login("ok", "legacy");
        cx.backoff.forget(cx.ip);
        return Step::next(Next::In(Admitted {
            identity: Identity::Plaintext(index),
            seat: Some(seat),
            tls: None,
            incoming: Incoming::default(),
        }));
    }
    if frame::starts_a_frame(&answer) {
        if config.anonymous {
            return anonymous(cx, Incoming::starting_with(&answer));
        }
        Event::login("failed").warn(format_args!(
            "login failed: a frame came instead of the answer to the challenge (a client \
             that does not log in, such as the seed's FtpClient; --anonymous accepts its \
             uploads)"
        ));
        metrics.login("failed", "legacy");
        return refuse_plain("authentication failed");
    }
    Event::login("failed").warn(format_args!("login failed: wrong answer to the challenge"));
    metrics.login("failed", "legacy");
    cx.backoff.note_failure(cx.ip);
    refuse_plain("authentication failed")
}

/// The client's tag is in: the account it proves, and the server's proof
/// over the same exporter.
fn prove(cx: &LoginContext<'_>, mut hs: Box<ServerHandshake>, tag: &[u8]) -> Step {
    let (accounts, metrics) = (&cx.roster.accounts, &cx.config.context.metrics);
    if let Some(left) = cx.backoff.locked_out(cx.ip) {
        return refuse_tls(hs, &locked_out(left));
    }
    let exporter = match hs.exporter() {
        Ok(e) => e,
        Err(e) => return Step::gone(format!("in the TLS login: {e}")),
    };
    let found = find_client(accounts.secrets(), &exporter, tag);
    let Some((index, account)) = found.and_then(|i| Some((i, accounts.get(i)?))) else {
        Event::login("failed").warn(format_args!("login failed: wrong proof over TLS"));
        metrics.login("failed", "tls");
        cx.backoff.note_failure(cx.ip);
        return refuse_tls(hs, "authentication failed");
    };
    let Some(seat) = admit(cx, account, "tls") else {
        return refuse_tls(hs, "authentication failed");
    };
    let proof = binding::server_proof(account.secret.as_bytes(), &exporter);
    let mut send = Vec::new();
    if let Err(e) = hs.send(&proof, &mut send) {
        return Step::gone(format!("sending the server's proof: {e}"));
    }
    logged_in(account.label()).info(format_args!("login ok as {} over TLS", account.label()));
    metrics.login("ok", "tls");
    cx.backoff.forget(cx.ip);
    Step {
        send,
        next: Next::In(Admitted {
            identity: Identity::Tls(index),
            seat: Some(seat),
            tls: Some(hs),
            incoming: Incoming::default(),
        }),
    }
}

/// Refuses inside TLS: the error frame, close_notify, and the close.
fn refuse_tls(mut hs: Box<ServerHandshake>, why: &str) -> Step {
    let mut send = Vec::new();
    let _ = hs.send(&refusal(why), &mut send);
    hs.close(&mut send);
    Step::refused(send)
}

fn refuse_plain(why: &str) -> Step {
    Step::refused(refusal(why))
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
fn anonymous(cx: &LoginContext<'_>, first: Incoming) -> Step {
    let anonymous = "no login, a frame instead: anonymous session (--anonymous)";
    logged_in("anonymous").info(format_args!("{anonymous}"));
    cx.config.context.metrics.login("ok", "anonymous");
    Step::next(Next::In(Admitted {
        identity: Identity::Anonymous,
        seat: None,
        tls: None,
        incoming: first,
    }))
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

/// A TLS login left unfinished: the server may have paid for the
/// handshake, so it counts as a failed login of the host (back-off, and
/// the per-minute cap).
fn abandoned(cx: &LoginContext<'_>, e: impl std::fmt::Display) -> Step {
    cx.backoff.note_failure(cx.ip);
    let why = crate::error::without_os_code(e.to_string());
    Step::gone(format!("{why} (counted as a failed login)"))
}

/// Logs why a login ended early, an OS error's text as a person reads it.
fn log_left(e: impl std::fmt::Display) {
    let why = crate::error::without_os_code(e.to_string());
    Event::login("left").info(format_args!("left during login: {why}"));
}
