//! Folders inside the home: pwd, cd, mkdir and rm.

use super::{bad_name, store_refusal};
use crate::server::quota::check_entries;
use crate::server::session::Session;
use crate::storage::{Place, StoreError};
use crate::wire::message::{ErrorCode, ErrorReply, Folder, Removed};
use crate::wire::names::{display_folder, resolve_folder, validate_name};

impl Session<'_> {
    pub(crate) fn pwd(&self) -> Folder {
        Folder {
            path: display_folder(&self.cwd),
        }
    }

    pub(crate) fn cd(&mut self, path: &str) -> Result<Folder, ErrorReply> {
        let target = resolve_folder(&self.cwd, path).map_err(bad_name)?;
        let at = Place::new(&self.home, &target);
        self.ctx
            .store
            .check_folder(at)
            .map_err(|e| store_refusal(e, ""))?;
        self.cwd = target;
        Ok(self.pwd())
    }

    /// Creates a folder and any missing parents, refusing to step through
    /// anything that is not a real folder.
    pub(crate) fn mkdir(&self, path: &str) -> Result<Folder, ErrorReply> {
        let target = resolve_folder(&self.cwd, path).map_err(bad_name)?;
        let shown = display_folder(&target);
        if target.is_empty() {
            return Err(ErrorReply::new(ErrorCode::Exists, "the home folder exists"));
        }
        // The check and the folders it allows are one step.
        let home = self.home.join("/");
        let _gate = self.max_files.map(|_| self.ctx.entry_gates.enter(&home));
        if let Some(max) = self.max_files {
            check_entries(self.used()?.entries, self.missing_folders(&target), max)?;
        }
        match self.ctx.store.make_folder(Place::new(&self.home, &target)) {
            Ok(()) => Ok(Folder { path: shown }),
            Err(StoreError::Exists) => Err(ErrorReply::new(
                ErrorCode::Exists,
                format!("{shown} already exists"),
            )),
            Err(e) => Err(store_refusal(e, &shown)),
        }
    }

    /// How many folders of the path `target` are not there yet: those a
    /// mkdir would create.
    fn missing_folders(&self, target: &[String]) -> u64 {
        let store = &self.ctx.store;
        let there = (0..=target.len())
            .rev()
            .find(|&n| {
                store
                    .check_folder(Place::new(&self.home, &target[..n]))
                    .is_ok()
            })
            .unwrap_or(0);
        (target.len() - there) as u64
    }

    /// Removes a file or an empty folder, and any partial upload of that
    /// name that no connection is running, so that a user can free quota
    /// and remove folders that only held one.
    pub(crate) fn rm(&self, filename: &str) -> Result<Removed, ErrorReply> {
        let name = validate_name(filename).map_err(bad_name)?;
        let removed = Removed {
            filename: name.to_string(),
            entries: 1,
        };
        let dropped_partial = self.remove_stale_partial(name)?;
        match self.ctx.store.remove(self.place(), name) {
            Ok(()) => Ok(removed),
            Err(StoreError::File(_)) if dropped_partial => Ok(removed),
            Err(e) => Err(store_refusal(e, name)),
        }
    }

    /// Deletes the partial upload of `name` unless an upload holds it;
    /// returns whether there was one.
    fn remove_stale_partial(&self, name: &str) -> Result<bool, ErrorReply> {
        let at = self.place();
        let Some(_held) = self.ctx.locks.try_lock(&at.key(name)) else {
            return Ok(false);
        };
        self.ctx
            .store
            .remove_partial(at, name)
            .map_err(|e| store_refusal(e, name))
    }
}
