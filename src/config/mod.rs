//! What both programs read before they talk: the secret, where per-user
//! files live, and sizes written by people.

pub mod address;
pub(crate) mod cidr;
pub mod cli;
pub mod paths;
pub(crate) mod pins;
pub mod secret;
pub(crate) mod strength;
pub mod units;
