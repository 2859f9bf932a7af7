//! Moving bytes: the copy loop that hashes as it goes, a digest that can
//! run beside it, a throttle that
//! holds any reader or writer to a rate, a writer that Ctrl-C stops, and
//! one held to a deadline for a whole reply.

pub mod deadline;
pub mod digest;
pub mod interrupt;
pub mod pump;
pub mod throttle;
