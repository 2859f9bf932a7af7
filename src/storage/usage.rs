//! What each home holds, measured once and then kept up to date by the
//! server's own changes (bytes written, files replaced, removed, swept),
//! so that a put with a quota does not walk the whole home.
//!
//! A home is measured again after anything the book cannot account for:
//! a failed write, or a sweep of stale partials.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::storage::local;

/// Bytes under each home, partial uploads included.
#[derive(Debug, Default, Clone)]
pub struct UsageBook(Arc<Mutex<HashMap<PathBuf, u64>>>);

impl UsageBook {
    fn book(&self) -> MutexGuard<'_, HashMap<PathBuf, u64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes under `home`: from the book, or walked the first time.
    ///
    /// Fails when the walk fails.
    pub fn used(&self, home: &Path) -> io::Result<u64> {
        if let Some(&used) = self.book().get(home) {
            return Ok(used);
        }
        let measured = local::usage(home)?;
        Ok(*self.book().entry(home.to_path_buf()).or_insert(measured))
    }

    /// Whether `home` is in the book: only then do changes under it need
    /// measuring (a home without a quota is never looked up).
    pub fn tracks(&self, home: &Path) -> bool {
        self.book().contains_key(home)
    }

    /// `n` more bytes were written under `home`.
    pub fn add(&self, home: &Path, n: u64) {
        if let Some(used) = self.book().get_mut(home) {
            *used = used.saturating_add(n);
        }
    }

    /// `n` bytes under `home` were removed or replaced.
    pub fn remove(&self, home: &Path, n: u64) {
        if let Some(used) = self.book().get_mut(home) {
            *used = used.saturating_sub(n);
        }
    }

    /// Something changed under `home` that the book cannot tell: measure
    /// it again next time.
    pub fn forget(&self, home: &Path) {
        self.book().remove(home);
    }

    /// The same for every home (after a sweep).
    pub fn forget_all(&self) {
        self.book().clear();
    }
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
        assert!(!book.tracks(dir.path()));
        assert_eq!(book.used(dir.path()).unwrap(), 100);
        assert!(book.tracks(dir.path()));
        // Not walked again: a file written behind the server's back is
        // not seen until the home is forgotten.
        fs::write(dir.path().join("b"), vec![0u8; 50]).unwrap();
        book.add(dir.path(), 10);
        book.remove(dir.path(), 30);
        assert_eq!(book.used(dir.path()).unwrap(), 80);
        book.forget(dir.path());
        assert_eq!(book.used(dir.path()).unwrap(), 150);
    }
}
