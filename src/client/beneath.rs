//! Local folders below a download's target, reached one folder handle at
//! a time from the target, never through a symbolic link: a server's
//! listing names files below the target, and a link that the user keeps
//! there (`docs -> ../outside`) must not carry a download outside it.
//!
//! The target itself is the user's choice, and may be a link; below it,
//! each step is opened with `O_NOFOLLOW` relative to the one above (made
//! with `mkdirat` when missing), so a link at any step stops the walk.

use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::error::Error;

const DIR_FLAGS: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Why a folder below the target could not be reached.
#[derive(Debug)]
pub(crate) enum Refused {
    /// This step is a symbolic link: not followed.
    Link(PathBuf),
    /// This step is a file or something else that is not a folder.
    NotFolder(PathBuf),
    /// This step could not be opened or made.
    Io(PathBuf, io::Error),
}

impl Refused {
    /// The error to report for a file or folder `what` below that step.
    pub(crate) fn error(&self, what: &Path) -> Error {
        let what = what.display();
        match self {
            Refused::Link(link) => Error::Usage(format!(
                "{what} is below {}, a symbolic link here; a download never goes through a \
                 link below its target (skipped)",
                link.display()
            )),
            Refused::NotFolder(file) => Error::Usage(format!(
                "{what} is below {}, which is not a folder here (skipped)",
                file.display()
            )),
            Refused::Io(step, e) => Error::Usage(format!(
                "{what}: cannot make or open {}: {}",
                step.display(),
                crate::error::reason(e)
            )),
        }
    }
}

/// Opens the folder `relative` (components joined by `/`, already
/// checked as clean) below `target`, making what is missing, one step at a
/// time without following a link. An empty `relative` is the target.
pub(crate) fn make_below(target: &Path, relative: &str) -> Result<OwnedFd, Refused> {
    let refused = |path: &Path, e: rustix::io::Errno| Refused::Io(path.to_path_buf(), e.into());
    let open_dir = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut folder =
        rustix::fs::open(target, open_dir, Mode::empty()).map_err(|e| refused(target, e))?;
    let mut path = target.to_path_buf();
    for part in relative.split('/').filter(|p| !p.is_empty()) {
        path.push(part);
        folder = match rustix::fs::openat(&folder, part, DIR_FLAGS, Mode::empty()) {
            Ok(next) => next,
            Err(rustix::io::Errno::NOENT) => {
                match rustix::fs::mkdirat(&folder, part, Mode::from_raw_mode(0o777)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(refused(&path, e)),
                }
                rustix::fs::openat(&folder, part, DIR_FLAGS, Mode::empty())
                    .map_err(|e| why_not(&folder, part, &path, e))?
            }
            Err(e) => return Err(why_not(&folder, part, &path, e)),
        };
    }
    Ok(folder)
}

/// Makes the folder that holds the file `relative` below `target` (see
/// [`make_below`]).
pub(crate) fn make_parent_below(target: &Path, relative: &str) -> Result<(), Refused> {
    let parent = relative.rsplit_once('/').map_or("", |(folder, _)| folder);
    make_below(target, parent).map(drop)
}

/// Tells a link from a file in the way, when `part` could not be opened
/// as a folder.
fn why_not(folder: &OwnedFd, part: &str, path: &Path, e: rustix::io::Errno) -> Refused {
    use rustix::fs::{AtFlags, FileType};
    let looked = rustix::fs::statat(folder, part, AtFlags::SYMLINK_NOFOLLOW);
    match looked.map(|st| FileType::from_raw_mode(st.st_mode)) {
        Ok(FileType::Symlink) => Refused::Link(path.to_path_buf()),
        Ok(FileType::Directory) => Refused::Io(path.to_path_buf(), e.into()),
        Ok(_) => Refused::NotFolder(path.to_path_buf()),
        Err(_) => Refused::Io(path.to_path_buf(), e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn folders_are_made_below_the_target_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let (target, outside) = (dir.path().join("t"), dir.path().join("outside"));
        fs::create_dir_all(&target).unwrap();
        fs::create_dir_all(&outside).unwrap();
        symlink("../outside", target.join("docs")).unwrap();
        fs::write(target.join("file"), b"").unwrap();
        make_below(&target, "a/b/c").unwrap();
        assert!(target.join("a/b/c").is_dir());
        assert!(make_parent_below(&target, "top.txt").is_ok());
        let through = make_below(&target, "docs/sub").unwrap_err();
        assert!(matches!(&through, Refused::Link(p) if p == &target.join("docs")));
        let through = make_parent_below(&target, "docs/planted.sh").unwrap_err();
        assert!(matches!(through, Refused::Link(_)));
        let in_the_way = make_parent_below(&target, "file/x").unwrap_err();
        assert!(matches!(in_the_way, Refused::NotFolder(_)));
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing outside"
        );
    }
}
