//! Folders below a home held open as handles, and every operation on their
//! entries made relative to the handle (`openat`, `statat`, `unlinkat`,
//! `mkdirat`, `renameat`), never through a path and never following a
//! symbolic link. A link a local user plants in the upload root, as a file
//! or as a folder (`.ftp-partial` included), or swaps in after a check,
//! therefore leads nowhere: the step that meets it fails.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags, Stat};
use rustix::path::Arg;

use crate::storage::FolderError;
use crate::wire::names::{display_folder, PARTIAL_DIR};

/// An entry of a folder, as `lstat` sees it.
#[derive(Debug)]
pub(crate) struct Found {
    /// Its name, as the file system has it.
    pub(crate) name: OsString,
    /// What it is.
    pub(crate) kind: Kind,
    /// When its content last changed, in seconds since the Unix epoch (0
    /// for earlier times).
    pub(crate) mtime: u64,
}

/// The permissions new files and folders get (before the umask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Modes {
    /// For uploaded files.
    pub(crate) file: u32,
    /// For homes and folders.
    pub(crate) dir: u32,
}

impl Modes {
    /// Only the server's user can read what is stored: the default, so
    /// that other local users do not read everyone's files.
    pub(crate) const PRIVATE: Modes = Modes {
        file: 0o600,
        dir: 0o700,
    };
    /// Readable by every local user (`--shared-files`).
    pub(crate) const SHARED: Modes = Modes {
        file: 0o644,
        dir: 0o755,
    };
}

/// A folder held open (`O_PATH`): what it names cannot be swapped for
/// another folder or a link while the handle is held.
#[derive(Debug)]
pub(crate) struct Folder {
    fd: OwnedFd,
}

/// What an entry of a folder is, as `lstat` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file, with its length.
    File(u64),
    /// A folder.
    Dir,
    /// A symbolic link, never followed.
    Link,
    /// A device, a socket, a FIFO...
    Other,
}

const DIR_FLAGS: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Folder {
    /// The folder at `path` (a home, or the root); fails with `ELOOP` or
    /// `ENOTDIR` when it is a link.
    pub(crate) fn open(path: &Path) -> io::Result<Folder> {
        let fd = rustix::fs::open(path, DIR_FLAGS, Mode::empty())?;
        Ok(Folder { fd })
    }

    /// The folder `components` below `home`, one step at a time, each step
    /// refusing a link.
    ///
    /// Fails naming the step that is missing, a link, or not a folder.
    pub(crate) fn walk(home: &Path, components: &[String]) -> Result<Folder, FolderError> {
        let mut folder = Folder::open(home).map_err(|e| FolderError::Io("/".into(), e))?;
        if components.is_empty() {
            return Ok(folder);
        }
        // One call for the whole path when the kernel can refuse every link
        // and every step out of the home itself (openat2, Linux 5.6); the
        // names are checked components, so joining them adds no meaning.
        // Any refusal, or an older kernel, takes the step-by-step way,
        // which also says which step failed.
        let beneath = ResolveFlags::BENEATH
            .union(ResolveFlags::NO_SYMLINKS)
            .union(ResolveFlags::NO_MAGICLINKS)
            .union(ResolveFlags::NO_XDEV);
        let joined = components.join("/");
        if let Ok(fd) = rustix::fs::openat2(&folder.fd, &joined, DIR_FLAGS, Mode::empty(), beneath)
        {
            return Ok(Folder { fd });
        }
        for (depth, part) in components.iter().enumerate() {
            let shown = || display_folder(&components[..=depth]);
            folder = match folder.child(part) {
                Ok(child) => child,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(FolderError::Missing(shown()))
                }
                Err(e) => {
                    return Err(match folder.kind(part) {
                        Ok(Kind::Link) => FolderError::Link(shown()),
                        Ok(_) => FolderError::NotFolder(shown()),
                        Err(_) => FolderError::Io(shown(), e),
                    })
                }
            };
        }
        Ok(folder)
    }

    /// The folder `name` in this one; fails for a link or a file.
    pub(crate) fn child(&self, name: impl Arg) -> io::Result<Folder> {
        let fd = rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())?;
        Ok(Folder { fd })
    }

    /// The partial-upload folder in this one, made with `modes` when
    /// `create` and it is missing.
    pub(crate) fn partials(&self, create: bool, modes: Modes) -> io::Result<Folder> {
        match self.child(PARTIAL_DIR) {
            Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                match self.make_dir(PARTIAL_DIR, modes) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                    _ => {}
                }
                self.child(PARTIAL_DIR)
            }
            other => other,
        }
    }

    /// Removes the partial-upload folder in this one if it holds
    /// nothing: its last partial upload just went. Best effort: one that
    /// holds a partial, or is a link, stays.
    pub(crate) fn tidy_partials(&self) {
        let _ = self.remove_dir(PARTIAL_DIR);
    }

    /// What `name` is, not following a link.
    pub(crate) fn kind(&self, name: impl Arg) -> io::Result<Kind> {
        Ok(kind_of(&self.stat(name)?))
    }

    /// A second handle on the same folder.
    ///
    /// Fails when no descriptor is left.
    pub(crate) fn try_clone(&self) -> io::Result<Folder> {
        Ok(Folder {
            fd: self.fd.try_clone()?,
        })
    }

    /// The length of the regular file `name`; `None` for anything else.
    pub(crate) fn file_len(&self, name: &str) -> Option<u64> {
        match self.kind(name) {
            Ok(Kind::File(len)) => Some(len),
            _ => None,
        }
    }

    fn stat(&self, name: impl Arg) -> io::Result<Stat> {
        Ok(rustix::fs::statat(
            &self.fd,
            name,
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// The entries of this folder (not `.` and `..`), each looked at
    /// through this handle without following a link. An entry removed
    /// before it is looked at is left out.
    ///
    /// Fails when the folder cannot be read; an item fails when an entry
    /// cannot be looked at.
    pub(crate) fn entries(&self) -> io::Result<impl Iterator<Item = io::Result<Found>> + '_> {
        self.try_clone()?.into_entries()
    }

    /// [`Folder::entries`], owning the handle, so that the entries can be
    /// taken one by one after the caller is gone (a listing sent in pages).
    ///
    /// Fails when the folder cannot be read.
    pub(crate) fn into_entries(self) -> io::Result<impl Iterator<Item = io::Result<Found>>> {
        // The O_PATH handle cannot be read from; a second one, opened
        // through it, can.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let readable = rustix::fs::openat(&self.fd, ".", flags, Mode::empty())?;
        let dir = rustix::fs::Dir::read_from(&readable)?;
        let fd = self.fd;
        Ok(dir.filter_map(move |entry| {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => return Some(Err(e.into())),
            };
            let name = entry.file_name();
            if matches!(name.to_bytes(), b"." | b"..") {
                return None;
            }
            match rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Some(Ok(Found {
                    name: OsString::from_vec(name.to_bytes().to_vec()),
                    kind: kind_of(&st),
                    mtime: u64::try_from(st.st_mtime).unwrap_or(0),
                })),
                Err(rustix::io::Errno::NOENT) => None,
                Err(e) => Some(Err(e.into())),
            }
        }))
    }

    /// Makes the folder `name`.
    pub(crate) fn make_dir(&self, name: &str, modes: Modes) -> io::Result<()> {
        Ok(rustix::fs::mkdirat(
            &self.fd,
            name,
            Mode::from_raw_mode(modes.dir),
        )?)
    }

    /// Removes the file (or link) `name`, never what a link points to.
    pub(crate) fn remove_file(&self, name: impl Arg) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())?)
    }

    /// Removes the empty folder `name`.
    pub(crate) fn remove_dir(&self, name: impl Arg) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)?)
    }

    /// Opens the file `name` with `flags`; a link fails with `ELOOP`. A
    /// created file gets `modes.file`.
    pub(crate) fn open_file(&self, name: &str, flags: OFlags, modes: Modes) -> io::Result<File> {
        let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(modes.file))?;
        Ok(File::from(fd))
    }

    /// Opens the regular file `name` for reading.
    ///
    /// Fails with `ELOOP` for a link, `InvalidInput` for what is not a
    /// regular file (a FIFO does not block the open: `O_NONBLOCK`).
    pub(crate) fn open_regular(&self, name: &str) -> io::Result<File> {
        let file = self.open_file(name, OFlags::RDONLY | OFlags::NONBLOCK, Modes::PRIVATE)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(file)
    }

    /// Moves `from` in this folder to `to` in `dest`. With `overwrite` an
    /// existing file is replaced in one rename; without it an existing
    /// name is refused by the same rename (`RENAME_NOREPLACE`, or, on file
    /// systems without it, link-then-unlink), so no race can replace it.
    ///
    /// Fails with `AlreadyExists` when overwriting is off and `to` exists.
    pub(crate) fn rename(
        &self,
        from: &str,
        dest: &Folder,
        to: &str,
        overwrite: bool,
    ) -> io::Result<()> {
        if overwrite {
            return Ok(rustix::fs::renameat(&self.fd, from, &dest.fd, to)?);
        }
        match rustix::fs::renameat_with(&self.fd, from, &dest.fd, to, RenameFlags::NOREPLACE) {
            Err(rustix::io::Errno::INVAL) => {
                rustix::fs::linkat(&self.fd, from, &dest.fd, to, AtFlags::empty())?;
                self.remove_file(from)
            }
            other => Ok(other?),
        }
    }

    /// Flushes the folder's entries to disk, so that a rename survives a
    /// power cut.
    pub(crate) fn sync(&self) -> io::Result<()> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = rustix::fs::openat(&self.fd, ".", flags, Mode::empty())?;
        File::from(dir).sync_all()
    }

    /// Bytes an unprivileged user can still write on this file system.
    pub(crate) fn free_space(&self) -> io::Result<u64> {
        let st = rustix::fs::fstatvfs(&self.fd)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }
}

fn kind_of(st: &Stat) -> Kind {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => Kind::File(u64::try_from(st.st_size).unwrap_or(0)),
        FileType::Directory => Kind::Dir,
        FileType::Symlink => Kind::Link,
        _ => Kind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    #[test]
    fn walk_refuses_links_and_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("f"), b"").unwrap();
        symlink("/", dir.path().join("out")).unwrap();
        assert!(Folder::walk(dir.path(), &["d".into()]).is_ok());
        assert!(matches!(
            Folder::walk(dir.path(), &["out".into()]),
            Err(FolderError::Link(p)) if p == "/out"
        ));
        assert!(matches!(
            Folder::walk(dir.path(), &["f".into()]),
            Err(FolderError::NotFolder(_))
        ));
        assert!(matches!(
            Folder::walk(dir.path(), &["x".into()]),
            Err(FolderError::Missing(_))
        ));
    }

    #[test]
    fn a_linked_partial_folder_is_neither_entered_nor_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("victim"), b"keep me").unwrap();
        symlink(outside.path(), dir.path().join(PARTIAL_DIR)).unwrap();
        let home = Folder::open(dir.path()).unwrap();
        assert!(home.partials(true, Modes::PRIVATE).is_err());
        assert!(home.remove_file("victim").is_err());
        assert_eq!(fs::read(outside.path().join("victim")).unwrap(), b"keep me");
    }

    #[test]
    fn files_open_through_no_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("target");
        fs::write(&target, b"outside").unwrap();
        symlink(&target, dir.path().join("l")).unwrap();
        let home = Folder::open(dir.path()).unwrap();
        assert!(home.open_regular("l").is_err());
        assert!(home.open_regular(".").is_err());
        assert_eq!(home.kind("l").unwrap(), Kind::Link);
        home.remove_file("l").unwrap();
        assert_eq!(
            fs::read(&target).unwrap(),
            b"outside",
            "the link went, not its target"
        );
    }

    #[test]
    fn rename_replaces_or_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let home = Folder::open(dir.path()).unwrap();
        let parts = home.partials(true, Modes::PRIVATE).unwrap();
        let write = |bytes: &[u8]| {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC;
            let mut f = parts.open_file("t", flags, Modes::PRIVATE).unwrap();
            f.write_all(bytes).unwrap();
        };
        write(b"one");
        parts.rename("t", &home, "t", true).unwrap();
        write(b"two");
        parts.rename("t", &home, "t", true).unwrap();
        home.sync().unwrap();
        assert_eq!(fs::read(dir.path().join("t")).unwrap(), b"two");
        write(b"three");
        let e = parts.rename("t", &home, "t", false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(dir.path().join("t")).unwrap(), b"two");
        assert!(home.free_space().unwrap() > 0);
    }

    #[test]
    fn new_files_and_folders_get_the_chosen_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let home = Folder::open(dir.path()).unwrap();
        let mode = |name: &str| {
            let meta = fs::metadata(dir.path().join(name)).unwrap();
            meta.permissions().mode() & 0o777
        };
        let create = OFlags::WRONLY | OFlags::CREATE;
        home.make_dir("private", Modes::PRIVATE).unwrap();
        home.open_file("p", create, Modes::PRIVATE).unwrap();
        assert_eq!((mode("private"), mode("p")), (0o700, 0o600));
        home.make_dir("shared", Modes::SHARED).unwrap();
        home.open_file("s", create, Modes::SHARED).unwrap();
        // The umask can only take bits away; 022 is the usual one.
        assert_eq!(mode("shared") & 0o700, 0o700);
        assert_eq!(mode("s") & 0o600, 0o600);
    }
}
