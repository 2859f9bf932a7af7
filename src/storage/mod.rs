//! Where uploaded bytes live, behind one trait: the session speaks the
//! protocol and decides policy (names, quotas, locks, replies); a [`Store`]
//! only keeps bytes. Two stores exist: [`disk::DiskStore`], a folder on the
//! local disk, and [`s3::S3Store`], a bucket of an S3-compatible object
//! store shared by several servers.
//!
//! Every path reaches a store as a [`Place`], already checked by
//! [`crate::wire::names`]: no component is empty, `.`, `..`, or holds `/`.

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::wire::message::Entry;

pub(crate) mod disk;
pub(crate) mod s3;

pub(crate) use disk::handle::Modes;

/// A folder in a store: the home's path from the store's root, then the
/// folder inside the home.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    /// The home's path from the root (empty: the root is the home).
    pub(crate) home: &'a [String],
    /// The folder's path from the home.
    pub(crate) folder: &'a [String],
}

impl<'a> Place<'a> {
    /// The folder `folder` of the home `home`.
    pub(crate) fn new(home: &'a [String], folder: &'a [String]) -> Place<'a> {
        Place { home, folder }
    }

    /// Every component from the root down to the folder.
    pub(crate) fn components(&self) -> impl Iterator<Item = &'a str> {
        self.home.iter().chain(self.folder).map(String::as_str)
    }

    /// The path of `name` in this folder from the store's root, with `/`
    /// between components: what names an upload across connections (and,
    /// for an object store, across servers).
    pub(crate) fn key(&self, name: &str) -> String {
        let mut key = String::new();
        for part in self.components().chain([name]) {
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(part);
        }
        key
    }
}

/// Why a folder path could not be used. Each variant carries the folder
/// as the user wrote it, relative to the home.
#[derive(Debug)]
pub(crate) enum FolderError {
    /// A step is missing.
    Missing(String),
    /// A step is a symbolic link, which is never followed.
    Link(String),
    /// A step is a file or something else that is not a folder.
    NotFolder(String),
    /// The file system failed while checking a step.
    Io(String, io::Error),
}

/// Whether an I/O error means the disk or the quota is full.
pub(crate) fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// What a home holds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Bytes of its files, partial uploads included.
    pub(crate) bytes: u64,
    /// Its files and folders, partial uploads included; the folders that
    /// hold partial uploads are the server's, and not counted.
    pub(crate) entries: u64,
}

/// Why a store refused or failed. The session turns these into replies.
#[derive(Debug)]
pub(crate) enum StoreError {
    /// The folder cannot be used.
    Folder(FolderError),
    /// The file cannot be opened: missing, a link, or not a regular file.
    File(io::Error),
    /// The name holds something that is not a regular file.
    NotAFile,
    /// Something of that name is there already.
    Exists,
    /// The folder to remove is not empty.
    NotEmpty,
    /// The bytes that arrived do not have the digest the client sent; the
    /// partial data was discarded.
    DigestMismatch,
    /// Another upload of that name is running (through another server).
    Busy,
    /// The store takes no more uploads right now (memory, say).
    Overloaded,
    /// The store ran out of room while writing.
    NoSpace,
    /// The store failed while doing `.0`.
    Failed(&'static str, io::Error),
    /// The path names a key longer than the store takes: `bytes` where
    /// at most `max` fit (S3 keys hold 1,024 bytes).
    KeyTooLong {
        /// The longest key the path would need.
        bytes: usize,
        /// The most the store takes for it.
        max: usize,
    },
    /// The file is larger than the store takes.
    TooLarge {
        /// The largest file the store takes.
        max: u64,
        /// What sets that bound.
        why: &'static str,
    },
    /// The store cannot do this; `.0` says what to do instead.
    Unsupported(&'static str),
    /// A tree was removed only in part: `left` (a folder's path from the
    /// home) could not go, for the reason `why`.
    Left {
        /// Files and folders that went.
        removed: u64,
        /// The first folder that could not go.
        left: String,
        /// Why it stayed.
        why: Leftover,
    },
}

/// Why a folder stayed when the tree it is in was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leftover {
    /// An upload into it is running.
    Upload,
    /// It is deeper than a removal goes (only a local user can make such
    /// a tree; the protocol's limits cannot).
    TooDeep,
    /// It was not empty once emptied: something came meanwhile.
    Added,
}

impl StoreError {
    /// Wraps an I/O error as a failure while doing `what`.
    pub(crate) fn failed(what: &'static str) -> impl FnOnce(io::Error) -> StoreError {
        move |e| StoreError::Failed(what, e)
    }
}

/// What a store's methods return.
pub(crate) type StoreResult<T> = Result<T, StoreError>;

/// What an upload asks of the store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UploadPlan {
    /// The file's whole size.
    pub(crate) filesize: u64,
    /// Keep what an earlier attempt stored, and go on from there.
    pub(crate) resume: bool,
    /// Compute the file's BLAKE3 (always done when the client sends one).
    pub(crate) hash: bool,
    /// Whether the upload may replace a file of that name.
    pub(crate) overwrite: bool,
    /// The modification time to give the stored file (seconds since the
    /// epoch); the time of the commit when `None`.
    pub(crate) mtime: Option<u64>,
    /// Permission bits (`0o777` at most) to give the stored file; the
    /// store's default when `None`.
    pub(crate) mode: Option<u32>,
}

/// An upload in progress. Dropping it without [`Upload::finish`] keeps
/// what was written for a later resume; an upload that wrote nothing at
/// all (a client that asked for `ready` and left) leaves nothing behind.
pub(crate) trait Upload: Send {
    /// Where the body starts: the bytes kept from an earlier attempt.
    fn offset(&self) -> u64;
    /// Bytes of this upload that [`Store::usage`] counts already.
    fn counted(&self) -> u64;
    /// Stores the next bytes of the body.
    ///
    /// Fails with [`StoreError::NoSpace`] when the store is full, or
    /// another error; either way the upload cannot go on.
    fn write(&mut self, chunk: &[u8]) -> StoreResult<()>;
    /// Stores the next bytes of the body, `chunk`, which `from` holds at
    /// `at` (a delta upload's unchanged range): a store that can copies
    /// them from there (on disk `copy_file_range`, a reflink on XFS and
    /// btrfs; in an object store, a part copied on the store's side),
    /// else writes them. The digest is of `chunk`.
    ///
    /// Fails as [`Upload::write`] does.
    fn copy(&mut self, from: &CopyOrigin, at: u64, chunk: &[u8]) -> StoreResult<()> {
        let _ = (from, at);
        self.write(chunk)
    }
    /// Checks the digest when `expected` is given, then makes the file
    /// visible under its name at once, whole. Returns the file's BLAKE3 if
    /// it was computed.
    ///
    /// Fails with [`StoreError::DigestMismatch`] (the data is discarded),
    /// [`StoreError::Exists`] when a file of that name appeared and may
    /// not be replaced, or a store failure.
    fn finish(self: Box<Self>, expected: Option<blake3::Hash>)
        -> StoreResult<Option<blake3::Hash>>;
    /// Throws away what this upload stored.
    fn discard(self: Box<Self>);
    /// The bytes stored so far, for a check before the commit; an error
    /// for a store that keeps no local file.
    fn contents(&self) -> std::io::Result<std::fs::File> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this store keeps no local copy of an upload",
        ))
    }
    /// Checks the digest as [`Upload::finish`] does and readies the file
    /// for its name, leaving out the flushes a durable store makes: for a
    /// group of uploads committed together, whose data one
    /// [`Store::flush`] writes out before each [`Staged::commit`], and a
    /// second flush their names after. A store with nothing to flush
    /// commits at once.
    ///
    /// Fails as [`Upload::finish`] does.
    fn stage(self: Box<Self>, expected: Option<blake3::Hash>) -> StoreResult<Stage> {
        self.finish(expected).map(Stage::Done)
    }
}

/// Where [`Upload::stage`] left an upload.
pub(crate) enum Stage {
    /// Committed already, with its BLAKE3 if it was computed.
    Done(Option<blake3::Hash>),
    /// Waiting for its group's flush, then its commit.
    Waiting(Box<dyn Staged>),
}

/// An upload whose data is checked and ready, waiting to take its name.
pub(crate) trait Staged: Send {
    /// Makes the file visible under its name, whole, as [`Upload::finish`]
    /// does; returns its BLAKE3 if it was computed.
    ///
    /// Fails with [`StoreError::Exists`] when a file of that name appeared
    /// and may not be replaced, or a store failure.
    fn commit(self: Box<Self>) -> StoreResult<Option<blake3::Hash>>;
}

/// A stored file, opened for reading.
pub(crate) trait StoredFile: Send {
    /// Its size in bytes.
    fn size(&self) -> u64;
    /// When it was last written, in seconds since the epoch.
    fn mtime(&self) -> u64;
    /// Its BLAKE3, when the store recorded it as it was stored (then a
    /// download need not hash what it sends).
    fn digest(&self) -> Option<blake3::Hash> {
        None
    }
    /// Its permission bits, when the store keeps them.
    fn mode(&self) -> Option<u32> {
        None
    }
    /// Where a delta upload may copy this file's bytes from, when the
    /// store can copy without sending them through this server.
    fn copy_origin(&self) -> Option<CopyOrigin> {
        None
    }
    /// Its bytes from `offset` to the end.
    fn read_from(&mut self, offset: u64) -> io::Result<Box<dyn Read + Send + '_>>;
    /// Its `len` bytes from `offset` on (a delta upload's unchanged range).
    fn read_range(&mut self, offset: u64, len: u64) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(self.read_from(offset)?.take(len)))
    }
    /// Its bytes from `offset` to the end, through a reader that owns the
    /// file: a download's body, which outlives the request that opened it.
    fn into_reader(self: Box<Self>, offset: u64) -> io::Result<Box<dyn Read + Send>>;
}

/// A stored file as an upload copies from it (see [`Upload::copy`]).
#[derive(Debug)]
pub(crate) enum CopyOrigin {
    /// A file on the local disk, open.
    File(std::fs::File),
    /// An object, as long as it is still the version tagged `etag`.
    Object {
        /// Its key in the bucket.
        key: String,
        /// Its entity tag when it was opened.
        etag: String,
    },
}

/// A file's delta signature (see [`crate::wire::delta`]), as a store
/// keeps it: its entries are read as they are sent, never held whole.
pub(crate) struct Signature {
    /// The file's size.
    pub(crate) size: u64,
    /// How many chunks.
    pub(crate) chunks: u64,
    /// The whole file's BLAKE3.
    pub(crate) blake3: blake3::Hash,
    /// When the file was last written, seconds since the epoch.
    pub(crate) mtime: u64,
    /// The entries, `chunks` of them, each
    /// [`crate::wire::delta::signature::ENTRY_LEN`] bytes.
    pub(crate) entries: Box<dyn Read + Send>,
}

/// What a listing holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ListHow {
    /// Everything below the folder too, depth first, a folder before what
    /// it holds, each entry named by its path from the listed folder.
    pub(crate) recursive: bool,
    /// Each file's BLAKE3, from what the store kept where it can (computed
    /// and kept when it cannot).
    pub(crate) digests: bool,
}

/// A folder's entries, read a bounded part at a time: memory does not grow
/// with the folder. No order is promised: a local folder comes in the
/// order the file system returns, an object store in key order.
/// It owns what it reads from, so that a listing's reply can outlive the
/// request that began it.
pub(crate) type Entries = Box<dyn Iterator<Item = StoreResult<Entry>> + Send>;

/// Grants the partial upload with this key to the sweeper, for as long as
/// the returned guard lives; `None` while a connection runs it.
pub(crate) type Claim<'a> = &'a dyn Fn(&str) -> Option<Box<dyn Send>>;

/// Where the bytes live. Every method may be called from many threads.
pub(crate) trait Store: Send + Sync + fmt::Debug {
    /// Says where the files are, for the log.
    fn describe(&self) -> String;
    /// Writes out what staged uploads wrote (their data, or after their
    /// commits their names), for a group commit; a store that flushes
    /// nothing itself does nothing.
    ///
    /// Fails when the flush does: nothing of the group may be confirmed.
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    /// Makes sure `home` exists before the first command of a session.
    fn open_home(&self, home: &[String]) -> StoreResult<()>;
    /// Checks that a folder exists and may be used.
    fn check_folder(&self, at: Place) -> StoreResult<()>;
    /// Files and folders in a folder (and below it, as `how` says), read
    /// from the store as they are taken, in the store's order (see
    /// [`Entries`]).
    ///
    /// Fails at once when the folder cannot be listed; a failure later on
    /// comes as an item.
    fn list(&self, at: Place, how: ListHow) -> StoreResult<Entries>;
    /// Creates the folder `at` and any missing parents; fails with
    /// [`StoreError::Exists`] when it was there.
    fn make_folder(&self, at: Place) -> StoreResult<()>;
    /// The size of the file `name`, `None` when there is nothing of that
    /// name; fails with [`StoreError::NotAFile`] when a folder (or anything
    /// but a regular file) holds it.
    fn file_len(&self, at: Place, name: &str) -> StoreResult<Option<u64>>;
    /// Removes a file or an empty folder.
    fn remove(&self, at: Place, name: &str) -> StoreResult<()>;
    /// Removes the folder `name` and everything below it, partial uploads
    /// included once `claim` grants them (it refuses those a connection
    /// runs); never follows a link. Returns how many files and folders
    /// went, `name` included.
    ///
    /// Fails with [`StoreError::Left`] when something could not go.
    fn remove_tree(&self, at: Place, name: &str, claim: Claim) -> StoreResult<u64>;
    /// Renames the file or folder `from` in `from_at` to `to` in `to_at`.
    ///
    /// Fails with [`StoreError::Exists`] when something is at `to`, and
    /// [`StoreError::File`] when nothing is at `from` (or a link is).
    fn rename(&self, from_at: Place, from: &str, to_at: Place, to: &str) -> StoreResult<()>;
    /// Removes the partial data of an upload of `name` that no connection
    /// runs (the caller holds its lock); returns whether there was any.
    fn remove_partial(&self, at: Place, name: &str) -> StoreResult<bool>;
    /// How many bytes of an upload of `name` (of `filesize` bytes) are
    /// stored already and would be kept by a resume; changes nothing.
    fn kept(&self, at: Place, name: &str, filesize: u64) -> StoreResult<u64>;
    /// Starts an upload of `name`, or resumes the stored part of one.
    fn begin_upload(&self, at: Place, name: &str, plan: UploadPlan)
        -> StoreResult<Box<dyn Upload>>;
    /// The delta signature of the file `name`: the one kept if it still
    /// fits the file, else cut now (and kept).
    ///
    /// Fails as [`Store::open_file`] does, or with
    /// [`StoreError::Unsupported`] on a store that keeps none: the client
    /// then sends or fetches the whole file.
    fn signature(&self, _at: Place, _name: &str) -> StoreResult<Signature> {
        Err(StoreError::Unsupported(
            "this server's store keeps no signatures, so a changed file is sent whole",
        ))
    }
    /// Opens the file `name` for reading.
    fn open_file(&self, at: Place, name: &str) -> StoreResult<Box<dyn StoredFile>>;
    /// What is stored under `home`: bytes, and files and folders, partial
    /// uploads included.
    fn usage(&self, home: &[String]) -> StoreResult<Usage>;
    /// The homes whose usage the store keeps counted in memory (see
    /// [`Store::recount`]), by their components from the root.
    fn counted_homes(&self) -> Vec<Vec<String>> {
        Vec::new()
    }
    /// Measures `home` with the store's own walk and sets what the store
    /// keeps counted for it to that; returns what it had counted (`None`
    /// when it kept nothing) and what was measured. A store that keeps no
    /// count answers `Ok(None)`.
    ///
    /// Fails when the measure fails; the count is then left as it was.
    fn recount(&self, _home: &[String]) -> StoreResult<Option<(Option<Usage>, Usage)>> {
        Ok(None)
    }
    /// Bytes the store can still take below `at`, if it is bounded.
    fn free_space(&self, at: Place) -> StoreResult<Option<u64>>;
    /// Removes partial uploads untouched for `max_age` whose key `claim`
    /// grants (it refuses the ones a connection is running); returns how
    /// many went.
    fn sweep(&self, max_age: Duration, claim: Claim) -> usize;
}

/// Opens the store `root` names: `s3://BUCKET[/PREFIX]` for an object
/// store (configured from the standard `AWS_*` variables), else a folder.
///
/// A folder's new files and folders get `modes`; an object store has none.
/// An object store's uploads hold at most `upload_memory` bytes of buffers
/// together; a folder's hold none.
///
/// Fails when the store cannot be reached or the folder created.
pub(crate) fn open(
    root: &str,
    durable: bool,
    modes: Modes,
    upload_memory: u64,
) -> crate::error::Result<Arc<dyn Store>> {
    match root.strip_prefix("s3://") {
        Some(rest) => Ok(Arc::new(s3::S3Store::from_env(rest, upload_memory)?)),
        None => Ok(Arc::new(disk::DiskStore::open(
            Path::new(root),
            durable,
            modes,
        )?)),
    }
}
