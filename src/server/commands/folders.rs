//! Folders inside the home: pwd, cd, mkdir, rm (of a file, an empty
//! folder, or a whole tree) and mv.

use super::refusals::{bad_name, store_refusal};
use crate::server::hooks::{Event, EventKind};
use crate::server::quota::check_entries;
use crate::server::session::Session;
use crate::storage::{FolderError, ListHow, Place, StoreError};
use crate::wire::message::{EntryKind, ErrorCode, ErrorReply, Folder, Moved, Removed};
use crate::wire::names::{
    display_folder, escape, fits_below, resolve_folder, MAX_PATH_DEPTH, MAX_PATH_LEN,
};

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
    /// anything that is not a real folder. A folder that is there already
    /// is no error, as with `mkdir -p` (older clients ask for that with
    /// `parents`; it is the rule now); a file in the way still is.
    pub(crate) fn mkdir(&self, path: &str, _parents: bool) -> Result<Folder, ErrorReply> {
        let target = resolve_folder(&self.cwd, path).map_err(bad_name)?;
        let shown = display_folder(&target);
        if target.is_empty() {
            return Ok(Folder { path: shown });
        }
        // The check and the folders it allows are one step.
        let _turn = self.turn();
        if let Some(max) = self.max_files {
            check_entries(self.used()?.entries, self.missing_folders(&target), max)?;
        }
        let at = Place::new(&self.home, &target);
        match self.ctx.store.make_folder(at) {
            Ok(()) => Ok(Folder { path: shown }),
            Err(StoreError::Exists) => match self.ctx.store.check_folder(at) {
                Ok(()) => Ok(Folder { path: shown }),
                Err(StoreError::Folder(FolderError::NotFolder(_))) => Err(ErrorReply::new(
                    ErrorCode::Exists,
                    format!("{} exists and is not a folder", escape(&shown)),
                )),
                Err(e) => Err(store_refusal(e, &shown)),
            },
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
    /// and remove folders that only held one. With `recursive`, a folder
    /// goes with everything in it.
    pub(crate) fn rm(&self, path: &str, recursive: bool) -> Result<Removed, ErrorReply> {
        let (folder, name) = self.resolve_file(path)?;
        let at = Place::new(&self.home, &folder);
        let removed = |entries| Removed {
            filename: path.to_string(),
            entries,
        };
        let _turn = self.turn();
        let event = self.delete_event(path, at, &name);
        let dropped_partial = self.remove_stale_partial(at, &name)?;
        let done = match self.ctx.store.remove(at, &name) {
            Ok(()) => Ok(removed(1)),
            Err(StoreError::File(_)) if dropped_partial => Ok(removed(1)),
            Err(StoreError::NotEmpty) if recursive => self.rm_tree(at, &name).map(removed),
            Err(e) => Err(store_refusal(e, path)),
        };
        if let (Ok(_), Some(event)) = (&done, event) {
            self.ctx.hooks.fire(event);
        }
        done
    }

    /// The delete hook's event for `path`, if that hook is set, with the
    /// size of the file it names (0 for a folder).
    fn delete_event(&self, path: &str, at: Place, name: &str) -> Option<Event> {
        if !self.ctx.hooks.wants(EventKind::Delete) {
            return None;
        }
        let size = self.ctx.store.file_len(at, name).ok().flatten();
        let event = self.event(EventKind::Delete, path);
        Some(event.sized(size.unwrap_or(0), None, false))
    }

    /// Removes the folder `name` in `at` and all it holds, partial uploads
    /// included unless an upload runs into one; returns how many files and
    /// folders went.
    fn rm_tree(&self, at: Place, name: &str) -> Result<u64, ErrorReply> {
        let locks = &self.ctx.locks;
        let claim = |key: &str| {
            let held = locks.try_lock(key)?;
            Some(Box::new(held) as Box<dyn Send>)
        };
        let mut inside = at.folder.to_vec();
        inside.push(name.to_string());
        self.ctx
            .store
            .remove_tree(at, name, &claim)
            .map_err(|e| store_refusal(e, &display_folder(&inside)))
    }

    /// Deletes the partial upload of `name` unless an upload holds it;
    /// returns whether there was one.
    fn remove_stale_partial(&self, at: Place, name: &str) -> Result<bool, ErrorReply> {
        let Some(_held) = self.ctx.locks.try_lock(&at.key(name)) else {
            return Ok(false);
        };
        self.ctx
            .store
            .remove_partial(at, name)
            .map_err(|e| store_refusal(e, name))
    }

    /// Renames or moves a file or a folder inside the home. Nothing may be
    /// at `to`, and a folder cannot go inside itself.
    pub(crate) fn mv(&self, from: &str, to: &str) -> Result<Moved, ErrorReply> {
        let (from_folder, from_name) = self.resolve_file(from)?;
        let (to_folder, to_name) = self.resolve_file(to)?;
        let full = |folder: &[String], name: &str| {
            let mut path = folder.to_vec();
            path.push(name.to_string());
            path
        };
        let (source, dest) = (full(&from_folder, &from_name), full(&to_folder, &to_name));
        let moved = Moved {
            from: display_folder(&source),
            to: display_folder(&dest),
        };
        if dest.starts_with(&source) {
            let why = match dest == source {
                true => "is where it is already",
                false => "cannot go inside itself",
            };
            return Err(ErrorReply::new(
                ErrorCode::BadName,
                format!("{} {why}", escape(&moved.from)),
            ));
        }
        let from_at = Place::new(&self.home, &from_folder);
        let to_at = Place::new(&self.home, &to_folder);
        let _turn = self.turn();
        // A running upload's lock and partial file are found by its path:
        // a folder above one stays where it is until the upload is done.
        if self.ctx.locks.runs_below(&from_at.key(&from_name)) {
            return Err(ErrorReply::new(
                ErrorCode::Busy,
                format!(
                    "{} holds an upload that is running; move it once the upload is done",
                    escape(&moved.from)
                ),
            ));
        }
        self.check_fits(&source, &dest, &moved)?;
        match self.ctx.store.rename(from_at, &from_name, to_at, &to_name) {
            Ok(()) => Ok(moved),
            Err(StoreError::Exists) => Err(ErrorReply::new(
                ErrorCode::Exists,
                format!("{} already exists", escape(&moved.to)),
            )),
            Err(e @ StoreError::File(_)) => Err(store_refusal(e, &moved.from)),
            Err(e) => Err(store_refusal(e, &moved.to)),
        }
    }
}

impl Session<'_> {
    /// Refuses a move of the folder `source` to `dest` that would take a
    /// name below it past the depth or the length limit (see
    /// [`fits_below`]); the tree is walked in the turn that moves it, so
    /// nothing grows below it meanwhile. A file's new path was checked as
    /// the request was read.
    fn check_fits(
        &self,
        source: &[String],
        dest: &[String],
        moved: &Moved,
    ) -> Result<(), ErrorReply> {
        let store = &self.ctx.store;
        let at = Place::new(&self.home, source);
        if store.check_folder(at).is_err() {
            return Ok(());
        }
        let too_deep = || {
            ErrorReply::new(
                ErrorCode::BadName,
                format!(
                    "{} cannot go to {}: a path below it would be deeper than \
                     {MAX_PATH_DEPTH} folders or longer than {MAX_PATH_LEN} bytes",
                    escape(&moved.from),
                    escape(&moved.to)
                ),
            )
        };
        if !fits_below(dest, 0, 0) {
            return Err(too_deep());
        }
        let how = ListHow {
            recursive: true,
            digests: false,
        };
        let (mut depth, mut len) = (0, 0);
        let entries = store
            .list(at, how)
            .map_err(|e| store_refusal(e, &moved.from))?;
        for entry in entries {
            let entry = entry.map_err(|e| store_refusal(e, &moved.from))?;
            let folders =
                entry.name.matches('/').count() + usize::from(entry.kind == EntryKind::Dir);
            depth = depth.max(folders);
            len = len.max(entry.name.len());
            if !fits_below(dest, depth, len) {
                return Err(too_deep());
            }
        }
        Ok(())
    }
}
