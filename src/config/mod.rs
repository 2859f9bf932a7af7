//! What both programs read before they talk: the secret, where per-user
//! files live, and sizes written by people.

pub mod address;
pub mod cidr;
pub mod cli;
pub mod logging;
pub mod paths;
pub mod pins;
pub mod secret;
pub mod server;
pub mod strength;
pub mod units;
pub mod users;
