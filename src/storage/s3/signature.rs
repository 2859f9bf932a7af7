//! Each object's delta signature (see [`crate::wire::delta`]), kept as an
//! object of its own beside the upload records, at
//! `PREFIX/.ftp-partial/.ftp-partial/.ftp-partial/KEY` (no record and no
//! kept digest can have that key: no folder may be called `.ftp-partial`).
//!
//! It is cut while an upload's bytes go by, as they are hashed, and
//! stored when the upload commits. It names the entity tag of the object
//! it was cut from: once the object is replaced (through another server,
//! or behind the servers' backs) the tags differ and the signature is
//! never trusted; `sig` then refuses, and the client sends the file whole,
//! which keeps a fresh one. Reading the whole object back to cut it on
//! demand would cost as much as the whole upload it could save.

use std::io::{self, Read};

use super::client::{ObjectInfo, S3Client};
use super::folders::same_etag;
use crate::io::chunks::Cutter;
use crate::storage::Signature;
use crate::wire::delta::max_chunks;
use crate::wire::delta::signature::{encode_entry, ENTRY_LEN};

/// The first bytes of a kept signature, and its format's version.
const MAGIC: &[u8; 8] = b"ftps3sg1";

/// Bytes before the entity tag: magic, size, chunks, BLAKE3, tag length.
const FIXED_HEAD: usize = 8 + 8 + 8 + 32 + 2;

/// The most entry bytes an upload gathers: about 233,000 chunks, a file
/// of some 14 GiB. A larger file keeps no signature (and goes whole),
/// so that an upload's memory stays bounded.
pub(super) const MAX_ENTRIES: usize = 8 << 20;

/// A signature being cut from an upload's bytes as they go by.
pub(super) struct SignatureCut {
    cutter: Cutter,
    entries: Vec<u8>,
    chunks: u64,
    /// Too many chunks to keep: cut no further.
    over: bool,
}

impl SignatureCut {
    pub(super) fn new() -> SignatureCut {
        SignatureCut {
            cutter: Cutter::default(),
            entries: Vec::new(),
            chunks: 0,
            over: false,
        }
    }

    /// Takes the upload's next bytes.
    pub(super) fn update(&mut self, bytes: &[u8]) {
        if self.over {
            return;
        }
        let (entries, chunks) = (&mut self.entries, &mut self.chunks);
        self.cutter.update(bytes, |chunk, _| {
            encode_entry(chunk.len, &chunk.hash, entries);
            *chunks += 1;
        });
        self.over = self.entries.len() > MAX_ENTRIES;
    }

    /// The kept form of the signature of the whole upload, `size` bytes
    /// whose BLAKE3 is `blake3`, once stored as the object tagged `etag`;
    /// `None` when it grew too long to keep, or the bytes it saw are not
    /// the file's.
    pub(super) fn finish(
        mut self,
        size: u64,
        blake3: &blake3::Hash,
        etag: &str,
    ) -> Option<Vec<u8>> {
        let (entries, chunks) = (&mut self.entries, &mut self.chunks);
        let seen = self.cutter.finish(|chunk, _| {
            encode_entry(chunk.len, &chunk.hash, entries);
            *chunks += 1;
        });
        let etag_len = u16::try_from(etag.len()).ok()?;
        if self.over || seen != size || etag.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(FIXED_HEAD + etag.len() + self.entries.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&self.chunks.to_le_bytes());
        out.extend_from_slice(blake3.as_bytes());
        out.extend_from_slice(&etag_len.to_le_bytes());
        out.extend_from_slice(etag.as_bytes());
        out.extend_from_slice(&self.entries);
        Some(out)
    }
}

/// The signature kept at `key` for the object `object` is now, its
/// entries read from the store as they are taken; `None` when none is
/// kept, or the one kept was cut from another version of the object.
///
/// Fails when the store fails.
pub(super) fn load(
    client: &S3Client,
    key: &str,
    object: &ObjectInfo,
) -> io::Result<Option<Signature>> {
    let mut reader = match client.get_from(key, 0) {
        Ok(reader) => reader,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut head = [0u8; FIXED_HEAD];
    if reader.read_exact(&mut head).is_err() || &head[..8] != MAGIC {
        return Ok(None);
    }
    let u64_at = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().unwrap_or_default());
    let (size, chunks) = (u64_at(8), u64_at(16));
    let hash: [u8; 32] = head[24..56].try_into().unwrap_or_default();
    let mut etag = vec![0u8; usize::from(u16::from_le_bytes([head[56], head[57]]))];
    if reader.read_exact(&mut etag).is_err() {
        return Ok(None);
    }
    let etag = String::from_utf8_lossy(&etag);
    let fits = size == object.size && same_etag(&etag, &object.etag);
    if !fits || chunks > max_chunks(size) {
        return Ok(None);
    }
    Ok(Some(Signature {
        size,
        chunks,
        blake3: blake3::Hash::from(hash),
        mtime: object.mtime,
        entries: Box::new(reader.take(chunks * ENTRY_LEN as u64)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::chunks;

    #[test]
    fn a_kept_signature_holds_the_chunks_of_what_went_by() {
        let data: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let mut cut = SignatureCut::new();
        for piece in data.chunks(100_000) {
            cut.update(piece);
        }
        let digest = blake3::hash(&data);
        let kept = cut.finish(data.len() as u64, &digest, "\"tag-2\"").unwrap();
        let whole = chunks::signature(&data[..]).unwrap();
        let head = FIXED_HEAD + "\"tag-2\"".len();
        assert_eq!(kept.len(), head + whole.len() * ENTRY_LEN);
        assert_eq!(&kept[..8], MAGIC);
        let mut entries = Vec::new();
        for c in &whole {
            encode_entry(c.len, &c.hash, &mut entries);
        }
        assert!(kept[head..] == entries[..]);
    }

    #[test]
    fn a_cut_that_saw_other_bytes_than_the_file_keeps_nothing() {
        let mut cut = SignatureCut::new();
        cut.update(&[1u8; 5000]);
        assert!(cut.finish(6000, &blake3::hash(b""), "\"t\"").is_none());
    }
}
