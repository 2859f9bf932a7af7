//! The upload root on disk: folders, listings, partial uploads and the
//! atomic commit that puts a finished file under its name.
//!
//! A file being uploaded lives in `<folder>/.ftp-partial/<name>` until all
//! its bytes have arrived (and its digest matched); it is then renamed into
//! place, so a reader sees either the old file or the complete new one. A
//! partial file that is left behind by a broken connection is kept, so that
//! the next upload of the same name can resume it.

use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::wire::message::{Entry, EntryKind, Listing};
use crate::wire::names::{display_folder, PARTIAL_DIR};

/// Most entries one listing carries; the rest is reported as truncated.
pub const MAX_LISTING: usize = 50_000;

/// Why a folder path could not be used. Each variant carries the folder
/// as the user wrote it, relative to the home.
#[derive(Debug)]
pub enum FolderError {
    /// A step is missing.
    Missing(String),
    /// A step is a symbolic link, which is never followed.
    Link(String),
    /// A step is a file or something else that is not a folder.
    NotFolder(String),
    /// The file system failed while checking a step.
    Io(String, io::Error),
}

/// Returns the folder `components` below `home`, checking that every step is
/// a real folder and not a symbolic link that could lead out of the home.
///
/// Fails when a step is missing, a link, or not a folder.
pub fn folder(home: &Path, components: &[String]) -> Result<PathBuf, FolderError> {
    let mut path = home.to_path_buf();
    for (depth, part) in components.iter().enumerate() {
        path.push(part);
        let shown = || display_folder(&components[..=depth]);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => return Err(FolderError::Link(shown())),
            Ok(_) => return Err(FolderError::NotFolder(shown())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(FolderError::Missing(shown()))
            }
            Err(e) => return Err(FolderError::Io(shown(), e)),
        }
    }
    Ok(path)
}

/// Whether an I/O error means the disk or the quota is full.
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Lists files and folders in `dir`, sorted by name. Symbolic links, the
/// partial-upload folder and names that are not UTF-8 are left out. A
/// folder with more than [`MAX_LISTING`] entries gives the first ones in
/// name order, and says it was truncated; memory stays bounded by keeping
/// only the smallest names seen so far.
///
/// Fails when the folder cannot be read.
pub fn list(dir: &Path) -> io::Result<Listing> {
    list_first(dir, MAX_LISTING)
}

fn list_first(dir: &Path, max: usize) -> io::Result<Listing> {
    let mut kept = BinaryHeap::new();
    let mut truncated = false;
    for entry in fs::read_dir(dir)? {
        let Some(entry) = listing_entry(entry?) else {
            continue;
        };
        kept.push(ByName(entry));
        if kept.len() > max {
            kept.pop();
            truncated = true;
        }
    }
    let files = kept.into_sorted_vec().into_iter().map(|e| e.0).collect();
    Ok(Listing { files, truncated })
}

/// One entry as a listing shows it; `None` for what is not listed.
fn listing_entry(entry: fs::DirEntry) -> Option<Entry> {
    let name = entry.file_name().into_string().ok()?;
    if name == PARTIAL_DIR {
        return None;
    }
    // DirEntry::metadata does not follow links.
    let meta = entry.metadata().ok()?;
    let kind = if meta.is_file() {
        EntryKind::File
    } else if meta.is_dir() {
        EntryKind::Dir
    } else {
        return None;
    };
    Some(Entry {
        name,
        kind,
        size: if kind == EntryKind::File {
            meta.len()
        } else {
            0
        },
        mtime: unix_secs(meta.modified().unwrap_or(UNIX_EPOCH)),
    })
}

/// Orders listing entries by name, so a max-heap drops the largest.
struct ByName(Entry);

impl PartialEq for ByName {
    fn eq(&self, other: &ByName) -> bool {
        self.0.name == other.0.name
    }
}
impl Eq for ByName {}
impl PartialOrd for ByName {
    fn partial_cmp(&self, other: &ByName) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByName {
    fn cmp(&self, other: &ByName) -> std::cmp::Ordering {
        self.0.name.cmp(&other.0.name)
    }
}

/// Seconds since the Unix epoch, 0 for earlier times.
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Bytes an unprivileged user can still write on the file system of `path`.
///
/// Fails when `statvfs` fails.
pub fn disk_free(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Opens `path`, which lies below the folder `base` (a home), letting the
/// kernel resolve it in one call that refuses every symbolic link on the
/// way and any step out of `base` (openat2 with RESOLVE_BENEATH and
/// RESOLVE_NO_SYMLINKS): a link planted anywhere below the home, in
/// `.ftp-partial/` say, or swapped in after a check, is never followed.
/// Kernels without openat2 (before 5.6) get O_NOFOLLOW on the last step.
///
/// Fails with `ELOOP` for a link, and as `open` does.
pub fn open_beneath(base: &Path, path: &Path, flags: OFlags) -> io::Result<File> {
    let rel = path
        .strip_prefix(base)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path outside the home"))?;
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = rustix::fs::open(base, dir_flags, Mode::empty())?;
    let flags = flags | OFlags::CLOEXEC;
    // openat2 refuses a mode without O_CREAT.
    let mode = match flags.contains(OFlags::CREATE) {
        true => Mode::from_raw_mode(0o666),
        false => Mode::empty(),
    };
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
    let fd = match rustix::fs::openat2(&dir, rel, flags, mode, resolve) {
        Err(rustix::io::Errno::NOSYS) => {
            rustix::fs::openat(&dir, rel, flags | OFlags::NOFOLLOW, mode)?
        }
        other => other?,
    };
    Ok(File::from(fd))
}

/// Opens an existing regular file below `home` for reading, through no
/// symbolic link (see [`open_beneath`]).
///
/// Fails with `NotFound`, with `ELOOP` for a link, or with `InvalidInput`
/// for something that is not a regular file.
pub fn open_regular(home: &Path, path: &Path) -> io::Result<File> {
    let file = open_beneath(home, path, OFlags::RDONLY | OFlags::NONBLOCK)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Where the partial upload of `name` in `dir` lives.
pub fn partial_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(PARTIAL_DIR).join(name)
}

/// Opens the partial file at `path` below `home` for an upload, through
/// no symbolic link (see [`open_beneath`]): appending to what is there
/// when `resume_at` is non-zero, empty otherwise.
///
/// Fails when the partial folder cannot be created or the file opened.
pub fn open_partial(home: &Path, path: &Path, resume_at: u64) -> io::Result<File> {
    let flags = match resume_at {
        0 => OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
        _ => OFlags::WRONLY | OFlags::APPEND,
    };
    match open_beneath(home, path, flags) {
        // The partial folder is made on first use only, not on every upload.
        Err(e) if e.kind() == io::ErrorKind::NotFound && resume_at == 0 => {
            if let Some(parent) = path.parent() {
                match fs::create_dir(parent) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
            open_beneath(home, path, flags)
        }
        other => other,
    }
}

/// Length of the partial data kept for `path`, if any usable for an upload
/// of `filesize` bytes. Longer data cannot belong to this file and is
/// discarded by the caller.
pub fn partial_len(path: &Path, filesize: u64) -> Option<u64> {
    regular_len(path).filter(|&len| len <= filesize)
}

/// Size of the regular file at `path`, not following a link; `None` if
/// there is none.
pub fn regular_len(path: &Path) -> Option<u64> {
    let meta = fs::symlink_metadata(path).ok()?;
    meta.is_file().then_some(meta.len())
}

/// Moves a finished upload to its final name. With `overwrite` an existing
/// file is replaced in one rename; without it an existing name is refused
/// by the same rename (`RENAME_NOREPLACE`), so no race can replace it.
/// With `durable` the folder is flushed afterwards so the new name
/// survives a power cut.
///
/// Fails with `AlreadyExists` when overwriting is off and the name exists.
pub fn commit(partial: &Path, target: &Path, overwrite: bool, durable: bool) -> io::Result<()> {
    if overwrite {
        fs::rename(partial, target)?;
    } else {
        rename_noreplace(partial, target)?;
    }
    if durable {
        if let Some(dir) = target.parent() {
            sync_dir(dir)?;
        }
    }
    Ok(())
}

/// Renames without replacing. File systems that lack `RENAME_NOREPLACE`
/// get link-then-unlink, which never replaces either.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Err(rustix::io::Errno::INVAL) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        other => Ok(other?),
    }
}

/// How much written data a durable upload lets pile up before it asks the
/// kernel to start writing it out.
pub const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to
/// disk, without waiting. A durable upload calls this as it goes, so the
/// disk works while the network does and the final fsync finds little
/// left to do. Errors are ignored: the fsync that follows reports them.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
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

/// Flushes a folder's entries to disk, so that a rename survives power loss.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes partial uploads older than `max_age` anywhere below `root`
/// (to `depth` folders), and returns how many were removed. `claim` must
/// grant each one first (an upload that resumes it holds it), and the
/// grant is held while the file is removed.
pub fn sweep_partials<G>(
    root: &Path,
    max_age: Duration,
    depth: usize,
    claim: impl Fn(&Path) -> Option<G>,
) -> usize {
    let now = SystemTime::now();
    let mut removed = 0;
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, d)) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_dir() {
                continue;
            }
            if entry.file_name() == PARTIAL_DIR {
                let Ok(parts) = fs::read_dir(entry.path()) else {
                    continue;
                };
                for part in parts.flatten() {
                    let old = part
                        .metadata()
                        .and_then(|m| m.modified())
                        .map(|t| now.duration_since(t).unwrap_or_default() >= max_age)
                        .unwrap_or(false);
                    let path = part.path();
                    if !old {
                        continue;
                    }
                    if let Some(_held) = claim(&path) {
                        if fs::remove_file(&path).is_ok() {
                            removed += 1;
                        }
                    }
                }
            } else if d < depth {
                stack.push((entry.path(), d + 1));
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn listing_hides_partials_and_links_and_sorts() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("b"), b"12345").unwrap();
        fs::write(dir.path().join("a"), b"").unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        open_partial(dir.path(), &partial_path(dir.path(), "c"), 0).unwrap();
        let l = list(dir.path()).unwrap();
        let names: Vec<_> = l.files.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "sub"]);
        assert_eq!(l.files[1].size, 5);
        assert_eq!(l.files[2].kind, EntryKind::Dir);
        assert!(!l.truncated);
    }

    #[test]
    fn a_truncated_listing_holds_the_first_names_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["m", "c", "x", "a", "k", "b"] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        let l = list_first(dir.path(), 3).unwrap();
        let names: Vec<_> = l.files.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(l.truncated);
    }

    #[test]
    fn empty_folder_lists_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list(dir.path()).unwrap().files.is_empty());
    }

    #[test]
    fn folder_refuses_links_and_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("f"), b"").unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("out")).unwrap();
        assert!(folder(dir.path(), &["d".into()]).is_ok());
        assert!(matches!(
            folder(dir.path(), &["out".into()]),
            Err(FolderError::Link(p)) if p == "/out"
        ));
        assert!(matches!(
            folder(dir.path(), &["f".into()]),
            Err(FolderError::NotFolder(_))
        ));
        assert!(matches!(
            folder(dir.path(), &["x".into()]),
            Err(FolderError::Missing(_))
        ));
    }

    #[test]
    fn open_regular_does_not_follow_links() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.path().join("l")).unwrap();
        assert!(open_regular(dir.path(), &dir.path().join("l")).is_err());
        assert!(open_regular(dir.path(), dir.path()).is_err());
    }

    #[test]
    fn commit_replaces_or_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("t");
        let p = partial_path(dir.path(), "t");
        open_partial(dir.path(), &p, 0)
            .unwrap()
            .write_all(b"one")
            .unwrap();
        commit(&p, &target, true, true).unwrap();
        open_partial(dir.path(), &p, 0)
            .unwrap()
            .write_all(b"two")
            .unwrap();
        commit(&p, &target, true, false).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"two");
        open_partial(dir.path(), &p, 0)
            .unwrap()
            .write_all(b"three")
            .unwrap();
        let e = commit(&p, &target, false, false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&target).unwrap(), b"two");
    }

    #[test]
    fn resume_appends_and_partial_len_checks_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = partial_path(dir.path(), "r");
        open_partial(dir.path(), &p, 0)
            .unwrap()
            .write_all(b"abc")
            .unwrap();
        assert_eq!(partial_len(&p, 10), Some(3));
        assert_eq!(partial_len(&p, 2), None);
        open_partial(dir.path(), &p, 3)
            .unwrap()
            .write_all(b"def")
            .unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"abcdef");
    }

    #[test]
    fn sweep_removes_only_old_partials() {
        let dir = tempfile::tempdir().unwrap();
        let p = partial_path(dir.path(), "old");
        open_partial(dir.path(), &p, 0).unwrap();
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
    fn disk_free_reports_something() {
        assert!(disk_free(Path::new("/")).unwrap() > 0);
    }
}
