//! What the client checks before it believes a server: that a put's
//! reply names what was sent, and that a download's declared size fits
//! the disk. A server it trusted once may still lie.

use std::path::Path;

use crate::config::units::human;
use crate::error::{Error, Result};
use crate::wire::message::PutDone;

/// Refuses a download into a local folder that does not exist, before
/// anything is asked of the server.
pub(crate) fn check_local_folder(target: &Path) -> Result<()> {
    let folder = folder_of(target);
    match folder.is_dir() {
        true => Ok(()),
        false => Err(no_local_folder(folder)),
    }
}

/// The folder a download into `path` lands in.
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The refusal of a download into a folder that does not exist.
fn no_local_folder(folder: &Path) -> Error {
    Error::Usage(format!(
        "no local folder {}: make it first, or name a folder that exists",
        folder.display()
    ))
}

/// Fails unless the file system that holds `partial` has room for `need`
/// more bytes: a download is refused before its first byte when the size
/// the server declares would fill the disk. (The body is then never read
/// past that size either: exactly `filesize` bytes are taken.)
pub(crate) fn check_room(partial: &Path, need: u64) -> Result<()> {
    let folder = folder_of(partial);
    let fs = rustix::fs::statvfs(folder).map_err(|e| match e {
        rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR => no_local_folder(folder),
        e => Error::io(
            format!("checking the free space in {}", folder.display()),
            e.into(),
        ),
    })?;
    let free = fs.f_bavail.saturating_mul(fs.f_frsize);
    if need > free {
        return Err(Error::Usage(format!(
            "the download needs {} more, but {} has {} free; nothing was written",
            human(need),
            folder.display(),
            human(free)
        )));
    }
    Ok(())
}

/// Refuses a resume offset past the end of the file being sent.
pub(crate) fn check_offset(offset: u64, size: u64) -> Result<()> {
    match offset > size {
        true => Err(Error::Malformed(format!(
            "server asked to resume at {offset}, beyond the file's {size} bytes"
        ))),
        false => Ok(()),
    }
}

/// Checks the server's reply to a put against what was sent: a server
/// that says `ok` to another name, size or digest did not store this file,
/// whatever it says. (A digest it leaves out is not checked: an older
/// server sends none.)
///
/// Fails with [`Error::Malformed`], naming both, on any difference.
pub(crate) fn check_stored(
    done: &PutDone,
    remote: &str,
    size: u64,
    digest: &blake3::Hash,
) -> Result<PutDone> {
    let digest_differs = done
        .blake3
        .as_deref()
        .is_some_and(|d| blake3::Hash::from_hex(d).map_or(true, |d| &d != digest));
    if done.filename != remote || done.size != size || digest_differs {
        let theirs = done.blake3.as_deref().unwrap_or("no digest");
        return Err(Error::Malformed(format!(
            "the server confirmed {:?} of {} bytes (BLAKE3 {theirs}), not what was sent \
             ({:?}, {size} bytes, BLAKE3 {digest}); it is not known to be stored",
            done.filename, done.size, remote
        )));
    }
    Ok(done.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_into_a_missing_folder_names_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("nodir/x/file.part");
        let said = check_room(&target, 1).unwrap_err().to_string();
        assert_eq!(
            said,
            format!(
                "no local folder {}: make it first, or name a folder that exists",
                dir.path().join("nodir/x").display()
            )
        );
    }

    #[test]
    fn a_download_too_big_for_the_disk_is_refused_in_human_sizes() {
        let e = check_room(Path::new("x.part"), u64::MAX).unwrap_err();
        let said = e.to_string();
        assert!(
            said.starts_with("the download needs 16.00 EiB more, but . has "),
            "{said}"
        );
        assert!(
            said.ends_with("free; nothing was written") && !said.contains("bytes"),
            "{said}"
        );
    }

    fn done(name: &str, size: u64, blake3: Option<String>) -> PutDone {
        PutDone {
            filename: name.into(),
            size,
            received: size,
            replaced: false,
            blake3,
        }
    }

    #[test]
    fn a_put_reply_must_name_what_was_sent() {
        let digest = blake3::hash(b"abc");
        let hex = Some(digest.to_hex().to_string());
        assert!(check_stored(&done("a", 3, hex.clone()), "a", 3, &digest).is_ok());
        assert!(check_stored(&done("a", 3, None), "a", 3, &digest).is_ok());
        let other = Some(blake3::hash(b"abd").to_hex().to_string());
        for lie in [
            done("b", 3, hex.clone()),
            done("a", 4, hex.clone()),
            done("a", 3, other),
            done("a", 3, Some("zz".into())),
        ] {
            let err = check_stored(&lie, "a", 3, &digest).unwrap_err();
            assert!(err.to_string().contains("not known to be stored"), "{err}");
        }
    }

    #[test]
    fn a_size_past_the_free_space_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join(".a.ftp-part");
        assert!(check_room(&partial, 1).is_ok());
        let err = check_room(&partial, 1 << 62).unwrap_err();
        assert!(err.to_string().contains("nothing was written"), "{err}");
        assert!(check_room(Path::new(".x.ftp-part"), 0).is_ok());
    }
}
