//! What a quota allows: bytes and entries (files and folders), and the
//! arithmetic that decides whether one more chunk, file or folder fits.
//!
//! A running upload is charged for the bytes it has written, never for
//! the size it declared: a slow upload that declares a large size holds
//! nothing it has not stored. Each chunk is charged before it is written,
//! so uploads that race past the quota together are refused at the chunk
//! that would take the home over it.

use crate::wire::message::{ErrorCode, ErrorReply};

/// What one entry costs on disk at the least: a folder takes a block of
/// this size, and a file an inode beside its bytes.
pub(crate) const BYTES_PER_ENTRY: u64 = 4096;

/// The fewest entries a default limit allows, so that a small quota still
/// holds an ordinary tree of small files.
pub(crate) const MIN_DEFAULT_FILES: u64 = 1000;

/// The entry limit of an account whose users file gives a quota but no
/// `max_files`: one entry per [`BYTES_PER_ENTRY`] of quota, so that what
/// its entries cost on disk stays near the quota itself, and at least
/// [`MIN_DEFAULT_FILES`].
pub(crate) fn default_max_files(quota: u64) -> u64 {
    (quota / BYTES_PER_ENTRY).max(MIN_DEFAULT_FILES)
}

/// Bytes a home would hold after `adding` more: `used` as the store
/// counts it, plus what running uploads were charged (`charged`) beyond
/// what the store counts of them already (`counted`).
pub(crate) fn projected_bytes(used: u64, charged: u64, counted: u64, adding: u64) -> u64 {
    used.saturating_add(charged.saturating_sub(counted))
        .saturating_add(adding)
}

/// Refuses `projected` bytes over `quota`; `adding` is what was asked.
pub(crate) fn check_bytes(projected: u64, adding: u64, quota: u64) -> Result<(), ErrorReply> {
    if projected <= quota {
        return Ok(());
    }
    Err(ErrorReply::new(
        ErrorCode::QuotaExceeded,
        format!("quota exceeded: storing {adding} bytes would use {projected} of {quota} bytes"),
    ))
}

/// The reply to an upload stopped after `written` of its `filesize`
/// bytes, because other uploads filled the quota meanwhile.
pub(crate) fn exceeded_while_storing(written: u64, filesize: u64, quota: u64) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::QuotaExceeded,
        format!(
            "quota exceeded after {written} of {filesize} bytes: other uploads filled \
             the quota of {quota} bytes meanwhile; the partial data was discarded"
        ),
    )
}

/// Refuses `adding` entries beside `used` over `max_files`.
pub(crate) fn check_entries(used: u64, adding: u64, max_files: u64) -> Result<(), ErrorReply> {
    if used.checked_add(adding).is_some_and(|n| n <= max_files) {
        return Ok(());
    }
    Err(ErrorReply::new(
        ErrorCode::QuotaExceeded,
        format!(
            "quota exceeded: {used} of {max_files} files and folders in use (max_files), \
             {adding} more asked; remove some first"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_entry_limit_follows_the_quota_with_a_floor() {
        assert_eq!(default_max_files(1 << 20), 1000);
        assert_eq!(default_max_files(0), 1000);
        assert_eq!(default_max_files(1 << 30), 262_144);
        assert_eq!(default_max_files(u64::MAX), u64::MAX / 4096);
    }

    #[test]
    fn running_uploads_count_for_what_they_wrote_beyond_what_the_store_counts() {
        // A disk store counts what was written: nothing is added twice.
        assert_eq!(projected_bytes(500, 300, 300, 10), 510);
        // An object store that counts nothing of a running upload.
        assert_eq!(projected_bytes(500, 300, 0, 10), 810);
        // A chunk written but not yet noted as counted: counted twice,
        // never missed.
        assert_eq!(projected_bytes(510, 300, 300, 0), 510);
        assert_eq!(projected_bytes(u64::MAX, 1, 0, 1), u64::MAX);
    }

    #[test]
    fn exactly_the_quota_fits_and_one_more_is_refused() {
        assert!(check_bytes(100, 10, 100).is_ok());
        let e = check_bytes(101, 10, 100).unwrap_err();
        assert_eq!(e.code, ErrorCode::QuotaExceeded);
        assert_eq!(
            e.message,
            "quota exceeded: storing 10 bytes would use 101 of 100 bytes"
        );
        assert!(check_entries(9, 1, 10).is_ok());
        let e = check_entries(10, 1, 10).unwrap_err();
        assert_eq!(e.code, ErrorCode::QuotaExceeded);
        assert!(
            e.message.contains("10 of 10 files and folders"),
            "{}",
            e.message
        );
        assert!(check_entries(u64::MAX, 1, u64::MAX).is_err());
    }
}
