//! Moving bytes: the copy loop that hashes as it goes, a digest that can
//! run beside it, a throttle that
//! holds any reader or writer to a rate, and a writer that Ctrl-C stops.

pub(crate) mod chunks;
pub(crate) mod digest;
pub(crate) mod interrupt;
pub(crate) mod pump;
pub(crate) mod throttle;
