//! A depth-first walk below a folder that holds one open folder per level
//! (its handle and its directory stream), never one per folder waiting to
//! be walked: a home with 25,000 folders in one folder costs as many
//! descriptors as one with a single folder. Each step goes through the
//! handle of the level above, so a link is never followed.

use std::io;
use std::path::PathBuf;

use super::handle::{Folder, Found, Kind};

/// One open folder of a walk (this one, or a listing's): its handle, what
/// the walk calls it (`T`: a path, a prefix), and its directory stream.
pub(super) struct Level<T> {
    pub(super) folder: Folder,
    pub(super) name: T,
    pub(super) entries: Box<dyn Iterator<Item = io::Result<Found>> + Send>,
}

impl<T> Level<T> {
    /// Opens `folder`'s stream, through a second handle on it.
    ///
    /// Fails when no descriptor is left or the folder cannot be read.
    pub(super) fn open(folder: Folder, name: T) -> io::Result<Level<T>> {
        let entries = Box::new(folder.try_clone()?.into_entries()?);
        Ok(Level {
            folder,
            name,
            entries,
        })
    }
}

/// What the visitor sees of an entry: the folder that holds it (its
/// handle and path), and the entry.
pub(super) struct Visit<'a> {
    pub(super) folder: &'a Folder,
    pub(super) path: &'a PathBuf,
    pub(super) found: &'a Found,
}

/// Walks below `top` (at `path`), handing every entry to `visit`, and
/// goes into a folder when `visit` says so and it is at most `max_depth`
/// levels below the top. A folder removed or swapped for a link meanwhile
/// is not gone into. A folder that cannot be opened or read goes to
/// `failed`, which stops the walk by returning the error, or skips the
/// folder by returning `Ok`.
///
/// Fails when `failed` does.
pub(super) fn walk(
    top: Folder,
    path: PathBuf,
    max_depth: usize,
    mut visit: impl FnMut(Visit) -> bool,
    mut failed: impl FnMut(io::Error) -> io::Result<()>,
) -> io::Result<()> {
    let mut stack = match Level::open(top, path) {
        Ok(level) => vec![level],
        Err(e) => return failed(e),
    };
    loop {
        let depth = stack.len().saturating_sub(1);
        let Some(level) = stack.last_mut() else {
            return Ok(());
        };
        let found = match level.entries.next() {
            None => {
                stack.pop();
                continue;
            }
            Some(Err(e)) => {
                stack.pop();
                failed(e)?;
                continue;
            }
            Some(Ok(found)) => found,
        };
        let enter = visit(Visit {
            folder: &level.folder,
            path: &level.name,
            found: &found,
        });
        if !enter || found.kind != Kind::Dir || depth >= max_depth {
            continue;
        }
        let opened = level
            .folder
            .child(found.name.as_os_str())
            .and_then(|child| Level::open(child, level.name.join(&found.name)));
        match opened {
            Ok(below) => stack.push(below),
            Err(e) if gone(&e) => {}
            Err(e) => failed(e)?,
        }
    }
}

/// Whether a folder went, or became a link or a file, since it was listed.
fn gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR))
}
