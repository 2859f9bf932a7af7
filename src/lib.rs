//! Authenticated file transfer over a small TCP protocol, byte-compatible
//! with the classic Python `socketserver` FTP exercise.
//!
//! # On the wire
//!
//! 1. The server sends a 32-byte random challenge ([`wire::auth`]).
//! 2. The client answers HMAC-MD5(secret, challenge), 16 bytes. A wrong
//!    answer gets an `auth_failed` error frame and the connection closes.
//! 3. From then on every message is a frame ([`wire::frame`]): a 4-byte
//!    little-endian signed length, then that many bytes of a UTF-8 JSON
//!    object. Client frames are requests tagged by `cmd`; server frames are
//!    replies with `"status": "ok"` or `"error"` ([`wire::message`]).
//! 4. `put` is followed by exactly `filesize` raw bytes, as in the original;
//!    clients that ask for it get a `ready` reply first, and can add a
//!    digest frame after the body. `get` answers with a `ready` reply, the
//!    bytes, then a digest frame.
//!
//! `docs/PROTOCOL.md` is the full contract.
//!
//! # Layout
//!
//! | module | what it holds |
//! |---|---|
//! | [`wire`] | frames, messages, the handshake, name rules: no I/O, both ends |
//! | `io` | the copy loop that hashes as it goes, the rate throttle |
//! | `logging` | the log's events and its text or JSON lines, for every module |
//! | `net` | the `Transport` trait: streams with deadlines |
//! | `storage` | where the bytes live: partial files, atomic commit, listings |
//! | `server` | accept, login, session, commands, uploads, accounts, workers |
//! | `client` | connect, transfers, the shell and its command language |
//! | `config` | the secret, per-user paths, size units |
//! | [`app`] | the two programs' command lines; `src/bin` only calls them |

#![warn(missing_docs)]

pub mod app;
mod client;
mod config;
mod error;
mod io;
mod logging;
mod net;
mod server;
mod service;
mod storage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod wire;

pub use client::batch::{
    BatchOptions, BatchProgress, BatchReport, Download, Failure, Finished, Step, Upload,
};
pub use client::tree::RemoteEntry;
pub use client::trust::Trust;
pub use client::{
    Client, ClientOptions, GetReport, NoProgress, Progress, PutReport, MIN_RATE, REPLY_TIMEOUT,
    STALL_TIMEOUT,
};
pub use config::secret::Secret;
pub use error::{is_interruption, Error, Result};
pub use net::tls::{Fingerprint, Pin, PinVerifier, ServerIdentity};
