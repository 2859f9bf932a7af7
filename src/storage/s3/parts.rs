//! The parts of a multipart upload: filled one at a time, hashed as they
//! fill, and sent to the store from a second thread while the next one
//! fills.
//!
//! Every part but the last has the upload's part size (at least 8 MiB,
//! above S3's 5 MiB floor), so its BLAKE3 is a whole subtree of the
//! file's. A delta upload keeps that layout: a part whose every byte is
//! one unbroken range of the old object becomes a copy made on the
//! store's side (`UploadPartCopy`, pinned to the old object's entity tag);
//! any other part is uploaded, its unchanged bytes filled in from the old
//! object. The bytes of a copied part still pass through here to be
//! hashed, so the whole is checked as a whole upload is; if the store
//! refuses the copy, they are uploaded instead.

use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::record::{PartRecord, Target, UploadState};
use super::tree::{PartHash, PartHasher};
use crate::logging::{Event, Kind};

/// How often a running upload rewrites its record, to show it is alive.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// The record lists new parts at most this often while parts stream in
/// (a request per part would hold the next part back); an upload that is
/// cut off writes its whole record as it lets go, so only a server that
/// dies loses up to this much of what a resume could skip.
const RECORD_EVERY: Duration = Duration::from_secs(1);

/// The old object a delta upload copies from: its key and the entity tag
/// it had when opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Base {
    pub(super) key: String,
    pub(super) etag: String,
}

/// A part on its way to the store.
struct Part {
    number: u16,
    bytes: Vec<u8>,
    hash: PartHash,
    /// The range of the old object that holds exactly its bytes.
    copy: Option<(Base, Range<u64>)>,
}

/// Where the bytes of the part being filled come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filling {
    Empty,
    /// All from the old object, unbroken, from this offset on.
    Copied(u64),
    /// New bytes, or unchanged ones from more than one place.
    Mixed,
}

impl Filling {
    /// What a part that holds `filled` bytes is once the bytes of the old
    /// object from `at` on come next.
    fn then_copied(self, filled: u64, at: u64) -> Filling {
        match self {
            Filling::Empty => Filling::Copied(at),
            Filling::Copied(start) if start + filled == at => Filling::Copied(start),
            _ => Filling::Mixed,
        }
    }
}

pub(super) struct Multipart {
    pub(super) state: Arc<Mutex<UploadState>>,
    part: Vec<u8>,
    hasher: PartHasher,
    /// Where the part being filled starts.
    part_offset: u64,
    filling: Filling,
    /// The old object of a delta upload, once a byte came from it.
    base: Option<Base>,
    /// Bytes the store copied rather than took from this server.
    pub(super) copied: Arc<AtomicU64>,
    sender: Option<SyncSender<Part>>,
    worker: Option<JoinHandle<io::Result<()>>>,
    /// A stored part's buffer, for the next part.
    spare: Arc<Mutex<Option<Vec<u8>>>>,
    /// Completed or discarded: nothing to let go of.
    pub(super) done: bool,
}

impl Multipart {
    /// Goes on with the upload `state` after its stored parts, with a
    /// second thread for sending parts.
    pub(super) fn start(
        target: &Target,
        state: UploadState,
        filesize: u64,
    ) -> io::Result<Multipart> {
        let offset: u64 = state.parts.iter().map(|p| p.len).sum();
        let part_size = state.part_size as usize;
        let state = Arc::new(Mutex::new(state));
        let (sender, receiver) = sync_channel(0);
        let spare = Arc::new(Mutex::new(None));
        let copied = Arc::new(AtomicU64::new(0));
        let worker = {
            let (target, state, spare) = (target.clone(), state.clone(), spare.clone());
            let copied = copied.clone();
            thread::Builder::new()
                .name("ftp-s3-parts".into())
                .spawn(move || send_parts(&target, &state, receiver, (&spare, &copied)))?
        };
        Ok(Multipart {
            state,
            part: Vec::with_capacity(part_size.min(filesize as usize)),
            hasher: PartHasher::new(offset),
            part_offset: offset,
            filling: Filling::Empty,
            base: None,
            copied,
            sender: Some(sender),
            worker: Some(worker),
            spare,
            done: false,
        })
    }

    /// Takes the upload's next bytes, which the old object `from.0` holds
    /// from `from.1` on when given, shipping each part as it fills.
    pub(super) fn take(
        &mut self,
        mut chunk: &[u8],
        mut from: Option<(&Base, u64)>,
    ) -> io::Result<()> {
        let part_size = self.state.lock().part_size;
        while !chunk.is_empty() {
            let room = (part_size - self.part.len() as u64).min(chunk.len() as u64);
            let (now, rest) = chunk.split_at(room as usize);
            self.note_origin(from);
            self.part.extend_from_slice(now);
            self.hasher.update(now);
            chunk = rest;
            if let Some((_, at)) = &mut from {
                *at += room;
            }
            if self.part.len() as u64 == part_size {
                self.ship(part_size)?;
            }
        }
        Ok(())
    }

    /// Notes where the next bytes of the part come from.
    fn note_origin(&mut self, from: Option<(&Base, u64)>) {
        let Some((base, at)) = from else {
            self.filling = Filling::Mixed;
            return;
        };
        if self.base.as_ref().is_some_and(|b| b != base) {
            // One old object per upload: bytes of another are written.
            self.filling = Filling::Mixed;
            return;
        }
        self.base.get_or_insert_with(|| base.clone());
        self.filling = self.filling.then_copied(self.part.len() as u64, at);
    }

    /// Hands the filled part to the second thread (waiting while it
    /// stores the one before) and starts the next.
    pub(super) fn ship(&mut self, part_size: u64) -> io::Result<()> {
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
        let copy = match (self.filling, &self.base) {
            (Filling::Copied(start), Some(base)) => Some((base.clone(), start..start + hash.len)),
            _ => None,
        };
        self.filling = Filling::Empty;
        let part = Part {
            number,
            bytes,
            hash,
            copy,
        };
        let sent = match &self.sender {
            Some(sender) => sender.send(part),
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
    pub(super) fn join(&mut self) -> io::Result<()> {
        self.sender = None;
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the part uploader failed")),
            None => Ok(()),
        }
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
    (spare, copied): (&Mutex<Option<Vec<u8>>>, &AtomicU64),
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
        let etag = store_part(target, &upload_id, &part, copied)?;
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

/// Stores one part: copied on the store's side when it can be, else (or
/// when the store refuses the copy, saying why in the log) uploaded.
/// Returns its entity tag.
fn store_part(
    target: &Target,
    upload_id: &str,
    part: &Part,
    copied: &AtomicU64,
) -> io::Result<String> {
    let client = &target.client;
    let destination = (target.object.as_str(), upload_id, part.number);
    if let Some((base, range)) = &part.copy {
        let len = range.end - range.start;
        match client.upload_part_copy(destination, &base.key, range.clone(), &base.etag) {
            Ok(etag) => {
                copied.fetch_add(len, Ordering::Relaxed);
                return Ok(etag);
            }
            Err(e) => Event::new(Kind::Warning).warn(format_args!(
                "the object store did not copy part {} of {} from the old object ({e}); \
                 uploading its {len} bytes instead",
                part.number, target.object
            )),
        }
    }
    client.upload_part(&target.object, upload_id, part.number, &part.bytes)
}

#[cfg(test)]
mod tests {
    use super::Filling;

    #[test]
    fn a_part_is_a_copy_only_while_its_bytes_follow_on_in_the_old_object() {
        let part = Filling::Empty.then_copied(0, 1000);
        assert_eq!(part, Filling::Copied(1000));
        // The next bytes of the old object: still one range.
        assert_eq!(part.then_copied(500, 1500), Filling::Copied(1000));
        // Bytes from elsewhere in it (a chunk moved, or one skipped).
        assert_eq!(part.then_copied(500, 9000), Filling::Mixed);
        assert_eq!(part.then_copied(500, 1000), Filling::Mixed);
        // Once mixed, always mixed.
        assert_eq!(Filling::Mixed.then_copied(0, 0), Filling::Mixed);
    }
}
