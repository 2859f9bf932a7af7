//! Moving bytes: the copy loop that hashes as it goes, a digest that can
//! run beside it, a throttle that
//! holds any reader or writer to a rate, and a writer that Ctrl-C stops.

pub mod chunks;
pub mod digest;
pub mod interrupt;
pub mod pump;
pub mod throttle;
