//! Folders on both sides: walking a local tree, listing one on the server,
//! and expanding wildcards, into the names a batch moves.
//!
//! Every name from either side is checked one component at a time against
//! the server's naming rules before it is used: a server's listing cannot
//! name a place outside the folder a download writes to.

use std::fs;
use std::path::{Path, PathBuf};

use crate::client::files::unix_mtime;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::wire::message::{EntryKind, LsRequest};
use crate::wire::names::{escape, validate_name};

/// A local file found by a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalFile {
    /// Where it is.
    pub(crate) path: PathBuf,
    /// Its path below the walked folder, components joined by `/`.
    pub(crate) relative: String,
    /// Its size.
    pub(crate) size: u64,
    /// Its modification time, whole seconds.
    pub(crate) mtime: u64,
}

/// What a walk of a local folder found.
#[derive(Debug, Default)]
pub(crate) struct LocalTree {
    /// Folders below the walked one, parents before children.
    pub(crate) folders: Vec<String>,
    /// Regular files.
    pub(crate) files: Vec<LocalFile>,
    /// What was left out and why: symbolic links, special files, names
    /// the server would refuse, folders that could not be read.
    pub(crate) skipped: Vec<(PathBuf, String)>,
}

/// Folders deeper than this are not walked (the server allows 32 levels).
const MAX_DEPTH: usize = 32;

/// Walks `root`, never following a symbolic link.
///
/// Fails when `root` itself cannot be read or is not a folder.
pub(crate) fn walk_local(root: &Path) -> Result<LocalTree> {
    let meta = fs::symlink_metadata(root).map_err(|e| Error::cannot_read(root.display(), e))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!("{} is not a folder", root.display())));
    }
    let mut tree = LocalTree::default();
    walk_into(root, "", 0, &mut tree);
    Ok(tree)
}

fn walk_into(folder: &Path, relative: &str, depth: usize, tree: &mut LocalTree) {
    let entries = match fs::read_dir(folder) {
        Ok(entries) => entries,
        Err(e) => {
            let why = format!("cannot read it: {}", crate::error::reason(&e));
            tree.skipped.push((folder.to_path_buf(), why));
            return;
        }
    };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = match entry.file_name().to_str().map(validate_name) {
            Some(Ok(name)) => name.to_string(),
            Some(Err(e)) => {
                tree.skipped
                    .push((path, format!("the server refuses the name: {e}")));
                continue;
            }
            None => {
                tree.skipped.push((path, "the name is not UTF-8".into()));
                continue;
            }
        };
        let below = join(relative, &name);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if depth + 1 >= MAX_DEPTH {
                tree.skipped
                    .push((path, format!("deeper than {MAX_DEPTH} levels")));
                continue;
            }
            tree.folders.push(below.clone());
            walk_into(&path, &below, depth + 1, tree);
        } else if meta.is_file() {
            tree.files.push(LocalFile {
                size: meta.len(),
                mtime: unix_mtime(&meta).unwrap_or(0),
                path,
                relative: below,
            });
        } else if meta.file_type().is_symlink() {
            tree.skipped
                .push((path, "a symbolic link, not followed".into()));
        } else {
            tree.skipped
                .push((path, "not a regular file or folder".into()));
        }
    }
}

/// `a` and `b` joined by `/`; `b` alone when `a` is empty.
pub(crate) fn join(a: &str, b: &str) -> String {
    match a.trim_end_matches('/') {
        "" if !a.starts_with('/') => b.to_string(),
        a => format!("{a}/{b}"),
    }
}

/// A file or folder below a listed server folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    /// Its path below the listed folder, checked component by component.
    pub(crate) relative: String,
    /// File or folder.
    pub(crate) kind: EntryKind,
    /// Size in bytes.
    pub(crate) size: u64,
    /// Modification time, seconds.
    pub(crate) mtime: u64,
    /// BLAKE3, when asked for.
    pub(crate) blake3: Option<String>,
}

/// Most entries a recursive listing may hold in the client's memory.
pub(crate) const MAX_TREE_ENTRIES: usize = 4_000_000;

impl Client {
    /// Lists the folder `path` on the server and everything below it.
    ///
    /// Fails when the server refuses, sends a name that is not a clean
    /// relative path, or more than `MAX_TREE_ENTRIES` entries.
    pub fn list_tree(&mut self, path: &str, digests: bool) -> Result<Vec<RemoteEntry>> {
        let request = LsRequest {
            pages: true,
            path: Some(path.to_string()),
            recursive: true,
            digests,
        };
        let mut entries = Vec::new();
        self.ls_with(request, |page| {
            for e in page.files {
                if entries.len() >= MAX_TREE_ENTRIES {
                    return Err(Error::Malformed(format!(
                        "the server listed more than {MAX_TREE_ENTRIES} entries"
                    )));
                }
                entries.push(RemoteEntry {
                    relative: clean_relative(&e.name)?,
                    kind: e.kind,
                    size: e.size,
                    mtime: e.mtime,
                    blake3: e.blake3,
                });
            }
            Ok(())
        })?;
        Ok(entries)
    }

    /// The server paths a pattern names: itself when it has no wildcard,
    /// else the names of its folder that match its last component.
    ///
    /// Fails when the folder cannot be listed or nothing matches.
    pub fn expand_remote(&mut self, pattern: &str) -> Result<Vec<(String, EntryKind)>> {
        if !has_wildcard(pattern) {
            return Ok(vec![(pattern.to_string(), EntryKind::File)]);
        }
        let (folder, last) = match pattern.rsplit_once('/') {
            Some((folder, last)) => (folder, last),
            None => ("", pattern),
        };
        if has_wildcard(folder) {
            return Err(Error::Usage(format!(
                "{}: wildcards work in the last part of a path only",
                escape(pattern)
            )));
        }
        let matcher = glob::Pattern::new(last)
            .map_err(|e| Error::Usage(format!("{}: {e}", escape(pattern))))?;
        let request = LsRequest {
            pages: true,
            path: (!folder.is_empty() || pattern.starts_with('/')).then(|| folder.to_string()),
            ..LsRequest::default()
        };
        let mut found = Vec::new();
        self.ls_with(request, |page| {
            for e in page.files {
                let hidden = e.name.starts_with('.') && !last.starts_with('.');
                if !hidden && matcher.matches(&e.name) {
                    let name = clean_relative(&e.name)?;
                    let path = match pattern.starts_with('/') && folder.is_empty() {
                        true => format!("/{name}"),
                        false => join(folder, &name),
                    };
                    found.push((path, e.kind));
                }
            }
            Ok(())
        })?;
        if found.is_empty() {
            return Err(Error::Usage(format!(
                "no name on the server matches {}",
                escape(pattern)
            )));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }
}

/// Whether a word holds a wildcard.
pub(crate) fn has_wildcard(word: &str) -> bool {
    word.contains(['*', '?', '['])
}

/// The local paths a pattern names: itself when it has no wildcard.
///
/// Fails when a pattern matches nothing.
pub(crate) fn expand_local(pattern: &str) -> Result<Vec<PathBuf>> {
    if !has_wildcard(pattern) {
        return Ok(vec![PathBuf::from(pattern)]);
    }
    let matches = glob::glob(pattern).map_err(|e| Error::Usage(format!("{pattern}: {e}")))?;
    let found: Vec<PathBuf> = matches.filter_map(|m| m.ok()).collect();
    if found.is_empty() {
        return Err(Error::Usage(format!("no local file matches {pattern}")));
    }
    Ok(found)
}

/// A name from a server's listing, as a relative path each of whose
/// components the naming rules allow: no `..`, no leading `/`, no empty
/// part.
///
/// Fails for anything else, naming it escaped.
pub(crate) fn clean_relative(name: &str) -> Result<String> {
    let ok = !name.is_empty() && name.split('/').all(|part| validate_name(part).is_ok());
    match ok {
        true => Ok(name.to_string()),
        false => Err(Error::Malformed(format!(
            "the server listed the name {:?}, which is not a clean relative path",
            escape(name)
        ))),
    }
}

/// The local path for a server path below a local folder.
pub(crate) fn local_path(folder: &Path, relative: &str) -> PathBuf {
    relative
        .split('/')
        .fold(folder.to_path_buf(), |p, c| p.join(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_a_server_must_stay_below_the_folder() {
        assert_eq!(clean_relative("a/b c/d.txt").unwrap(), "a/b c/d.txt");
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/",
            "a/.",
            "x\u{1b}]0;t",
        ] {
            assert!(clean_relative(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn joins_and_local_paths() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("x/", "a"), "x/a");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(local_path(Path::new("d"), "a/b"), Path::new("d/a/b"));
    }

    #[test]
    fn a_walk_lists_folders_first_and_skips_links() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir_all(root.join("sub/empty")).unwrap();
        fs::write(root.join("sub/a b.txt"), b"12345").unwrap();
        fs::write(root.join("é.txt"), b"").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        let tree = walk_local(&root).unwrap();
        assert_eq!(tree.folders, ["sub", "sub/empty"]);
        let files: Vec<_> = tree.files.iter().map(|f| f.relative.as_str()).collect();
        assert_eq!(files, ["sub/a b.txt", "é.txt"]);
        assert_eq!(tree.files[0].size, 5);
        assert_eq!(tree.skipped.len(), 1);
        assert!(tree.skipped[0].1.contains("symbolic link"));
    }
}
