//! How a client connects: the options and their defaults.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use crate::client::overwrite::Overwrite;
use crate::client::trust::Trust;
use crate::config::secret::Secret;

/// How long a connection may go without moving a byte before the
/// command fails, unless the options say otherwise.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a command may wait on the server in all, unless the options
/// say otherwise, before what it moved earns it more (see [`MIN_RATE`]).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes a second a command must average once its reply timeout is
/// spent: each KiB moved, either way, earns a second more. A server that
/// trickles a reply, a listing, a body or a digest ends the command; a
/// slow link that moves a KiB a second does not.
pub const MIN_RATE: u64 = 1024;

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The shared secret.
    pub(crate) secret: Secret,
    /// Refuse to transfer files unless the server proves it knows the
    /// secret. Off, a server that cannot do TLS is spoken to in the seed's
    /// plaintext dialect.
    pub(crate) require_proof: bool,
    /// Which server certificates are trusted.
    pub trust: Trust,
    /// Longest wait for the TCP connection.
    pub(crate) connect_timeout: Duration,
    /// How long a connection may go without moving a byte, either way,
    /// before the command fails (a lost link, a server gone silent). It
    /// bounds the wait for a reply as well as every read and write of a
    /// transfer; the login's own waits are shorter.
    pub(crate) stall_timeout: Duration,
    /// How long one command may wait on the server in all, however the
    /// server trickles its bytes (each stays inside the stall timeout):
    /// a reply, a listing, a download's body and its digest. Every KiB
    /// moved earns a second more ([`MIN_RATE`]), so a long transfer ends
    /// only when it averages less than that. Bounds each part of the
    /// login too, with [`connect::CHALLENGE_LIMIT`] when that is shorter.
    pub(crate) reply_timeout: Duration,
    /// Most bytes per second a transfer may move; `None` for no limit.
    pub(crate) limit_rate: Option<u64>,
    /// Raised (by a Ctrl-C handler) to stop the running transfer between
    /// two chunks. The connection is then dropped and reopened on the next
    /// command; partial data stays for a resume.
    pub(crate) interrupt: Option<Arc<AtomicBool>>,
    /// What a download does to a different local file of the same name.
    pub(crate) overwrite: Overwrite,
    /// Never send or fetch only a changed file's changes (a delta): always
    /// the whole file.
    pub(crate) whole_file: bool,
}

impl ClientOptions {
    /// Options with the defaults: proof required, 10 s to connect, a
    /// [`STALL_TIMEOUT`] stall timeout, no rate limit, downloads that
    /// replace local files without asking.
    pub fn new(secret: Secret) -> ClientOptions {
        ClientOptions {
            secret,
            require_proof: true,
            trust: Trust::default(),
            connect_timeout: Duration::from_secs(10),
            stall_timeout: STALL_TIMEOUT,
            reply_timeout: REPLY_TIMEOUT,
            limit_rate: None,
            interrupt: None,
            overwrite: Overwrite::default(),
            whole_file: false,
        }
    }
}
