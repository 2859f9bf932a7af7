//! Each file's delta signature (see [`crate::wire::delta`]), kept in a
//! file of its own beside it: `<folder>/.ftp-partial/.ftp-partial/<name>`.
//! An extended attribute is too small (a 1 GiB file has about 16,000
//! chunks, 36 bytes each). `.ftp-partial` is a reserved name, so no
//! partial upload can be called that, and nothing in that folder is ever
//! listed, walked by a listing or swept as a partial.
//!
//! A kept signature starts with the size, modification time (ns) and
//! inode of the file it was cut from, and the file's BLAKE3; one that no
//! longer matches the file is cut again when it is asked for, never
//! trusted. Its bytes count towards the home's usage, its entry does not
//! (it is the server's, as the folders that hold partials are).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;

use rustix::fs::OFlags;

use super::handle::{Folder, Modes};
use crate::io::chunks;
use crate::storage::Signature;
use crate::wire::delta::max_chunks;
use crate::wire::delta::signature::{encode_entry, ENTRY_LEN};
use crate::wire::names::PARTIAL_DIR;

/// The name of the folder of signatures, inside the partials' folder.
pub(super) const SIGNATURE_DIR: &str = PARTIAL_DIR;

/// The first bytes of a kept signature, and its format's version.
const MAGIC: &[u8; 8] = b"ftpsig1\n";

/// Bytes before the entries: magic, size, mtime_ns, inode, chunks, BLAKE3.
const HEAD_LEN: usize = 8 + 8 + 16 + 8 + 8 + 32;

/// What a signature was cut from: a rewrite changes the time, a
/// replacing upload the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ino: u64,
}

impl Stamp {
    /// Its modification time in whole seconds since the epoch.
    fn secs(&self) -> u64 {
        u64::try_from(self.mtime_ns.div_euclid(1_000_000_000)).unwrap_or(0)
    }

    fn of(file: &File) -> io::Result<Stamp> {
        let meta = file.metadata()?;
        Ok(Stamp {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ino: meta.ino(),
        })
    }
}

/// The signature of the regular file `name` in `folder`: the kept one if
/// it still fits the file, else cut now and kept (unless the file changed
/// while it was read: then it is served once and dropped). Returns it
/// with how many bytes of kept signatures appeared (positive) or went
/// (negative), for the usage book.
///
/// Fails when the file cannot be opened or read, or the signature cannot
/// be written.
pub(super) fn signature_of(
    folder: &Folder,
    name: &str,
    modes: Modes,
) -> io::Result<(Signature, i64)> {
    let file = folder.open_regular(name)?;
    let stamp = Stamp::of(&file)?;
    let dir = signature_dir(folder, modes)?;
    if let Some(kept) = read_kept(&dir, name, stamp) {
        return Ok((kept, 0));
    }
    // A name no upload can have (`\` is not allowed in names), so that
    // a reader never sees a signature half written.
    let temp = format!("\\cut.{:016x}", rand::random::<u64>());
    let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL;
    let mut out = dir.open_file(&temp, flags, modes)?;
    let cut = cut(&file, stamp, &mut out);
    let fresh = cut.is_ok() && Stamp::of(&file)? == stamp;
    let renamed = fresh.then(|| {
        let old = dir.file_len(name).unwrap_or(0);
        dir.rename(&temp, &dir, name, true).map(|()| old)
    });
    let change = match renamed {
        Some(Ok(old)) => out.metadata()?.len() as i64 - old as i64,
        _ => {
            let _ = dir.remove_file(temp.as_str());
            0
        }
    };
    let (blake3, chunks) = cut?;
    out.seek(SeekFrom::Start(HEAD_LEN as u64))?;
    let kept = Signature {
        size: stamp.size,
        chunks,
        blake3,
        mtime: stamp.secs(),
        entries: Box::new(out.take(chunks * ENTRY_LEN as u64)),
    };
    Ok((kept, change))
}

/// The folder of `folder`'s signatures, made when missing.
fn signature_dir(folder: &Folder, modes: Modes) -> io::Result<Folder> {
    let partials = folder.partials(true, modes)?;
    match partials.child(SIGNATURE_DIR) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match partials.make_dir(SIGNATURE_DIR, modes) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            partials.child(SIGNATURE_DIR)
        }
        other => other,
    }
}

/// The kept signature of `name` in the signature folder `dir`, if it was
/// cut from the file as `stamp` describes and is whole.
fn read_kept(dir: &Folder, name: &str, stamp: Stamp) -> Option<Signature> {
    let mut file = dir.open_regular(name).ok()?;
    let mut head = [0u8; HEAD_LEN];
    file.read_exact(&mut head).ok()?;
    let (kept_stamp, chunks, blake3) = parse_head(&head)?;
    let whole = file.metadata().ok()?.len() == HEAD_LEN as u64 + chunks * ENTRY_LEN as u64;
    (kept_stamp == stamp && whole && chunks <= max_chunks(stamp.size)).then(|| Signature {
        size: stamp.size,
        chunks,
        blake3,
        mtime: stamp.secs(),
        entries: Box::new(file.take(chunks * ENTRY_LEN as u64)),
    })
}

fn head(stamp: Stamp, chunks: u64, blake3: &blake3::Hash) -> [u8; HEAD_LEN] {
    let mut out = [0u8; HEAD_LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..16].copy_from_slice(&stamp.size.to_le_bytes());
    out[16..32].copy_from_slice(&stamp.mtime_ns.to_le_bytes());
    out[32..40].copy_from_slice(&stamp.ino.to_le_bytes());
    out[40..48].copy_from_slice(&chunks.to_le_bytes());
    out[48..].copy_from_slice(blake3.as_bytes());
    out
}

fn parse_head(head: &[u8; HEAD_LEN]) -> Option<(Stamp, u64, blake3::Hash)> {
    let u64_at = |at: usize| head[at..at + 8].try_into().ok().map(u64::from_le_bytes);
    if &head[..8] != MAGIC {
        return None;
    }
    let stamp = Stamp {
        size: u64_at(8)?,
        mtime_ns: i128::from_le_bytes(head[16..32].try_into().ok()?),
        ino: u64_at(32)?,
    };
    let hash: [u8; 32] = head[48..].try_into().ok()?;
    Some((stamp, u64_at(40)?, blake3::Hash::from(hash)))
}

/// Cuts `file` into `out`: head, then entries. Returns the whole file's
/// BLAKE3 and the number of chunks.
fn cut(file: &File, stamp: Stamp, out: &mut File) -> io::Result<(blake3::Hash, u64)> {
    out.write_all(&[0u8; HEAD_LEN])?;
    let mut whole = blake3::Hasher::new();
    let mut entries = Vec::with_capacity(FLUSH_AT);
    let mut chunks = 0u64;
    let read = chunks::cut(file, |chunk, bytes| {
        whole.update(bytes);
        encode_entry(chunk.len, &chunk.hash, &mut entries);
        chunks += 1;
        if entries.len() >= FLUSH_AT {
            out.write_all(&entries)?;
            entries.clear();
        }
        Ok(())
    })?;
    out.write_all(&entries)?;
    let blake3 = whole.finalize();
    // Cut from what was read: a file that changed meanwhile is caught by
    // the caller's second look.
    let stamp = Stamp {
        size: read,
        ..stamp
    };
    out.seek(SeekFrom::Start(0))?;
    out.write_all(&head(stamp, chunks, &blake3))?;
    Ok((blake3, chunks))
}

/// Entries gathered before each write of a signature being cut.
const FLUSH_AT: usize = 256 * ENTRY_LEN;

/// Forgets the kept signature of `name` in `folder` (the file went, was
/// moved or replaced); returns its length, for the usage book.
pub(super) fn forget(folder: &Folder, name: &str) -> Option<u64> {
    let dir = folder.child(PARTIAL_DIR).ok()?.child(SIGNATURE_DIR).ok()?;
    let len = dir.file_len(name)?;
    dir.remove_file(name).ok()?;
    Some(len)
}

/// Forgets every kept signature in `folder` (it is being removed, so it
/// holds no file of the user's); returns their bytes.
pub(super) fn forget_all(folder: &Folder) -> u64 {
    let Ok(partials) = folder.child(PARTIAL_DIR) else {
        return 0;
    };
    let Ok(dir) = partials.child(SIGNATURE_DIR) else {
        return 0;
    };
    let mut bytes = 0;
    if let Ok(entries) = dir.entries() {
        for found in entries.flatten() {
            let len = dir.file_len(&found.name.to_string_lossy()).unwrap_or(0);
            if dir.remove_file(found.name.as_os_str()).is_ok() {
                bytes += len;
            }
        }
    }
    let _ = partials.remove_dir(SIGNATURE_DIR);
    bytes
}
