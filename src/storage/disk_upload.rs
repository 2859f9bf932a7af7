//! An upload into the local disk store: a partial file in
//! `<folder>/.ftp-partial/`, renamed into place once complete, with the
//! home's usage book kept up to date as it goes.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;

use super::local;
use super::usage::UsageBook;
use super::{StoreError, StoreResult, Upload};
use crate::io::digest::Digester;

/// An upload into a partial file.
pub(super) struct DiskUpload {
    pub(super) usage: UsageBook,
    pub(super) home: PathBuf,
    pub(super) target: PathBuf,
    pub(super) partial: PathBuf,
    pub(super) file: File,
    pub(super) hasher: Option<Digester>,
    pub(super) offset: u64,
    /// Bytes in the partial file, the kept ones included.
    pub(super) written: u64,
    /// Up to where write-back was started, for `durable`.
    pub(super) flushed: u64,
    pub(super) durable: bool,
    pub(super) overwrite: bool,
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

    /// Deletes the partial file, and notes that it is gone.
    fn remove_partial(&mut self) {
        self.finished = true;
        let len = local::regular_len(&self.partial).unwrap_or(0);
        if fs::remove_file(&self.partial).is_ok() {
            self.usage.remove(&self.home, len);
            self.usage.deleted(&self.home, 1);
        }
    }
}

impl Upload for DiskUpload {
    fn offset(&self) -> u64 {
        self.offset
    }

    fn counted(&self) -> u64 {
        self.written
    }

    fn write(&mut self, chunk: &[u8]) -> StoreResult<()> {
        if let Some(h) = self.hasher.as_mut() {
            h.update(chunk);
        }
        if let Err(e) = self.file.write_all(chunk) {
            // Part of the chunk may be on disk: measure again.
            self.usage.forget(&self.home);
            return Err(match local::is_no_space(&e) {
                true => StoreError::NoSpace(e),
                false => StoreError::Failed("writing the file", e),
            });
        }
        self.written += chunk.len() as u64;
        self.usage.add(&self.home, chunk.len() as u64);
        if self.durable && self.written - self.flushed >= local::WRITEBACK_STEP {
            local::start_writeback(&self.file, self.flushed, self.written - self.flushed);
            self.flushed = self.written;
        }
        Ok(())
    }

    fn finish(
        mut self: Box<Self>,
        expected: Option<blake3::Hash>,
    ) -> StoreResult<Option<blake3::Hash>> {
        let actual = self.hasher.take().map(Digester::finalize);
        if let (Some(expected), Some(actual)) = (expected, actual) {
            // Hash equality is constant-time.
            if expected != actual {
                return self.discard_with(StoreError::DigestMismatch);
            }
        }
        let replaced = match self.usage.tracks(&self.home) {
            true => local::regular_len(&self.target),
            false => None,
        };
        let synced = match self.durable {
            true => self.file.sync_all(),
            false => Ok(()),
        };
        let committed = synced.and_then(|()| {
            local::commit(&self.partial, &self.target, self.overwrite, self.durable)
        });
        match committed {
            Ok(()) => {
                self.finished = true;
                if let Some(len) = replaced {
                    // The partial took the old file's place.
                    self.usage.remove(&self.home, len);
                    self.usage.deleted(&self.home, 1);
                }
                Ok(actual)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.discard_with(StoreError::Exists)
            }
            Err(e) => self.discard_with(StoreError::Failed("committing the file", e)),
        }
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
