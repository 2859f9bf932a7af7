//! What a home holds in the object store, for its quota: the objects
//! below it, and the parts of its unfinished multipart uploads, from the
//! moment they are stored until the upload is completed or swept.
//!
//! The parts of an upload that is running (its record was rewritten
//! within [`LIVE_WINDOW`]) are left out: the server running it charges
//! them as they arrive. Once it stops, its record says so, and its parts
//! count here.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use super::record::{UploadState, LIVE_WINDOW};
use super::S3Store;
use crate::storage::{Place, Usage};
use crate::wire::names::PARTIAL_DIR;

/// How long a home's usage, summed from a listing, is believed: a quota
/// can be overrun by what other servers stored in that time.
pub(crate) const USAGE_TTL: Duration = Duration::from_secs(5);

/// Each home's usage as last measured, shared with the uploads, which
/// make their home measured anew when they end.
#[derive(Debug, Default, Clone)]
pub(crate) struct UsageCache(Arc<Mutex<HashMap<String, (Usage, Instant)>>>);

impl UsageCache {
    fn book(&self) -> MutexGuard<'_, HashMap<String, (Usage, Instant)>> {
        self.0.lock()
    }

    /// The usage of the home with key `home`, if measured recently.
    pub(crate) fn fresh(&self, home: &str) -> Option<Usage> {
        match self.book().get(home) {
            Some(&(used, at)) if at.elapsed() < USAGE_TTL => Some(used),
            _ => None,
        }
    }

    /// Notes a measure of the home with key `home`.
    pub(crate) fn insert(&self, home: &str, used: Usage) {
        self.book().insert(home.to_string(), (used, Instant::now()));
    }

    /// Measures the home with key `home` anew the next time.
    pub(crate) fn forget(&self, home: &str) {
        self.book().remove(home);
    }
}

impl S3Store {
    /// Lists what the home `home` holds: its objects (folder markers are
    /// entries), and its unfinished uploads (each an entry, and the parts
    /// of those that no server runs).
    ///
    /// Fails when the store fails.
    pub(super) fn measure(&self, home: &[String]) -> io::Result<Usage> {
        let hidden = format!("{}{PARTIAL_DIR}/", self.prefix);
        let mut used = Usage::default();
        self.walk(&self.folder_prefix(Place::new(home, &[])), |o| {
            if !o.key.starts_with(&hidden) {
                used.bytes = used.bytes.saturating_add(o.size);
                used.entries += 1;
            }
            true
        })?;
        // Records of the home's uploads, not the digests of whole files.
        let digests = format!("{hidden}{PARTIAL_DIR}/");
        let records_below = format!("{hidden}{}", home_prefix(home));
        let mut records = Vec::new();
        self.walk(&records_below, |o| {
            if !o.key.starts_with(&digests) {
                records.push(o.key[hidden.len()..].to_string());
            }
            true
        })?;
        // The signatures kept for its files: their bytes, not entries
        // (they are the server's, as upload records are).
        let signatures = self.target_of(&home_prefix(home)).signature;
        self.walk(&signatures, |o| {
            used.bytes = used.bytes.saturating_add(o.size);
            true
        })?;
        for key in records {
            let state = match self.target_of(&key).load_state() {
                Ok(Some(state)) => state,
                // Completed or swept meanwhile, or not a record.
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => continue,
                Err(e) => return Err(e),
            };
            used.entries += 1;
            used.bytes = used
                .bytes
                .saturating_add(abandoned_bytes(&state, now_secs()));
        }
        Ok(used)
    }
}

/// `HOME/`, or nothing for the root.
fn home_prefix(home: &[String]) -> String {
    home.iter().map(|part| format!("{part}/")).collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The bytes of an upload's stored parts that its home's usage counts at
/// `now`: all of them once no server runs it, none while one does (that
/// server charges them).
fn abandoned_bytes(state: &UploadState, now: u64) -> u64 {
    if now.saturating_sub(state.updated) < LIVE_WINDOW.as_secs() {
        return 0;
    }
    state.parts.iter().map(|p| p.len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::s3::record::PartRecord;

    fn state(updated: u64, lens: &[u64]) -> UploadState {
        UploadState {
            upload_id: "u".into(),
            filesize: 100,
            part_size: 50,
            parts: lens
                .iter()
                .zip(1u16..)
                .map(|(&len, number)| PartRecord {
                    number,
                    etag: String::new(),
                    len,
                    cv: String::new(),
                    root: None,
                })
                .collect(),
            owner: "o".into(),
            updated,
        }
    }

    #[test]
    fn stored_parts_count_once_no_server_runs_their_upload() {
        let now = 1_000_000;
        assert_eq!(abandoned_bytes(&state(now - 1, &[50, 20]), now), 0);
        assert_eq!(abandoned_bytes(&state(now - 60, &[50, 20]), now), 70);
        // A server lets go of an upload by writing 0 as its time.
        assert_eq!(abandoned_bytes(&state(0, &[50]), now), 50);
        assert_eq!(home_prefix(&["alice".into()]), "alice/");
        assert_eq!(home_prefix(&[]), "");
    }

    #[test]
    fn a_measure_is_believed_for_a_while_and_forgotten_on_demand() {
        let cache = UsageCache::default();
        let used = Usage {
            bytes: 5,
            entries: 1,
        };
        assert_eq!(cache.fresh("a"), None);
        cache.insert("a", used);
        assert_eq!(cache.fresh("a"), Some(used));
        cache.forget("a");
        assert_eq!(cache.fresh("a"), None);
    }
}
