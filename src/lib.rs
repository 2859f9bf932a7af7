//! Authenticated file transfer over a small TCP protocol, byte-compatible
//! with the classic Python `socketserver` FTP exercise.
//!
//! # On the wire
//!
//! 1. The server sends a 32-byte random challenge ([`auth`]).
//! 2. The client answers HMAC-MD5(secret, challenge), 16 bytes. A wrong
//!    answer gets an `auth_failed` error frame and the connection closes.
//! 3. From then on every message is a frame ([`frame`]): a 4-byte
//!    little-endian signed length, then that many bytes of a UTF-8 JSON
//!    object. Client frames are requests tagged by `cmd`; server frames are
//!    replies with `"status": "ok"` or `"error"` ([`protocol`]).
//! 4. `put` is followed by exactly `filesize` raw bytes, as in the original;
//!    clients that ask for it get a `ready` reply first, and can add a
//!    digest frame after the body. `get` answers with a `ready` reply, the
//!    bytes, then a digest frame.
//!
//! `docs/PROTOCOL.md` is the full contract.
//!
//! # Layout
//!
//! Wire format and handshake ([`frame`], [`protocol`], [`auth`]) do no
//! I/O of their own. [`session`] runs one connection's commands over any
//! stream; [`server`] owns sockets and threads; [`client`] is the other end.

#![warn(missing_docs)]

pub mod accounts;
pub mod auth;
pub mod client;
pub mod command;
pub mod error;
pub mod frame;
pub mod log;
pub mod names;
pub mod protocol;
pub mod secret;
pub mod server;
pub mod session;
pub mod shell;
pub mod store;
pub mod testing;
pub mod transfer;
pub mod transport;
pub mod workers;

pub use error::{Error, Result};
