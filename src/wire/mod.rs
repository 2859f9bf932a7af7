//! The wire format both ends speak, with no I/O of its own: frames, the
//! messages inside them, the login handshake and the rules for names.
//!
//! Everything here works on byte buffers or on any `Read`/`Write`, so it is
//! tested without sockets.

pub mod auth;
pub mod binding;
pub mod code;
pub mod delta;
pub mod error;
pub mod frame;
pub mod listing;
mod matching;
pub mod message;
pub mod names;
pub mod reply;
