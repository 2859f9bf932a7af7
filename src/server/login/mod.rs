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
use std::time::Instant;

use crate::logging::Event;
use crate::net::tls::ServerHandshake;
use crate::wire::auth::{decode_opening, new_challenge, Challenge, Opening, RESPONSE_LEN};
use crate::wire::binding::BINDING_LEN;
use crate::wire::frame::{self, Incoming, MAX_HEADER_LEN};

mod step;
#[cfg(test)]
mod tests;
mod verdict;

use step::State;
pub(crate) use step::{Admitted, Identity, LoggedIn, Login, LoginContext, Next, Step, MOST_READ};
use verdict::{abandoned, anonymous, locked_out, plaintext, prove, refuse_plain};

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
