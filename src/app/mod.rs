//! The two programs, `ftp-server` and `ftp-client`: their command lines
//! and what each does with them. The binaries in `src/bin` only call
//! [`server::main`] and [`client::main`], so what the programs use stays
//! inside the crate, and the library's public face is what a library user
//! needs.

pub mod client;
pub mod server;
