//! Whether a download may replace a local file that is already there: the
//! policy ([`Overwrite`]) and the one place that applies it to each file
//! ([`land_download`]), for `get` and for anything else that downloads.
//!
//! An identical local file is left as it is. A different one (another
//! size, or the same size and other bytes) is replaced as the policy says:
//! silently, with a word afterwards, or only after a yes.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, Result};

/// Asked before a different local file is replaced: `(path) -> yes?`.
pub(crate) type ConfirmReplace = Arc<dyn Fn(&Path) -> bool + Send + Sync>;

/// Told after a different local file was replaced.
pub(crate) type Replaced = Arc<dyn Fn(&Path) + Send + Sync>;

/// What a download does to a different local file of the same name.
#[derive(Clone, Default)]
pub(crate) enum Overwrite {
    /// Replace it without a word (`--force`; the library's default).
    #[default]
    Replace,
    /// Replace it, then tell (scripts, where nobody can answer a question).
    ReplaceAndTell(Replaced),
    /// Ask first (at a terminal); a no keeps the local file and fails the
    /// download.
    Ask(ConfirmReplace),
}

impl fmt::Debug for Overwrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Overwrite::Replace => "Replace",
            Overwrite::ReplaceAndTell(_) => "ReplaceAndTell",
            Overwrite::Ask(_) => "Ask",
        })
    }
}

/// What became of a download's target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Landing {
    /// There was no file: the download is now there.
    Created,
    /// The same bytes were there already: that file was kept as it is.
    Unchanged,
    /// A different file was replaced.
    Replaced,
}

/// Before a download's bytes are read: when a different local file is at
/// `target` (its size is not the `size` coming) and the policy asks, asks
/// now, so that nobody waits for a whole download only to refuse it.
/// Returns whether the user said yes already, to hand to
/// [`land_download`]; `false` when nothing was asked.
///
/// Fails when the user says no; the caller must then not download.
pub(crate) fn confirm_early(policy: &Overwrite, target: &Path, size: u64) -> Result<bool> {
    let Overwrite::Ask(confirm) = policy else {
        return Ok(false);
    };
    match fs::symlink_metadata(target) {
        Ok(meta) if !meta.is_file() || meta.len() != size => match confirm(target) {
            true => Ok(true),
            false => Err(kept(target)),
        },
        _ => Ok(false),
    }
}

/// Moves a complete download, whose digest was checked, from `partial` to
/// `target` as the overwrite `policy` (the client's
/// [`crate::client::ClientOptions::overwrite`]) says: onto a free name at
/// once; over an identical file not at all (the partial is removed and the
/// file keeps its time); over a different one after asking or followed by
/// a note, as the policy says, unless `agreed` (a yes from
/// [`confirm_early`]). `size` and `digest` are the download's.
///
/// Fails when the user says no (the partial is removed and the local file
/// kept), when `target` is a folder, or when the file cannot be renamed.
pub(crate) fn land_download(
    policy: &Overwrite,
    partial: &Path,
    target: &Path,
    size: u64,
    digest: &blake3::Hash,
    agreed: bool,
) -> Result<Landing> {
    let landing = match fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Landing::Created,
        Err(e) => return Err(Error::io(format!("checking {}", target.display()), e)),
        Ok(meta) if meta.is_dir() => {
            return Err(Error::Usage(format!(
                "{} is a folder; the download stays in {}",
                target.display(),
                partial.display()
            )))
        }
        Ok(meta) if meta.is_file() && meta.len() == size && same_bytes(target, digest) => {
            let _ = fs::remove_file(partial);
            return Ok(Landing::Unchanged);
        }
        Ok(_) => Landing::Replaced,
    };
    if landing == Landing::Replaced && !agreed {
        if let Overwrite::Ask(confirm) = policy {
            if !confirm(target) {
                let _ = fs::remove_file(partial);
                return Err(kept(target));
            }
        }
    }
    fs::rename(partial, target)
        .map_err(|e| Error::io(format!("saving {}", target.display()), e))?;
    if let (Landing::Replaced, Overwrite::ReplaceAndTell(tell)) = (landing, policy) {
        tell(target);
    }
    Ok(landing)
}

/// Whether the file at `path` hashes to `digest`.
fn same_bytes(path: &Path, digest: &blake3::Hash) -> bool {
    let mut hasher = blake3::Hasher::new();
    File::open(path)
        .and_then(|mut f| io::copy(&mut f, &mut hasher))
        .is_ok_and(|_| hasher.finalize() == *digest)
}

fn kept(target: &Path) -> Error {
    Error::Usage(format!(
        "kept {}: it differs from the file on the server; get it under another name, or \
         replace it with get -f (or ftp-client --force)",
        target.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn options(overwrite: Overwrite) -> Overwrite {
        overwrite
    }

    /// A finished download of `bytes` in `dir`, and where it goes.
    fn download(dir: &Path, bytes: &[u8]) -> (std::path::PathBuf, std::path::PathBuf) {
        let partial = dir.join(".a.txt.ftp-part");
        fs::write(&partial, bytes).unwrap();
        (partial, dir.join("a.txt"))
    }

    fn land(o: &Overwrite, dir: &Path, bytes: &[u8], agreed: bool) -> Result<Landing> {
        let (partial, target) = download(dir, bytes);
        let digest = blake3::hash(bytes);
        land_download(o, &partial, &target, bytes.len() as u64, &digest, agreed)
    }

    #[test]
    fn a_free_name_and_an_identical_file_need_no_question() {
        let dir = tempfile::tempdir().unwrap();
        let never = options(Overwrite::Ask(Arc::new(|_| panic!("asked"))));
        assert_eq!(
            land(&never, dir.path(), b"new", false).unwrap(),
            Landing::Created
        );
        assert_eq!(
            land(&never, dir.path(), b"new", false).unwrap(),
            Landing::Unchanged
        );
        assert!(!dir.path().join(".a.txt.ftp-part").exists());
        assert_eq!(fs::read(dir.path().join("a.txt")).unwrap(), b"new");
    }

    #[test]
    fn a_no_keeps_the_local_file_and_a_yes_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), b"mine").unwrap();
        let no = options(Overwrite::Ask(Arc::new(|_| false)));
        // Same size, other bytes: still different.
        let err = land(&no, dir.path(), b"your", false).unwrap_err();
        assert!(err.to_string().starts_with("kept "), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(fs::read(dir.path().join("a.txt")).unwrap(), b"mine");
        assert!(!dir.path().join(".a.txt.ftp-part").exists());
        // A yes given before the bytes came is not asked for again.
        assert_eq!(
            land(&no, dir.path(), b"yours", true).unwrap(),
            Landing::Replaced
        );
        let yes = options(Overwrite::Ask(Arc::new(|_| true)));
        assert_eq!(
            land(&yes, dir.path(), b"theirs", false).unwrap(),
            Landing::Replaced
        );
        assert_eq!(fs::read(dir.path().join("a.txt")).unwrap(), b"theirs");
    }

    #[test]
    fn scripts_are_told_and_force_is_quiet() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.txt"), b"old").unwrap();
        let told = Arc::new(AtomicUsize::new(0));
        let count = told.clone();
        let tell = options(Overwrite::ReplaceAndTell(Arc::new(move |_| {
            count.fetch_add(1, Ordering::SeqCst);
        })));
        assert_eq!(
            land(&tell, dir.path(), b"newer", false).unwrap(),
            Landing::Replaced
        );
        assert_eq!(told.load(Ordering::SeqCst), 1);
        land(&tell, dir.path(), b"newer", false).unwrap();
        assert_eq!(
            told.load(Ordering::SeqCst),
            1,
            "nothing replaced, nothing said"
        );
        let force = options(Overwrite::Replace);
        assert_eq!(
            land(&force, dir.path(), b"x", false).unwrap(),
            Landing::Replaced
        );
    }

    #[test]
    fn the_early_question_comes_only_for_another_size() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a.txt");
        let ask = options(Overwrite::Ask(Arc::new(|_| false)));
        assert!(
            !confirm_early(&ask, &target, 3).unwrap(),
            "no file, no question"
        );
        fs::write(&target, b"abc").unwrap();
        assert!(
            !confirm_early(&ask, &target, 3).unwrap(),
            "decided at the end"
        );
        assert!(confirm_early(&ask, &target, 4).is_err());
        let yes = options(Overwrite::Ask(Arc::new(|_| true)));
        assert!(confirm_early(&yes, &target, 4).unwrap());
        assert!(!confirm_early(&options(Overwrite::Replace), &target, 4).unwrap());
    }
}
