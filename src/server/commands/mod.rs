//! The commands a logged-in client can run, one module per kind, each an
//! `impl Session` block. Replies that refuse a command are built here from
//! what storage reports.

use std::io;

use crate::storage::local::{is_no_space, FolderError};
use crate::wire::message::{ErrorCode, ErrorReply};
use crate::wire::names::{escape, NameError};

mod folders;
mod get;
mod misc;
mod put;

/// An error reply for a failure of the server's own file system.
pub(crate) fn internal(what: &str, e: &io::Error) -> ErrorReply {
    if is_no_space(e) {
        return ErrorReply::new(
            ErrorCode::NoSpace,
            format!("{what}: the server's disk is full"),
        );
    }
    ErrorReply::new(ErrorCode::Internal, format!("{what}: {e}"))
}

fn bad_name(e: NameError) -> ErrorReply {
    ErrorReply::new(ErrorCode::BadName, format!("invalid name: {e}"))
}

fn bad_folder(e: FolderError) -> ErrorReply {
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

fn not_found(name: &str, e: &io::Error) -> ErrorReply {
    match e.kind() {
        io::ErrorKind::NotFound => ErrorReply::new(
            ErrorCode::NotFound,
            format!("no such file: {}", escape(name)),
        ),
        _ if e.raw_os_error() == Some(libc::ELOOP) => ErrorReply::new(
            ErrorCode::BadName,
            format!("{} is a symbolic link, which is not followed", escape(name)),
        ),
        io::ErrorKind::InvalidInput => ErrorReply::new(
            ErrorCode::NotFound,
            format!("{} is not a regular file", escape(name)),
        ),
        _ => internal(&format!("opening {}", escape(name)), e),
    }
}
