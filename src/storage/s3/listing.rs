//! A folder of the object store listed one page of keys at a time: the
//! next page is asked for only when the last one has been taken, so that a
//! folder of any size costs one page of memory.
//!
//! A plain listing asks the store to roll deeper keys up at `/`. A
//! recursive one lists every key below the folder, in key order, and shows
//! the folders the keys imply (and the markers of empty ones) right before
//! the first key inside them: keys that share a folder's prefix come
//! together in key order, so each folder is shown once, before what it
//! holds.

use std::collections::VecDeque;

use rusty_s3::actions::ListObjectsV2Response;

use super::client::S3Client;
use super::{unix_secs, PAGE};
use crate::storage::{StoreError, StoreResult};
use crate::wire::message::{Entry, EntryKind};
use crate::wire::names::PARTIAL_DIR;

/// An entry, with the object's entity tag for a file.
pub(super) type Listed = (Entry, Option<String>);

/// The entries of one folder (or of everything below it), page by page.
pub(super) struct FolderPages {
    client: S3Client,
    /// The folder's key prefix, ending in `/`.
    prefix: String,
    recursive: bool,
    /// The entries of the page taken last, not yet handed out.
    ready: VecDeque<Listed>,
    /// Where the next page starts; `None` after the last page.
    token: Option<String>,
    /// In a recursive listing, the folders of the last key, from the top:
    /// those already shown.
    open: Vec<String>,
}

impl FolderPages {
    /// Asks for the first page. Returns `None` when nothing at all is
    /// stored below `prefix`, not even a folder's marker.
    ///
    /// Fails when the store cannot be listed.
    pub(super) fn start(
        client: S3Client,
        prefix: String,
        recursive: bool,
    ) -> std::io::Result<Option<FolderPages>> {
        let first = client.list_page(&prefix, delimiter(recursive), None, PAGE)?;
        if first.contents.is_empty() && first.common_prefixes.is_empty() {
            return Ok(None);
        }
        let mut pages = FolderPages {
            client,
            prefix,
            recursive,
            ready: VecDeque::new(),
            token: None,
            open: Vec::new(),
        };
        pages.load(first);
        Ok(Some(pages))
    }

    /// Makes a page's objects and folders the entries to hand out next.
    fn load(&mut self, page: ListObjectsV2Response) {
        self.token = page.next_continuation_token.clone();
        match self.recursive {
            true => self.load_tree(&page),
            false => self.load_folder(&page),
        }
    }

    /// One folder's page: objects and rolled-up folders merged in name
    /// order, as the store lists keys.
    fn load_folder(&mut self, page: &ListObjectsV2Response) {
        let below = |key: &str| key[self.prefix.len().min(key.len())..].to_string();
        let objects = page.contents.iter().map(|c| {
            let entry = file(below(&c.key), c.size, c.last_modified.as_deref());
            (entry, c.etag.clone())
        });
        let folders = page.common_prefixes.iter().map(|p| {
            let name = below(&p.prefix).trim_end_matches('/').to_string();
            (folder(name, 0), None)
        });
        let mut entries: Vec<_> = objects
            .chain(folders)
            .filter(|(e, _)| !e.name.is_empty() && e.name != PARTIAL_DIR)
            .collect();
        entries.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        self.ready = entries.into();
    }

    /// A page of every key below the folder, with the folders they imply.
    fn load_tree(&mut self, page: &ListObjectsV2Response) {
        for c in &page.contents {
            let Some(rel) = c.key.get(self.prefix.len()..) else {
                continue;
            };
            let parts: Vec<&str> = rel.split('/').collect();
            if rel.is_empty() || parts.contains(&PARTIAL_DIR) {
                continue;
            }
            // A marker (`a/b/`) ends in an empty part: it is its folder.
            let (name, folders) = parts.split_last().unwrap_or((&"", &[]));
            let mtime = c.last_modified.as_deref().map_or(0, unix_secs);
            let shared = self
                .open
                .iter()
                .zip(folders)
                .take_while(|(a, b)| a == *b)
                .count();
            self.open.truncate(shared);
            for part in &folders[shared..] {
                self.open.push(part.to_string());
                let shown_mtime = if name.is_empty() { mtime } else { 0 };
                self.ready
                    .push_back((folder(self.open.join("/"), shown_mtime), None));
            }
            if !name.is_empty() {
                let entry = file(rel.to_string(), c.size, c.last_modified.as_deref());
                self.ready.push_back((entry, c.etag.clone()));
            }
        }
    }
}

fn delimiter(recursive: bool) -> Option<&'static str> {
    (!recursive).then_some("/")
}

fn file(name: String, size: Option<u64>, modified: Option<&str>) -> Entry {
    Entry {
        name,
        kind: EntryKind::File,
        size: size.unwrap_or(0),
        mtime: modified.map_or(0, unix_secs),
        blake3: None,
    }
}

fn folder(name: String, mtime: u64) -> Entry {
    Entry {
        name,
        kind: EntryKind::Dir,
        size: 0,
        mtime,
        blake3: None,
    }
}

impl Iterator for FolderPages {
    type Item = StoreResult<Listed>;

    fn next(&mut self) -> Option<StoreResult<Listed>> {
        loop {
            if let Some(entry) = self.ready.pop_front() {
                return Some(Ok(entry));
            }
            let token = self.token.take()?;
            let delimiter = delimiter(self.recursive);
            match self
                .client
                .list_page(&self.prefix, delimiter, Some(&token), PAGE)
            {
                Ok(page) => self.load(page),
                Err(e) => return Some(Err(StoreError::Failed("listing", e))),
            }
        }
    }
}
