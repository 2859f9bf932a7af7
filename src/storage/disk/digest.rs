//! Each stored file's BLAKE3, kept in an extended attribute of the file
//! (`user.ftp.blake3`) beside the size and modification time it was
//! computed for, so that a listing with digests hashes a file only once,
//! and again only when it changed behind the server's back. On a file
//! system that refuses extended attributes the file is hashed every time.

use std::fs::File;
use std::io;

use rustix::fs::{Stat, XattrFlags};

use super::handle::Folder;

/// The attribute's name; the `user.` namespace is the one a file's owner
/// may write.
const ATTRIBUTE: &str = "user.ftp.blake3";

/// The longest value of the attribute: 64 hex digits, two numbers.
const MAX_VALUE: usize = 128;

/// What a digest was computed for: the file's size and its modification
/// time in nanoseconds. A write changes the time (and usually the size);
/// moving the file keeps both, and its attribute with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    size: u64,
    mtime_ns: i128,
}

impl Stamp {
    /// The stamp of an open file as it is now.
    pub(super) fn of(file: &File) -> io::Result<Stamp> {
        Ok(Stamp::from_stat(&rustix::fs::fstat(file)?))
    }

    fn from_stat(st: &Stat) -> Stamp {
        Stamp {
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime_ns: i128::from(st.st_mtime) * 1_000_000_000 + i128::from(st.st_mtime_nsec),
        }
    }
}

/// The attribute's value for `digest` of a file stamped `stamp`.
fn value(digest: &blake3::Hash, stamp: Stamp) -> String {
    format!("{} {} {}", digest.to_hex(), stamp.size, stamp.mtime_ns)
}

/// The digest in `value` if it was computed for `stamp`.
fn parse(value: &[u8], stamp: Stamp) -> Option<blake3::Hash> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split(' ');
    let (hex, size, mtime) = (parts.next()?, parts.next()?, parts.next()?);
    let fresh = parts.next().is_none()
        && size.parse::<u64>().ok()? == stamp.size
        && mtime.parse::<i128>().ok()? == stamp.mtime_ns;
    fresh.then(|| blake3::Hash::from_hex(hex).ok()).flatten()
}

/// Records `digest` as the digest of `file` as it is now. Best effort: a
/// file system without extended attributes (or a file the server may not
/// write) just keeps nothing.
pub(super) fn keep(file: &File, digest: &blake3::Hash) {
    if let Ok(stamp) = Stamp::of(file) {
        let value = value(digest, stamp);
        let _ = rustix::fs::fsetxattr(file, ATTRIBUTE, value.as_bytes(), XattrFlags::empty());
    }
}

/// Drops a digest that may no longer hold (a partial file reused).
pub(super) fn forget(file: &File) {
    let _ = rustix::fs::fremovexattr(file, ATTRIBUTE);
}

/// The digest kept for `file` as it is now, if there is one: what a
/// download sends instead of hashing the file again.
pub(super) fn kept_now(file: &File) -> Option<blake3::Hash> {
    kept(file, Stamp::of(file).ok()?)
}

/// The digest kept for `file`, if it still fits the file.
fn kept(file: &File, stamp: Stamp) -> Option<blake3::Hash> {
    let mut buf = [0u8; MAX_VALUE];
    let n = rustix::fs::fgetxattr(file, ATTRIBUTE, &mut buf).ok()?;
    parse(&buf[..n], stamp)
}

/// The BLAKE3 of the regular file `name` in `folder`: the kept one when
/// the file has not changed since, else computed by reading it (and then
/// kept, unless the file changed while it was read).
///
/// Fails when the file cannot be opened (a link, not a regular file,
/// gone) or read.
pub(super) fn digest_of(folder: &Folder, name: &str) -> io::Result<blake3::Hash> {
    let file = folder.open_regular(name)?;
    let stamp = Stamp::of(&file)?;
    if let Some(digest) = kept(&file, stamp) {
        return Ok(digest);
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(&file)?;
    let digest = hasher.finalize();
    if Stamp::of(&file)? == stamp {
        keep(&file, &digest);
    }
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Duration;

    #[test]
    fn a_digest_is_kept_and_dropped_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs::write(&path, b"first").unwrap();
        let folder = Folder::open(dir.path()).unwrap();
        assert_eq!(digest_of(&folder, "f").unwrap(), blake3::hash(b"first"));
        let file = File::open(&path).unwrap();
        let stamp = Stamp::of(&file).unwrap();
        // This test's file system keeps attributes (ext4, tmpfs, xfs do).
        assert_eq!(kept(&file, stamp), Some(blake3::hash(b"first")));
        // Same size, other bytes, a later time: hashed again.
        fs::write(&path, b"secon").unwrap();
        crate::testing::modified_later(&path, Duration::from_secs(5));
        assert_eq!(digest_of(&folder, "f").unwrap(), blake3::hash(b"secon"));
    }

    #[test]
    fn a_value_holds_only_for_its_stamp() {
        let digest = blake3::hash(b"x");
        let stamp = Stamp {
            size: 1,
            mtime_ns: 1_764_072_000_123_456_789,
        };
        let v = value(&digest, stamp);
        assert_eq!(parse(v.as_bytes(), stamp), Some(digest));
        let moved = Stamp {
            mtime_ns: stamp.mtime_ns + 1,
            ..stamp
        };
        assert_eq!(parse(v.as_bytes(), moved), None);
        assert_eq!(parse(b"junk", stamp), None);
        assert_eq!(parse(format!("{v} extra").as_bytes(), stamp), None);
    }
}
