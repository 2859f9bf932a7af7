//! Whole folders and moves in the object store: the digests a listing
//! shows (kept beside each object, computed by reading it when missing),
//! the removal of everything below a folder's prefix, and a file's move
//! by a copy on the store's side.

use std::io;

use super::record::{self, KnownDigest};
use super::{listing, missing, S3Store, PAGE};
use crate::storage::{Claim, Entries, ListHow, Place, Store, StoreError, StoreResult};
use crate::wire::names::PARTIAL_DIR;

impl S3Store {
    /// A folder's entries (or all below it), with digests if asked for. A
    /// folder with nothing below it, not even its marker, is missing (the
    /// home excepted): the listing's first page tells.
    pub(super) fn list_folder(&self, at: Place, how: ListHow) -> StoreResult<Entries> {
        let prefix = self.folder_prefix(at);
        let pages = listing::FolderPages::start(self.client.clone(), prefix.clone(), how.recursive)
            .map_err(StoreError::failed("listing"))?;
        let Some(pages) = pages else {
            return match at.folder.is_empty() {
                true => Ok(Box::new(std::iter::empty())),
                false => Err(missing(at)),
            };
        };
        // The listing outlives this call (a reply sends it page by page).
        let store = self.clone();
        Ok(Box::new(pages.map(move |listed| {
            let (mut entry, etag) = listed?;
            if let (true, Some(etag)) = (how.digests, etag) {
                let object = format!("{prefix}{}", entry.name);
                entry.blake3 = store
                    .digest_of(&object, &etag)
                    .map(|d| d.to_hex().to_string());
            }
            Ok(entry)
        })))
    }

    /// Deletes every key below the folder's prefix, the records of its
    /// unfinished uploads and the digests and signatures kept for its
    /// files. A record
    /// that a running upload holds is left, and said so.
    pub(super) fn remove_prefix(&self, at: Place, name: &str, claim: Claim) -> StoreResult<u64> {
        let mut inside = at.folder.to_vec();
        inside.push(name.to_string());
        let folder = Place::new(at.home, &inside);
        let prefix = self.folder_prefix(folder);
        let key_prefix = prefix[self.prefix.len()..].to_string();
        let failed = StoreError::failed("removing");
        self.forget_usage(at.home);
        let held = self
            .forget_uploads_below(&key_prefix, claim)
            .map_err(failed)?;
        let removed = self
            .delete_below(&prefix)
            .map_err(StoreError::failed("removing"))?;
        let digests = format!("{}{PARTIAL_DIR}/{PARTIAL_DIR}/{key_prefix}", self.prefix);
        self.delete_below(&digests)
            .map_err(StoreError::failed("removing"))?;
        let signatures = self.target_of(&key_prefix).signature;
        self.delete_below(&signatures)
            .map_err(StoreError::failed("removing"))?;
        if held {
            let left = crate::wire::names::display_folder(&inside);
            let why = crate::storage::Leftover::Upload;
            return Err(StoreError::Left { removed, left, why });
        }
        if removed == 0 {
            return Err(StoreError::File(io::ErrorKind::NotFound.into()));
        }
        Ok(removed)
    }

    /// A file is copied (its kept digest with it) and the old one
    /// deleted; a folder is refused: its keys cannot move at once.
    pub(super) fn move_file(
        &self,
        from_at: Place,
        from: &str,
        to_at: Place,
        to: &str,
    ) -> StoreResult<()> {
        let (source, dest) = (self.object(from_at, from), self.object(to_at, to));
        let looked = StoreError::failed("moving");
        self.check_folder(to_at)?;
        match self.client.head(&dest) {
            Ok(_) => return Err(StoreError::Exists),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(looked(e)),
        }
        if self
            .any_below(&format!("{dest}/"))
            .map_err(StoreError::failed("moving"))?
        {
            return Err(StoreError::Exists);
        }
        match self.client.head(&source) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let folder = self
                    .any_below(&format!("{source}/"))
                    .map_err(StoreError::failed("moving"))?;
                return Err(match folder {
                    true => StoreError::Unsupported(
                        "an object store cannot move a folder at once; move its files \
                         one by one (mkdir the new folder, mv each file, rm the old one)",
                    ),
                    false => StoreError::File(e),
                });
            }
            Err(e) => return Err(StoreError::Failed("moving", e)),
        }
        self.forget_usage(from_at.home);
        self.copy_and_delete(&source, &dest)
            .map_err(StoreError::failed("moving"))
    }

    /// The BLAKE3 of `object`, whose entity tag is `etag`: the one kept
    /// beside it if it still fits that tag, else computed by reading the
    /// object (and then kept). `None` when the object cannot be read.
    pub(super) fn digest_of(&self, object: &str, etag: &str) -> Option<blake3::Hash> {
        let key = object.strip_prefix(&self.prefix)?;
        let record = self.target_of(key).digest;
        let kept = self.client.get_small(&record).ok().and_then(|bytes| {
            let known: KnownDigest = serde_json::from_slice(&bytes).ok()?;
            (same_etag(&known.etag, etag))
                .then(|| blake3::Hash::from_hex(&known.blake3).ok())
                .flatten()
        });
        if kept.is_some() {
            return kept;
        }
        let mut hasher = blake3::Hasher::new();
        let body = self.client.get_from(object, 0).ok()?;
        hasher.update_reader(body).ok()?;
        let digest = hasher.finalize();
        let known = KnownDigest {
            etag: etag.to_string(),
            blake3: digest.to_hex().to_string(),
        };
        if let Ok(bytes) = serde_json::to_vec(&known) {
            let _ = self.client.put(&record, &bytes);
        }
        Some(digest)
    }

    /// Deletes every object below `prefix`, a page at a time (each page
    /// listed from the start again, as the last one is gone); returns how
    /// many went.
    fn delete_below(&self, prefix: &str) -> io::Result<u64> {
        let mut deleted = 0;
        loop {
            let page = self.client.list_page(prefix, None, None, PAGE)?;
            if page.contents.is_empty() {
                return Ok(deleted);
            }
            for object in &page.contents {
                self.client.delete(&object.key)?;
                deleted += 1;
            }
        }
    }

    /// Throws away the records of unfinished uploads into the folder with
    /// key prefix `key_prefix` (`HOME/FOLDER/`) that `claim` grants;
    /// returns whether one was held by a running upload.
    fn forget_uploads_below(&self, key_prefix: &str, claim: Claim) -> io::Result<bool> {
        let hidden = format!("{}{PARTIAL_DIR}/", self.prefix);
        let mut records = Vec::new();
        self.walk(&format!("{hidden}{key_prefix}"), |o| {
            records.push(o.key[hidden.len()..].to_string());
            true
        })?;
        let mut held = false;
        for key in records {
            let Some(_claimed) = claim(&key) else {
                held = true;
                continue;
            };
            let target = self.target_of(&key);
            match target.load_state() {
                Ok(Some(state)) if state.owner != self.owner && recently(state.updated) => {
                    held = true
                }
                Ok(Some(state)) => target.forget(&state)?,
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(held)
    }

    /// Moves a file by copying it (with its kept digest) and deleting the
    /// old one.
    fn copy_and_delete(&self, from: &str, to: &str) -> io::Result<()> {
        let (from_key, to_key) = (&from[self.prefix.len()..], &to[self.prefix.len()..]);
        self.client.copy(from, to)?;
        let (old, new) = (
            self.target_of(from_key).digest,
            self.target_of(to_key).digest,
        );
        if let Ok(bytes) = self.client.get_small(&old) {
            // A copy keeps the entity tag of a plain object, not always of
            // a multipart one: a digest that no longer fits is recomputed.
            let _ = self.client.put(&new, &bytes);
            let _ = self.client.delete(&old);
        }
        // A copy's entity tag may differ from the original's, and the
        // signature names the tag: the next put of the file goes whole.
        let _ = self.client.delete(&self.target_of(from_key).signature);
        self.client.delete(from)
    }
}

/// Whether two entity tags are the same, however each was quoted.
pub(super) fn same_etag(a: &str, b: &str) -> bool {
    let bare = |t: &str| t.replace("&quot;", "").trim_matches('"').to_string();
    !a.is_empty() && bare(a) == bare(b)
}

/// Whether a record written at `updated` belongs to an upload that runs.
fn recently(updated: u64) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    now.saturating_sub(updated) < record::LIVE_WINDOW.as_secs()
}

#[cfg(test)]
mod tests {
    use super::same_etag;

    #[test]
    fn entity_tags_match_however_quoted() {
        assert!(same_etag("\"abc\"", "abc"));
        assert!(same_etag("&quot;abc&quot;", "\"abc\""));
        assert!(!same_etag("", ""));
        assert!(!same_etag("\"abc\"", "\"abd\""));
    }
}
