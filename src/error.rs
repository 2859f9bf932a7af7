//! The error type of the library. The wire format has its own,
//! [`WireError`], which becomes the variant of the same name here.
//!
//! Every variant renders as a short lowercase sentence a user can act on, and
//! carries the numbers or the path it is about.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::wire::code::ErrorCode;
use crate::wire::error::WireError;
use crate::wire::names::escape;
use crate::wire::reply::ErrorReply;

/// The error an `Interruptible` writer fails with once its flag is up:
/// Ctrl-C, not the writer, ended the write.
#[derive(Debug)]
pub(crate) struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Whether `e` came from a raised interrupt flag rather than from the
/// writer.
pub fn is_interruption(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Interrupted>())
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the library.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed; `context` says which one.
    Io {
        /// What was being done, e.g. "reading /srv/a.txt".
        context: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// A frame's length prefix is larger than the reader accepts.
    FrameTooLarge {
        /// The declared length.
        len: u64,
        /// The largest length accepted.
        max: u64,
    },
    /// A frame's length prefix is negative.
    NegativeLength(i32),
    /// The peer closed the connection in the middle of a message.
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes expected.
        expected: u64,
        /// Bytes that arrived before the end.
        got: u64,
    },
    /// The peer closed the connection where a message was expected.
    Closed,
    /// A header or reply that is not the JSON object the protocol asks for.
    Malformed(String),
    /// The server refused our answer to its challenge (wrong secret).
    AuthFailed,
    /// The server could not prove it knows the shared secret.
    ServerNotProven(String),
    /// The server's certificate is not the one trusted, or the user did
    /// not accept an unknown one.
    UntrustedServer(String),
    /// The server answered with an error reply.
    Remote {
        /// The machine-readable error code, e.g. [`ErrorCode::BadName`];
        /// a code from a newer server is [`ErrorCode::Unknown`].
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// A problem with what the user asked for, found before talking to the peer.
    Usage(String),
    /// The TLS library refused a configuration or a connection.
    Tls(rustls::Error),
    /// A command on one file failed: which, and why. What the cause says
    /// of itself (an interruption, a lost connection) still holds.
    Command {
        /// The command and its file, e.g. `put notes.txt`.
        what: String,
        /// Why it failed.
        cause: Box<Error>,
    },
    /// A local file could not be read.
    LocalFile {
        /// The file, as the user named it.
        file: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// An upload stopped in the middle of its body for a local reason (its
    /// file changed size, or could not be read): the server stored
    /// nothing of it, and the connection waits for bytes that will not
    /// come.
    NotStored {
        /// The local file.
        file: PathBuf,
        /// What went wrong with the file; `None` where the step's own
        /// failure tells it.
        cause: Option<Box<Error>>,
    },
    /// A file's digest did not match after the transfer.
    DigestMismatch {
        /// The file concerned.
        name: String,
    },
    /// The user stopped a transfer (Ctrl-C); what it moved is kept.
    Interrupted {
        /// `upload` or `download`.
        what: &'static str,
    },
    /// The connection broke, or stalled, in the middle of a command. What
    /// a transfer moved is kept, so the same command resumes it.
    ConnectionLost {
        /// What happened: the I/O error (a stall is a `TimedOut` one).
        cause: Box<Error>,
    },
    /// A command on many files stopped before its end: Ctrl-C, or a
    /// connection that could not be reopened. What landed is kept.
    Stopped {
        /// The command as it is typed again to finish (`put -r tree`).
        command: String,
        /// Why: [`Error::Interrupted`] or [`Error::ConnectionLost`].
        cause: Box<Error>,
        /// Files the server confirmed, or saved here.
        landed: u64,
        /// Files not moved, or not confirmed.
        missing: u64,
    },
    /// After a reconnect the client could not enter the server folder it
    /// was in again, so it refused to run the command anywhere else.
    FolderLost {
        /// The folder, as the server showed it (`/tree/sub`).
        folder: String,
        /// Why it could not be entered.
        cause: Box<Error>,
    },
    /// The secret could not be found or read.
    Secret(String),
    /// A configuration file is invalid.
    Config {
        /// The file.
        path: PathBuf,
        /// Line number, 1-based, where known.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// A local file or folder that cannot be read, as the user named it.
    pub(crate) fn cannot_read(what: impl fmt::Display, source: io::Error) -> Error {
        Error::LocalFile {
            file: what.to_string(),
            source,
        }
    }

    /// True for a problem found on this side, which leaves the connection
    /// in step: what the user asked for, or a local file.
    pub(crate) fn is_local(&self) -> bool {
        match self {
            Error::Usage(_) | Error::LocalFile { .. } => true,
            Error::Command { cause, .. } => cause.is_local(),
            _ => false,
        }
    }

    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True when Ctrl-C (the interrupt flag) stopped a read or write of
    /// the connection.
    pub(crate) fn is_interruption(&self) -> bool {
        match self {
            Error::Io { source, .. } => is_interruption(source),
            Error::ConnectionLost { cause } => cause.is_interruption(),
            Error::Interrupted { .. } => true,
            Error::Stopped { cause, .. } | Error::Command { cause, .. } => cause.is_interruption(),
            _ => false,
        }
    }

    /// True when the error means the peer went away or stopped answering,
    /// rather than that it sent something wrong.
    pub(crate) fn is_disconnect(&self) -> bool {
        match self {
            Error::Closed | Error::Truncated { .. } | Error::ConnectionLost { .. } => true,
            Error::Command { cause, .. } => cause.is_disconnect(),
            Error::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
            ),
            _ => false,
        }
    }
}

/// An operating-system error as a person reads it: "No such file or
/// directory", without the "(os error 2)" Rust's own rendering appends.
pub(crate) fn reason(e: &io::Error) -> String {
    without_os_code(e.to_string())
}

/// The 1-based line of byte `offset` in `text`, for an [`Error::Config`]
/// built from a parser's span.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// `text` without the " (os error N)" that Rust's rendering of an
/// operating-system error ends with, for a text built from one (a log
/// line, say).
pub(crate) fn without_os_code(text: String) -> String {
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_string(),
        _ => text,
    }
}

/// Every error is shown escaped, whole: much of what it says can come from
/// the peer (an error reply's code and message, serde's "unknown variant"
/// quoting a reply, a busy frame read before any login), and one place
/// that escapes all of it cannot miss a field. Escaping is idempotent, so
/// an error nested in another is not escaped twice.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.render(&mut text)?;
        f.write_str(&escape(&text))
    }
}

impl Error {
    /// The error's text before escaping.
    fn render(&self, f: &mut String) -> fmt::Result {
        use fmt::Write as _;
        match self {
            Error::Io { context, source } => write!(f, "{context}: {}", reason(source)),
            Error::FrameTooLarge { .. }
            | Error::NegativeLength(_)
            | Error::Truncated { .. }
            | Error::Closed
            | Error::Malformed(_)
            | Error::AuthFailed
            | Error::Remote { .. } => self.render_wire(f),
            Error::ServerNotProven(why) => write!(
                f,
                "the server did not prove it knows the secret ({why}); refusing to transfer files \
                 (use --allow-unproven-server to talk to it anyway)"
            ),
            Error::UntrustedServer(why) => f.write_str(why),
            Error::Usage(msg) => f.write_str(msg),
            Error::Tls(e) => write!(f, "TLS: {e}"),
            Error::Command { what, cause } => write!(f, "{what}: {cause}"),
            Error::LocalFile { file, source } => {
                write!(f, "cannot read {file}: {}", reason(source))
            }
            Error::NotStored { file, cause } => render_not_stored(f, file, cause.as_deref()),
            Error::DigestMismatch { name } => write!(
                f,
                "integrity check failed for {name}: the data received does not match the sender's digest"
            ),
            Error::Interrupted { .. }
            | Error::ConnectionLost { .. }
            | Error::Stopped { .. }
            | Error::FolderLost { .. } => self.render_broken(f),
            Error::Secret(msg) => f.write_str(msg),
            Error::Config { path, line, reason } => match line {
                Some(line) => write!(f, "{}:{line}: {reason}", path.display()),
                None => write!(f, "{}: {reason}", path.display()),
            },
        }
    }

    /// The text of a failure of the wire format, or of an error reply: the
    /// wire's own words for it, so that both types read the same.
    fn render_wire(&self, f: &mut String) -> fmt::Result {
        use fmt::Write as _;
        let wire = match self {
            Error::FrameTooLarge { len, max } => WireError::FrameTooLarge {
                len: *len,
                max: *max,
            },
            Error::NegativeLength(n) => WireError::NegativeLength(*n),
            Error::Truncated {
                what,
                expected,
                got,
            } => WireError::Truncated {
                what,
                expected: *expected,
                got: *got,
            },
            Error::Closed => WireError::Closed,
            Error::Malformed(why) => WireError::Malformed(why.clone()),
            Error::AuthFailed => WireError::AuthFailed,
            Error::Remote { code, message } => WireError::Remote {
                code: code.clone(),
                message: message.clone(),
            },
            _ => return Ok(()),
        };
        write!(f, "{wire}")
    }

    /// The text of a command that broke off: stopped, or its connection
    /// or folder lost.
    fn render_broken(&self, f: &mut String) -> fmt::Result {
        use fmt::Write as _;
        match self {
            Error::Interrupted { what } => write!(
                f,
                "{what} interrupted; what was sent is kept, so the same command resumes it"
            ),
            Error::ConnectionLost { cause } => write!(
                f,
                "connection lost ({cause}); run the same command to resume"
            ),
            Error::Stopped {
                command,
                cause,
                landed,
                missing,
            } => write!(
                f,
                "{command} stopped ({}): {landed} of {} files landed, {missing} did not; \
                 run `{command}` again to finish",
                why_stopped(cause),
                landed + missing
            ),
            Error::FolderLost { folder, cause } => write!(
                f,
                "the connection was reopened, but the server folder {folder} could not be entered \
                 again ({cause}), so nothing was run; cd to a folder to go on"
            ),
            _ => Ok(()),
        }
    }
}

/// An upload that stopped mid-body, and why when known.
fn render_not_stored(f: &mut String, file: &std::path::Path, cause: Option<&Error>) -> fmt::Result {
    use fmt::Write as _;
    let file = file.display();
    match cause {
        // The file ended before the size its header declared.
        Some(cause @ Error::Truncated { .. }) => write!(
            f,
            "{file} changed size while it was sent ({cause}); nothing was stored"
        ),
        Some(cause) => write!(f, "{cause}; nothing was stored"),
        None => write!(
            f,
            "the upload of {file} stopped in the middle; nothing was stored"
        ),
    }
}

/// Why a batch stopped, in a few words.
fn why_stopped(cause: &Error) -> String {
    match cause {
        Error::Interrupted { .. } => "interrupted".to_string(),
        Error::ConnectionLost { cause } => format!("connection lost: {cause}"),
        other => other.to_string(),
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } | Error::LocalFile { source, .. } => Some(source),
            Error::NotStored { cause, .. } => cause.as_deref().map(|c| c as _),
            Error::Tls(e) => Some(e),
            Error::ConnectionLost { cause }
            | Error::FolderLost { cause, .. }
            | Error::Stopped { cause, .. }
            | Error::Command { cause, .. } => Some(&**cause),
            _ => None,
        }
    }
}

/// Each failure of the wire becomes the variant of the same name, so
/// that callers match on [`Error`] alone; an I/O one keeps its context.
impl From<WireError> for Error {
    fn from(e: WireError) -> Error {
        match e {
            WireError::Io { context, source } => Error::io(context, source),
            WireError::FrameTooLarge { len, max } => Error::FrameTooLarge { len, max },
            WireError::NegativeLength(n) => Error::NegativeLength(n),
            WireError::Truncated {
                what,
                expected,
                got,
            } => Error::Truncated {
                what,
                expected,
                got,
            },
            WireError::Closed => Error::Closed,
            WireError::Malformed(why) => Error::Malformed(why),
            WireError::AuthFailed => Error::AuthFailed,
            WireError::Remote { code, message } => Error::Remote { code, message },
        }
    }
}

/// A server's error reply, as the error it means.
impl From<ErrorReply> for Error {
    fn from(e: ErrorReply) -> Error {
        WireError::from(e).into()
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        match err {
            Error::Io { source, .. } => source,
            other => io::Error::other(other.to_string()),
        }
    }
}

/// The context of a failure to print a program's output.
pub(crate) const WRITING_OUTPUT: &str = "writing output";

/// Whether `e` says the output was closed by whoever read it (`| head`,
/// `| true`): not a failure of the command, so a program ends quietly
/// with success, as other command-line tools do.
pub(crate) fn output_closed(e: &Error) -> bool {
    matches!(e, Error::Io { context, source }
        if context == WRITING_OUTPUT && source.kind() == io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests;
