//! A folder of the object store listed one page of keys at a time: the
//! next page is asked for only when the last one has been taken, so that a
//! folder of any size costs one page of memory.

use std::collections::VecDeque;

use rusty_s3::actions::ListObjectsV2Response;

use super::client::S3Client;
use super::{unix_secs, PAGE};
use crate::storage::{StoreError, StoreResult};
use crate::wire::message::{Entry, EntryKind};
use crate::wire::names::PARTIAL_DIR;

/// The entries of one folder, page by page.
pub(super) struct FolderPages<'s> {
    client: &'s S3Client,
    /// The folder's key prefix, ending in `/`.
    prefix: String,
    /// The entries of the page taken last, not yet handed out.
    ready: VecDeque<Entry>,
    /// Where the next page starts; `None` after the last page.
    token: Option<String>,
}

impl<'s> FolderPages<'s> {
    /// Asks for the first page. Returns `None` when nothing at all is
    /// stored below `prefix`, not even a folder's marker.
    ///
    /// Fails when the store cannot be listed.
    pub(super) fn start(
        client: &'s S3Client,
        prefix: String,
    ) -> std::io::Result<Option<FolderPages<'s>>> {
        let first = client.list_page(&prefix, Some("/"), None, PAGE)?;
        if first.contents.is_empty() && first.common_prefixes.is_empty() {
            return Ok(None);
        }
        let mut pages = FolderPages {
            client,
            prefix,
            ready: VecDeque::new(),
            token: None,
        };
        pages.load(first);
        Ok(Some(pages))
    }

    /// Makes a page's objects and folders the entries to hand out next,
    /// merged in name order, as the store lists keys.
    fn load(&mut self, page: ListObjectsV2Response) {
        let below = |key: &str| key[self.prefix.len().min(key.len())..].to_string();
        let objects = page.contents.iter().map(|c| Entry {
            name: below(&c.key),
            kind: EntryKind::File,
            size: c.size.unwrap_or(0),
            mtime: c.last_modified.as_deref().map_or(0, unix_secs),
            blake3: None,
        });
        let folders = page.common_prefixes.iter().map(|p| Entry {
            name: below(&p.prefix).trim_end_matches('/').to_string(),
            kind: EntryKind::Dir,
            size: 0,
            mtime: 0,
            blake3: None,
        });
        let mut entries: Vec<_> = objects
            .chain(folders)
            .filter(|e| !e.name.is_empty() && e.name != PARTIAL_DIR)
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        self.ready = entries.into();
        self.token = page.next_continuation_token;
    }
}

impl Iterator for FolderPages<'_> {
    type Item = StoreResult<Entry>;

    fn next(&mut self) -> Option<StoreResult<Entry>> {
        loop {
            if let Some(entry) = self.ready.pop_front() {
                return Some(Ok(entry));
            }
            let token = self.token.take()?;
            match self
                .client
                .list_page(&self.prefix, Some("/"), Some(&token), PAGE)
            {
                Ok(page) => self.load(page),
                Err(e) => return Some(Err(StoreError::Failed("listing", e))),
            }
        }
    }
}
