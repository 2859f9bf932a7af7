//! Folders inside the home: ls, pwd, cd, mkdir and rm.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{bad_folder, bad_name, internal, not_found};
use crate::server::session::Session;
use crate::storage::local;
use crate::wire::message::{ErrorCode, ErrorReply, Folder, Listing, Removed};
use crate::wire::names::{display_folder, escape, resolve_folder, validate_name, PARTIAL_DIR};

impl Session<'_> {
    /// The current folder on disk, checked again on every use.
    pub(crate) fn folder(&self) -> Result<PathBuf, ErrorReply> {
        local::folder(&self.home, &self.cwd).map_err(bad_folder)
    }

    pub(crate) fn ls(&self) -> Result<Listing, ErrorReply> {
        let dir = self.folder()?;
        local::list(&dir).map_err(|e| internal("listing", &e))
    }

    pub(crate) fn pwd(&self) -> Folder {
        Folder {
            path: display_folder(&self.cwd),
        }
    }

    pub(crate) fn cd(&mut self, path: &str) -> Result<Folder, ErrorReply> {
        let target = resolve_folder(&self.cwd, path).map_err(bad_name)?;
        local::folder(&self.home, &target).map_err(bad_folder)?;
        self.cwd = target;
        Ok(self.pwd())
    }

    /// Creates a folder and any missing parents, refusing to step through
    /// anything that is not a real folder.
    pub(crate) fn mkdir(&self, path: &str) -> Result<Folder, ErrorReply> {
        let target = resolve_folder(&self.cwd, path).map_err(bad_name)?;
        let Some((last, parents)) = target.split_last() else {
            return Err(ErrorReply::new(ErrorCode::Exists, "the home folder exists"));
        };
        let mut dir = self.home.clone();
        for (i, part) in parents.iter().enumerate() {
            dir.push(part);
            match fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // Must be a real folder, not a file or a link.
                    local::folder(&self.home, &parents[..=i]).map_err(bad_folder)?;
                }
                Err(e) => return Err(internal("creating a folder", &e)),
            }
        }
        match fs::create_dir(dir.join(last)) {
            Ok(()) => Ok(Folder {
                path: display_folder(&target),
            }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(ErrorReply::new(
                ErrorCode::Exists,
                format!("{} already exists", display_folder(&target)),
            )),
            Err(e) => Err(internal("creating a folder", &e)),
        }
    }

    /// Removes a file or an empty folder, and any partial upload of that
    /// name that no connection is running, so that a user can free quota
    /// and remove folders that only held one.
    pub(crate) fn rm(&self, filename: &str) -> Result<Removed, ErrorReply> {
        let name = validate_name(filename).map_err(bad_name)?;
        let dir = self.folder()?;
        let path = dir.join(name);
        let dropped_partial = self.remove_stale_partial(&dir, name)?;
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(_) if dropped_partial => {
                return Ok(Removed {
                    filename: name.to_string(),
                })
            }
            Err(e) => return Err(not_found(name, &e)),
        };
        let result = if meta.is_dir() {
            // An empty partial-upload folder does not count as content.
            let _ = fs::remove_dir(path.join(PARTIAL_DIR));
            fs::remove_dir(&path)
        } else {
            fs::remove_file(&path)
        };
        if result.is_ok() && meta.is_file() {
            self.ctx.usage.remove(&self.home, meta.len());
        }
        match result {
            Ok(()) => Ok(Removed {
                filename: name.to_string(),
            }),
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => Err(ErrorReply::new(
                ErrorCode::NotEmpty,
                format!("folder {} is not empty", escape(name)),
            )),
            Err(e) => Err(internal("removing", &e)),
        }
    }

    /// Deletes the partial upload of `name` in `dir` unless an upload holds
    /// it; returns whether there was one.
    fn remove_stale_partial(&self, dir: &Path, name: &str) -> Result<bool, ErrorReply> {
        let partial = local::partial_path(dir, name);
        let Some(_held) = self.ctx.locks.try_lock(&partial, 0) else {
            return Ok(false);
        };
        let len = local::regular_len(&partial).unwrap_or(0);
        match fs::remove_file(&partial) {
            Ok(()) => {
                self.ctx.usage.remove(&self.home, len);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(internal("removing the partial upload", &e)),
        }
    }
}
