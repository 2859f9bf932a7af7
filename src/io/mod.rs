//! Moving bytes: the copy loop that hashes as it goes, and a throttle that
//! holds any reader or writer to a rate.

pub mod pump;
pub mod throttle;
