//! What a login is and what each of its steps returns: the types the
//! machine (`login/mod.rs`) and its verdicts (`login/verdict.rs`) share.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::logging::Event;
use crate::net::tls::ServerHandshake;
use crate::net::Transport;
use crate::server::accounts::{Roster, Seat};
use crate::server::hosts::Backoff;
use crate::server::Config;
use crate::wire::auth::Challenge;
use crate::wire::frame::Incoming;

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
    pub(super) state: State,
    /// When the login must be over.
    pub(super) deadline: Instant,
}

pub(super) enum State {
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
    pub(super) fn next(next: Next) -> Step {
        Step {
            send: Vec::new(),
            next,
        }
    }

    pub(super) fn gone(e: impl std::fmt::Display) -> Step {
        log_left(e);
        Step::next(Next::Gone)
    }

    pub(super) fn refused(send: Vec<u8>) -> Step {
        Step {
            send,
            next: Next::Refused,
        }
    }
}

/// Logs why a login ended early, an OS error's text as a person reads it.
fn log_left(e: impl std::fmt::Display) {
    let why = crate::error::without_os_code(e.to_string());
    Event::login("left").info(format_args!("left during login: {why}"));
}
