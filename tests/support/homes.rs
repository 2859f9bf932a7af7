//! An account's home for the quota tests: a server with one user, and
//! what her folder holds as `du` would add it up.

use std::fs;
use std::path::Path;

use super::{Sandbox, ServerProcess};

/// The secret of alice, the one account of [`alice_server`].
pub const ALICE: &str = "alice's long secret";

/// A server whose users file holds alice alone, with `limits` (lines of
/// her entry: `quota = "1MiB"`) and the server's `extra` flags.
pub fn alice_server(sb: &Sandbox, limits: &str, extra: &[&str]) -> ServerProcess {
    let users = sb.path().join("users.toml");
    fs::write(
        &users,
        format!("[[user]]\nname = \"alice\"\nsecret = \"{ALICE}\"\n{limits}"),
    )
    .unwrap();
    let mut args = vec!["--users", users.to_str().unwrap()];
    args.extend_from_slice(extra);
    sb.start_server(&args)
}

/// Bytes and entries (files and folders, the partial-upload folders not
/// counted) under `dir`, as `du` adds them up: what a quota must bound.
pub fn held_under(dir: &Path) -> (u64, u64) {
    let (mut bytes, mut entries) = (0, 0);
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        if meta.is_dir() {
            let (b, e) = held_under(&entry.path());
            bytes += b;
            entries += e + u64::from(entry.file_name() != ".ftp-partial");
        } else {
            bytes += meta.len();
            entries += 1;
        }
    }
    (bytes, entries)
}
