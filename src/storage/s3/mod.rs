//! The store in an S3-compatible object store (Garage, MinIO, Ceph RGW,
//! AWS S3), which several servers can share.
//!
//! A file is the object `PREFIX/HOME/FOLDER/NAME`; a folder is a common
//! prefix, made visible while empty by a marker object `.../FOLDER/`.
//! Uploads are described in [`upload`]. What several servers share and
//! what each keeps to itself is in docs/DEPLOY.md.

use std::io::{self, Read};
use std::sync::Arc;
use std::time::Duration;

use crate::logging::{Event, Kind};
use crate::storage::{
    Claim, CopyOrigin, Entries, ListHow, Place, Signature, Store, StoreError, StoreResult,
    StoredFile, Upload, UploadPlan, Usage,
};
use crate::wire::names::PARTIAL_DIR;

mod answer;
pub(crate) mod budget;
pub(crate) mod client;
mod connect;
mod folders;
mod listing;
mod parts;
pub(crate) mod record;
mod signature;
pub(crate) mod tree;
pub(crate) mod upload;
pub(crate) mod usage;

use client::S3Client;
use record::{KnownDigest, Target, MAX_KEY, MAX_OBJECT, MIN_PART};
use rusty_s3::actions::ListObjectsV2Response;
use upload::S3Upload;

use usage::UsageCache;

/// Keys per listing request.
const PAGE: usize = 1000;

/// A bucket (and a prefix in it) as a store.
#[derive(Debug, Clone)]
pub(crate) struct S3Store {
    client: S3Client,
    endpoint: String,
    /// `""` or `PREFIX/`.
    prefix: String,
    /// This process, as upload records name their owner.
    owner: String,
    /// What running uploads may hold in memory.
    memory: Arc<budget::Budget>,
    usage: UsageCache,
}

impl S3Store {
    /// The key prefix of a folder: `PREFIX/HOME/FOLDER/`, or `PREFIX`.
    fn folder_prefix(&self, at: Place) -> String {
        let mut key = self.prefix.clone();
        for part in at.components() {
            key.push_str(part);
            key.push('/');
        }
        key
    }

    fn object(&self, at: Place, name: &str) -> String {
        format!("{}{}", self.prefix, at.key(name))
    }

    fn target(&self, at: Place, name: &str) -> Target {
        self.target_of(&at.key(name))
    }

    /// [`S3Store::target`], refused when its keys are too long for S3.
    fn checked_target(&self, at: Place, name: &str) -> StoreResult<Target> {
        let target = self.target(at, name);
        target.check_key()?;
        Ok(target)
    }

    /// Where the upload of the file with key `key` goes. Its record is at
    /// `PREFIX/.ftp-partial/KEY`; its digest, once complete, at
    /// `PREFIX/.ftp-partial/.ftp-partial/KEY`, which no record can be
    /// (no folder may be called `.ftp-partial`); its delta signature at
    /// `PREFIX/.ftp-partial/.ftp-partial/.ftp-partial/KEY`, for the same
    /// reason.
    fn target_of(&self, key: &str) -> Target {
        let hidden = format!("{}{PARTIAL_DIR}/", self.prefix);
        Target {
            client: self.client.clone(),
            object: format!("{}{key}", self.prefix),
            record: format!("{hidden}{key}"),
            digest: format!("{hidden}{PARTIAL_DIR}/{key}"),
            signature: format!("{hidden}{PARTIAL_DIR}/{PARTIAL_DIR}/{key}"),
            owner: self.owner.clone(),
        }
    }

    /// Whether anything is stored below `prefix` (a marker included).
    fn any_below(&self, prefix: &str) -> io::Result<bool> {
        let page = self.client.list_page(prefix, None, None, 1)?;
        Ok(!page.contents.is_empty())
    }

    /// Measures anew the next time: this server changed the home.
    fn forget_usage(&self, home: &[String]) {
        self.usage.forget(&home.join("/"));
    }

    /// Calls `each` with every object below `prefix`, page by page, until
    /// it returns false.
    fn walk(&self, prefix: &str, mut each: impl FnMut(&Listed) -> bool) -> io::Result<()> {
        self.pages(prefix, None, |page| {
            page.contents.iter().all(|c| {
                each(&Listed {
                    key: &c.key,
                    size: c.size.unwrap_or(0),
                    mtime: c.last_modified.as_deref().map_or(0, unix_secs),
                })
            })
        })
    }

    /// Calls `each` with every page of the listing below `prefix` (rolled
    /// up at `delimiter`, if given), until it returns false.
    fn pages(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        mut each: impl FnMut(&ListObjectsV2Response) -> bool,
    ) -> io::Result<()> {
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_page(prefix, delimiter, token.as_deref(), PAGE)?;
            if !each(&page) {
                return Ok(());
            }
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => return Ok(()),
            }
        }
    }
}

/// An object as a listing shows it.
struct Listed<'a> {
    key: &'a str,
    size: u64,
    mtime: u64,
}

/// The error for a folder that is not there.
fn missing(at: Place) -> StoreError {
    StoreError::Folder(crate::storage::FolderError::Missing(
        crate::wire::names::display_folder(at.folder),
    ))
}

/// Seconds since the epoch of an RFC 3339 time.
fn unix_secs(text: &str) -> u64 {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_second().max(0) as u64)
        .unwrap_or(0)
}

impl Store for S3Store {
    fn describe(&self) -> String {
        format!(
            "bucket {}{} at {}",
            self.client.bucket(),
            match self.prefix.as_str() {
                "" => String::new(),
                p => format!(" under {}", p.trim_end_matches('/')),
            },
            self.endpoint
        )
    }

    /// Homes need no marker: a folder exists once something is in it.
    fn open_home(&self, _home: &[String]) -> StoreResult<()> {
        Ok(())
    }

    fn check_folder(&self, at: Place) -> StoreResult<()> {
        if at.folder.is_empty() {
            return Ok(());
        }
        match self.any_below(&self.folder_prefix(at)) {
            Ok(true) => Ok(()),
            Ok(false) => Err(missing(at)),
            Err(e) => Err(StoreError::Failed("checking the folder", e)),
        }
    }

    /// See [`folders`].
    fn list(&self, at: Place, how: ListHow) -> StoreResult<Entries> {
        self.list_folder(at, how)
    }

    /// Writes a marker for the folder and each parent without one.
    fn make_folder(&self, at: Place) -> StoreResult<()> {
        let target = self.folder_prefix(at);
        if target.len() > MAX_KEY {
            let (bytes, max) = (target.len(), MAX_KEY);
            return Err(StoreError::KeyTooLong { bytes, max });
        }
        if self
            .any_below(&target)
            .map_err(StoreError::failed("checking the folder"))?
        {
            return Err(StoreError::Exists);
        }
        // Its markers are entries of the home's quota.
        self.forget_usage(at.home);
        for depth in 1..=at.folder.len() {
            let marker = self.folder_prefix(Place::new(at.home, &at.folder[..depth]));
            let there = depth < at.folder.len()
                && self
                    .any_below(&marker)
                    .map_err(StoreError::failed("creating a folder"))?;
            if !there {
                self.client
                    .put(&marker, b"")
                    .map_err(StoreError::failed("creating a folder"))?;
            }
        }
        Ok(())
    }

    fn file_len(&self, at: Place, name: &str) -> StoreResult<Option<u64>> {
        let object = self.object(at, name);
        if object.len() > MAX_KEY {
            let (bytes, max) = (object.len(), MAX_KEY);
            return Err(StoreError::KeyTooLong { bytes, max });
        }
        match self.client.head(&object) {
            Ok(info) => Ok(Some(info.size)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Failed("looking the file up", e)),
        }
    }

    /// A file, or a folder that holds nothing but its marker.
    fn remove(&self, at: Place, name: &str) -> StoreResult<()> {
        let object = self.object(at, name);
        match self.client.head(&object) {
            Ok(_) => {
                self.client
                    .delete(&object)
                    .map_err(StoreError::failed("removing"))?;
                let target = self.target(at, name);
                let _ = self.client.delete(&target.digest);
                let _ = self.client.delete(&target.signature);
                self.forget_usage(at.home);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StoreError::Failed("removing", e)),
        }
        let marker = format!("{object}/");
        let page = self
            .client
            .list_page(&marker, None, None, 2)
            .map_err(StoreError::failed("removing"))?;
        match page.contents.as_slice() {
            [] => Err(StoreError::File(io::ErrorKind::NotFound.into())),
            [only] if only.key == marker => self
                .client
                .delete(&marker)
                .map_err(StoreError::failed("removing")),
            _ => Err(StoreError::NotEmpty),
        }
    }

    /// See [`folders`].
    fn remove_tree(&self, at: Place, name: &str, claim: Claim) -> StoreResult<u64> {
        self.remove_prefix(at, name, claim)
    }

    /// See [`folders`].
    fn rename(&self, from_at: Place, from: &str, to_at: Place, to: &str) -> StoreResult<()> {
        self.move_file(from_at, from, to_at, to)
    }

    fn remove_partial(&self, at: Place, name: &str) -> StoreResult<bool> {
        let Ok(target) = self.checked_target(at, name) else {
            // No upload can have a record too long to store.
            return Ok(false);
        };
        // Its parts counted in the home's usage.
        self.forget_usage(at.home);
        match target.load_state() {
            Ok(Some(state)) => target
                .forget(&state)
                .map(|()| true)
                .map_err(StoreError::failed("removing the partial upload")),
            Ok(None) => Ok(false),
            Err(e) => Err(StoreError::Failed("removing the partial upload", e)),
        }
    }

    fn kept(&self, at: Place, name: &str, filesize: u64) -> StoreResult<u64> {
        self.checked_target(at, name)?
            .kept(filesize)
            .map_err(StoreError::failed("reading the upload record"))
    }

    fn begin_upload(
        &self,
        at: Place,
        name: &str,
        plan: UploadPlan,
    ) -> StoreResult<Box<dyn Upload>> {
        let target = self.checked_target(at, name)?;
        if plan.filesize > MAX_OBJECT {
            let (max, why) = (MAX_OBJECT, "S3's limit on one object");
            return Err(StoreError::TooLarge { max, why });
        }
        let needed = upload::memory_for(plan.filesize);
        let memory = match self.memory.take(&at.home.join("/"), needed) {
            Ok(memory) => memory,
            Err(budget::Refusal::Busy) => return Err(StoreError::Overloaded),
            Err(budget::Refusal::TooMuch { most }) => {
                let max = upload::largest_within(most);
                let why = "what one upload may hold in memory: a quarter of --upload-memory";
                return Err(StoreError::TooLarge { max, why });
            }
        };
        // What this server stores changes the home's usage.
        self.forget_usage(at.home);
        let ended = (self.usage.clone(), at.home.join("/"));
        let upload = S3Upload::begin(target, plan, memory, ended)
            .map_err(upload::upload_error("starting the upload"))?;
        Ok(Box::new(upload))
    }

    /// The one kept beside the object, if it was cut from this version
    /// of it (see [`signature`]).
    fn signature(&self, at: Place, name: &str) -> StoreResult<Signature> {
        let target = self.checked_target(at, name)?;
        let info = self
            .client
            .head(&target.object)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => StoreError::File(e),
                _ => StoreError::Failed("looking the file up", e),
            })?;
        match signature::load(&self.client, &target.signature, &info) {
            Ok(Some(kept)) => Ok(kept),
            Ok(None) => Err(StoreError::Unsupported(
                "the object store keeps no signature of this version of the file (one is \
                 cut only while an upload sees all of a file's bytes), so it is sent whole \
                 this time, which keeps one",
            )),
            Err(e) => Err(StoreError::Failed("reading the file's signature", e)),
        }
    }

    fn open_file(&self, at: Place, name: &str) -> StoreResult<Box<dyn StoredFile>> {
        let object = self.object(at, name);
        let info = self.client.head(&object).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::File(e),
            _ => StoreError::Failed("opening the file", e),
        })?;
        // Small files are hashed as they are served; large ones have
        // their digest recorded.
        let digest = match info.size >= MIN_PART {
            true => self
                .client
                .get_small(&self.target(at, name).digest)
                .ok()
                .and_then(|bytes| KnownDigest::of(&bytes, &info.etag)),
            false => None,
        };
        Ok(Box::new(S3File {
            client: self.client.clone(),
            object,
            size: info.size,
            mtime: info.mtime,
            etag: info.etag,
            digest,
        }))
    }

    /// See [`usage`]: believed for [`usage::USAGE_TTL`].
    fn usage(&self, home: &[String]) -> StoreResult<Usage> {
        let id = home.join("/");
        if let Some(used) = self.usage.fresh(&id) {
            return Ok(used);
        }
        let used = self
            .measure(home)
            .map_err(StoreError::failed("measuring usage"))?;
        self.usage.insert(&id, used);
        Ok(used)
    }

    /// An object store has no free space to speak of.
    fn free_space(&self, _at: Place) -> StoreResult<Option<u64>> {
        Ok(None)
    }

    /// Aborts multipart uploads whose record was last written `max_age`
    /// ago or more.
    fn sweep(&self, max_age: Duration, claim: Claim) -> usize {
        let hidden = format!("{}{PARTIAL_DIR}/", self.prefix);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut stale = Vec::new();
        let digests = format!("{hidden}{PARTIAL_DIR}/");
        let walked = self.walk(&hidden, |o| {
            if !o.key.starts_with(&digests) && now.saturating_sub(o.mtime) >= max_age.as_secs() {
                stale.push(o.key[hidden.len()..].to_string());
            }
            true
        });
        if let Err(e) = walked {
            Event::new(Kind::Warning).warn(format_args!("sweeping partial uploads: {e}"));
            return 0;
        }
        let mut removed = 0;
        for key in stale {
            let Some(_held) = claim(&key) else { continue };
            let target = self.target_of(&key);
            if let Ok(Some(state)) = target.load_state() {
                if target.forget(&state).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// An object, opened for reading.
struct S3File {
    client: S3Client,
    object: String,
    size: u64,
    mtime: u64,
    etag: String,
    digest: Option<blake3::Hash>,
}

impl StoredFile for S3File {
    fn size(&self) -> u64 {
        self.size
    }

    fn mtime(&self) -> u64 {
        self.mtime
    }

    fn digest(&self) -> Option<blake3::Hash> {
        self.digest
    }

    /// The object as it was opened: a copy of a replaced one is refused.
    fn copy_origin(&self) -> Option<CopyOrigin> {
        (!self.etag.is_empty()).then(|| CopyOrigin::Object {
            key: self.object.clone(),
            etag: self.etag.clone(),
        })
    }

    /// A ranged GET; nothing is asked for at the very end.
    fn read_from(&mut self, offset: u64) -> io::Result<Box<dyn Read + Send + '_>> {
        if offset >= self.size {
            return Ok(Box::new(io::empty()));
        }
        Ok(Box::new(self.client.get_from(&self.object, offset)?))
    }

    /// A GET of exactly those bytes, not of the rest of the object.
    fn read_range(&mut self, offset: u64, len: u64) -> io::Result<Box<dyn Read + Send + '_>> {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(Box::new(io::empty()));
        }
        Ok(Box::new(self.client.get_range(&self.object, offset..end)?))
    }

    fn into_reader(self: Box<Self>, offset: u64) -> io::Result<Box<dyn Read + Send>> {
        if offset >= self.size {
            return Ok(Box::new(io::empty()));
        }
        Ok(Box::new(self.client.get_from(&self.object, offset)?))
    }
}
