//! A download's partial file on the local side, and the names a transfer
//! gives local files: where the bytes go before they are checked, and
//! what a user is told about it.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::digest::Digester;
use crate::io::pump::hash_prefix;
use crate::wire::message::Digest;
use crate::wire::names::{escape, validate_name};

/// Opens a download's partial file at `offset`, with the digest of the
/// bytes already there.
pub(crate) fn open_partial_download(partial: &Path, offset: u64) -> Result<(File, blake3::Hasher)> {
    // O_NOFOLLOW: a link planted (or swapped in after the check in
    // get_once) would send the download into whatever file it names.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(partial)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => planted_link(partial),
            // The hidden partial file is named for what it is about: the target.
            _ => Error::Usage(format!(
                "cannot write {}: {}",
                partial.with_file_name(target_name(partial)).display(),
                crate::error::reason(&e)
            )),
        })?;
    let mut hasher = blake3::Hasher::new();
    hash_prefix(&mut file, offset, &mut hasher)?;
    file.set_len(offset)
        .map_err(|e| Error::io(format!("truncating {}", partial.display()), e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Error::io(format!("seeking {}", partial.display()), e))?;
    Ok((file, hasher))
}

/// The error for a download's partial file that is a symbolic link.
pub(crate) fn planted_link(partial: &Path) -> Error {
    Error::Usage(format!(
        "{} is a symbolic link; a download is never written through one. Remove it if you \
         did not make it, and run the command again",
        partial.display()
    ))
}

/// Checks a complete download against the server's digest (a mismatch
/// deletes it) and, with `flush`, puts its data on disk. Returns its
/// digest.
pub(crate) fn check_download(
    name: &str,
    file: File,
    hasher: Digester,
    digest: &Digest,
    partial: &Path,
    flush: bool,
) -> Result<blake3::Hash> {
    // Hash equality is constant-time; hex of either case parses.
    let ours = hasher.finalize();
    if blake3::Hash::from_hex(&digest.blake3).map_or(true, |d| d != ours) {
        let _ = fs::remove_file(partial);
        return Err(Error::DigestMismatch { name: escape(name) });
    }
    if flush {
        file.sync_all()
            .map_err(|e| Error::io(format!("saving {}", partial.display()), e))?;
    }
    Ok(ours)
}

/// The name a local file or folder is uploaded under: its base name, which
/// must follow the server's naming rules.
///
/// Fails when the path has no base name, it is not UTF-8, or the server
/// would refuse it.
pub(crate) fn local_upload_name(path: &Path) -> Result<String> {
    let base = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        Error::Usage(format!(
            "{} has no name that can be uploaded (it must be valid UTF-8)",
            path.display()
        ))
    })?;
    validate_name(base)
        .map(str::to_string)
        .map_err(|e| Error::Usage(format!("cannot upload {}: {e}", path.display())))
}

/// The hidden file a download is written to before it is complete:
/// `.NAME.ftp-part` next to the target.
pub(crate) fn partial_download_path(target: &Path) -> Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{} is not a file path", target.display())))?;
    let mut hidden = std::ffi::OsString::from(".");
    hidden.push(name);
    hidden.push(".ftp-part");
    Ok(target.with_file_name(hidden))
}

/// The target's name back from its partial file's (`.NAME.ftp-part`), for
/// messages: the user asked for NAME and knows nothing of the hidden file.
fn target_name(partial: &Path) -> std::ffi::OsString {
    let name = partial.file_name().unwrap_or_default().to_string_lossy();
    let bare = name.strip_prefix('.').unwrap_or(&name);
    bare.strip_suffix(".ftp-part").unwrap_or(bare).into()
}
