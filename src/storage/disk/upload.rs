//! An upload into a partial file of the disk store, with the home's
//! usage book kept up to date as it goes, and a stored file opened for
//! reading.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;

use rustix::fs::{Mode, Timespec, Timestamps, UTIME_OMIT};

use super::digest;
use super::files;
use super::handle::Folder;
use super::signature;
use super::usage::UsageBook;
use crate::io::digest::Digester;
use crate::storage::{
    is_no_space, CopyOrigin, Stage, Staged, StoreError, StoreResult, StoredFile, Upload, UploadPlan,
};

/// An upload into a partial file.
pub(super) struct DiskUpload {
    pub(super) usage: UsageBook,
    pub(super) home: PathBuf,
    /// Where the file lands.
    pub(super) folder: Folder,
    /// Its `.ftp-partial` folder, which holds the partial file.
    pub(super) partials: Folder,
    pub(super) name: String,
    pub(super) file: File,
    pub(super) hasher: Option<Digester>,
    pub(super) offset: u64,
    /// Bytes in the partial file, the kept ones included.
    pub(super) written: u64,
    /// Up to where write-back was started, for `durable`.
    pub(super) flushed: u64,
    pub(super) durable: bool,
    /// What was asked for: whether to overwrite, the time and mode to give.
    pub(super) plan: UploadPlan,
    /// The partial file was made by this upload, so it carries no digest
    /// of an earlier one to drop (most uploads: it saves a system call).
    pub(super) fresh: bool,
    /// Committed or discarded: the partial file is no longer this
    /// upload's to remove.
    pub(super) finished: bool,
}

impl DiskUpload {
    /// Deletes the partial file and answers `e`.
    fn discard_with<T>(self: Box<Self>, e: StoreError) -> StoreResult<T> {
        self.discard();
        Err(e)
    }

    /// Hashes `chunk` and puts it at the end of the partial file: copied
    /// from `from` (the file that holds it, and where) when given, else
    /// written.
    fn store(&mut self, chunk: &[u8], from: Option<(&File, u64)>) -> StoreResult<()> {
        if let Some(h) = self.hasher.as_mut() {
            h.update(chunk);
        }
        let stored = match from {
            Some((source, at)) => copy_range(source, at, &mut self.file, chunk),
            None => self.file.write_all(chunk),
        };
        if let Err(e) = stored {
            // Part of the chunk may be on disk: measure again.
            self.usage.forget(&self.home);
            return Err(match is_no_space(&e) {
                true => StoreError::NoSpace,
                false => StoreError::Failed("writing the file", e),
            });
        }
        self.written += chunk.len() as u64;
        self.usage.add(&self.home, chunk.len() as u64);
        if self.durable && self.written - self.flushed >= files::WRITEBACK_STEP {
            files::start_writeback(&self.file, self.flushed, self.written - self.flushed);
            self.flushed = self.written;
        }
        Ok(())
    }

    /// Deletes the partial file, and notes that it is gone.
    fn remove_partial(&mut self) {
        self.finished = true;
        let len = self.partials.file_len(&self.name);
        // A link in its place was no entry of the quota.
        if self.partials.remove_file(&self.name).is_ok() {
            if let Some(len) = len {
                self.usage.remove(&self.home, len);
                self.usage.deleted(&self.home, 1);
            }
            self.folder.tidy_partials();
        }
    }

    /// Gives the finished file what the client asked for and its digest
    /// for later listings, everything but its name.
    fn ready(&self, digest: Option<blake3::Hash>) -> io::Result<()> {
        self.set_time()?;
        // After the time: it holds for the file's size and time as they
        // are now. Before the mode: a file the client wants read-only
        // takes no attribute once its owner's write bit is gone (unless
        // the server runs as root).
        match digest {
            Some(digest) => digest::keep(&self.file, &digest),
            None if !self.fresh => digest::forget(&self.file),
            None => {}
        }
        self.set_mode()
    }

    /// Readies the file and puts it under its name (see
    /// [`Folder::rename`]); with `durable` its data is flushed first and the
    /// folder after, so the name survives a power cut with the data.
    fn commit(&self, digest: Option<blake3::Hash>) -> io::Result<()> {
        self.ready(digest)?;
        if self.durable {
            self.file.sync_all()?;
        }
        self.rename()?;
        if self.durable {
            self.folder.sync()?;
        }
        Ok(())
    }

    fn rename(&self) -> io::Result<()> {
        let name = &self.name;
        self.partials
            .rename(name, &self.folder, name, self.plan.overwrite)
    }

    /// After the rename: the upload is done, the old file's entry goes.
    fn committed(&mut self, replaced: Option<u64>) {
        self.finished = true;
        // The replaced file's signature no longer holds: cut again when
        // asked for.
        if let Some(len) = signature::forget(&self.folder, &self.name) {
            self.usage.remove(&self.home, len);
        }
        self.folder.tidy_partials();
        if let Some(len) = replaced {
            // The partial took the old file's place.
            self.usage.remove(&self.home, len);
            self.usage.deleted(&self.home, 1);
        }
    }

    /// The size of the file the upload replaces, when the book counts it.
    fn replaced_len(&self) -> Option<u64> {
        match self.usage.tracks(&self.home) {
            true => self.folder.file_len(&self.name),
            false => None,
        }
    }

    /// The digest of what was written, checked against `expected`.
    fn checked_digest(
        &mut self,
        expected: Option<blake3::Hash>,
    ) -> Result<Option<blake3::Hash>, ()> {
        let actual = self.hasher.take().map(Digester::finalize);
        match (expected, actual) {
            // Hash equality is constant-time.
            (Some(expected), Some(actual)) if expected != actual => Err(()),
            _ => Ok(actual),
        }
    }
}

/// A durable upload staged for a group commit: its data waits for the
/// group's flush, its name for [`Staged::commit`].
struct StagedDisk {
    upload: Box<DiskUpload>,
    digest: Option<blake3::Hash>,
}

impl Staged for StagedDisk {
    fn commit(mut self: Box<Self>) -> StoreResult<Option<blake3::Hash>> {
        let replaced = self.upload.replaced_len();
        match self.upload.rename() {
            Ok(()) => {
                self.upload.committed(replaced);
                Ok(self.digest)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.upload.discard_with(StoreError::Exists)
            }
            Err(e) => self
                .upload
                .discard_with(StoreError::Failed("committing the file", e)),
        }
    }
}

impl DiskUpload {
    /// The permission bits the client sent, but never a write bit for the
    /// group or others, nor setuid, setgid or sticky: a file in the
    /// server's name would be someone else's to change. (On a private
    /// server the folders above keep others out whatever the file's read
    /// bits.) The owner's read bit stays, so that the server can serve
    /// the file.
    fn set_mode(&self) -> io::Result<()> {
        if let Some(mode) = self.plan.mode {
            let mode = mode & ALLOWED_BITS | 0o400;
            rustix::fs::fchmod(&self.file, Mode::from_raw_mode(mode))?;
        }
        Ok(())
    }

    /// The modification time the client sent.
    fn set_time(&self) -> io::Result<()> {
        if let Some(secs) = self.plan.mtime {
            let omit = Timespec {
                tv_sec: 0,
                tv_nsec: UTIME_OMIT,
            };
            let times = Timestamps {
                last_access: omit,
                last_modification: Timespec {
                    tv_sec: i64::try_from(secs).unwrap_or(i64::MAX),
                    tv_nsec: 0,
                },
            };
            rustix::fs::futimens(&self.file, &times)?;
        }
        Ok(())
    }
}

impl Upload for DiskUpload {
    fn offset(&self) -> u64 {
        self.offset
    }

    fn contents(&self) -> io::Result<File> {
        self.partials.open_regular(&self.name)
    }

    fn counted(&self) -> u64 {
        self.written
    }

    fn write(&mut self, chunk: &[u8]) -> StoreResult<()> {
        self.store(chunk, None)
    }

    fn copy(&mut self, from: &CopyOrigin, at: u64, chunk: &[u8]) -> StoreResult<()> {
        match from {
            CopyOrigin::File(file) => self.store(chunk, Some((file, at))),
            CopyOrigin::Object { .. } => self.store(chunk, None),
        }
    }

    fn finish(
        mut self: Box<Self>,
        expected: Option<blake3::Hash>,
    ) -> StoreResult<Option<blake3::Hash>> {
        let Ok(actual) = self.checked_digest(expected) else {
            return self.discard_with(StoreError::DigestMismatch);
        };
        let replaced = self.replaced_len();
        match self.commit(actual) {
            Ok(()) => {
                self.committed(replaced);
                Ok(actual)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.discard_with(StoreError::Exists)
            }
            Err(e) => self.discard_with(StoreError::Failed("committing the file", e)),
        }
    }

    /// A durable upload leaves its flushes to the group; any other
    /// commits at once.
    fn stage(mut self: Box<Self>, expected: Option<blake3::Hash>) -> StoreResult<Stage> {
        if !self.durable {
            return self.finish(expected).map(Stage::Done);
        }
        let Ok(digest) = self.checked_digest(expected) else {
            return self.discard_with(StoreError::DigestMismatch);
        };
        if let Err(e) = self.ready(digest) {
            return self.discard_with(StoreError::Failed("committing the file", e));
        }
        Ok(Stage::Waiting(Box::new(StagedDisk {
            upload: self,
            digest,
        })))
    }

    fn discard(mut self: Box<Self>) {
        self.remove_partial();
    }
}

impl Drop for DiskUpload {
    /// An upload that wrote nothing has nothing to resume: its empty
    /// partial file would only hold an entry of the quota.
    fn drop(&mut self) {
        if !self.finished && self.written == 0 {
            self.remove_partial();
        }
    }
}

/// Puts `chunk`, which `source` holds at `at`, at the end of `dest` with
/// `copy_file_range`: a reflink on XFS and btrfs, a copy in the kernel
/// elsewhere. What the kernel does not copy (another file system, a file
/// opened to append for a resume) is written. The bytes were hashed as
/// read; the server never rewrites a stored file in place, so the copy is
/// of the same bytes.
fn copy_range(source: &File, mut at: u64, dest: &mut File, chunk: &[u8]) -> io::Result<()> {
    let mut done = 0;
    while done < chunk.len() {
        match rustix::fs::copy_file_range(source, Some(&mut at), &*dest, None, chunk.len() - done) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if matches!(e, rustix::io::Errno::NOSPC | rustix::io::Errno::DQUOT) => {
                return Err(e.into())
            }
            Err(_) => break,
        }
    }
    dest.write_all(&chunk[done..])
}

/// The permission bits an upload may ask for: the owner's, and reading
/// (and running) for the group and others.
const ALLOWED_BITS: u32 = 0o755;

/// A file on disk, opened for reading.
pub(super) struct DiskFile {
    pub(super) file: File,
    pub(super) len: u64,
    pub(super) mtime: u64,
    pub(super) mode: u32,
    /// The digest kept for it, when it still fits it.
    pub(super) digest: Option<blake3::Hash>,
}

impl StoredFile for DiskFile {
    fn digest(&self) -> Option<blake3::Hash> {
        self.digest
    }

    fn copy_origin(&self) -> Option<CopyOrigin> {
        self.file.try_clone().ok().map(CopyOrigin::File)
    }

    fn size(&self) -> u64 {
        self.len
    }

    fn mtime(&self) -> u64 {
        self.mtime
    }

    fn mode(&self) -> Option<u32> {
        Some(self.mode)
    }

    fn read_from(&mut self, offset: u64) -> io::Result<Box<dyn Read + Send + '_>> {
        self.file.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(&mut self.file))
    }

    fn into_reader(mut self: Box<Self>, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        self.file.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(self.file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::disk::handle::Modes;
    use crate::storage::disk::DiskStore;
    use crate::storage::{Place, Store};
    use crate::wire::names::PARTIAL_DIR;

    #[test]
    fn an_upload_asks_for_no_write_bit_of_others_and_no_special_bit() {
        let given = |asked: u32| asked & ALLOWED_BITS | 0o400;
        assert_eq!(given(0o7777), 0o755);
        assert_eq!(given(0o666), 0o644);
        assert_eq!(given(0o444), 0o444);
        assert_eq!(given(0o070), 0o450);
    }

    #[test]
    fn a_partial_made_again_over_one_with_a_digest_keeps_none_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(dir.path(), false, Modes::PRIVATE).unwrap();
        let home: Vec<String> = Vec::new();
        let at = Place::new(&home, &home);
        let plan = UploadPlan {
            filesize: 6,
            resume: false,
            hash: false,
            overwrite: true,
            mtime: None,
            mode: None,
        };
        // A partial left by an upload that stopped between its digest and
        // its rename, with the digest of other bytes.
        let mut up = store.begin_upload(at, "f", plan).unwrap();
        up.write(b"abcdef").unwrap();
        drop(up);
        let partial = dir.path().join(PARTIAL_DIR).join("f");
        digest::keep(&File::open(&partial).unwrap(), &blake3::hash(b"other"));
        let mut up = store.begin_upload(at, "f", plan).unwrap();
        up.write(b"abcdef").unwrap();
        assert_eq!(up.finish(None).unwrap(), None);
        let stored = store.open_file(at, "f").unwrap();
        assert_eq!((stored.size(), stored.digest()), (6, None));
    }
}
