//! Filters on a folder transfer: what `--exclude`, `--include`,
//! `--exclude-from` and `.ftpignore` leave out is taken off both sides'
//! lists before anything is planned, so it is neither sent, fetched nor
//! compared; and, as in rsync, never removed by `sync --delete`, not even
//! inside a folder that goes.

use std::path::{Path, PathBuf};

use crate::client::batch::Step;
use crate::client::filter::Filter;
use crate::client::tree::{join, local_path, LocalTree, RemoteEntry};
use crate::wire::message::EntryKind;

/// Takes what `filter` excludes off a local tree; returns those paths.
pub(super) fn prune_local(tree: &mut LocalTree, filter: &Filter) -> Vec<String> {
    let mut out = Vec::new();
    tree.folders.retain(|f| kept(filter, f, true, &mut out));
    tree.files
        .retain(|f| kept(filter, &f.relative, false, &mut out));
    out
}

/// Takes what `filter` excludes off a server listing; returns those paths.
pub(super) fn prune_remote(entries: &mut Vec<RemoteEntry>, filter: &Filter) -> Vec<String> {
    let mut out = Vec::new();
    entries.retain(|e| kept(filter, &e.relative, e.kind == EntryKind::Dir, &mut out));
    out
}

fn kept(filter: &Filter, relative: &str, is_dir: bool, excluded: &mut Vec<String>) -> bool {
    let out = filter.excludes(relative, is_dir);
    if out {
        excluded.push(relative.to_string());
    }
    !out
}

/// Whether an excluded path lies inside the folder `relative`.
fn holds_excluded(relative: &str, excluded: &[String]) -> bool {
    let inside = format!("{relative}/");
    excluded.iter().any(|e| e.starts_with(&inside))
}

/// The server's removals (in the server folder `remote`, which holds
/// `kept`), a folder that holds an excluded path being replaced by the
/// removal of each of its other files.
pub(super) fn spare_remote(
    steps: &mut Vec<Step>,
    remote: &str,
    excluded: &[String],
    kept: &[RemoteEntry],
) {
    if excluded.is_empty() {
        return;
    }
    let prefix = match remote.is_empty() {
        true => String::new(),
        false => format!("{remote}/"),
    };
    let planned = std::mem::take(steps);
    for step in planned {
        let Step::Remove { path, .. } = &step else {
            steps.push(step);
            continue;
        };
        let relative = path.strip_prefix(&prefix).unwrap_or(path);
        if !holds_excluded(relative, excluded) {
            steps.push(step);
            continue;
        }
        let inside = format!("{relative}/");
        let files = kept
            .iter()
            .filter(|e| e.kind == EntryKind::File && e.relative.starts_with(&inside));
        steps.extend(files.map(|e| Step::Remove {
            path: join(remote, &e.relative),
            recursive: false,
        }));
    }
}

/// The local removals (in the folder `local`, which holds `kept`), a
/// folder that holds an excluded path being replaced by the removal of
/// each of its other files.
pub(super) fn spare_local(
    removals: &mut Vec<PathBuf>,
    local: &Path,
    excluded: &[String],
    kept: &LocalTree,
) {
    if excluded.is_empty() {
        return;
    }
    let planned = std::mem::take(removals);
    for gone in planned {
        let relative = gone
            .strip_prefix(local)
            .ok()
            .and_then(Path::to_str)
            .unwrap_or_default()
            .to_string();
        if relative.is_empty() || !holds_excluded(&relative, excluded) {
            removals.push(gone);
            continue;
        }
        let inside = format!("{relative}/");
        let files = kept
            .files
            .iter()
            .filter(|f| f.relative.starts_with(&inside));
        removals.extend(files.map(|f| local_path(local, &f.relative)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::filter::Filters;

    fn entry(relative: &str, kind: EntryKind) -> RemoteEntry {
        RemoteEntry {
            relative: relative.into(),
            kind,
            size: 1,
            mtime: 0,
            blake3: None,
        }
    }

    #[test]
    fn a_folder_that_holds_an_excluded_file_is_emptied_not_removed() {
        let filters = Filters {
            exclude: vec!["*.keep".into()],
            ..Filters::default()
        };
        let filter = Filter::new(&filters, None).unwrap();
        let mut theirs = vec![
            entry("old", EntryKind::Dir),
            entry("old/a.txt", EntryKind::File),
            entry("old/b.keep", EntryKind::File),
            entry("gone", EntryKind::Dir),
            entry("gone/c.txt", EntryKind::File),
        ];
        let excluded = prune_remote(&mut theirs, &filter);
        assert_eq!(excluded, ["old/b.keep"]);
        let mut steps = vec![
            Step::Remove {
                path: "dst/old".into(),
                recursive: true,
            },
            Step::Remove {
                path: "dst/gone".into(),
                recursive: true,
            },
        ];
        spare_remote(&mut steps, "dst", &excluded, &theirs);
        assert_eq!(
            steps,
            [
                Step::Remove {
                    path: "dst/old/a.txt".into(),
                    recursive: false
                },
                Step::Remove {
                    path: "dst/gone".into(),
                    recursive: true
                },
            ]
        );
    }
}
