//! The server's settings: its flags and config file as written
//! ([`flags`]), and what they come to once checked and completed
//! ([`Settings`]), and which of them a reload applies ([`live`]).

pub(crate) mod flags;
mod hooks;
pub(crate) mod live;
mod resolved;

pub(crate) use resolved::Settings;
