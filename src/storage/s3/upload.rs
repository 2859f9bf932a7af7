//! An upload into the object store.
//!
//! A file smaller than one part is held in memory and stored by one
//! `PutObject` once its digest matched. A larger one becomes a multipart
//! upload whose state lives in the store, in its [`record`](super::record),
//! from which any server can resume it. Parts go to the store from a
//! second thread while the next part arrives, so the network to the store
//! and the one to the client are busy at once.

use std::io;
use std::sync::atomic::Ordering;

use super::budget::Reservation;
use super::parts::{Base, Multipart};
use super::record::{
    claim, part_size, KnownDigest, PartRecord, Target, UploadState, MAX_PARTS, MIN_PART,
};
use super::signature::SignatureCut;
use super::tree::{self, PartHash};
use super::usage::UsageCache;
use crate::client::delta::DELTA_FROM;
use crate::storage::{CopyOrigin, StoreError, StoreResult, Upload, UploadPlan};

/// The memory an upload of `filesize` bytes holds: the whole file when it
/// is smaller than a part, else two parts (one filling, one sending).
pub(crate) fn memory_for(filesize: u64) -> u64 {
    match filesize < MIN_PART {
        true => filesize,
        false => 2 * part_size(filesize),
    }
}

/// The largest file whose upload holds at most `memory` bytes (see
/// [`memory_for`]).
pub(crate) fn largest_within(memory: u64) -> u64 {
    if memory < 2 * MIN_PART {
        return memory.min(MIN_PART - 1);
    }
    // The largest power of two that two parts of fit.
    let part = 1u64 << (63 - (memory / 2).leading_zeros());
    part.saturating_mul(MAX_PARTS)
}

/// An upload in progress.
pub(crate) struct S3Upload {
    /// Held for as long as the upload's buffers are.
    _memory: Reservation,
    /// The usage of its home, with the home's key: measured anew when
    /// the upload ends, as its parts then count there (or its object).
    usage: (UsageCache, String),
    target: Target,
    plan: UploadPlan,
    offset: u64,
    way: Way,
    /// The file's signature, cut as its bytes go by: only when this
    /// upload sees them all (not a resume), and the file is large enough
    /// for a delta.
    cut: Option<SignatureCut>,
}

enum Way {
    /// The whole file in memory, stored by one request when complete.
    Whole {
        bytes: Vec<u8>,
        hasher: blake3::Hasher,
    },
    Multipart(Multipart),
}

/// A store error while doing `what`; a name another server holds is busy.
pub(super) fn upload_error(what: &'static str) -> impl Fn(io::Error) -> StoreError {
    move |e| match e.kind() {
        io::ErrorKind::ResourceBusy => StoreError::Busy,
        _ => StoreError::Failed(what, e),
    }
}

fn failed(e: io::Error) -> StoreError {
    upload_error("storing in the object store")(e)
}

impl S3Upload {
    /// Begins (or, with `plan.resume`, resumes) an upload to `target`.
    ///
    /// Fails when the store fails.
    pub(crate) fn begin(
        target: Target,
        plan: UploadPlan,
        memory: Reservation,
        usage: (UsageCache, String),
    ) -> io::Result<S3Upload> {
        let (offset, way) = match plan.filesize < MIN_PART {
            true => {
                let bytes = Vec::with_capacity(plan.filesize as usize);
                let hasher = blake3::Hasher::new();
                (0, Way::Whole { bytes, hasher })
            }
            false => {
                let mut state = claim(&target, plan)?;
                target.save_state(&mut state)?;
                let offset: u64 = state.parts.iter().map(|p| p.len).sum();
                let parts = Multipart::start(&target, state, plan.filesize)?;
                (offset, Way::Multipart(parts))
            }
        };
        let cut = (offset == 0 && plan.filesize >= DELTA_FROM).then(SignatureCut::new);
        Ok(S3Upload {
            _memory: memory,
            usage,
            target,
            plan,
            offset,
            way,
            cut,
        })
    }
}

impl Drop for S3Upload {
    /// A broken-off upload still records the part in flight, before its
    /// lock goes, so that a resume finds every part stored; then it lets
    /// go of the record, so that any server may resume it at once. One
    /// that stored no part at all has nothing to resume, and leaves no
    /// record (a client that asked for `ready` and left).
    fn drop(&mut self) {
        if let Way::Multipart(m) = &mut self.way {
            if m.join().is_ok() && !m.done {
                let mut state = m.state.lock().clone();
                state.updated = 0;
                if self.target.check_ours(&state).is_ok() {
                    let _ = match state.parts.is_empty() {
                        true => self.target.forget(&state),
                        false => self.target.write_state(&state),
                    };
                }
            }
        }
        let (cache, home) = &self.usage;
        cache.forget(home);
    }
}

impl Upload for S3Upload {
    fn offset(&self) -> u64 {
        self.offset
    }

    fn counted(&self) -> u64 {
        // The store's usage leaves out the parts of a running upload: the
        // server charges them as they arrive, the kept ones included.
        0
    }

    fn write(&mut self, chunk: &[u8]) -> StoreResult<()> {
        self.store(chunk, None)
    }

    /// A range of the old object: copied on the store's side where it
    /// fills a whole part (see [`super::parts`]).
    fn copy(&mut self, from: &CopyOrigin, at: u64, chunk: &[u8]) -> StoreResult<()> {
        match from {
            CopyOrigin::Object { key, etag } => {
                let base = Base {
                    key: key.clone(),
                    etag: etag.clone(),
                };
                self.store(chunk, Some((&base, at)))
            }
            CopyOrigin::File(_) => self.store(chunk, None),
        }
    }

    fn finish(
        mut self: Box<Self>,
        expected: Option<blake3::Hash>,
    ) -> StoreResult<Option<blake3::Hash>> {
        let client = self.target.client.clone();
        let actual = match &mut self.way {
            Way::Whole { hasher, .. } => hasher.finalize(),
            Way::Multipart(m) => {
                let part_size = m.state.lock().part_size;
                m.ship(part_size).and_then(|()| m.join()).map_err(failed)?;
                let copied = m.copied.load(Ordering::Relaxed);
                if copied > 0 {
                    tracing::info!(
                        "{}: the object store copied {copied} of its {} bytes from the old object",
                        self.target.object,
                        self.plan.filesize
                    );
                }
                let state = m.state.lock().clone();
                let hashes: Option<Vec<PartHash>> =
                    state.parts.iter().map(PartRecord::hash).collect();
                let covered: u64 = state.parts.iter().map(|p| p.len).sum();
                match hashes.and_then(|h| tree::root(&h)) {
                    Some(root) if covered == state.filesize => root,
                    _ => return self.discard_with(StoreError::DigestMismatch),
                }
            }
        };
        if expected.is_some_and(|e| e != actual) {
            return self.discard_with(StoreError::DigestMismatch);
        }
        if !self.plan.overwrite {
            match client.head(&self.target.object) {
                Ok(_) => return self.discard_with(StoreError::Exists),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(failed(e)),
            }
        }
        let multipart = match &mut self.way {
            Way::Whole { bytes, .. } => {
                let etag = client.put(&self.target.object, bytes).map_err(failed)?;
                Err(etag)
            }
            Way::Multipart(m) => {
                m.done = true;
                Ok(m.state.lock().clone())
            }
        };
        let etag = match multipart {
            Ok(state) => self.complete(&state, actual)?,
            Err(etag) => etag,
        };
        self.keep_signature(actual, &etag);
        Ok(Some(actual))
    }

    fn discard(mut self: Box<Self>) {
        if let Way::Multipart(m) = &mut self.way {
            m.done = true;
            let _ = m.join();
            let state = m.state.lock().clone();
            let _ = self.target.forget(&state);
        }
    }
}

impl S3Upload {
    fn discard_with<T>(self: Box<Self>, e: StoreError) -> StoreResult<T> {
        self.discard();
        Err(e)
    }

    /// Stores the next bytes, which the old object holds from `from.1`
    /// on when given.
    fn store(&mut self, chunk: &[u8], from: Option<(&Base, u64)>) -> StoreResult<()> {
        if let Some(cut) = &mut self.cut {
            cut.update(chunk);
        }
        match &mut self.way {
            Way::Whole { bytes, hasher } => {
                hasher.update(chunk);
                bytes.extend_from_slice(chunk);
                Ok(())
            }
            Way::Multipart(m) => m.take(chunk, from).map_err(failed),
        }
    }

    /// Keeps the signature cut from the upload beside the object just
    /// stored as `etag`; an upload that cut none (a resume) removes the
    /// one kept for the object it replaced, which no longer fits it.
    /// Failing to keep one only makes the next put of the file whole.
    fn keep_signature(&mut self, digest: blake3::Hash, etag: &str) {
        let (client, key) = (&self.target.client, &self.target.signature);
        let kept = self
            .cut
            .take()
            .and_then(|cut| cut.finish(self.plan.filesize, &digest, etag));
        let _ = match kept {
            Some(bytes) => client.put(key, &bytes).map(drop),
            None if self.plan.filesize >= DELTA_FROM => client.delete(key),
            None => Ok(()),
        };
    }

    /// Checks that the store holds every part as recorded (another server
    /// may have replaced one), then makes the object and records its
    /// digest beside it; returns the object's entity tag.
    fn complete(&self, state: &UploadState, digest: blake3::Hash) -> StoreResult<String> {
        let (client, object) = (&self.target.client, &self.target.object);
        self.target.check_ours(state).map_err(failed)?;
        let stored = client
            .list_parts(object, &state.upload_id)
            .map_err(failed)?;
        let intact = stored.len() == state.parts.len()
            && stored
                .iter()
                .zip(&state.parts)
                .all(|(s, r)| s.number == r.number && s.etag == r.etag && s.size == r.len);
        if !intact {
            let _ = self.target.forget(state);
            return Err(StoreError::DigestMismatch);
        }
        let etags: Vec<String> = state.parts.iter().map(|p| p.etag.clone()).collect();
        let etag = client
            .complete_multipart(object, &state.upload_id, &etags)
            .map_err(failed)?;
        let _ = client.delete(&self.target.record);
        let known = KnownDigest {
            etag,
            blake3: digest.to_hex().to_string(),
        };
        // Without it, a get hashes the object as it serves it.
        if let Ok(bytes) = serde_json::to_vec(&known) {
            let _ = client.put(&self.target.digest, &bytes);
        }
        Ok(known.etag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_file_within_a_memory_bound_fits_it_and_one_byte_more_does_not() {
        for memory in [1000, 3 * MIN_PART, 256 << 20, 1 << 30, (1 << 30) + 5] {
            let largest = largest_within(memory);
            assert!(memory_for(largest) <= memory, "{memory}");
            assert!(memory_for(largest + 1) > memory, "{memory}");
        }
        assert_eq!(largest_within(256 << 20), MAX_PARTS * (128 << 20));
    }

    #[test]
    fn an_upload_holds_its_file_or_two_parts() {
        assert_eq!(memory_for(1000), 1000);
        assert_eq!(memory_for(MIN_PART), 2 * MIN_PART);
        assert_eq!(memory_for(1 << 40), 2 * part_size(1 << 40));
    }
}
