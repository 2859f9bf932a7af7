//! A rerun of `put -r` or `get -r` sends only what is missing: a file the
//! other side already has with the same size and modification time (or,
//! with `-c`, the same BLAKE3) is left out, as `sync` leaves it out.
//! `--force-all` sends everything again.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::client::batch::Step;
use crate::client::files::unix_mtime;
use crate::client::sync::{local_differs, Compare};
use crate::client::tree::{LocalFile, RemoteEntry};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::wire::message::{EntryKind, LsRequest};
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

/// For `get NAME [LOCAL]`: the local file it would write, when that is
/// the server's file already: the same size and BLAKE3 (not only the same
/// time, which a file written in the same second shares). Costs one
/// listing of the file's server folder, with the digests the server
/// keeps, and reading the local file, only when it exists.
pub(super) fn fetched_already(
    client: &mut Client,
    name: &str,
    local: Option<&Path>,
) -> Option<PathBuf> {
    let (folder, base) = match name.rsplit_once('/') {
        Some(("", base)) => (Some("/".to_string()), base),
        Some((folder, base)) => (Some(folder.to_string()), base),
        None => (None, name),
    };
    let target = match local {
        Some(p) if p.is_dir() => p.join(base),
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(base),
    };
    local_file(&target)?;
    let request = LsRequest {
        pages: true,
        path: folder,
        digests: true,
        ..LsRequest::default()
    };
    let mut theirs = None;
    let listed = client.ls_with(request, |page| {
        let found = page.files.into_iter().find(|e| e.name == base);
        if let Some(e) = found.filter(|e| e.kind == EntryKind::File) {
            theirs = Some(RemoteEntry {
                relative: e.name,
                kind: e.kind,
                size: e.size,
                mtime: e.mtime,
                blake3: e.blake3,
            });
        }
        Ok(())
    });
    let theirs = theirs.filter(|_| listed.is_ok())?;
    already_here(&target, &theirs, Compare::Checksum).then_some(target)
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
