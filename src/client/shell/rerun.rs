//! A rerun of `put -r` or `get -r` sends only what is missing: a file the
//! other side already has with the same size and modification time (or,
//! with `-c`, the same BLAKE3) is left out, as `sync` leaves it out.
//! `--force-all` sends everything again.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::client::batch::{unix_mtime, Step};
use crate::client::sync::{local_differs, Compare};
use crate::client::tree::{LocalFile, RemoteEntry};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::wire::reply::ErrorCode;

/// How files are compared: `-c` compares BLAKE3.
pub(super) fn compare(checksum: bool) -> Compare {
    match checksum {
        true => Compare::Checksum,
        false => Compare::SizeAndTime,
    }
}

/// Leaves out of `steps` the uploads into the server folders `roots`
/// whose files are there already, the same; returns how many.
///
/// Fails when a folder cannot be listed for another reason than that it
/// is not there yet.
pub(super) fn skip_uploaded(
    client: &mut Client,
    steps: &mut Vec<Step>,
    roots: &[String],
    compare: Compare,
) -> Result<u64> {
    let mut there: HashMap<String, RemoteEntry> = HashMap::new();
    for root in roots {
        let entries = match client.list_tree(root, compare == Compare::Checksum) {
            Ok(entries) => entries,
            Err(Error::Remote {
                code: ErrorCode::NotFound,
                ..
            }) => continue,
            Err(e) => return Err(e),
        };
        there.extend(
            entries
                .into_iter()
                .map(|e| (format!("{root}/{}", e.relative), e)),
        );
    }
    if there.is_empty() {
        return Ok(0);
    }
    let before = steps.len();
    steps.retain(|step| match step {
        Step::Upload(u) => match (there.get(&u.remote), local_file(&u.local)) {
            (Some(theirs), Some(ours)) => local_differs(&ours, theirs, compare),
            _ => true,
        },
        _ => true,
    });
    Ok((before - steps.len()) as u64)
}

/// Whether the local file at `local` is the server's `entry` already.
pub(super) fn already_here(local: &Path, entry: &RemoteEntry, compare: Compare) -> bool {
    local_file(local).is_some_and(|ours| !local_differs(&ours, entry, compare))
}

/// A regular local file as the comparison sees it; `None` for anything
/// else (a link, a folder, nothing).
fn local_file(path: &Path) -> Option<LocalFile> {
    let meta = fs::symlink_metadata(path).ok().filter(|m| m.is_file())?;
    Some(LocalFile {
        path: path.to_path_buf(),
        relative: String::new(),
        size: meta.len(),
        mtime: unix_mtime(&meta)?,
    })
}
