//! The server's settings: its flags and config file as written
//! ([`flags`]), and what they come to once checked and completed
//! ([`settings`]).

pub mod flags;
mod hooks;
pub mod settings;
