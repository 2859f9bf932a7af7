//! The store on the local disk: a folder per home below the root, a
//! partial file per running upload in `<folder>/.ftp-partial/`, and an
//! atomic rename when the upload is complete (see [`files`]).
//!
//! Every operation below a home goes through folder handles
//! ([`handle`]): nothing is opened, removed or renamed by path, so a
//! link planted in the root is never followed.

mod digest;
pub(crate) mod files;
pub(crate) mod handle;
mod signature;
mod tree;
mod upload;
pub(crate) mod usage;
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
    Claim, Entries, ListHow, Place, Signature, Store, StoreError, StoreResult, StoredFile, Upload,
    UploadPlan, Usage,
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
pub(crate) struct DiskStore {
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
    pub(crate) fn open(
        root: &Path,
        durable: bool,
        modes: Modes,
    ) -> crate::error::Result<DiskStore> {
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

impl DiskStore {
    /// Forgets the kept signature of `name` in `dir` (of `at`), which went
    /// or moved, and its bytes.
    fn forget_signature(&self, dir: &Folder, at: Place, name: &str) {
        if let Some(len) = signature::forget(dir, name) {
            self.usage.remove(&self.home(at.home), len);
        }
    }

    /// The digest of an upload, when it wants one, already over the bytes
    /// a resume keeps.
    fn hasher_for(
        &self,
        partials: &Folder,
        name: &str,
        plan: &UploadPlan,
        offset: u64,
    ) -> StoreResult<Option<Digester>> {
        let mut hasher = plan.hash.then(blake3::Hasher::new);
        if let (Some(h), true) = (hasher.as_mut(), offset > 0) {
            partials
                .open_file(name, OFlags::RDONLY, self.modes)
                .map_err(|e| Error::io("reading partial data", e))
                .and_then(|mut f| hash_prefix(&mut f, offset, h))
                .map_err(|e| StoreError::Failed("reading partial data", e.into()))?;
        }
        Ok(hasher.map(|h| Digester::new(h, plan.filesize.saturating_sub(offset))))
    }
}

impl Store for DiskStore {
    fn describe(&self) -> String {
        format!("folder {}", self.root.display())
    }

    /// One `syncfs` of the root's file system: a group's data (or names)
    /// in one journal commit, where a flush per file costs one each.
    fn flush(&self) -> io::Result<()> {
        match self.durable {
            true => Ok(rustix::fs::syncfs(std::fs::File::open(&self.root)?)?),
            false => Ok(()),
        }
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
                // An empty partial-upload folder does not count as content,
                // nor do the signatures of files no longer there.
                if let Ok(inner) = dir.child(name) {
                    let gone = signature::forget_all(&inner);
                    self.usage.remove(&self.home(at.home), gone);
                    let _ = inner.remove_dir(PARTIAL_DIR);
                }
                dir.remove_dir(name)
            }
            _ => dir.remove_file(name),
        };
        if result.is_ok() && matches!(kind, Kind::File(_)) {
            self.forget_signature(&dir, at, name);
        }
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
        let hasher = self.hasher_for(&partials, name, &plan, offset)?;
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

    fn signature(&self, at: Place, name: &str) -> StoreResult<Signature> {
        let folder = self.folder(at)?;
        let (signature, change) =
            signature::signature_of(&folder, name, self.modes).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound | io::ErrorKind::InvalidInput => StoreError::File(e),
                _ if e.raw_os_error() == Some(libc::ELOOP) => StoreError::File(e),
                _ => StoreError::Failed("cutting the file's signature", e),
            })?;
        let home = self.home(at.home);
        match change {
            n if n > 0 => self.usage.add(&home, n.unsigned_abs()),
            n => self.usage.remove(&home, n.unsigned_abs()),
        }
        Ok(signature)
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
mod tests;
