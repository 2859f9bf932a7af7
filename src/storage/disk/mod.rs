//! The store on the local disk: a folder per home below the root, a
//! partial file per running upload in `<folder>/.ftp-partial/`, and an
//! atomic rename when the upload is complete (see [`files`]).
//!
//! Every operation below a home goes through folder handles
//! ([`handle`]): nothing is opened, removed or renamed by path, so a
//! link planted in the root is never followed.

mod digest;
pub mod files;
pub mod handle;
mod tree;
mod upload;
pub mod usage;
mod walk;

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use rustix::fs::OFlags;

use self::handle::{Folder, Kind, Modes};
use self::tree::Tree;
use self::upload::{DiskFile, DiskUpload};
use self::usage::UsageBook;
use super::{
    Claim, Entries, ListHow, Place, Store, StoreError, StoreResult, StoredFile, Upload, UploadPlan,
    Usage,
};
use crate::error::Error;
use crate::io::digest::Digester;
use crate::io::pump::hash_prefix;
use crate::wire::names::PARTIAL_DIR;

/// How deep the sweeper looks for partial uploads: a home, then folders
/// as deep as a path may go.
const SWEEP_DEPTH: usize = 34;

/// Files in a folder of the local disk.
#[derive(Debug)]
pub struct DiskStore {
    root: PathBuf,
    /// Whether a finished upload waits for its data and its folder entry
    /// to reach the disk.
    durable: bool,
    /// What new files and folders may be read by.
    modes: Modes,
    usage: UsageBook,
}

impl DiskStore {
    /// The store in `root`, created if needed; new files and folders get
    /// `modes` (the root too, when it is created here).
    ///
    /// Fails when the root cannot be created.
    pub fn open(root: &Path, durable: bool, modes: Modes) -> crate::Result<DiskStore> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(modes.dir)
            .create(root)
            .map_err(|e| Error::io(format!("creating the upload root {}", root.display()), e))?;
        Ok(DiskStore {
            root: root.to_path_buf(),
            durable,
            modes,
            usage: UsageBook::default(),
        })
    }

    fn home(&self, home: &[String]) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(home);
        path
    }

    fn folder(&self, at: Place) -> StoreResult<Folder> {
        Folder::walk(&self.home(at.home), at.folder).map_err(StoreError::Folder)
    }
}

impl Store for DiskStore {
    fn describe(&self) -> String {
        format!("folder {}", self.root.display())
    }

    /// Creates the home folder on first login; refuses one that is a link.
    fn open_home(&self, home: &[String]) -> StoreResult<()> {
        let failed = |e| StoreError::Failed("creating the home folder", e);
        let Some((last, parents)) = home.split_last() else {
            return Ok(());
        };
        let parent = Folder::walk(&self.root, parents).map_err(StoreError::Folder)?;
        // Looked at first: it is there on every login but the first.
        let found = match parent.kind(last) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match parent.make_dir(last, self.modes) {
                    Ok(()) => return Ok(()),
                    // Made by another login in between.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => parent.kind(last),
                    Err(e) => return Err(failed(e)),
                }
            }
            other => other,
        };
        match found {
            Ok(Kind::Dir) => Ok(()),
            Ok(_) => Err(failed(io::Error::new(
                io::ErrorKind::InvalidData,
                "the home folder is not a folder (or is a symbolic link)",
            ))),
            Err(e) => Err(failed(e)),
        }
    }

    fn check_folder(&self, at: Place) -> StoreResult<()> {
        self.folder(at).map(drop)
    }

    fn list(&self, at: Place, how: ListHow) -> StoreResult<Entries> {
        let tree = Tree::new(self.folder(at)?, how).map_err(StoreError::failed("listing"))?;
        Ok(Box::new(tree))
    }

    /// Refuses to step through anything that is not a real folder.
    fn make_folder(&self, at: Place) -> StoreResult<()> {
        let Some((last, parents)) = at.folder.split_last() else {
            return Err(StoreError::Exists);
        };
        let home = self.home(at.home);
        let mut dir = self.folder(Place::new(at.home, &[]))?;
        for (i, part) in parents.iter().enumerate() {
            match dir.make_dir(part, self.modes) {
                Ok(()) => self.usage.created(&home, 1),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(StoreError::Failed("creating a folder", e)),
            }
            dir = self.folder(Place::new(at.home, &parents[..=i]))?;
        }
        match dir.make_dir(last, self.modes) {
            Ok(()) => {
                self.usage.created(&home, 1);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(StoreError::Exists),
            Err(e) => Err(StoreError::Failed("creating a folder", e)),
        }
    }

    fn file_len(&self, at: Place, name: &str) -> StoreResult<Option<u64>> {
        match self.folder(at)?.kind(name) {
            Ok(Kind::File(len)) => Ok(Some(len)),
            Ok(_) => Err(StoreError::NotAFile),
            Err(_) => Ok(None),
        }
    }

    fn remove(&self, at: Place, name: &str) -> StoreResult<()> {
        let dir = self.folder(at)?;
        let kind = dir.kind(name).map_err(StoreError::File)?;
        let result = match kind {
            Kind::Dir => {
                // An empty partial-upload folder does not count as content.
                if let Ok(inner) = dir.child(name) {
                    let _ = inner.remove_dir(PARTIAL_DIR);
                }
                dir.remove_dir(name)
            }
            _ => dir.remove_file(name),
        };
        match result {
            Ok(()) => {
                let home = self.home(at.home);
                if let Kind::File(len) = kind {
                    self.usage.remove(&home, len);
                }
                // Links are no entries of the quota.
                if matches!(kind, Kind::File(_) | Kind::Dir) {
                    self.usage.deleted(&home, 1);
                }
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Err(StoreError::NotEmpty),
            Err(e) => Err(StoreError::Failed("removing", e)),
        }
    }

    /// Through folder handles, never following a link (see [`tree`]).
    fn remove_tree(&self, at: Place, name: &str, claim: Claim) -> StoreResult<u64> {
        self.remove_folder(at, name, claim)
    }

    fn rename(&self, from_at: Place, from: &str, to_at: Place, to: &str) -> StoreResult<()> {
        self.move_entry(from_at, from, to_at, to)
    }

    /// A partial folder that is a link holds nothing of ours: nothing is
    /// removed through it.
    fn remove_partial(&self, at: Place, name: &str) -> StoreResult<bool> {
        let folder = self.folder(at)?;
        let Ok(partials) = folder.partials(false, self.modes) else {
            return Ok(false);
        };
        let len = partials.file_len(name);
        match partials.remove_file(name) {
            Ok(()) => {
                folder.tidy_partials();
                // A link in its place was no entry of the quota.
                if let Some(len) = len {
                    let home = self.home(at.home);
                    self.usage.remove(&home, len);
                    self.usage.deleted(&home, 1);
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::Failed("removing the partial upload", e)),
        }
    }

    fn kept(&self, at: Place, name: &str, filesize: u64) -> StoreResult<u64> {
        let kept = match self.folder(at)?.partials(false, self.modes) {
            Ok(partials) => partials.file_len(name).filter(|&len| len <= filesize),
            Err(_) => None,
        };
        Ok(kept.unwrap_or(0))
    }

    fn begin_upload(
        &self,
        at: Place,
        name: &str,
        plan: UploadPlan,
    ) -> StoreResult<Box<dyn Upload>> {
        let folder = self.folder(at)?;
        let home = self.home(at.home);
        let partials = folder
            .partials(true, self.modes)
            .map_err(StoreError::failed("creating the upload file"))?;
        let kept = partials.file_len(name);
        // Longer data cannot belong to this file: it is started again.
        let offset = match plan.resume {
            true => kept.filter(|&len| len <= plan.filesize).unwrap_or(0),
            false => 0,
        };
        let flags = match offset {
            0 => OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC,
            _ => OFlags::WRONLY | OFlags::APPEND,
        };
        let opened = match partials.open_file(name, flags, self.modes) {
            // The partial folder went with the last partial of another
            // upload (see `Folder::tidy_partials`) between the two steps.
            Err(e) if e.kind() == io::ErrorKind::NotFound && offset == 0 => folder
                .partials(true, self.modes)
                .and_then(|again| Ok((again.open_file(name, flags, self.modes)?, again))),
            other => other.map(|file| (file, partials)),
        };
        let (file, partials) = opened.map_err(StoreError::failed("creating the upload file"))?;
        // Starting from 0 empties a partial that was there, or makes one.
        if self.usage.tracks(&home) {
            match (kept, offset) {
                (None, _) => self.usage.created(&home, 1),
                (Some(len), 0) => self.usage.remove(&home, len),
                _ => {}
            }
        }
        let mut hasher = plan.hash.then(blake3::Hasher::new);
        if let (Some(h), true) = (hasher.as_mut(), offset > 0) {
            partials
                .open_file(name, OFlags::RDONLY, self.modes)
                .map_err(|e| Error::io("reading partial data", e))
                .and_then(|mut f| hash_prefix(&mut f, offset, h))
                .map_err(|e| StoreError::Failed("reading partial data", e.into()))?;
        }
        let hasher = hasher.map(|h| Digester::new(h, plan.filesize.saturating_sub(offset)));
        Ok(Box::new(DiskUpload {
            usage: self.usage.clone(),
            home,
            folder,
            partials,
            name: name.to_string(),
            file,
            hasher,
            offset,
            written: offset,
            flushed: offset,
            durable: self.durable,
            plan,
            // The name lock keeps other uploads off this partial between
            // the look and the open: none there means this open made it.
            fresh: kept.is_none(),
            finished: false,
        }))
    }

    fn open_file(&self, at: Place, name: &str) -> StoreResult<Box<dyn StoredFile>> {
        let file = self
            .folder(at)?
            .open_regular(name)
            .map_err(StoreError::File)?;
        let meta = file.metadata().map_err(StoreError::failed("stat"))?;
        Ok(Box::new(DiskFile {
            digest: digest::kept_now(&file),
            len: meta.len(),
            mtime: files::unix_secs(meta.modified().unwrap_or(UNIX_EPOCH)),
            mode: meta.permissions().mode() & 0o777,
            file,
        }))
    }

    fn usage(&self, home: &[String]) -> StoreResult<Usage> {
        self.usage
            .used(&self.home(home))
            .map_err(StoreError::failed("measuring usage"))
    }

    fn counted_homes(&self) -> Vec<Vec<String>> {
        let below_root = |home: PathBuf| {
            let rel = home.strip_prefix(&self.root).ok()?;
            rel.iter().map(|c| c.to_str().map(String::from)).collect()
        };
        self.usage
            .homes()
            .into_iter()
            .filter_map(below_root)
            .collect()
    }

    fn recount(&self, home: &[String]) -> StoreResult<Option<(Option<Usage>, Usage)>> {
        let path = self.home(home);
        let measured = usage::measure(&path).map_err(StoreError::failed("measuring usage"))?;
        Ok(Some((self.usage.set(&path, measured), measured)))
    }

    fn free_space(&self, at: Place) -> StoreResult<Option<u64>> {
        self.folder(at)?
            .free_space()
            .map(Some)
            .map_err(StoreError::failed("statvfs"))
    }

    fn sweep(&self, max_age: Duration, claim: Claim) -> usize {
        let removed = files::sweep_partials(&self.root, max_age, SWEEP_DEPTH, |partial| {
            files::partial_key(&self.root, partial).and_then(|key| claim(&key))
        });
        if removed > 0 {
            // Partials went from homes the book keeps: measure again.
            self.usage.forget_all();
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_upload_lands_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), false, Modes::PRIVATE).unwrap();
        let home = names(&[]);
        let at = Place::new(&home, &home);
        let plan = UploadPlan {
            filesize: 6,
            resume: true,
            hash: true,
            overwrite: true,
            mtime: None,
            mode: None,
        };
        let mut up = store.begin_upload(at, "f", plan).unwrap();
        up.write(b"abc").unwrap();
        drop(up);
        assert_eq!(
            store.file_len(at, "f").unwrap(),
            None,
            "invisible until done"
        );
        let mut up = store.begin_upload(at, "f", plan).unwrap();
        assert_eq!(up.offset(), 3);
        up.write(b"xyz").unwrap();
        let wrong = blake3::hash(b"abcxyZ");
        assert!(matches!(
            up.finish(Some(wrong)),
            Err(StoreError::DigestMismatch)
        ));
        assert_eq!(store.file_len(at, "f").unwrap(), None);
        let mut up = store.begin_upload(at, "f", plan).unwrap();
        assert_eq!(up.offset(), 0, "a mismatch discards the partial data");
        up.write(b"abcxyz").unwrap();
        let digest = up.finish(Some(blake3::hash(b"abcxyz"))).unwrap();
        assert_eq!(digest, Some(blake3::hash(b"abcxyz")));
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"abcxyz");
        let mut file = store.open_file(at, "f").unwrap();
        let mut tail = String::new();
        file.read_from(4)
            .unwrap()
            .read_to_string(&mut tail)
            .unwrap();
        assert_eq!((file.size(), tail.as_str()), (6, "yz"));
    }

    #[test]
    fn the_book_counts_entries_as_a_walk_would_through_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), false, Modes::PRIVATE).unwrap();
        let (home, top) = (names(&["alice"]), names(&[]));
        store.open_home(&home).unwrap();
        let at = Place::new(&home, &top);
        let walked = || usage::measure(&dir.path().join("alice")).unwrap();
        let plan = |filesize| UploadPlan {
            filesize,
            resume: true,
            hash: false,
            overwrite: true,
            mtime: None,
            mode: None,
        };
        assert_eq!(store.usage(&home).unwrap(), walked(), "measured first");
        store
            .make_folder(Place::new(&home, &names(&["a", "b"])))
            .unwrap();
        let mut up = store.begin_upload(at, "f", plan(4)).unwrap();
        up.write(b"ab").unwrap();
        drop(up);
        assert_eq!(store.usage(&home).unwrap(), walked(), "with a partial");
        let mut up = store.begin_upload(at, "f", plan(4)).unwrap();
        up.write(b"cd").unwrap();
        up.finish(None).unwrap();
        let mut up = store.begin_upload(at, "f", plan(1)).unwrap();
        up.write(b"e").unwrap();
        up.finish(None).unwrap();
        assert_eq!(store.usage(&home).unwrap(), walked(), "after a replacement");
        // An upload that wrote nothing leaves nothing.
        drop(store.begin_upload(at, "probe", plan(9)).unwrap());
        store.begin_upload(at, "gone", plan(9)).unwrap().discard();
        store
            .remove(Place::new(&home, &names(&["a"])), "b")
            .unwrap();
        assert_eq!(store.usage(&home).unwrap(), walked(), "after removals");
        let u = store.usage(&home).unwrap();
        assert_eq!((u.bytes, u.entries), (1, 2), "the file f and the folder a");
    }

    #[test]
    fn rm_removes_nothing_through_a_planted_partial_folder() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), false, Modes::PRIVATE).unwrap();
        fs::write(dir.path().join("a.txt"), b"mine").unwrap();
        fs::write(outside.path().join("a.txt"), b"not the server's").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join(PARTIAL_DIR)).unwrap();
        let home = names(&[]);
        let at = Place::new(&home, &home);
        store.remove(at, "a.txt").unwrap();
        assert!(!store.remove_partial(at, "a.txt").unwrap());
        assert_eq!(store.kept(at, "a.txt", 100).unwrap(), 0);
        assert!(!dir.path().join("a.txt").exists());
        assert_eq!(
            fs::read(outside.path().join("a.txt")).unwrap(),
            b"not the server's"
        );
    }

    #[test]
    fn a_link_planted_as_the_partial_folder_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), false, Modes::PRIVATE).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join(PARTIAL_DIR)).unwrap();
        let home = names(&[]);
        let at = Place::new(&home, &home);
        let plan = UploadPlan {
            filesize: 3,
            resume: false,
            hash: false,
            overwrite: true,
            mtime: None,
            mode: None,
        };
        let refused = store.begin_upload(at, "f", plan).err().unwrap();
        let refused_link =
            |e: &io::Error| matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR));
        assert!(matches!(refused, StoreError::Failed(_, ref e) if refused_link(e)));
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        // A file reached through a linked folder is not served either.
        fs::write(outside.path().join("secret"), b"s").unwrap();
        let partial_home = names(&[PARTIAL_DIR]);
        assert!(store
            .open_file(Place::new(&home, &partial_home), "secret")
            .is_err());
    }
}
