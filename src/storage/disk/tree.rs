//! Whole trees on disk: a listing that walks a folder and everything
//! below it with a stack of open folder readers (one per level, so memory
//! is bounded by the depth, not the tree), and the removal of a tree, both
//! through folder handles that never follow a link.

use std::ffi::OsStr;
use std::io;

use super::digest::digest_of;
use super::files::listing_entry;
use super::handle::{Folder, Kind};
use super::signature::{self, SIGNATURE_DIR};
use super::DiskStore;
use crate::storage::{Claim, Leftover, ListHow, Place, Store, StoreError, StoreResult};
use crate::wire::message::{Entry, EntryKind};
use crate::wire::names::{display_folder, MAX_PATH_DEPTH, PARTIAL_DIR};

/// Deepest a removal goes: deeper than any path the protocol makes, so
/// only a tree planted by a local user stops it (and is then left).
const MAX_REMOVE_DEPTH: usize = 2 * MAX_PATH_DEPTH;

/// One open folder of a listing, named by its path from the listed one,
/// ending in `/` (empty at the top).
type Level = super::walk::Level<String>;

/// A folder's entries, and with `recursive` everything below it, depth
/// first: a folder comes right before what it holds. Each level keeps the
/// file system's order. Links, partial uploads and names that are not
/// UTF-8 are left out, as in a plain listing.
pub(super) struct Tree {
    stack: Vec<Level>,
    how: ListHow,
}

impl Tree {
    /// The walk of `top`.
    ///
    /// Fails when the folder cannot be read.
    pub(super) fn new(top: Folder, how: ListHow) -> io::Result<Tree> {
        Ok(Tree {
            stack: vec![Level::open(top, String::new())?],
            how,
        })
    }

    /// Gives `entry` (just read from the top level) its path and digest,
    /// and opens it for the walk if it is a folder to go into.
    fn complete(&mut self, mut entry: Entry) -> Entry {
        let Some(level) = self.stack.last() else {
            return entry;
        };
        let name = std::mem::take(&mut entry.name);
        entry.name = format!("{}{name}", level.name);
        match entry.kind {
            // A file that went or changed into something else meanwhile
            // is listed without a digest; the client hashes it as new.
            EntryKind::File if self.how.digests => {
                entry.blake3 = digest_of(&level.folder, &name)
                    .ok()
                    .map(|d| d.to_hex().to_string());
            }
            EntryKind::Dir if self.how.recursive && self.stack.len() < MAX_PATH_DEPTH => {
                // A folder removed or swapped for a link meanwhile is not
                // gone into.
                let below = level.folder.child(name.as_str());
                if let Ok(level) = below.and_then(|f| Level::open(f, format!("{}/", entry.name))) {
                    self.stack.push(level);
                }
            }
            _ => {}
        }
        entry
    }
}

impl Iterator for Tree {
    type Item = StoreResult<Entry>;

    fn next(&mut self) -> Option<StoreResult<Entry>> {
        loop {
            let level = self.stack.last_mut()?;
            let found = match level.entries.next() {
                None => {
                    self.stack.pop();
                    continue;
                }
                Some(Err(e)) => return Some(Err(StoreError::Failed("listing", e))),
                Some(Ok(found)) => found,
            };
            if let Some(entry) = listing_entry(found) {
                return Some(Ok(self.complete(entry)));
            }
        }
    }
}

impl DiskStore {
    /// Goes down through folder handles: a link inside is removed as a
    /// link, never followed. The usage book is told what went.
    pub(super) fn remove_folder(&self, at: Place, name: &str, claim: Claim) -> StoreResult<u64> {
        let parent = self.folder(at)?;
        match parent.kind(name).map_err(StoreError::File)? {
            Kind::Dir => {}
            _ => return self.remove(at, name).map(|()| 1),
        }
        let mut remover = Remover {
            claim,
            done: Default::default(),
        };
        let mut path = at.folder.to_vec();
        path.push(name.to_string());
        let shown = display_folder(&path);
        let walked = remover.remove(&parent, name.as_ref(), &shown, &at.key(name), 0);
        let done = remover.done;
        let home = self.home(at.home);
        self.usage.remove(&home, done.bytes);
        self.usage.deleted(&home, done.entries);
        walked.map_err(StoreError::failed("removing"))?;
        match done.left {
            Some((left, why)) => Err(StoreError::Left {
                removed: done.removed,
                left,
                why,
            }),
            None => Ok(done.removed),
        }
    }

    /// One `renameat` between two folder handles, refusing to replace
    /// anything (see [`Folder::rename`]).
    pub(super) fn move_entry(
        &self,
        from_at: Place,
        from: &str,
        to_at: Place,
        to: &str,
    ) -> StoreResult<()> {
        let source = self.folder(from_at)?;
        let dest = self.folder(to_at)?;
        let kind = source.kind(from).map_err(StoreError::File)?;
        match kind {
            Kind::Link => {
                let link = io::Error::from_raw_os_error(libc::ELOOP);
                return Err(StoreError::File(link));
            }
            Kind::Other => return Err(StoreError::NotAFile),
            Kind::File(_) | Kind::Dir => {}
        }
        match source.rename(from, &dest, to, false) {
            Ok(()) => {
                // Cut again under its new name when it is asked for.
                if let Kind::File(_) = kind {
                    self.forget_signature(&source, from_at, from);
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(StoreError::Exists),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Err(StoreError::Exists),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(StoreError::File(e)),
            Err(e) => Err(StoreError::Failed("moving", e)),
        }
    }
}

/// What a removal of a tree did, for the reply and the usage book.
#[derive(Debug, Default)]
pub(super) struct Removal {
    /// Files, folders and links that went (not partial uploads).
    pub(super) removed: u64,
    /// Bytes of regular files that went, partial uploads included.
    pub(super) bytes: u64,
    /// Entries as the usage book counts them (files and folders, partial
    /// uploads included; not links).
    pub(super) entries: u64,
    /// The first folder that could not be emptied, from the home, and why.
    pub(super) left: Option<(String, Leftover)>,
}

/// Walks down removing, holding the folder's path from the home (for
/// what is left) and its upload key (for claiming partial uploads).
pub(super) struct Remover<'c> {
    pub(super) claim: Claim<'c>,
    pub(super) done: Removal,
}

impl Remover<'_> {
    /// Removes the folder `name` in `parent`, and everything in it.
    /// `shown` is its path from the home, `key` its upload key.
    ///
    /// Fails when a folder cannot be read or an entry cannot be removed
    /// for a reason other than being in use.
    pub(super) fn remove(
        &mut self,
        parent: &Folder,
        name: &OsStr,
        shown: &str,
        key: &str,
        depth: usize,
    ) -> io::Result<()> {
        let dir = match parent.child(name) {
            Ok(dir) => dir,
            // Swapped for a link or a file meanwhile: removed as one.
            Err(e) if is_not_a_folder(&e) => return self.remove_file(parent, name, Kind::Link),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if depth >= MAX_REMOVE_DEPTH {
            self.leave(shown, Leftover::TooDeep);
            return Ok(());
        }
        for found in dir.entries()? {
            let found = found?;
            let text = found.name.to_string_lossy();
            let (below, below_key) = (format!("{shown}/{text}"), format!("{key}/{text}"));
            match found.kind {
                Kind::Dir if found.name == PARTIAL_DIR => self.remove_partials(&dir, shown, key)?,
                Kind::Dir => self.remove(&dir, &found.name, &below, &below_key, depth + 1)?,
                kind => self.remove_file(&dir, &found.name, kind)?,
            }
        }
        match parent.remove_dir(name) {
            Ok(()) => {
                self.done.removed += 1;
                self.done.entries += 1;
                Ok(())
            }
            // Emptied above, unless something stayed (and was noted) or
            // came meanwhile.
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                self.leave(shown, Leftover::Added);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Notes that `shown` stays, for `why`, unless something stayed first.
    fn leave(&mut self, shown: &str, why: Leftover) {
        self.done
            .left
            .get_or_insert_with(|| (shown.to_string(), why));
    }

    /// Removes a file, a link (never what it points to) or anything else
    /// that is not a folder.
    fn remove_file(&mut self, dir: &Folder, name: &OsStr, kind: Kind) -> io::Result<()> {
        match dir.remove_file(name) {
            Ok(()) => {
                self.done.removed += 1;
                if let Kind::File(len) = kind {
                    self.done.bytes += len;
                    self.done.entries += 1;
                }
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes the partial uploads in `dir`'s `.ftp-partial` (at `shown`)
    /// that no connection runs, and the folder once it is empty; `key` is
    /// `dir`'s upload key.
    fn remove_partials(&mut self, dir: &Folder, shown: &str, key: &str) -> io::Result<()> {
        let partials = match dir.child(PARTIAL_DIR) {
            Ok(p) => p,
            // A link planted in its place: removed as a link.
            Err(e) if is_not_a_folder(&e) => {
                return self.remove_file(dir, OsStr::new(PARTIAL_DIR), Kind::Link)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for found in partials.entries()? {
            let found = found?;
            if found.name == SIGNATURE_DIR && found.kind == Kind::Dir {
                // Signatures are bytes of the home, but no entries of it.
                self.done.bytes += signature::forget_all(dir);
                continue;
            }
            let held = match found.name.to_str() {
                Some(name) => match (self.claim)(&format!("{key}/{name}")) {
                    Some(held) => Some(held),
                    None => {
                        self.leave(shown, Leftover::Upload);
                        continue;
                    }
                },
                None => None,
            };
            let counted = self.done.removed;
            self.remove_file(&partials, &found.name, found.kind)?;
            // Partial uploads are no files of the user's.
            self.done.removed = counted;
            drop(held);
        }
        match dir.remove_dir(PARTIAL_DIR) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

fn is_not_a_folder(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR))
}
