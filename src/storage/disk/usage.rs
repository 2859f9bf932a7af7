//! What each home holds (bytes, and files and folders), measured once and
//! then kept up to date by the server's own changes (bytes written, files
//! and folders created, replaced, removed, swept), so that a command
//! under a quota does not walk the whole home.
//!
//! A home is measured again after anything the book cannot account for:
//! a failed write, or a sweep of stale partials.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::handle::{Folder, Kind};
use super::signature::SIGNATURE_DIR;
use super::walk::{walk, Visit};
use crate::storage::Usage;
use crate::wire::names::{MAX_PATH_DEPTH, PARTIAL_DIR};

/// What each home holds, partial uploads included.
#[derive(Debug, Default, Clone)]
pub(crate) struct UsageBook(Arc<Mutex<HashMap<PathBuf, Usage>>>);

impl UsageBook {
    fn book(&self) -> MutexGuard<'_, HashMap<PathBuf, Usage>> {
        self.0.lock()
    }

    /// What `home` holds: from the book, or walked the first time.
    ///
    /// Fails when the walk fails.
    pub(crate) fn used(&self, home: &Path) -> io::Result<Usage> {
        if let Some(&used) = self.book().get(home) {
            return Ok(used);
        }
        let measured = measure(home)?;
        Ok(*self.book().entry(home.to_path_buf()).or_insert(measured))
    }

    /// Whether `home` is in the book: only then do changes under it need
    /// measuring (a home without a quota is never looked up).
    pub(crate) fn tracks(&self, home: &Path) -> bool {
        self.book().contains_key(home)
    }

    /// `n` more bytes were written under `home`.
    pub(crate) fn add(&self, home: &Path, n: u64) {
        self.change(home, |u| u.bytes = u.bytes.saturating_add(n));
    }

    /// `n` bytes under `home` were removed or replaced.
    pub(crate) fn remove(&self, home: &Path, n: u64) {
        self.change(home, |u| u.bytes = u.bytes.saturating_sub(n));
    }

    /// `n` files or folders were created under `home`.
    pub(crate) fn created(&self, home: &Path, n: u64) {
        self.change(home, |u| u.entries = u.entries.saturating_add(n));
    }

    /// `n` files or folders under `home` went away.
    pub(crate) fn deleted(&self, home: &Path, n: u64) {
        self.change(home, |u| u.entries = u.entries.saturating_sub(n));
    }

    fn change(&self, home: &Path, f: impl FnOnce(&mut Usage)) {
        if let Some(used) = self.book().get_mut(home) {
            f(used);
        }
    }

    /// Something changed under `home` that the book cannot tell: measure
    /// it again next time.
    pub(crate) fn forget(&self, home: &Path) {
        self.book().remove(home);
    }

    /// Every home in the book.
    pub(crate) fn homes(&self) -> Vec<PathBuf> {
        self.book().keys().cloned().collect()
    }

    /// Sets what `home` holds to `used` (just measured); returns what the
    /// book said before.
    pub(crate) fn set(&self, home: &Path, used: Usage) -> Option<Usage> {
        self.book().insert(home.to_path_buf(), used)
    }

    /// The same for every home (after a sweep).
    pub(crate) fn forget_all(&self) {
        self.book().clear();
    }
}

/// How deep a measure goes: deeper than any path the protocol makes (a
/// local user's deeper tree is not counted below this).
const MAX_MEASURE_DEPTH: usize = 2 * MAX_PATH_DEPTH;

/// What the folder `dir` holds: the size of its regular files and the
/// number of its files and folders, at any depth (to
/// [`MAX_MEASURE_DEPTH`]). The walk goes through folder handles, so a
/// link is neither followed nor counted, not even one swapped in for a
/// folder while the walk runs; and it holds one open folder per level,
/// not one per folder waiting (see [`walk`]).
///
/// Fails when a folder cannot be read.
pub(crate) fn measure(dir: &Path) -> io::Result<Usage> {
    let mut total = Usage::default();
    let top = match Folder::open(dir) {
        Ok(folder) => folder,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(total),
        Err(e) => return Err(e),
    };
    let count = |seen: Visit| {
        match seen.found.kind {
            Kind::File(len) => {
                total.bytes = total.bytes.saturating_add(len);
                // A kept signature is the server's: bytes, but no entry.
                if !is_signature_dir(seen.path) {
                    total.entries += 1;
                }
            }
            // The folders that hold partials are the server's.
            Kind::Dir if seen.found.name != PARTIAL_DIR => total.entries += 1,
            Kind::Dir | Kind::Link | Kind::Other => {}
        }
        true
    };
    walk(top, dir.to_path_buf(), MAX_MEASURE_DEPTH, count, Err)?;
    Ok(total)
}

/// Whether `path` is a folder of kept signatures (see [`super::signature`]).
fn is_signature_dir(path: &Path) -> bool {
    let mut last = path.iter().rev();
    last.next() == Some(SIGNATURE_DIR.as_ref()) && last.next() == Some(PARTIAL_DIR.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn measured_once_then_kept_by_the_changes_it_is_told() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), vec![0u8; 100]).unwrap();
        let book = UsageBook::default();
        let used = |bytes, entries| Usage { bytes, entries };
        assert!(!book.tracks(dir.path()));
        assert_eq!(book.used(dir.path()).unwrap(), used(100, 1));
        assert!(book.tracks(dir.path()));
        // Not walked again: a file written behind the server's back is
        // not seen until the home is forgotten.
        fs::write(dir.path().join("b"), vec![0u8; 50]).unwrap();
        book.add(dir.path(), 10);
        book.remove(dir.path(), 30);
        book.created(dir.path(), 3);
        book.deleted(dir.path(), 1);
        assert_eq!(book.used(dir.path()).unwrap(), used(80, 3));
        book.forget(dir.path());
        assert_eq!(book.used(dir.path()).unwrap(), used(150, 2));
    }

    #[test]
    fn files_and_folders_count_but_not_the_partial_folders_or_links() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir_all(sub.join(PARTIAL_DIR)).unwrap();
        fs::write(sub.join(PARTIAL_DIR).join("part"), b"abc").unwrap();
        fs::write(sub.join("f"), b"de").unwrap();
        fs::write(dir.path().join("empty"), b"").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("l")).unwrap();
        let u = measure(dir.path()).unwrap();
        // sub, its partial, f and empty.
        assert_eq!((u.bytes, u.entries), (5, 4));
    }
}
