//! The integration tests, one crate with a module per area (as ripgrep's
//! are), so that the helpers in `support` compile once and every one of
//! them is used by some test. Each test spawns the real binaries on
//! 127.0.0.1:0 in a temporary folder. Run one area with
//! `cargo test --test it batches::`.

#[path = "../support/mod.rs"]
mod support;

mod accounts;
mod batches;
mod client_basics;
mod config_file;
mod conveniences;
mod core;
mod deltas;
mod depth;
mod docs;
mod encryption;
mod filters;
mod floods;
mod folders;
mod handshakes;
mod hooks;
mod hostile;
mod hostile_server;
mod idle;
mod limits;
mod listing;
mod local_links;
mod logs;
mod modes;
mod namespace;
mod quotas;
mod reload;
mod reruns;
mod s3;
mod s3_abuse;
mod s3_deltas;
mod seed_programs;
mod shutdown;
mod slots;
mod slow_readers;
mod stalls;
mod startup;
mod systemd;
mod terminal;
mod transfers;
mod usage_check;
mod user_command;
mod user_limits;
