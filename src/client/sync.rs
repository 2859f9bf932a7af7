//! `sync`: bring a folder up to date from another, on the other side of
//! the connection, moving only what differs.
//!
//! Both trees are listed first (the server's in one streamed request), the
//! difference is planned here without any I/O, and the plan runs as one
//! pipelined batch. Files are equal when their size and modification time
//! (whole seconds) are, or with `checksum` when their BLAKE3 is; the
//! server keeps the digests of its files, so only the local side hashes.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::client::batch::{Download, Step, Upload};
use crate::client::beneath::{make_below, make_parent_below, Refused};
use crate::client::tree::{join, local_path, LocalTree, RemoteEntry};
use crate::error::{Error, Result};
use crate::wire::message::EntryKind;

/// What a sync does.
#[derive(Debug, Default)]
pub(crate) struct SyncPlan {
    /// Work on the server, and transfers, in order.
    pub(crate) steps: Vec<Step>,
    /// Local folders to make before the downloads (fetching).
    pub(crate) local_folders: Vec<PathBuf>,
    /// Local files and folders to remove first (fetching): extras with
    /// `--delete`, and whatever stands where the other kind must go.
    pub(crate) local_removals: Vec<PathBuf>,
    /// Files already up to date.
    pub(crate) unchanged: u64,
    /// Local folders the server has a file for (fetching without
    /// `--delete`): kept, and reported.
    pub(crate) clashes: Vec<PathBuf>,
}

/// How two files are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compare {
    /// Size and modification time.
    SizeAndTime,
    /// BLAKE3 (when the sizes are equal).
    Checksum,
}

/// A file on the local side, as the planner sees it.
pub(crate) fn local_differs(
    local: &crate::client::tree::LocalFile,
    remote: &RemoteEntry,
    compare: Compare,
) -> bool {
    if local.size != remote.size {
        return true;
    }
    match compare {
        Compare::SizeAndTime => local.mtime != remote.mtime,
        Compare::Checksum => match (&remote.blake3, local_digest(&local.path)) {
            (Some(theirs), Some(ours)) => {
                blake3::Hash::from_hex(theirs).map_or(true, |theirs| theirs != ours)
            }
            _ => true,
        },
    }
}

/// The BLAKE3 of a local file; `None` when it cannot be read.
fn local_digest(path: &Path) -> Option<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(fs::File::open(path).ok()?).ok()?;
    Some(hasher.finalize())
}

/// Removes the entries whose parent folder is removed too, so that one
/// recursive removal covers them.
fn outermost(mut paths: Vec<String>) -> Vec<String> {
    paths.sort();
    let mut kept: Vec<String> = Vec::new();
    for p in paths {
        if !kept.iter().any(|k| p.starts_with(&format!("{k}/"))) {
            kept.push(p);
        }
    }
    kept
}

/// Plans sending the local tree at `local` to the server folder `remote`,
/// which holds `theirs` (`None` when it does not exist: it is made).
pub(crate) fn plan_send(
    ours: &LocalTree,
    remote: &str,
    theirs: Option<&[RemoteEntry]>,
    compare: Compare,
    delete: bool,
) -> SyncPlan {
    let mut folders = Vec::new();
    if theirs.is_none() && !remote.is_empty() {
        folders.push(Step::MakeFolder(remote.to_string()));
    }
    let theirs = theirs.unwrap_or_default();
    let there: HashMap<&str, &RemoteEntry> =
        theirs.iter().map(|e| (e.relative.as_str(), e)).collect();
    let mut plan = SyncPlan::default();
    let mut removals = Vec::new();
    let mut wanted: HashSet<&str> = HashSet::new();
    for folder in &ours.folders {
        wanted.insert(folder);
        match there.get(folder.as_str()).map(|e| e.kind) {
            Some(EntryKind::Dir) => {}
            Some(EntryKind::File) => {
                removals.push(folder.clone());
                folders.push(Step::MakeFolder(join(remote, folder)));
            }
            None => folders.push(Step::MakeFolder(join(remote, folder))),
        }
    }
    let mut uploads = Vec::new();
    for file in &ours.files {
        wanted.insert(&file.relative);
        match needs_sending(
            file,
            there.get(file.relative.as_str()),
            compare,
            &mut removals,
        ) {
            true => uploads.push(Step::Upload(Upload {
                local: file.path.clone(),
                remote: join(remote, &file.relative),
                size: file.size,
            })),
            false => plan.unchanged += 1,
        }
    }
    if delete {
        let extra = theirs
            .iter()
            .filter(|e| !wanted.contains(e.relative.as_str()));
        removals.extend(extra.map(|e| e.relative.clone()));
    }
    let removals = outermost(removals).into_iter().map(|r| Step::Remove {
        path: join(remote, &r),
        recursive: true,
    });
    plan.steps = removals.chain(folders).chain(uploads).collect();
    plan
}

/// Whether a local file goes to the server, which holds `there` under its
/// name; a folder there of that name is to be removed first.
fn needs_sending(
    file: &crate::client::tree::LocalFile,
    there: Option<&&RemoteEntry>,
    compare: Compare,
    removals: &mut Vec<String>,
) -> bool {
    match there {
        None => true,
        Some(e) if e.kind == EntryKind::Dir => {
            removals.push(file.relative.clone());
            true
        }
        Some(e) => local_differs(file, e, compare),
    }
}

/// Plans fetching the server folder `remote`, which holds `theirs`, into
/// the local folder `local`, which holds `ours` (empty when it does not
/// exist).
pub(crate) fn plan_fetch(
    theirs: &[RemoteEntry],
    remote: &str,
    local: &Path,
    ours: &LocalTree,
    compare: Compare,
    delete: bool,
) -> SyncPlan {
    let mut here: HashMap<&str, Option<&crate::client::tree::LocalFile>> =
        ours.folders.iter().map(|f| (f.as_str(), None)).collect();
    here.extend(ours.files.iter().map(|f| (f.relative.as_str(), Some(f))));
    let mut plan = SyncPlan::default();
    let mut removals = Vec::new();
    let mut wanted: HashSet<&str> = HashSet::new();
    plan.local_folders.push(local.to_path_buf());
    for entry in theirs {
        wanted.insert(&entry.relative);
        let found = here.get(entry.relative.as_str());
        match entry.kind {
            EntryKind::Dir => {
                if let Some(Some(_file)) = found {
                    removals.push(entry.relative.clone());
                }
                plan.local_folders.push(local_path(local, &entry.relative));
            }
            EntryKind::File => {
                let fetch = match found {
                    None => true,
                    // A folder goes for a file only when asked to.
                    Some(None) if !delete => {
                        plan.clashes.push(local_path(local, &entry.relative));
                        false
                    }
                    Some(None) => {
                        removals.push(entry.relative.clone());
                        true
                    }
                    Some(Some(file)) => local_differs(file, entry, compare),
                };
                match fetch {
                    true => plan.steps.push(Step::Download(Download {
                        remote: join(remote, &entry.relative),
                        local: local_path(local, &entry.relative),
                        size: entry.size,
                    })),
                    false => plan.unchanged += 1,
                }
            }
        }
    }
    if delete {
        let extra = here.keys().filter(|k| !wanted.contains(*k));
        removals.extend(extra.map(|k| k.to_string()));
    }
    plan.local_removals = outermost(removals)
        .iter()
        .map(|r| local_path(local, r))
        .collect();
    plan
}

/// Carries out a fetch's local side below its target: the removals
/// (each handed to `remove`), then the folders, reached one handle at a
/// time from the target (see [`crate::client::beneath`]); and leaves out
/// the removals, folders and downloads that would go through a symbolic
/// link (or a file) below it. Returns what was left out, with why.
///
/// Fails when the target cannot be made, or `remove` fails.
pub(crate) fn prepare_fetch(
    plan: &mut SyncPlan,
    mut remove: impl FnMut(&Path) -> Result<()>,
) -> Result<Vec<(PathBuf, Error)>> {
    let Some(root) = plan.local_folders.first().cloned() else {
        return Ok(Vec::new());
    };
    make_local_folder(&root)?;
    let below = |path: &Path| {
        let relative = path.strip_prefix(&root).unwrap_or(path);
        relative.to_string_lossy().into_owned()
    };
    let mut refused = Vec::new();
    let mut check = |path: &Path, made: std::result::Result<(), Refused>| match made {
        Ok(()) => true,
        Err(why) => {
            refused.push((path.to_path_buf(), why.error(path)));
            false
        }
    };
    for gone in &plan.local_removals {
        if check(gone, make_parent_below(&root, &below(gone))) {
            remove(gone)?;
        }
    }
    for folder in &plan.local_folders[1..] {
        check(folder, make_below(&root, &below(folder)).map(drop));
    }
    plan.steps.retain(|step| match step {
        Step::Download(d) => check(&d.local, make_parent_below(&root, &below(&d.local))),
        _ => true,
    });
    Ok(refused)
}

/// Makes the folder `path` (and its parents) unless it is there; fails
/// when something else is.
pub(crate) fn make_local_folder(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Usage(format!(
            "{} exists and is not a folder",
            path.display()
        ))),
        Err(_) => fs::create_dir_all(path)
            .map_err(|e| Error::io(format!("creating {}", path.display()), e)),
    }
}

/// Removes a local file, or a folder with all it holds (links are
/// removed, never followed).
pub(crate) fn remove_local(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path)?.is_dir() {
        true => fs::remove_dir_all(path),
        false => fs::remove_file(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tree::LocalFile;

    fn local(folders: &[&str], files: &[(&str, u64, u64)]) -> LocalTree {
        LocalTree {
            folders: folders.iter().map(|f| f.to_string()).collect(),
            files: files
                .iter()
                .map(|(name, size, mtime)| LocalFile {
                    path: PathBuf::from("/l").join(name),
                    relative: name.to_string(),
                    size: *size,
                    mtime: *mtime,
                })
                .collect(),
            skipped: Vec::new(),
        }
    }

    fn remote(entries: &[(&str, EntryKind, u64, u64)]) -> Vec<RemoteEntry> {
        entries
            .iter()
            .map(|(name, kind, size, mtime)| RemoteEntry {
                relative: name.to_string(),
                kind: *kind,
                size: *size,
                mtime: *mtime,
                blake3: None,
            })
            .collect()
    }

    fn describe(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::MakeFolder(p) => format!("mkdir {p}"),
                Step::Upload(u) => format!("put {}", u.remote),
                Step::Download(d) => format!("get {}", d.remote),
                Step::Remove { path, .. } => format!("rm {path}"),
            })
            .collect()
    }

    #[test]
    fn an_unchanged_tree_sends_nothing() {
        let ours = local(&["a"], &[("a/x", 3, 100), ("y", 0, 7)]);
        let theirs = remote(&[
            ("a", EntryKind::Dir, 0, 1),
            ("a/x", EntryKind::File, 3, 100),
            ("y", EntryKind::File, 0, 7),
        ]);
        let plan = plan_send(&ours, "dst", Some(&theirs), Compare::SizeAndTime, true);
        assert_eq!(describe(&plan.steps), Vec::<String>::new());
        assert_eq!(plan.unchanged, 2);
        // Into a folder that is not there yet: it is made first.
        let fresh = plan_send(&ours, "dst", None, Compare::SizeAndTime, true);
        assert_eq!(
            describe(&fresh.steps),
            ["mkdir dst", "mkdir dst/a", "put dst/a/x", "put dst/y"]
        );
    }

    #[test]
    fn sending_moves_what_differs_and_deletes_extras_once() {
        let ours = local(
            &["a", "b"],
            &[("a/x", 3, 100), ("b/new", 1, 1), ("y", 5, 7)],
        );
        let theirs = remote(&[
            ("a", EntryKind::Dir, 0, 1),
            ("a/x", EntryKind::File, 3, 99),
            ("b", EntryKind::File, 9, 1),
            ("gone", EntryKind::Dir, 0, 1),
            ("gone/deep", EntryKind::File, 1, 1),
            ("y", EntryKind::File, 5, 7),
        ]);
        let plan = plan_send(&ours, "", Some(&theirs), Compare::SizeAndTime, true);
        assert_eq!(
            describe(&plan.steps),
            ["rm b", "rm gone", "mkdir b", "put a/x", "put b/new"]
        );
        let keep = plan_send(&ours, "", Some(&theirs), Compare::SizeAndTime, false);
        assert_eq!(
            describe(&keep.steps),
            ["rm b", "mkdir b", "put a/x", "put b/new"]
        );
    }

    #[test]
    fn fetching_plans_folders_downloads_and_local_removals() {
        let theirs = remote(&[
            ("a", EntryKind::Dir, 0, 1),
            ("a/x", EntryKind::File, 3, 100),
            ("z", EntryKind::File, 2, 5),
        ]);
        let ours = local(&["old"], &[("a/x", 3, 100), ("old/f", 1, 1), ("z", 2, 4)]);
        let plan = plan_fetch(
            &theirs,
            "src",
            Path::new("d"),
            &ours,
            Compare::SizeAndTime,
            true,
        );
        assert_eq!(describe(&plan.steps), ["get src/z"]);
        assert_eq!(plan.local_removals, [PathBuf::from("d/old")]);
        assert_eq!(
            plan.local_folders,
            [PathBuf::from("d"), PathBuf::from("d/a")]
        );
        assert_eq!(plan.unchanged, 1);
    }
}
