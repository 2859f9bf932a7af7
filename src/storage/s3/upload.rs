//! An upload into the object store.
//!
//! A file smaller than one part is held in memory and stored by one
//! `PutObject` once its digest matched. A larger one becomes a multipart
//! upload whose state lives in the store, in its [`record`](super::record),
//! from which any server can resume it. Parts go to the store from a
//! second thread while the next part arrives, so the network to the store
//! and the one to the client are busy at once.

use std::io;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::budget::Reservation;
use super::record::{
    claim, part_size, KnownDigest, PartRecord, Target, UploadState, MAX_PARTS, MIN_PART,
};
use super::tree::{self, PartHash, PartHasher};
use super::usage::UsageCache;
use crate::storage::{StoreError, StoreResult, Upload, UploadPlan};

/// How often a running upload rewrites its record, to show it is alive.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// The record lists new parts at most this often while parts stream in
/// (a request per part would hold the next part back); an upload that is
/// cut off writes its whole record as it lets go, so only a server that
/// dies loses up to this much of what a resume could skip.
const RECORD_EVERY: Duration = Duration::from_secs(1);

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

/// A part on its way to the store.
struct Part {
    number: u16,
    bytes: Vec<u8>,
    hash: PartHash,
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
}

enum Way {
    /// The whole file in memory, stored by one request when complete.
    Whole {
        bytes: Vec<u8>,
        hasher: blake3::Hasher,
    },
    Multipart(Multipart),
}

struct Multipart {
    state: Arc<Mutex<UploadState>>,
    part: Vec<u8>,
    hasher: PartHasher,
    /// Where the part being filled starts.
    part_offset: u64,
    sender: Option<SyncSender<Part>>,
    worker: Option<JoinHandle<io::Result<()>>>,
    /// A stored part's buffer, for the next part.
    spare: Arc<Mutex<Option<Vec<u8>>>>,
    /// Completed or discarded: nothing to let go of.
    done: bool,
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
        if plan.filesize < MIN_PART {
            let way = Way::Whole {
                bytes: Vec::with_capacity(plan.filesize as usize),
                hasher: blake3::Hasher::new(),
            };
            return Ok(S3Upload {
                _memory: memory,
                usage,
                target,
                plan,
                offset: 0,
                way,
            });
        }
        let mut state = claim(&target, plan)?;
        target.save_state(&mut state)?;
        let offset: u64 = state.parts.iter().map(|p| p.len).sum();
        let way = Way::Multipart(Multipart::start(&target, state, plan.filesize)?);
        Ok(S3Upload {
            _memory: memory,
            usage,
            target,
            plan,
            offset,
            way,
        })
    }
}

impl Multipart {
    /// Goes on with the upload `state` after its stored parts, with a
    /// second thread for sending parts.
    fn start(target: &Target, state: UploadState, filesize: u64) -> io::Result<Multipart> {
        let offset: u64 = state.parts.iter().map(|p| p.len).sum();
        let part_size = state.part_size as usize;
        let state = Arc::new(Mutex::new(state));
        let (sender, receiver) = sync_channel(0);
        let spare = Arc::new(Mutex::new(None));
        let worker = {
            let (target, state, spare) = (target.clone(), state.clone(), spare.clone());
            thread::Builder::new()
                .name("ftp-s3-parts".into())
                .spawn(move || send_parts(&target, &state, receiver, &spare))?
        };
        Ok(Multipart {
            state,
            part: Vec::with_capacity(part_size.min(filesize as usize)),
            hasher: PartHasher::new(offset),
            part_offset: offset,
            sender: Some(sender),
            worker: Some(worker),
            spare,
            done: false,
        })
    }
}

/// The second thread: stores each part, then records it, and hands the
/// part's buffer back for the one after next. While no part comes, it
/// rewrites the record now and then to show the upload is alive, checking
/// first that no other server has taken the name over (a per-part check
/// would cost a request per part; the check before complete is final).
fn send_parts(
    target: &Target,
    state: &Mutex<UploadState>,
    parts: Receiver<Part>,
    spare: &Mutex<Option<Vec<u8>>>,
) -> io::Result<()> {
    let upload_id = state.lock().upload_id.clone();
    let mut saved = Instant::now();
    loop {
        let part = match parts.recv_timeout(HEARTBEAT) {
            Ok(part) => part,
            Err(RecvTimeoutError::Timeout) => {
                let mut snapshot = state.lock().clone();
                target.save_if_ours(&mut snapshot)?;
                saved = Instant::now();
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let etag =
            target
                .client
                .upload_part(&target.object, &upload_id, part.number, &part.bytes)?;
        let record = PartRecord {
            number: part.number,
            etag,
            len: part.hash.len,
            cv: hex::encode(part.hash.cv),
            root: part.hash.root.map(|r| r.to_hex().to_string()),
        };
        let mut buffer = part.bytes;
        buffer.clear();
        *spare.lock() = Some(buffer);
        let mut snapshot = {
            let mut state = state.lock();
            state.parts.push(record);
            state.clone()
        };
        if saved.elapsed() >= RECORD_EVERY {
            target.save_state(&mut snapshot)?;
            saved = Instant::now();
        }
    }
}

impl Multipart {
    /// Hands the filled part to the second thread (waiting while it
    /// stores the one before) and starts the next.
    fn ship(&mut self, part_size: u64) -> io::Result<()> {
        let Some(hash) = self.hasher.finish() else {
            return Ok(());
        };
        let next = self
            .spare
            .lock()
            .take()
            .unwrap_or_else(|| Vec::with_capacity(part_size as usize));
        let bytes = std::mem::replace(&mut self.part, next);
        let number = u16::try_from(self.part_offset / part_size + 1)
            .map_err(|_| io::Error::other("too many parts"))?;
        self.part_offset += hash.len;
        // Only a full part has another after it; the offset after the
        // short last part is no chunk boundary for BLAKE3.
        if hash.len == part_size {
            self.hasher = PartHasher::new(self.part_offset);
        }
        let sent = match &self.sender {
            Some(sender) => sender.send(Part {
                number,
                bytes,
                hash,
            }),
            None => return Err(io::Error::other("the upload is closed")),
        };
        match sent {
            Ok(()) => Ok(()),
            // The thread stopped: its error says why.
            Err(_) => Err(self
                .join()
                .err()
                .unwrap_or_else(|| io::Error::other("the part uploader stopped"))),
        }
    }

    /// Waits for the second thread to store what it was given.
    fn join(&mut self) -> io::Result<()> {
        self.sender = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the part uploader failed")),
            None => Ok(()),
        }
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

    fn write(&mut self, mut chunk: &[u8]) -> StoreResult<()> {
        match &mut self.way {
            Way::Whole { bytes, hasher } => {
                hasher.update(chunk);
                bytes.extend_from_slice(chunk);
                Ok(())
            }
            Way::Multipart(m) => {
                let part_size = m.state.lock().part_size;
                while !chunk.is_empty() {
                    let room = (part_size - m.part.len() as u64).min(chunk.len() as u64);
                    let (now, rest) = chunk.split_at(room as usize);
                    m.part.extend_from_slice(now);
                    m.hasher.update(now);
                    chunk = rest;
                    if m.part.len() as u64 == part_size {
                        m.ship(part_size).map_err(failed)?;
                    }
                }
                Ok(())
            }
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
                client.put(&self.target.object, bytes).map_err(failed)?;
                None
            }
            Way::Multipart(m) => {
                m.done = true;
                Some(m.state.lock().clone())
            }
        };
        if let Some(state) = multipart {
            self.complete(&state, actual)?;
        }
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

    /// Checks that the store holds every part as recorded (another server
    /// may have replaced one), then makes the object and records its
    /// digest beside it.
    fn complete(&self, state: &UploadState, digest: blake3::Hash) -> StoreResult<()> {
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
        Ok(())
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
