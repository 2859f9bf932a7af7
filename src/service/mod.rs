//! Running the server as a service: accounts reloaded while it runs
//! ([`reload`]), and the systemd protocols ([`systemd`]).

pub(crate) mod reload;
pub(crate) mod systemd;
