//! What both programs read before they talk: the secret, where per-user
//! files live, and sizes written by people.

pub(crate) mod address;
pub(crate) mod cidr;
pub(crate) mod cli;
pub(crate) mod paths;
pub(crate) mod pins;
pub mod secret;
pub(crate) mod strength;
pub(crate) mod units;
