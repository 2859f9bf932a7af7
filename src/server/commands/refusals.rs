//! The replies that refuse a command, built from what storage reports:
//! what the client may be told, with the server's own paths and errors
//! left to the log.

use std::io;

use crate::logging::{Event as LogEvent, Kind};
use crate::storage::{is_no_space, FolderError, Leftover, StoreError};
use crate::wire::message::{ErrorCode, ErrorReply};
use crate::wire::names::{escape, NameError};

/// An error reply for a failure of the server's own file system. The
/// detail (the system's error, which may name the server's paths) goes to
/// the log; the client is told what failed and where to look.
pub(crate) fn internal(what: &str, e: &io::Error) -> ErrorReply {
    if is_no_space(e) {
        return disk_full(what);
    }
    LogEvent::new(Kind::Internal).warn(format_args!(
        "internal error: {what}: {}",
        crate::error::reason(e)
    ));
    ErrorReply::new(
        ErrorCode::Internal,
        format!("{what} failed on the server; its log says why"),
    )
}

fn disk_full(what: &str) -> ErrorReply {
    ErrorReply::new(
        ErrorCode::NoSpace,
        format!("{what}: the server's disk is full"),
    )
}

/// The reply to a store's refusal of something done to `name`.
pub(crate) fn store_refusal(e: StoreError, name: &str) -> ErrorReply {
    let name = escape(name);
    match e {
        StoreError::Folder(e) => bad_folder(e),
        StoreError::File(e) => not_found(&name, &e),
        StoreError::NotAFile => ErrorReply::new(
            ErrorCode::Exists,
            format!("{name} exists and is not a regular file"),
        ),
        StoreError::Exists => ErrorReply::new(ErrorCode::Exists, format!("{name} already exists")),
        StoreError::NotEmpty => {
            let why = format!("folder {name} is not empty; rm -r removes it with all it holds");
            ErrorReply::new(ErrorCode::NotEmpty, why)
        }
        StoreError::DigestMismatch => ErrorReply::new(
            ErrorCode::DigestMismatch,
            format!(
                "digest mismatch for {name}: the data does not match; \
                 the partial data was discarded, send the file again"
            ),
        ),
        StoreError::Busy => ErrorReply::new(
            ErrorCode::Busy,
            format!("{name} is being uploaded through another server"),
        ),
        StoreError::Overloaded => ErrorReply::new(
            ErrorCode::Busy,
            "the server is busy with other uploads; try again shortly",
        ),
        StoreError::Left { removed, left, why } => left_behind(removed, &name, &left, why),
        StoreError::Unsupported(why) => ErrorReply::new(ErrorCode::Forbidden, why),
        StoreError::NoSpace => disk_full("writing the file"),
        StoreError::Failed(what, e) => internal(what, &e),
        StoreError::KeyTooLong { bytes, max } => ErrorReply::new(
            ErrorCode::BadName,
            format!(
                "path too long for the object store: {name} in this folder needs a key of \
                 {bytes} bytes, and at most {max} fit; use a shorter name or folder"
            ),
        ),
        StoreError::TooLarge { max, why } => ErrorReply::new(
            ErrorCode::TooLarge,
            format!("file too large for this server's object store: at most {max} bytes ({why})"),
        ),
    }
}

/// The reply to a removal of the tree `name` (escaped) that left the
/// folder `left` behind, for the reason `why`, after `removed` went.
fn left_behind(removed: u64, name: &str, left: &str, why: Leftover) -> ErrorReply {
    let (code, reason) = match why {
        Leftover::Upload => (
            ErrorCode::Busy,
            "an upload into it is running; run rm -r again once it is done",
        ),
        Leftover::Added => (
            ErrorCode::Busy,
            "something was added to it meanwhile; run rm -r again",
        ),
        Leftover::TooDeep => (
            ErrorCode::Forbidden,
            "it is deeper than a removal goes (made on the server's machine, \
             not through this server); remove it there",
        ),
    };
    ErrorReply::new(
        code,
        format!(
            "removed {removed} files and folders of {name}, but {} is left: {reason}",
            escape(left)
        ),
    )
}

pub(super) fn bad_name(e: NameError) -> ErrorReply {
    ErrorReply::new(ErrorCode::BadName, format!("invalid name: {e}"))
}

pub(crate) fn bad_folder(e: FolderError) -> ErrorReply {
    match e {
        FolderError::Missing(f) => {
            ErrorReply::new(ErrorCode::NotFound, format!("no such folder: {f}"))
        }
        FolderError::Link(f) => ErrorReply::new(
            ErrorCode::BadName,
            format!("{f} is a symbolic link, which is not followed"),
        ),
        FolderError::NotFolder(f) => {
            ErrorReply::new(ErrorCode::BadName, format!("{f} is not a folder"))
        }
        FolderError::Io(f, e) => internal(&format!("checking {f}"), &e),
    }
}

/// `name` comes escaped.
fn not_found(name: &str, e: &io::Error) -> ErrorReply {
    match e.kind() {
        io::ErrorKind::NotFound => {
            ErrorReply::new(ErrorCode::NotFound, format!("no such file: {name}"))
        }
        _ if e.raw_os_error() == Some(libc::ELOOP) => ErrorReply::new(
            ErrorCode::BadName,
            format!("{name} is a symbolic link, which is not followed"),
        ),
        io::ErrorKind::InvalidInput => {
            ErrorReply::new(ErrorCode::NotFound, format!("{name} is not a regular file"))
        }
        _ => internal(&format!("opening {name}"), e),
    }
}
