//! Where `put` sends what it is given on the server: with one name or
//! more than two, each under its own name in the current folder; with two,
//! as sftp reads them, LOCAL as REMOTE, or into REMOTE when that ends with
//! `/` or is a folder there.

use crate::client::Client;

use super::is_folder;

/// Where `put` sends its sources on the server (see README, "Two names").
pub(super) enum Target {
    /// The current folder, each under its own name.
    Here,
    /// A folder, each under its own name: REMOTE ended with `/` (made when
    /// missing), or names a folder there.
    Into(String),
    /// The one source, under the name REMOTE.
    As(String),
}

impl Target {
    pub(super) fn of(client: &mut Client, remote: Option<&str>) -> Target {
        match remote {
            None => Target::Here,
            Some(r) if r.ends_with('/') => Target::Into(r.to_string()),
            Some(r) if is_folder(client, r) => Target::Into(r.to_string()),
            Some(r) => Target::As(r.to_string()),
        }
    }

    /// The server name for a source whose own name is `base`.
    pub(super) fn name(&self, base: String) -> String {
        match self {
            Target::Here => base,
            Target::Into(folder) if folder.ends_with('/') => format!("{folder}{base}"),
            Target::Into(folder) => format!("{folder}/{base}"),
            Target::As(remote) => remote.clone(),
        }
    }
}
