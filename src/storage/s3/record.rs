//! The record of a multipart upload, kept in the store at
//! `PREFIX.ftp-partial/KEY`: the upload id, the part size, and for each
//! part its entity tag and BLAKE3 chaining value. Any server can resume
//! the upload from there: the offset is the sum of the parts whose record
//! and stored entity tag agree. S3's limits on keys, parts and objects are
//! here too, since the record's layout follows from them.

use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::client::S3Client;
use super::tree::PartHash;
use crate::storage::{StoreError, StoreResult, UploadPlan};

/// The smallest part: S3 wants at least 5 MiB for all parts but the last;
/// a power of two keeps every part a whole subtree of the BLAKE3 tree.
pub(crate) const MIN_PART: u64 = 8 * 1024 * 1024;

/// S3's limit on the parts of one upload.
pub(super) const MAX_PARTS: u64 = 10_000;

/// S3's limit on a key, in bytes of UTF-8.
pub(crate) const MAX_KEY: usize = 1024;

/// S3's limit on one object: 5 TiB.
pub(crate) const MAX_OBJECT: u64 = 5 << 40;

/// A record rewritten this recently by another server belongs to an
/// upload still running there; older ones were left by a server that
/// stopped, and may be resumed.
pub(crate) const LIVE_WINDOW: Duration = Duration::from_secs(6);

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The part size for a file of `filesize` bytes: at least [`MIN_PART`],
/// a power of two, and few enough parts for S3.
pub fn part_size(filesize: u64) -> u64 {
    filesize
        .div_ceil(MAX_PARTS)
        .checked_next_power_of_two()
        .unwrap_or(1 << 63)
        .max(MIN_PART)
}

/// The record of a multipart upload, kept in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UploadState {
    /// The store's id of the multipart upload.
    pub(crate) upload_id: String,
    /// The whole file's size.
    pub(crate) filesize: u64,
    /// Every part's size but the last one's.
    pub(crate) part_size: u64,
    /// The parts stored so far, in order.
    pub(crate) parts: Vec<PartRecord>,
    /// The server running it (random per server process).
    pub(crate) owner: String,
    /// When it last wrote this record, seconds since the epoch.
    pub(crate) updated: u64,
}

impl UploadState {
    /// Whether another server is running this upload right now.
    fn held_elsewhere(&self, me: &str) -> bool {
        self.owner != me && now_secs().saturating_sub(self.updated) < LIVE_WINDOW.as_secs()
    }
}

/// One stored part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PartRecord {
    /// From 1.
    pub(crate) number: u16,
    /// The store's entity tag for it.
    pub(crate) etag: String,
    /// Its size.
    pub(crate) len: u64,
    /// Its BLAKE3 chaining value, hex.
    pub(crate) cv: String,
    /// The first part's own BLAKE3, hex.
    pub(crate) root: Option<String>,
}

impl PartRecord {
    pub(super) fn hash(&self) -> Option<PartHash> {
        let mut cv = [0u8; 32];
        hex::decode_to_slice(&self.cv, &mut cv).ok()?;
        let root = match &self.root {
            Some(r) => Some(blake3::Hash::from_hex(r).ok()?),
            None => None,
        };
        Some(PartHash {
            cv,
            len: self.len,
            root,
        })
    }
}

/// A large object's BLAKE3, kept beside it once its upload completed, so
/// that serving it needs no hashing. It holds for as long as the object's
/// entity tag is the one recorded; a client still checks what arrives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct KnownDigest {
    /// The object's entity tag when the digest was recorded.
    pub(crate) etag: String,
    /// BLAKE3, hex.
    pub(crate) blake3: String,
}

impl KnownDigest {
    /// The digest, if it is still the one of an object tagged `etag`.
    pub(crate) fn of(bytes: &[u8], etag: &str) -> Option<blake3::Hash> {
        let known: KnownDigest = serde_json::from_slice(bytes).ok()?;
        (!etag.is_empty() && known.etag == etag)
            .then(|| blake3::Hash::from_hex(&known.blake3).ok())
            .flatten()
    }
}

/// Where an upload goes.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(super) client: S3Client,
    /// The object's key in the bucket.
    pub(super) object: String,
    /// The key of its upload record.
    pub(super) record: String,
    /// The key of its [`KnownDigest`].
    pub(super) digest: String,
    /// The key of its kept delta signature.
    pub(super) signature: String,
    /// This server process, as records name their owner.
    pub(super) owner: String,
}

impl Target {
    /// Refuses a file whose upload record's key (13 bytes longer than
    /// the object's) would not fit in S3's [`MAX_KEY`]: checked before
    /// anything is created, so that no multipart upload is left without
    /// a record, where the sweeper would never see it.
    pub(crate) fn check_key(&self) -> StoreResult<()> {
        match self.record.len() <= MAX_KEY {
            true => Ok(()),
            false => Err(StoreError::KeyTooLong {
                bytes: self.record.len(),
                max: MAX_KEY,
            }),
        }
    }

    /// The upload record, if there is one.
    ///
    /// Fails when the store fails, or the record is not one.
    pub(crate) fn load_state(&self) -> io::Result<Option<UploadState>> {
        match self.client.get_small(&self.record) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(super) fn save_state(&self, state: &mut UploadState) -> io::Result<()> {
        state.owner.clone_from(&self.owner);
        state.updated = now_secs();
        self.write_state(state)
    }

    pub(super) fn write_state(&self, state: &UploadState) -> io::Result<()> {
        let bytes = serde_json::to_vec(state).map_err(io::Error::other)?;
        self.client.put(&self.record, &bytes).map(drop)
    }

    /// Rewrites the record of the upload `state`, unless another upload
    /// of the name (on another server) has replaced it meanwhile.
    pub(super) fn save_if_ours(&self, state: &mut UploadState) -> io::Result<()> {
        self.check_ours(state)?;
        self.save_state(state)
    }

    /// Fails when the record no longer names this upload.
    pub(super) fn check_ours(&self, state: &UploadState) -> io::Result<()> {
        match self.load_state()? {
            Some(now) if now.upload_id == state.upload_id => Ok(()),
            _ => Err(taken_over()),
        }
    }

    /// Throws away the upload the record names, and the record if it
    /// still names that upload.
    pub(crate) fn forget(&self, state: &UploadState) -> io::Result<()> {
        match self.client.abort_multipart(&self.object, &state.upload_id) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        match self.check_ours(state) {
            Ok(()) => self.client.delete(&self.record),
            Err(_) => Ok(()),
        }
    }

    /// The record of a resumable upload of `filesize` bytes, cut to the
    /// parts the store still holds as recorded; `None` if there is none.
    ///
    /// Fails when the store fails.
    pub(crate) fn resumable(&self, filesize: u64) -> io::Result<Option<UploadState>> {
        let Some(state) = self.load_state()? else {
            return Ok(None);
        };
        self.resumable_from(state, filesize)
    }

    fn resumable_from(
        &self,
        mut state: UploadState,
        filesize: u64,
    ) -> io::Result<Option<UploadState>> {
        if state.filesize != filesize || state.part_size != part_size(filesize) {
            return Ok(None);
        }
        let stored = match self.client.list_parts(&self.object, &state.upload_id) {
            Ok(parts) => parts,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let good = state
            .parts
            .iter()
            .zip(1u16..)
            .take_while(|(record, number)| {
                record.number == *number
                    && stored.iter().any(|p| {
                        p.number == *number && p.etag == record.etag && p.size == record.len
                    })
            })
            .count();
        state.parts.truncate(good);
        Ok(Some(state))
    }

    /// Bytes of a resumable upload of `filesize` bytes the store holds.
    pub(crate) fn kept(&self, filesize: u64) -> io::Result<u64> {
        if filesize < MIN_PART {
            return Ok(0);
        }
        Ok(self
            .resumable(filesize)?
            .map_or(0, |s| s.parts.iter().map(|p| p.len).sum()))
    }
}

/// The record of the multipart upload this upload goes on with: the one
/// to resume, or a new one (throwing away one that cannot be resumed).
/// Fails as busy when another server runs an upload of that name.
pub(super) fn claim(target: &Target, plan: UploadPlan) -> io::Result<UploadState> {
    let existing = target.load_state()?;
    if existing
        .as_ref()
        .is_some_and(|s| s.held_elsewhere(&target.owner))
    {
        return Err(io::Error::new(
            io::ErrorKind::ResourceBusy,
            "held elsewhere",
        ));
    }
    let resumed = match (plan.resume, existing.clone()) {
        (true, Some(state)) => target.resumable_from(state, plan.filesize)?,
        _ => None,
    };
    if let Some(state) = resumed {
        return Ok(state);
    }
    if let Some(old) = existing {
        target.forget(&old)?;
    }
    Ok(UploadState {
        upload_id: target.client.create_multipart(&target.object)?,
        filesize: plan.filesize,
        part_size: part_size(plan.filesize),
        parts: Vec::new(),
        owner: String::new(),
        updated: 0,
    })
}

/// The error of an upload whose name another server's upload took.
fn taken_over() -> io::Error {
    io::Error::new(
        io::ErrorKind::ResourceBusy,
        "another upload of this name, through another server, took it over",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::s3::tree::{self, PartHasher};

    #[test]
    fn part_sizes_are_powers_of_two_within_s3_limits() {
        assert_eq!(part_size(0), MIN_PART);
        assert_eq!(part_size(1 << 30), MIN_PART);
        let huge = 200u64 << 30;
        let p = part_size(huge);
        assert!(p.is_power_of_two() && huge.div_ceil(p) <= MAX_PARTS, "{p}");
        assert_eq!(part_size(MAX_PARTS * MIN_PART + 1), 2 * MIN_PART);
    }

    #[test]
    fn a_record_round_trips_to_the_part_hash() {
        let mut h = PartHasher::new(0);
        h.update(&[3u8; 5000]);
        let hash = h.finish().unwrap();
        let record = PartRecord {
            number: 1,
            etag: "\"e\"".into(),
            len: hash.len,
            cv: hex::encode(hash.cv),
            root: hash.root.map(|r| r.to_hex().to_string()),
        };
        assert_eq!(record.hash(), Some(hash));
        assert_eq!(tree::root(&[hash]), Some(blake3::hash(&[3u8; 5000])));
    }
}
