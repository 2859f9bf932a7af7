//! The disk store's file-system helpers: listings, times, partial uploads
//! and their sweep, and early writeback for durable uploads.
//!
//! A file being uploaded lives in `<folder>/.ftp-partial/<name>` until all
//! its bytes have arrived (and its digest matched); it is then renamed into
//! place, so a reader sees either the old file or the complete new one. A
//! partial file that is left behind by a broken connection is kept, so that
//! the next upload of the same name can resume it.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::handle::{Folder, Found, Kind};
use super::walk::{walk, Visit};
use crate::wire::message::{Entry, EntryKind};
use crate::wire::names::PARTIAL_DIR;

/// Lists files and folders in `dir` as the directory stream yields them,
/// looked at through its handle one by one, so that a folder of any size
/// costs bounded memory; the order is the file system's. Symbolic links,
/// the partial-upload folder and names that are not UTF-8 are left out.
///
/// Fails when the folder cannot be opened; a failure while reading it
/// comes as an item.
#[cfg(test)]
pub(crate) fn list(dir: Folder) -> std::io::Result<impl Iterator<Item = std::io::Result<Entry>>> {
    Ok(dir.into_entries()?.filter_map(|found| match found {
        Ok(found) => listing_entry(found).map(Ok),
        Err(e) => Some(Err(e)),
    }))
}

/// One entry as a listing shows it; `None` for what is not listed.
pub(crate) fn listing_entry(found: Found) -> Option<Entry> {
    let name = found.name.into_string().ok()?;
    if name == PARTIAL_DIR {
        return None;
    }
    let (kind, size) = match found.kind {
        Kind::File(len) => (EntryKind::File, len),
        Kind::Dir => (EntryKind::Dir, 0),
        Kind::Link | Kind::Other => return None,
    };
    Some(Entry {
        name,
        kind,
        size,
        mtime: found.mtime,
        blake3: None,
    })
}

/// Seconds since the Unix epoch, 0 for earlier times.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where the partial upload of `name` in `dir` lives.
#[cfg(test)]
pub(crate) fn partial_path(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(PARTIAL_DIR).join(name)
}

/// The key of the upload whose partial file is `partial` below `root`,
/// for the sweeper's claim: its final path from the root.
pub(crate) fn partial_key(root: &Path, partial: &Path) -> Option<String> {
    let rel = partial.strip_prefix(root).ok()?;
    let parts: Vec<&str> = rel.iter().map(|c| c.to_str()).collect::<Option<_>>()?;
    let (name, rest) = parts.split_last()?;
    let (partial_dir, folder) = rest.split_last()?;
    (*partial_dir == PARTIAL_DIR).then(|| {
        let mut key = folder.join("/");
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(name);
        key
    })
}

/// How much written data a durable upload lets pile up before it asks the
/// kernel to start writing it out.
pub(crate) const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to
/// disk, without waiting. A durable upload calls this as it goes, so the
/// disk works while the network does and the final fsync finds little
/// left to do. Errors are ignored: the fsync that follows reports them.
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::unix::io::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range only reads the descriptor and integers; the
    // descriptor is valid for as long as `file` is borrowed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Removes partial uploads older than `max_age` anywhere below `root`
/// (to `depth` folders), and returns how many were removed. `claim` must
/// grant each one first (an upload that resumes it holds it), and the
/// grant is held while the file is removed. The walk goes through folder
/// handles and never follows a link; the paths given to `claim` only name
/// the partials.
pub(crate) fn sweep_partials<G>(
    root: &Path,
    max_age: Duration,
    depth: usize,
    claim: impl Fn(&Path) -> Option<G>,
) -> usize {
    let oldest = unix_secs(SystemTime::now().checked_sub(max_age).unwrap_or(UNIX_EPOCH));
    let mut removed = 0;
    let Ok(top) = Folder::open(root) else {
        return 0;
    };
    let sweep = |seen: Visit| {
        if seen.found.kind != Kind::Dir || seen.found.name != PARTIAL_DIR {
            return true;
        }
        if let Ok(partials) = seen.folder.child(PARTIAL_DIR) {
            let path = seen.path.join(PARTIAL_DIR);
            removed += sweep_folder(&partials, &path, oldest, &claim);
            seen.folder.tidy_partials();
        }
        false
    };
    // A folder that cannot be read is left for the next sweep.
    let _ = walk(top, root.to_path_buf(), depth, sweep, |_| Ok(()));
    removed
}

/// Removes the partial files in `partials` (at `path`) last written
/// before `oldest`, each once `claim` grants it.
fn sweep_folder<G>(
    partials: &Folder,
    path: &Path,
    oldest: u64,
    claim: &impl Fn(&Path) -> Option<G>,
) -> usize {
    let Ok(entries) = partials.entries() else {
        return 0;
    };
    let mut removed = 0;
    for part in entries.flatten() {
        if part.mtime > oldest {
            continue;
        }
        if let Some(_held) = claim(&path.join(&part.name)) {
            if partials.remove_file(part.name.as_os_str()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn at(dir: &Path) -> Folder {
        Folder::open(dir).unwrap()
    }

    /// Every entry `list` gives, sorted by name for comparing.
    fn listed(dir: &Path) -> Vec<Entry> {
        let mut all: Vec<_> = list(at(dir)).unwrap().map(Result::unwrap).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    #[test]
    fn listing_hides_partials_and_links() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("b"), b"12345").unwrap();
        fs::write(dir.path().join("a"), b"").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        fs::create_dir(dir.path().join(PARTIAL_DIR)).unwrap();
        fs::write(partial_path(dir.path(), "c"), b"").unwrap();
        let files = listed(dir.path());
        let names: Vec<_> = files.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "sub"]);
        assert_eq!(files[1].size, 5);
        assert_eq!(files[2].kind, EntryKind::Dir);
    }

    #[test]
    fn entries_are_looked_at_as_they_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..100 {
            fs::write(dir.path().join(format!("f{i}")), b"").unwrap();
        }
        let mut entries = list(at(dir.path())).unwrap();
        assert!(entries.next().unwrap().is_ok());
        // Files removed after the listing began are left out, not errors.
        for i in 0..100 {
            let _ = fs::remove_file(dir.path().join(format!("f{i}")));
        }
        assert!(entries.count() < 99);
    }

    #[test]
    fn a_partial_file_maps_back_to_its_upload_key() {
        let root = Path::new("/srv/ftp");
        let partial = root.join("alice/docs").join(PARTIAL_DIR).join("a.txt");
        assert_eq!(partial_key(root, &partial).unwrap(), "alice/docs/a.txt");
        let top = root.join(PARTIAL_DIR).join("b");
        assert_eq!(partial_key(root, &top).unwrap(), "b");
        let (home, folder) = (["alice".to_string()], ["docs".to_string()]);
        let place = crate::storage::Place::new(&home, &folder);
        assert_eq!(place.key("a.txt"), "alice/docs/a.txt");
        assert!(partial_key(root, &root.join("x/y")).is_none());
    }

    #[test]
    fn empty_folder_lists_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(listed(dir.path()).is_empty());
    }

    #[test]
    fn sweep_removes_only_old_partials() {
        let dir = tempfile::tempdir().unwrap();
        let p = partial_path(dir.path(), "old");
        fs::create_dir(dir.path().join(PARTIAL_DIR)).unwrap();
        fs::write(&p, b"").unwrap();
        let any = |_: &Path| Some(());
        assert_eq!(
            sweep_partials(dir.path(), Duration::from_secs(3600), 2, any),
            0
        );
        // One that a running upload holds is left alone.
        assert_eq!(
            sweep_partials(dir.path(), Duration::ZERO, 2, |_| None::<()>),
            0
        );
        assert_eq!(sweep_partials(dir.path(), Duration::ZERO, 2, any), 1);
        assert!(!p.exists());
    }

    #[test]
    fn usage_and_sweep_do_not_follow_a_linked_folder() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("mine"), b"1234").unwrap();
        fs::create_dir(outside.path().join(PARTIAL_DIR)).unwrap();
        let theirs = outside.path().join(PARTIAL_DIR).join("theirs");
        fs::write(&theirs, b"not ours to count or sweep").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("door")).unwrap();
        let used = crate::storage::disk::usage::measure(dir.path()).unwrap();
        assert_eq!((used.bytes, used.entries), (4, 1), "mine, not the link");
        let any = |_: &Path| Some(());
        assert_eq!(sweep_partials(dir.path(), Duration::ZERO, 2, any), 0);
        assert!(theirs.exists());
    }
}
