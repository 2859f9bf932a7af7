//! Which files a folder transfer leaves out: `--exclude`, `--include`,
//! `--exclude-from FILE` and the `.ftpignore` file at the top of the
//! local folder, all read with gitignore's rules by the `ignore` crate
//! (the matcher git-compatible tools such as ripgrep use), not by a
//! matcher written here.
//!
//! The rules are taken in this order, and the last one that matches a
//! path decides, as in a `.gitignore`: `.ftpignore`, the `--exclude-from`
//! files, the `--exclude` patterns, then the `--include` patterns (each
//! read as `!PATTERN`), so an `--include` always wins over an exclusion.
//! A path is left out when it, or a folder it is in, is excluded, unless
//! it is included itself.

use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::error::{Error, Result};

/// The name of the ignore file read at the top of a local folder.
pub(crate) const IGNORE_FILE: &str = ".ftpignore";

/// Filter options as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filters {
    /// `--exclude PATTERN`, in order.
    pub(crate) exclude: Vec<String>,
    /// `--include PATTERN`, in order.
    pub(crate) include: Vec<String>,
    /// `--exclude-from FILE`, in order.
    pub(crate) exclude_from: Vec<String>,
}

/// The rules of one transfer, compiled.
#[derive(Debug)]
pub(crate) struct Filter {
    rules: Option<Gitignore>,
}

impl Filter {
    /// Compiles `filters`, after the `.ftpignore` at the top of `local`
    /// when there is one.
    ///
    /// Fails when a file named cannot be read, or a pattern is not one.
    pub(crate) fn new(filters: &Filters, local: Option<&Path>) -> Result<Filter> {
        let mut builder = GitignoreBuilder::new(".");
        let mut any = false;
        let ignore_file = local.map(|l| l.join(IGNORE_FILE));
        if let Some(file) = ignore_file.filter(|f| f.is_file()) {
            add_file(&mut builder, &file)?;
            any = true;
        }
        for file in &filters.exclude_from {
            add_file(&mut builder, Path::new(file))?;
            any = true;
        }
        let patterns = filters.exclude.iter().cloned();
        let included = filters.include.iter().map(|p| format!("!{p}"));
        for pattern in patterns.chain(included) {
            builder
                .add_line(None, &pattern)
                .map_err(|e| Error::Usage(format!("bad pattern {pattern:?}: {e}")))?;
            any = true;
        }
        if !any {
            return Ok(Filter { rules: None });
        }
        let rules = builder
            .build()
            .map_err(|e| Error::Usage(format!("bad filter: {e}")))?;
        Ok(Filter { rules: Some(rules) })
    }

    /// Whether the path `relative` (below the folder moved, `/` between
    /// its parts) is left out; `is_dir` when it is a folder.
    pub(crate) fn excludes(&self, relative: &str, is_dir: bool) -> bool {
        let Some(rules) = &self.rules else {
            return false;
        };
        let path = Path::new(relative);
        // The matcher takes only paths below its root; a name from a peer
        // is checked to be one before it gets here, and anything else is
        // simply not matched.
        if relative.is_empty() || path.has_root() {
            return false;
        }
        rules.matched_path_or_any_parents(path, is_dir).is_ignore()
    }
}

/// Adds the lines of an ignore file.
fn add_file(builder: &mut GitignoreBuilder, file: &Path) -> Result<()> {
    match builder.add(file) {
        None => Ok(()),
        Some(e) if !file.is_file() => {
            Err(Error::Usage(format!("cannot read {}: {e}", file.display())))
        }
        Some(e) => Err(Error::Usage(format!("{}: {e}", file.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(exclude: &[&str], include: &[&str]) -> Filter {
        let filters = Filters {
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude_from: Vec::new(),
        };
        Filter::new(&filters, None).unwrap()
    }

    #[test]
    fn gitignore_rules_leave_out_files_and_whole_folders() {
        let f = filter(&["*.log", "build/", "/top.txt"], &[]);
        assert!(f.excludes("a.log", false) && f.excludes("deep/er/b.log", false));
        assert!(f.excludes("build", true) && f.excludes("src/build/x.o", false));
        assert!(!f.excludes("build", false), "build/ names folders only");
        assert!(f.excludes("top.txt", false) && !f.excludes("sub/top.txt", false));
        assert!(!f.excludes("keep.txt", false));
    }

    #[test]
    fn an_include_wins_over_an_exclude() {
        let f = filter(&["*.log"], &["keep.log"]);
        assert!(f.excludes("other.log", false));
        assert!(!f.excludes("keep.log", false) && !f.excludes("sub/keep.log", false));
    }

    #[test]
    fn no_rules_exclude_nothing_and_odd_paths_are_never_matched() {
        assert!(!filter(&[], &[]).excludes("x", false));
        let f = filter(&["*"], &[]);
        assert!(!f.excludes("/etc/passwd", false) && !f.excludes("", true));
    }

    #[test]
    fn an_ignore_file_and_exclude_from_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(IGNORE_FILE), "# comment\n*.tmp\n").unwrap();
        let list = dir.path().join("list");
        std::fs::write(&list, "secret/\n").unwrap();
        let filters = Filters {
            exclude_from: vec![list.display().to_string()],
            ..Filters::default()
        };
        let f = Filter::new(&filters, Some(dir.path())).unwrap();
        assert!(f.excludes("a.tmp", false) && f.excludes("secret/k", false));
        assert!(!f.excludes("a.txt", false));
        let missing = Filters {
            exclude_from: vec!["/nonexistent/list".into()],
            ..Filters::default()
        };
        let e = Filter::new(&missing, None).unwrap_err().to_string();
        assert!(e.contains("cannot read /nonexistent/list"), "{e}");
    }
}
