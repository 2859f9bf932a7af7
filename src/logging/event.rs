//! The server's log events: the one place that knows their field names.
//!
//! Each event carries a name (`event`) and whichever of the fields below
//! apply; the JSON format writes them as top-level keys a shipper filters
//! on, and the text format shows only the sentence, as it always has.
//! Call sites build an [`Event`] and give it the sentence; they never
//! spell a field name themselves.

use std::fmt;
use std::time::Duration;

/// What an event is about: the value of its `event` field, the same
/// wherever the server says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub(crate) enum Kind {
    /// A fact about the server as it starts: its store, identity, accounts.
    Start,
    /// A peer connected.
    Connected,
    /// A connection was refused before its login (limits, floods).
    Refused,
    /// A login ended: `result` is `ok`, `failed` (a wrong secret),
    /// `refused` (a rule), `left` (the peer left or ran out of time) or
    /// `delayed` (its challenge waits after failed logins).
    Login,
    /// A request was answered: `cmd`, `path`, `result`, `code`, `bytes`,
    /// `duration_ms`, and for uploads `resumed` and `digest`.
    Command,
    /// A group of uploads was committed with shared flushes.
    Commit,
    /// A reply body went out.
    Reply,
    /// A connection ended in order.
    Disconnected,
    /// A connection ended early: a cut, or (in `result`) `idle_timeout`,
    /// `header_timeout`, `account_removed`.
    Dropped,
    /// A connection spoke the seed's raw echo dialect.
    Echo,
    /// A hook failed, gave up, or its queue was full.
    Hook,
    /// The upload check refused an upload or failed.
    UploadCheck,
    /// The accounts or the config file were reloaded, or refused.
    Reload,
    /// The quota book was checked against the store.
    Recount,
    /// Something an operator should fix: a readable secret, a lowered limit.
    Warning,
    /// The server failed at something of its own; the peer got `internal`.
    Internal,
    /// The server is shutting down.
    Shutdown,
    /// Detail for `-v`: headers, retries, the metrics endpoint's scrapes.
    Debug,
    /// A library's own event (its `target` names it): what the server
    /// uses logs only its warnings.
    Library,
}

impl Kind {
    /// The name written in the `event` field.
    pub(crate) fn name(self) -> &'static str {
        self.into()
    }
}

/// The span a connection's events are in: its `peer`, and its `user`
/// once logged in ([`set_user`]), which every event inside carries.
pub(crate) fn connection_span(peer: impl fmt::Display) -> tracing::Span {
    tracing::info_span!("conn", peer = %peer, user = tracing::field::Empty)
}

/// Names the current connection's user, for its events from now on.
pub(crate) fn set_user(name: &str) {
    tracing::Span::current().record("user", name);
}

/// A login that succeeded as `user`: names the connection's user
/// ([`set_user`]) and gives the `login` event to write.
pub(crate) fn logged_in(user: &str) -> Event<'static> {
    set_user(user);
    Event::login("ok")
}

/// Writes a detail for `-v` (a `debug` event).
pub(crate) fn detail(message: fmt::Arguments<'_>) {
    Event::new(Kind::Debug).debug(message);
}

/// The fields the text format leaves out: its sentence says them already.
pub(crate) const STRUCTURED: &[&str] = &[
    "event",
    "cmd",
    "path",
    "result",
    "code",
    "bytes",
    "duration_ms",
    "resumed",
    "digest",
];

/// One log event, built field by field and then written at a level.
///
/// The connection's `peer` and `user` come from its span; set them here
/// only for an event outside one (a refusal before the span exists) or
/// about another user (a refused login).
#[must_use = "an event is written by info, warn, error or debug"]
pub(crate) struct Event<'a> {
    kind: Kind,
    peer: Option<String>,
    user: Option<&'a str>,
    cmd: Option<&'a str>,
    path: Option<&'a str>,
    result: Option<&'a str>,
    code: Option<&'a str>,
    bytes: Option<u64>,
    duration_ms: Option<u64>,
    resumed: Option<bool>,
    digest: Option<&'a str>,
    skipped: Option<u64>,
}

impl<'a> Event<'a> {
    /// An event of `kind` with no fields yet.
    pub(crate) fn new(kind: Kind) -> Event<'a> {
        Event {
            kind,
            peer: None,
            user: None,
            cmd: None,
            path: None,
            result: None,
            code: None,
            bytes: None,
            duration_ms: None,
            resumed: None,
            digest: None,
            skipped: None,
        }
    }
    /// A login's end: `ok`, `failed` (a wrong secret), `refused` (a rule).
    pub(crate) fn login(result: &'a str) -> Event<'a> {
        Event::new(Kind::Login).result(result)
    }
    /// The peer's address.
    pub(crate) fn peer(mut self, peer: impl fmt::Display) -> Self {
        self.peer = Some(peer.to_string());
        self
    }
    /// The account the event is about.
    pub(crate) fn user(mut self, user: &'a str) -> Self {
        self.user = Some(user);
        self
    }
    /// The request's command (`put`, `get`, ...).
    pub(crate) fn cmd(mut self, cmd: &'a str) -> Self {
        self.cmd = Some(cmd);
        self
    }
    /// The path the event is about, as the client named it; none when empty.
    pub(crate) fn path(mut self, path: &'a str) -> Self {
        self.path = Some(path).filter(|p| !p.is_empty());
        self
    }
    /// How it ended: `ok`, `error`, `aborted`, `failed`, `refused`...
    pub(crate) fn result(mut self, result: &'a str) -> Self {
        self.result = Some(result);
        self
    }
    /// The error code the client got.
    pub(crate) fn code(mut self, code: Option<&'a str>) -> Self {
        self.code = code;
        self
    }
    /// Bytes moved.
    pub(crate) fn bytes(mut self, bytes: u64) -> Self {
        self.bytes = Some(bytes);
        self
    }
    /// How long it took.
    pub(crate) fn took(mut self, took: Duration) -> Self {
        self.duration_ms = Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX));
        self
    }
    /// Whether an upload or download went on from an offset.
    pub(crate) fn resumed(mut self, resumed: Option<bool>) -> Self {
        self.resumed = resumed;
        self
    }
    /// The file's BLAKE3, in hex.
    pub(crate) fn digest(mut self, digest: Option<&'a str>) -> Self {
        self.digest = digest;
        self
    }
    /// Like lines left out since the last one, so that a flood cannot
    /// fill the log.
    pub(crate) fn skipped(mut self, skipped: u64) -> Self {
        self.skipped = Some(skipped);
        self
    }

    /// Writes the event at `INFO` with `message` as its sentence.
    pub(crate) fn info(self, message: fmt::Arguments<'_>) {
        self.emit(tracing::Level::INFO, message);
    }
    /// Writes the event at `WARN`.
    pub(crate) fn warn(self, message: fmt::Arguments<'_>) {
        self.emit(tracing::Level::WARN, message);
    }
    /// Writes the event at `DEBUG`.
    pub(crate) fn debug(self, message: fmt::Arguments<'_>) {
        self.emit(tracing::Level::DEBUG, message);
    }

    fn emit(self, level: tracing::Level, message: fmt::Arguments<'_>) {
        // A tracing level must be a constant at the call, hence one arm
        // per level around the one list of fields.
        macro_rules! at {
            ($level:expr) => {
                tracing::event!(
                    $level,
                    event = self.kind.name(),
                    peer = self.peer.as_deref(),
                    user = self.user,
                    cmd = self.cmd,
                    path = self.path,
                    result = self.result,
                    code = self.code,
                    bytes = self.bytes,
                    duration_ms = self.duration_ms,
                    resumed = self.resumed,
                    digest = self.digest,
                    skipped = self.skipped,
                    "{message}"
                )
            };
        }
        match level {
            tracing::Level::ERROR => at!(tracing::Level::ERROR),
            tracing::Level::WARN => at!(tracing::Level::WARN),
            tracing::Level::INFO => at!(tracing::Level::INFO),
            tracing::Level::DEBUG => at!(tracing::Level::DEBUG),
            _ => at!(tracing::Level::TRACE),
        }
    }
}
