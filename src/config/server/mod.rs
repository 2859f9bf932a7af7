//! The server's settings: its flags and config file as written
//! ([`flags`]), and what they come to once checked and completed
//! ([`settings`]), and which of them a reload applies ([`live`]).

pub mod flags;
mod hooks;
pub mod live;
pub mod settings;
