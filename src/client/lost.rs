//! When a connection or the client's place on the server is lost: the
//! error that says the same command resumes, and paths taken from a
//! folder that could not be entered again.

use crate::error::Error;

/// A disconnect or a stall as [`Error::ConnectionLost`]; other errors as
/// they are.
pub(crate) fn connection_lost(e: Error) -> Error {
    match e {
        e @ Error::ConnectionLost { .. } => e,
        e if e.is_disconnect() => Error::ConnectionLost { cause: Box::new(e) },
        e => e,
    }
}

/// `path` taken from `folder` (`/a/b`), as an absolute path: `..` and `.`
/// resolved, the rest left for the server to check.
pub(crate) fn from_folder(folder: &str, path: &str) -> String {
    let mut parts: Vec<&str> = folder.split('/').filter(|p| !p.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_taken_from_the_lost_folder() {
        assert_eq!(from_folder("/tree/sub", ".."), "/tree");
        assert_eq!(from_folder("/tree/sub", "../other/./x"), "/tree/other/x");
        assert_eq!(from_folder("/tree", "../../.."), "/");
        assert_eq!(from_folder("/", "a b"), "/a b");
    }

    #[test]
    fn a_broken_or_stalled_connection_says_the_command_resumes() {
        let stalled = std::io::Error::new(std::io::ErrorKind::TimedOut, "nothing moved");
        let lost = connection_lost(Error::io("sending file data", stalled));
        assert_eq!(
            lost.to_string(),
            "connection lost (sending file data: nothing moved); run the same command to resume"
        );
        assert!(matches!(
            connection_lost(Error::Closed),
            Error::ConnectionLost { .. }
        ));
        let refused = connection_lost(Error::DigestMismatch { name: "a".into() });
        assert!(matches!(refused, Error::DigestMismatch { .. }));
    }
}
