//! Uploads running right now: so that two connections never write the
//! same partial file, and so that a quota counts uploads that have not
//! written their bytes yet.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The uploads running right now, by partial file, with their declared
/// sizes: so that two connections never write the same partial file, and
/// so that a quota counts uploads that have not written their bytes yet.
#[derive(Debug, Default, Clone)]
pub struct UploadLocks(Arc<Mutex<HashMap<PathBuf, u64>>>);

/// Held while an upload runs; releases the name when dropped.
#[derive(Debug)]
pub struct UploadLock {
    locks: UploadLocks,
    path: PathBuf,
}

impl UploadLocks {
    /// Claims `path` for an upload of `size` bytes; `None` if another
    /// upload holds it.
    pub fn try_lock(&self, path: &Path, size: u64) -> Option<UploadLock> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.contains_key(path) {
            return None;
        }
        map.insert(path.to_path_buf(), size);
        Some(UploadLock {
            locks: self.clone(),
            path: path.to_path_buf(),
        })
    }

    /// The other uploads running below `dir`: their partial files and
    /// declared sizes.
    pub fn others_below(&self, dir: &Path, except: &Path) -> Vec<(PathBuf, u64)> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(p, _)| p.starts_with(dir) && p.as_path() != except)
            .map(|(p, size)| (p.clone(), *size))
            .collect()
    }
}

impl Drop for UploadLock {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_are_exclusive_until_dropped() {
        let locks = UploadLocks::default();
        let a = locks.try_lock(Path::new("/h/x"), 5).unwrap();
        assert!(locks.try_lock(Path::new("/h/x"), 5).is_none());
        let _b = locks.try_lock(Path::new("/h/y"), 7).unwrap();
        let _c = locks.try_lock(Path::new("/other/z"), 9).unwrap();
        assert_eq!(
            locks.others_below(Path::new("/h"), Path::new("/h/y")),
            [(PathBuf::from("/h/x"), 5)]
        );
        drop(a);
        assert!(locks.try_lock(Path::new("/h/x"), 1).is_some());
    }
}
