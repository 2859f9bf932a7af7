//! Every wait, window and deadline of the server, in one place: the
//! settings build it from the flags, and tests shorten it instead of
//! sleeping for a constant's sake.
//!
//! Two of them are set apart from the client's on purpose. A connection
//! waiting for its address's login turn is told `busy` after
//! [`Timings::turn`] (5 s), well before a client gives up waiting for its
//! challenge (10 s), so a user behind a busy address reads "busy", not
//! "not an ftp-server". And the whole login ([`Timings::login`], 10 s)
//! starts again when the turn comes.

use std::time::Duration;

/// The server's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timings {
    /// The whole login, from its turn to the proof (`--login-timeout`).
    pub(crate) login: Duration,
    /// How long a connection waits for one of its address's login turns
    /// before it is answered `busy`.
    pub(crate) turn: Duration,
    /// The longest delay before a challenge that repeated failed logins
    /// earn an address (125 ms, doubling from the fourth failure).
    pub(crate) max_backoff: Duration,
    /// With `--anonymous`: how long the server listens, before it sends
    /// the challenge, for a client that speaks first (the seed's FtpClient
    /// never reads a challenge, and its close would reset the connection).
    pub(crate) speak_first: Duration,
    /// How long one to three text bytes wait before the connection is
    /// taken for the seed's raw echo dialect.
    pub(crate) sniff: Duration,
    /// Silence allowed between requests, and the time one header may take
    /// however it trickles (`--idle-timeout`).
    pub(crate) idle: Duration,
    /// One whole reply, however the peer trickles its reads
    /// (`--reply-timeout`); a long body has its length at the floor more.
    pub(crate) reply: Duration,
    /// How long a refused peer has to read its refusal before the close.
    pub(crate) refusal_drain: Duration,
}

impl Default for Timings {
    /// The flags' defaults.
    fn default() -> Timings {
        Timings {
            login: Duration::from_secs(10),
            turn: Duration::from_secs(5),
            max_backoff: Duration::from_secs(8),
            speak_first: Duration::from_millis(50),
            sniff: Duration::from_millis(250),
            idle: Duration::from_secs(60),
            reply: Duration::from_secs(300),
            refusal_drain: Duration::from_secs(1),
        }
    }
}

impl Timings {
    /// The timings a server with these flags runs by: the idle timeout,
    /// the reply timeout and the login timeout (at most the idle timeout).
    /// The floor (`--min-rate`) is one of the limits a reload changes, in
    /// [`crate::server::live`].
    pub(crate) fn from_flags(idle: u64, reply: u64, login: u64) -> Self {
        let idle = Duration::from_secs(idle.max(1));
        Timings {
            idle,
            reply: Duration::from_secs(reply.max(1)),
            login: Duration::from_secs(login.max(1)).min(idle),
            ..Timings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_is_answered_before_the_client_stops_waiting() {
        let t = Timings::default();
        assert!(t.turn < crate::client::connect::CHALLENGE_LIMIT);
        assert!(t.turn < t.login);
    }

    #[test]
    fn flags_become_timings_with_the_login_inside_the_idle_timeout() {
        let t = Timings::from_flags(5, 25, 10);
        assert_eq!(t.idle, Duration::from_secs(5));
        assert_eq!(t.login, Duration::from_secs(5));
        assert_eq!(t.reply, Duration::from_secs(25));
    }
}
