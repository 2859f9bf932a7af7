//! What can go wrong in the wire format itself: a frame that breaks its
//! rules, a peer that stops in the middle, a reply that says no.
//!
//! Its own type, so that the wire depends on nothing above it;
//! [`crate::error::Error`] takes each variant into its own of the same
//! name, and the texts here are the ones a user reads.

use std::io;

use crate::wire::code::ErrorCode;

/// Shorthand for results whose error is [`WireError`].
pub type Result<T, E = WireError> = std::result::Result<T, E>;

/// A failure of the wire format, or an error reply it carried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Reading or writing the stream failed; `context` says which.
    #[error("{context}")]
    Io {
        /// What was being done, e.g. "sending a message".
        context: &'static str,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A frame's length prefix is larger than the reader accepts.
    #[error("frame too large: {len} > {max} bytes")]
    FrameTooLarge {
        /// The declared length.
        len: u64,
        /// The largest length accepted.
        max: u64,
    },
    /// A frame's length prefix is negative.
    #[error("invalid frame length: {0} is negative")]
    NegativeLength(i32),
    /// The peer closed the connection in the middle of a message.
    #[error("connection closed in the middle of the {what}: got {got} of {expected} bytes")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes expected.
        expected: u64,
        /// Bytes that arrived before the end.
        got: u64,
    },
    /// The peer closed the connection where a message was expected.
    #[error("connection closed by peer")]
    Closed,
    /// A header or reply that is not the JSON object the protocol asks for.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The server refused our answer to its challenge (wrong secret).
    #[error(
        "authentication failed: the server rejected our secret (check FTP_SECRET or --secret-file)"
    )]
    AuthFailed,
    /// The server answered with an error reply.
    // The code as words (`not found`), as a person reads it.
    #[error("server refused ({}): {message}", code.to_string().replace('_', " "))]
    Remote {
        /// The machine-readable error code; a code from a newer server is
        /// [`ErrorCode::Unknown`].
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
}

impl WireError {
    /// Wraps an I/O error of the stream with what was being done.
    pub fn io(context: &'static str, source: io::Error) -> WireError {
        WireError::Io { context, source }
    }
}
